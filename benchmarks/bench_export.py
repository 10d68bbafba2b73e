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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="rnn,lstm,gru,bilstm,bigru")
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--devices", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--holdout", type=int, default=1000)
    parser.add_argument("--naive-int8", action="store_true", help="also measure plain full-int8")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    from tfseq.startup import start_tensorflow

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
    rows = []
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
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"artifacts": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
