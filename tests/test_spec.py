import json

import pytest

from tfseq.errors import InputError, SpecError
from tfseq.models.spec import HeadSpec, ModelSpec


def test_round_trip_through_config_and_json(tmp_path):
    spec = ModelSpec(
        cell="gru", units=(16, 8), bidirectional=True, merge_mode="sum", dropout=0.1,
        pooling="attention", layer_norm=True, masking=True,
        heads=(HeadSpec("binary", name="fail"), HeadSpec("regression", name="ttf", loss_weight=0.5)),
    )
    assert ModelSpec.from_config(spec.get_config()) == spec
    assert ModelSpec.from_json(spec.to_json()) == spec
    spec.to_json(tmp_path / "spec.json")
    assert ModelSpec.from_json(tmp_path / "spec.json") == spec
    json.loads((tmp_path / "spec.json").read_text())  # plain JSON


def test_spec_is_an_input_error_and_a_value_error():
    assert issubclass(SpecError, InputError) and issubclass(SpecError, ValueError)


@pytest.mark.parametrize(
    "changes, argument",
    [
        ({"cell": "transformer"}, "cell"),
        ({"units": ()}, "units"),
        ({"units": (8, 0)}, "units"),
        ({"merge_mode": "max"}, "merge_mode"),
        ({"dropout": 1.0}, "dropout"),
        ({"recurrent_dropout": -0.1}, "recurrent_dropout"),
        ({"pooling": "max"}, "pooling"),
        ({"heads": ()}, "heads"),
        ({"heads": (HeadSpec(), HeadSpec())}, "heads"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"precision": "float64"}, "precision"),
        ({"bidirectional": "false"}, "bidirectional"),
        ({"masking": 1}, "masking"),
        ({"layer_norm": None}, "layer_norm"),
    ],
)
def test_invalid_values_name_the_argument(changes, argument):
    with pytest.raises(SpecError, match=f"argument {argument}, expected .*, got"):
        ModelSpec(**changes)


@pytest.mark.parametrize(
    "head, argument",
    [({"kind": "ranking"}, "head kind"), ({"kind": "multiclass", "num_classes": 1}, "num_classes"),
     ({"kind": "forecast", "horizon": 0}, "horizon")],
)
def test_invalid_heads(head, argument):
    with pytest.raises(SpecError, match=argument):
        HeadSpec(**head)


def test_unknown_config_key_is_rejected():
    with pytest.raises(SpecError, match="nunits"):
        ModelSpec.from_config({"nunits": [8]})


def test_name_describes_the_architecture():
    assert ModelSpec(cell="lstm", units=(128, 64), bidirectional=True).name == "bilstm-128x64"
    assert ModelSpec(cell="simple_rnn", units=8).name == "rnn-8"
