"""The search space, objectives and the train-config form of a spec: no training here."""

from __future__ import annotations

import json

import pytest

from tfseq.errors import InputError
from tfseq.tuning import HYPERPARAMETERS, Range, SearchSpace, best_train_config, parse_objective, parse_values


def test_default_space_covers_every_hyperparameter_of_the_issue():
    config = SearchSpace().get_config()
    assert list(config) == list(HYPERPARAMETERS)
    assert config["cell"] == ["simple_rnn", "lstm", "gru"] and config["bidirectional"] == [False, True]
    assert config["layers"] == {"min": 1, "max": 3}
    assert config["learning_rate"] == {"min": 1e-4, "max": 1e-2, "log": True}
    assert config["pooling"] == ["last", "mean", "attention"]


@pytest.mark.parametrize(
    "config, name, expected",
    [
        ({"cell": "gru"}, "cell", "gru"),
        ({"cell": ["lstm", "gru"]}, "cell", ["lstm", "gru"]),
        ({"layers": {"min": 1, "max": 2}}, "layers", Range(1, 2)),
        ({"layers": {"min": 2, "max": 2}}, "layers", 2),
        ({"units": [8, 8]}, "units", 8),
        ({"dropout": {"min": 0, "max": 0.2, "step": 0.1}}, "dropout", Range(0.0, 0.2, step=0.1)),
        ({"learning-rate": {"min": 1e-3, "max": 1e-2, "log": True}}, "learning_rate", Range(1e-3, 1e-2, log=True)),
        ({"bidirectional": "false"}, "bidirectional", False),
    ],
)
def test_any_hyperparameter_can_be_fixed_or_narrowed(config, name, expected):
    space = SearchSpace.from_config(config)
    assert space.values[name] == expected
    assert SearchSpace.from_config(space.get_config()) == space  # round trip


@pytest.mark.parametrize(
    "config, message",
    [
        ({"cells": ["lstm"]}, "unknown hyperparameter 'cells'; did you mean 'cell'?"),
        ({"units": []}, "an empty list"),
        ({"units": {"min": 64, "max": 8}}, "an empty range"),
        ({"cell": "transformer"}, "one of simple_rnn, lstm, gru"),
        ({"layers": 4}, "an integer from 1 to 3"),
        ({"dropout": 1.0}, "a number in [0, 1)"),
        ({"pooling": {"min": 1, "max": 2}}, "not a range"),
        ({"learning_rate": {"min": 0, "max": 0.1, "log": True}}, "a positive"),
        ({"batch_size": {"low": 8, "max": 64}}, "a range {min: A, max: B}"),
    ],
)
def test_bad_spaces_name_the_hyperparameter(config, message):
    with pytest.raises(InputError, match=None) as info:
        SearchSpace.from_config(config)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_space_file_in_json_yaml_and_toml(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"cell": ["gru"], "units": [4, 8]}))
    (tmp_path / "s.yaml").write_text("search_space:\n  cell: gru\n  units: [4, 8]\n")
    (tmp_path / "s.toml").write_text('cell = "gru"\nunits = [4, 8]\n')
    spaces = [SearchSpace.from_file(tmp_path / f"s.{suffix}") for suffix in ("json", "yaml", "toml")]
    assert all(s.values["cell"] == "gru" and s.values["units"] == [4, 8] for s in spaces)
    (tmp_path / "bad.yaml").write_text("units: {min: 8, max: 4}\n")
    with pytest.raises(InputError, match="bad.yaml: .*units"):
        SearchSpace.from_file(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("cell", "gru", "gru"),
        ("cell", "lstm, gru", ["lstm", "gru"]),
        ("units", "16,32", [16, 32]),
        ("units", "16:64", Range(16, 64)),
        ("learning_rate", "1e-4:1e-2", Range(1e-4, 1e-2, log=True)),
        ("dropout", "0:0.3", Range(0.0, 0.3, step=0.1)),
        ("bidirectional", "true,false", [True, False]),
        ("layers", "2", 2),
    ],
)
def test_flag_text_fixes_chooses_or_ranges(name, text, expected):
    assert parse_values(name, text) == expected


@pytest.mark.parametrize("name, text", [("units", ""), ("units", "a:b"), ("units", "1:2:3"), ("units", "8,"),
                                        ("units", "8:4"), ("layers", "0"), ("bogus", "1")])
def test_bad_flag_text_is_an_input_error(name, text):
    with pytest.raises(InputError):
        parse_values(name, text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("val_auc", ("val_auc", "max")),
        ("val_recall", ("val_recall", "max")),
        ("val_loss", ("val_loss", "min")),
        ("val_mae", ("val_mae", "min")),
        ("val_binary_auc", ("val_binary_auc", "max")),
        ("val_loss:max", ("val_loss", "max")),
        ("my_score:min", ("my_score", "min")),
    ],
)
def test_objective_direction(text, expected):
    assert parse_objective(text) == expected


@pytest.mark.parametrize("text", ["", "val_auc:up", "val_weird"])
def test_bad_objective(text):
    with pytest.raises(InputError, match="objective"):
        parse_objective(text)


def test_the_space_uses_the_model_specs_vocabulary():
    from tfseq.models import spec
    from tfseq.tuning import space

    assert space.CELLS is spec.CELLS and space.POOLINGS is spec.POOLINGS


def test_declare_builds_units_only_for_the_layers_of_the_trial():
    import keras_tuner as kt

    space = SearchSpace({"cell": "gru", "layers": [1, 3], "units": [4, 8]})
    hp = kt.HyperParameters()
    values = space.declare(hp)
    assert values["cell"] == "gru" and len(values["units"]) == values["layers"] == 1
    assert {"units_0", "units_1", "units_2"} <= set(hp._hps)  # deeper layers declared, conditionally
    hp.values.update(layers=3, units_1=8, units_2=4)
    assert space.declare(hp)["units"] == (4, 8, 4)


def test_best_spec_is_a_train_config():
    from tfseq.cli.data_args import DATA_KEYS
    from tfseq.cli.train import TRAIN_KEYS
    from tfseq.training.defaults import default_spec

    spec = default_spec("binary").replace(cell="gru", units=(32, 16), pooling="mean", recurrent_dropout=0.1)
    config = json.loads(json.dumps(best_train_config(spec, 64)))
    assert set(config) <= set(TRAIN_KEYS) | set(DATA_KEYS) | {"model"}
    assert config["cell"] == "gru" and config["units"] == [32, 16] and config["batch_size"] == 64
    assert config["model"]["pooling"] == "mean" and "heads" not in config["model"]
    flags = {k: v for k, v in config.items() if k not in ("model", "batch_size")}
    rebuilt = default_spec("binary").replace(**config["model"], **{**flags, "units": tuple(flags["units"])})
    assert rebuilt == spec


def test_smallest_spec_of_a_space():
    from tfseq.training.defaults import default_spec

    space = SearchSpace({"units": [8, 64], "layers": {"min": 2, "max": 3}, "cell": ["lstm", "gru"]})
    small = space.smallest_spec(default_spec("binary"))
    assert small.cell == "gru" and small.units == (8, 8) and not small.bidirectional and small.pooling == "last"
