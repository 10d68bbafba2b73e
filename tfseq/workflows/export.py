"""Export a RUN: its model, contract, held-out sample and reference statistics, through
:func:`tfseq.export.export_model`.

Verification data, first found: the ``data`` given; ``RUN/export_sample.npz`` (written by
``tfseq train`` and the demo); otherwise sequences drawn from the model's normalisation
statistics (no targets, so no metric change; the manifest says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfseq.analysis.reference import read_reference
from tfseq.data.sequences import STEP_FLAG
from tfseq.export.artifacts import FORMATS
from tfseq.export.pipeline import choices_tuple, export_model, resolve_steps
from tfseq.export.schema import Manifest, normalization_of
from tfseq.export.tflite import QUANTIZATIONS
from tfseq.models.policy import read_policy
from tfseq.run import REFERENCE, DataContract, load_run

#: Written by training (or by hand) so that ``tfseq export RUN`` verifies on real data.
EXPORT_SAMPLE = "export_sample.npz"

__all__ = ["export_run", "EXPORT_SAMPLE"]


def _synthetic_sample(model: Any, contract: DataContract, steps: int, n: int, seed: int) -> np.ndarray:
    stats = normalization_of(model)
    n_features = int(model.inputs[0].shape[-1])
    mean = np.asarray(stats["mean"]) if stats else np.zeros(n_features)
    std = np.sqrt(np.asarray(stats["variance"])) if stats else np.ones(n_features)
    rng = np.random.default_rng(seed)
    x = (mean + std * rng.standard_normal((n, steps, n_features))).astype(np.float32)
    if contract.masking:
        lengths = rng.integers(max(1, steps // 2), steps + 1, size=n)
        if STEP_FLAG in contract.feature_names:
            x[..., contract.feature_names.index(STEP_FLAG)] = 1.0
        x[np.arange(steps)[None, :] >= lengths[:, None]] = 0.0
    return x


def export_run(
    run_dir: Path,
    out_dir: Path,
    *,
    formats: str | Sequence[str] = FORMATS,
    quantize: str | Sequence[str] = ("none",),
    name: str | None = None,
    data: tuple[np.ndarray, np.ndarray | None] | None = None,
    representative: np.ndarray | None = None,
    allow_degraded: bool = False,
    overwrite: bool = False,
    seed: int = 0,
) -> Manifest:
    """Exports the model of a RUN directory (see :func:`tfseq.export.export_model`).

    Verification data, first found: ``data``; ``RUN/export_sample.npz`` (arrays
    ``x``, optional ``y`` and ``x_train`` for int8 calibration); otherwise
    sequences drawn from the model's normalisation statistics (no targets, so
    no metric change; the manifest says so). The RUN's ``reference.json`` (for
    ``tfseq monitor``) goes into the manifest under ``reference``, its ``policy.json`` (the
    adaptive-test policy of a streaming RUN) under ``policy``.

    Args:
        run_dir: A RUN directory written by ``tfseq train`` or the demo.
        out_dir: The export directory.
        formats: As :func:`tfseq.export.export_model`.
        quantize: As :func:`tfseq.export.export_model`.
        name: Model name; defaults to the spec's name (e.g. ``lstm-64``).
        data: Held-out ``(x, y)`` to verify on.
        representative: Training sequences to calibrate ``int8``.
        allow_degraded: As :func:`tfseq.export.export_model`.
        overwrite: As :func:`tfseq.export.export_model`.
        seed: Seed of synthetic verification data and of calibration draws.

    Returns:
        The manifest.

    Raises:
        InputError: if ``run_dir`` is not a RUN directory, or for bad arguments.
        ExportError: as :func:`export_model`.
    """
    run_dir = Path(run_dir)
    model, spec, contract = load_run(run_dir)
    steps = resolve_steps(model, contract, data)
    notes = {"run_dir": str(run_dir)}
    sample = run_dir / EXPORT_SAMPLE
    if data is None and sample.is_file():
        with np.load(sample) as npz:
            data = (npz["x"], npz["y"] if "y" in npz.files else None)
            if representative is None and "x_train" in npz.files:
                representative = npz["x_train"]
        notes["verification_data"] = f"{EXPORT_SAMPLE} of the RUN"
    if data is None:
        data = (_synthetic_sample(model, contract, steps, 256, seed), None)
        notes["verification_data"] = (
            "synthetic sequences drawn from the normalisation statistics (the RUN has no "
            f"{EXPORT_SAMPLE}); no targets, so no metric change"
        )
    if representative is None and "int8" in choices_tuple(quantize, QUANTIZATIONS, "quantize"):
        representative = _synthetic_sample(model, contract, steps, 256, seed + 1)
        notes["calibration_data"] = "synthetic sequences drawn from the normalisation statistics"
    reference = read_reference(run_dir / REFERENCE) if (run_dir / REFERENCE).is_file() else None
    return export_model(
        model, contract, out_dir, name=name or spec.name, holdout=data, formats=formats,
        quantize=quantize, representative=representative, allow_degraded=allow_degraded,
        overwrite=overwrite, spec=spec, seed=seed, notes=notes, reference=reference,
        policy=read_policy(run_dir),  # the adaptive-test policy of a streaming RUN (tfseq policy)
    )
