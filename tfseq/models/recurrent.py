"""Keras' LSTM, GRU and SimpleRNN with one matrix product per gate: the same layers, faster on CPU.

Keras computes all gates of a step with one matrix product and splits the
result, and on CPU that split copies a quarter of the step's data per gate:
in TF 2.21 it took a third of an LSTM-128 forward step. These layers keep
Keras' weights, configuration and results but run each gate's recurrent
product on its own slice of the weights, and project the inputs of all steps
in one product before the loop. Measured on 2 cores, batch 128 x 20 steps x
15 features, forward and backward: LSTM-128 5.4-6.0 ms against 8.4-8.8 ms
for ``keras.layers.LSTM``.

Sequences of a fixed length up to :data:`UNROLL_STEPS` run as unrolled
steps (fastest), others as a ``tf.while_loop``. Masked steps keep Keras'
semantics (states and outputs carry over, or zero outputs with
``zero_output_for_mask``). Recurrent dropout, GRU with ``reset_after=False``,
non-TensorFlow backends and GPUs (where Keras can use cuDNN) fall back to
Keras' own loop.

LSTM layers go further: with float32 and Keras' default activations, masked or not, all steps
run as one C++ op forward and one backward (:mod:`tfseq.models.fused_lstm`), when that op builds
on this machine, in training calls and in the functions Keras' ``fit``, ``evaluate`` and
``predict`` trace for an accelerated model (its graphs then trace in about a second, where the
unrolled gate-by-gate graph of an LSTM-128 took 8 s).

The speed is a runtime choice, never something written into a user's files. Models hold Keras'
own ``LSTM``, ``GRU`` and ``SimpleRNN`` classes; :func:`accelerate` (called by
:func:`tfseq.build_model` and :func:`tfseq.load_model`) gives those layer *instances* the faster
loop. A saved ``.keras`` file therefore names only Keras classes and loads with plain
``keras.models.load_model`` where tfseq is not installed; and because the fused op runs only in
training calls and Keras' own fit/evaluate/predict functions, every other inference graph
(``model.export()``, ``tf.saved_model.save``, a user's ``tf.function``) is built from
TensorFlow's own ops and serves where tfseq is not installed.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import keras
import tensorflow as tf

from tfseq.models import fused_lstm

_Model = TypeVar("_Model")

#: Longest fixed sequence that runs unrolled; longer or variable ones run a ``tf.while_loop``.
UNROLL_STEPS = 64


def read_weight(variable: Any, dtype: tf.DType | None = None) -> tf.Tensor:
    """The tensor behind a Keras weight, cast to ``dtype`` when given."""
    value = tf.convert_to_tensor(variable.value if hasattr(variable, "value") else variable)
    return value if dtype is None or value.dtype == dtype else tf.cast(value, dtype)


@functools.cache
def _gpu() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


def _supported(layer: keras.layers.RNN) -> bool:
    """Whether ``layer`` runs gate by gate: on GPUs Keras' own loop can use cuDNN instead."""
    cell = layer.cell
    if isinstance(cell, keras.layers.GRUCell) and not cell.reset_after:
        return False
    return keras.backend.backend() == "tensorflow" and not layer.recurrent_dropout and not _gpu()


