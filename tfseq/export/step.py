"""Step graphs of streaming models: one step and the recurrent state in, outputs and new state out.

A streaming model (``ModelSpec(streaming=True)``) answers after every step. Its step artifacts
take one step of raw measurements ``features`` ``[batch, n_features]`` and the state of every
recurrent layer, and return every head's output ``[batch, k]`` and the new states. The state is
explicit: zeros start a device, and one interpreter serves many devices interleaved.

State layout, in this order (see :func:`state_layout`), for recurrent layer ``i``
(``lstm_0``, ``gru_1`` ...):

* ``state_<i>_h`` ``[batch, units]``: the hidden state (every cell);
* ``state_<i>_c`` ``[batch, units]``: the cell state (LSTM only).

Each state input ``state_<i>_<s>`` has the output ``new_state_<i>_<s>``: feed it back at the
device's next step. The normalisation, LayerNorm, Dense and Rescaling layers run inside; dropout
is off. Masking does not apply: a step artifact is fed real steps only (a device that stops
testing is simply not fed again).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tfseq.errors import ExportError, InputError

if TYPE_CHECKING:  # Keras and TensorFlow are imported where they are used
    import keras
    import tensorflow as tf

#: Name of the step input of raw measurements.
FEATURES = "features"
#: Name of the SavedModel signature (and TF Lite signature key) of the step graph.
STEP_SIGNATURE = "step"

_RECURRENT = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simple_rnn"}
#: The operations that compute a masked model's padding mask (``Masking``): no part of a step.
_MASK_OPS = ("NotEqual", "Any")
_IDENTITY = {"InputLayer", "Masking", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout"}

__all__ = ["FEATURES", "STEP_SIGNATURE", "StateSlot", "StepGraph", "is_streaming", "state_layout",
           "step_filename", "step_interface"]


@dataclass(frozen=True)
class StateSlot:
    """One state tensor of a step artifact.

    Attributes:
        layer: The recurrent layer's name (``lstm_0``).
        cell: ``lstm``, ``gru`` or ``simple_rnn``.
        units: Its width: the tensor is ``[batch, units]`` float32.
        kind: ``h`` (hidden state) or ``c`` (LSTM cell state).
        input: The artifact's input name (``state_0_h``).
        output: The artifact's output name for the next step (``new_state_0_h``).
    """

    layer: str
    cell: str
    units: int
    kind: str
    input: str
    output: str

    def to_dict(self) -> dict[str, Any]:
        """The manifest's form."""
        return asdict(self)


def step_filename(name: str, kind: str) -> str:
    """``<name>-step.<ext>`` for float32 and ONNX, ``<name>-step-<mode>.tflite`` otherwise.

    Args:
        name: The model name.
        kind: ``onnx`` or a TF Lite mode (``none``, ``float16``, ``dynamic``, ``int8``).
    """
    if kind == "onnx":
        return f"{name}-step.onnx"
    return f"{name}-step.tflite" if kind == "none" else f"{name}-step-{kind}.tflite"


def _layers(model: Any) -> list[dict[str, Any]]:
    return list(model.get_config()["layers"])


def is_streaming(model: Any) -> bool:
    """Whether ``model`` answers after every step: unidirectional recurrent layers and outputs
    ``[batch, steps, k]`` only."""
    try:
        ranks = {len(t.shape) for t in model.outputs}
        classes = [layer["class_name"] for layer in _layers(model)]
    except (AttributeError, KeyError, TypeError):
        return False
    return ranks == {3} and any(c in _RECURRENT for c in classes) and "Bidirectional" not in classes


def state_layout(model: Any) -> list[StateSlot]:
    """The state tensors of ``model``'s step graph, in the order the artifacts list them."""
    import keras

    slots = []
    index = 0
    for layer in model.layers:
        kind = next((v for k, v in _RECURRENT.items() if isinstance(layer, getattr(keras.layers, k))), None)
        if kind is None:
            continue
        units = int(layer.cell.units)
        for s in ("h", "c") if kind == "lstm" else ("h",):
            slots.append(StateSlot(layer.name, kind, units, s, f"state_{index}_{s}", f"new_state_{index}_{s}"))
        index += 1
    return slots


