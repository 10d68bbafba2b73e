"""The simple baselines tfseq train reports beside its model: their features and their fits."""

import json

import numpy as np
import pytest

from tfseq.data.sequences import SequenceSet
from tfseq.training.baselines import SUMMARIES, fit_baselines, summary_features
from tfseq.workflows.train import baseline_wins


def test_summaries_are_those_of_the_valid_steps_only(rng):
    x = rng.normal(size=(3, 7, 2)).astype(np.float32)
    lengths = np.array([7, 4, 1])
    x[1, 4:] = 0.0  # padding
    x[2, 1:] = 0.0
    got = summary_features(x, lengths).reshape(3, 2, len(SUMMARIES))
    for i, n in enumerate(lengths):
        for f in range(2):
            v = x[i, :n, f].astype(np.float64)
            slope = np.polyfit(np.arange(n), v, 1)[0] if n > 1 else 0.0
            expected = [v.mean(), v.std(), v.min(), v.max(), *np.quantile(v, [0.1, 0.5, 0.9]), slope]
            np.testing.assert_allclose(got[i, f], expected, rtol=1e-5, atol=1e-6)


def _separable(rng, n=200, steps=6):
    y = np.arange(n) % 2
    x = rng.normal(size=(n, steps, 3)).astype(np.float32)
    x[:, :, 0] += 2.0 * y[:, None]  # only feature 0 tells the classes apart
    return SequenceSet(x=x, y=y.astype(np.int32), ids=np.arange(n), feature_names=["a", "b", "c"],
                       class_names=["pass", "fail"])


def test_classification_baselines_answer_like_the_model(rng):
    data = _separable(rng)
    train, val = data.subset(np.arange(150)), data.subset(np.arange(150, 200))
    fitted = fit_baselines(train, val, "binary", seed=0)
    assert [b.key for b in fitted] == ["random_forest", "linear"]
    for baseline in fitted:
        assert baseline.output.shape == (50,)  # P(class 1), as the model's binary head
        assert np.mean((baseline.output >= 0.5) == val.y) > 0.9


def test_forecast_baselines_include_the_last_value_of_the_target(rng):
    series = np.cumsum(rng.normal(size=300)).astype(np.float32)
    x = np.stack([series[i:i + 8] for i in range(290)])[:, :, None]
    y = np.stack([series[i + 8:i + 10] for i in range(290)])
    data = SequenceSet(x=x, y=y, ids=np.arange(290), feature_names=["level"])
    train, val = data.subset(np.arange(250)), data.subset(np.arange(250, 290))
    fitted = fit_baselines(train, val, "forecast", target_feature="level")
    assert [b.key for b in fitted] == ["last_value", "ridge_ar"]
    np.testing.assert_array_equal(fitted[0].output, np.repeat(val.x[:, -1, :1], 2, axis=1))
    assert fitted[1].output.shape == (40, 2)


@pytest.mark.parametrize("task", ["regression"])
def test_regression_baselines(rng, task):
    data = _separable(rng)
    target = data.x[:, :, 0].mean(axis=1)
    data = SequenceSet(x=data.x, y=target, ids=data.ids, feature_names=data.feature_names)
    fitted = fit_baselines(data.subset(np.arange(150)), data.subset(np.arange(150, 200)), task)
    ridge = fitted[1].output
    np.testing.assert_allclose(ridge, target[150:], atol=0.05)  # the mean is a summary: ridge recovers it


def test_train_reports_the_baseline_beside_the_model(tiny_run):
    run, _ = tiny_run
    metrics = json.loads((run / "metrics.json").read_text())
    comparison = metrics["baseline_comparison"]
    assert comparison["metric"] == "auc" and comparison["model"] == pytest.approx(metrics["validation"]["auc"])
    assert comparison["baseline"] == max(b["validation"]["auc"] for b in metrics["baselines"])
    assert comparison["baseline_wins"] == baseline_wins(comparison["model"], comparison["baseline"],
                                                        higher_is_better=True)
    assert {b["key"] for b in metrics["baselines"]} == {"random_forest", "linear"}
    assert (run / "plots" / "baseline_comparison.png").is_file()


@pytest.mark.parametrize("model, baseline, higher, wins", [
    (0.90, 0.92, True, True), (0.92, 0.90, True, False), (18.81, 18.80, False, True), (18.80, 18.81, False, False),
    (18.812345, 18.812346, False, False), (0.9, 0.9 + 1e-7, True, False), (0.0, 1e-12, True, False),
], ids=["auc_lower", "auc_higher", "rmse_higher", "rmse_lower", "rmse_float32_tie", "auc_tie", "zero_tie"])
def test_a_baseline_wins_only_beyond_float32_rounding(model, baseline, higher, wins):
    assert baseline_wins(model, baseline, higher_is_better=higher) is wins


def test_the_summary_says_when_the_baseline_wins(tiny_run, tmp_path, capsys):
    from tfseq.cli.main import main

    _, data = tiny_run
    run = tmp_path / "run"
    assert main(["train", str(data), "--id-col", "device_id", "--time-col", "cycle", "--label-col", "status",
                 "--out", str(run), "--epochs", "1", "--units", "2", "--no-bidirectional"]) == 0
    out = capsys.readouterr().out
    comparison = json.loads((run / "metrics.json").read_text())["baseline_comparison"]
    assert "\nbaseline    " in out
    assert ("note: the baseline beats the model on validation auc" in out) == comparison["baseline_wins"]


def test_scaled_errors_divide_by_the_naive_forecasts_in_sample():
    from tfseq.evaluation import scaled_errors

    x = np.array([[[1.0, 9.0], [2.0, 9.0], [3.0, 9.0], [4.0, 9.0]]])  # target: feature 0
    errors = scaled_errors(x, np.array([[5.0]]), np.array([[7.0]]), target=0, season=2)
    assert errors == {"mase_last_value": pytest.approx(2.0), "mase_seasonal": pytest.approx(1.0)}
    assert scaled_errors(x, np.array([[5.0]]), np.array([[7.0]]), target=1) == {}  # constant history: no scale
