"""tfseq monitor: reference statistics saved at training, drift found (exit 4) or not (exit 0), bad input (exit 2)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tfseq.analysis.drift import compare_with_reference, holm
from tfseq.analysis.reference import find_reference, out_of_range, read_reference
from tfseq.cli.main import main
from tfseq.data.synthetic import make_semiconductor_data, to_long_frame
from tfseq.errors import DRIFT_STATUS, DriftFound, describe

SHIFTED = "Leakage_current"


@pytest.fixture(scope="module")
def reference(tiny_run):
    return read_reference(tiny_run[0] / "reference.json")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Devices from the same generator as tiny_run's, never trained on."""
    data = make_semiconductor_data(400, n_cycles=6, seed=11)
    path = tmp_path_factory.mktemp("held_out") / "new.csv"
    to_long_frame(data).to_csv(path, index=False)
    return data, path


def _monitor(capsys, *args):
    capsys.readouterr()
    status = main(["monitor", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def test_training_writes_small_reference_statistics(tiny_run, reference):
    run, _ = tiny_run
    assert (run / "reference.json").stat().st_size < 60_000
    assert list(reference["features"]) == json.loads((run / "contract.json").read_text())["feature_names"]
    feature = reference["features"][SHIFTED]
    assert feature["quantiles"]["0.001"] <= feature["quantiles"]["0.5"] <= feature["quantiles"]["0.999"]
    assert len(feature["sequence_means"]["sample"]) == reference["sequences"] <= 500
    assert reference["lengths"]["min"] == reference["lengths"]["max"] == 6
    assert reference["prediction"]["kind"] == "p_fail"


def test_same_distribution_raises_no_alarm_over_random_halves(tiny_run, reference):
    """Halves of the training file, with the model's real outputs: no false alarm at the defaults."""
    from tfseq.export import load_runner

    run, csv = tiny_run
    data = make_semiconductor_data(300, n_cycles=6, seed=2)  # the generator behind tiny_run's file
    output = load_runner(run).predict(data.x)["binary"]
    rng = np.random.default_rng(0)
    for _ in range(20):
        half = rng.permutation(len(data))[: len(data) // 2]
        report = compare_with_reference(reference, data.x[half], data.lengths[half], data.feature_names,
                                        output=output[half])
        assert not report["drift"], report["reasons"]


def test_held_out_data_from_the_same_source_exit_0(tiny_run, held_out, tmp_path, capsys):
    status, out, err = _monitor(capsys, tiny_run[0], held_out[1], "--out", tmp_path / "m")
    assert status == 0, err
    report = json.loads((tmp_path / "m" / "drift.json").read_text())
    assert not report["drift"] and not any(f["drift"] for f in report["features"])
    assert report["prediction"]["kind"] == "p_fail" and (tmp_path / "m" / "plots" / "drift.png").is_file()
    assert "drift: no" in out


def test_a_feature_shifted_by_half_a_standard_deviation_is_caught_and_named_first(
        tiny_run, reference, held_out, tmp_path, capsys):
    data, _ = held_out
    k = data.feature_names.index(SHIFTED)
    shifted = make_semiconductor_data(400, n_cycles=6, seed=11)
    shifted.x[:, :, k] += 0.5 * float(reference["features"][SHIFTED]["std"])
    path = tmp_path / "shifted.csv"
    to_long_frame(shifted).to_csv(path, index=False)
    status, out, err = _monitor(capsys, tiny_run[0], path, "--out", tmp_path / "m")
    assert status == DRIFT_STATUS == 4
    assert err.startswith(f"tfseq: drift found in {path}: feature {SHIFTED}") and err.count("\n") == 1
    report = json.loads((tmp_path / "m" / "drift.json").read_text())
    assert report["features"][0]["name"] == SHIFTED and report["features"][0]["drift"]
    assert [f["name"] for f in report["features"] if f["drift"]] == [SHIFTED]
    assert "DRIFT" in out
    # a second run replaces the report, whole
    assert main(["monitor", str(tiny_run[0]), str(held_out[1]), "--out", str(tmp_path / "m")]) == 0


def test_drift_found_is_a_documented_outcome_with_its_own_status():
    line, status = describe(DriftFound("drift found in new.csv: feature Vdd"))
    assert (line, status) == ("tfseq: drift found in new.csv: feature Vdd", 4)


@pytest.mark.parametrize("flags, named", [
    (["--alpha", "1.5"], "--alpha"), (["--psi-threshold", "0"], "--psi-threshold"),
    (["--max-out-of-range", "-0.1"], "--max-out-of-range"), (["--range-margin", "-1"], "--range-margin"),
])
def test_thresholds_out_of_range_are_one_line_exit_2(tiny_run, held_out, tmp_path, capsys, flags, named):
    status, _, err = _monitor(capsys, tiny_run[0], held_out[1], "--out", tmp_path / "m", *flags)
    assert status == 2 and err.count("\n") == 1 and f"argument {named}, expected" in err


def test_an_out_that_is_not_a_monitor_report_is_refused(tiny_run, held_out, tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    status, _, err = _monitor(capsys, tiny_run[0], held_out[1], "--out", tmp_path / "m")
    assert status == 2 and "is not a monitor report (drift.json); choose another --out" in err
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"


def test_a_run_without_reference_statistics_is_one_line_exit_2(tiny_run, held_out, tmp_path, capsys):
    old = tmp_path / "old_run"
    shutil.copytree(tiny_run[0], old)
    (old / "reference.json").unlink()
    status, _, err = _monitor(capsys, old, held_out[1], "--out", tmp_path / "m")
    assert status == 2 and err.count("\n") == 1
    assert "has no reference statistics" in err and "retrain" in err
    found = find_reference(old, required=False)  # what tfseq predict uses: no reference, no error
    assert found.reference is None and found.contract.feature_names == held_out[0].feature_names


def test_data_missing_a_trained_feature_is_one_line_exit_2(tiny_run, held_out, tmp_path, capsys):
    path = tmp_path / "missing.csv"
    pd.read_csv(held_out[1]).drop(columns=[SHIFTED]).to_csv(path, index=False)
    status, _, err = _monitor(capsys, tiny_run[0], path, "--out", tmp_path / "m")
    assert status == 2 and err.count("\n") == 1 and f"has no column '{SHIFTED}', a feature the model was trained" in err
    assert not (tmp_path / "m").exists()


def test_an_onnx_export_is_monitored_from_its_manifest(tiny_run, held_out, tmp_path, capsys):
    from tfseq.workflows.export import export_run

    manifest = export_run(tiny_run[0], tmp_path / "export", formats="onnx")
    assert manifest["reference"] == read_reference(tiny_run[0] / "reference.json")
    onnx = tmp_path / "export" / manifest["artifacts"][0]["path"]
    status, _, err = _monitor(capsys, onnx, held_out[1], "--out", tmp_path / "m")
    assert status == 0, err
    report = json.loads((tmp_path / "m" / "drift.json").read_text())
    assert report["reference"].endswith("manifest.json") and report["prediction"] is not None

    # an export from before tfseq monitor: one line asking to re-export
    path = tmp_path / "export" / "manifest.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "reference"}))
    status, _, err = _monitor(capsys, onnx, held_out[1], "--out", tmp_path / "m2")
    assert status == 2 and err.count("\n") == 1 and "re-export" in err


def test_out_of_range_flags_far_values_and_unseen_lengths(reference, held_out):
    from tfseq.data.long_format import fit_steps

    data = held_out[0].subset(np.arange(6))
    k = data.feature_names.index(SHIFTED)
    feature = reference["features"][SHIFTED]
    width = feature["quantiles"]["0.999"] - feature["quantiles"]["0.001"]
    data.x[1, 2, k] = feature["quantiles"]["0.999"] + 2 * width  # far above the training range
    data.lengths[3] = 3  # shorter than any training sequence
    data.x[3, 3:] = 0.0
    data.x[4, 5, k] = np.nan
    assert out_of_range(data, reference).tolist() == [False, True, False, True, True, False]
    # a value past the range on a padded step is ignored; a raw array works too
    padded = fit_steps(data.subset(np.array([0])), 8)
    padded.x[0, 7, k] = 1e9
    assert out_of_range(padded, reference).tolist() == [False]
    assert out_of_range(data.x, reference, lengths=data.lengths).tolist() == [False, True, False, True, True, False]
    # the margin is settable: none makes values just past the 99.9 % quantile count
    data.x[0, 0, k] = feature["quantiles"]["0.999"] + 0.01 * width
    assert out_of_range(data, reference)[0] == np.False_ and out_of_range(data, reference, margin=0)[0]


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