def step_interface(model: Any) -> dict[str, Any]:
    """The ``step`` section of a step artifact's manifest entry: inputs, outputs and state layout."""
    n_features = int(model.inputs[0].shape[-1])
    slots = state_layout(model)
    inputs = [{"name": FEATURES, "shape": [None, n_features], "dtype": "float32"}]
    inputs += [{"name": s.input, "shape": [None, s.units], "dtype": "float32"} for s in slots]
    outputs = [{"name": name, "shape": [None, int(t.shape[-1])], "dtype": "float32"}
               for name, t in zip(model.output_names, model.outputs)]
    outputs += [{"name": s.output, "shape": [None, s.units], "dtype": "float32"} for s in slots]
    return {
        "signature": STEP_SIGNATURE,
        "inputs": inputs,
        "outputs": outputs,
        "state": [s.to_dict() for s in slots],
        "initial_state": "zeros",
        "raw_measurements": True,
        "masking": "none: feed real steps only",
    }


class StepGraph:
    """One step of a streaming model as TensorFlow ops over a float32 copy of its weights.

    Args:
        model: A streaming Keras model built by :func:`tfseq.build_model`.

    Raises:
        InputError: if ``model`` is not streaming.
        ExportError: for a layer the step graph cannot run (e.g. a GRU without ``reset_after``).
    """

    def __init__(self, model: keras.Model) -> None:
        from tfseq.export._graph import export_clone

        if not is_streaming(model):
            raise InputError(
                f"Received model {model.name!r}, expected a streaming model (ModelSpec(streaming=True): "
                "unidirectional recurrent layers, an output after every step) for step artifacts."
            )
        steps = model.inputs[0].shape[1] or 1
        self.clone = export_clone(model, steps=int(steps), batch_size=None, unroll=False)
        self.n_features = int(self.clone.inputs[0].shape[-1])
        self.slots = state_layout(self.clone)
        self.output_names = list(self.clone.output_names)
        config = self.clone.get_config()
        self._order = []
        for layer in config["layers"]:
            if layer["class_name"] in _MASK_OPS:
                continue  # the padding mask of a masked model: a step artifact is fed real steps only
            nodes = layer.get("inbound_nodes") or []
            source = None
            if nodes:
                args = nodes[0]["args"] if isinstance(nodes[0], dict) else nodes[0]
                history = args[0]["config"]["keras_history"] if isinstance(args[0], dict) else args[0]
                source = history[0]
            self._order.append((layer["name"], layer["class_name"], source))
        outputs = config["output_layers"]
        if isinstance(outputs, dict):
            self._outputs = {k: v[0] for k, v in outputs.items()}
        else:
            self._outputs = {n: v[0] for n, v in zip(self.output_names, outputs)}
        for name, cls, _ in self._order:
            layer = self.clone.get_layer(name)
            if cls == "GRU" and not layer.cell.reset_after:
                raise ExportError(f"layer {name}: a GRU without reset_after has no step graph.")

    def signature(self) -> list[tf.TensorSpec]:
        """Input specs, in the order :meth:`__call__` takes them (dynamic batch axis)."""
        import tensorflow as tf

        specs = [tf.TensorSpec((None, self.n_features), tf.float32, name=FEATURES)]
        return specs + [tf.TensorSpec((None, s.units), tf.float32, name=s.input) for s in self.slots]

    def __call__(self, features: tf.Tensor, *states: tf.Tensor) -> dict[str, tf.Tensor]:
        """One step: ``features`` ``[batch, n_features]`` and states in the layout's order.

        Returns:
            ``{head: [batch, k], new_state_<i>_<s>: [batch, units]}``.
        """
        import keras
        import tensorflow as tf

        from tfseq.export._loop import _projection_bias, _step
        from tfseq.models.recurrent import read_weight

        tensors: dict[str, tf.Tensor] = {}
        new_states: list[tf.Tensor] = []
        pending = list(states)
        for name, cls, source in self._order:
            x = features if source is None else tensors[source]
            layer = self.clone.get_layer(name)
            if cls in _IDENTITY:
                tensors[name] = x
            elif cls == "Normalization":
                with tf.name_scope("normalization"):
                    # constants, not captured tensors: tf2onnx would make a captured tensor an input
                    mean = np.asarray(keras.ops.convert_to_numpy(layer.mean), np.float32).reshape(-1)
                    variance = np.asarray(keras.ops.convert_to_numpy(layer.variance), np.float32).reshape(-1)
                    std = np.maximum(np.sqrt(variance), keras.config.epsilon()).astype(np.float32)
                    # The mean as a float16-exact part plus the rest: a float16 file stores every
                    # constant in float16, and a mean of 20.09 (step 0.016) beside a standard
                    # deviation of 0.011 would shift that feature by 0.7 standard deviations.
                    mean_hi = mean.astype(np.float16).astype(np.float32)
                    mean_lo = (mean - mean_hi).astype(np.float32)
                    normalized = ((x - tf.constant(mean_hi)) - tf.constant(mean_lo)) / tf.constant(std)
                    # A barrier the converter cannot fold: without it the division by std moves
                    # into the next matmul's weights and that matmul's input is raw (x - mean),
                    # which dynamic-range and int8 quantise with one scale for all features
                    # (LSTM-128: 92 % class agreement instead of 99.9 %).
                    tensors[name] = tf.maximum(normalized, tf.constant(np.float32(-3.0e38)))
            elif cls in _RECURRENT:
                cell = layer.cell
                count = 2 if cls == "LSTM" else 1
                mine, pending = pending[:count], pending[count:]
                projected = tf.matmul(x, read_weight(cell.kernel))
                bias = _projection_bias(cell)
                if bias is not None:
                    projected = projected + bias
                h, updated = _step(cell, projected, mine)
                new_states += updated
                tensors[name] = h
            else:
                tensors[name] = layer(x, training=False)
        out = {head: tf.cast(tensors[layer_name], tf.float32) for head, layer_name in self._outputs.items()}
        for slot, value in zip(self.slots, new_states):
            out[slot.output] = tf.identity(value, name=slot.output)
        return out

    def function(self) -> Any:
        """:meth:`__call__` as a ``tf.function`` with the step signature."""
        import tensorflow as tf

        return tf.function(self.__call__, input_signature=self.signature())

    def zeros(self, batch: int) -> list[np.ndarray]:
        """Zero states for ``batch`` devices (how every device starts)."""
        return [np.zeros((batch, s.units), dtype=np.float32) for s in self.slots]

    def replay(self, x: np.ndarray) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
        """Runs sequences ``x`` ``[n, steps, features]`` step by step (eagerly).

        Returns:
            ``(outputs, states)``: ``{head: [n, steps, k]}``, and per state slot the states fed at
            every step ``[n, steps, units]`` (zeros at the first): calibration data for int8.
        """
        fn = self.function()
        x = np.asarray(x, dtype=np.float32)
        states = self.zeros(len(x))
        outputs: dict[str, list[np.ndarray]] = {}
        seen: list[list[np.ndarray]] = [[] for _ in self.slots]
        for t in range(x.shape[1]):
            for k, s in enumerate(states):
                seen[k].append(s)
            out = fn(x[:, t], *states)
            for head in self.output_names:
                outputs.setdefault(head, []).append(np.asarray(out[head]))
            states = [np.asarray(out[s.output]) for s in self.slots]
        return ({k: np.stack(v, axis=1) for k, v in outputs.items()},
                [np.stack(v, axis=1) for v in seen])
