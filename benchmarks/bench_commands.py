"""Speed where users feel it: whole `tfseq` commands with default settings against PyTorch.

Every figure is a whole process as a user runs it (``tfseq train``, ``tfseq export``,
``tfseq predict``, ``tfseq --help``) or a runtime in a fresh process of its own, measured in
one run on one machine, tfseq and PyTorch alternating round by round (this VM's speed drifts by
a third over minutes). Writes ``benchmarks/commands_results.json``; the documentation renders
its table with :func:`render` (``<!-- benchmarks: commands -->``, docs/hooks/benchmarks.py).

- ``tfseq train`` of the default model (BiLSTM-64 with convolutional and summary branches and a
  ridge-fitted linear path, :mod:`tfseq.training.defaults`), LSTM-128 (``--no-bidirectional
  --units 128``) and BiLSTM-128 (``--units 128``), 3 epochs at batch 128, from CSV and Parquet,
  against ``benchmarks/torch_train.py`` (the same network and steps in PyTorch). tfseq's
  processes run through this file's ``--phases`` harness: ``tfseq``'s own ``main`` with timers
  around its phases (start-up, read, TensorFlow start, build, fused-kernel build, fit, evaluate,
  baselines, plots, reference statistics, save) and a callback timing each epoch.
- ``tfseq export`` with default flags of the LSTM-128 RUN and of the default model's RUN, then the
  TF Lite dynamic-range, float32 and int8 files, the ONNX file (onnxruntime) and PyTorch eager on
  the PyTorch script's model, batched and at batch 1.
- ``tfseq predict`` (file in, CSV out) on a large Parquet file with the recommended artifact,
  against that runtime's own batched throughput.
- The CPU's instruction sets (AVX2, AVX-512, AMX) from /proc/cpuinfo.

    python benchmarks/bench_commands.py              # 20,000 devices, 2 rounds (about 25 min on 2 cores)
    python benchmarks/bench_commands.py --quick      # tiny sizes: checks that it runs (a few minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA_FLAGS = ["--id-col", "device_id", "--time-col", "cycle", "--label-col", "status"]
#: label -> (tfseq train flags, torch_train.py flags)
MODELS = {
    "default": ([], []),
    "LSTM-128": (["--no-bidirectional", "--units", "128"], ["--no-bidirectional", "--units", "128"]),
    "BiLSTM-128": (["--units", "128"], ["--units", "128"]),
}
ISA = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


# ---------------------------------------------------------------------------------------------
# The --phases harness: `tfseq` with timers, in the child process
# ---------------------------------------------------------------------------------------------

class _Timer:
    """Exclusive time per phase: a phase called inside another is taken out of the outer one."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.stack: list[float] = []
        self.events: list[tuple[str, float]] = []

    def _add(self, name: str, elapsed: float) -> None:
        inner = self.stack.pop()
        self.totals[name] = self.totals.get(name, 0.0) + elapsed - inner
        if self.stack:
            self.stack[-1] += elapsed

    def wrap(self, fn: Callable, name: str) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.stack.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(name, time.perf_counter() - start)

        return timed

    def wrap_iter(self, fn: Callable, name: str) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Iterator:
            iterator = iter(fn(*args, **kwargs))
            while True:
                self.stack.append(0.0)
                start = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    self._add(name, time.perf_counter() - start)
                    return
                self._add(name, time.perf_counter() - start)
                yield item

        return timed


