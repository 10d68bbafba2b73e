"""Export safety: versions, parity failures, bad input, tampering, kills, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tfseq.errors import InputError, ParityError
from tfseq.export import check_manifest, export_model, load_runner, verify
from tfseq.models.builders import build_model
from tfseq.models.spec import ModelSpec
from tfseq.run import DataContract, save_run
from tfseq.workflows.export import export_run

STEPS = 5


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    x, y = tiny_data.x[:, :STEPS], tiny_data.y
    spec = ModelSpec(cell="lstm", units=(4,), precision="float32")
    model = build_model(spec, n_features=15, steps=STEPS, adapt=x[:200], seed=1)
    contract = DataContract(feature_names=list(tiny_data.feature_names), steps=STEPS,
                            class_names=["pass", "fail"], head="binary")
    run_dir = tmp_path_factory.mktemp("run") / "run"
    save_run(run_dir, model, spec, contract)
    np.savez(run_dir / "export_sample.npz", x=x[200:230], y=y[200:230], x_train=x[:200])
    return model, spec, contract, run_dir, (x[200:230], y[200:230])


def _export(trained, out, **kwargs):
    model, spec, contract, _, holdout = trained
    kwargs.setdefault("formats", ("savedmodel",))
    return export_model(model, contract, out, name="m", holdout=holdout, spec=spec, **kwargs)


def test_savedmodel_versions_increment_and_are_never_overwritten(trained, tmp_path):
    out = tmp_path / "export"
    first = _export(trained, out)
    stamp = (out / "savedmodel/m/1/saved_model.pb").stat().st_mtime_ns
    second = _export(trained, out)
    assert [a.get("version") for a in first["artifacts"] + second["artifacts"]] == [1, 2]
    assert (out / "savedmodel/m/1/saved_model.pb").stat().st_mtime_ns == stamp
    _export(trained, out, overwrite=True)  # asked: replaces the highest version
    assert sorted(p.name for p in (out / "savedmodel/m").iterdir() if p.is_dir()) == ["1", "2"]
    check_manifest(out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_parity_failure_raises_and_writes_nothing(trained, tmp_path, monkeypatch):
    monkeypatch.setitem(verify.THRESHOLDS, "tflite-none", {"max_abs_diff": -1.0})
    out = tmp_path / "export"
    with pytest.raises(ParityError, match=r"m\.tflite: max abs difference .*\(allow_degraded=True"):
        _export(trained, out, formats="tflite")
    assert not out.exists() and not list(tmp_path.iterdir())
    manifest = _export(trained, out, formats="tflite", allow_degraded=True)
    assert manifest["degraded"] and not manifest["artifacts"][0]["passed"]


@pytest.mark.parametrize(
    "change,match",
    [
        ({"formats": "pdf"}, "argument formats"),
        ({"quantize": "int4", "formats": "tflite"}, "argument quantize"),
        ({"quantize": "int8", "formats": "tflite"}, "representative"),
        ({"holdout": (np.zeros((4, STEPS + 1, 15)), None)}, r"expected \[n > 0, 5, 15\]"),
        ({"name": "bad name"}, "argument name"),
    ],
)
def test_bad_input_is_an_input_error(trained, tmp_path, change, match):
    model, spec, contract, _, holdout = trained
    kwargs = {"name": "m", "holdout": holdout, "formats": "savedmodel", **change}
    with pytest.raises(InputError, match=match):
        export_model(model, contract, tmp_path / "export", **kwargs)
    assert not (tmp_path / "export").exists()


def test_refuses_a_foreign_non_empty_directory(trained, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds no manifest.json"):
        _export(trained, tmp_path)


def test_tampered_artifact_or_manifest_is_refused(trained, tmp_path):
    out = tmp_path / "export"
    _export(trained, out, formats=("tflite", "onnx"))
    check_manifest(out)
    with open(out / "m.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(InputError, match=r"m\.onnx: sha256 .* does not match"):
        load_runner(out / "m.onnx")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["artifacts"][0]["sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"m\.tflite: sha256"):
        load_runner(out / "m.tflite")
    import shutil

    shutil.copy(out / "m.tflite", out / "smuggled.tflite")  # beside the manifest, not in it
    with pytest.raises(InputError, match=r"smuggled\.tflite: not listed in .*manifest\.json"):
        load_runner(out / "smuggled.tflite")
    assert load_runner(out / "smuggled.tflite", verify=False).kind == "tflite"
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="unreadable manifest"):
        check_manifest(out)


def test_export_run_reads_the_run_and_its_sample(trained, tmp_path):
    run_dir = trained[3]
    manifest = export_run(run_dir, tmp_path / "export", formats="onnx")
    assert manifest["name"] == "lstm-4" and manifest["verification_data"]["with_targets"]
    assert manifest["notes"]["verification_data"] == "export_sample.npz of the RUN"
    assert manifest["contract"]["feature_names"][0] == "Vdd_voltage"


_KILLED_EXPORT = """
import sys
from tfseq import export_run
export_run(sys.argv[1], sys.argv[2], formats="all", quantize=("none", "dynamic"), name="m")
"""


def _whole_or_absent(out, before):
    if not out.exists():
        return "absent"
    manifest = check_manifest(out)  # every listed artifact present and matching
    return "before" if manifest["created"] == before else "whole"


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "over-previous"])
def test_sigkill_mid_export_leaves_previous_state_or_whole_export(trained, tmp_path, existing):
    out = tmp_path / "export"
    before = None
    if existing:
        before = _export(trained, out, formats="onnx")["created"]
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_EXPORT, str(trained[3]), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        partial = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
        if partial and any(partial[0].rglob("*.pb")):  # mid-export: the SavedModel is written
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the export ended before it could be killed"
    state = _whole_or_absent(out, before)
    assert state == ("before" if existing else "absent") or state == "whole"


def test_cli_exports_and_maps_errors_to_exit_codes(trained, tmp_path, monkeypatch, capsys):
    from tfseq.cli import main as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("tfseq.cli.export",))
    run_dir, out = trained[3], tmp_path / "export"
    assert cli.main(["export", str(run_dir), "--out", str(out), "--format", "tflite",
                     "--quantize", "none,dynamic", "--name", "edge"]) == 0
    printed = capsys.readouterr().out
    assert "edge.tflite" in printed and "edge-dynamic.tflite" in printed and "ok" in printed
    assert cli.main(["export", str(run_dir), "--out", str(out), "--quantize", "int4"]) == 2
    assert "--quantize" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "nope"), "--out", str(out)]) == 2
    monkeypatch.setitem(verify.THRESHOLDS, "onnx", {"max_abs_diff": -1.0})
    assert cli.main(["export", str(run_dir), "--out", str(out), "--format", "onnx"]) == 3  # a documented outcome
    err = capsys.readouterr().err
    assert "missed its parity thresholds" in err and "--allow-degraded" in err and "internal error" not in err


def test_litert_check_runs_where_tensorflow_cannot_be_imported(trained, tmp_path):
    out = tmp_path / "export"
    _export(trained, out, formats="tflite")
    outputs, report = verify.run_tflite_isolated([out / "m.tflite"], trained[4][0][:3])
    assert report["tensorflow_importable"] is False and report["tensorflow_loaded"] is False
    assert outputs[0]["binary"].shape == (3, 1)


def test_early_warning_cut_exports_the_first_steps(trained, tmp_path, tiny_data):
    import dataclasses

    model, spec, contract, _, _ = trained
    early = build_model(spec, n_features=15, steps=None, adapt=tiny_data.x[:200, :3], seed=1)
    contract = dataclasses.replace(contract, steps=8, predict_at=3)
    manifest = export_model(early, contract, tmp_path / "export", name="m", formats="onnx",
                            holdout=(tiny_data.x[200:220], tiny_data.y[200:220]))
    assert manifest["input"]["steps"] == 3 and load_runner(tmp_path / "export/m.onnx").steps == 3


def test_a_score_on_the_threshold_is_a_tie_not_a_disagreement():
    """``evaluate --min-recall`` puts the threshold on a validation score: float32 rounding of that one
    score in an artifact decides either way, and parity counts it as agreeing; a real flip still fails."""
    from tfseq.export.verify import compare_outputs, parity_failures

    threshold = 0.4166666567325592  # a float32 score, as --min-recall stores it
    keras = {"binary": np.array([[0.9], [threshold], [0.1], [0.3]], dtype=np.float32)}
    rounded = {"binary": keras["binary"] - np.float32(3e-8)}  # the tie falls below the threshold
    y = np.array([1, 1, 0, 0])
    figures = compare_outputs(keras, rounded, head="binary", task="binary", threshold=threshold, y=y)
    assert figures["class_agreement"] == 1.0 and figures["metric_change_points"] == 0.0
    assert figures["threshold_ties"] == 1 and not parity_failures("tflite-none", figures)
    flipped = {"binary": keras["binary"] + np.array([[0], [0], [0], [0.2]], dtype=np.float32)}  # 0.3 -> 0.5
    figures = compare_outputs(keras, flipped, head="binary", task="binary", threshold=threshold, y=y)
    assert figures["class_agreement"] == 0.75 and any("class agreement" in r for r in
                                                       parity_failures("tflite-int8", figures))
