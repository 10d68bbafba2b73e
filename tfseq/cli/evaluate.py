"""``tfseq evaluate``: metrics, plots and a decision threshold for a RUN on labelled data."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from tfseq.cli.args import number_in
from tfseq.errors import InputError

EXAMPLES = """examples:
  tfseq evaluate runs/lstm holdout.csv
  tfseq evaluate runs/lstm holdout.csv --min-recall 0.95    pick and store the threshold that catches 95 % of fails"""


def add_parser(sub) -> None:
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
    parser.add_argument("data", type=Path, metavar="DATA", help="labelled long-format .csv or .parquet file")
    parser.add_argument("--min-recall", type=number_in(0, 1, high_closed=True), metavar="R",
                        help="store the highest threshold whose recall of class 1 on DATA is >= R (binary)")
    parser.add_argument("--label-col", metavar="C", help="target column (default: the one trained on)")
    parser.add_argument("--fill", choices=("ffill", "zero"), help="repair NaN/inf features (default: as in training)")
    parser.set_defaults(run=run)


def threshold_for_recall(y_true: np.ndarray, p: np.ndarray, min_recall: float) -> float:
    """The highest threshold on ``p(class 1)`` whose recall of class 1 is at least ``min_recall``.

    Raises:
        InputError: if ``y_true`` holds no sequence of class 1.
    """
    scores = np.sort(np.asarray(p, dtype=np.float64).reshape(-1)[np.asarray(y_true).reshape(-1) == 1])[::-1]
    if len(scores) == 0:
        raise InputError("Received data without a sequence of class 1; expected some to choose a threshold for --min-recall.")
    k = max(1, math.ceil(min_recall * len(scores) - 1e-9))
    return float(scores[k - 1])


def run(args: argparse.Namespace) -> int:
    from tfseq.cli.data_args import head_output, load_for_contract
    from tfseq.run import read_contract

    if not args.run_dir.is_dir():
        raise InputError(f"{args.run_dir}: no such RUN directory.")
    contract = read_contract(args.run_dir)
    if args.min_recall is not None and contract.task != "binary":
        raise InputError(f"Received --min-recall for a {contract.task} model; expected a binary model.")
    data = load_for_contract(args.data, contract, labels=True, fill=args.fill, label_col=args.label_col)

    from tfseq.startup import start_tensorflow

    start_tensorflow(threads=True)
    from tfseq.evaluation import classification_metrics, regression_metrics
    from tfseq.export.runtimes import load_runner
    from tfseq.io import write_json_atomic
    from tfseq.plots import plot_confusion_matrices, plot_pr_curve, plot_roc_curve
    from tfseq.run import update_contract

    runner = load_runner(args.run_dir)
    output = head_output(runner.predict(data.x), contract, args.run_dir)
    plots = args.run_dir / "plots"
    result: dict[str, Any] = {"data": str(args.data), "sequences": len(data), "task": contract.task}
    if contract.task in ("binary", "multiclass"):
        threshold = contract.threshold
        if args.min_recall is not None:
            threshold = threshold_for_recall(data.y, output, args.min_recall)
            update_contract(args.run_dir, threshold=threshold)
            result["min_recall"] = args.min_recall
        metrics = classification_metrics(data.y, output, threshold=threshold)
        plot_confusion_matrices({f"evaluation ({len(data):,} sequences)": metrics["confusion_matrix"]},
                                contract.class_names, plots / "evaluation_confusion_matrix.png")
        if contract.task == "binary" and len(np.unique(data.y)) == 2:
            plot_roc_curve(data.y, output, plots / "roc_curve.png", threshold=threshold)
            plot_pr_curve(data.y, output, plots / "pr_curve.png", threshold=threshold)
    else:
        metrics = regression_metrics(data.y, output)
    result["metrics"] = metrics
    write_json_atomic(args.run_dir / "evaluation.json", result)
    _print(result, contract, args)
    return 0


def _print(result: dict[str, Any], contract, args) -> None:
    metrics = result["metrics"]
    rows = [("data", f"{args.data}: {result['sequences']:,} sequences, task {contract.task}")]
    for key in ("accuracy", "precision", "recall", "f1", "auc", "mae", "rmse", "r2"):
        if key in metrics:
            rows.append((key, f"{metrics[key]:.4f}"))
    if "threshold" in metrics:
        stored = " (stored in the RUN)" if args.min_recall is not None else ""
        rows.append(("threshold", f"{metrics['threshold']:.4g}{stored}"))
    if "confusion_matrix" in metrics:
        names = contract.class_names
        width = max(len(n) for n in names)
        rows.append(("confusion", "rows: true, columns: predicted " + " ".join(f"{n:>{width}}" for n in names)))
        for name, row in zip(names, metrics["confusion_matrix"]):
            rows.append(("", f"{name:>{width}} " + " ".join(f"{v:>{width}}" for v in row)))
    rows.append(("written", f"{args.run_dir / 'evaluation.json'}, {args.run_dir / 'plots'}/"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