class _Gates:
    """One cell's weights cut per gate, and its step on pre-projected inputs."""

    def __init__(self, cell: keras.layers.Layer, dtype: tf.DType | None) -> None:
        self.cell = cell
        self.kind = type(cell).__name__
        count = {"LSTMCell": 4, "GRUCell": 3}.get(self.kind, 1)
        self.kernels = tf.split(read_weight(cell.kernel, dtype), count, axis=1)
        self.recurrent = tf.split(read_weight(cell.recurrent_kernel, dtype), count, axis=1)
        self.input_bias: list[tf.Tensor | None] = [None] * count
        self.recurrent_bias: list[tf.Tensor | None] = [None] * count
        if cell.use_bias:
            bias = read_weight(cell.bias, dtype)
            if self.kind == "GRUCell":  # reset_after: one bias for the inputs, one for the state
                self.input_bias = tf.split(bias[0], count)
                self.recurrent_bias = tf.split(bias[1], count)
            else:
                self.input_bias = tf.split(bias, count)

    def project(self, flat_inputs: tf.Tensor) -> list[tf.Tensor]:
        """Per gate: ``inputs @ kernel + bias`` for the rows of ``flat_inputs``."""
        out = []
        for kernel, bias in zip(self.kernels, self.input_bias):
            projected = tf.matmul(flat_inputs, kernel)
            out.append(projected if bias is None else projected + bias)
        return out

    def step(self, projected: list[tf.Tensor], states: list[tf.Tensor]) -> list[tf.Tensor]:
        """One step given each gate's projected input; returns the new states (``h`` first)."""
        cell, h = self.cell, states[0]
        act = cell.activation
        if self.kind == "LSTMCell":
            rec = cell.recurrent_activation
            x_i, x_f, x_c, x_o = projected
            u_i, u_f, u_c, u_o = self.recurrent
            c = rec(x_f + tf.matmul(h, u_f)) * states[1] + rec(x_i + tf.matmul(h, u_i)) * act(
                x_c + tf.matmul(h, u_c))
            return [rec(x_o + tf.matmul(h, u_o)) * act(c), c]
        if self.kind == "GRUCell":
            rec = cell.recurrent_activation
            inner = [tf.matmul(h, u) if b is None else tf.matmul(h, u) + b
                     for u, b in zip(self.recurrent, self.recurrent_bias)]
            z = rec(projected[0] + inner[0])
            r = rec(projected[1] + inner[1])
            return [z * h + (1.0 - z) * act(projected[2] + r * inner[2])]
        return [act(projected[0] + tf.matmul(h, self.recurrent[0]))]


def _in_xla() -> bool:
    """Whether the call is being traced for XLA (``jit_compile=True``), which cannot run custom ops."""
    try:
        from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext
    except ImportError:  # a TensorFlow without it: assume XLA, and stay on TensorFlow's own ops
        return True
    return GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


_scope = threading.local()


@contextlib.contextmanager
def fused_inference() -> Iterator[None]:
    """Inside, inference calls of accelerated LSTM layers may run the fused op too.

    Outside, they keep TensorFlow's own ops, so that graphs a user traces and saves
    (``model.export()``, ``tf.saved_model.save``) serve where tfseq is not installed.
    """
    previous = getattr(_scope, "on", False)
    _scope.on = True
    try:
        yield
    finally:
        _scope.on = previous