#: module -> [(attribute, phase)]; a phase ending in "*" times a generator's steps
PHASES = {
    "tfseq.cli.train": [("load_split_from_args", "read data")],
    "tfseq.startup": [("start_tensorflow", "start TensorFlow")],
    "tfseq.models.builders": [("build_model", "build model")],
    "tfseq.models.fused_lstm": [("_compile", "fused kernel build"), ("load_library", "fused kernel load")],
    "tfseq.training.fit": [("fit", "fit")],
    "tfseq.workflows.train": [("_threshold_metrics", "evaluate"), ("_baselines", "baselines")],
    "tfseq.plots": [("plot_training_curves", "plots"), ("plot_confusion_matrices", "plots")],
    "tfseq.analysis.reference": [("compute_reference", "reference statistics")],
    "tfseq.run": [("save_run", "save RUN")],
    "tfseq.workflows.predict": [("check_prediction_inputs", "check inputs"), ("_load", "parse blocks"),
                                ("_predict", "inference"), ("_frame", "predictions table"),
                                ("sequence_blocks", "read file*")],
    "tfseq.export.runtimes": [("load_runner", "load artifact")],
}


def _patch(module: Any, timer: _Timer, epochs: list[dict[str, float]]) -> None:
    for attribute, name in PHASES.get(module.__name__, []):
        fn = getattr(module, attribute, None)
        if fn is None:
            continue
        wrapped = timer.wrap_iter(fn, name[:-1]) if name.endswith("*") else timer.wrap(fn, name)
        if module.__name__ == "tfseq.training.fit" and attribute == "fit":
            wrapped = _fit_with_epochs(wrapped, timer, epochs)
        setattr(module, attribute, wrapped)


def _fit_with_epochs(fit: Callable, timer: _Timer, epochs: list[dict[str, float]]) -> Callable:
    """``fit`` with a callback timing each epoch's training part, and the model's predict timed after."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            epochs.append({"begin": time.perf_counter()})

        def on_test_begin(self, logs: Any = None) -> None:
            epochs[-1].setdefault("trained", time.perf_counter())

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            epochs[-1]["end"] = time.perf_counter()

    def timed_fit(model: Any, *args: Any, callbacks: Any = (), **kwargs: Any) -> Any:
        history = fit(model, *args, callbacks=[*callbacks, EpochTimer()], **kwargs)
        object.__setattr__(model, "predict", timer.wrap(model.predict, "evaluate"))
        return history

    return timed_fit


def _install_phases(timer: _Timer, epochs: list[dict[str, float]]) -> None:
    """Patches each module of :data:`PHASES` right after it is first imported, so no import moves."""
    import importlib.abc
    import importlib.util

    class Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
            if fullname not in PHASES:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(fullname)
            finally:
                sys.meta_path.insert(0, self)
            if spec is None or spec.loader is None:
                return spec
            loader = spec.loader
            execute = loader.exec_module

            def exec_module(module: Any) -> None:
                execute(module)
                _patch(module, timer, epochs)

            loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, Hook())


def phases_child(record: Path, argv: list[str]) -> int:
    timer, epochs = _Timer(), []  # type: ignore[var-annotated]
    _install_phases(timer, epochs)
    entered = time.time()
    from tfseq.cli.main import main

    imported = time.time()
    status = main(argv)
    finished = time.time()
    trained = [e["trained"] - e["begin"] for e in epochs if "trained" in e]
    record.write_text(json.dumps({"entered": entered, "imported": imported, "finished": finished,
                                  "status": status, "phases": timer.totals, "epoch_train_seconds": trained}))
    from tfseq.cli.main import leave

    leave(status)  # as the console script ends: phase "exit" is what a user waits for after the work


# ---------------------------------------------------------------------------------------------
# The parent: processes, rounds, results
# ---------------------------------------------------------------------------------------------

def isa_flags() -> dict[str, bool]:
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {name: name in flags for name in ISA}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"cpu": cpu, "cores": os.cpu_count(), "isa": isa_flags(), "python": platform.python_version(),
            **{key: version(name) for key, name in (("tensorflow", "tensorflow"), ("keras", "keras"),
                                                    ("torch", "torch"), ("onnxruntime", "onnxruntime"),
                                                    ("litert", "ai-edge-litert"))},
            "load_average_start": os.getloadavg()[0]}


def _tfseq() -> list[str]:
    script = Path(sys.executable).parent / "tfseq"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tfseq"]


def _run(command: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``command`` as a fresh process; its output goes to ``log``."""
    start = time.perf_counter()
    with open(log, "ab") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}; see {log}")
    return seconds


