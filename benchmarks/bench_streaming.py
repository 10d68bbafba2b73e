"""Streaming early warning and the adaptive-test policy, on the demo's data.

1. One streaming LSTM (an answer after every cycle) against LSTMs trained with ``--predict-at`` 10,
   15 and 20 (each sees only its first cycles), same units, epochs and split: accuracy on the test
   devices at those cycles (target: the streaming model within 1 point of each).
2. The adaptive-test policy (:func:`tfseq.analysis.adaptive_test.fit_policy`) fitted on a calibration
   lot (fresh devices from the same generator) at several escape bounds, scrap <= 1 %, 95 %
   confidence, applied to the held-out test devices: test cycles saved, escapes and scraps with their
   one-sided upper bounds (target: >= 30 % saved with the escape bound <= 0.1 % and scrap <= 1 %).
3. Whether the bound holds: the calibration lot and the test devices pooled and split at random into
   calibration and test halves ``--repeats`` times; the runs whose realised escape (or scrap) rate on
   the test half exceeds its bound must be at most ``1 - confidence`` of them.

Writes ``benchmarks/streaming_results.json`` (rendered on docs/guide/streaming.md through
docs/hooks/benchmarks.py) and prints the tables.

Usage:
    .venv/bin/python benchmarks/bench_streaming.py                  # 50,000 devices, ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_streaming.py --devices 5000 --epochs 3 --json /tmp/s.json   # a smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ESCAPES = (0.0005, 0.001, 0.002, 0.005)
MAX_SCRAP, CONFIDENCE = 0.01, 0.95


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def render(results: dict[str, Any]) -> str:
    """The results as Markdown tables (docs/guide/streaming.md shows them through docs/hooks/benchmarks.py)."""
    lines = ["| cycle | streaming model | model trained for that cycle | difference (points) |",
             "|---:|---:|---:|---:|"]
    for row in results["cycles"]:
        lines.append(f"| {row['cycle']} | {row['streaming']:.3f} | {row['fixed']:.3f} | "
                     f"{100 * (row['streaming'] - row['fixed']):+.1f} |")
    lines += ["", f"Adaptive test on {results['test_devices']:,} held-out devices, policy fitted on a calibration "
              f"lot of {results['calibration_devices']:,} (scrap <= {100 * MAX_SCRAP:g} %, confidence "
              f"{100 * CONFIDENCE:g} %):", "",
              "| max escape | test cycles saved | escapes (bound) | scraps (bound) | failed early | passed early |",
              "|---:|---:|---:|---:|---:|---:|"]
    for row in results["policies"]:
        o = row["test"]
        lines.append(f"| {100 * row['max_escape']:.2g} % | {100 * o['steps_saved']:.1f} % | "
                     f"{o['escapes']['count']} ({100 * o['escapes']['upper_bound']:.3f} %) | "
                     f"{o['scraps']['count']} ({100 * o['scraps']['upper_bound']:.2f} %) | "
                     f"{o['decisions']['fail']:,} | {o['decisions']['pass']:,} |")
    bound = results["bound_check"]
    lines += ["", f"Bound check: {bound['repeats']} random calibration/test splits at max escape "
              f"{100 * bound['max_escape']:g} %: the realised escape rate exceeded it in {bound['escape_exceeded']}, "
              f"the scrap rate exceeded {100 * MAX_SCRAP:g} % in {bound['scrap_exceeded']} (allowed: "
              f"{bound['allowed']}); median cycles saved {100 * bound['median_saved']:.1f} %.", "",
              f"{results['devices']:,} devices x {results['cycles_per_device']} cycles, LSTM-{results['units']}, "
              f"{results['machine']['cpu']} ({results['machine']['cores']} cores), {results['date']}, "
              f"{results['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=50_000, help="devices of the study's data set")
    parser.add_argument("--calibration", type=int, default=50_000, help="devices of the calibration lot")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=20, help="random splits of the bound check")
    parser.add_argument("--json", type=Path, default=HERE / "streaming_results.json")
    parser.add_argument("--probabilities", type=Path, metavar="NPZ",
                        help="also save the streaming model's P(fail) per cycle (lot and test) and labels here")
    args = parser.parse_args(argv)

    import numpy as np

    from tfseq.analysis.adaptive_test import fit_policy, policy_outcome
    from tfseq.data.splits import split_sequences
    from tfseq.data.synthetic import make_semiconductor_data
    from tfseq.evaluation import classification_metrics, per_step_metrics
    from tfseq.models.builders import build_model
    from tfseq.models.spec import ModelSpec
    from tfseq.training.fit import fit

    started = time.perf_counter()
    data = make_semiconductor_data(args.devices, seed=0)
    train, val, test = split_sequences(data, seed=0)
    lot = make_semiconductor_data(args.calibration, seed=7919)
    settings = dict(epochs=args.epochs, batch_size=128, patience=5, seed=0, verbose=0)

    def trained(spec: ModelSpec, steps: int) -> Any:
        tr, va = train.first_steps(steps), val.first_steps(steps)
        model = build_model(spec, n_features=15, adapt=tr.x, seed=0)
        fit(model, tr.x, tr.y, validation_data=(va.x, va.y), **settings)
        return model

    streaming = trained(ModelSpec(units=(args.units,), streaming=True, masking=True), 20)
    p_test = streaming.predict(test.x, batch_size=1024, verbose=0)["binary"]
    per_step = per_step_metrics("binary", test.y, p_test)
    cycles = []
    for cycle in (10, 15, 20):
        model = trained(ModelSpec(units=(args.units,), masking=True), cycle)
        p = model.predict(test.first_steps(cycle).x, batch_size=1024, verbose=0)["binary"]
        fixed = classification_metrics(test.y, p)["accuracy"]
        cycles.append({"cycle": cycle, "streaming": per_step[cycle - 1]["accuracy"], "fixed": fixed})
        print(f"cycle {cycle}: streaming {cycles[-1]['streaming']:.4f}, trained for it {fixed:.4f}", flush=True)

    p_lot = streaming.predict(lot.x, batch_size=1024, verbose=0)["binary"][..., 0]
    p_held = p_test[..., 0]
    if args.probabilities:
        np.savez_compressed(args.probabilities, lot=p_lot, lot_y=lot.y, test=p_held, test_y=test.y)
    policies = []
    for max_escape in ESCAPES:
        policy = fit_policy(p_lot, lot.y, max_escape=max_escape, max_scrap=MAX_SCRAP, confidence=CONFIDENCE)
        outcome = policy_outcome(policy, p_held, test.y, confidence=CONFIDENCE)
        policies.append({"max_escape": max_escape, "procedure": policy.report["procedure"],
                         "calibration": policy.report["calibration"], "test": outcome})
        print(f"max escape {max_escape}: saved {outcome['steps_saved']:.3f}, escapes {outcome['escapes']}, "
              f"scraps {outcome['scraps']}", flush=True)

    pooled_p, pooled_y = np.concatenate([p_lot, p_held]), np.concatenate([lot.y, test.y])
    rng = np.random.default_rng(1)
    escape_exceeded = scrap_exceeded = 0
    saved = []
    for repeat in range(args.repeats):
        order = rng.permutation(len(pooled_p))
        cal, held = order[: len(order) // 2], order[len(order) // 2:]
        policy = fit_policy(pooled_p[cal], pooled_y[cal], max_escape=0.001, max_scrap=MAX_SCRAP,
                            confidence=CONFIDENCE, seed=repeat)
        outcome = policy_outcome(policy, pooled_p[held], pooled_y[held])
        escape_exceeded += outcome["escapes"]["rate"] > 0.001
        scrap_exceeded += outcome["scraps"]["rate"] > MAX_SCRAP
        saved.append(outcome["steps_saved"])
    results = {
        "devices": args.devices, "cycles_per_device": 20, "units": args.units, "epochs": args.epochs,
        "calibration_devices": len(lot), "test_devices": len(test), "cycles": cycles,
        "per_step": per_step, "policies": policies,
        "bound_check": {"repeats": args.repeats, "max_escape": 0.001, "escape_exceeded": int(escape_exceeded),
                        "scrap_exceeded": int(scrap_exceeded),
                        "allowed": int(np.floor((1 - CONFIDENCE) * args.repeats)),
                        "median_saved": float(np.median(saved))},
        "machine": {"cpu": _cpu(), "cores": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "date": datetime.date.today().isoformat(), "seconds": time.perf_counter() - started,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
