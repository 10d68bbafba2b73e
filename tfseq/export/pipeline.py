"""export_model: build every artifact beside the target, run each in its own runtime, verify, rename into place.

The formats themselves live in :mod:`tfseq.export.artifacts` (one build-and-run interface each) and
the manifest's keys in :mod:`tfseq.export.schema`; this module orders the steps and owns the
promise that ``out_dir`` is always either as before or a whole, verified export.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfseq.errors import InputError, ParityError
from tfseq.export.artifacts import ARTIFACT_FORMATS, FORMATS, Built, ExportJob
from tfseq.export.manifest import MANIFEST
from tfseq.export.schema import Manifest, artifact_record, build_manifest
from tfseq.export.tflite import QUANTIZATIONS
from tfseq.io import atomic_directory, make_readable, write_json_atomic
from tfseq.run import DataContract

#: Held-out sequences used for verification at most (the rest are not needed).
MAX_VERIFY_SEQUENCES = 2000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

__all__ = ["export_model", "choices_tuple", "resolve_steps", "MAX_VERIFY_SEQUENCES"]


def choices_tuple(value: str | Sequence[str], allowed: tuple[str, ...], argument: str) -> tuple[str, ...]:
    """``value`` (a name, ``"a,b"``, a sequence, or ``all``) as distinct names from ``allowed``.

    Raises:
        InputError: naming ``argument`` for an empty value or a name not allowed.
    """
    items = [value] if isinstance(value, str) else list(value)
    items = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
    if "all" in items:
        items = list(allowed)
    bad = [i for i in items if i not in allowed]
    if bad or not items:
        raise InputError(
            f"Received an invalid value for argument {argument}, expected one or more of "
            f"{', '.join(allowed)} or all, got {bad[0] if bad else value!r}."
        )
    return tuple(dict.fromkeys(items))


def _is_float32(model: Any) -> bool:
    return all(getattr(layer, "compute_dtype", "float32") == "float32" for layer in model.layers)


def _check_holdout(holdout: Any, steps: int, n_features: int, cut: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    if not isinstance(holdout, (tuple, list)) or len(holdout) != 2:
        raise InputError("Received an invalid value for argument holdout, expected a tuple (x, y).")
    x, y = holdout
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3 and x.shape[1] > steps and cut:  # early warning: the first steps only
        x = x[:, :steps]
    if x.ndim != 3 or x.shape[1] != steps or x.shape[2] != n_features or len(x) == 0:
        raise InputError(
            f"Received held-out sequences of shape {x.shape}, expected [n > 0, {steps}, {n_features}] "
            "(steps and features of the model)."
        )
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(x):
            raise InputError(f"Received {len(y)} held-out targets for {len(x)} sequences.")
        y = y[:MAX_VERIFY_SEQUENCES]
    return x[:MAX_VERIFY_SEQUENCES], y


def resolve_steps(model: Any, contract: DataContract, holdout: tuple[Any, Any] | None) -> int:
    """The model's fixed steps; else the early-warning cut; else the contract's; else the data's."""
    steps = model.inputs[0].shape[1] or contract.predict_at or contract.steps
    if steps is None and holdout is not None and holdout[0] is not None:
        steps = np.asarray(holdout[0]).shape[1]
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(
            "Received a model and contract without a fixed number of steps; set contract.steps "
            "(the artifacts need a fixed number of steps)."
        )
    return int(steps)


def _prepare_target(out_dir: Path) -> bool:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a directory; expected an export directory.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise InputError(
            f"{out_dir}: exists, is not empty and holds no {MANIFEST}; choose a new or empty "
            "directory, or an earlier tfseq export."
        )
    return out_dir.exists()