class _FusedScope:
    """A Keras trainer function (train, test or predict step) traced inside :func:`fused_inference`."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with fused_inference():
            return self.function(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.function, name)


def _fusable(layer: keras.layers.RNN, sequences: tf.Tensor, training: bool | None) -> bool:
    """Whether ``layer``'s call can run as the fused LSTM op (:mod:`tfseq.models.fused_lstm`).

    Training calls can, and inference calls inside :func:`fused_inference`; other inference
    graphs keep TensorFlow's own ops so they serve anywhere.
    """
    cell = layer.cell
    return ((bool(training) or getattr(_scope, "on", False)) and isinstance(cell, keras.layers.LSTMCell) and sequences.dtype == tf.float32
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
            and not _in_xla() and fused_lstm.ops() is not None)


def _fused_rnn(
    layer: keras.layers.RNN, time_major: tf.Tensor, initial_state: list[tf.Tensor], mask: tf.Tensor | None
) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
    """:func:`per_gate_rnn` for an LSTM as the fused op; ``mask`` is time-major (or None)."""
    cell = layer.cell
    shape = tf.shape(time_major)
    flat = tf.reshape(time_major, [-1, time_major.shape[2]])
    projected = tf.reshape(tf.matmul(flat, read_weight(cell.kernel)), [shape[0], shape[1], 4 * cell.units])
    bias = read_weight(cell.bias) if cell.use_bias else tf.zeros([4 * cell.units])
    h0, c0 = (tf.convert_to_tensor(s) for s in initial_state)
    outputs, h_last, c_last = fused_lstm.fused_lstm(
        projected, bias, h0, c0, read_weight(cell.recurrent_kernel), mask,
        return_sequences=layer.return_sequences, zero_output_for_mask=layer.zero_output_for_mask)
    if layer.return_sequences:
        return outputs[-1], tf.transpose(outputs, [1, 0, 2]), [h_last, c_last]
    return outputs, outputs[:, None, :], [h_last, c_last]


def per_gate_rnn(
    layer: keras.layers.RNN,
    sequences: tf.Tensor,
    initial_state: list[tf.Tensor],
    mask: tf.Tensor | None = None,
    training: bool | None = False,
) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
    """``layer``'s recurrence over ``sequences`` ``[batch, steps, features]``, gate by gate.

    Returns ``(last_output, outputs, states)`` as ``keras.src.backend.rnn``
    does: with ``go_backwards`` the steps run last to first and ``outputs``
    is in that order; without ``return_sequences`` ``outputs`` is the last
    output with a time axis of 1. LSTM training calls the fused op can take run as that op
    instead.
    """
    time_major = tf.transpose(sequences, [1, 0, 2])
    if layer.go_backwards:
        time_major = tf.reverse(time_major, [0])
    if mask is not None:
        mask = tf.cast(tf.transpose(mask, [1, 0]), tf.bool)  # [steps, batch]
        if layer.go_backwards:
            mask = tf.reverse(mask, [0])
    if _fusable(layer, sequences, training):
        return _fused_rnn(layer, time_major, initial_state, mask)
    gates = _Gates(layer.cell, sequences.dtype)
    steps, features = time_major.shape[0], time_major.shape[2]
    dynamic = tf.shape(time_major)
    flat = tf.reshape(time_major, [-1, features])
    projected = [tf.reshape(p, [dynamic[0], dynamic[1], -1]) for p in gates.project(flat)]
    if mask is not None:
        mask = mask[..., None]  # [steps, batch, 1]
    states = [tf.convert_to_tensor(s) for s in initial_state]
    zero_output = layer.zero_output_for_mask

    def advance(
        step_inputs: list[tf.Tensor], step_mask: tf.Tensor | None, states: list[tf.Tensor], previous: tf.Tensor
    ) -> tuple[list[tf.Tensor], tf.Tensor]:
        new = gates.step(step_inputs, states)
        if step_mask is None:
            return new, new[0]
        new = [tf.where(step_mask, n, s) for n, s in zip(new, states)]
        output = tf.where(step_mask, new[0], tf.zeros_like(new[0]) if zero_output else previous)
        return new, output

    previous = tf.zeros_like(states[0])
    if steps is not None and steps <= UNROLL_STEPS:
        columns = [tf.unstack(p) for p in projected]
        masks = tf.unstack(mask) if mask is not None else [None] * steps
        outputs = []
        for t in range(steps):
            states, previous = advance([c[t] for c in columns], masks[t], states, previous)
            outputs.append(previous)
        sequence = tf.stack(outputs, axis=1) if layer.return_sequences else None
    else:
        arrays = [tf.TensorArray(p.dtype, size=dynamic[0]).unstack(p) for p in projected]
        mask_array = tf.TensorArray(tf.bool, size=dynamic[0]).unstack(mask) if mask is not None else None
        written = tf.TensorArray(sequences.dtype, size=dynamic[0]) if layer.return_sequences else None

        def body(t: tf.Tensor, previous: tf.Tensor, *loop_vars: Any) -> tuple[Any, ...]:
            step_mask = mask_array.read(t) if mask_array is not None else None
            new, output = advance([a.read(t) for a in arrays], step_mask, list(loop_vars[:len(states)]),
                                  previous)
            extra = [loop_vars[-1].write(t, output)] if written is not None else []
            return (t + 1, output, *new, *extra)

        loop_vars = [tf.constant(0), previous, *states] + ([written] if written is not None else [])
        _, previous, *rest = tf.while_loop(lambda t, *_: t < dynamic[0], body, loop_vars)
        states = rest[:len(states)]
        sequence = tf.transpose(rest[-1].stack(), [1, 0, 2]) if written is not None else None
    if sequence is None:
        sequence = previous[:, None, :]
    return previous, sequence, states


def _fast_inner_loop(
    self: keras.layers.RNN, sequences: tf.Tensor, initial_state: Any, mask: Any, training: bool | None = False
) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
    """A Keras recurrent layer's ``inner_loop``: supported calls run :func:`per_gate_rnn`."""
    if isinstance(mask, (list, tuple)):
        mask = mask[0]
    if not _supported(self):
        return _keras_class(self).inner_loop(self, sequences, initial_state, mask, training=training)
    if not isinstance(initial_state, (list, tuple)):
        initial_state = [initial_state]
    if training and self.dropout:
        # Keras' cells reuse one input dropout mask at every step; so does this.
        sequences = sequences * self.cell.get_dropout_mask(sequences[:, 0, :])[:, None, :]
    return per_gate_rnn(self, sequences, initial_state, mask, training=training)


