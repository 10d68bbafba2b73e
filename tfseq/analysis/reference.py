"""Reference statistics: what the training data looked like, saved so later data can be compared.

:func:`compute_reference` summarises the training sequences (valid steps only: padding never
counts) and the model's predictions on held-out data into a small JSON-able dict. ``tfseq train``,
the demo and ``tfseq tune --retrain`` write it to ``RUN/reference.json``; ``tfseq export`` copies it
into ``manifest.json`` under ``reference``. ``tfseq monitor`` compares new data with it
(:mod:`tfseq.analysis.drift`), and :func:`out_of_range` flags single sequences.

Why per-sequence summaries: the steps of one device are not independent (a device's process
offset is in every one of its steps), so a test that treated steps as independent samples would
find "significant" drift in data drawn from the training distribution itself. The means of
whole sequences are independent across devices; the distribution tests run on those.

Format (``format_version`` 1)::

    {"format_version": 1, "sequences": n, "steps": steps,
     "features": {name: {"quantiles": {"0.001": q, ..., "0.999": q}, "min": m, "max": M,
                         "mean": step mean, "std": step std,
                         "sequence_means": {"cuts": [...], "proportions": [...],
                                            "mean": m, "std": s, "sample": [...]}}},
     "lengths": {"min": a, "max": b, "cuts": [...], "proportions": [...], "sample": [...]},
     "prediction": {"kind": "p_<class>" | "confidence" | "value", "quantiles": {...},
                    "cuts": [...], "proportions": [...], "sample": [...],
                    "class_fractions": {name: fraction}} or None}

``cuts`` are the interior bin edges (deciles of the reference, ties merged) and ``proportions``
the reference's share of each bin; a bin ``k`` holds values in ``(cuts[k-1], cuts[k]]``.
``sample`` is a random sample of at most :data:`SAMPLE_SIZE` values for two-sample tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tfseq.data.sequences import valid_mask
from tfseq.errors import InputError

if TYPE_CHECKING:
    from tfseq.run import DataContract

#: Version of the reference format.
REFERENCE_VERSION = 1
#: Step-value quantiles stored per feature.
QUANTILES = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)
#: Per-sequence summaries kept per feature for two-sample tests (the JSON stays tens of KB).
SAMPLE_SIZE = 500
#: Significant digits of stored numbers.
DIGITS = 6
#: :func:`out_of_range`'s default margin: the [0.1 %, 99.9 %] range of the training steps widened by
#: this fraction of its width on each side.
RANGE_MARGIN = 0.25

__all__ = ["REFERENCE_VERSION", "QUANTILES", "SAMPLE_SIZE", "RANGE_MARGIN", "compute_reference",
           "prediction_scores", "sequence_means", "valid_mask", "bin_cuts", "bin_proportions",
           "read_reference", "check_reference", "find_reference", "FoundReference", "range_bounds", "out_of_range"]


def _round(values: Any) -> Any:
    """Floats rounded to :data:`DIGITS` significant digits, as plain Python numbers."""
    array = np.asarray(values, dtype=np.float64)
    rounded = [float(f"{v:.{DIGITS}g}") for v in array.reshape(-1)]
    return rounded if array.ndim else rounded[0]


def sequence_means(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``[n, features]`` mean of each feature over each sequence's valid steps (NaN for an empty one)."""
    x = np.asarray(x, dtype=np.float64)
    mask = valid_mask(lengths, x.shape[1])[:, :, None]
    count = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (x * mask).sum(axis=1) / np.maximum(count, 1), np.nan)