def _phased(argv: list[str], work: Path, log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``tfseq ARGV`` through the --phases harness: wall time and the phases' breakdown."""
    record = work / f"phases-{time.monotonic_ns()}.json"
    spawned = time.time()
    wall = _run([sys.executable, __file__, "--phases", str(record), "--", *argv], log, env)
    ended = time.time()
    child = json.loads(record.read_text())
    phases = {"start-up (Python, tfseq CLI imports)": child["imported"] - spawned, **child["phases"]}
    inside = child["finished"] - child["imported"]
    phases["other"] = inside - sum(child["phases"].values())
    phases["exit"] = ended - child["finished"]
    return {"seconds": wall, "phases": phases, "epoch_train_seconds": child["epoch_train_seconds"]}


def make_data(folder: Path, devices: int, seed: int = 0, chunk: int = 100_000, csv: bool = True) -> dict[str, Path]:
    """The demo's synthetic devices (20 cycles x 15 parameters) as CSV (unless told not) and Parquet, in chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tfseq.data.synthetic import make_semiconductor_data, to_long_frame

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / f"devices-{devices}.csv", "parquet": folder / f"devices-{devices}.parquet"}
    writer = None
    for k, first in enumerate(range(0, devices, chunk)):
        frame = to_long_frame(make_semiconductor_data(min(chunk, devices - first), seed=seed + k))
        if k:
            frame["device_id"] = f"L{k}-" + frame["device_id"].astype(str)
        if csv:
            frame.to_csv(paths["csv"], index=False, mode="a" if k else "w", header=not k)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(paths["parquet"], table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return paths if csv else {"parquet": paths["parquet"]}


def inference_child(kind: str, path: Path, devices: int, batch: int) -> int:
    """One runtime's batched and batch-1 speed on ``devices`` synthetic sequences; JSON on stdout."""
    import numpy as np

    from tfseq.data.synthetic import make_semiconductor_data
    from tfseq.evaluation import latency

    x = make_semiconductor_data(max(devices, 64), seed=1).x.astype(np.float32)
    predict: Callable[[np.ndarray], Any]
    if kind == "pytorch":
        import torch

        sys.path.insert(0, str(HERE))
        from torch_train import Net

        saved = torch.load(path, weights_only=False)
        model = Net(saved["features"], saved["units"], saved["bidirectional"])
        model.load_state_dict(saved["state"])
        model.eval()
        mean, std = saved["mean"], saved["std"]

        def predict(a: np.ndarray) -> Any:
            with torch.inference_mode():
                return torch.sigmoid(model(torch.from_numpy((a - mean) / std))).numpy()
    else:
        from tfseq.export import load_runner

        predict = load_runner(path).predict
    row: dict[str, Any]
    try:
        row = dict(latency(predict, x, batch_size=batch))
    except Exception as exc:  # noqa: BLE001  (a runtime that cannot run the file is a result too)
        row = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    else:
        row["sequences_per_second"] = 1e6 / row["batched_us_per_sequence"]
    print(json.dumps(row))
    return 0


def _infer(kind: str, path: Path, devices: int, batch: int, log: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--infer", kind, str(path), str(devices), str(batch)],
                          capture_output=True, text=True)
    with open(log, "a") as out:
        out.write(done.stderr)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def train_section(data: dict[str, Path], work: Path, epochs: int, rounds: int, log: Path,
                  models: dict[str, tuple[list[str], list[str]]]) -> dict[str, Any]:
    """tfseq train and the PyTorch script, each model and format, alternating who goes first."""
    rows: dict[str, dict[str, Any]] = {}
    common = ["--epochs", str(epochs), "--batch-size", "128"]
    for r in range(rounds):
        for fmt, path in data.items():
            for label, (tfseq_flags, torch_flags) in models.items():
                key = f"{label}, {fmt}"
                row = rows.setdefault(key, {"model": label, "format": fmt, "tfseq": [], "pytorch": []})
                out = work / f"run-{r}-{fmt}-{list(rows).index(key)}"
                torch_out = work / f"torch-{r}-{fmt}-{list(rows).index(key)}"

                def tfseq_run(path: Path = path, out: Path = out, flags: list[str] = tfseq_flags) -> dict[str, Any]:
                    return _phased(["train", str(path), *DATA_FLAGS, "--out", str(out), *flags, *common,
                                    "--patience", str(epochs)], work, log)

                def torch_run(path: Path = path, out: Path = torch_out, flags: list[str] = torch_flags) -> dict[str, Any]:
                    seconds = _run([sys.executable, str(HERE / "torch_train.py"), str(path), "--out", str(out),
                                    *flags, *common], log)
                    recorded = json.loads((out / "metrics.json").read_text())
                    return {"seconds": seconds, "epoch_train_seconds": [e["train_seconds"] for e in recorded["epochs"]]}

                order = [("tfseq", tfseq_run), ("pytorch", torch_run)]
                for side, run in order if r % 2 == 0 else order[::-1]:
                    row[side].append(run())
                row["train_sequences"] = json.loads((out / "metrics.json").read_text())["train_sequences"]
                row["run_dir"], row["torch_dir"] = str(out), str(torch_out)
                t, p = row["tfseq"][-1]["seconds"], row["pytorch"][-1]["seconds"]
                print(f"train {label}, {fmt}, round {r + 1}: tfseq {t:.1f} s, PyTorch {p:.1f} s "
                      f"({p / t:.2f}x)", flush=True)
    for row in rows.values():
        n = row["train_sequences"]
        tfseq_s = [run["seconds"] for run in row["tfseq"]]
        torch_s = [run["seconds"] for run in row["pytorch"]]
        row["tfseq_seconds"], row["pytorch_seconds"] = min(tfseq_s), min(torch_s)
        row["speedup"] = min(torch_s) / min(tfseq_s)  # > 1: tfseq is faster
        row["round_speedups"] = [p / t for t, p in zip(tfseq_s, torch_s)]
        tfseq_epoch = max(n / s for run in row["tfseq"] for s in run["epoch_train_seconds"])
        torch_epoch = max(n / s for run in row["pytorch"] for s in run["epoch_train_seconds"])
        row["tfseq_epoch_rate"], row["pytorch_epoch_rate"] = tfseq_epoch, torch_epoch
        row["epoch_speedup"] = tfseq_epoch / torch_epoch
        best = min(row["tfseq"], key=lambda run: run["seconds"])
        row["phases"] = best["phases"]
    return {"epochs": epochs, "batch": 128, "rounds": rounds, "rows": rows}


def kernel_build_section(data: Path, work: Path, log: Path) -> dict[str, Any]:
    """The first ``tfseq train`` on a new machine: an empty kernel cache, what it prints, its phases."""
    cache = work / "fresh-kernel-cache"
    env = {**os.environ, "TFSEQ_CACHE_DIR": str(cache)}
    before = log.stat().st_size if log.exists() else 0
    result = _phased(["train", str(data), *DATA_FLAGS, "--out", str(work / "first-run"), "--no-bidirectional",
                      "--units", "128", "--epochs", "1", "--batch-size", "128"], work, log, env)
    with open(log, "rb") as handle:
        handle.seek(before)
        said = [line.strip() for line in handle.read().decode(errors="replace").splitlines()
                if "fused LSTM kernel" in line]
    return {**result, "message": said[0] if said else None}


def export_section(run_dir: Path, torch_dir: Path, work: Path, rounds: int, devices: int, log: Path,
                   tag: str = "") -> dict[str, Any]:
    """``tfseq export`` with defaults (timed), then every artifact's speed in its runtime, alternating.

    The exports go to ``work/export{tag}-{round}`` and ``work/export{tag}-quantized``."""
    export_seconds = []
    for r in range(rounds):
        export_seconds.append(_run([*_tfseq(), "export", str(run_dir), "--out", str(work / f"export{tag}-{r}")], log))
        print(f"export{tag} round {r + 1}: {export_seconds[-1]:.1f} s", flush=True)
    quantized = work / f"export{tag}-quantized"
    _run([*_tfseq(), "export", str(run_dir), "--out", str(quantized), "--format", "tflite",
          "--quantize", "dynamic,int8", "--allow-degraded"], log)
    manifest = json.loads((work / f"export{tag}-0" / "manifest.json").read_text())
    name = next(a["path"] for a in manifest["artifacts"] if a["format"] == "onnx").removesuffix(".onnx")
    artifacts = {"TF Lite dynamic-range (LiteRT)": ("litert", quantized / f"{name}-dynamic.tflite"),
                 "TF Lite int8 (LiteRT)": ("litert", quantized / f"{name}-int8.tflite"),
                 "TF Lite float32 (LiteRT)": ("litert", work / f"export{tag}-0" / f"{name}.tflite"),
                 "onnxruntime": ("onnx", work / f"export{tag}-0" / f"{name}.onnx"),
                 "PyTorch eager": ("pytorch", torch_dir / "model.pt")}
    rows: dict[str, list[dict[str, Any]]] = {label: [] for label in artifacts}
    for r in range(rounds):
        for label, (kind, path) in (artifacts.items() if r % 2 == 0 else reversed(artifacts.items())):
            rows[label].append(_infer(kind, path, devices, 1024, log))
    best: dict[str, dict[str, Any]] = {}
    for label, runs in rows.items():
        good = [run for run in runs if "error" not in run]
        best[label] = dict(max(good, key=lambda run: run["sequences_per_second"]) if good else runs[-1])
        best[label]["rounds"] = [dict(run) for run in runs]
        shown = (f"{best[label]['sequences_per_second']:,.0f}/s, batch-1 {best[label]['single_p50_us']:.0f} us"
                 if good else best[label]["error"])
        print(f"infer{tag} {label}: {shown}", flush=True)
    return {"artifact_name": name, "export_seconds": min(export_seconds), "export_seconds_all": export_seconds,
            "batch": 1024, "rows": best}


def predict_section(run_dir: Path, artifacts: dict[str, Path], data: Path, devices: int, work: Path,
                    log: Path) -> dict[str, Any]:
    """``tfseq predict`` whole process on the large file, per artifact, against the runtime's batched rate."""
    rows: dict[str, dict[str, Any]] = {}
    for label, path in artifacts.items():
        out = work / f"predict-{len(rows)}.csv"
        result = _phased(["predict", str(path), str(data), "--out", str(out), "--overwrite"], work, log)
        kind = "pytorch" if label == "PyTorch eager" else "onnx" if path.suffix == ".onnx" else "litert"
        runtime = _infer(kind, path, 8192, 4096, log) if path.suffix in (".onnx", ".tflite") else {}
        inside = result["seconds"] - result["phases"]["start-up (Python, tfseq CLI imports)"] - result["phases"]["exit"]
        rows[label] = {**result, "devices_per_second": devices / result["seconds"],
                       "devices_per_second_in_command": devices / inside,
                       "runtime_devices_per_second": runtime.get("sequences_per_second")}
        share = (f", {rows[label]['devices_per_second'] / runtime['sequences_per_second']:.0%} of the runtime's "
                 f"{runtime['sequences_per_second']:,.0f}/s" if runtime.get("sequences_per_second") else "")
        print(f"predict {label}: {result['seconds']:.1f} s, {rows[label]['devices_per_second']:,.0f} devices/s{share}",
              flush=True)
    return {"devices": devices, "file": data.name, "file_mb": round(data.stat().st_size / 1e6, 1), "rows": rows}


def help_section(repeats: int) -> dict[str, Any]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([*_tfseq(), "--help"], stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return {"seconds": min(times), "median_seconds": _median(times), "all": times}


def floor_section(quick: bool) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import run as suite

    return suite.matmul_peak(256 if quick else 2048, 0.2 if quick else 2.0)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

#: (results key, model) of the inference sections
INFERENCE = (("inference", "LSTM-128"), ("inference_default", "default model"))
TARGETS = {"train_whole": 1.2, "train_epoch": 1.5, "floor": 0.75, "artifact_batched": 1.5, "artifact_single_us": 50.0,
           "predict_share": 0.5, "help_seconds": 0.5}


def _lstm_flops(units: int, features: int = 15, steps: int = 20, bidirectional: bool = False) -> float:
    return 2.0 * steps * 4 * units * (units + features) * (2 if bidirectional else 1)


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each of the issue's targets that the results answer."""
    out = []
    rows = results["train"]["rows"]
    for label in ("LSTM-128", "BiLSTM-128"):
        mine = [row for row in rows.values() if row["model"] == label]
        if mine:
            text = ", ".join(f"{row['format']} {row['speedup']:.2f}x" for row in mine)
            out.append((f"`tfseq train` {label} whole process >= {TARGETS['train_whole']}x the PyTorch script", text,
                        all(row["speedup"] >= TARGETS["train_whole"] for row in mine)))
            text = ", ".join(f"{row['format']} {row['epoch_speedup']:.2f}x" for row in mine)
            out.append((f"{label} per epoch >= {TARGETS['train_epoch']}x PyTorch", text,
                        all(row["epoch_speedup"] >= TARGETS["train_epoch"] for row in mine)))
    peak = results.get("matmul_peak", {}).get("fp32_gflops")
    lstm = [row for row in rows.values() if row["model"] == "LSTM-128"]
    if peak and lstm:
        rate = max(row["tfseq_epoch_rate"] for row in lstm)
        share = 3 * _lstm_flops(128) * rate / (peak * 1e9)
        out.append((f"LSTM-128 training >= {TARGETS['floor']:.0%} of the fp32 floor",
                    f"{share:.0%} ({rate:,.0f} sequences/s, fp32 GEMM peak {peak:.0f} GFLOP/s)",
                    share >= TARGETS["floor"]))
    for key, model in INFERENCE:
        inference = results.get(key)
        if not inference:
            continue
        torch_rate = inference["rows"]["PyTorch eager"].get("sequences_per_second")
        dynamic = inference["rows"]["TF Lite dynamic-range (LiteRT)"]
        if torch_rate and "error" not in dynamic:
            ratio = dynamic["sequences_per_second"] / torch_rate
            out.append((f"{model}: TF Lite dynamic-range >= {TARGETS['artifact_batched']}x PyTorch eager batched",
                        f"{ratio:.2f}x", ratio >= TARGETS["artifact_batched"]))
            out.append((f"{model}: its batch-1 p50 <= {TARGETS['artifact_single_us']:.0f} us",
                        f"{dynamic['single_p50_us']:.0f} us", dynamic["single_p50_us"] <= TARGETS["artifact_single_us"]))
    predict = results.get("predict")
    if predict:
        for label, row in predict["rows"].items():
            if row.get("runtime_devices_per_second"):
                share = row["devices_per_second"] / row["runtime_devices_per_second"]
                out.append((f"`tfseq predict` ({label}) end to end >= {TARGETS['predict_share']:.0%} of the runtime's "
                            f"batched rate ({predict['devices']:,} devices)", f"{share:.0%}",
                            share >= TARGETS["predict_share"]))
    if "help" in results:
        out.append((f"`tfseq --help` < {TARGETS['help_seconds']} s", f"{results['help']['seconds']:.2f} s",
                    results["help"]["seconds"] < TARGETS["help_seconds"]))
    first = results.get("first_train")
    if first:
        out.append(("the first `tfseq train` says when it builds the fused kernel",
                    f"\"{first['message']}\"" if first.get("message") else "nothing said", bool(first.get("message"))))
    return out


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    isa = ", ".join(name.upper().replace("_", "-") for name, has in m["isa"].items() if has) or "none recorded"
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, instruction sets {isa}; Python {m['python']}, "
             f"TensorFlow {m['tensorflow']}, Keras {m['keras']}, PyTorch {m['torch']}, onnxruntime "
             f"{m['onnxruntime']}, LiteRT {m['litert']}; load average {m['load_average_start']:.1f} at the start, "
             f"{m.get('load_average_end', float('nan')):.1f} at the end (2 cores shared with other work). "
             f"{results['size']}", ""]
    t = results["train"]
    lines += [f"`tfseq train` whole process against `benchmarks/torch_train.py` (the same network, split, "
              f"normalisation, class weights and validation each epoch in PyTorch), {t['epochs']} epochs at batch "
              f"{t['batch']}, best of {t['rounds']} alternating rounds; speed-up > 1 means tfseq is faster:", "",
              "| model, data | tfseq | PyTorch script | speed-up | rounds | tfseq epoch (seq/s) | PyTorch epoch "
              "(seq/s) | per-epoch speed-up |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in t["rows"].items():
        spread = row["round_speedups"]
        lines.append(f"| {name} | {row['tfseq_seconds']:.1f} s | {row['pytorch_seconds']:.1f} s | {row['speedup']:.2f}x "
                     f"| {min(spread):.2f}-{max(spread):.2f}x | {row['tfseq_epoch_rate']:,.0f} "
                     f"| {row['pytorch_epoch_rate']:,.0f} | {row['epoch_speedup']:.2f}x |")
    names = list(t["rows"])
    phases = sorted({p for row in t["rows"].values() for p in row["phases"]},
                    key=lambda p: -max(row["phases"].get(p, 0) for row in t["rows"].values()))
    lines += ["", "Where `tfseq train`'s time goes (seconds, the fastest round of each):", "",
              "| phase | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for phase in phases:
        lines.append(f"| {phase} | " + " | ".join(f"{t['rows'][n]['phases'].get(phase, 0):.1f}" for n in names) + " |")
    first = results.get("first_train")
    if first:
        kernel = first["phases"].get("fused kernel build", 0.0)
        lines += ["", f"The first `tfseq train` on a new machine (empty kernel cache, LSTM-128, 1 epoch, CSV): "
                  f"{first['seconds']:.0f} s, of which {kernel:.0f} s build the fused LSTM kernel; it says: "
                  f"`{first.get('message') or 'nothing'}`."]
    for key, model in INFERENCE:
        inference = results.get(key)
        if not inference:
            continue
        torch_rate = inference["rows"]["PyTorch eager"].get("sequences_per_second")
        lines += ["", f"Inference of the {model} RUN's exports ({inference['artifact_name']}; `tfseq export` with "
                  f"default flags: {inference['export_seconds']:.0f} s whole process), batch {inference['batch']} and "
                  "batch 1, each runtime in its own process, best of the rounds (PyTorch eager runs the script's "
                  "network):", "",
                  "| runtime | devices/s | vs PyTorch eager | batch-1 p50 (us) | batch-1 p99 (us) |", "|---|---:|---:|---:|---:|"]
        for label, row in inference["rows"].items():
            if "error" in row:
                lines.append(f"| {label} | does not run: {row['error'][:120]} | | | |")
                continue
            ratio = f"{row['sequences_per_second'] / torch_rate:.2f}x" if torch_rate else "-"
            lines.append(f"| {label} | {row['sequences_per_second']:,.0f} | {ratio} | {row['single_p50_us']:.0f} "
                         f"| {row['single_p99_us']:.0f} |")
    predict = results.get("predict")
    if predict:
        lines += ["", f"`tfseq predict` whole process, file in, CSV out ({predict['devices']:,} devices, "
                  f"{predict['file']}, {predict['file_mb']} MB):", "",
                  "| artifact | seconds | devices/s | devices/s after start-up | runtime alone, batch 4096 | share |",
                  "|---|---:|---:|---:|---:|---:|"]
        for label, row in predict["rows"].items():
            runtime = row.get("runtime_devices_per_second")
            share = f"{row['devices_per_second'] / runtime:.0%}" if runtime else "-"
            lines.append(f"| {label} | {row['seconds']:.1f} | {row['devices_per_second']:,.0f} "
                         f"| {row['devices_per_second_in_command']:,.0f} | {f'{runtime:,.0f}' if runtime else '-'} "
                         f"| {share} |")
        first_row = next(iter(predict["rows"].values()))
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(first_row["phases"].items(), key=lambda kv: -kv[1]))
        lines += ["", f"Where its time goes ({next(iter(predict['rows']))}): {parts}."]
    if "help" in results:
        lines += ["", f"`tfseq --help`: {results['help']['seconds']:.2f} s (median {results['help']['median_seconds']:.2f} s)."]
    lines += ["", "Against the issue's targets:", "", "| target | measured | met |", "|---|---|:-:|"]
    lines += [f"| {name} | {measured} | {'yes' if met else '**no**'} |" for name, measured, met in targets(results)]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--phases"]:
        return phases_child(Path(argv[1]), argv[3:])
    if argv[:1] == ["--infer"]:
        return inference_child(argv[1], Path(argv[2]), int(argv[3]), int(argv[4]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that it runs")
    parser.add_argument("--devices", type=int, help="devices of the training file (default 20,000; quick 1,000)")
    parser.add_argument("--predict-devices", type=int,
                        help="devices of the large predict file (default 200,000; quick 5,000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 2; quick 1)")
    parser.add_argument("--epochs", type=int, help="epochs (default 3; quick 1)")
    parser.add_argument("--json", type=Path, default=HERE / "commands_results.json")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    quick = args.quick
    devices = args.devices or (1000 if quick else 20_000)
    predict_devices = args.predict_devices or (5000 if quick else 200_000)
    rounds = args.rounds or (1 if quick else 2)
    epochs = args.epochs or (1 if quick else 3)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    work = args.keep or Path(tempfile.mkdtemp(prefix="tfseq-bench-commands-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "quick": quick,
        "size": (f"Training file: {devices:,} devices x 20 cycles x 15 parameters; predict file: "
                 f"{predict_devices:,} devices{' (the issue asks for 1,000,000: reduced to fit the run)' if predict_devices < 1_000_000 else ''}."),
    }
    def save() -> None:  # after every section: a late failure keeps what was measured
        results["seconds"] = time.perf_counter() - started
        results["machine"]["load_average_end"] = os.getloadavg()[0]
        args.json.write_text(json.dumps(results, indent=2) + "\n")

    try:
        data = make_data(work / "data", devices)
        results["help"] = help_section(5)
        print(f"tfseq --help: {results['help']['seconds']:.2f} s", flush=True)
        results["matmul_peak"] = floor_section(quick)
        results["train"] = train_section(data, work, epochs, rounds, log, MODELS)
        save()
        results["first_train"] = kernel_build_section(data["csv"], work, log)
        lstm = results["train"]["rows"]["LSTM-128, csv"]
        results["inference"] = export_section(Path(lstm["run_dir"]), Path(lstm["torch_dir"]), work, rounds,
                                              4096 if not quick else 1024, log)
        save()
        default = results["train"]["rows"]["default, csv"]
        results["inference_default"] = export_section(Path(default["run_dir"]), Path(default["torch_dir"]), work,
                                                      rounds, 4096 if not quick else 1024, log, tag="-default")
        save()
        big = make_data(work / "big", predict_devices, seed=100, csv=False)["parquet"]
        name = results["inference"]["artifact_name"]
        artifacts = {"TF Lite dynamic-range": work / "export-quantized" / f"{name}-dynamic.tflite",
                     "onnxruntime": work / "export-0" / f"{name}.onnx", "RUN (Keras)": Path(lstm["run_dir"])}
        results["predict"] = predict_section(Path(lstm["run_dir"]), artifacts, big, predict_devices, work, log)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    save()
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
