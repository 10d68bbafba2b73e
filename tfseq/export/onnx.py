"""ONNX export through tf2onnx: float32, dynamic batch axis, fused LSTM ops.

tf2onnx sets environment variables and logging at import, so it is imported
inside the functions only. LSTM and bidirectional LSTM layers become one
fused ONNX ``LSTM`` op each; GRU and SimpleRNN become a ``Loop``.
"""

from __future__ import annotations

import collections
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from tfseq.errors import ExportError, InputError

if TYPE_CHECKING:  # Keras is imported where it is used
    import keras

DEFAULT_OPSET = 17

__all__ = ["DEFAULT_OPSET", "export_onnx", "export_step_onnx", "count_ops"]


def _tf2onnx() -> ModuleType:
    try:
        import tf2onnx
    except ImportError:  # pragma: no cover - an install problem
        raise ExportError(
            "ONNX export needs tf2onnx; install it with 'pip install tf2onnx onnx onnxruntime'."
        ) from None
    return tf2onnx


def export_onnx(model: keras.Model, filepath: Path, *, steps: int, opset: int = DEFAULT_OPSET) -> Path:
    """Writes ``model`` as an ONNX file with input ``sequence`` ``[batch, steps, features]``.

    The graph is built from a float32 copy of the model with ``use_cudnn=False``,
    so mixed-precision models export as float32 and no CudnnRNN op appears.

    Args:
        model: A Keras model built by :func:`tfseq.build_model` (any precision).
        filepath: Destination ``.onnx`` path.
        steps: Fixed number of steps; the batch axis stays dynamic.
        opset: ONNX opset, at least 17.

    Returns:
        ``filepath``.

    Raises:
        InputError: for an opset below 17.
        ExportError: if tf2onnx fails.

    Examples:
        >>> export_onnx(model, Path("out/lstm.onnx"), steps=20)
        PosixPath('out/lstm.onnx')
    """
    if not isinstance(opset, int) or opset < 17:
        raise InputError(
            f"Received an invalid value for argument opset, expected an integer >= 17, got {opset!r}."
        )
    import tensorflow as tf

    from tfseq.export._graph import export_clone

    clone = export_clone(model, steps=steps, batch_size=None, unroll=False)
    n_features = clone.inputs[0].shape[-1]
    signature = (tf.TensorSpec((None, steps, n_features), tf.float32, name="sequence"),)
    tf2onnx = _tf2onnx()
    filepath = Path(filepath)
    try:
        tf2onnx.convert.from_keras(
            clone, input_signature=signature, opset=opset, output_path=str(filepath)
        )
    except Exception as exc:  # noqa: BLE001  (tf2onnx raises many untyped errors)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"ONNX conversion of {model.name} failed: {first}") from exc
    return filepath


def count_ops(filepath: Path) -> dict[str, int]:
    """Counts the op types of an ONNX file's main graph, e.g. ``{"LSTM": 1, ...}``."""
    import onnx

    graph = onnx.load(str(filepath)).graph
    return dict(collections.Counter(node.op_type for node in graph.node))


def export_step_onnx(model: keras.Model, filepath: Path, *, opset: int = DEFAULT_OPSET) -> Path:
    """Writes the step graph of a streaming ``model`` (:mod:`tfseq.export.step`) as ONNX.

    Inputs ``features`` and the states (``state_<i>_<s>``), outputs the heads and the new states
    (``new_state_<i>_<s>``), dynamic batch axis, float32.

    Args:
        model: A streaming Keras model (``ModelSpec(streaming=True)``).
        filepath: Destination ``.onnx`` path (``<name>-step.onnx``).
        opset: ONNX opset, at least 17.

    Returns:
        ``filepath``.

    Raises:
        InputError: for an opset below 17 or a model that is not streaming.
        ExportError: if tf2onnx fails.
    """
    if not isinstance(opset, int) or opset < 17:
        raise InputError(
            f"Received an invalid value for argument opset, expected an integer >= 17, got {opset!r}."
        )
    from tfseq.export.step import StepGraph

    graph = StepGraph(model)
    tf2onnx = _tf2onnx()
    filepath = Path(filepath)
    try:
        tf2onnx.convert.from_function(graph.function(), input_signature=graph.signature(), opset=opset,
                                      output_path=str(filepath))
    except Exception as exc:  # noqa: BLE001  (tf2onnx raises many untyped errors)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"ONNX step conversion of {model.name} failed: {first}") from exc
    return filepath
