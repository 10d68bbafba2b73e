"""Export benchmark: trained models on the synthetic data, every format and TF Lite mode.

Trains each architecture briefly on the synthetic semiconductor data set
(devices x 20 cycles x 15 measurements), exports it with
:func:`tfseq.export.export_model` (which verifies every artifact in its own
runtime on held-out devices), and prints one row per artifact: file size,
size ratio to the float32 TF Lite file, max abs difference, class agreement
and accuracy change against Keras, batch-1 latency. ``int8-naive`` is plain
full-int8 (input quantised too), for comparison with tfseq's ``int8`` that
keeps the normalisation in float.

Usage:
    .venv/bin/python benchmarks/bench_export.py                      # all, 128 units
    .venv/bin/python benchmarks/bench_export.py --archs lstm --units 128 --devices 4000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ARCHS = {
    "rnn": ("simple_rnn", False),
    "lstm": ("lstm", False),
    "gru": ("gru", False),
    "bilstm": ("lstm", True),
    "bigru": ("gru", True),
}


def while_loop_lstm(model, x_eval, *, steps: int, modes=("none", "dynamic")) -> list[dict]:
    """Experiment: a single-layer LSTM as one builtin WHILE op over static shapes.

    Not tfseq's export path (that unrolls every cell, wrapper and mask); this
    measures what a hand-written loop would give for ``lstm`` + ``last`` pooling:
    the input projection for all steps as one matmul, the recurrence in a
    WHILE body. Full int8 of a WHILE graph crashes the TF 2.21 calibrator, so
    only float32 and dynamic range are measured.
    """
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    norm = model.get_layer("normalization")
    mean = np.asarray(norm.mean, dtype=np.float32).reshape(-1)
    scale = (1 / np.maximum(np.sqrt(np.asarray(norm.variance).reshape(-1)), 1e-7)).astype(np.float32)
    kernel, recurrent, bias = (np.asarray(w) for w in model.get_layer("lstm_0").get_weights())
    dense, dense_bias = (np.asarray(w) for w in model.get_layer("binary").get_weights())
    units, n_features = recurrent.shape[0], kernel.shape[0]

    @tf.function(input_signature=[tf.TensorSpec([1, steps, n_features], tf.float32, name="sequence")])
    def serve(sequence):
        z = (sequence - mean) * scale
        # MAXIMUM keeps the converter from folding the scale into the kernel, which would feed
        # raw mixed-scale values to the dynamic-range quantiser (96 % agreement instead of 100 %).
        z = tf.maximum(z, -3.0e38)
        xw = tf.reshape(tf.matmul(tf.reshape(z, [steps, n_features]), kernel) + bias, [steps, 1, 4 * units])

        def body(t, h, c):
            i, f, g, o = tf.split(tf.gather(xw, t) + tf.matmul(h, recurrent), 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            return t + 1, tf.sigmoid(o) * tf.tanh(c), c

        zeros = tf.zeros([1, units])
        _, h, _ = tf.while_loop(lambda t, h, c: t < steps, body, (tf.constant(0), zeros, zeros))
        return {"binary": tf.sigmoid(tf.matmul(h, dense) + dense_bias)}

    reference = model.predict(x_eval, verbose=0)["binary"][:, 0]
    rows, float_size = [], None
    with tempfile.TemporaryDirectory() as tmp:
        module = tf.Module()
        module.serve = serve
        tf.saved_model.save(module, tmp, signatures={"serving_default": serve})
        for mode in modes:
            converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            if mode == "dynamic":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            flat = converter.convert()
            float_size = float_size or len(flat)
            runner = Interpreter(model_content=flat).get_signature_runner()
            p = np.array([runner(sequence=row[None])["binary"][0, 0] for row in x_eval])
            times = []
            for _ in range(200):
                start = time.perf_counter()
                runner(sequence=x_eval[:1])
                times.append(time.perf_counter() - start)
            rows.append({"mode": mode, "size_kib": len(flat) / 1024, "ratio": len(flat) / float_size,
                         "max_abs_diff": float(np.max(np.abs(p - reference))),
                         "class_agreement": float(np.mean((p >= 0.5) == (reference >= 0.5))),
                         "batch1_us": float(np.median(times) * 1e6)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="rnn,lstm,gru,bilstm,bigru")
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--devices", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--holdout", type=int, default=1000)
    parser.add_argument("--naive-int8", action="store_true", help="also measure plain full-int8")
    parser.add_argument("--while-loop", action="store_true",
                        help="also measure a hand-written WHILE-loop LSTM (experiment, lstm only)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    from tfseq.cli.quiet import start_tensorflow

    start_tensorflow()
    import numpy as np

    from tfseq.data.synthetic import make_semiconductor_data
    from tfseq.export import export_model
    from tfseq.export import tflite as tflite_module
    from tfseq.models.builders import build_model
    from tfseq.models.spec import ModelSpec
    from tfseq.run import DataContract
    from tfseq.training.fit import fit

    data = make_semiconductor_data(args.devices + args.holdout, seed=0)
    x, y = data.x.astype(np.float32), data.y
    x_train, y_train = x[: args.devices], y[: args.devices]
    holdout = (x[args.devices:], y[args.devices:])
    steps = x.shape[1]
    contract = DataContract(feature_names=list(data.feature_names), steps=steps,
                            class_names=list(data.class_names), head="binary")
    rows, loops = [], []
    for arch in args.archs.split(","):
        cell, bidirectional = ARCHS[arch]
        spec = ModelSpec(cell=cell, units=(args.units,), bidirectional=bidirectional, precision="float32")
        model = build_model(spec, n_features=x.shape[-1], steps=steps, adapt=x_train, seed=0)
        start = time.perf_counter()
        fit(model, x_train, y_train, epochs=args.epochs, batch_size=128, verbose=0, seed=0,
            validation_data=holdout)
        trained = time.perf_counter() - start
        modes = ("none", "float16", "dynamic", "int8")
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            manifest = export_model(model, contract, Path(tmp) / "export", name=arch, holdout=holdout,
                                    quantize=modes, representative=x_train, allow_degraded=True, spec=spec)
            exported = time.perf_counter() - start
            artifacts = list(manifest["artifacts"])
            if args.naive_int8:
                original = tflite_module._raw_value_nodes
                tflite_module._raw_value_nodes = lambda _model: []
                try:
                    naive = export_model(model, contract, Path(tmp) / "naive", name=arch, holdout=holdout,
                                         formats="tflite", quantize="int8", representative=x_train,
                                         allow_degraded=True)
                finally:
                    tflite_module._raw_value_nodes = original
                artifact = naive["artifacts"][0]
                artifact["quantization"] = "int8-naive"
                artifacts.append(artifact)
        if args.while_loop and arch == "lstm":
            loops = while_loop_lstm(model, holdout[0], steps=steps)
        float_size = next(a["size_bytes"] for a in artifacts
                          if a["format"] == "tflite" and a["quantization"] == "none")
        print(f"# {spec.name}: trained {trained:.0f} s, exported and verified {exported:.0f} s", file=sys.stderr)
        for a in artifacts:
            v = a["verification"]
            rows.append({
                "arch": spec.name, "format": a["format"], "mode": a["quantization"] or "",
                "size_kib": a["size_bytes"] / 1024,
                "ratio_to_float_tflite": a["size_bytes"] / float_size if a["format"] == "tflite" else None,
                "max_abs_diff": v["max_abs_diff"], "class_agreement": v["class_agreement"],
                "accuracy_change_points": v["metric_change_points"],
                "keras_accuracy": v["metric_reference"],
                "batch1_us": 1000 * v["batch1_latency_ms"],
                "per_sequence_us_batched": 1000 * v["batched_latency_ms"] / v["batch_size"],
                "delegate": a.get("delegate") or "", "passed": a["passed"],
            })
    print(f"{args.devices} training devices, {args.epochs} epochs, {args.holdout} held-out devices, "
          f"{steps} steps x {x.shape[-1]} features\n")
    print("| model | format | mode | size KiB | size / float32 .tflite | max abs diff | class agreement "
          "| accuracy change (pts) | batch-1 us | us/seq batched | TF Lite kernels |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['ratio_to_float_tflite']:.2f}" if r["ratio_to_float_tflite"] is not None else ""
        print(f"| {r['arch']} | {r['format']} | {r['mode']} | {r['size_kib']:.0f} | {ratio} | "
              f"{r['max_abs_diff']:.1e} | {100 * r['class_agreement']:.1f} % | "
              f"{r['accuracy_change_points']:.2f} | {r['batch1_us']:.0f} | "
              f"{r['per_sequence_us_batched']:.1f} | {r['delegate']} |")
    if loops:
        print("\nExperiment: the same LSTM as one WHILE op (hand-written loop, not the export path)\n")
        print("| mode | size KiB | size / float32 | max abs diff | class agreement | batch-1 us |")
        print("|---|---|---|---|---|---|")
        for r in loops:
            print(f"| {r['mode']} | {r['size_kib']:.0f} | {r['ratio']:.2f} | {r['max_abs_diff']:.1e} | "
                  f"{100 * r['class_agreement']:.1f} % | {r['batch1_us']:.0f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"artifacts": rows, "while_loop_lstm": loops}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