_KERAS_CLASSES = (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)


def _keras_class(layer: keras.layers.RNN) -> type[keras.layers.RNN]:
    return next(cls for cls in _KERAS_CLASSES if isinstance(layer, cls))


def accelerate(model: _Model) -> _Model:
    """Gives every Keras ``LSTM``, ``GRU`` and ``SimpleRNN`` layer in ``model`` tfseq's faster loop.

    Only the layer instances change, in this process: the model's classes, configuration,
    weights and results stay Keras' own, so a ``.keras`` file saved from it loads without
    tfseq. Layers inside ``Bidirectional`` wrappers are included; calling it twice is harmless.

    Args:
        model: A Keras model or layer.

    Returns:
        ``model``.
    """
    layers = [model]
    if hasattr(model, "_flatten_layers"):
        layers = list(model._flatten_layers(include_self=True, recursive=True))
    for layer in layers:
        if isinstance(layer, _KERAS_CLASSES):
            # Bypasses Keras' attribute tracking: a bound method is neither state nor config.
            object.__setattr__(layer, "inner_loop", types.MethodType(_fast_inner_loop, layer))
    if isinstance(model, keras.Model):
        for kind in ("train", "test", "predict"):
            maker = getattr(model, f"make_{kind}_function")
            if not getattr(maker, "_tfseq_fused", False):
                object.__setattr__(model, f"make_{kind}_function", _fused_maker(model, kind, maker))
    return model


def _fused_maker(model: keras.Model, kind: str, make: Callable[..., Any]) -> Callable[..., Any]:
    """``model.make_<kind>_function`` whose function traces inside :func:`fused_inference`."""

    def make_function(force: bool = False) -> Any:
        make(force=force)  # Keras sets model.<kind>_function (and returns it only sometimes)
        function = getattr(model, f"{kind}_function", None)
        if function is not None and not isinstance(function, _FusedScope):
            function = _FusedScope(function)
            setattr(model, f"{kind}_function", function)
        return function

    setattr(make_function, "_tfseq_fused", True)  # the mark accelerate() checks; mypy models no function attributes
    return make_function


class _Accelerated:
    """Mixin: a Keras recurrent layer class whose instances run the fast loop from the start."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        accelerate(self)


# Models built by tfseq hold Keras' own classes (see accelerate); these read the files that
# tfseq 0.1 saved under ``tfseq>LSTM`` etc., and serve tests that want one fast layer.
@keras.saving.register_keras_serializable(package="tfseq")
class LSTM(_Accelerated, keras.layers.LSTM):
    """``keras.layers.LSTM`` running tfseq's fast loop (see :mod:`tfseq.models.recurrent`)."""


@keras.saving.register_keras_serializable(package="tfseq")
class GRU(_Accelerated, keras.layers.GRU):
    """``keras.layers.GRU`` running tfseq's fast loop (see :mod:`tfseq.models.recurrent`)."""


@keras.saving.register_keras_serializable(package="tfseq")
class SimpleRNN(_Accelerated, keras.layers.SimpleRNN):
    """``keras.layers.SimpleRNN`` running tfseq's fast loop (see :mod:`tfseq.models.recurrent`)."""
