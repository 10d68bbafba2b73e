import json

import pytest

from tfseq.cli.main import main
from tfseq.workflows.demo import ARCHITECTURES, choose_best, run_demo


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "study"
    run_demo(out, devices=400, epochs=2, units=4, predict_at=6, log=lambda line: None, verbose=0)
    return out


def test_demo_writes_report_metrics_plots_and_models(demo_dir):
    metrics = json.loads((demo_dir / "metrics.json").read_text())
    assert set(metrics["models"]) == set(ARCHITECTURES)
    assert metrics["best"] in ARCHITECTURES
    for result in metrics["models"].values():
        for key in ("accuracy", "precision", "recall", "f1", "auc"):
            assert 0.0 <= result["cycle_6"][key] <= 1.0
        assert sum(map(sum, result["cycle_6"]["confusion_matrix"])) == metrics["split"]["test"]
        assert result["latency"]["single_p50_us"] > 0 and result["parameters"] > 0
    report = (demo_dir / "report.md").read_text()
    assert "## Recommendation" in report and f"**{metrics['best']}**" in report
    for plot in ("training_curves", "confusion_matrices", "accuracy", "latency"):
        assert (demo_dir / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"
    for name in ARCHITECTURES:
        for part in ("model.keras", "spec.json", "contract.json", "export_sample.npz"):
            assert (demo_dir / "models" / name / part).is_file()  # a RUN directory
    manifest = json.loads((demo_dir / "export" / "manifest.json").read_text())
    exported = {(a["format"], a["quantization"]) for a in manifest["artifacts"]}
    assert exported == {("savedmodel", None), ("onnx", None), ("tflite", "none"), ("tflite", "float16"),
                        ("tflite", "dynamic"), ("tflite", "int8")}
    for artifact in manifest["artifacts"]:
        assert (demo_dir / "export" / artifact["path"]).exists()
        if artifact["quantization"] in (None, "none"):
            assert artifact["passed"], artifact  # float artifacts match Keras even for a tiny model
    assert len(metrics["export"]) == 6 and "## Export of" in report
    assert (demo_dir / "data" / "test_long.csv").is_file()
    assert not list(demo_dir.rglob(".*partial"))  # every temporary directory was renamed


@pytest.mark.slow
def test_a_failed_export_keeps_the_models_and_a_rerun_continues(tmp_path, monkeypatch):
    import tfseq.workflows.demo
    from tfseq.errors import ExportError

    out, lines = tmp_path / "study", []
    settings = dict(devices=200, epochs=1, units=3, predict_at=5, verbose=0)

    def broken_export(*args, **kwargs):
        raise ExportError("the converter crashed")

    monkeypatch.setattr(tfseq.workflows.demo, "export_run", broken_export)
    with pytest.raises(ExportError):
        run_demo(out, log=lines.append, **settings)
    assert "demo: stage 'export' failed; finished models are kept" in lines[-1]
    trained = {name: (out / "models" / name / "model.keras").stat().st_mtime_ns for name in ARCHITECTURES}
    assert "Not exported yet" in (out / "report.md").read_text()  # the report stage finished
    assert not (out / "export").exists()

    monkeypatch.undo()
    lines.clear()
    metrics = run_demo(out, log=lines.append, **settings)
    assert sum("trained in a previous run" in line for line in lines) == len(ARCHITECTURES)
    assert trained == {name: (out / "models" / name / "model.keras").stat().st_mtime_ns for name in ARCHITECTURES}
    assert len(metrics["export"]) == 6 and (out / "export" / "manifest.json").is_file()

    lines.clear()  # other settings: that model is trained again, and the export redone
    run_demo(out, log=lines.append, **{**settings, "epochs": 2})
    assert not any("previous run" in line for line in lines)


def _result(acc, rec, prec, f1, us):
    return {"cycle_15": {"accuracy": acc, "recall": rec, "precision": prec, "f1": f1},
            "latency": {"single_p50_us": us}}


@pytest.mark.parametrize(
    "results, best",
    [
        ({"A": _result(0.99, 0.85, 0.99, 0.92, 10),  # best F1, misses the recall target
          "B": _result(0.95, 0.95, 0.90, 0.90, 50)}, "B"),
        ({"A": _result(0.95, 0.93, 0.95, 0.940, 10),
          "B": _result(0.95, 0.96, 0.92, 0.938, 50)}, "B"),  # close F1: more recall wins
        ({"A": _result(0.95, 0.95, 0.90, 0.90, 50),
          "B": _result(0.95, 0.951, 0.90, 0.90, 20)}, "B"),  # same recall: faster wins
        ({"A": _result(0.95, 0.99, 0.60, 0.75, 10),
          "B": _result(0.95, 0.91, 0.90, 0.90, 50)}, "B"),  # far better F1 beats recall
    ],
)
def test_best_model_rule(results, best):
    assert choose_best(results, 15) == best


@pytest.mark.slow  # the whole demo through the CLI (CI's slow tier; .ci/newcomer runs it too)
def test_cli_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "d"
    status = main(["demo", "--out", str(out), "--devices", "200", "--epochs", "1", "--units", "3",
                   "--predict-at", "5"])
    assert status == 0
    assert "best at cycle 5" in capsys.readouterr().out
    assert (out / "report.md").is_file()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["demo", "--devices", "0"], "--devices: expected a positive integer, got 0"),
        (["demo", "--epochs", "many"], "--epochs: expected a positive integer, got 'many'"),
        (["demo", "--precision", "fp8"], "--precision: invalid choice"),
        (["demo", "--devices", "10"], "argument devices, expected >= 50, got 10"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_demo_arguments_give_one_line_and_status_2(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out
