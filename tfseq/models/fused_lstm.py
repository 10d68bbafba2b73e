"""The whole LSTM recurrence as one C++ TensorFlow op on CPU, built on this machine on first use.

PyTorch trains ``nn.LSTM`` on CPU with oneDNN's fused LSTM kernel; TensorFlow 2.21 has none, and
even gate by gate an LSTM step is 17 TensorFlow ops forward and 21 more backward: running them one
by one cost about a quarter of an LSTM-128 layer's time on 2 cores. ``kernels/lstm.cc`` runs every
step of the forward pass in one op and every step of the backward pass in another; each thread
takes a slice of the batch through all steps, with Eigen's matrix products and vectorised tanh.
Masks follow Keras: at a masked step the states carry over and the output repeats the last one.

The op is compiled from the source shipped in the package with the C++ compiler and TensorFlow's
headers, for this CPU (``-march=native``), once per machine, TensorFlow version and source; the
library is cached under ``$TFSEQ_CACHE_DIR`` (default ``~/.cache/tfseq``), keyed by all three and
the CPU's features, so a shared home directory never hands a node a library built for another
CPU. One line says so before the first build (about 40 s on 2 cores); ``tfseq build-kernels`` builds it
ahead of time, e.g. in a container image. Where it cannot be built (no compiler, native Windows
or no ``fcntl``, another platform) or ``TFSEQ_FUSED_LSTM=0`` is set, LSTM layers keep the
gate-by-gate loop of :mod:`tfseq.models.recurrent`, with a one-line warning for a failed build.

Loading a library runs its code, so the library is opened once without following links, checked
through that open file (a regular file owned by this user, writable by no one else, in a private
directory) and loaded through the same open file (``/proc/self/fd``): nobody can swap it between
the check and the load. Its helper threads number the CPUs the process may use (its cgroup quota
included, :func:`tfseq.cpus.available_cpus`), capped by TensorFlow's intra-op setting where the
user set one. The op runs only in training calls; inference graphs, and so every export, keep
TensorFlow's own ops.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import tensorflow as tf

from tfseq.cpus import available_cpus, intra_op_set_by_tfseq
from tfseq.io import write_text_atomic

fcntl: ModuleType | None
try:  # not on native Windows: there the gate-by-gate loop runs
    import fcntl
except ImportError:  # pragma: no cover - exercised in a subprocess by the tests
    fcntl = None

#: Set to ``0`` to keep LSTM layers on the gate-by-gate loop.
SWITCH = "TFSEQ_FUSED_LSTM"
SOURCE = Path(__file__).with_name("kernels") / "lstm.cc"
BUILD_TIMEOUT_S = 600
#: Roughly how long the first build takes on a 2-core machine (measured 35-41 s; said before it starts).
BUILD_SECONDS_HINT = 40

_log = logging.getLogger("tfseq")


def cache_dir() -> Path:
    """Where built kernels are kept: ``$TFSEQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/tfseq``."""
    root = os.environ.get("TFSEQ_CACHE_DIR")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tfseq")
    return Path(root) / "kernels"


def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return line.strip()
    except OSError:
        pass
    return platform.processor()


def _arch_flags() -> list[str]:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        # TensorFlow 2.21's Eigen headers do not compile with AVX512-FP16 on (g++ 12, Sapphire
        # Rapids: PacketMathFP16.h, "expected initializer before '<'"); the op uses no float16.
        return ["-march=native", "-U__AVX512FP16__"]
    if machine in ("aarch64", "arm64"):
        return ["-mcpu=native"]
    return []


def _command(compiler: str, source: Path, target: Path) -> list[str]:
    return [compiler, "-shared", "-fPIC", "-O3", "-DNDEBUG", *_arch_flags(), "-w",
            *tf.sysconfig.get_compile_flags(), str(source), "-o", str(target), *tf.sysconfig.get_link_flags()]


def library_name(compiler: str) -> str:
    """The cached library's file name: a hash of the source, TensorFlow, compiler and CPU."""
    key = hashlib.sha256(b"\0".join([
        SOURCE.read_bytes(), tf.__version__.encode(), compiler.encode(), _cpu_features().encode(),
        " ".join(_command(compiler, Path("src"), Path("lib"))).encode(),
    ])).hexdigest()[:20]
    return f"tfseq_lstm-{key}.so"


