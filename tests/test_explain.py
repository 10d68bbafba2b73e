"""tfseq explain and predict --explain: attributions that find the parameters we know drive the answer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tfseq.cli.main import main

FEATURES = ["a", "b", "c", "d", "e", "f"]
DRIFTING = {"a", "b"}


def drifting_frame(n: int = 300, steps: int = 8, seed: int = 0) -> pd.DataFrame:
    """Long format, 6 features, of which only ``a`` (up) and ``b`` (down) drift on failing devices;
    a fifth of the devices stop two cycles early (padding)."""
    rng = np.random.default_rng(seed)
    fail = rng.random(n) < 0.3
    lengths = np.where(rng.random(n) < 0.2, steps - 2, steps)
    ramp = np.arange(steps) / (steps - 1)
    x = rng.normal(size=(n, steps, len(FEATURES))) * 0.5 + np.array([10.0, -5.0, 3.0, 100.0, 0.0, 1.0])
    x[fail, :, 0] += 2.0 * ramp
    x[fail, :, 1] -= 2.0 * ramp
    rows = [(f"D{i:04d}", t + 1, "fail" if fail[i] else "pass", *x[i, t]) for i in range(n) for t in range(lengths[i])]
    return pd.DataFrame(rows, columns=["device_id", "cycle", "status", *FEATURES])


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory):
    """A RUN that learned the drifting data (validation accuracy > 0.9), its CSV and `tfseq explain`'s output."""
    root = tmp_path_factory.mktemp("explain")
    data = root / "tests.csv"
    drifting_frame().to_csv(data, index=False)
    run = root / "run"
    assert main(["train", str(data), "--id-col", "device_id", "--time-col", "cycle", "--label-col", "status",
                 "--out", str(run), "--epochs", "5", "--cell", "gru", "--units", "8", "--no-bidirectional",
                 "--learning-rate", "0.01", "--batch-size", "32", "--seed", "1"]) == 0
    assert json.loads((run / "metrics.json").read_text())["validation"]["accuracy"] > 0.9
    out = root / "why"
    assert main(["explain", str(run), str(data), "--out", str(out), "--top", "3"]) == 0
    return run, data, out


def test_both_methods_rank_the_drifting_features_first(drift_run):
    _, _, out = drift_run
    report = json.loads((out / "explain.json").read_text())
    rows = report["features"]
    assert {r["feature"] for r in rows if r["rank"] <= 2} == DRIFTING
    assert {r["feature"] for r in rows if r["permutation_rank"] <= 2} == DRIFTING
    assert report["permutation"]["metric"] == "auc"
    assert all(r["mean_abs_attribution_fail"] is not None for r in rows)
    table = pd.read_csv(out / "features.csv")
    assert list(table["feature"][:2].sort_values()) == sorted(DRIFTING)


def test_completeness_within_the_stated_tolerance(drift_run):
    _, _, out = drift_run
    completeness = json.loads((out / "explain.json").read_text())["integrated_gradients"]["completeness"]
    assert completeness["within_tolerance"]
    assert completeness["max_relative_error"] <= completeness["tolerance"] == 0.05
    saved = np.load(out / "attributions.npz")
    total = saved["values"].sum(axis=(1, 2))
    assert np.allclose(total, saved["output"] - saved["baseline_output"], atol=0.05)


def test_padded_steps_get_no_attribution(drift_run):
    _, data, out = drift_run
    lengths = pd.read_csv(data).groupby("device_id").size()
    saved = np.load(out / "attributions.npz")
    short = [i for i, d in enumerate(saved["ids"]) if lengths[d] < saved["values"].shape[1]]
    assert short
    assert not saved["values"][short, -2:].any()


def test_cli_writes_the_report_plots_and_drivers(drift_run):
    run, data, out = drift_run
    assert {p.name for p in (out / "plots").iterdir()} == {"attribution_heatmap.png", "permutation_importance.png"}
    drivers = pd.read_csv(out / "drivers.csv")
    assert drivers.columns.tolist() == ["device_id", "drivers"]
    assert drivers["drivers"].str.split(";").map(len).max() == 3
    report = json.loads((out / "explain.json").read_text())
    assert report["integrated_gradients"]["quadrature"] == "gauss-legendre"
    assert len(report["per_step"]["mean_abs_attribution"]) == 8
    assert len(report["permutation"]["windows"]) == 8  # windows of max(1, 8 // 10) steps
    # the permutations through another artifact: the RUN's .keras file through load_runner
    other = out.parent / "via-keras-file"
    assert main(["explain", str(run), str(data), "--out", str(other), "--artifact", str(run / "model.keras"),
                 "--max-sequences", "50", "--repeats", "1", "--ig-steps", "4"]) == 0
    report = json.loads((other / "explain.json").read_text())
    assert report["sequences"] == 50 and report["permutation"]["runtime"] == "keras"


