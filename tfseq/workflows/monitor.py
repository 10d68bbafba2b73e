"""Monitor: is new data still like the data a model was trained on? ``drift.json`` and a plot.

The reference statistics come from the RUN (``reference.json``) or the export (``reference`` in
``manifest.json``); the comparison is :func:`tfseq.analysis.drift.compare_with_reference`. Two
steps, so the command line answers bad input before TensorFlow starts:
:func:`load_monitor_inputs` (reference, contract and data, no model) and :func:`monitor_sequences`
(the model's predictions, the comparison, the report written whole). :func:`monitor_file` does both.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfseq.analysis.drift import ALPHA, MAX_OUT_OF_RANGE, PSI_THRESHOLD, check_thresholds
from tfseq.analysis.reference import RANGE_MARGIN, find_reference
from tfseq.errors import InputError

if TYPE_CHECKING:
    from tfseq.data.sequences import SequenceSet
    from tfseq.run import DataContract

#: Where ``tfseq monitor`` writes without ``--out``: ``monitor/`` in the current directory.
DEFAULT_OUT = Path("monitor")
#: The report's file names inside the output directory.
DRIFT_JSON = "drift.json"
DRIFT_PLOT = "plots/drift.png"

__all__ = ["MonitorInputs", "load_monitor_inputs", "monitor_sequences", "monitor_file",
           "DEFAULT_OUT", "DRIFT_JSON", "DRIFT_PLOT"]


@dataclass
class MonitorInputs:
    """What :func:`monitor_sequences` compares: checked, with no model loaded yet.

    Attributes:
        artifact: The model to run (a RUN directory, ``.keras``, SavedModel, ``.tflite``, ``.onnx``).
        contract: Its data contract.
        reference: Its reference statistics.
        reference_source: The file the reference was read from.
        sequences: The new data, as the model takes it.
        data: How the data is named in the report.
        out: The report directory.
    """

    artifact: Path
    contract: DataContract
    reference: dict[str, Any]
    reference_source: Path
    sequences: SequenceSet
    data: str
    out: Path


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / DRIFT_JSON).is_file())):
        raise InputError(f"{out}: exists and is not a monitor report ({DRIFT_JSON}); choose another out.",
                         arguments=("out",))


def load_monitor_inputs(
    artifact: Path,
    data: Path,
    *,
    out: Path = DEFAULT_OUT,
    fill: str | None = None,
    psi_threshold: float = PSI_THRESHOLD,
    alpha: float = ALPHA,
    max_out_of_range: float = MAX_OUT_OF_RANGE,
    range_margin: float = RANGE_MARGIN,
) -> MonitorInputs:
    """Checks everything :func:`monitor_sequences` needs and loads the data, without loading a model.

    Raises:
        InputError: for thresholds out of range (see :func:`tfseq.analysis.drift.check_thresholds`),
            an ``out`` that is not a monitor report, an artifact without reference statistics
            (:func:`tfseq.analysis.reference.find_reference`), or data the model cannot take (a missing trained feature ...).
    """
    from tfseq.data.files import read_columns
    from tfseq.workflows.scoring import load_for_contract

    check_thresholds(psi_threshold, alpha, max_out_of_range, range_margin)
    out = Path(out)
    _check_out(out)
    reference, contract, source, model = find_reference(artifact)
    assert reference is not None and source is not None  # required: find_reference raises otherwise
    columns = set(read_columns(Path(data)))
    missing = [name for name in contract.columns if name not in columns]
    if missing:
        raise InputError(
            f"{data}: has no column {missing[0]!r}" + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f", a feature the model was trained on; expected every trained feature "
            f"({', '.join(contract.columns[:8])}{' ...' if len(contract.columns) > 8 else ''})."
        )
    sequences = load_for_contract(Path(data), contract, labels=False, fill=fill)
    return MonitorInputs(model, contract, reference, source, sequences, str(data), out)


def monitor_sequences(
    inputs: MonitorInputs,
    *,
    psi_threshold: float = PSI_THRESHOLD,
    alpha: float = ALPHA,
    max_out_of_range: float = MAX_OUT_OF_RANGE,
    range_margin: float = RANGE_MARGIN,
    predictions: bool = True,
    verify: bool = True,
    batch_size: int = 4096,
) -> dict[str, Any]:
    """Compares ``inputs.sequences`` with the reference; writes ``drift.json`` and ``plots/drift.png``.

    The report directory ``inputs.out`` appears whole (an earlier report there is replaced).

    Args:
        inputs: From :func:`load_monitor_inputs`.
        psi_threshold: PSI above which a distribution may count as drifted.
        alpha: Family-wise significance level of the KS tests (Holm-adjusted).
        max_out_of_range: Largest fraction of values (or lengths) outside the training range.
        range_margin: Widening of the training range (:func:`tfseq.analysis.reference.out_of_range`).
        predictions: Run the model for the prediction drift.
        verify: Check an exported artifact's sha256 against its manifest.
        batch_size: Sequences per prediction call.

    Returns:
        The report (the content of ``drift.json``; see
        :func:`tfseq.analysis.drift.compare_with_reference`) plus ``out``.

    Raises:
        InputError: for thresholds out of range, or an artifact the data does not fit.
    """
    from tfseq.analysis.drift import compare_with_reference
    from tfseq.analysis.reference import out_of_range, prediction_scores
    from tfseq.io import atomic_directory, make_readable, write_json_atomic

    check_thresholds(psi_threshold, alpha, max_out_of_range, range_margin)
    sequences = inputs.sequences
    output = _predict(inputs, batch_size, verify) if predictions and inputs.reference.get("prediction") else None
    report = compare_with_reference(
        inputs.reference, sequences.x, sequences.lengths, sequences.feature_names, output=output,
        psi_threshold=psi_threshold, alpha=alpha, max_out_of_range=max_out_of_range, range_margin=range_margin,
    )
    flags = out_of_range(sequences, inputs.reference, margin=range_margin)
    report = {
        "drift": report.pop("drift"), "reasons": report.pop("reasons"),
        "artifact": str(inputs.artifact), "data": inputs.data, "reference": str(inputs.reference_source),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "out_of_range_sequences": {"count": int(flags.sum()), "fraction": float(flags.mean()),
                                   "ids": [str(i) for i in np.asarray(sequences.ids)[flags][:100]]},
        **report,
    }
    scores = None
    if output is not None and inputs.reference.get("prediction"):
        scores = prediction_scores(output, str(inputs.reference["prediction"].get("task", inputs.contract.task)))[1]
    out = Path(inputs.out)
    _check_out(out)
    with atomic_directory(out, overwrite=out.exists()) as tmp:
        write_json_atomic(tmp / DRIFT_JSON, report)
        _plot(report, inputs.reference, scores, tmp / DRIFT_PLOT)
        make_readable(tmp)
    return {**report, "out": out}


def monitor_file(
    artifact: Path,
    data: Path,
    *,
    out: Path = DEFAULT_OUT,
    fill: str | None = None,
    psi_threshold: float = PSI_THRESHOLD,
    alpha: float = ALPHA,
    max_out_of_range: float = MAX_OUT_OF_RANGE,
    range_margin: float = RANGE_MARGIN,
    predictions: bool = True,
    verify: bool = True,
) -> dict[str, Any]:
    """Monitors long-format ``data`` against ``artifact``'s reference statistics; writes the report to ``out``.

    Args:
        artifact: A RUN directory, or an exported artifact beside its ``manifest.json``.
        data: Long-format ``.csv`` / ``.parquet`` with the id, time and trained feature columns.
        out: The report directory (``drift.json``, ``plots/drift.png``).
        fill: ``ffill`` / ``zero`` repair of NaN / inf; default: as in training.
        psi_threshold: PSI above which a distribution may count as drifted (default 0.1).
        alpha: Family-wise significance level of the KS tests, Holm-adjusted (default 0.01).
        max_out_of_range: Largest fraction of values outside the training range (default 0.01).
        range_margin: Widening of the training range (default 0.25).
        predictions: Run the model for the prediction drift.
        verify: Check an exported artifact's sha256 against its manifest.

    Returns:
        The report; ``report["drift"]`` says whether anything drifted.

    Raises:
        InputError: as :func:`load_monitor_inputs` and :func:`monitor_sequences`.
    """
    inputs = load_monitor_inputs(artifact, data, out=out, fill=fill, psi_threshold=psi_threshold, alpha=alpha,
                                 max_out_of_range=max_out_of_range, range_margin=range_margin)
    return monitor_sequences(inputs, psi_threshold=psi_threshold, alpha=alpha, max_out_of_range=max_out_of_range,
                             range_margin=range_margin, predictions=predictions, verify=verify)


def _predict(inputs: MonitorInputs, batch_size: int, verify: bool) -> np.ndarray:
    from tfseq.data.long_format import fit_steps
    from tfseq.export.runtimes import load_runner
    from tfseq.workflows.scoring import head_output

    runner = load_runner(inputs.artifact, verify=verify)
    sequences = inputs.sequences
    if runner.steps is not None and runner.steps != sequences.steps:
        sequences = fit_steps(sequences, int(runner.steps))
    parts = [head_output(runner.predict(np.ascontiguousarray(sequences.x[i:i + batch_size], dtype=np.float32)),
                         inputs.contract, inputs.artifact)
             for i in range(0, len(sequences), batch_size)]
    return np.concatenate(parts)


def _plot(report: dict[str, Any], reference: dict[str, Any], scores: np.ndarray | None, path: Path) -> Path:
    """Per-feature PSI bars (drifted in red, the threshold dashed) and the prediction distribution."""
    from tfseq.plots import _pyplot, _save

    plt = _pyplot()
    features = report["features"]
    with_scores = scores is not None and reference.get("prediction")
    height = max(4.5, 0.9 + 0.3 * len(features))
    fig, axes = plt.subplots(1, 2 if with_scores else 1, figsize=(12 if with_scores else 7, height), squeeze=False)
    ax = axes[0, 0]
    names = [f["name"] for f in features][::-1]
    values = [f["psi"] for f in features][::-1]
    colors = ["C3" if f["drift"] else "C0" for f in features][::-1]
    ax.barh(names, values, color=colors)
    ax.axvline(report["thresholds"]["psi_threshold"], color="k", linestyle="--", label="PSI threshold")
    ax.set(title="Feature drift (PSI of per-sequence means; red: drifted)", xlabel="PSI")
    ax.legend(loc="lower right")
    if with_scores:
        ax = axes[0, 1]
        prediction = reference["prediction"]
        sample = np.asarray(prediction["sample"], dtype=np.float64)
        bins = np.histogram_bin_edges(np.concatenate([sample, np.asarray(scores, dtype=np.float64)]), bins=30)
        ax.hist(sample, bins=bins, density=True, alpha=0.5, label="reference")
        ax.hist(scores, bins=bins, density=True, alpha=0.5, label="new data")
        drifted = " (drifted)" if (report.get("prediction") or {}).get("drift") else ""
        ax.set(title=f"Predictions: {prediction['kind']}{drifted}", xlabel=prediction["kind"], ylabel="density")
        ax.legend()
    for axis in axes.flat:
        axis.grid(alpha=0.3)
    return _save(fig, path)