def export_model(
    model: Any,
    contract: DataContract,
    out_dir: Path,
    *,
    name: str,
    holdout: tuple[np.ndarray, np.ndarray | None],
    formats: str | Sequence[str] = FORMATS,
    quantize: str | Sequence[str] = ("none",),
    representative: np.ndarray | None = None,
    allow_degraded: bool = False,
    overwrite: bool = False,
    spec: Any = None,
    seed: int = 0,
    notes: dict | None = None,
    reference: dict[str, Any] | None = None,
    policy: Any = None,
) -> Manifest:
    """Exports ``model`` to SavedModel, TF Lite and ONNX, verifies each, writes the manifest.

    Layout of ``out_dir``::

        savedmodel/<name>/<version>/      TF Serving SavedModel, serving_default
        savedmodel/<name>/sample_request.json
        savedmodel/models.config          TF Serving model_config_list
        <name>[-<quantization>].tflite
        <name>.onnx
        <name>-step[-<quantization>].tflite   streaming models: one step, state in and out
        <name>-step.onnx                      (and the SavedModel's signature ``step``)
        manifest.json

    Everything is built in a temporary directory beside ``out_dir`` and renamed
    into place after verification, so ``out_dir`` is always either as before or
    a whole export. A new export into an existing export directory adds the
    next SavedModel version (older versions stay) and replaces the TF Lite,
    ONNX and manifest files of that name.

    Args:
        model: A trained Keras model built by :func:`tfseq.build_model`.
        contract: Its data contract (feature names, steps, task, classes,
            threshold, head).
        out_dir: The export directory.
        name: Model name in file names and in TF Serving.
        holdout: Held-out ``(x, y)``; ``x`` raw float32 ``[n, steps, features]``,
            ``y`` targets or None. Every artifact is verified on it.
        formats: ``"savedmodel"``, ``"tflite"``, ``"onnx"``, several, or ``"all"``.
        quantize: TF Lite modes: ``"none"``, ``"float16"``, ``"dynamic"``,
            ``"int8"``, several, or ``"all"``.
        representative: Raw training sequences to calibrate ``int8``.
        allow_degraded: Keep artifacts that miss their parity thresholds (the
            manifest marks them) instead of failing.
        overwrite: Replace the highest SavedModel version instead of adding one.
        spec: The :class:`~tfseq.models.spec.ModelSpec`, recorded in the manifest.
        seed: Seed of the draw of representative sequences.
        notes: Extra JSON-serialisable facts recorded under ``notes``.
        reference: Reference statistics of the training data
            (:func:`tfseq.analysis.reference.compute_reference`), recorded under ``reference``
            for ``tfseq monitor``.
        policy: The adaptive-test policy of a streaming model
            (:class:`tfseq.models.policy.AdaptiveTestPolicy`), recorded under ``policy``.

    A streaming model (``ModelSpec(streaming=True)``) also gets step artifacts
    (:mod:`tfseq.export.step`): each is fed the held-out sequences cycle by cycle from zero
    states and must reproduce Keras' output at every step (``<format>-step[-<mode>]``
    thresholds). The manifest records the state layout under ``state_layout`` and each step
    artifact's interface under its ``step`` key.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).

    Raises:
        InputError: for invalid arguments, data of the wrong shape, or an
            ``out_dir`` that is not an export directory.
        ExportError: if a conversion or a runtime fails.
        ParityError: (an :class:`ExportError`, exit status 3 on the command line) if
            an artifact misses its parity thresholds and ``allow_degraded`` is false.

    Examples:
        >>> manifest = export_model(model, contract, Path("export"), name="lstm",
        ...                         holdout=(x_val, y_val), representative=x_train,
        ...                         quantize=("none", "int8"))
        >>> [a["path"] for a in manifest["artifacts"]]
        ['savedmodel/lstm/1', 'lstm.tflite', 'lstm-int8.tflite', 'lstm.onnx']
    """
    from tfseq.export import verify
    from tfseq.export._graph import export_clone, predict_dict
    from tfseq.export.step import is_streaming, state_layout
    from tfseq.export.tflite import require_litert

    formats = choices_tuple(formats, FORMATS, "formats")
    modes = choices_tuple(quantize, QUANTIZATIONS, "quantize")
    if "tflite" in formats:
        require_litert()
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(
            f"Received an invalid value for argument name, expected letters, digits, '.', '_' or '-', "
            f"got {name!r}.", arguments=("name",)
        )
    out_dir = Path(out_dir)
    steps = resolve_steps(model, contract, holdout)
    n_features = int(model.inputs[0].shape[-1])
    if contract.feature_names and len(contract.feature_names) != n_features:
        raise InputError(
            f"Received a contract with {len(contract.feature_names)} feature names for a model with "
            f"{n_features} features."
        )
    x, y = _check_holdout(holdout, steps, n_features, cut=contract.predict_at == steps)
    head = contract.head if contract.head in model.output_names else model.output_names[0]
    task, threshold = contract.task, float(contract.threshold)
    if representative is not None and contract.predict_at == steps:
        representative = np.asarray(representative, dtype=np.float32)[:, :steps]
    existed = _prepare_target(out_dir)

    keras_out = predict_dict(model, x)
    if _is_float32(model):
        expected = keras_out
    else:  # artifacts are float32: compare with the float32 computation of the same weights
        expected = predict_dict(export_clone(model, steps=steps), x)
    keras_vs_reference = verify.compare_outputs(keras_out, expected, head=head, task=task,
                                                threshold=threshold, y=y)
    job = ExportJob(model=model, name=name, steps=steps, head=head, task=task, threshold=threshold, x=x,
                    quantize=modes, representative=representative, seed=seed, overwrite=overwrite,
                    step=is_streaming(model))

    with atomic_directory(out_dir, overwrite=existed) as tmp:
        if existed:
            _copy_previous(out_dir, tmp, name)
        built: list[Built] = []
        for fmt in formats:
            artifact_format = ARTIFACT_FORMATS[fmt]
            these = artifact_format.build(job, tmp)
            artifact_format.run(job, these)
            built += these
        artifacts = []
        for artifact in built:
            kind = artifact.format + ("" if artifact.step is None else "-step")
            kind += "" if artifact.quantization is None else f"-{artifact.quantization}"
            outputs = artifact.outputs
            if artifact.step is not None and contract.masking:
                outputs = _real_steps_only(outputs, expected, x)
            figures = verify.compare_outputs(expected, outputs, head=head, task=task,
                                             threshold=threshold, y=y)
            figures.update({k: v for k, v in artifact.timing.items() if k != "path"})
            if artifact.step is not None:
                figures["fed"] = "cycle by cycle from zero states, compared at every step" + (
                    " of the devices' real (unpadded) cycles" if contract.masking else "")
                # the keys every artifact has (tfseq export prints them): one step of one device,
                # and the whole cycle-by-cycle replay of the held-out devices
                figures.setdefault("batch1_latency_ms", figures.get("step_batch1_latency_us", 0.0) / 1e3)
                figures.setdefault("batched_latency_ms", figures.get("replay_latency_ms", 0.0))
            extra = artifact.extra if artifact.step is None else {**artifact.extra, "step": artifact.step}
            artifacts.append(artifact_record(
                artifact.path.relative_to(tmp).as_posix(), artifact.path, format=artifact.format,
                quantization=artifact.quantization, verification=figures,
                failures=verify.parity_failures(kind, figures), extra=extra,
            ))
        failures = [f"{a['path']}: {'; '.join(a['failures'])}" for a in artifacts if a["failures"]]
        if failures and not allow_degraded:
            raise ParityError(
                f"export of {name} missed its parity thresholds: {' | '.join(failures)}; nothing was "
                "written (allow_degraded=True keeps degraded artifacts)."
            )
        manifest = build_manifest(
            name=name, model=model, contract=contract, spec=spec, steps=steps, head=head,
            threshold=threshold, sequences=int(len(x)), with_targets=y is not None,
            keras_vs_reference=keras_vs_reference,
            thresholds={"per_artifact": verify.THRESHOLDS, "min_class_agreement": verify.MIN_CLASS_AGREEMENT,
                        "max_metric_change_points": verify.MAX_METRIC_CHANGE_POINTS},
            artifacts=artifacts, trained_float32=_is_float32(model), notes=notes, reference=reference,
            state_layout=[s.to_dict() for s in state_layout(model)] if job.step else None,
            policy=policy.to_dict() if policy is not None else None,
        )
        write_json_atomic(tmp / MANIFEST, manifest)
        make_readable(tmp)  # a serving container reads it as another user
    return manifest


