"""Recurrent layers as one builtin TF Lite ``WHILE`` loop, for export graphs only.

An unrolled graph repeats about 15 ops and 20 tensors per step and layer: for
an LSTM-128 over 20 steps that bookkeeping is 45 KB of a 340 KB file, and it
keeps the dynamic-range file at 0.39x of float32. A ``tf.while_loop`` with
static shapes converts to a builtin ``WHILE`` op whose body holds one step,
so the file is little more than its weights (dynamic-range: 0.31x), and the
input projection of all steps runs as one matrix product before the loop.

Masked inputs run the same loop with Keras' masked-step semantics: at a
padding step the states carry over and the output repeats the previous one
(or is zero with ``zero_output_for_mask``), as a blend by the step's 0/1
mask, builtin ops only. For the full-int8 mode the loop carries the
input sequence and rotates it (``rotate_inputs``): the TF 2.21 calibrator
crashes on a loop variable passed through unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf

from tfseq.models.recurrent import read_weight

if TYPE_CHECKING:  # the mixin's methods use and extend a Keras recurrent layer's
    from keras.layers import RNN as _RecurrentLayer
else:
    _RecurrentLayer = object


def _supported(cell: keras.layers.Layer) -> bool:
    if isinstance(cell, keras.layers.GRUCell):
        return bool(cell.reset_after)
    return isinstance(cell, (keras.layers.LSTMCell, keras.layers.SimpleRNNCell))


def _projection_bias(cell: keras.layers.Layer) -> tf.Tensor | None:
    """The bias added to ``x @ kernel`` (GRU with ``reset_after`` keeps a second one for ``h``)."""
    if not cell.use_bias:
        return None
    bias = read_weight(cell.bias)
    return bias[0] if isinstance(cell, keras.layers.GRUCell) else bias


def _step(
    cell: keras.layers.Layer, projected: tf.Tensor, states: list[tf.Tensor]
) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """One step of ``cell`` given ``x_t @ kernel + bias``; returns ``(output, states)``.

    The recurrent weights are read inside the loop body, so that after
    freezing they are constants of the body (and dynamic-range quantisation
    reaches them) rather than loop-carried tensors.
    """
    act = cell.activation
    inner = tf.matmul(states[0], read_weight(cell.recurrent_kernel))
    if isinstance(cell, keras.layers.LSTMCell):
        z = projected + inner
        i, f, g, o = tf.split(z, 4, axis=-1)
        rec = cell.recurrent_activation
        c = rec(f) * states[1] + rec(i) * act(g)
        h = rec(o) * act(c)
        return h, [h, c]
    if isinstance(cell, keras.layers.GRUCell):
        if cell.use_bias:
            inner = inner + read_weight(cell.bias)[1]
        x_z, x_r, x_h = tf.split(projected, 3, axis=-1)
        r_z, r_r, r_h = tf.split(inner, 3, axis=-1)
        rec = cell.recurrent_activation
        z = rec(x_z + r_z)
        r = rec(x_r + r_r)
        h = z * states[0] + (1.0 - z) * act(x_h + r * r_h)
        return h, [h]
    h = act(projected + inner)
    return h, [h]


def while_rnn(
    cell: keras.layers.Layer,
    sequences: tf.Tensor,
    initial_state: list[tf.Tensor],
    *,
    go_backwards: bool,
    return_sequences: bool,
    rotate: bool = False,
    mask: tf.Tensor | None = None,
    zero_output_for_mask: bool = False,
) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
    """Runs ``cell`` over ``sequences`` ``[batch, steps, features]`` in one ``tf.while_loop``.

    Returns ``(last_output, outputs, states)`` as ``keras.src.backend.rnn``
    does: with ``go_backwards`` the steps run last to first and ``outputs``
    is in that order; without ``return_sequences`` ``outputs`` is the last
    output with a time axis of 1.

    By default the input projection of all steps is one matrix product before
    the loop, and each step gathers its row (fastest). With ``rotate`` the
    loop carries the input sequence itself, takes its first step and rotates
    it by one: every loop variable then changes in every iteration, which the
    TF 2.21 int8 calibrator needs (a variable passed through unchanged, such
    as the projected sequence, makes it crash).

    ``mask`` (``[batch, steps]``, true for real steps) keeps Keras' masked-step semantics.
    """
    steps, features = sequences.shape[1], sequences.shape[2]
    x = tf.reverse(sequences, axis=[1]) if go_backwards else sequences
    valid = None
    if mask is not None:
        valid = tf.cast(mask, x.dtype)[..., None]  # [batch, steps, 1]
        valid = tf.reverse(valid, axis=[1]) if go_backwards else valid
        if rotate:  # the mask rotates with the steps, as the last column
            x = tf.concat([x, valid], axis=-1)
    bias = _projection_bias(cell)

    def project(inputs: tf.Tensor) -> tf.Tensor:
        projected = tf.matmul(inputs, read_weight(cell.kernel))
        return projected if bias is None else projected + bias

    if rotate:
        pending = x
    else:
        projected = project(tf.reshape(x, [-1, features]))
        projected = tf.reshape(projected, [-1, steps, projected.shape[-1]])
    states = [tf.convert_to_tensor(s) for s in initial_state]
    batch = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
    # Outputs of every step are summed into place (one-hot over time): builtin ops only, where a
    # TensorArray would need the TensorList ops that TF Lite cannot lower without static shapes.
    carried = [tf.zeros([batch, steps, cell.units], dtype=x.dtype)] if return_sequences else []
    rotating = [pending] if rotate else []

    def body(t: tf.Tensor, *loop_vars: Any) -> tuple[Any, ...]:
        step_valid = None
        if rotate:
            head, loop_vars = loop_vars[0], loop_vars[1:]
            step_input = project(head[:, 0, :features])
            if valid is not None:
                step_valid = head[:, 0, features:]
            rotated = [tf.concat([head[:, 1:, :], head[:, :1, :]], axis=1)]
        else:
            step_input, rotated = tf.gather(projected, t, axis=1), []
            if valid is not None:
                step_valid = tf.gather(valid, t, axis=1)
        old = list(loop_vars[:len(states)])
        h, new_states = _step(cell, step_input, old)
        if step_valid is not None:
            new_states = [step_valid * n + (1.0 - step_valid) * o for n, o in zip(new_states, old)]
            h = step_valid * h if zero_output_for_mask else new_states[0]
        if not return_sequences:
            return (t + 1, *rotated, *new_states)
        at_t = tf.reshape(tf.one_hot(t, steps, dtype=h.dtype), [1, steps, 1])
        return (t + 1, *rotated, *new_states, loop_vars[-1] + at_t * h[:, None, :])

    _, *loop_vars = tf.while_loop(
        lambda t, *_: t < steps, body, [tf.constant(0), *rotating, *states, *carried]
    )
    loop_vars = loop_vars[len(rotating):]
    states = loop_vars[:len(states)]
    last = states[0]
    return last, (loop_vars[-1] if return_sequences else last[:, None, :]), states


class _WhileLoopRNN(_RecurrentLayer):
    """Mixin over a Keras recurrent layer: its calls run :func:`while_rnn`, masked or not.

    Args:
        rotate_inputs: Build the loop the int8 calibrator can run (see :func:`while_rnn`).
    """

    def __init__(self, *args: Any, rotate_inputs: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rotate_inputs = rotate_inputs

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rotate_inputs": self.rotate_inputs}

    def inner_loop(
        self, sequences: tf.Tensor, initial_state: Any, mask: Any, training: bool | None = False
    ) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not _supported(self.cell) or sequences.shape[1] is None:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        return while_rnn(
            self.cell, sequences, initial_state, go_backwards=self.go_backwards,
            return_sequences=self.return_sequences, rotate=self.rotate_inputs, mask=mask,
            zero_output_for_mask=self.zero_output_for_mask,
        )


class WhileLSTM(_WhileLoopRNN, keras.layers.LSTM):
    """``keras.layers.LSTM`` whose calls run as one while loop."""


class WhileGRU(_WhileLoopRNN, keras.layers.GRU):
    """``keras.layers.GRU`` whose calls run as one while loop."""


class WhileSimpleRNN(_WhileLoopRNN, keras.layers.SimpleRNN):
    """``keras.layers.SimpleRNN`` whose calls run as one while loop."""


#: Keras class name -> its while-loop twin, for :func:`tfseq.export._graph.export_clone`.
WHILE_LAYERS = {"LSTM": WhileLSTM, "GRU": WhileGRU, "SimpleRNN": WhileSimpleRNN}
