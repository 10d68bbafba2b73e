"""``tfseq explain``: which features, at which steps, drive a RUN's answers on long-format data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tfseq.cli.args import Subparsers, positive_int

EXAMPLES = """examples:
  tfseq explain runs/lstm holdout.csv                         writes runs/lstm/explain/
  tfseq explain runs/lstm holdout.csv --out why --top 10 --max-sequences 10000
  tfseq explain runs/lstm new.csv --artifact export/lstm-dynamic.tflite   permutations through the edge artifact

writes: explain.json (method, baseline, completeness check, ranked features, per-step totals,
permutation importances), features.csv, drivers.csv (each sequence's top drivers, feature@step),
attributions.npz and plots/attribution_heatmap.png, plots/permutation_importance.png.
Integrated gradients start from the training mean of each feature; with the label column in DATA
the permutations score the drop in AUC (binary), accuracy (multiclass) or the rise in RMSE."""


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "explain",
        help="feature and step attributions of a RUN: integrated gradients and permutation importance",
        description=(
            "Explain the model of RUN on long-format DATA (the columns it was trained on; the label column "
            "is optional): integrated gradients through the Keras model attribute each sequence's answer "
            "to every feature at every step, from the training mean of each feature, and permutation "
            "importance per feature and per window of steps cross-checks the ranking. Writes --out "
            "(default RUN/explain) atomically and prints the top features."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="RUN directory from tfseq train")
    parser.add_argument("data", type=Path, metavar="DATA",
                        help="long-format .csv or .parquet file, a directory or glob of them, or STDF files")
    parser.add_argument("--out", type=Path, metavar="DIR", help="directory to write (default: RUN/explain)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    parser.add_argument("--top", type=positive_int, default=5, metavar="K",
                        help="features printed and drivers per sequence in drivers.csv (default: 5)")
    parser.add_argument("--max-sequences", type=positive_int, default=2000, metavar="N",
                        help="sequences explained, a seeded sample of DATA when it holds more (default: 2000)")
    parser.add_argument("--ig-steps", type=positive_int, metavar="N",
                        help="Gauss-Legendre points of integrated gradients (default: 16); raise it when "
                             "explain.json reports a completeness error above its tolerance")
    parser.add_argument("--repeats", type=positive_int, default=3, metavar="N",
                        help="permutations per feature and per window (default: 3)")
    parser.add_argument("--permutation-sequences", type=positive_int, default=1000, metavar="N",
                        help="sequences permuted, a sample of those explained (default: 1000)")
    parser.add_argument("--window", type=positive_int, metavar="N",
                        help="steps per permuted window (default: a tenth of the steps, at least 1)")
    parser.add_argument("--artifact", type=Path, metavar="ARTIFACT",
                        help="run the permutations through this exported artifact (.tflite, .onnx, SavedModel)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="run an exported --artifact even if its sha256 differs from manifest.json")
    parser.add_argument("--fill", choices=("ffill", "zero"), help="repair NaN/inf features (default: as in training)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the sampling and permutations")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tfseq.workflows.explain import check_explain_inputs

    # Bad flags or data fail before TensorFlow starts.
    options: dict[str, Any] = dict(max_sequences=args.max_sequences, ig_steps=args.ig_steps, top=args.top, repeats=args.repeats,
                   permutation_sequences=args.permutation_sequences, window=args.window, artifact=args.artifact)
    contract, sequences, out = check_explain_inputs(args.run_dir, args.data, args.out, overwrite=args.overwrite,
                                                    fill=args.fill, **options)

    from tfseq.startup import start_tensorflow

    start_tensorflow(threads=True)
    from tfseq.workflows.explain import explain_sequences

    done = explain_sequences(args.run_dir, contract, sequences, out=out, overwrite=args.overwrite, seed=args.seed,
                             verify=args.verify, data=str(args.data), **options)
    completeness = done.completeness
    verdict = "within" if completeness["within_tolerance"] else "ABOVE (raise --ig-steps)"
    print(f"explained {done.sequences:,} sequences of {args.data}; completeness error "
          f"{completeness['max_relative_error']:.3g} max, {verdict} the tolerance {completeness['tolerance']:g}")
    rows = done.features[:args.top]
    width = max(len("feature"), *(len(r["feature"]) for r in rows))
    print(f"{'rank':>4}  {'feature':<{width}}  {'mean |attr|':>11}  {'share':>6}  "
          f"{'permutation (' + done.permutation_metric + ')':>24}  {'perm rank':>9}")
    for r in rows:
        print(f"{r['rank']:>4}  {r['feature']:<{width}}  {r['mean_abs_attribution']:>11.4g}  {r['share']:>6.1%}  "
              f"{r['permutation_importance']:>24.4g}  {r['permutation_rank']:>9}")
    print(f"wrote {done.out}")
    return 0
