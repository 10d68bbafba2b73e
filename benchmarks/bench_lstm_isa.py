"""The fused LSTM kernel on an AVX2-only CPU, emulated on this one: per-epoch training speed by instruction set.

tfseq builds its fused LSTM kernel with ``-march=native``; on an AVX-512 machine that is the
AVX-512 build. To see what an AVX2-only machine gets, this script also builds the kernel for
``x86-64-v3`` (AVX2 + FMA, no AVX-512) into a cache of its own, and runs PyTorch with its
kernels held to AVX2 (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``,
``MKL_ENABLE_INSTRUCTIONS=AVX2``). TensorFlow's own oneDNN ops are held to AVX2 too in the AVX2
runs. Each configuration trains LSTM-128 (20 steps, 15 features, batch 128, float32) for a few
epochs in a fresh process, after a warm-up (which also builds the kernel), in alternating rounds;
the best epoch counts. Writes ``benchmarks/lstm_isa_results.json``.

    python benchmarks/bench_lstm_isa.py [--sequences 20000] [--epochs 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def tfseq_epochs(march: str | None, cache: str | None, n: int, epochs: int) -> list[float]:
    """Sequences/s per epoch of tfseq's LSTM-128 with the kernel built for ``march`` (None: native)."""
    if cache:
        os.environ["TFSEQ_CACHE_DIR"] = cache
    sys.path.insert(0, str(HERE))
    from tfseq.training.threads import configure_threads

    configure_threads()
    from tfseq.models import fused_lstm

    if march is not None:
        fused_lstm._arch_flags = lambda: [f"-march={march}"]  # noqa: SLF001  (the experiment)
    import run as suite

    rates = suite.keras_training("lstm", False, 128, n, 20, 15, 128, "float32", False, epochs)
    if fused_lstm.ops() is None:
        raise RuntimeError("the fused kernel did not load")
    return rates


def kernel_ops(march: str | None, cache: str | None, batch: int = 128, steps: int = 20, units: int = 128,
               seconds: float = 3.0) -> dict[str, float]:
    """Milliseconds per call of the fused op forward and backward alone, built for ``march``, and
    the GFLOP/s of the forward's recurrent products (``steps`` x ``[batch, units] @ [units, 4 units]``)."""
    if cache:
        os.environ["TFSEQ_CACHE_DIR"] = cache
    from tfseq.training.threads import configure_threads

    configure_threads()
    import numpy as np
    import tensorflow as tf

    from tfseq.models import fused_lstm

    if march is not None:
        fused_lstm._arch_flags = lambda: [f"-march={march}"]  # noqa: SLF001  (the experiment)
    library, workers = fused_lstm.ops(), fused_lstm.threads()
    rng = np.random.default_rng(0)
    projected = tf.constant(rng.normal(size=(steps, batch, 4 * units)).astype(np.float32))
    bias = tf.zeros([4 * units])
    h0 = c0 = tf.zeros([batch, units])
    kernel = tf.constant(rng.normal(scale=0.05, size=(units, 4 * units)).astype(np.float32))
    mask = tf.zeros([0], tf.bool)

    def forward() -> Any:
        return library.tfseq_lstm(projected, bias, h0, c0, kernel, mask, threads=workers)

    h_seq, c_seq, gates, h_last, c_last, out_seq, out_last = forward()
    d_out = tf.ones_like(out_last)

    def backward() -> Any:
        return library.tfseq_lstm_grad(h0, c0, kernel, h_seq, c_seq, gates, mask, d_out, tf.zeros_like(h0),
                                       tf.zeros_like(c0), threads=workers)

    def per_call(fn: Any) -> float:
        fn()
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            calls += 1
        return (time.perf_counter() - start) / calls * 1e3

    forward_ms, backward_ms = per_call(forward), per_call(backward)
    flops = 2.0 * steps * batch * units * 4 * units
    return {"forward_ms": forward_ms, "backward_ms": backward_ms, "forward_gemm_gflops": flops / forward_ms / 1e6}


