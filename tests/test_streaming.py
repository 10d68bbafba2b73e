"""Streaming models (an answer after every step), per-step metrics, and the adaptive-test policy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tfseq.analysis.adaptive_test import clopper_pearson_upper, fit_policy, policy_outcome
from tfseq.cli.main import main
from tfseq.errors import InputError, SpecError
from tfseq.models.policy import AdaptiveTestPolicy, read_policy
from tfseq.models.spec import HeadSpec, ModelSpec

COLS = ["--id-col", "device_id", "--time-col", "cycle", "--label-col", "status"]


# --- the spec and the model ------------------------------------------------------------------


@pytest.mark.parametrize("changes, words", [
    ({"bidirectional": True}, "bidirectional=False"),
    ({"pooling": "mean"}, "pooling='last'"),
    ({"heads": (HeadSpec(kind="forecast", horizon=2),)}, "forecast head"),
])
def test_a_streaming_spec_refuses_what_needs_the_whole_sequence(changes, words):
    with pytest.raises(SpecError, match=words) as info:
        ModelSpec(streaming=True, **changes)
    assert "\n" not in str(info.value)


def test_a_streaming_model_answers_after_every_step_and_learns_from_every_step(tiny_data):
    from tfseq.models.builders import build_model
    from tfseq.training.fit import fit

    spec = ModelSpec(cell="gru", units=(8,), streaming=True)
    assert spec.name == "gru-8-streaming" and ModelSpec.from_config(spec.get_config()) == spec
    model = build_model(spec, n_features=15, steps=8, adapt=tiny_data.x, seed=0)
    assert model.output_shape["binary"] == (None, 8, 1) if isinstance(model.output_shape, dict) \
        else model.output_shape == (None, 8, 1)
    history = fit(model, tiny_data.x, tiny_data.y, validation_data=(tiny_data.x, tiny_data.y), epochs=3,
                  batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    p = model.predict(tiny_data.x, verbose=0)["binary"]
    assert p.shape == (300, 8, 1)
    # the answer after step k depends on the first k steps only: changing the last step changes only it
    x = tiny_data.x[:16].copy()
    before = model.predict(x, verbose=0)["binary"]
    x[:, -1] += 10.0
    after = model.predict(x, verbose=0)["binary"]
    np.testing.assert_allclose(after[:, :-1], before[:, :-1], atol=1e-6)
    assert np.abs(after[:, -1] - before[:, -1]).max() > 1e-4


def test_multiclass_and_regression_streaming_heads_train(tiny_data):
    from tfseq.models.builders import build_model
    from tfseq.training.fit import fit

    classes = np.arange(len(tiny_data.y)) % 3
    for head, y in ((HeadSpec(kind="multiclass", num_classes=3), classes),
                    (HeadSpec(kind="regression"), tiny_data.x[:, -1, 0].astype("float32"))):
        spec = ModelSpec(cell="simple_rnn", units=(4,), streaming=True, heads=(head,))
        model = build_model(spec, n_features=15, steps=8, adapt=tiny_data.x, targets=y, seed=0)
        fit(model, tiny_data.x, y, epochs=1, batch_size=64, verbose=0)
        out = model.predict(tiny_data.x[:5], verbose=0)[head.name]
        assert out.shape == (5, 8, head.output_size)


# --- the policy rule and its fit ---------------------------------------------------------------


def test_the_policy_rule_decides_at_the_first_threshold_crossed():
    policy = AdaptiveTestPolicy(t_fail=(None, 0.8, 0.6, None), t_pass=(None, 0.05, 0.1, None))
    p = np.array([[0.9, 0.85, 0.1, 0.1],   # fail at step 2
                  [0.01, 0.2, 0.08, 0.0],  # pass at step 3 (step 1 has no threshold)
                  [0.5, 0.5, 0.5, 0.99],   # full test
                  [0.5, 0.5, 0.7, 0.7]])   # fail at step 3
    decision, at, prob = policy.replay(p)
    assert decision.tolist() == ["fail", "pass", "full-test", "fail"]
    assert at.tolist() == [2, 3, 4, 3]
    np.testing.assert_allclose(prob, [0.85, 0.08, 0.99, 0.7])
    assert [policy.decide(k + 1, v) for k, v in enumerate(p[1])] == [None, None, "pass", "full-test"]
    # a device tested for 2 steps only ends there
    assert policy.replay(p[2:3], lengths=np.array([2]))[1].tolist() == [2]
    assert AdaptiveTestPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


def test_outcome_counts_escapes_scraps_and_the_test_saved():
    policy = AdaptiveTestPolicy(t_fail=(0.9, 0.9, None), t_pass=(0.1, 0.1, None))
    p = np.array([[0.95, 0, 0], [0.05, 0, 0], [0.5, 0.05, 0], [0.5, 0.5, 0.5]])
    y = np.array([0, 1, 0, 1])  # a scrap at 1, an escape at 1, a good pass at 2, a full test
    outcome = policy_outcome(policy, p, y, confidence=0.95)
    assert outcome["escapes"]["count"] == 1 and outcome["scraps"]["count"] == 1
    assert outcome["steps_saved"] == pytest.approx((2 + 2 + 1 + 0) / 12)
    assert outcome["decided_at"] == [2, 1, 1]
    costs = policy_outcome(policy, p, y, step_costs=[1, 1, 10])
    assert costs["steps_saved"] == pytest.approx((11 + 11 + 10) / 48)


def test_clopper_pearson_upper_bound():
    # no event in n trials: 1 - (1 - C) ** (1 / n)
    assert clopper_pearson_upper(0, 3000, 0.95) == pytest.approx(1 - 0.05 ** (1 / 3000))
    from scipy import stats

    bound = clopper_pearson_upper(7, 1000, 0.95)
    assert stats.binom.cdf(7, 1000, bound) == pytest.approx(0.05, rel=1e-6)


def _scores(n: int, seed: int, steps: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """P(fail) curves that sharpen with the steps: failing devices drift up at different speeds."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    speed = rng.uniform(0.3, 1.5, n)
    t = (np.arange(1, steps + 1) / steps) ** 2
    z = np.where(y[:, None] == 1, speed[:, None] * t * 9, 0) + rng.normal(0, 1, (n, 1)) \
        + rng.normal(0, 0.4, (n, steps)) - 2.5
    return 1 / (1 + np.exp(-z)), y


