"""export_model / export_run: build every artifact beside the target, verify, rename into place."""

from __future__ import annotations

import datetime as _dt
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfseq.errors import InputError, ParityError
from tfseq.export.manifest import FORMAT_VERSION, MANIFEST, package_versions, sha256_path, size_bytes
from tfseq.export.tflite import QUANTIZATIONS, tflite_filename
from tfseq.io import atomic_directory, write_json_atomic
from tfseq.run import DataContract

FORMATS = ("savedmodel", "tflite", "onnx")
#: Held-out sequences used for verification at most (the rest are not needed).
MAX_VERIFY_SEQUENCES = 2000
#: Written by training (or by hand) so that ``tfseq export RUN`` verifies on real data.
EXPORT_SAMPLE = "export_sample.npz"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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


def _normalization(model) -> dict | None:
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


def _is_float32(model) -> bool:
    return all(getattr(layer, "compute_dtype", "float32") == "float32" for layer in model.layers)


def _check_holdout(holdout, steps: int, n_features: int, cut: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
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


def _resolve_steps(model, contract: DataContract, holdout) -> int:
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
    model,
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
    spec=None,
    seed: int = 0,
    notes: dict | None = None,
) -> dict:
    """Exports ``model`` to SavedModel, TF Lite and ONNX, verifies each, writes the manifest.

    Layout of ``out_dir``::

        savedmodel/<name>/<version>/      TF Serving SavedModel, serving_default
        savedmodel/<name>/sample_request.json
        savedmodel/models.config          TF Serving model_config_list
        <name>[-<quantization>].tflite
        <name>.onnx
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

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).

    Raises:
        InputError: for invalid arguments, data of the wrong shape, or an
            ``out_dir`` that is not an export directory.
        ExportError: if a conversion or a runtime fails.
        ParityError: (an :class:`ExportError`, exit status 3 on the command line) if
            an artifact misses its parity thresholds and ``allow_degraded`` is false.

    Example:
        >>> manifest = export_model(model, contract, Path("export"), name="lstm",
        ...                         holdout=(x_val, y_val), representative=x_train,
        ...                         quantize=("none", "int8"))
        >>> [a["path"] for a in manifest["artifacts"]]
        ['savedmodel/lstm/1', 'lstm.tflite', 'lstm-int8.tflite', 'lstm.onnx']
    """
    from tfseq.export import verify
    from tfseq.export._graph import export_clone, predict_dict
    from tfseq.export.onnx import count_ops, export_onnx
    from tfseq.export.saved_model import (
        existing_versions,
        export_saved_model,
        write_models_config,
        write_sample_request,
    )
    from tfseq.export.tflite import convert_tflite, require_litert

    formats = choices_tuple(formats, FORMATS, "formats")
    modes = choices_tuple(quantize, QUANTIZATIONS, "quantize")
    if "tflite" in formats:
        require_litert()
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(
            f"Received an invalid value for argument name, expected letters, digits, '.', '_' or '-', "
            f"got {name!r}."
        )
    out_dir = Path(out_dir)
    steps = _resolve_steps(model, contract, holdout)
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
        reference = keras_out
    else:  # artifacts are float32: compare with the float32 computation of the same weights
        reference = predict_dict(export_clone(model, steps=steps), x)
    keras_vs_reference = verify.compare_outputs(keras_out, reference, head=head, task=task,
                                                threshold=threshold, y=y)

    artifacts: list[dict] = []
    with atomic_directory(out_dir, overwrite=existed) as tmp:
        if existed:
            for item in out_dir.iterdir():
                if item.name.startswith("."):
                    continue
                dest = tmp / item.name
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, dest)
            for old in [tmp / f"{name}.onnx", *tmp.glob(f"{name}.tflite"), *tmp.glob(f"{name}-*.tflite")]:
                old.unlink(missing_ok=True)

        def record(path: Path, fmt: str, mode: str | None, outputs: dict, timing: dict, **extra):
            kind = fmt if mode is None else f"{fmt}-{mode}"
            figures = verify.compare_outputs(reference, outputs, head=head, task=task,
                                             threshold=threshold, y=y)
            figures.update({k: v for k, v in timing.items() if k != "path"})
            reasons = verify.parity_failures(kind, figures)
            artifacts.append({
                "path": path.relative_to(tmp).as_posix(), "format": fmt, "quantization": mode,
                "size_bytes": size_bytes(path), "sha256": sha256_path(path),
                "verification": figures, "passed": not reasons, "failures": reasons, **extra,
            })

        if "savedmodel" in formats:
            base = tmp / "savedmodel" / name
            versions = existing_versions(base)
            if overwrite and versions:
                version = versions[-1]
                shutil.rmtree(base / str(version))
            else:
                version = versions[-1] + 1 if versions else 1
            path = export_saved_model(model, base / str(version), steps=steps, head=head,
                                      task=task, threshold=threshold)
            outputs, timing = verify.run_savedmodel_isolated(path, x)
            record(path, "savedmodel", None, outputs, timing, version=version,
                   signature="serving_default", runtime="tf.saved_model.load (fresh process)")
            write_sample_request(base / "sample_request.json", x[:3])
            write_models_config(tmp / "savedmodel")

        if "tflite" in formats:
            flat = convert_tflite(model, steps=steps, quantize=modes,
                                  representative=representative, seed=seed)
            paths = []
            for mode, content in flat.items():
                path = tmp / tflite_filename(name, mode)
                path.write_bytes(content)
                paths.append(path)
            outputs, report = verify.run_tflite_isolated(paths, x)
            for path, mode, out, timing in zip(paths, flat, outputs, report["files"]):
                record(path, "tflite", mode, out, timing,
                       runtime="ai_edge_litert (subprocess, TensorFlow not importable)",
                       delegate=timing["delegate"])

        if "onnx" in formats:
            path = export_onnx(model, tmp / f"{name}.onnx", steps=steps)
            outputs, timing = verify.run_onnx(path, x)
            record(path, "onnx", None, outputs, timing, opset=17, runtime="onnxruntime (CPU)",
                   ops=count_ops(path))

        failures = [f"{a['path']}: {'; '.join(a['failures'])}" for a in artifacts if a["failures"]]
        if failures and not allow_degraded:
            raise ParityError(
                f"export of {name} missed its parity thresholds: {' | '.join(failures)}; nothing was "
                "written (allow_degraded=True keeps degraded artifacts)."
            )
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(),
            "spec": spec.get_config() if spec is not None else None,
            "precision": "float32",
            "trained_precision": "float32" if _is_float32(model) else "mixed",
            "contract": contract.get_config(),
            "input": {"name": "sequence", "dtype": "float32", "shape": [None, steps, n_features],
                      "steps": steps, "feature_names": list(contract.feature_names),
                      "masking": bool(contract.masking), "raw_measurements": True},
            "normalization": _normalization(model),
            "task": task,
            "head": head,
            "outputs": list(model.output_names),
            "class_names": contract.class_names,
            "threshold": threshold,
            "verification_data": {"sequences": int(len(x)), "with_targets": y is not None},
            "keras_vs_float32_reference": keras_vs_reference,
            "thresholds": {"per_artifact": verify.THRESHOLDS,
                           "min_class_agreement": verify.MIN_CLASS_AGREEMENT,
                           "max_metric_change_points": verify.MAX_METRIC_CHANGE_POINTS},
            "degraded": bool(failures),
            "artifacts": artifacts,
            "notes": notes or {},
        }
        write_json_atomic(tmp / MANIFEST, manifest)
        _readable(tmp)
    return manifest


