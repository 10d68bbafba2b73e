"""The while-loop twins of the Keras recurrent layers compute what Keras computes."""

from __future__ import annotations

import numpy as np
import pytest

from tfseq.export import _loop
from tfseq.export._graph import export_clone, predict_dict
from tfseq.models.builders import build_model
from tfseq.models.spec import ModelSpec

STEPS = 6

SPECS = {
    "lstm": ModelSpec(cell="lstm", units=(5,)),
    "gru-stacked": ModelSpec(cell="gru", units=(5, 4)),
    "birnn": ModelSpec(cell="simple_rnn", units=(5,), bidirectional=True),
    "bilstm-mean": ModelSpec(cell="lstm", units=(4,), bidirectional=True, pooling="mean"),
    "bigru-attention-sum": ModelSpec(cell="gru", units=(4,), bidirectional=True, pooling="attention",
                                     merge_mode="sum"),
    "lstm-layernorm-bf16": ModelSpec(cell="lstm", units=(4, 3), layer_norm=True,
                                     precision="mixed_bfloat16"),
    # masked: padding steps carry the states over (Keras' masked step), in the same loop
    "lstm-masked": ModelSpec(cell="lstm", units=(5,), masking=True),
    "bigru-masked-stacked": ModelSpec(cell="gru", units=(4, 3), bidirectional=True, masking=True),
    "birnn-masked-mean": ModelSpec(cell="simple_rnn", units=(4,), bidirectional=True, masking=True,
                                   pooling="mean"),
    "bilstm-masked-branches": ModelSpec(cell="lstm", units=(4,), bidirectional=True, masking=True,
                                        conv_filters=(3, 2), summary_segments=3, linear_skip=True,
                                        random_features=200, recurrent_pool=2),
}


@pytest.mark.parametrize("rotate", [False, True], ids=["gather", "rotate"])
@pytest.mark.parametrize("name", list(SPECS))
def test_loop_clone_matches_keras(name, rotate, rng, monkeypatch):
    calls = []
    original = _loop.while_rnn
    monkeypatch.setattr(_loop, "while_rnn", lambda *a, **k: calls.append(1) or original(*a, **k))
    spec = SPECS[name]
    x = (rng.normal(size=(5, STEPS, 3)) * 4).astype("float32")
    if spec.masking:  # zero-padded tails of several lengths, one sequence unpadded
        x[np.arange(STEPS)[None, :] >= np.array([2, 6, 4, 1, 5])[:, None]] = 0.0
    model = build_model(spec, n_features=3, steps=STEPS, adapt=x, targets=np.array([0, 1, 0, 1, 1]), seed=2)
    clone = export_clone(model, steps=STEPS, batch_size=1, unroll=True, loop=True, rotate=rotate)
    layers = len(spec.units) * (2 if spec.bidirectional else 1)
    reference = predict_dict(export_clone(model, steps=STEPS), x)
    got = [predict_dict(clone, x[i:i + 1]) for i in range(len(x))]
    assert len(calls) == layers  # every recurrent layer ran as a loop, traced once
    for key, value in reference.items():
        np.testing.assert_allclose(np.concatenate([g[key] for g in got]), value, atol=1e-5)