@pytest.mark.slow  # 20 policy fits (CI's slow tier; make test-slow)
def test_the_escape_bound_holds_over_repeated_calibration_draws():
    """Over 20 independent calibration sets, the realised escape (and scrap) rate on a large test set
    exceeds its bound in at most (1 - C) of them, and the policy does save test steps."""
    test_p, test_y = _scores(20_000, seed=1000)
    exceeded, saved = 0, []
    for run in range(20):
        p, y = _scores(3000, seed=run)
        policy = fit_policy(p, y, max_escape=0.005, max_scrap=0.01, confidence=0.95, seed=run)
        outcome = policy_outcome(policy, test_p, test_y)
        exceeded += outcome["escapes"]["rate"] > 0.005 or outcome["scraps"]["rate"] > 0.01
        saved.append(outcome["steps_saved"])
    assert exceeded <= 1
    assert np.median(saved) > 0.05  # not vacuous: it stops early
    # a policy that ignores the bound on the same data would escape far more often
    reckless = AdaptiveTestPolicy(t_fail=(None,) * 12, t_pass=(0.3,) * 11 + (None,))
    assert policy_outcome(reckless, test_p, test_y)["escapes"]["rate"] > 0.005


def test_fit_policy_refuses_bad_bounds_and_one_sided_data():
    p, y = _scores(200, seed=0)
    for kwargs in ({"max_escape": 0.0}, {"max_escape": 1.5}, {"max_escape": 0.01, "max_scrap": 1.0},
                   {"max_escape": 0.01, "confidence": 1.0}):
        with pytest.raises(InputError, match="expected a number in \\(0, 1\\)"):
            fit_policy(p, y, **kwargs)
    with pytest.raises(InputError, match="without a failing device"):
        fit_policy(p, np.zeros_like(y), max_escape=0.01)


