"""Evaluate a RUN on labelled data: metrics, plots, and optionally a decision threshold stored in it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfseq.errors import InputError
from tfseq.workflows.scoring import head_output, load_for_contract

if TYPE_CHECKING:
    from tfseq.data.sequences import SequenceSet
    from tfseq.run import DataContract


def threshold_for_recall(y_true: np.ndarray, p: np.ndarray, min_recall: float) -> float:
    """The highest threshold on ``p(class 1)`` whose recall of class 1 is at least ``min_recall``.

    Raises:
        InputError: if ``y_true`` holds no sequence of class 1.
    """
    scores = np.sort(np.asarray(p, dtype=np.float64).reshape(-1)[np.asarray(y_true).reshape(-1) == 1])[::-1]
    if len(scores) == 0:
        raise InputError("Received data without a sequence of class 1; expected some to choose a threshold "
                         "for min_recall.", arguments=("min_recall",))
    k = max(1, math.ceil(min_recall * len(scores) - 1e-9))
    return float(scores[k - 1])


def load_evaluation_data(run_dir: Path, data: Path, *, min_recall: float | None = None,
                            label_col: str | None = None, fill: str | None = None) -> tuple[DataContract, SequenceSet]:
    """Reads the RUN's contract and loads ``data`` as it expects (no model is loaded yet).

    Returns:
        ``(contract, sequences)``.

    Raises:
        InputError: for a missing RUN, ``min_recall`` on a model that is not binary, or bad data.
    """
    from tfseq.run import read_contract

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such RUN directory.")
    contract = read_contract(run_dir)
    if min_recall is not None and contract.task != "binary":
        raise InputError(f"Received min_recall for a {contract.task} model; expected a binary model.",
                         arguments=("min_recall",))
    return contract, load_for_contract(data, contract, labels=True, fill=fill, label_col=label_col)


def evaluate_run(run_dir: Path, data: Path, *, min_recall: float | None = None, label_col: str | None = None,
                 fill: str | None = None, season: int | None = None,
                 targets: dict[str, float] | None = None) -> dict[str, Any]:
    """Evaluates the model of ``run_dir`` on labelled long-format ``data``.

    Writes ``RUN/evaluation.json`` and, for classifiers, ``RUN/plots/evaluation_confusion_matrix.png``
    (binary: also ``roc_curve.png`` and ``pr_curve.png``).

    Args:
        run_dir: A RUN directory.
        data: Labelled long-format file with the columns the model was trained on.
        min_recall: Binary models: choose the highest threshold whose recall of class 1 on ``data``
            is at least this, and store it in the RUN (``predict`` and ``export`` use it).
        label_col: Target column, if not the one trained on.
        fill: ``ffill`` / ``zero`` repair of NaN / inf; default: as in training.
        season: Forecasts: the season length in steps, for the MASE against the seasonal naive
            forecast (:func:`tfseq.evaluation.scaled_errors`).
        targets: Streaming binary RUNs: the metrics (``accuracy``, ``precision``, ``recall``, ``f1``,
            ``auc``) whose minimums define the earliest step reported; default
            :data:`tfseq.evaluation.EARLY_WARNING_TARGETS`.

    Returns:
        The content of ``evaluation.json``: ``data``, ``sequences``, ``task``, ``metrics`` (and
        ``min_recall``).

    Raises:
        InputError: see :func:`load_evaluation_data`.
    """
    contract, sequences = load_evaluation_data(run_dir, data, min_recall=min_recall, label_col=label_col,
                                               fill=fill)
    return evaluate_sequences(run_dir, contract, sequences, data=str(data), min_recall=min_recall, season=season,
                              targets=targets)


def evaluate_sequences(run_dir: Path, contract: DataContract, sequences: SequenceSet, *, data: str,
                       min_recall: float | None = None, season: int | None = None,
                       targets: dict[str, float] | None = None) -> dict[str, Any]:
    """:func:`evaluate_run` on sequences already loaded by :func:`load_evaluation_data`."""
    from tfseq.checks import positive_int
    from tfseq.evaluation import classification_metrics, last_step_output, regression_metrics, scaled_errors
    from tfseq.export.runtimes import load_runner
    from tfseq.io import write_json_atomic
    from tfseq.plots import plot_confusion_matrices, plot_pr_curve, plot_roc_curve
    from tfseq.run import update_contract

    if sequences.y is None:
        raise InputError("Received sequences without targets; expected the targets to evaluate on.")
    season = positive_int("season", season, allow_none=True)

    run_dir = Path(run_dir)
    runner = load_runner(run_dir)
    output = head_output(runner.predict(sequences.x), contract, run_dir)
    plots = run_dir / "plots"
    result: dict[str, Any] = {"data": str(data), "sequences": len(sequences), "task": contract.task}
    if contract.streaming:
        result.update(streaming_evaluation(run_dir, contract, sequences, output, targets=targets))
        output = last_step_output(output, sequences.lengths)
    if contract.task in ("binary", "multiclass"):
        threshold = contract.threshold
        if min_recall is not None:
            threshold = threshold_for_recall(sequences.y, output, min_recall)
            update_contract(run_dir, threshold=threshold)
            result["min_recall"] = min_recall
        metrics = classification_metrics(sequences.y, output, threshold=threshold)
        plot_confusion_matrices({f"evaluation ({len(sequences):,} sequences)": metrics["confusion_matrix"]},
                                contract.class_names or [], plots / "evaluation_confusion_matrix.png")
        if contract.task == "binary" and len(np.unique(sequences.y)) == 2:
            plot_roc_curve(sequences.y, output, plots / "roc_curve.png", threshold=threshold)
            plot_pr_curve(sequences.y, output, plots / "pr_curve.png", threshold=threshold)
    else:
        metrics = regression_metrics(sequences.y, output)
        if contract.task == "forecast" and contract.label_col in sequences.feature_names:
            metrics.update(scaled_errors(sequences.x, sequences.y, output,
                                         sequences.feature_names.index(contract.label_col), season=season))
    result["metrics"] = metrics
    write_json_atomic(run_dir / "evaluation.json", result)
    return result


def check_targets(targets: dict[str, float] | None) -> dict[str, float]:
    """``targets`` checked (metric names of a binary model, values in [0, 1]); the study's by default.

    Raises:
        InputError: for an unknown metric or a value outside [0, 1].
    """
    from tfseq.evaluation import EARLY_WARNING_TARGETS

    if targets is None:
        return dict(EARLY_WARNING_TARGETS)
    known = ("accuracy", "precision", "recall", "f1", "auc")
    for name, value in targets.items():
        if name not in known:
            raise InputError(f"Received target {name!r}; expected metrics among {', '.join(known)}.",
                             arguments=("targets",))
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
            raise InputError(f"Received target {name}={value!r}; expected a number in [0, 1].", arguments=("targets",))
    if not targets:
        raise InputError("Received no targets; expected at least one metric=minimum.", arguments=("targets",))
    return {name: float(value) for name, value in targets.items()}


def streaming_evaluation(run_dir: Path, contract: DataContract, sequences: SequenceSet,
                         output: np.ndarray, *, targets: dict[str, float] | None = None) -> dict[str, Any]:
    """A streaming RUN's metrics after every step, the earliest step meeting the early-warning targets and,
    when the RUN holds an adaptive-test policy, what the policy does on these devices.

    Writes ``RUN/plots/evaluation_per_step.png``.
    """
    from tfseq.analysis.adaptive_test import policy_outcome
    from tfseq.evaluation import earliest_step, per_step_metrics
    from tfseq.models.policy import read_policy
    from tfseq.plots import plot_per_step

    assert sequences.y is not None  # checked by the caller
    binary = contract.task == "binary"
    targets = check_targets(targets)
    rows = per_step_metrics(contract.task, sequences.y, output, sequences.lengths, threshold=contract.threshold)
    found = earliest_step(rows, targets) if binary else None
    plot_per_step(rows, run_dir / "plots" / "evaluation_per_step.png", targets=targets if binary else None,
                  earliest=found)
    result: dict[str, Any] = {"per_step": rows}
    if binary:
        result["early_warning"] = {"targets": dict(targets), "earliest_step": found}
        policy = read_policy(run_dir)
        if policy is not None:
            result["policy"] = policy_outcome(
                policy, np.asarray(output)[..., 0], sequences.y, lengths=sequences.lengths,
                confidence=float(policy.report.get("confidence", 0.95)), step_costs=policy.report.get("step_costs"))
    return result
