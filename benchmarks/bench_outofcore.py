"""Out-of-core training: peak memory as the data grow, throughput against in-memory training, two workers.

A Parquet dataset of the study's data (20 cycles x 15 parameters, files of 100,000 devices) is
generated once under ``benchmarks/out/outofcore/`` and reused; datasets of fewer devices are
folders of links to its first files. Three measurements, each ``tfseq train`` or a Python
process of its own, so its peak resident memory (``ru_maxrss``) is its alone:

1. **Memory as the data grow.** ``tfseq train DATA --out-of-core`` for one epoch at each size,
   and ``--in-memory`` at the sizes that fit, with a small model (GRU-32) so the sizes run in
   minutes on 2 cores; the peak RSS of each process and its wall time.
2. **Throughput.** The same model trained from the same files in one process, streamed
   (``fit_streamed``) and in memory (``fit``), alternating rounds; sequences per second of the
   second epoch (the first builds the kernels). The issue's target: streamed >= 80 % of in memory.
3. **Two workers on loopback.** ``tfseq train --out-of-core --strategy multi-worker`` on the
   largest size that runs in the time given, each worker reading its own files; peak RSS per worker.

Usage:
    .venv/bin/python benchmarks/bench_outofcore.py              # writes benchmarks/outofcore_results.json
    .venv/bin/python benchmarks/bench_outofcore.py --quick      # small sizes: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
PER_FILE = 100_000
MODEL = ["--cell", "gru", "--no-bidirectional", "--units", "32", "--batch-size", "256"]
KEYS = ["--id-col", "device_id", "--time-col", "cycle", "--label-col", "status"]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = next((int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory / 2**30, 1),
            "python": platform.python_version()}


def make_files(root: Path, devices: int, per_file: int) -> list[Path]:
    """Files of ``per_file`` devices each (ids unique across files), generated once."""
    from tfseq.data.synthetic import make_semiconductor_data, to_long_frame

    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(-(-devices // per_file)):
        path = root / f"part-{i:04d}-{per_file}.parquet"
        if not path.exists():
            frame = to_long_frame(make_semiconductor_data(per_file, n_cycles=20, seed=1000 + i))
            frame["device_id"] = f"F{i:04d}-" + frame["device_id"]
            partial = path.with_suffix(".partial")
            frame.to_parquet(partial, index=False, row_group_size=200_000)
            partial.rename(path)
            print(f"  wrote {path.name}", flush=True)
        files.append(path)
    return files


def dataset_of(root: Path, files: list[Path]) -> Path:
    """A folder of links to ``files``: a dataset of their devices."""
    folder = root / f"n{len(files)}"
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        link = folder / file.name
        if not link.exists():
            link.symlink_to(file)
    return folder


def _measured(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs ``command`` in a wrapper that reports its peak RSS; the wall time and the output's tail."""
    wrapper = ("import resource, subprocess, sys, time, json; t = time.perf_counter(); "
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(json.dumps({'rc': p.returncode, 'seconds': time.perf_counter() - t, "
               "'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "
               "'tail': (p.stdout + p.stderr)[-3000:]}))")
    done = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_section(root: Path, sizes: list[int], in_memory_up_to: int, epochs: int) -> list[dict[str, Any]]:
    rows = []
    for devices in sizes:
        data = dataset_of(root / "sets", make_files(root / "files", devices, PER_FILE)[: -(-devices // PER_FILE)])
        modes = ["out-of-core"] + (["in-memory"] if devices <= in_memory_up_to else [])
        for mode in modes:
            with tempfile.TemporaryDirectory() as tmp:
                result = _measured([sys.executable, "-m", "tfseq", "train", str(data), *KEYS, *MODEL,
                                    "--epochs", str(epochs), f"--{mode}", "--out", f"{tmp}/run"])
                metrics = json.loads((Path(tmp) / "run" / "metrics.json").read_text()) if result["rc"] == 0 else {}
            if result["rc"] != 0:
                print(result["tail"], file=sys.stderr)
            row = {"devices": devices, "rows": devices * 20, "float32_gb": round(devices * 20 * 15 * 4 / 1e9, 2),
                   "mode": mode, "rc": result["rc"], "seconds": round(result["seconds"], 1),
                   "peak_rss_mb": round(result["peak_rss_mb"]),
                   "validation_auc": metrics.get("validation", {}).get("auc")}
            print(f"  {devices:>9,} devices {mode:<12} {row['seconds']:>7.1f} s  peak {row['peak_rss_mb']:>6,} MB"
                  f"  auc {row['validation_auc']}", flush=True)
            rows.append(row)
    return rows


THROUGHPUT = r"""
import json, sys, time
import keras
from tfseq.startup import start_tensorflow
start_tensorflow(threads=True)
from tfseq.data.streamed import read_sample, scan_dataset
from tfseq.models.builders import build_model
from tfseq.training.defaults import default_spec
from tfseq.training.fit import fit
from tfseq.training.streamed import fit_streamed

data, mode, batch, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
scan = scan_dataset(data, id_col="device_id", time_col="cycle", label_col="status", val_fraction=0.0)
spec = default_spec("binary")
if name == "gru-32":
    spec = spec.replace(cell="gru", units=(32,), bidirectional=False)
model = build_model(spec, n_features=15, steps=scan.steps, normalization=scan.normalization(masking=True), seed=0)

class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None): self.t = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None): times.append(time.perf_counter() - self.t)

times = []
if mode == "streamed":
    fit_streamed(model, scan, epochs=2, batch_size=batch, seed=0, verbose=0, callbacks=[Clock()])
else:
    train = read_sample(scan, "train", scan.train_sequences)
    fit(model, train.x, train.y, epochs=2, batch_size=batch, seed=0, verbose=0, callbacks=[Clock()])
print(json.dumps({"sequences": scan.train_sequences, "epoch_seconds": times}))
"""


def throughput_section(root: Path, devices: int, rounds: int, batch: int, model: str) -> dict[str, Any]:
    """Sequences/s of epoch 2, streamed and in memory in alternating rounds; the ratio of the medians."""
    data = dataset_of(root / "sets", make_files(root / "files", devices, PER_FILE)[: -(-devices // PER_FILE)])
    rates: dict[str, list[float]] = {"streamed": [], "in-memory": []}
    for _ in range(rounds):
        for mode in rates:
            done = subprocess.run([sys.executable, "-c", THROUGHPUT, str(data), mode, str(batch), model],
                                  capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rates[mode].append(result["sequences"] / result["epoch_seconds"][-1])
            print(f"  {model:<14} {mode:<10} {rates[mode][-1]:>9,.0f} sequences/s (epoch 2)", flush=True)
    median = {mode: float(np.median(values)) for mode, values in rates.items()}
    return {"devices": devices, "batch_size": batch, "model": model, "rounds": rounds,
            "sequences_per_second": {m: [round(v) for v in values] for m, values in rates.items()},
            "median": {m: round(v) for m, v in median.items()},
            "ratio": round(median["streamed"] / median["in-memory"], 3)}


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def workers_section(root: Path, devices: int, epochs: int) -> dict[str, Any]:
    data = dataset_of(root / "sets", make_files(root / "files", devices, PER_FILE)[: -(-devices // PER_FILE)])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    with tempfile.TemporaryDirectory() as tmp:
        from concurrent.futures import ThreadPoolExecutor

        def worker(index: int) -> dict[str, Any]:
            env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                                      "index": index}})}
            return _measured([sys.executable, "-m", "tfseq", "train", str(data), *KEYS, *MODEL, "--epochs",
                              str(epochs), "--out-of-core", "--strategy", "multi-worker", "--out", f"{tmp}/run"],
                             env=env)

        started = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(worker, range(2)))
        seconds = time.perf_counter() - started
        metrics = json.loads((Path(tmp) / "run" / "metrics.json").read_text()) if results[0]["rc"] == 0 else {}
    for r in results:
        if r["rc"]:
            print(r["tail"], file=sys.stderr)
    return {"devices": devices, "files": -(-devices // PER_FILE), "epochs": epochs, "seconds": round(seconds, 1),
            "peak_rss_mb": [round(r["peak_rss_mb"]) for r in results], "rc": [r["rc"] for r in results],
            "distribution": metrics.get("distribution"), "validation_auc": metrics.get("validation", {}).get("auc")}


def render(results: dict[str, Any]) -> str:
    """The results as Markdown tables (the docs hook shows them in docs/scaling.md)."""
    m = results["machine"]
    lines = [f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB); "
             f"model {results['model']}, {results['epochs']} epoch(s) a run, the study's data "
             "(20 cycles x 15 parameters) in Parquet files of 100,000 devices.", "",
             "| devices | float32 data | input | wall time | peak memory (RSS) | validation AUC |",
             "|---:|---:|---|---:|---:|---:|"]
    for row in results["memory"]:
        auc = "" if row["validation_auc"] is None else f"{row['validation_auc']:.3f}"
        lines.append(f"| {row['devices']:,} | {row['float32_gb']:.2f} GB | {row['mode']} | {row['seconds']:.0f} s | "
                     f"{row['peak_rss_mb']:,} MB | {auc} |")
    if results.get("throughput"):
        lines += ["", "Training throughput from the same files in one process, epoch 2 (the first builds the "
                  "kernels), median of alternating rounds (target: streamed at least 80 % of in memory):", "",
                  "| model | devices | batch | streamed | in memory | streamed / in memory |",
                  "|---|---:|---:|---:|---:|---:|"]
        for t in results["throughput"]:
            lines.append(f"| {t['model']} | {t['devices']:,} | {t['batch_size']} | {t['median']['streamed']:,}/s | "
                         f"{t['median']['in-memory']:,}/s | **{t['ratio']:.0%}** |")
    w = results.get("workers")
    if w:
        lines += ["", f"Two workers on loopback (`--strategy multi-worker`), {w['devices']:,} devices in "
                  f"{w['files']} files, each worker streaming its own: {w['seconds']:.0f} s for {w['epochs']} "
                  f"epoch(s) including start-up and the scan, peak memory "
                  f"{' and '.join(f'{v:,} MB' for v in w['peak_rss_mb'])}, validation AUC "
                  f"{w['validation_auc'] if w['validation_auc'] is None else round(w['validation_auc'], 3)}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check that it runs")
    parser.add_argument("--json", type=Path, default=HERE / "outofcore_results.json")
    parser.add_argument("--root", type=Path, default=HERE / "out" / "outofcore")
    parser.add_argument("--skip", nargs="*", default=(), choices=("memory", "throughput", "workers"))
    args = parser.parse_args(argv)
    global PER_FILE
    if args.quick:
        PER_FILE = 5_000
        sizes, in_memory_up_to, tp, wk = [5_000, 10_000, 20_000], 10_000, 10_000, 10_000
    else:
        sizes, in_memory_up_to, tp, wk = [250_000, 500_000, 1_000_000, 2_000_000], 500_000, 200_000, 500_000
    root = args.root / ("quick" if args.quick else "full")
    previous = json.loads(args.json.read_text()) if args.json.is_file() else {}
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "model": "gru-32",
                               "epochs": 1, "command": " ".join(["benchmarks/bench_outofcore.py", *(argv or sys.argv[1:])]),
                               "quick": args.quick}
    print("memory as the data grow (tfseq train, one epoch)", flush=True)
    results["memory"] = previous.get("memory", []) if "memory" in args.skip else \
        memory_section(root, sizes, in_memory_up_to, epochs=1)
    print("throughput: streamed against in memory", flush=True)
    results["throughput"] = previous.get("throughput") if "throughput" in args.skip else \
        [throughput_section(root, tp, rounds=2, batch=batch, model=model)
         for model, batch in (("bilstm-64 (default)", 64), ("gru-32", 256))]
    print("two workers on loopback", flush=True)
    results["workers"] = previous.get("workers") if "workers" in args.skip else workers_section(root, wk, epochs=1)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
