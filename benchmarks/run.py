"""tfseq benchmark suite: training and inference side by side with PyTorch and the arithmetic floor.

Run with ``make bench`` (installs the ``bench`` extra: PyTorch 2.13 CPU). Writes
``benchmarks/results.json`` and ``benchmarks/results.md``; the documentation site renders its
tables from ``results.json`` with :func:`render` (``docs/hooks/benchmarks.py``).
Everything is measured in one run on one machine; ratios compare numbers from that run only.

    python benchmarks/run.py                 # the study's sizes (about 17 minutes on 2 cores)
    python benchmarks/run.py --quick         # tiny sizes: checks that the suite runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ARCHS = {"SimpleRNN": ("simple_rnn", False), "LSTM": ("lstm", False), "GRU": ("gru", False),
         "BiLSTM": ("lstm", True)}


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import keras
    import tensorflow as tf

    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__}
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def flops_per_sequence(cell: str, bidirectional: bool, units: int, features: int, steps: int) -> float:
    """Forward multiply-adds x 2 of the recurrent layer (the head is negligible)."""
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    return 2.0 * steps * gates * units * (units + features) * (2 if bidirectional else 1)


def _rate(fn, flops: float, seconds: float) -> float:
    fn()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return flops * n / (time.perf_counter() - start) / 1e9


def _gemm_rates(library: str, size: int, seconds: float) -> dict:
    """float32 (and bfloat16 where the library has it) GEMM rates of one library, GFLOP/s."""
    flops = 2.0 * size**3
    a = np.random.rand(size, size).astype(np.float32)
    b = np.random.rand(size, size).astype(np.float32)
    if library == "numpy":
        return {"fp32": _rate(lambda: a @ b, flops, seconds)}
    if library == "tensorflow":
        import tensorflow as tf

        ta, tb = tf.constant(a), tf.constant(b)
        ba, bb = tf.cast(ta, tf.bfloat16), tf.cast(tb, tf.bfloat16)
        return {"fp32": _rate(lambda: tf.matmul(ta, tb).numpy(), flops, seconds),
                "bf16": _rate(lambda: tf.matmul(ba, bb).numpy(), flops, seconds)}
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    pa, pb = torch.from_numpy(a), torch.from_numpy(b)
    ba, bb = pa.bfloat16(), pb.bfloat16()
    return {"fp32": _rate(lambda: pa @ pb, flops, seconds), "bf16": _rate(lambda: ba @ bb, flops, seconds)}


def matmul_peak(size: int, seconds: float) -> dict:
    """The fastest GEMM rate measured on this machine, float32 and bfloat16, and each library's.

    NumPy's BLAS, TensorFlow (oneDNN) and PyTorch each multiply two ``size`` x ``size`` matrices
    in a process of their own; the floor is the fastest, so no weak GEMM flatters the others.
    """
    libraries = ["numpy", "tensorflow"]
    try:
        import torch  # noqa: F401

        libraries.append("pytorch")
    except ImportError:
        pass
    rates = {library: _isolated(_gemm_rates, library, size, seconds) for library in libraries}
    fp32 = {library: r["fp32"] for library, r in rates.items()}
    bf16 = {library: r["bf16"] for library, r in rates.items() if "bf16" in r}
    return {"fp32_gflops": max(fp32.values()), "bf16_gflops": max(bf16.values()),
            "fp32_by_library": fp32, "bf16_by_library": bf16}


def _data(n: int, steps: int, features: int, seed: int = 0):
    from tfseq.data.synthetic import make_semiconductor_data

    data = make_semiconductor_data(max(n, 50), n_cycles=steps, seed=seed)
    return data.x[:n, :, :features], data.y[:n].astype(np.float32)


def keras_training(cell, bidirectional, units, n, steps, features, batch, precision, plain, epochs) -> list:
    """Sequences/s of each of ``epochs`` epochs of one ``tfseq.fit`` call, after a warm-up call.

    ``plain`` builds the same model from Keras' own recurrent layers and compiles it with one
    batch per compiled call, as ``model.compile`` does by default, on TensorFlow's default thread
    pools; otherwise the pools are set as every ``tfseq`` command sets them.
    """
    if not plain:  # this runs in a fresh process (_isolated): TensorFlow has not started yet
        from tfseq.training.threads import configure_threads

        configure_threads()
    import keras

    from tfseq.models import builders
    from tfseq.models.builders import build_model
    from tfseq.models.spec import ModelSpec
    from tfseq.training.fit import fit

    rates = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            rates.append(n / (time.perf_counter() - self.start))

    if plain:  # this runs in a process of its own (_isolated): the swap ends with it
        builders._CELLS = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
                           "gru": keras.layers.GRU}
    x, y = _data(n, steps, features)
    spec = ModelSpec(cell=cell, units=(units,), bidirectional=bidirectional, precision=precision)
    model = build_model(spec, n_features=x.shape[-1], steps=x.shape[1], adapt=x, seed=0)
    if plain:
        model.steps_per_execution = 1
    fit(model, x[: batch * 4], y[: batch * 4], epochs=1, batch_size=batch, verbose=0)
    fit(model, x, y, epochs=epochs, batch_size=batch, patience=epochs, verbose=0, callbacks=[EpochTimer()])
    return rates


def _torch_model(cell, bidirectional, units, features):
    import torch

    rnn_cls = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn_cls(features, units, batch_first=True, bidirectional=bidirectional)
            self.head = torch.nn.Linear(units * (2 if bidirectional else 1), 1)

        def forward(self, x):
            out, _ = self.rnn(x)
            if bidirectional:  # forward direction's last step, backward direction's first step
                last = torch.cat([out[:, -1, :units], out[:, 0, units:]], dim=-1)
            else:
                last = out[:, -1]
            return self.head(last).squeeze(-1)

    return Net()


def torch_training(cell, bidirectional, units, n, steps, features, batch, epochs) -> list:
    """Sequences/s of each of ``epochs`` epochs of a plain PyTorch loop, after a warm-up epoch on a slice."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    x, y = _data(n, steps, features)
    model = _torch_model(cell, bidirectional, units, x.shape[-1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def epoch(count):
        order = torch.randperm(count)
        start = time.perf_counter()
        for i in range(0, count, batch):
            idx = order[i:i + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(tx[idx]), ty[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        return count / (time.perf_counter() - start)

    epoch(min(len(x), batch * 4))
    return [epoch(len(x)) for _ in range(epochs)]


def torch_inference(cell, bidirectional, units, n, steps, features, batch) -> dict:
    import torch

    from tfseq.evaluation import latency

    torch.set_num_threads(os.cpu_count() or 1)
    x, _ = _data(n, steps, features, seed=1)
    model = _torch_model(cell, bidirectional, units, x.shape[-1]).eval()

    def predict(a):
        with torch.inference_mode():
            return model(torch.from_numpy(a)).numpy()

    return latency(predict, x, batch_size=batch)


def _isolated(fn, *args):
    """``fn(*args)`` in a fresh process, so TensorFlow's and PyTorch's thread pools never share one."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def training_section(n: int, steps: int, features: int, units: int, batch: int, epochs: int,
                     rounds: int) -> dict:
    """Each framework and model trains in its own process for ``epochs`` timed epochs.

    This VM's speed drifts by up to a third over minutes, whoever runs, so tfseq and PyTorch
    alternate for ``rounds`` rounds (plain Keras runs once): the table compares each side's best
    epoch and the medians of all epochs, and gives the range of the rounds' ratios.
    """
    from tfseq.models.precision import resolve_precision

    default = resolve_precision("auto")
    results = {}
    for name, (cell, bi) in ARCHS.items():
        model = (cell, bi, units, n, steps, features, batch)
        runs = {"tfseq_default": [], "pytorch": []}
        for _ in range(rounds):
            runs["tfseq_default"].append(_isolated(keras_training, *model, "auto", False, epochs))
            runs["pytorch"].append(_isolated(torch_training, *model, epochs))
        runs["keras_plain"] = [_isolated(keras_training, *model, "float32", True, epochs)]
        round_ratios = [max(t) / max(p) for t, p in zip(runs["tfseq_default"], runs["pytorch"])]
        every = {key: [rate for run in value for rate in run] for key, value in runs.items()}
        row = {key: max(rates) for key, rates in every.items()}
        row["epochs"] = runs
        row["flops_per_sequence"] = flops_per_sequence(cell, bi, units, features, steps)
        row["ratio_vs_pytorch"] = row["tfseq_default"] / row["pytorch"]
        row["median_ratio_vs_pytorch"] = float(np.median(every["tfseq_default"]) / np.median(every["pytorch"]))
        row["round_ratios"] = round_ratios
        results[name] = row
        print(f"train {name}: tfseq {row['tfseq_default']:,.0f}/s, PyTorch {row['pytorch']:,.0f}/s "
              f"({row['ratio_vs_pytorch']:.2f}x; medians {row['median_ratio_vs_pytorch']:.2f}x; rounds "
              f"{min(round_ratios):.2f}-{max(round_ratios):.2f}x), plain Keras {row['keras_plain']:,.0f}/s",
              flush=True)
    return {"default_precision": default, "sequences": n, "batch": batch, "epochs": epochs, "rounds": rounds,
            "models": results}


def inference_section(n: int, steps: int, features: int, units: int, batch: int, rounds: int) -> dict:
    """Keras predict, PyTorch eager and every exported artifact, on the same LSTM.

    Every runtime is measured once per round, the rounds one after another, and each keeps its
    fastest round (by batched rate): this VM's speed drifts over minutes.
    """
    from tfseq.evaluation import keras_predict_function, latency
    from tfseq.models.builders import build_model
    from tfseq.models.spec import ModelSpec

    x, y = _data(n, steps, features, seed=1)
    spec = ModelSpec(cell="lstm", units=(units,), precision="float32")
    model = build_model(spec, n_features=features, steps=steps, adapt=x, seed=0)

    def keras_row():
        batched = latency(lambda a: model.predict(a, batch_size=batch, verbose=0), x, batch_size=batch,
                          single_calls=20)
        single = latency(keras_predict_function(model), x, batch_size=batch)
        return {**batched, "single_p50_us": single["single_p50_us"], "single_p99_us": single["single_p99_us"]}

    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runners = _export_runners(model, x, y, Path(tmp))
        for _ in range(rounds):
            measured = {"Keras predict": keras_row(),
                        "PyTorch eager": _isolated(torch_inference, "lstm", False, units, n, steps, features, batch)}
            # TF Lite files take batch 1 by default: their runner scores the batch in slices
            measured.update({label: latency(runner.predict, x, batch_size=batch) for label, runner in runners.items()})
            for label, row in measured.items():
                if label not in rows or row["batched_us_per_sequence"] < rows[label]["batched_us_per_sequence"]:
                    rows[label] = row
    for name, row in rows.items():
        row["sequences_per_second"] = 1e6 / row["batched_us_per_sequence"]
        print(f"infer {name}: {row['sequences_per_second']:,.0f}/s batched, "
              f"p50 {row['single_p50_us']:.0f} us at batch 1", flush=True)
    return {"model": f"lstm-{units}", "batch": batch, "rounds": rounds, "rows": rows}


def _export_runners(model, x, y, out: Path) -> dict:
    """Each exported artifact (SavedModel, ONNX, TF Lite float32, dynamic and int8), loaded in its runtime."""
    from tfseq.export import export_model, load_runner
    from tfseq.run import DataContract

    contract = DataContract(feature_names=[f"f{i}" for i in range(x.shape[-1])], steps=x.shape[1],
                            task="binary", class_names=["pass", "fail"], head="binary")
    manifest = export_model(model, contract, out / "export", name="lstm", formats=("savedmodel", "tflite", "onnx"),
                            quantize=("none", "dynamic", "int8"), representative=x[:256],
                            holdout=(x[:512], y[:512]), allow_degraded=True)
    names = {"savedmodel": "SavedModel (tf.saved_model.load)", "onnx": "onnxruntime",
             "tflite": "TF Lite float32 (LiteRT)"}
    runners = {}
    for artifact in manifest["artifacts"]:
        quantization = artifact["quantization"]
        label = names[artifact["format"]] if quantization in (None, "none") else f"TF Lite {quantization} (LiteRT)"
        runners[label] = load_runner(out / "export" / artifact["path"])
    return runners


def distributed_section(devices: int, epochs: int) -> dict:
    """`tfseq train` in one process against two MultiWorkerMirroredStrategy workers on loopback."""
    import socket

    from tfseq.data.synthetic import make_semiconductor_data, to_long_frame

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "tests.parquet"
        to_long_frame(make_semiconductor_data(devices, seed=0)).to_parquet(data)
        base = [sys.executable, "-m", "tfseq", "train", str(data), "--id-col", "device_id", "--time-col",
                "cycle", "--label-col", "status", "--epochs", str(epochs), "--patience", str(epochs),
                "--cell", "lstm", "--no-bidirectional", "--units", "128", "--batch-size", "128"]
        env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        start = time.perf_counter()
        subprocess.run(base + ["--out", str(Path(tmp) / "one"), "--strategy", "none"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        one = time.perf_counter() - start
        cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
        start = time.perf_counter()
        workers = [subprocess.Popen(base + ["--out", str(Path(tmp) / "two"), "--strategy", "multi-worker"],
                                    env={**env, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                         "task": {"type": "worker", "index": i}})},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
        if any(w.wait() for w in workers):
            raise RuntimeError("a multi-worker training process failed")
        two = time.perf_counter() - start
    train = int(devices * 0.8) * epochs
    result = {"devices": devices, "epochs": epochs, "one_process_seconds": one, "two_workers_seconds": two,
              "one_process_sequences_per_second": train / one, "two_workers_sequences_per_second": train / two}
    print(f"distributed: one process {one:.0f} s, two workers {two:.0f} s", flush=True)
    return result


def demo_section() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tfseq", "demo", "--out", str(Path(tmp) / "demo")],
                       check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_seconds": wall, "peak_rss_mb": peak}


def render(results: dict) -> str:
    m = results["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, TF {m['tensorflow']}, "
             f"Keras {m['keras']}, PyTorch {m['torch']}.", ""]
    peak = results["matmul_peak"]
    by_library = ", ".join(f"{k} {v:.0f}" for k, v in peak["fp32_by_library"].items())
    lines.append(f"Measured GEMM peak (the fastest library's, 2048 x 2048): fp32 {peak['fp32_gflops']:.0f} "
                 f"GFLOP/s ({by_library}), bf16 {peak['bf16_gflops']:.0f} GFLOP/s.")
    t = results["training"]
    rounds = t.get("rounds", 1)
    lines += ["", f"Training, sequences/s, best epoch of {rounds} x {t['epochs']} (tfseq and PyTorch alternate "
              f"for {rounds} rounds, each run in its own process; plain Keras one run of {t['epochs']}; batch "
              f"{t['batch']}, tfseq default precision {t['default_precision']}; plain Keras: Keras' own recurrent "
              "layers, float32, one batch per compiled call, TensorFlow's thread pools):", "",
              "| model | tfseq default | plain Keras | PyTorch | tfseq / PyTorch | same, median epochs "
              "| rounds' ratios | tfseq % of fp32 floor |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in t["models"].items():
        floor = 3 * r["flops_per_sequence"] * r["tfseq_default"] / (peak["fp32_gflops"] * 1e9)
        spread = r.get("round_ratios") or [r["ratio_vs_pytorch"]]
        lines.append(f"| {name} | {r['tfseq_default']:,.0f} | {r['keras_plain']:,.0f} | {r['pytorch']:,.0f} "
                     f"| {r['ratio_vs_pytorch']:.2f}x | {r['median_ratio_vs_pytorch']:.2f}x "
                     f"| {min(spread):.2f}-{max(spread):.2f}x | {floor:.1%} |")
    inf = results["inference"]
    torch_rate = inf["rows"]["PyTorch eager"]["sequences_per_second"]
    lines += ["", f"Inference, {inf['model']} (batched: batch {inf['batch']}; each runtime's fastest of "
              f"{inf.get('rounds', 1)} rounds):", "",
              "| runtime | sequences/s | vs PyTorch eager | batch-1 p50 (us) | batch-1 p99 (us) |",
              "|---|---:|---:|---:|---:|"]
    for name, r in inf["rows"].items():
        lines.append(f"| {name} | {r['sequences_per_second']:,.0f} | {r['sequences_per_second'] / torch_rate:.2f}x "
                     f"| {r['single_p50_us']:.0f} | {r['single_p99_us']:.0f} |")
    d = results["distributed"]
    lines += ["", f"`tfseq train` of an LSTM-128 on {d['devices']:,} devices, {d['epochs']} epochs, wall time with "
              f"start-up: one process {d['one_process_seconds']:.0f} s "
              f"({d['one_process_sequences_per_second']:,.0f} sequences/s), two MultiWorkerMirroredStrategy "
              f"workers on loopback {d['two_workers_seconds']:.0f} s "
              f"({d['two_workers_sequences_per_second']:,.0f} sequences/s); both processes share the same 2 cores."]
    if "demo" in results:
        d = results["demo"]
        lines += ["", f"`tfseq demo` (50,000 devices): {d['wall_seconds']:.0f} s, peak RSS {d['peak_rss_mb']:,.0f} MB."]
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the suite runs")
    parser.add_argument("--no-demo", action="store_true", help="skip timing the full demo")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.json and results.md go")
    args = parser.parse_args(argv)
    quick = args.quick
    size = dict(steps=5 if quick else 20, features=15, units=8 if quick else 128)
    results = {"date": time.strftime("%Y-%m-%d"),  # shown with the tables on the documentation site
               "machine": machine(),
               "matmul_peak": matmul_peak(256 if quick else 2048, 0.2 if quick else 2.0)}
    results["training"] = training_section(256 if quick else 20_000, batch=128, epochs=2 if quick else 4,
                                           rounds=1 if quick else 3, **size)
    results["inference"] = inference_section(256 if quick else 4096, batch=64 if quick else 1024,
                                             rounds=1 if quick else 3, **size)
    results["distributed"] = distributed_section(300 if quick else 10_000, 1 if quick else 3)
    if not (quick or args.no_demo):
        results["demo"] = demo_section()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = render(results)
    (args.out / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
