"""SavedModel export in the TF Serving layout.

``<base>/<name>/<version>/`` holds a SavedModel whose ``serving_default``
signature takes ``sequence`` (float32 ``[None, steps, features]``, raw
measurements) and returns the model's named outputs plus, for a classifier,
``class_index`` (int64). ``<base>/models.config`` lists every model under
``<base>`` for ``tensorflow_model_server --model_config_file``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfseq.errors import ExportError, InputError
from tfseq.io import write_text_atomic

if TYPE_CHECKING:  # Keras is imported where it is used
    import keras

CLASS_INDEX = "class_index"

__all__ = [
    "CLASS_INDEX",
    "export_saved_model",
    "next_version",
    "existing_versions",
    "write_models_config",
    "write_sample_request",
    "write_step_sample_request",
]


def existing_versions(model_base: Path) -> list[int]:
    """Integer version directories under ``<base>/<name>``, ascending."""
    model_base = Path(model_base)
    if not model_base.is_dir():
        return []
    return sorted(int(p.name) for p in model_base.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(model_base: Path) -> int:
    """The version a new export of this model gets: one above the highest, or 1."""
    versions = existing_versions(model_base)
    return versions[-1] + 1 if versions else 1


def export_saved_model(
    model: keras.Model,
    version_dir: Path,
    *,
    steps: int,
    head: str | None = None,
    task: str | None = None,
    threshold: float = 0.5,
    step: bool = False,
) -> Path:
    """Writes a SavedModel for TF Serving to ``version_dir``.

    Args:
        model: A Keras model built by :func:`tfseq.build_model` (any precision;
            exported as float32 without cuDNN kernels).
        version_dir: ``<base>/<name>/<version>``; must not exist.
        steps: Fixed number of steps of the input; the batch axis is dynamic.
        head: Output answering the task; with ``task`` binary or multiclass a
            ``class_index`` output is added from it.
        task: ``binary``, ``multiclass``, ``regression`` or ``forecast``.
        threshold: Decision threshold on ``p(class 1)`` of a binary head.
        step: Add the signature ``step`` of a streaming model (:mod:`tfseq.export.step`): one
            step ``features`` ``[batch, features]`` and the states in, the heads and the new
            states out; TF Serving clients send the state with each request.

    Returns:
        ``version_dir``.

    Raises:
        InputError: if ``version_dir`` exists.
        ExportError: if TensorFlow fails to write the SavedModel.

    Examples:
        >>> export_saved_model(model, Path("out/savedmodel/lstm/1"), steps=20,
        ...                    head="binary", task="binary")
        PosixPath('out/savedmodel/lstm/1')
    """
    import keras
    import tensorflow as tf

    from tfseq.export._graph import export_clone

    version_dir = Path(version_dir)
    if version_dir.exists():
        raise InputError(f"{version_dir}: this SavedModel version already exists; it is never overwritten.")
    clone = export_clone(model, steps=steps, batch_size=None, unroll=False)
    n_features = clone.inputs[0].shape[-1]
    names = list(clone.output_names)
    add_class = task in ("binary", "multiclass") and head in names and CLASS_INDEX not in names

    def serve(sequence: tf.Tensor) -> dict[str, tf.Tensor]:
        out = clone(sequence, training=False)
        if not isinstance(out, dict):
            out = {names[0]: out}
        out = {k: tf.cast(v, tf.float32) for k, v in out.items()}
        if add_class:
            probs = out[head]
            if task == "binary":
                out[CLASS_INDEX] = tf.cast(probs[..., 0] >= threshold, tf.int64)
            else:
                out[CLASS_INDEX] = tf.argmax(probs, axis=-1, output_type=tf.int64)
        return out

    archive = keras.export.ExportArchive()
    archive.track(clone)
    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec((None, steps, n_features), tf.float32, name="sequence")],
    )
    if step:
        from tfseq.export.step import STEP_SIGNATURE, StepGraph

        graph = StepGraph(model)
        archive.track(graph.clone)
        archive.add_endpoint(name=STEP_SIGNATURE, fn=graph.__call__, input_signature=graph.signature())
    try:
        archive.write_out(str(version_dir), verbose=False)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"SavedModel export of {model.name} failed: {first}") from exc
    return version_dir


def write_models_config(base: Path) -> Path:
    """Writes ``<base>/models.config`` listing every model directory under ``base``.

    The paths are relative to where TF Serving mounts ``base``
    (``/models/<name>``, the convention of the ``tensorflow/serving`` image).
    """
    base = Path(base)
    names = sorted(p.name for p in base.iterdir() if p.is_dir() and existing_versions(p))
    entries = "".join(
        "  config {\n"
        f"    name: \"{name}\"\n"
        f"    base_path: \"/models/{name}\"\n"
        "    model_platform: \"tensorflow\"\n"
        "  }\n"
        for name in names
    )
    path = base / "models.config"
    write_text_atomic(path, "model_config_list {\n" + entries + "}\n")
    return path


def write_sample_request(path: Path, x: np.ndarray) -> Path:
    """Writes a TF Serving REST body ``{"instances": [{"sequence": ...}, ...]}`` for rows of ``x``."""
    rows = np.asarray(x, dtype=np.float32)
    body = {"signature_name": "serving_default",
            "instances": [{"sequence": row.tolist()} for row in rows]}
    path = Path(path)
    write_text_atomic(path, json.dumps(body) + "\n")
    return path


def write_step_sample_request(path: Path, x_t: np.ndarray, states: dict[str, int]) -> Path:
    """Writes a TF Serving REST body for the ``step`` signature: the first cycle of rows of ``x_t``
    with zero states (how every device starts); later requests send the returned ``new_state_*``
    as ``state_*``.

    Args:
        path: Destination ``.json``.
        x_t: Raw measurements of one cycle, ``[rows, features]``.
        states: State input name -> units (:func:`tfseq.export.step.state_layout`).
    """
    rows = np.asarray(x_t, dtype=np.float32)
    body = {"signature_name": "step",
            "instances": [{"features": row.tolist(), **{k: [0.0] * u for k, u in states.items()}}
                          for row in rows]}
    path = Path(path)
    write_text_atomic(path, json.dumps(body) + "\n")
    return path
