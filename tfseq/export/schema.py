"""The typed schema of ``manifest.json`` and the one place that assembles it.

A manifest is a :class:`Manifest` (a ``TypedDict``, so it stays the plain JSON dict that
:func:`tfseq.export.manifest.read_manifest` returns and TF Serving tooling reads); each artifact is
an :class:`ArtifactRecord`. Readers: :mod:`tfseq.export.runtimes` (the contract, the input),
``tfseq predict`` and the demo's report.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, TypedDict

import numpy as np

from tfseq.data.sequences import STEP_FLAG
from tfseq.export.manifest import FORMAT_VERSION, package_versions, sha256_path, size_bytes
from tfseq.run import DataContract

__all__ = ["ArtifactRecord", "InputSchema", "Manifest", "artifact_record", "build_manifest", "normalization_of"]


class ArtifactRecord(TypedDict, total=False):
    """One artifact of an export: where it is, what it is, and how well it verified."""

    path: str  # relative to the export directory, POSIX separators
    format: str  # savedmodel | tflite | onnx
    quantization: str | None  # the TF Lite mode; None for the other formats
    size_bytes: int
    sha256: str  # of the file, or of a directory's files (tfseq.export.manifest.sha256_path)
    verification: dict[str, Any]  # tfseq.export.verify.compare_outputs figures and timing
    passed: bool
    failures: list[str]  # the parity thresholds it missed
    runtime: str
    version: int  # SavedModel only
    signature: str  # SavedModel only
    delegate: str  # TF Lite only
    opset: int  # ONNX only
    ops: dict[str, int]  # ONNX only
    # step artifacts of streaming models only (tfseq.export.step.step_interface): signature,
    # inputs and outputs (name, shape, dtype), state layout, initial state; the SavedModel's
    # ``step`` signature has its own record (same path, signature "step")
    step: dict[str, Any]


class InputSchema(TypedDict):
    """The input every artifact takes: raw measurements, normalised inside the model."""

    name: str
    dtype: str
    shape: list[int | None]
    steps: int
    feature_names: list[str]
    masking: bool
    raw_measurements: bool
    padding: str


class Manifest(TypedDict):
    """``manifest.json``."""

    format_version: int
    name: str
    created: str  # ISO 8601, UTC
    versions: dict[str, str | None]  # tfseq and the libraries the export depends on
    spec: dict[str, Any] | None  # the ModelSpec's config
    precision: str  # of the artifacts: float32
    trained_precision: str  # float32 or mixed
    contract: dict[str, Any]  # the DataContract's config
    input: InputSchema
    normalization: dict[str, list[float]] | None  # mean and variance per feature
    task: str
    head: str
    outputs: list[str]
    class_names: list[str] | None
    threshold: float
    verification_data: dict[str, Any]
    keras_vs_float32_reference: dict[str, Any]
    thresholds: dict[str, Any]
    degraded: bool
    artifacts: list[ArtifactRecord]
    notes: dict[str, Any]
    # reference statistics of the training data and predictions (tfseq.analysis.reference), for
    # ``tfseq monitor``; None when the RUN had none (trained before tfseq monitor)
    reference: dict[str, Any] | None
    # streaming models: the step artifacts' state tensors in order (tfseq.export.step.StateSlot),
    # None otherwise; the adaptive-test policy (AdaptiveTestPolicy.to_dict), None when the RUN has none
    state_layout: list[dict[str, Any]] | None
    policy: dict[str, Any] | None


def normalization_of(model: Any) -> dict[str, list[float]] | None:
    """The mean and variance of the model's ``normalization`` layer, or None without one."""
    try:
        layer = model.get_layer("normalization")
    except ValueError:
        return None
    mean = getattr(layer, "mean", None)
    variance = getattr(layer, "variance", None)
    if mean is None or variance is None:
        config = layer.get_config()
        mean, variance = config.get("mean"), config.get("variance")
    if mean is None:
        return None
    return {"mean": np.asarray(mean, dtype=np.float64).reshape(-1).tolist(),
            "variance": np.asarray(variance, dtype=np.float64).reshape(-1).tolist()}


def artifact_record(
    relative_path: str,
    path: Any,
    *,
    format: str,
    quantization: str | None,
    verification: dict[str, Any],
    failures: list[str],
    extra: dict[str, Any],
) -> ArtifactRecord:
    """The manifest entry of the artifact at ``path`` (hashed and sized here)."""
    record: ArtifactRecord = {
        "path": relative_path, "format": format, "quantization": quantization,
        "size_bytes": size_bytes(path), "sha256": sha256_path(path),
        "verification": verification, "passed": not failures, "failures": failures,
    }
    record.update(extra)  # type: ignore[typeddict-item]  # runtime facts named in ArtifactRecord
    return record


def _padding(contract: DataContract) -> str:
    """How the input marks padding, in the words of the manifest's ``input.padding``."""
    if not contract.masking:
        return "none: every step is data, zeros included"
    if STEP_FLAG in contract.feature_names:
        return (f"steps after a sequence's end, every feature 0.0 including the last, {STEP_FLAG}, which is 1.0 on "
                "each real step: a real step whose measurements are all 0.0 stays data")
    return "steps after a sequence's end, every feature 0.0 (a padded step is one whose features are all 0.0)"


def build_manifest(
    *,
    name: str,
    model: Any,
    contract: DataContract,
    spec: Any,
    steps: int,
    head: str,
    threshold: float,
    sequences: int,
    with_targets: bool,
    keras_vs_reference: dict[str, Any],
    thresholds: dict[str, Any],
    artifacts: list[ArtifactRecord],
    trained_float32: bool,
    notes: dict[str, Any] | None,
    reference: dict[str, Any] | None = None,
    state_layout: list[dict[str, Any]] | None = None,
    policy: dict[str, Any] | None = None,
) -> Manifest:
    """Assembles the manifest of an export of ``model`` (see :class:`Manifest` for the keys)."""
    n_features = int(model.inputs[0].shape[-1])
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "spec": spec.get_config() if spec is not None else None,
        "precision": "float32",
        "trained_precision": "float32" if trained_float32 else "mixed",
        "contract": contract.get_config(),
        "input": {"name": "sequence", "dtype": "float32", "shape": [None, steps, n_features],
                  "steps": steps, "feature_names": list(contract.feature_names),
                  "masking": bool(contract.masking), "raw_measurements": True,
                  "padding": _padding(contract)},
        "normalization": normalization_of(model),
        "task": contract.task,
        "head": head,
        "outputs": list(model.output_names),
        "class_names": contract.class_names,
        "threshold": threshold,
        "verification_data": {"sequences": sequences, "with_targets": with_targets},
        "keras_vs_float32_reference": keras_vs_reference,
        "thresholds": thresholds,
        "degraded": any(not a.get("passed", True) for a in artifacts),
        "artifacts": artifacts,
        "notes": notes or {},
        "reference": reference,
        "state_layout": state_layout,
        "policy": policy,
    }
