"""Fit a streaming RUN's adaptive-test policy on labelled calibration data and store it in the RUN."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfseq.errors import InputError

if TYPE_CHECKING:
    from tfseq.data.sequences import SequenceSet
    from tfseq.run import DataContract


def load_calibration_data(run_dir: Path, data: Path, *, max_escape: float, max_scrap: float = 0.01,
                          confidence: float = 0.95, step_costs: Any = None, label_col: str | None = None,
                          fill: str | None = None) -> tuple[DataContract, SequenceSet]:
    """Checks the RUN and the bounds, and loads ``data`` as the RUN expects (no model is loaded yet).

    Raises:
        InputError: for a RUN that is not a binary streaming one, bounds outside (0, 1), the RUN's own
            training data, calibration data without devices of both outcomes, or bad data.
    """
    from tfseq.analysis.adaptive_test import check_fraction
    from tfseq.workflows.evaluate import load_evaluation_data

    for name, value in (("max_escape", max_escape), ("max_scrap", max_scrap), ("confidence", confidence)):
        check_fraction(name, value)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such RUN directory.")
    from tfseq.run import read_contract

    contract = read_contract(run_dir)
    if not contract.streaming:
        raise InputError(f"{run_dir}: the model answers once per sequence; expected a streaming RUN "
                         "(tfseq train --streaming) whose answer after every step a policy can act on.")
    if contract.task != "binary":
        raise InputError(f"{run_dir}: a {contract.task} model; expected a binary (pass/fail) streaming model.")
    trained_on = contract.extra.get("data")
    if trained_on and Path(trained_on).exists() and Path(trained_on).resolve() == Path(data).resolve():
        raise InputError(f"{data}: is the data the RUN was trained on; expected held-out calibration devices "
                         "(the bounds hold only for devices the model never saw).")
    contract, sequences = load_evaluation_data(run_dir, data, label_col=label_col, fill=fill)
    assert sequences.y is not None
    for label, outcome in ((1, "failing"), (0, "good")):
        if not np.any(sequences.y == label):
            raise InputError(f"{data}: holds no {outcome} device; expected labelled calibration devices of both "
                             "outcomes.")
    if step_costs is not None and len(step_costs) != contract.steps:
        raise InputError(f"Received {len(step_costs)} step costs; expected one per step of the model "
                         f"({contract.steps}).", arguments=("step_costs",))
    return contract, sequences


def fit_run_policy(run_dir: Path, data: Path, *, max_escape: float, max_scrap: float = 0.01,
                   confidence: float = 0.95, early_pass: bool = True, early_fail: bool = True, min_step: int = 1,
                   step_costs: Any = None, label_col: str | None = None, fill: str | None = None,
                   seed: int = 0) -> dict[str, Any]:
    """Fits the adaptive-test policy of a streaming RUN and writes ``RUN/policy.json``.

    The policy (:class:`tfseq.models.policy.AdaptiveTestPolicy`) stops a device's test early
    when its P(fail) says so, keeping the escape and scrap rates under ``max_escape`` and
    ``max_scrap`` as one-sided upper confidence bounds (:func:`tfseq.analysis.adaptive_test.fit_policy`).
    ``evaluate``, ``predict`` and ``export`` then use it. Also writes ``RUN/plots/policy.png``.

    Args:
        run_dir: A streaming binary RUN (``tfseq train --streaming``).
        data: Labelled long-format calibration data the model was not trained on.
        max_escape: Bound on failing devices passed early, as a fraction of all devices.
        max_scrap: Bound on good devices failed early, as a fraction of all devices.
        confidence: Probability that the bounds hold.
        early_pass: Allow early ``pass`` decisions.
        early_fail: Allow early ``fail`` decisions.
        min_step: First step at which a test may stop.
        step_costs: Test cost of each step (default: 1 each).
        label_col: Target column, if not the one trained on.
        fill: ``ffill`` / ``zero`` repair of NaN / inf; default: as in training.
        seed: Seed of the calibration split.

    Returns:
        ``policy`` (policy.json's content), ``outcome`` (its figures on the test part of the calibration devices),
        ``stops_early`` and ``data``.

    Raises:
        InputError: see :func:`load_calibration_data`.
    """
    contract, sequences = load_calibration_data(run_dir, data, max_escape=max_escape, max_scrap=max_scrap,
                                                confidence=confidence, step_costs=step_costs,
                                                label_col=label_col, fill=fill)
    return fit_sequences_policy(run_dir, contract, sequences, data=str(data), max_escape=max_escape,
                                max_scrap=max_scrap, confidence=confidence, early_pass=early_pass,
                                early_fail=early_fail, min_step=min_step, step_costs=step_costs, seed=seed)


def fit_sequences_policy(run_dir: Path, contract: DataContract, sequences: SequenceSet, *, data: str,
                         max_escape: float, max_scrap: float = 0.01, confidence: float = 0.95,
                         early_pass: bool = True, early_fail: bool = True, min_step: int = 1,
                         step_costs: Any = None, seed: int = 0) -> dict[str, Any]:
    """:func:`fit_run_policy` on sequences already loaded by :func:`load_calibration_data`."""
    from tfseq.analysis.adaptive_test import clopper_pearson_upper, fit_policy
    from tfseq.export.runtimes import load_runner
    from tfseq.io import write_json_atomic
    from tfseq.models.policy import POLICY_FILE
    from tfseq.plots import plot_policy
    from tfseq.workflows.scoring import head_output

    run_dir = Path(run_dir)
    assert sequences.y is not None  # checked by load_calibration_data
    runner = load_runner(run_dir)
    output = head_output(runner.predict(sequences.x), contract, run_dir)
    policy = fit_policy(np.asarray(output)[..., 0], sequences.y, lengths=sequences.lengths,
                        max_escape=max_escape, max_scrap=max_scrap, confidence=confidence, early_pass=early_pass,
                        early_fail=early_fail, min_step=min_step, step_costs=step_costs, seed=seed)
    report = {**policy.report, "data": data}
    policy = type(policy)(t_fail=policy.t_fail, t_pass=policy.t_pass, positive_class=policy.positive_class,
                          report=report)
    outcome = report["calibration"]
    n = outcome["devices"]
    chosen = {"steps_saved": outcome["steps_saved"],
              "escape_bound": clopper_pearson_upper(outcome["escapes"]["count"], n, confidence)}
    plot_policy(report["frontier"], chosen if policy.stops_early else None, outcome["decided_at"],
                run_dir / "plots" / "policy.png", max_escape=max_escape)
    write_json_atomic(run_dir / POLICY_FILE, policy.to_dict())
    return {"policy": policy.to_dict(), "outcome": outcome, "stops_early": policy.stops_early, "data": data}
