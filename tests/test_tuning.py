"""``tfseq.tuning.tune`` on tiny models and data: tuners, results, budgets, resume, retrain."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tfseq.errors import InputError
from tfseq.tuning import SearchSpace, load_result, tune
from tfseq.workflows.retrain import retrain

# Tiny models: one layer of 4-8 units, one batch size; the cell, pooling, dropout and rate vary.
TINY = SearchSpace({"layers": 1, "units": [4, 8], "batch_size": 64, "bidirectional": False})


@pytest.fixture(scope="module")
def split():
    from tfseq.data.splits import split_sequences
    from tfseq.data.synthetic import make_semiconductor_data

    train, val, _ = split_sequences(make_semiconductor_data(160, n_cycles=6, seed=4), (0.7, 0.3, 0.0), seed=0)
    return train, val


@pytest.mark.parametrize("tuner, epochs", [
    ("random", 1),
    pytest.param("bayesian", 1, marks=pytest.mark.slow),
    pytest.param("hyperband", 2, marks=pytest.mark.slow),
])
def test_every_tuner_writes_trials_best_spec_and_plot(split, tmp_path, tuner, epochs):
    train, val = split
    result = tune(train, val, tmp_path / "s", space=TINY, tuner=tuner, objective="val_auc", max_trials=2,
                  epochs=epochs, patience=1)
    trials = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert 1 <= len(trials) <= 2 and list(trials.trial) == sorted(trials.trial)
    assert {"score", "epochs", "seconds", "params", "cell", "units", "learning_rate", "batch_size"} <= set(trials)
    assert (trials.status == "completed").all() and (trials.units.astype(str).isin(["4", "8"])).all()
    assert result.best_score == pytest.approx(trials.score.max())
    best = json.loads((tmp_path / "s" / "best_spec.json").read_text())
    assert best["cell"] == result.best_spec.cell and best["units"] == list(result.best_spec.units)
    assert best["batch_size"] == 64 and best["model"]["pooling"] == result.best_spec.pooling
    assert (tmp_path / "s" / "scores.png").stat().st_size > 0
    assert load_result(tmp_path / "s").best_trial == result.best_trial


@pytest.mark.slow
def test_edge_budget_skips_oversized_models(split, tmp_path):
    from tfseq.models.builders import build_model
    from tfseq.training.defaults import default_spec

    train, val = split
    base = default_spec("binary").replace(cell="gru", units=(4,), bidirectional=False, pooling="last")
    limit = build_model(base, n_features=15, steps=6).count_params()
    space = SearchSpace({"cell": "gru", "layers": 1, "units": [4, 64], "bidirectional": False, "pooling": "last",
                         "dropout": 0.0, "recurrent_dropout": 0.0, "learning_rate": 1e-3, "batch_size": 64})
    result = tune(train, val, tmp_path / "s", space=space, objective="val_loss", max_trials=3, epochs=1,
                  max_params=limit)
    statuses = {r["values"]["units"][0]: r["status"] for r in result.trials}
    assert statuses == {4: "completed", 64: "over_budget"}  # two distinct models; both tried
    assert result.best_spec.units == (4,)
    over = next(r for r in result.trials if r["status"] == "over_budget")
    assert over["params"] > limit and over["score"] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"objective": "val_f1"}, "expected a metric the model reports (val_accuracy, val_auc, val_loss"),
        ({"objective": "val_mae"}, "val_mae"),
        ({"max_trials": 0}, "max_trials"),
        ({"max_seconds": 0}, "max_seconds"),
        ({"epochs": 0}, "epochs"),
        ({"tuner": "grid"}, "one of random, bayesian, hyperband"),
        ({"max_params": 10}, "no architecture in the search space fits"),
        ({"max_size_mb": 1e-6}, "no architecture in the search space fits"),
    ],
)
def test_bad_settings_fail_before_any_trial(split, tmp_path, kwargs, message):
    train, val = split
    with pytest.raises(InputError) as info:
        tune(train, val, tmp_path / "s", space=TINY, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "s" / "keras_tuner").exists()


def test_validation_objective_needs_validation_data(split, tmp_path):
    with pytest.raises(InputError, match="without validation data"):
        tune(split[0], None, tmp_path / "s", space=TINY, objective="val_auc")


@pytest.mark.slow
def test_rerun_continues_and_extends_the_search(split, tmp_path):
    train, val = split
    first = tune(train, val, tmp_path / "s", space=TINY, objective="val_loss", max_trials=1, epochs=1)
    before = json.loads((tmp_path / "s" / "records" / "trial_0.json").read_text())
    again = tune(train, val, tmp_path / "s", space=TINY, objective="val_loss", max_trials=2, epochs=1)
    assert [r["trial"] for r in first.trials] == ["0"] and [r["trial"] for r in again.trials] == ["0", "1"]
    assert json.loads((tmp_path / "s" / "records" / "trial_0.json").read_text()) == before  # not re-run
    with pytest.raises(InputError, match="another objective"):
        tune(train, val, tmp_path / "s", space=TINY, objective="val_auc", max_trials=2, epochs=1)


@pytest.mark.slow  # 22 s; the fast tier keeps the tuners' own runs
def test_wall_clock_budget_stops_the_search(split, tmp_path):
    train, val = split
    result = tune(train, val, tmp_path / "s", space=TINY, objective="val_loss", max_trials=20, epochs=1,
                  max_seconds=0.5)
    assert len(result.trials) <= 1


def test_retrain_writes_a_run_dir_for_export(split, tmp_path):
    from tfseq.run import load_run

    train, val = split
    result = tune(train, val, tmp_path / "s", space=TINY, objective="val_auc", max_trials=1, epochs=1)
    out = retrain(result, train, val, tmp_path / "run", id_col="device_id", time_col="cycle", label_col="status")
    model, spec, contract = load_run(out["run_dir"])
    assert spec == result.best_spec and out["train_sequences"] == len(train) + len(val)
    assert contract.feature_names == list(train.feature_names) and contract.steps == 6
    assert model.count_params() == result.trials[0]["params"]
    assert out["skipped"] is False

    # Run again (as `tfseq tune --retrain` run a second time): the finished RUN is kept as it is.
    written = (tmp_path / "run" / "model.keras").stat().st_mtime_ns
    again = retrain(result, train, val, tmp_path / "run", id_col="device_id", time_col="cycle", label_col="status")
    assert again["skipped"] is True and again["run_dir"] == out["run_dir"]
    assert (tmp_path / "run" / "model.keras").stat().st_mtime_ns == written


@pytest.mark.slow  # 23 s
def test_three_integer_classes_without_names_tune_a_three_class_head(split, tmp_path):
    import dataclasses

    import numpy as np

    train, val = split
    relabel = {name: dataclasses.replace(s, y=np.arange(len(s)) % 3, class_names=None)
               for name, s in (("train", train), ("val", val))}
    result = tune(relabel["train"], relabel["val"], tmp_path / "s", space=TINY, objective="val_loss",
                  max_trials=1, epochs=1)
    head = result.best_spec.heads[0]
    assert head.kind == "multiclass" and head.num_classes == 3


def test_trials_and_the_retrained_run_read_the_step_flag_of_real_all_zero_steps(split, tmp_path):
    import dataclasses

    import numpy as np

    from tfseq.data.sequences import STEP_FLAG
    from tfseq.run import load_run

    rng = np.random.default_rng(0)
    varied = []
    for s in split:  # lengths 3 to 6, and a fifth of the real steps all 0.0
        lengths = rng.integers(3, 7, size=len(s)).astype(np.int32)
        x = s.x.copy()
        x[np.arange(6)[None, :] >= lengths[:, None]] = 0.0
        x[(rng.random(x.shape[:2]) < 0.2) & (np.arange(6)[None, :] < lengths[:, None])] = 0.0
        varied.append(dataclasses.replace(s, x=x, lengths=lengths))
    train, val = varied
    assert train.zero_steps > 0
    result = tune(train, val, tmp_path / "s", space=TINY, objective="val_auc", max_trials=1, epochs=1)
    assert result.best_spec.masking
    assert json.loads((tmp_path / "s" / "tuning.json").read_text())["features"][-1] == STEP_FLAG
    out = retrain(result, train, val, tmp_path / "run", id_col="device_id", time_col="cycle", label_col="status")
    model, _, contract = load_run(out["run_dir"])
    assert contract.feature_names == [*train.feature_names, STEP_FLAG] and contract.masking
    assert model.count_params() == result.trials[0]["params"]  # the trial read the flag too