@pytest.mark.parametrize("case", ["missing feature", "top 0", "ig-steps 0", "existing out", "overwrite the RUN"])
def test_bad_input_is_one_line_and_exit_2(drift_run, tmp_path, capsys, case):
    run, data, out = drift_run
    args = ["explain", str(run), str(data), "--out", str(tmp_path / "why")]
    if case == "missing feature":
        broken = tmp_path / "no_c.csv"
        pd.read_csv(data).drop(columns=["c"]).to_csv(broken, index=False)
        args[2] = str(broken)
    elif case == "existing out":
        args[4] = str(out)
    elif case == "overwrite the RUN":
        args[4:] = [str(run), "--overwrite"]
    else:
        flag, value = case.split()
        args += [f"--{flag}", value]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("tfseq: error:")
    assert "Traceback" not in err
    expected = {"missing feature": "has no column 'c', a feature the model was trained on", "top 0": "--top",
                "ig-steps 0": "--ig-steps", "existing out": "--overwrite", "overwrite the RUN": "not an explain report"}
    assert expected[case] in err
    assert (run / "model.keras").is_file()


def test_library_arguments_are_checked(drift_run, tmp_path):
    from tfseq.errors import InputError
    from tfseq.workflows.explain import explain_run

    run, data, _ = drift_run
    with pytest.raises(InputError, match="argument top") as caught:
        explain_run(run, data, out=tmp_path / "why", top=0)
    assert caught.value.arguments == ("top",)


def test_predict_explain_adds_each_sequences_drivers(drift_run, tmp_path):
    run, data, _ = drift_run
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), str(data), "--out", str(out), "--explain", "2"]) == 0
    pred = pd.read_csv(out)
    assert pred.columns.tolist() == ["device_id", "predicted", "p_pass", "p_fail", "out_of_range", "drivers"]
    cells = pred["drivers"].str.split(";")
    assert (cells.map(len) == 2).all()
    lengths = pd.read_csv(data).groupby("device_id").size()
    for device, drivers in zip(pred["device_id"], cells):
        for cell in drivers:
            feature, step = cell.split("@")
            assert feature in FEATURES and 1 <= int(step) <= lengths[device]
    failing = pred[pred["predicted"] == "fail"]
    top = failing["drivers"].str.split("@").str[0]
    assert top.isin(DRIFTING).mean() > 0.9


def test_predict_explain_needs_the_keras_model(drift_run, tmp_path, capsys):
    _, data, _ = drift_run
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not a model")
    assert main(["predict", str(onnx), str(data), "--out", str(tmp_path / "p.csv"), "--explain", "2"]) == 2
    err = capsys.readouterr().err
    assert "--explain needs the Keras model" in err and len(err.strip().splitlines()) == 1


def test_multiclass_targets_and_completeness_on_an_untrained_model():
    """Each class's probability is attributed; attributions sum to the output difference."""
    from tfseq.analysis.explain import (
        COMPLETENESS_TOLERANCE,
        completeness_error,
        integrated_gradients,
        keras_predict,
        top_drivers,
    )
    from tfseq.analysis.permutation import permutation_importance
    from tfseq.models import ModelSpec, build_model
    from tfseq.models.spec import HeadSpec

    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 5, 3)).astype(np.float32)
    x[:4, 3:] = 0.0  # padding
    valid = np.ones((12, 5), dtype=bool)
    valid[:4, 3:] = False
    spec = ModelSpec(cell="gru", units=(4,), masking=True, heads=(HeadSpec("multiclass", num_classes=3),))
    model = build_model(spec, n_features=3, steps=5, adapt=x, seed=0)
    result = integrated_gradients(model, x, head="multiclass", targets=range(3), valid=valid)
    assert result.values.shape == (12, 5, 3, 3)
    assert completeness_error(result).max() <= COMPLETENESS_TOLERANCE
    assert np.allclose(result.output.sum(axis=1), 1.0, atol=1e-5)
    assert not result.values[:4, 3:].any()
    drivers = top_drivers(result.values[..., 0], ["u", "v", "w"], 2)
    assert all(int(d.split("@")[1]) <= 3 for row in drivers[:4] for d in row.split(";"))
    importance = permutation_importance(keras_predict(model, "multiclass"), x, task="multiclass", valid=valid,
                                        repeats=1)
    assert importance.metric == "mean_abs_change" and importance.features.shape == (3,)
    # predict --explain's drivers: each sequence's predicted class only, as the full attributions give them
    from tfseq.data.sequences import SequenceSet
    from tfseq.run import DataContract
    from tfseq.workflows.explain import sequence_drivers

    contract = DataContract(["u", "v", "w"], 5, "multiclass", ["x", "y", "z"], head="multiclass")
    sequences = SequenceSet(x, None, np.arange(12), ["u", "v", "w"], lengths=np.where(valid.all(axis=1), 5, 3))
    chosen = np.take_along_axis(result.values, result.output.argmax(axis=1)[:, None, None, None], axis=3)[..., 0]
    assert sequence_drivers(model, contract, sequences, 2) == top_drivers(chosen, ["u", "v", "w"], 2)
