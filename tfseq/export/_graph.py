"""Export graphs: a float32, cuDNN-free copy of a trained model with fixed shapes.

Every exporter starts from :func:`export_clone`, so all artifacts describe
the same float32 computation whatever precision policy the model trained
under (onnxruntime has no float16 LSTM kernel; CudnnRNN ops break CPU
serving, TF Lite and tf2onnx).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # Keras is imported where it is used
    import keras

_RNN_CLASSES = {"SimpleRNN", "LSTM", "GRU"}


def _rewrite(node: Any, *, unroll: bool, loop: bool, rotate: bool) -> None:
    if isinstance(node, dict):
        if node.get("class_name") in _RNN_CLASSES and isinstance(node.get("config"), dict):
            node["config"]["unroll"] = unroll
            if node["class_name"] != "SimpleRNN":  # SimpleRNN has no cuDNN kernel (nor the flag)
                node["config"]["use_cudnn"] = False
            # tfseq's gate-by-gate training layers (tfseq.models.recurrent) export as Keras'
            # own classes, whose while loops tf2onnx and TF Serving know, or as while-loop twins.
            node["module"], node["registered_name"] = "keras.layers", None
            if loop:
                node["registered_name"] = f"While{node['class_name']}"
                node["config"]["rotate_inputs"] = rotate
        dtype = node.get("dtype")
        if isinstance(dtype, dict) and dtype.get("class_name") == "DTypePolicy":
            dtype["config"] = {**dtype.get("config", {}), "name": "float32"}
        elif isinstance(dtype, str) and dtype.startswith("mixed_"):
            node["dtype"] = "float32"
        for value in node.values():
            _rewrite(value, unroll=unroll, loop=loop, rotate=rotate)
    elif isinstance(node, list):
        for value in node:
            _rewrite(value, unroll=unroll, loop=loop, rotate=rotate)


def export_clone(
    model: keras.Model,
    *,
    steps: int,
    batch_size: int | None = None,
    unroll: bool = False,
    loop: bool = False,
    rotate: bool = False,
) -> keras.Model:
    """Returns a float32 copy of ``model`` with input ``[batch_size, steps, features]``.

    Args:
        model: A Functional Keras model built by :func:`tfseq.build_model`.
        steps: Fixed number of steps of the copy's input.
        batch_size: Fixed batch size, or None for a dynamic batch axis.
        unroll: Unroll the recurrent layers (TF Lite needs static shapes).
        loop: Run the recurrent layers as one ``tf.while_loop`` each with
            static shapes (:mod:`tfseq.export._loop`), masked or not.
        rotate: With ``loop``, build the loops the int8 calibrator can run
            (:func:`tfseq.export._loop.while_rnn`).

    Returns:
        A ``keras.Model`` with the same weights, layer names and output names.
    """
    import keras

    from tfseq.export._loop import WHILE_LAYERS
    from tfseq.models import layers as _layers  # noqa: F401  (registers custom layers)

    config = copy.deepcopy(model.get_config())
    _rewrite(config, unroll=unroll, loop=loop, rotate=rotate)
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            shape = layer["config"].get("batch_shape") or layer["config"].get("batch_input_shape")
            layer["config"]["batch_shape"] = [batch_size, steps, shape[-1]]
            layer["config"].pop("batch_input_shape", None)
    custom = {f"While{name}": cls for name, cls in WHILE_LAYERS.items()}
    clone = keras.Model.from_config(config, custom_objects=custom)
    clone.set_weights([np.asarray(w, dtype=np.float32) if np.asarray(w).dtype.kind == "f" else w
                       for w in model.get_weights()])
    return clone


def predict_dict(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Runs ``model`` on ``x``; returns ``{output name: float32 array}``."""
    out = model.predict(np.asarray(x, dtype=np.float32), batch_size=batch_size, verbose=0)
    if not isinstance(out, dict):
        out = {model.output_names[0]: out}
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