def torch_products(batch: int = 128, steps: int = 20, units: int = 128, seconds: float = 3.0) -> dict[str, float]:
    """The forward's recurrent products alone in PyTorch (its BLAS), GFLOP/s."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    h = torch.randn(batch, units)
    kernel = torch.randn(units, 4 * units) * 0.05

    def forward() -> None:
        for _ in range(steps):
            torch.mm(h, kernel)

    forward()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        forward()
        calls += 1
    ms = (time.perf_counter() - start) / calls * 1e3
    return {"products_ms": ms, "gemm_gflops": 2.0 * steps * batch * units * 4 * units / ms / 1e6}


def torch_epochs(n: int, epochs: int) -> list[float]:
    sys.path.insert(0, str(HERE))
    import run as suite

    return suite.torch_training("lstm", False, 128, n, 20, 15, 128, epochs)


def _isolated(env: dict[str, str], fn: Any, *args: Any) -> Any:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        sys.path.insert(0, str(HERE))
        import run as suite

        return suite._isolated(fn, *args)  # noqa: SLF001
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=HERE / "lstm_isa_results.json")
    parser.add_argument("--ops", action="store_true",
                        help="only the fused ops forward / backward per build and PyTorch's products per ISA")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import bench_commands

    if args.ops:
        avx2 = str(Path(tempfile.gettempdir()) / "tfseq-kernel-x86-64-v3")
        rows: dict[str, list[dict[str, float]]] = {}
        for r in range(args.rounds):
            order = [("kernel native", {}, kernel_ops, (None, None)),
                     ("kernel x86-64-v3 (AVX2)", {}, kernel_ops, ("x86-64-v3", avx2)),
                     ("PyTorch mm, default", {}, torch_products, ()),
                     ("PyTorch mm, AVX2", AVX2_ENV, torch_products, ())]
            for name, env, fn, extra in (order if r % 2 == 0 else order[::-1]):
                rows.setdefault(name, []).append(_isolated(env, fn, *extra))
                print(f"round {r + 1} {name}: {rows[name][-1]}", flush=True)
        results = json.loads(args.json.read_text()) if args.json.exists() else {}
        results["ops"] = {"date": time.strftime("%Y-%m-%d"), "batch": 128, "steps": 20, "units": 128, "rounds": rows}
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        return 0

    avx2_cache = str(Path(tempfile.gettempdir()) / "tfseq-kernel-x86-64-v3")  # kept: one build per machine
    configs = {
        "tfseq, kernel -march=native (AVX-512)": ({}, tfseq_epochs, (None, None)),
        "tfseq, kernel -march=x86-64-v3 (AVX2), TF oneDNN AVX2": (
            {"ONEDNN_MAX_CPU_ISA": "AVX2"}, tfseq_epochs, ("x86-64-v3", avx2_cache)),
        "PyTorch, default (AVX-512)": ({}, torch_epochs, ()),
        "PyTorch, held to AVX2": (AVX2_ENV, torch_epochs, ()),
    }
    runs: dict[str, list[list[float]]] = {name: [] for name in configs}
    for r in range(args.rounds):
        for name, (env, fn, extra) in (configs.items() if r % 2 == 0 else reversed(configs.items())):
            rates = _isolated(env, fn, *extra, args.sequences, args.epochs)
            runs[name].append(rates)
            print(f"round {r + 1} {name}: best epoch {max(rates):,.0f} sequences/s", flush=True)
    best = {name: max(rate for run in values for rate in run) for name, values in runs.items()}
    results = {"date": time.strftime("%Y-%m-%d"), "machine": bench_commands.machine(), "sequences": args.sequences,
               "epochs": args.epochs, "rounds": args.rounds, "best": best, "runs": runs}
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    return 0


def render(results: dict[str, Any]) -> str:
    best = results["best"]
    lines = ["| configuration | best epoch (sequences/s) | each round's best | vs PyTorch at the same ISA |",
             "|---|---:|---:|---:|"]
    for name, rate in best.items():
        other = best["PyTorch, held to AVX2"] if "AVX2" in name else best["PyTorch, default (AVX-512)"]
        rounds = ", ".join(f"{max(run):,.0f}" for run in results["runs"][name])
        lines.append(f"| {name} | {rate:,.0f} | {rounds} | {rate / other:.2f}x |")
    ops = results.get("ops")
    if ops:  # `--ops`: the fused op alone per build, and PyTorch's matrix products per ISA
        lines += ["", f"The ops alone (batch {ops['batch']}, {ops['steps']} steps, {ops['units']} units; each round "
                  "in its own process; milliseconds per call, each round's figure):", "",
                  "| build / library | forward (ms) | backward (ms) | forward's products (GFLOP/s) |",
                  "|---|---:|---:|---:|"]
        def each(runs: list[dict[str, float]], key: str, digits: int) -> str:
            return ", ".join(f"{run[key]:.{digits}f}" for run in runs)

        for name, runs in ops["rounds"].items():
            if "forward_ms" in runs[0]:
                lines.append(f"| {name} | {each(runs, 'forward_ms', 2)} | {each(runs, 'backward_ms', 2)} "
                             f"| {each(runs, 'forward_gemm_gflops', 0)} |")
            else:
                lines.append(f"| {name}: the same products alone | {each(runs, 'products_ms', 2)} | - "
                             f"| {each(runs, 'gemm_gflops', 0)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
