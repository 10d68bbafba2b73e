"""Monitor thresholds: false alarms on data like the training data, and the power to catch a shift.

Reference statistics (:func:`tfseq.analysis.reference.compute_reference`) of a training set of
synthetic devices, then :func:`tfseq.analysis.drift.compare_with_reference` at the default
thresholds on

- random halves of the training file (training plus validation devices, as ``tfseq train`` splits it),
- fresh draws from the same generator (other seeds),
- fresh draws with one feature shifted by half its standard deviation (the training steps' std),

counting the runs that raised an alarm, and how often the shifted feature was ranked first. The
model's prediction score is left out (it needs a trained model; tests/test_monitor.py checks the
halves with one). The figures of docs/guide/monitor.md come from the default run.

Usage:
    .venv/bin/python benchmarks/bench_monitor.py
    .venv/bin/python benchmarks/bench_monitor.py --devices 5000 --cycles 20 --json benchmarks/out/monitor.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=300, help="devices in the training file (80 %% train)")
    parser.add_argument("--cycles", type=int, default=6, help="test cycles per device")
    parser.add_argument("--repeats", type=int, default=100, help="halves and fresh draws")
    parser.add_argument("--shift-repeats", type=int, default=50, help="shifted draws per batch size")
    parser.add_argument("--feature", default="Leakage_current", help="the feature to shift")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    import numpy as np

    from tfseq.analysis.drift import ALPHA, MAX_OUT_OF_RANGE, PSI_THRESHOLD, compare_with_reference
    from tfseq.analysis.reference import compute_reference
    from tfseq.data.synthetic import make_semiconductor_data

    started = time.perf_counter()
    full = make_semiconductor_data(args.devices, n_cycles=args.cycles, seed=2)
    train = full.subset(np.arange(int(0.8 * len(full))))
    reference = compute_reference(train.x, train.lengths, train.feature_names)
    size = len(json.dumps(reference, separators=(",", ":")))
    half = len(full) // 2
    rng = np.random.default_rng(0)

    def run(x: np.ndarray, lengths: np.ndarray) -> dict:
        return compare_with_reference(reference, x, lengths, full.feature_names)

    halves = [run(full.x[idx], full.lengths[idx]) for idx in (rng.permutation(len(full))[:half]
                                                             for _ in range(args.repeats))]
    fresh = [run(d.x, d.lengths) for d in (make_semiconductor_data(half, n_cycles=args.cycles, seed=100 + s)
                                           for s in range(args.repeats))]
    k = full.feature_names.index(args.feature)
    shift = 0.5 * float(reference["features"][args.feature]["std"])
    power = {}
    for n in (half, 2 * half, 4 * half):
        caught = first = 0
        psis = []
        for s in range(args.shift_repeats):
            new = make_semiconductor_data(n, n_cycles=args.cycles, seed=1000 + s)
            new.x[:, :, k] += shift
            report = run(new.x, new.lengths)
            entry = next(f for f in report["features"] if f["name"] == args.feature)
            caught += entry["drift"]
            first += report["features"][0]["name"] == args.feature
            psis.append(entry["psi"])
        power[n] = {"caught": caught, "ranked_first": first, "runs": args.shift_repeats,
                    "psi_min": round(min(psis), 3), "psi_median": round(float(np.median(psis)), 3)}
    figures = {
        "training_devices": len(train), "cycles": args.cycles, "reference_bytes": size,
        "defaults": {"psi_threshold": PSI_THRESHOLD, "alpha": ALPHA, "max_out_of_range": MAX_OUT_OF_RANGE},
        "false_alarms": {
            "random_halves": {"alarms": sum(r["drift"] for r in halves), "runs": len(halves), "devices": half,
                              "largest_psi": round(max(r["features"][0]["psi"] for r in halves), 3)},
            "fresh_draws": {"alarms": sum(r["drift"] for r in fresh), "runs": len(fresh), "devices": half,
                            "largest_psi": round(max(r["features"][0]["psi"] for r in fresh), 3)},
        },
        "half_std_shift": {"feature": args.feature, "by_new_devices": power},
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
