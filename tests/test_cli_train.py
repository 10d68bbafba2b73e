"""``tfseq train / evaluate / predict`` end to end, in-process, on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tfseq.cli.main import main
from tfseq.data.synthetic import make_semiconductor_data, to_long_frame

TINY = ["--units", "4", "--epochs", "1", "--batch-size", "32", "--no-bidirectional"]


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    """A binary RUN trained from a YAML config whose epochs the flags override."""
    root = tmp_path_factory.mktemp("binary")
    data = make_semiconductor_data(120, n_cycles=6, seed=5)
    frame = to_long_frame(data)
    frame = frame[~((frame.device_id == "D000003") & (frame.cycle > 4))]  # one shorter sequence
    frame.to_csv(root / "train.csv", index=False)
    (root / "train.yaml").write_text(
        "id-col: device_id\ntime-col: cycle\nlabel-col: status\nunits: [4]\nepochs: 50\n"
        "model: {pooling: mean}\n"
    )
    run = root / "run"
    rc = main(["train", str(root / "train.csv"), "--config", str(root / "train.yaml"), "--out", str(run),
               "--epochs", "1", "--batch-size", "32", "--no-bidirectional"])
    assert rc == 0
    return root, run


def test_train_writes_the_run_dir_and_a_summary(binary_run, capsys):
    root, run = binary_run
    for name in ("model.keras", "spec.json", "contract.json", "history.csv", "metrics.json", "plots/training_curves.png"):
        assert (run / name).exists(), name
    contract = json.loads((run / "contract.json").read_text())
    assert contract["class_names"] == ["pass", "fail"] and contract["steps"] == 6
    assert contract["feature_names"][0] == "Vdd_voltage"
    spec = json.loads((run / "spec.json").read_text())
    assert spec["pooling"] == "mean" and spec["units"] == [4] and spec["masking"]  # config model table
    assert len(pd.read_csv(run / "history.csv")) == 1  # --epochs 1 beat the config's 50
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "binary"
    # the distribution it ran under is on record (a single process: TensorFlow's default strategy)
    assert metrics["distribution"] == {"strategy": "default", "workers": 1, "replicas": 1}
    assert json.loads((run / "command.json").read_text())["distribution"] == metrics["distribution"]


def test_existing_run_is_never_overwritten_silently(binary_run, capsys):
    root, run = binary_run
    before = (run / "model.keras").stat().st_mtime
    rc = main(["train", str(root / "train.csv"), "--config", str(root / "train.yaml"), "--out", str(run)])
    assert rc == 2 and "already exists" in capsys.readouterr().err
    assert (run / "model.keras").stat().st_mtime == before


def test_evaluate_min_recall_stores_the_threshold(binary_run, capsys):
    root, run = binary_run
    assert main(["evaluate", str(run), str(root / "train.csv"), "--min-recall", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "recall" in out and "stored in the RUN" in out
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["metrics"]["recall"] >= 0.9
    contract = json.loads((run / "contract.json").read_text())
    assert contract["threshold"] == pytest.approx(evaluation["metrics"]["threshold"])
    for plot in ("roc_curve.png", "pr_curve.png", "evaluation_confusion_matrix.png"):
        assert (run / "plots" / plot).is_file()


def test_predict_columns_and_feature_order_by_name(binary_run, capsys, tmp_path):
    root, run = binary_run
    frame = pd.read_csv(root / "train.csv")
    # New data: labels dropped, columns shuffled, one extra column: matched by name, extras ignored.
    shuffled = frame.drop(columns="status")[list(reversed(frame.columns.drop("status")))].assign(extra=1.0)
    shuffled.to_parquet(tmp_path / "new.parquet")
    assert main(["predict", str(run), str(root / "train.csv"), "--out", str(tmp_path / "a.csv")]) == 0
    assert main(["predict", str(run / "model.keras"), str(tmp_path / "new.parquet"),
                 "--out", str(tmp_path / "b.csv")]) == 0
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert list(a.columns) == ["device_id", "predicted", "p_pass", "p_fail", "out_of_range"]
    assert not a.out_of_range.any()  # the training data are in the training range
    assert len(a) == 120 and set(a.predicted) <= {"pass", "fail"}
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_allclose(a.p_pass + a.p_fail, 1.0, atol=1e-6)
    threshold = json.loads((run / "contract.json").read_text())["threshold"]
    np.testing.assert_array_equal(a.predicted == "fail", a.p_fail >= threshold)
    rc = main(["predict", str(run), str(root / "train.csv"), "--out", str(tmp_path / "a.csv")])
    assert rc == 2 and "already exists" in capsys.readouterr().err


def test_predict_flags_a_device_outside_the_training_range(binary_run, tmp_path):
    root, run = binary_run
    frame = pd.read_csv(root / "train.csv").drop(columns="status")
    feature = frame.columns[2]
    spread = frame[feature].max() - frame[feature].min()
    far = frame.device_id == frame.device_id.iloc[0]
    frame.loc[far, feature] = frame[feature].max() + 5 * spread  # one device, far beyond anything seen
    frame.to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(run), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    flagged = pd.read_csv(tmp_path / "p.csv").set_index("device_id").out_of_range
    assert flagged[frame.device_id.iloc[0]] and flagged.sum() == 1


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_keeps_ids_as_written(binary_run, tmp_path, suffix):
    """Ids such as 00017 come back as written, whether predict streams blocks or reads whole."""
    root, run = binary_run
    frame = pd.read_csv(root / "train.csv").drop(columns="status")
    frame["device_id"] = frame["device_id"].str.replace("D", "0")  # D000017 -> 0000017
    data = tmp_path / f"ids{suffix}"
    frame.to_csv(data, index=False) if suffix == ".csv" else frame.to_parquet(data)
    for block_rows in ("60", "100000"):  # streamed in blocks, and in one block
        out = tmp_path / f"p{block_rows}.csv"
        assert main(["predict", str(run), str(data), "--out", str(out), "--block-rows", block_rows]) == 0
        ids = pd.read_csv(out, dtype={"device_id": str}).device_id
        assert sorted(ids) == sorted(frame.device_id.unique()) and ids.str.startswith("0").all()


def test_multiclass_string_classes_from_a_toml_config(tmp_path, capsys):
    data = make_semiconductor_data(90, n_cycles=5, seed=6)
    frame = to_long_frame(data, label_col="bin")
    frame["bin"] = np.asarray(["A1", "B2", "C3"])[frame.device_id.str[-1].astype(int) % 3]
    frame.to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "m.toml").write_text(
        'id_col = "device_id"\ntime_col = "cycle"\nlabel_col = "bin"\ncell = "gru"\nunits = [4]\n'
        'epochs = 1\nbidirectional = false\nfeatures = ["Vdd_voltage", "Jitter", "SNR"]\n'
    )
    assert main(["train", str(tmp_path / "m.csv"), "--config", str(tmp_path / "m.toml"),
                 "--out", str(tmp_path / "run"), "--max-steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "multiclass (inferred; classes A1, B2, C3)" in out
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "m.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns) == ["device_id", "predicted", "p_A1", "p_B2", "p_C3", "out_of_range"]
    contract = json.loads((tmp_path / "run" / "contract.json").read_text())
    assert contract["feature_names"] == ["Vdd_voltage", "Jitter", "SNR"] and contract["steps"] == 4
    assert main(["evaluate", str(tmp_path / "run"), str(tmp_path / "m.csv")]) == 0


def test_forecast_windows_train_and_predict(tmp_path, capsys):
    t = np.arange(60)
    frame = pd.DataFrame({"tool": np.repeat(["t1", "t2"], 30), "step": np.tile(np.arange(30), 2),
                          "temp": np.sin(t / 4.0), "load": np.cos(t / 4.0)})
    frame.to_csv(tmp_path / "s.csv", index=False)
    assert main(["train", str(tmp_path / "s.csv"), "--id-col", "tool", "--time-col", "step", "--window", "5",
                 "--horizon", "2", "--target", "temp", "--out", str(tmp_path / "run"), *TINY]) == 0
    assert "forecast" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "s.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns) == ["tool", "predicted_1", "predicted_2", "out_of_range"] and list(pred.tool) == ["t1", "t2"]
    assert main(["evaluate", str(tmp_path / "run"), str(tmp_path / "s.csv"), "--season", "3"]) == 0
    out = capsys.readouterr().out
    assert "rmse" in out and "mase_last_value" in out and "mase_seasonal" in out
    metrics = json.loads((tmp_path / "run" / "evaluation.json").read_text())["metrics"]
    assert metrics["mase_last_value"] > 0 and metrics["mase_seasonal"] > 0


def test_explicit_validation_file_and_early_warning_cut(binary_run, tmp_path, capsys):
    root, _ = binary_run
    frame = pd.read_csv(root / "train.csv")
    ids = frame.device_id.unique()
    frame[frame.device_id.isin(ids[:90])].to_csv(tmp_path / "tr.csv", index=False)
    frame[frame.device_id.isin(ids[90:])].to_csv(tmp_path / "va.csv", index=False)
    assert main(["train", str(tmp_path / "tr.csv"), "--id-col", "device_id", "--time-col", "cycle",
                 "--label-col", "status", "--val", str(tmp_path / "va.csv"), "--predict-at", "3",
                 "--out", str(tmp_path / "run"), *TINY]) == 0
    assert "90 train / 30 validation sequences x 3 steps" in capsys.readouterr().out
    contract = json.loads((tmp_path / "run" / "contract.json").read_text())
    assert (contract["steps"], contract["predict_at"]) == (3, 3)
    rc = main(["train", str(tmp_path / "tr.csv"), "--id-col", "device_id", "--time-col", "cycle",
               "--label-col", "status", "--val", str(tmp_path / "tr.csv"), "--out", str(tmp_path / "r2"), *TINY])
    assert rc == 2 and "in both DATA and --val" in capsys.readouterr().err


def test_predict_gives_the_same_table_for_every_artifact_kind(binary_run, tmp_path):
    root, run = binary_run
    assert main(["export", str(run), "--out", str(tmp_path / "exp"), "--format", "savedmodel,tflite,onnx"]) == 0
    artifacts = [run, *sorted((tmp_path / "exp").glob("*.tflite")), *sorted((tmp_path / "exp").glob("*.onnx")),
                 *sorted((tmp_path / "exp" / "savedmodel").glob("*/1"))]
    assert len(artifacts) == 4
    tables = []
    for k, artifact in enumerate(artifacts):
        assert main(["predict", str(artifact), str(root / "train.csv"), "--out", str(tmp_path / f"{k}.csv")]) == 0
        tables.append(pd.read_csv(tmp_path / f"{k}.csv"))
    threshold = json.loads((run / "contract.json").read_text())["threshold"]
    clear = (tables[0].p_fail - threshold).abs() > 1e-4  # --min-recall puts the threshold on a score
    for table in tables[1:]:
        assert list(table.columns) == list(tables[0].columns)
        assert (table.predicted == tables[0].predicted)[clear].all()
        np.testing.assert_allclose(table.p_fail, tables[0].p_fail, atol=1e-4)


def test_real_all_zero_steps_of_sequences_of_several_lengths_stay_data(tmp_path, capsys):
    """Sequences of several lengths whose real steps are often all 0.0 (idle cycles): the RUN reads a
    step flag that readers make, so only the padding is masked, in training, predict and monitor."""
    import keras

    from tfseq.data.long_format import load_long_format
    from tfseq.data.sequences import STEP_FLAG

    frame = to_long_frame(make_semiconductor_data(160, n_cycles=8, seed=4))
    frame = frame[frame.cycle <= 3 + frame.device_id.str[-1:].astype(int) % 6]  # 4 to 8 cycles
    features = [c for c in frame.columns if c not in ("device_id", "cycle", "status")]
    idle = np.random.default_rng(0).random(len(frame)) < 0.3
    frame.loc[idle, features] = 0.0
    frame.to_csv(tmp_path / "idle.csv", index=False)
    run = tmp_path / "run"
    keys = ["--id-col", "device_id", "--time-col", "cycle"]
    assert main(["train", str(tmp_path / "idle.csv"), *keys, "--label-col", "status", "--out", str(run),
                 *TINY]) == 0
    out = capsys.readouterr().out
    assert f"marked by the step flag {STEP_FLAG}" in out and f": {idle.sum():,} real steps" in out
    assert f"x 8 steps x {len(features)} features and the step flag" in out
    contract = json.loads((run / "contract.json").read_text())
    assert contract["masking"] and contract["feature_names"] == [*features, STEP_FLAG]
    assert json.loads((run / "metrics.json").read_text())["step_flag"]["zero_steps"] == idle.sum()

    assert main(["predict", str(run), str(tmp_path / "idle.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    data, _ = load_long_format(tmp_path / "idle.csv", id_col="device_id", time_col="cycle", features=features)
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    flagged = data.with_step_flag()
    read = model.predict(flagged.x, verbose=0)["binary"][:, 0]
    np.testing.assert_allclose(pd.read_csv(tmp_path / "p.csv").p_fail, read, atol=1e-5)
    hidden = flagged.x.copy()
    hidden[..., -1][~np.any(flagged.x[..., :-1] != 0.0, axis=-1)] = 0.0  # the idle steps as padding
    assert np.abs(model.predict(hidden, verbose=0)["binary"][:, 0] - read).max() > 1e-3  # they count

    status = main(["monitor", str(run), str(tmp_path / "idle.csv"), "--out", str(tmp_path / "monitor")])
    assert status == 0, capsys.readouterr()
    drift = json.loads((tmp_path / "monitor" / "drift.json").read_text())
    assert "NaN" not in json.dumps(drift) and not drift["drift"]


def test_a_model_without_the_step_flag_warns_when_new_data_hold_all_zero_steps(binary_run, tmp_path, caplog):
    root, run = binary_run  # sequences of several lengths, no real all-zero step: masked, no flag
    frame = pd.read_csv(root / "train.csv")
    features = json.loads((run / "contract.json").read_text())["feature_names"]
    frame.loc[frame.cycle == 2, features] = 0.0
    frame.to_csv(tmp_path / "idle.csv", index=False)
    assert main(["predict", str(run), str(tmp_path / "idle.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    [warning] = [r.getMessage() for r in caplog.records if "every feature is 0.0" in r.getMessage()]
    assert "idle.csv: holds real steps whose every feature is 0.0; the model masks" in warning


def test_the_network_is_kept_only_when_its_validation_lead_is_beyond_the_noise():
    from tfseq.workflows.train import network_leads

    fit = np.random.default_rng(0).gamma(2.0, size=40)
    z = np.random.default_rng(1).normal(size=40)
    z = (z - z.mean()) / z.std(ddof=1)  # differences of standard deviation 0.5: a standard error of 0.5 / sqrt(40)
    for mean, kept in ((0.1, {0.0: True, 1.0: True, 2.0: False}), (0.05, {0.0: True, 1.0: False, 2.0: False}),
                       (-0.05, {0.0: False, 1.0: False, 2.0: False})):
        for evidence, expected in kept.items():
            leads, noise = network_leads(fit, fit - (mean + 0.5 * z), evidence=evidence)
            assert leads is expected, (mean, evidence)
            assert noise == pytest.approx(0.5 / np.sqrt(40))


def test_a_forecast_of_noise_keeps_the_ridge_fit_alone(tmp_path, capsys):
    """White noise: nothing to learn beyond the mean, and a network whose lead over the ridge fit on
    validation is within the noise of its 60 windows is dropped (the summary says so)."""
    series = np.random.default_rng(0).normal(size=300)
    pd.DataFrame({"t": np.arange(300), "y": series}).to_csv(tmp_path / "s.csv", index=False)
    assert main(["train", str(tmp_path / "s.csv"), "--time-col", "t", "--window", "4", "--horizon", "1",
                 "--target", "y", "--units", "16", "--epochs", "10", "--no-bidirectional",
                 "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    losses = metrics["validation_loss"]
    assert metrics["linear_fit_only"] is True and "trained_again" not in metrics
    assert losses["linear fit"] - losses["trained"] <= losses["standard_error"]
    assert "linear path   the ridge fit alone (the network did not lower the validation loss beyond its noise" \
        in capsys.readouterr().out


def test_a_small_forecast_trains_its_network_again_on_every_window(tmp_path, capsys):
    """Validation (the latest windows) chooses the epochs; the saved network then learns from every
    window, the latest included (built again: its normalisation is theirs), and the summary says so."""
    import keras

    series = [0.3]
    for _ in range(299):  # the logistic map: each value a quadratic of the last, which no linear fit has
        series.append(3.9 * series[-1] * (1.0 - series[-1]))
    pd.DataFrame({"t": np.arange(300), "y": series}).to_csv(tmp_path / "s.csv", index=False)
    assert main(["train", str(tmp_path / "s.csv"), "--time-col", "t", "--window", "4", "--horizon", "1",
                 "--target", "y", "--units", "16", "--epochs", "10", "--no-bidirectional",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["linear_fit_only"] is False  # the network beat the fit alone on validation, beyond its noise
    losses = metrics["validation_loss"]
    assert losses["linear fit"] - losses["trained"] > losses["standard_error"] > 0.0
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(series), 4)[:-1]  # each with a next value
    assert metrics["trained_again"] == {"sequences": len(windows), "epochs": int(history.val_loss.idxmin()) + 1}
    epochs = metrics["trained_again"]["epochs"]
    assert f"the network trained again on them for {epochs} epoch{'' if epochs == 1 else 's'}" in out
    assert "again" not in {p.name for p in (tmp_path / "run").iterdir()}  # its checkpoints are gone
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", safe_mode=True)
    mean = float(np.asarray(model.get_layer("normalization").mean).reshape(-1)[0])
    assert mean == pytest.approx(windows.mean(), abs=1e-5)  # every window's steps, the latest too
    assert mean != pytest.approx(windows[:metrics["train_sequences"]].mean(), abs=1e-4)