def _check_private(path: Path) -> None:
    """Refuses a cache directory that another user owns or may write."""
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise RuntimeError(f"{path} is not private to this user (expected a directory this user owns and no one else may write)")


def _open_private(path: Path) -> int:
    """Opens ``path`` without following links and checks the open file: a regular file owned by
    this user that no one else may write. Returns the descriptor; the caller closes it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise RuntimeError(f"{path} is not private to this user (expected a regular file this user owns and no one else may write)")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_ancestors(path: Path) -> None:
    """Where a library cannot be loaded through its open file (no ``/proc``), every directory
    above it must be one that only this user (or root) may change, or sticky like ``/tmp``."""
    for directory in Path(path).resolve().parents:
        info = directory.stat()
        if info.st_uid not in (0, os.getuid()) or (info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX):
            raise RuntimeError(f"{directory} may be changed by another user; refusing to load a library under it")


def load_library(path: Path) -> ModuleType:
    """Loads the op library at ``path`` after checking it, through the very file it checked.

    Raises:
        RuntimeError: if the file, or its directory, is not private to this user.
        OSError: if it cannot be opened (a link, a missing file).
    """
    path = Path(path)
    _check_private(path.parent)
    fd = _open_private(path)
    try:
        through = Path(f"/proc/self/fd/{fd}")
        if through.exists():
            return tf.load_op_library(str(through))
        _check_ancestors(path)
        return tf.load_op_library(str(path))
    finally:
        os.close(fd)


def threads() -> int:
    """The helper threads the op may use: the CPUs this process may use, capped by TensorFlow's
    intra-op setting where the user set one (tfseq's own setting for small machines is not)."""
    cpus = available_cpus()
    env = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return max(1, min(cpus, int(env)))
    setting = tf.config.threading.get_intra_op_parallelism_threads()
    if setting > 0 and not intra_op_set_by_tfseq():
        return max(1, min(cpus, setting))
    return cpus


def _directories(directory: Path | None) -> list[Path]:
    if directory is not None:
        return [Path(directory)]
    if os.environ.get("TFSEQ_CACHE_DIR"):
        return [cache_dir()]
    # A read-only home (some CI and batch systems) falls back to a private temporary directory.
    return [cache_dir(), Path(tempfile.gettempdir()) / f"tfseq-{os.getuid()}" / "kernels"]


def _compile(compiler: str, target: Path) -> None:
    # Built under a temporary name and renamed, so a concurrent or killed build never leaves a
    # half-written library where another process would load it.
    fd, partial = tempfile.mkstemp(prefix=".tfseq_lstm-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        # A session of its own, so a timeout stops the compiler's children too.
        process = subprocess.Popen(_command(compiler, SOURCE, Path(partial)), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise RuntimeError(f"{Path(compiler).name} took over {BUILD_TIMEOUT_S} s") from None
        if process.returncode != 0:
            last = (stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{Path(compiler).name} failed: {last}")
        os.chmod(partial, 0o700)  # the linker creates its output under the umask, which may be 0
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def build(directory: Path | None = None, *, announce: bool = True, retry: bool = False) -> Path:
    """Compiles ``kernels/lstm.cc`` unless a library built from it for this machine is cached.

    A failed build is remembered beside where the library would be (``<library>.failed``, holding
    the compiler's last line), so later calls fail at once instead of compiling again on every
    run; ``retry`` (``tfseq build-kernels``) compiles again.

    Args:
        directory: Cache directory; defaults to :func:`cache_dir`, or, where that cannot be
            created, a private directory under the system's temporary directory.
        announce: Log one line before compiling (what, why, about how long).
        retry: Compile even where an earlier build for this machine failed.

    Returns:
        The path of the shared library.

    Raises:
        RuntimeError: when there is no C++ compiler, no ``fcntl`` (native Windows), the build
            fails, or the cache directory is not private to this user.
        OSError: when no cache directory can be created.
    """
    if fcntl is None:
        raise RuntimeError("this platform has no fcntl (native Windows): the fused kernel is not built here")
    compiler = shutil.which(os.environ.get("CXX", "g++"))
    if compiler is None:
        raise RuntimeError("no C++ compiler (g++, or $CXX) on PATH")
    candidates = _directories(directory)
    for number, folder in enumerate(candidates):
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            break
        except OSError:
            if number == len(candidates) - 1:
                raise
    _check_private(folder)
    target = folder / library_name(compiler)
    # One build per cache directory at a time: the others wait here, then find the library.
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        failed = target.with_name(target.name + ".failed")
        if not target.exists():
            if failed.exists() and not retry:
                said = failed.read_text(encoding="utf-8", errors="replace").strip()
                raise RuntimeError(f"{said} (an earlier build on this machine; 'tfseq build-kernels' tries again)")
            if announce:
                _log.warning(
                    "tfseq: building the fused LSTM kernel for this CPU with %s (once per machine, about "
                    "%d s; 'tfseq build-kernels' does it ahead of time, TFSEQ_FUSED_LSTM=0 skips it)",
                    Path(compiler).name, BUILD_SECONDS_HINT)
            try:
                _compile(compiler, target)
            except RuntimeError as error:
                write_text_atomic(failed, (str(error).splitlines() or ["the build failed"])[0])
                raise
            failed.unlink(missing_ok=True)
    return target


@functools.cache
def ops() -> ModuleType | None:
    """The loaded op library, or None where it is switched off or cannot be built here."""
    if os.environ.get(SWITCH, "1") == "0":
        return None
    if fcntl is None:
        _log.info("tfseq: LSTM layers use the gate-by-gate loop (no fcntl on this platform)")
        return None
    try:
        return load_library(build())
    except (OSError, RuntimeError, subprocess.SubprocessError, tf.errors.OpError) as error:
        _log.warning("tfseq: LSTM layers use the gate-by-gate loop: the fused kernel did not build or load (%s)",
                     str(error).splitlines()[0] if str(error) else type(error).__name__)
        return None


def fused_lstm(
    projected: tf.Tensor,
    bias: tf.Tensor,
    h0: tf.Tensor,
    c0: tf.Tensor,
    kernel: tf.Tensor,
    mask: tf.Tensor | None = None,
    *,
    return_sequences: bool,
    zero_output_for_mask: bool = False,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Runs the recurrence over ``projected`` (``[steps, batch, 4 units]``, ``inputs @ kernel``).

    Args:
        projected: Each step's input product, time-major, float32.
        bias: The cell's bias ``[4 units]`` (zeros for a cell without one).
        h0: Initial output state ``[batch, units]``.
        c0: Initial cell state ``[batch, units]``.
        kernel: The recurrent kernel ``[units, 4 units]``.
        mask: Optional ``[steps, batch]`` booleans, Keras' semantics: at a masked step the states
            carry over and the output repeats the previous one (zeros before the first step).
        return_sequences: Whether every step's output is wanted, or only the last.
        zero_output_for_mask: Masked steps output zeros instead.

    Returns:
        ``(outputs, h_last, c_last)``: ``outputs`` is ``[steps, batch, units]`` with
        ``return_sequences``, else the last output ``[batch, units]``; ``h_last`` and ``c_last``
        are the final states.
    """
    library = ops()
    if library is None:
        raise RuntimeError(f"the fused LSTM op is switched off ({SWITCH}=0) or does not build here; see ops()")
    workers = threads()
    mask = tf.zeros([0], tf.bool) if mask is None else tf.cast(mask, tf.bool)

    @tf.custom_gradient
    def run(
        projected: tf.Tensor, bias: tf.Tensor, h0: tf.Tensor, c0: tf.Tensor, kernel: tf.Tensor
    ) -> tuple[tuple[tf.Tensor, tf.Tensor, tf.Tensor], Callable[..., Any]]:
        h_seq, c_seq, gates, h_last, c_last, out_seq, out_last = library.tfseq_lstm(
            projected, bias, h0, c0, kernel, mask, zero_output_for_mask=zero_output_for_mask,
            threads=workers)

        def grad(d_outputs: tf.Tensor | None, d_h_last: tf.Tensor | None, d_c_last: tf.Tensor | None) -> Any:
            # The backward op takes every step's output gradient, or only the last output's when
            # only that is used: no dense zeros for the steps in between.
            if d_outputs is None:
                d_outputs = tf.zeros_like(out_seq if return_sequences else out_last)
            return library.tfseq_lstm_grad(
                h0, c0, kernel, h_seq, c_seq, gates, mask, d_outputs,
                tf.zeros_like(h0) if d_h_last is None else d_h_last,
                tf.zeros_like(c0) if d_c_last is None else d_c_last,
                zero_output_for_mask=zero_output_for_mask, threads=workers)

        return (out_seq if return_sequences else out_last, h_last, c_last), grad

    return run(projected, bias, h0, c0, kernel)