def _readable(root: Path) -> None:
    """Temporary files are created private; serving containers need to read them."""
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _synthetic_sample(model, contract: DataContract, steps: int, n: int, seed: int) -> np.ndarray:
    stats = _normalization(model)
    n_features = int(model.inputs[0].shape[-1])
    mean = np.asarray(stats["mean"]) if stats else np.zeros(n_features)
    std = np.sqrt(np.asarray(stats["variance"])) if stats else np.ones(n_features)
    rng = np.random.default_rng(seed)
    x = (mean + std * rng.standard_normal((n, steps, n_features))).astype(np.float32)
    if contract.masking:
        lengths = rng.integers(max(1, steps // 2), steps + 1, size=n)
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
) -> dict:
    """Exports the model of a RUN directory (see :func:`export_model`).

    Verification data, first found: ``data``; ``RUN/export_sample.npz`` (arrays
    ``x``, optional ``y`` and ``x_train`` for int8 calibration); otherwise
    sequences drawn from the model's normalisation statistics (no targets, so
    no metric change; the manifest says so).

    Args:
        run_dir: A RUN directory written by ``tfseq train`` or the demo.
        out_dir: The export directory.
        formats: As :func:`export_model`.
        quantize: As :func:`export_model`.
        name: Model name; defaults to the spec's name (e.g. ``lstm-64``).
        data: Held-out ``(x, y)`` to verify on.
        representative: Training sequences to calibrate ``int8``.
        allow_degraded: As :func:`export_model`.
        overwrite: As :func:`export_model`.
        seed: Seed of synthetic verification data and of calibration draws.

    Returns:
        The manifest.

    Raises:
        InputError: if ``run_dir`` is not a RUN directory, or for bad arguments.
        ExportError: as :func:`export_model`.
    """
    from tfseq.run import load_run

    run_dir = Path(run_dir)
    model, spec, contract = load_run(run_dir)
    steps = _resolve_steps(model, contract, data)
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
    return export_model(
        model, contract, out_dir, name=name or spec.name, holdout=data, formats=formats,
        quantize=quantize, representative=representative, allow_degraded=allow_degraded,
        overwrite=overwrite, spec=spec, seed=seed, notes=notes,
    )