def test_no_early_stop_meeting_the_bounds_gives_a_policy_that_never_stops():
    p, y = _scores(400, seed=3)
    policy = fit_policy(p, y, max_escape=0.0001, max_scrap=0.0001)
    assert not policy.stops_early and policy.report["stops_early"] is False
    assert policy.replay(p)[0].tolist() == ["full-test"] * len(p)


# --- the command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def streaming_run(tmp_path_factory):
    from tfseq.data.synthetic import make_semiconductor_data, to_long_frame

    root = tmp_path_factory.mktemp("streaming")
    for name, seed, n in (("train", 1, 600), ("cal", 2, 1200), ("test", 3, 400)):
        to_long_frame(make_semiconductor_data(n, n_cycles=8, seed=seed)).to_csv(root / f"{name}.csv", index=False)
    run = root / "run"
    assert main(["train", str(root / "train.csv"), *COLS, "--streaming", "--units", "8", "--epochs", "3",
                 "--out", str(run)]) == 0
    return root, run


def test_train_streaming_writes_per_step_metrics(streaming_run, capsys):
    root, run = streaming_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert [r["step"] for r in metrics["per_step"]] == list(range(1, 9))
    assert {"accuracy", "precision", "recall", "auc", "sequences"} <= set(metrics["per_step"][0])
    assert metrics["early_warning"]["targets"] == {"accuracy": 0.85, "recall": 0.9, "precision": 0.8}
    assert (run / "plots" / "per_step_metrics.png").stat().st_size > 0
    assert json.loads((run / "contract.json").read_text())["streaming"] is True
    assert json.loads((run / "spec.json").read_text())["bidirectional"] is False
    # the headline metrics are those of the answer after the last step
    assert metrics["validation"]["accuracy"] == pytest.approx(metrics["per_step"][-1]["accuracy"])