def _real_steps_only(got: dict[str, np.ndarray], expected: dict[str, np.ndarray], x: np.ndarray
                     ) -> dict[str, np.ndarray]:
    """A step artifact's outputs with its answers at padding steps replaced by Keras' own.

    A step artifact is fed real cycles only (a device that stops testing is not fed again); the
    held-out sequences of a masked model carry padding (every feature 0.0, the mask value), which
    the verification feeds like any cycle, so only the answers at real steps are compared.
    """
    real = ~np.all(np.asarray(x) == 0.0, axis=-1)  # [n, steps]; 0.0: tfseq.models.builders.MASK_VALUE
    out = dict(got)
    for name, ref in expected.items():
        if name in got and np.ndim(ref) == 3 and np.shape(got[name]) == np.shape(ref):
            out[name] = np.where(real[:, :, None], got[name], ref)
    return out


def _copy_previous(out_dir: Path, tmp: Path, name: str) -> None:
    """An earlier export's files, less this name's TF Lite and ONNX files (they are rebuilt)."""
    for item in out_dir.iterdir():
        if item.name.startswith("."):
            continue
        dest = tmp / item.name
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, dest)
    for old in [tmp / f"{name}.onnx", tmp / f"{name}-step.onnx", *tmp.glob(f"{name}.tflite"),
                *tmp.glob(f"{name}-*.tflite")]:
        old.unlink(missing_ok=True)
