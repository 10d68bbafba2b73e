"""Explain benchmark: integrated gradients and permutation importance of the demo's LSTM-128.

Trains the demo's LSTM (one LSTM layer of 128 units, last state) for one epoch on the synthetic
semiconductor data (devices x 20 cycles x 15 measurements), then times, on N held-out devices,
:func:`tfseq.analysis.explain.integrated_gradients` (default Gauss-Legendre points, the training
mean baseline) and :func:`tfseq.analysis.permutation.permutation_importance` (through the compiled
Keras model, 3 repeats, on at most 1,000 of the devices, as ``tfseq explain``), and prints
sequences per second and the time projected for 10,000 sequences (the issue's budget: 60 s on
2 cores).

Usage:
    .venv/bin/python benchmarks/bench_explain.py                  # N = 2000
    .venv/bin/python benchmarks/bench_explain.py --sequences 10000 --json benchmarks/out/explain.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=2000, help="held-out devices to explain")
    parser.add_argument("--train", type=int, default=4000, help="devices to train on (one epoch)")
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--ig-steps", type=int, default=None, help="Gauss-Legendre points (default: tfseq's)")
    parser.add_argument("--permutation-sequences", type=int, default=1000, help="as tfseq explain's flag")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    from tfseq.startup import start_tensorflow

    start_tensorflow(threads=True)
    import numpy as np

    from tfseq.analysis.explain import (
        DEFAULT_IG_STEPS,
        completeness_error,
        integrated_gradients,
        keras_predict,
        valid_steps,
    )
    from tfseq.analysis.permutation import permutation_importance
    from tfseq.cpus import available_cpus
    from tfseq.data.synthetic import make_semiconductor_data
    from tfseq.models import ModelSpec, build_model

    steps = args.ig_steps or DEFAULT_IG_STEPS
    data = make_semiconductor_data(args.train + args.sequences, n_cycles=20, seed=0)
    train, held = data.subset(np.arange(args.train)), data.subset(np.arange(args.train, len(data)))
    model = build_model(ModelSpec(cell="lstm", units=(args.units,)), n_features=15, steps=20, adapt=train.x,
                        seed=0)
    model.fit(train.x, train.y, epochs=1, batch_size=128, verbose=0)
    head = model.output_names[0]
    valid = valid_steps(held.lengths, len(held), held.steps)

    integrated_gradients(model, held.x[:8], head=head, valid=valid[:8], steps=steps)  # trace once
    start = time.perf_counter()
    result = integrated_gradients(model, held.x, head=head, valid=valid, steps=steps)
    ig_s = time.perf_counter() - start
    error = completeness_error(result)

    # as tfseq explain: the permutations over at most --permutation-sequences of the sequences explained
    sample = np.arange(min(len(held), args.permutation_sequences))
    start = time.perf_counter()
    permutation_importance(keras_predict(model, head), held.x[sample], task="binary", y=held.y[sample],
                           valid=valid[sample], repeats=3)
    perm_s = time.perf_counter() - start

    n = len(held)
    total = ig_s + perm_s
    figures = {
        "model": f"lstm-{args.units}, 20 steps x 15 features", "sequences": n, "cpus": available_cpus(),
        "ig_steps": steps, "refined_sequences": int((result.points > steps).sum()),
        "integrated_gradients_s": round(ig_s, 2), "permutation_sequences": len(sample),
        "permutation_s": round(perm_s, 2), "sequences_per_s": round(n / total, 1),
        # integrated gradients grow with the sequences; the permutations stop at --permutation-sequences
        "projected_10000_s": round(10_000 * ig_s / n + perm_s * min(10_000, args.permutation_sequences) / len(sample), 1),
        "completeness_max_relative_error": float(error.max()),
        "completeness_median_relative_error": float(np.median(error)),
    }
    for key, value in figures.items():
        print(f"{key:<36} {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
