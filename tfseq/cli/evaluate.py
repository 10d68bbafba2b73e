"""``tfseq evaluate``: metrics, plots and a decision threshold for a RUN on labelled data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfseq.cli.args import Subparsers, number_in, positive_int

if TYPE_CHECKING:
    from tfseq.run import DataContract

EXAMPLES = """examples:
  tfseq evaluate runs/lstm holdout.csv
  tfseq evaluate runs/lstm holdout.csv --min-recall 0.95    pick and store the threshold that catches 95 % of fails
  tfseq evaluate runs/stream holdout.csv --targets recall=0.95,precision=0.8    streaming: earliest step meeting them"""


def _targets(text: str) -> dict[str, float]:
    targets = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            targets[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected metric=minimum pairs such as recall=0.9, got {item!r}") from None
    return targets


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="metrics, confusion matrix, ROC and PR curves of a RUN on labelled data",
        description=(
            "Evaluate the model of RUN on labelled long-format DATA with the columns and features it was "
            "trained on: metrics (printed and written to RUN/evaluation.json), confusion matrix and, for "
            "binary tasks, ROC and PR curves in RUN/plots/. --min-recall picks the decision threshold that "
            "reaches that recall of class 1 on DATA and stores it in RUN for predict and export."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="RUN directory from tfseq train")
    parser.add_argument("data", type=Path, metavar="DATA", help="labelled long-format .csv or .parquet file, a directory or glob of them, or STDF files")
    parser.add_argument("--min-recall", type=number_in(0, 1, high_closed=True), metavar="R",
                        help="store the highest threshold whose recall of class 1 on DATA is >= R (binary)")
    parser.add_argument("--label-col", metavar="C", help="target column (default: the one trained on)")
    parser.add_argument("--fill", choices=("ffill", "zero"), help="repair NaN/inf features (default: as in training)")
    parser.add_argument("--targets", type=_targets, metavar="M=V[,M=V]",
                        help="streaming RUNs: the minimums defining the earliest step reported "
                             "(default: accuracy=0.85,recall=0.9,precision=0.8)")
    parser.add_argument("--season", type=positive_int, metavar="N",
                        help="forecasts: season length in steps, for the MASE against the seasonal naive forecast")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tfseq.workflows.evaluate import load_evaluation_data

    # Bad flags or data fail before TensorFlow starts.
    contract, sequences = load_evaluation_data(args.run_dir, args.data, min_recall=args.min_recall,
                                               label_col=args.label_col, fill=args.fill)
    if args.targets is not None:
        from tfseq.workflows.evaluate import check_targets

        check_targets(args.targets)

    from tfseq.startup import start_tensorflow

    start_tensorflow(threads=True)
    from tfseq.workflows.evaluate import evaluate_sequences

    result = evaluate_sequences(args.run_dir, contract, sequences, data=str(args.data),
                                min_recall=args.min_recall, season=args.season, targets=args.targets)
    _print(result, contract, args)
    return 0


def _print(result: dict[str, Any], contract: DataContract, args: argparse.Namespace) -> None:
    metrics = result["metrics"]
    rows = [("data", f"{args.data}: {result['sequences']:,} sequences, task {contract.task}")]
    for key in ("accuracy", "precision", "recall", "f1", "auc", "mae", "rmse", "r2", "mase_last_value",
                "mase_seasonal"):
        if key in metrics:
            rows.append((key, f"{metrics[key]:.4f}"))
    if "threshold" in metrics:
        stored = " (stored in the RUN)" if args.min_recall is not None else ""
        rows.append(("threshold", f"{metrics['threshold']:.4g}{stored}"))
    if "confusion_matrix" in metrics:
        names = contract.class_names
        assert names is not None  # a classifier's contract names its classes
        width = max(len(n) for n in names)
        rows.append(("confusion", "rows: true, columns: predicted " + " ".join(f"{n:>{width}}" for n in names)))
        for name, row in zip(names, metrics["confusion_matrix"]):
            rows.append(("", f"{name:>{width}} " + " ".join(f"{v:>{width}}" for v in row)))
    if result.get("early_warning"):
        found = result["early_warning"]["earliest_step"]
        targets = ", ".join(f"{k} >= {v:.2f}" for k, v in result["early_warning"]["targets"].items())
        rows.append(("per step", f"targets ({targets}) met from step {found}" if found
                     else f"targets ({targets}) met at no step"))
    if result.get("policy"):
        rows.extend(policy_rows(result["policy"]))
    rows.append(("written", f"{args.run_dir / 'evaluation.json'}, {args.run_dir / 'plots'}/"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def policy_rows(outcome: dict[str, Any]) -> list[tuple[str, str]]:
    """Printed lines of an adaptive-test policy's outcome (:func:`tfseq.analysis.adaptive_test.policy_outcome`)."""
    confidence = 100 * outcome["confidence"]

    def rate(name: str) -> str:
        r = outcome[name]
        return (f"{r['count']:,} of {outcome['devices']:,} devices ({100 * r['rate']:.3f} %), "
                f"upper bound {100 * r['upper_bound']:.3f} % at {confidence:.0f} %")

    decisions = outcome["decisions"]
    return [("test saved", f"{100 * outcome['steps_saved']:.1f} % of the test steps"),
            ("escapes", rate("escapes")), ("scraps", rate("scraps")),
            ("decisions", ", ".join(f"{name} {count:,}" for name, count in decisions.items()))]
