"""tfseq's gate-by-gate recurrent layers compute what Keras' own layers compute."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseq.models import recurrent
from tfseq.models.builders import build_model
from tfseq.models.io import load_model
from tfseq.models.spec import ModelSpec

CELLS = ("LSTM", "GRU", "SimpleRNN")


def _padded(rng):
    x = rng.normal(size=(6, 5, 3)).astype("float32")
    x[:2, 3:] = 0.0  # padding at the end
    x[4, :2] = 0.0  # and at the start
    return tf.constant(x)


def _pair(kind, rng, **kwargs):
    ours, theirs = getattr(recurrent, kind)(4, seed=1, **kwargs), getattr(keras.layers, kind)(4, seed=1, **kwargs)
    ours.build((None, 5, 3))
    theirs.build((None, 5, 3))
    weights = [w + 0.3 * rng.normal(size=w.shape).astype("float32") for w in theirs.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def _outputs_and_gradients(layer, x, mask):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, mask=mask)
        loss = tf.reduce_sum(tf.sin(3.0 * y))
    return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]


@pytest.mark.parametrize("unroll_steps", [64, 0], ids=["unrolled", "while_loop"])
@pytest.mark.parametrize("kind", CELLS)
def test_outputs_and_gradients_match_keras(kind, unroll_steps, rng, monkeypatch):
    monkeypatch.setattr(recurrent, "UNROLL_STEPS", unroll_steps)
    calls = []
    run = recurrent.per_gate_rnn
    monkeypatch.setattr(recurrent, "per_gate_rnn", lambda *a, **k: calls.append(1) or run(*a, **k))
    x = _padded(rng)
    mask = tf.reduce_any(x != 0.0, axis=-1)
    cases = [dict(), dict(go_backwards=True), dict(return_sequences=True),
             dict(return_sequences=True, go_backwards=True)]
    for kwargs in cases:
        for masked, zero in ((False, False), (True, False), (True, True)):
            ours, theirs = _pair(kind, rng, zero_output_for_mask=zero, **kwargs)
            got = _outputs_and_gradients(ours, x, mask if masked else None)
            want = _outputs_and_gradients(theirs, x, mask if masked else None)
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=f"{kind} {kwargs} {masked} {zero}")
    assert len(calls) == 12  # every case ran gate by gate, none fell back to Keras


def test_variable_length_runs_the_while_loop_and_matches_keras(rng):
    ours, theirs = _pair("LSTM", rng, return_sequences=True)
    spec = [tf.TensorSpec([None, None, 3], tf.float32)]
    x = _padded(rng)
    got = tf.function(ours, input_signature=spec)(x)
    want = tf.function(theirs, input_signature=spec)(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_recurrent_dropout_and_gru_reset_before_fall_back_to_keras(rng, monkeypatch):
    monkeypatch.setattr(recurrent, "per_gate_rnn", None)  # a call would fail
    x = _padded(rng)
    for kind, kwargs in (("LSTM", dict(recurrent_dropout=0.5)), ("GRU", dict(reset_after=False))):
        ours, theirs = _pair(kind, rng, **kwargs)
        np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_input_dropout_masks_features_not_steps(rng):
    layer = recurrent.SimpleRNN(3, dropout=0.5, activation=None, use_bias=False, return_sequences=True, seed=0)
    layer.build((None, 4, 2))
    layer.set_weights([np.eye(2, 3, dtype="float32"), np.zeros((3, 3), "float32")])
    x = np.ones((64, 4, 2), dtype="float32")
    y = np.asarray(layer(x, training=True))[..., :2]
    assert set(np.unique(y).round(4)) <= {0.0, 2.0}  # dropped or scaled by 1 / (1 - 0.5)
    assert (y == y[:, :1]).all()  # one mask for every step, as Keras' cells do
    assert 0.3 < (y == 0).mean() < 0.7


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_built_models_save_and_load_in_safe_mode(cell, rng, tmp_path):
    x = rng.normal(size=(16, 5, 3)).astype("float32")
    model = build_model(ModelSpec(cell=cell, units=(4,), bidirectional=cell == "lstm"), n_features=3,
                        steps=5, seed=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    layer = loaded.layers[2].forward_layer if cell == "lstm" else loaded.layers[2]
    # Keras' own class in the file, tfseq's loop on the instance.
    assert type(layer) in (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)
    assert layer.inner_loop.__func__ is recurrent._fast_inner_loop
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["binary"], model.predict(x, verbose=0)["binary"],
                               rtol=1e-6)