def test_streaming_with_bidirectional_is_refused_in_one_line(streaming_run, tmp_path, capsys):
    root, _ = streaming_run
    status = main(["train", str(root / "train.csv"), *COLS, "--streaming", "--bidirectional", "--out",
                   str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and "--bidirectional" in err
    assert not (tmp_path / "r").exists()


def test_policy_evaluate_and_predict_on_a_streaming_run(streaming_run, tmp_path, capsys):
    root, run = streaming_run
    capsys.readouterr()
    assert main(["policy", str(run), str(root / "cal.csv"), "--max-escape", "0.05", "--max-scrap", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "escapes" in out and "upper bound" in out and "test saved" in out
    policy = read_policy(run)
    assert policy is not None and policy.steps == 8
    report = policy.report
    assert report["max_escape"] == 0.05 and report["procedure"]["test_devices"] == 720  # 60 % of 1,200
    assert report["calibration"]["escapes"]["upper_bound"] <= 0.05 or not policy.stops_early
    assert (run / "plots" / "policy.png").stat().st_size > 0

    assert main(["evaluate", str(run), str(root / "test.csv")]) == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert len(evaluation["per_step"]) == 8 and evaluation["policy"]["devices"] == 400
    assert sum(evaluation["policy"]["decisions"].values()) == 400

    assert main(["predict", str(run), str(root / "test.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    table = pd.read_csv(tmp_path / "p.csv")
    assert {"decision", "decided_at", "p_fail_at_decision"} <= set(table.columns)
    assert set(table["decision"]) <= {"fail", "pass", "full-test"}
    assert table["decided_at"].between(1, 8).all()
    full = table["decision"] == "full-test"
    assert (table.loc[full, "decided_at"] == 8).all()
    np.testing.assert_allclose(table.loc[full, "p_fail_at_decision"], table.loc[full, "p_fail"], atol=1e-6)
    # the same decisions as the policy applied to the evaluated probabilities
    assert (table["decision"].value_counts().to_dict()
            == {k: v for k, v in evaluation["policy"]["decisions"].items() if v})


@pytest.mark.parametrize("args, words", [
    (["--max-escape", "1.5"], "max-escape"),
    (["--max-escape", "0"], "max-escape"),
    (["--max-escape", "0.01", "--confidence", "1"], "confidence"),
])
def test_policy_bad_bounds_exit_2(streaming_run, args, words, capsys):
    root, run = streaming_run
    assert main(["policy", str(run), str(root / "cal.csv"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and words in err


def test_policy_refuses_a_non_streaming_run_training_data_and_data_without_fails(streaming_run, tiny_run, tmp_path,
                                                                                  capsys):
    root, run = streaming_run
    tiny_run_dir, tiny_csv = tiny_run
    assert main(["policy", str(tiny_run_dir), str(tiny_csv), "--max-escape", "0.01"]) == 2
    assert "expected a streaming RUN" in capsys.readouterr().err
    assert main(["policy", str(run), str(root / "train.csv"), "--max-escape", "0.01"]) == 2
    assert "trained on" in capsys.readouterr().err
    frame = pd.read_csv(root / "cal.csv")
    frame[frame["status"] == "pass"].to_csv(tmp_path / "good.csv", index=False)
    assert main(["policy", str(run), str(tmp_path / "good.csv"), "--max-escape", "0.01"]) == 2
    assert "no failing device" in capsys.readouterr().err
    assert not (tmp_path / "policy.json").exists()


def test_the_candidates_vectorised_outcome_equals_replaying_each_policy():
    from tfseq.analysis.adaptive_test import _counts, _Family

    p, y = _scores(600, seed=7)
    last = np.full(600, 12)
    last[:60] = np.random.default_rng(0).integers(2, 12, 60)  # some devices tested for fewer steps
    observed = np.arange(12)[None, :] < last[:, None]
    family = _Family(p, y, observed, early_pass=True, early_fail=True, min_step=2)
    escapes, scraps, saved = family.evaluate(p, y, last, np.ones(12))
    for index in [(0, 3, 2), (5, 5, 8), (16, 16, 0), (8, 0, 3), (3, 12, 9), (18, 20, 4)]:
        e, s, fraction, _, _ = _counts(family.policy(index), p, y, last, np.ones(12))
        assert (e, s) == (escapes[index], scraps[index]) and fraction == pytest.approx(saved[index])


@pytest.mark.slow  # exports TF Lite and ONNX (CI's slow tier; make test-slow)
def test_predict_replays_step_artifacts_cycle_by_cycle_like_the_run(streaming_run, tmp_path):
    """The step artifacts of a (masked, default) streaming RUN give predict the same table as the RUN: the
    answer after each device's last cycle and the policy's decisions."""
    root, run = streaming_run
    if read_policy(run) is None:
        assert main(["policy", str(run), str(root / "cal.csv"), "--max-escape", "0.05", "--max-scrap", "0.05"]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "export"), "--format", "tflite,onnx",
                 "--quantize", "none", "--name", "stream"]) == 0
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["policy"]["t_fail"] == list(read_policy(run).t_fail)
    assert main(["predict", str(run), str(root / "test.csv"), "--out", str(tmp_path / "run.csv")]) == 0
    expected = pd.read_csv(tmp_path / "run.csv")
    for artifact in ("stream-step.tflite", "stream-step.onnx"):
        out = tmp_path / f"{artifact}.csv"
        assert main(["predict", str(tmp_path / "export" / artifact), str(root / "test.csv"), "--out", str(out)]) == 0
        table = pd.read_csv(out)
        assert list(table.columns) == list(expected.columns)
        np.testing.assert_allclose(table["p_fail"], expected["p_fail"], atol=1e-5)
        assert (table["decision"] == expected["decision"]).mean() >= 0.99
        assert (table["decided_at"] == expected["decided_at"]).mean() >= 0.99


def test_evaluate_takes_the_targets_of_the_earliest_step(streaming_run, capsys):
    root, run = streaming_run
    assert main(["evaluate", str(run), str(root / "test.csv"), "--targets", "recall=0.5"]) == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    rows = evaluation["per_step"]
    first = next((r["step"] for r in rows if r["recall"] >= 0.5), None)
    assert evaluation["early_warning"] == {"targets": {"recall": 0.5}, "earliest_step": first}
    for bad, words in (("speed=0.5", "expected metrics among"), ("recall=1.5", "expected a number in [0, 1]"),
                       ("recall", "metric=minimum")):
        capsys.readouterr()
        assert main(["evaluate", str(run), str(root / "test.csv"), "--targets", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and words in err