def bin_cuts(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """Interior edges of ``bins`` quantile bins of ``values``, ties merged (discrete data: fewer bins)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return np.zeros(0)
    return np.unique(np.quantile(values, np.arange(1, bins) / bins))


def bin_proportions(values: np.ndarray, cuts: Sequence[float] | np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin ``(cuts[k-1], cuts[k]]`` (the outer bins are open)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    index = np.searchsorted(np.asarray(cuts, dtype=np.float64), values, side="left")
    counts = np.bincount(index, minlength=len(cuts) + 1).astype(np.float64)
    return counts / max(1, len(values))


def _distribution(values: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    cuts = bin_cuts(values)
    sample = values if len(values) <= SAMPLE_SIZE else rng.choice(values, SAMPLE_SIZE, replace=False)
    return {"cuts": _round(cuts), "proportions": _round(bin_proportions(values, cuts)),
            "mean": _round(values.mean()) if len(values) else None,
            "std": _round(values.std()) if len(values) else None, "sample": _round(sample)}


def prediction_scores(output: np.ndarray, task: str,
                      class_names: Sequence[str] | None = None) -> tuple[str, np.ndarray]:
    """One number per sequence whose distribution is monitored, and its name.

    Binary: the probability of class 1 (``p_<class 1>``); multiclass: the confidence (highest
    class probability); regression: the value; forecast: the first forecast step.
    """
    output = np.asarray(output, dtype=np.float64)
    flat = output.reshape(len(output), -1)
    if task == "binary":
        names = list(class_names or ["0", "1"])
        return f"p_{names[-1]}", flat[:, -1]
    if task == "multiclass":
        return "confidence", flat.max(axis=1)
    return "value", flat[:, 0]


def compute_reference(
    x: np.ndarray,
    lengths: np.ndarray | None,
    feature_names: Sequence[str],
    *,
    output: np.ndarray | None = None,
    task: str = "binary",
    class_names: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The reference statistics of training sequences ``x`` (and of the model's ``output``).

    Args:
        x: Raw training sequences, ``[n, steps, features]``; steps past a sequence's length are
            ignored.
        lengths: Valid steps of each sequence (None: all ``steps``).
        feature_names: Names of the last axis of ``x``.
        output: The model's output on held-out (or training) sequences, for the prediction
            distribution; None stores none.
        task: The model's task (what ``output`` means).
        class_names: A classifier's class names.
        seed: Seed of the draw of the stored samples.

    Returns:
        A JSON-able dict (see the module docstring for the format).

    Raises:
        InputError: if ``x`` is not ``[n > 0, steps, len(feature_names)]``.

    Examples:
        >>> reference = compute_reference(data.x, data.lengths, data.feature_names)  # doctest: +SKIP
    """
    x = np.asarray(x)
    if x.ndim != 3 or not len(x) or x.shape[2] != len(feature_names):
        raise InputError(f"Received x of shape {x.shape}, expected [n > 0, steps, {len(feature_names)}].",
                         arguments=("x",))
    lengths = np.full(len(x), x.shape[1]) if lengths is None else np.asarray(lengths)
    rng = np.random.default_rng(seed)
    mask = valid_mask(lengths, x.shape[1])
    means = sequence_means(x, lengths)
    features: dict[str, Any] = {}
    for k, name in enumerate(feature_names):
        values = np.asarray(x[:, :, k][mask], dtype=np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            raise InputError(f"Received no valid steps of feature {name!r}; expected measurements.",
                             arguments=("x",))
        quantiles = np.quantile(values, QUANTILES)
        features[str(name)] = {
            "quantiles": {str(q): v for q, v in zip(QUANTILES, _round(quantiles))},
            "min": _round(values.min()), "max": _round(values.max()),
            "mean": _round(values.mean()), "std": _round(values.std()),
            "sequence_means": _distribution(means[:, k], rng),
        }
    length_stats = _distribution(lengths.astype(np.float64), rng)
    length_stats = {"min": int(lengths.min()), "max": int(lengths.max()), **length_stats,
                    "sample": [int(v) for v in length_stats["sample"]]}
    prediction = None
    if output is not None and len(output):
        kind, scores = prediction_scores(output, task, class_names)
        prediction = {"kind": kind, "task": task,
                      "quantiles": {str(q): v for q, v in zip(QUANTILES, _round(np.quantile(scores, QUANTILES)))},
                      **_distribution(scores, rng)}
        if task in ("binary", "multiclass"):
            flat = np.asarray(output, dtype=np.float64).reshape(len(output), -1)
            index = (flat[:, -1] >= 0.5).astype(int) if task == "binary" else flat.argmax(axis=1)
            names = list(class_names or [str(i) for i in range(max(2, flat.shape[1]))])
            prediction["class_fractions"] = {
                name: _round(np.mean(index == i)) for i, name in enumerate(names)}
    return {"format_version": REFERENCE_VERSION, "sequences": int(len(x)), "steps": int(x.shape[1]),
            "feature_names": [str(n) for n in feature_names], "features": features,
            "lengths": length_stats, "prediction": prediction}


def read_reference(path: Path) -> dict[str, Any]:
    """Reads a reference file (``RUN/reference.json``, written by :func:`tfseq.run.save_run`).

    Raises:
        InputError: if the file is missing, unreadable or not a reference of a known format.
    """
    path = Path(path)
    try:
        reference = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such reference statistics file.") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable reference statistics ({exc}).") from None
    check_reference(reference, str(path))
    return reference


def check_reference(reference: Any, where: str) -> dict[str, Any]:
    """``reference`` if it is a reference dict of a known format.

    Raises:
        InputError: naming ``where`` otherwise.
    """
    if not isinstance(reference, dict) or not isinstance(reference.get("features"), dict) \
            or not isinstance(reference.get("lengths"), dict):
        raise InputError(f"{where}: not tfseq reference statistics (no features and lengths).")
    if reference.get("format_version") != REFERENCE_VERSION:
        raise InputError(f"{where}: reference statistics of format {reference.get('format_version')!r}; "
                         f"expected format {REFERENCE_VERSION} (retrain or re-export with this tfseq).")
    return reference


class FoundReference(NamedTuple):
    """What :func:`find_reference` found."""

    reference: dict[str, Any] | None  #: the reference statistics (None: the artifact has none)
    contract: DataContract  #: the model's data contract
    source: Path | None  #: the file they were read from (``reference.json`` or ``manifest.json``)
    model: Path  #: the model file or directory to run


def find_reference(artifact: Path, *, required: bool = True) -> FoundReference:
    """The reference statistics of ``artifact``, with its contract and where they were found.

    ``artifact`` is a RUN directory (or its ``model.keras``), an exported ``.tflite`` / ``.onnx``
    file or SavedModel directory beside its ``manifest.json``, or an export directory (its ONNX
    artifact is the model, else its first one).

    Args:
        artifact: The RUN directory or exported artifact.
        required: Raise when the RUN or export has no reference statistics; with False,
            ``reference`` (and ``source``) are None then (``tfseq predict`` on older artifacts).

    Raises:
        InputError: for a missing artifact, one that is neither a RUN nor an export, and (when
            ``required``) a RUN or export without reference statistics (trained or exported before
            ``tfseq monitor``).
    """
    from tfseq.export.manifest import MANIFEST, read_manifest
    from tfseq.run import REFERENCE, DataContract, read_contract

    artifact = Path(artifact)
    if not artifact.exists():
        raise InputError(f"{artifact}: no such artifact.")
    for folder in (artifact, artifact.parent):
        if folder.is_dir() and (folder / "contract.json").is_file():
            if not (folder / REFERENCE).is_file():
                if not required:
                    return FoundReference(None, read_contract(folder), None, artifact)
                raise InputError(
                    f"{folder}: has no reference statistics ({REFERENCE}; RUNs trained before tfseq monitor "
                    "lack them); retrain it with tfseq train to monitor it."
                )
            return FoundReference(read_reference(folder / REFERENCE), read_contract(folder), folder / REFERENCE,
                                  artifact)
    resolved = artifact.resolve()
    for folder in (resolved, *list(resolved.parents)[:3]):
        if not (folder / MANIFEST).is_file():
            continue
        manifest = read_manifest(folder)
        source = folder / MANIFEST
        if not isinstance(manifest.get("contract"), dict):
            raise InputError(f"{source}: has no data contract; expected a manifest written by tfseq export.")
        contract = DataContract.from_config(manifest["contract"])
        model = artifact if folder != resolved else _export_artifact(folder, manifest)
        if not manifest.get("reference"):
            if not required:
                return FoundReference(None, contract, None, model)
            raise InputError(
                f"{source}: has no reference statistics (exported before tfseq monitor); re-export the RUN "
                "with tfseq export to monitor its artifacts."
            )
        return FoundReference(check_reference(manifest["reference"], str(source)), contract, source, model)
    raise InputError(
        f"{artifact}: carries no reference statistics; expected a RUN directory, or an exported artifact "
        "beside its manifest.json."
    )


def _export_artifact(folder: Path, manifest: dict[str, Any]) -> Path:
    """The artifact of an export directory that monitor runs: ONNX first, else the first listed."""
    artifacts = [a for a in manifest["artifacts"] if isinstance(a, dict) and a.get("path")]
    if not artifacts:
        raise InputError(f"{folder}: its manifest lists no artifacts; expected an export directory.")
    order = {"onnx": 0, "tflite": 1, "savedmodel": 2}
    best = min(artifacts, key=lambda a: (order.get(str(a.get("format")), 3), a.get("quantization") is not None))
    return folder / str(best["path"])


def range_bounds(reference: dict[str, Any], names: Sequence[str], margin: float) -> tuple[np.ndarray, np.ndarray]:
    """The training range of each feature in ``names``, widened by ``margin`` (see :func:`out_of_range`)."""
    low, high = [], []
    for name in names:
        q = reference["features"][name]["quantiles"]
        lo, hi = float(q["0.001"]), float(q["0.999"])
        width = hi - lo
        if width <= 0:  # a constant feature: widen by its size instead
            width = max(abs(lo), 1.0)
        low.append(lo - margin * width)
        high.append(hi + margin * width)
    return np.asarray(low), np.asarray(high)


def out_of_range(
    sequences: Any,
    reference: dict[str, Any],
    *,
    margin: float = RANGE_MARGIN,
    lengths: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Flags sequences the model never saw the like of: one boolean per sequence.

    A sequence is flagged when any of its valid steps has a feature outside the training range
    widened by ``margin`` (``[q0.1% - margin * w, q99.9% + margin * w]`` with ``w = q99.9% -
    q0.1%`` of the training steps), when a feature is NaN or infinite, or when its length is
    outside the training lengths (``[min, max]`` of the training sequences, as the model saw them:
    cut to its steps).

    Args:
        sequences: A :class:`tfseq.data.SequenceSet` (its ``x``, ``lengths`` and ``feature_names``
            are used), or a raw array ``[n, steps, features]`` in the reference's feature order.
        reference: Reference statistics (:func:`compute_reference`, ``RUN/reference.json`` or the
            ``reference`` of an export's manifest).
        margin: Widening of the range, as a fraction of its width (>= 0).
        lengths: Valid steps per sequence, for a raw array (default: all steps).
        feature_names: Names of a raw array's features (default: the reference's order).

    Returns:
        ``bool`` array ``[n]``.

    Raises:
        InputError: for a negative ``margin``, or features the reference does not know.

    Examples:
        >>> flags = out_of_range(sequences, read_reference(run_dir / "reference.json"))  # doctest: +SKIP
    """
    if not isinstance(margin, (int, float)) or not margin >= 0:
        raise InputError(f"Received an invalid value for argument margin, expected a number >= 0, got {margin!r}.",
                         arguments=("margin",))
    x = getattr(sequences, "x", sequences)
    x = np.asarray(x, dtype=np.float64)
    if lengths is None:
        lengths = getattr(sequences, "lengths", None)
    names = list(feature_names or getattr(sequences, "feature_names", None) or reference.get("feature_names")
                 or list(reference["features"]))
    if x.ndim != 3 or x.shape[2] != len(names):
        raise InputError(f"Received sequences of shape {x.shape}, expected [n, steps, {len(names)}].",
                         arguments=("sequences",))
    unknown = [n for n in names if n not in reference["features"]]
    if unknown:
        raise InputError(f"Received feature {unknown[0]!r}, which the reference statistics do not hold; "
                         f"expected features of {', '.join(list(reference['features'])[:5])} ...",
                         arguments=("sequences",))
    lengths = np.full(len(x), x.shape[1]) if lengths is None else np.asarray(lengths)
    low, high = range_bounds(reference, names, margin)
    mask = valid_mask(lengths, x.shape[1])[:, :, None]
    with np.errstate(invalid="ignore"):
        outside = (~np.isfinite(x)) | (x < low) | (x > high)
    flagged = (outside & mask).any(axis=(1, 2))
    ref_lengths = reference["lengths"]
    return flagged | (lengths < int(ref_lengths["min"])) | (lengths > int(ref_lengths["max"]))
