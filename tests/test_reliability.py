"""Crashes and resumes: a killed `tfseq train` continues from its last finished epoch."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tfseq.data.synthetic import make_semiconductor_data, to_long_frame
from tfseq.io import partial_path

EPOCHS = 5


def _train_command(data, out):
    return [sys.executable, "-m", "tfseq", "train", str(data), "--id-col", "device_id", "--time-col", "cycle",
            "--label-col", "status", "--out", str(out), "--epochs", str(EPOCHS), "--patience", "50",
            "--units", "16", "--batch-size", "32", "--seed", "0"]


def _epochs_logged(history_csv):
    try:
        return max(0, len(history_csv.read_text().strip().splitlines()) - 1)
    except OSError:
        return 0


@pytest.mark.slow
def test_kill_9_during_train_then_the_same_command_resumes_and_finishes(tmp_path):
    data = tmp_path / "tests.csv"
    to_long_frame(make_semiconductor_data(1500, n_cycles=10, seed=1)).to_csv(data, index=False)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    first = subprocess.Popen(_train_command(data, run), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    history = partial_path(run) / "history.csv"
    deadline = time.monotonic() + 300
    while _epochs_logged(history) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before_kill = _epochs_logged(history)
    assert 2 <= done_before_kill < EPOCHS, "the kill came too late to test a resume"
    assert not run.exists() and partial_path(run).is_dir()  # unfinished, and marked so

    other = [*_train_command(data, run)[:-6], "--units", "8", "--batch-size", "32", "--seed", "0"]
    changed = subprocess.run(other, env=env, capture_output=True, text=True, timeout=300)
    assert changed.returncode == 2 and "holds an unfinished run of another command (differs in units)" \
        in changed.stderr and "Traceback" not in changed.stderr, changed.stderr[-2000:]
    assert (partial_path(run) / "backup").is_dir()  # still there for the same command

    second = subprocess.run(_train_command(data, run), env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming the unfinished run" in second.stdout
    assert run.is_dir() and not partial_path(run).exists()
    epochs = pd.read_csv(run / "history.csv")["epoch"].tolist()
    assert epochs == list(range(EPOCHS)), epochs  # every epoch once: none lost, none repeated
    assert not (run / "backup").exists()


def test_predict_refuses_a_tampered_artifact_unless_told_not_to_verify(tiny_run, tmp_path, capsys):
    import json

    from tfseq import export_run
    from tfseq.cli.main import main

    run, data = tiny_run
    export_run(run, tmp_path / "export", formats="onnx", allow_degraded=True)
    manifest_path = tmp_path / "export" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    artifact = tmp_path / "export" / manifest["artifacts"][0]["path"]
    manifest["artifacts"][0]["sha256"] = "0" * 64  # the file no longer matches what was verified
    manifest_path.write_text(json.dumps(manifest))
    capsys.readouterr()

    command = ["predict", str(artifact), str(data), "--out", str(tmp_path / "p.csv")]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "sha256" in err and err.count("\n") == 1
    assert not (tmp_path / "p.csv").exists()
    assert main(command + ["--no-verify"]) == 0
    assert (tmp_path / "p.csv").read_text().splitlines()[0].startswith("device_id,predicted")


def test_disk_full_while_writing_predictions_is_one_line_and_leaves_no_file(tiny_run, tmp_path):
    run, data = tiny_run
    out = tmp_path / "predictions.csv"
    # a 4 KB file-size limit stands in for a full disk: writes past it fail with EFBIG
    limit = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
        "from tfseq.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run([sys.executable, "-c", limit, "predict", str(run), str(data), "--out", str(out)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfseq: error:") and "too large" in lines[0].lower()
    assert list(tmp_path.iterdir()) == []  # neither the CSV nor a temporary file is left


def test_predict_streams_blocks_of_whole_sequences_with_the_same_result(tiny_run, tmp_path, capsys):
    from tfseq.cli.main import main

    run, data = tiny_run
    frame = pd.read_csv(data)
    streamed, whole = tmp_path / "streamed.csv", tmp_path / "whole.csv"
    # 50-row blocks cut sequences apart: the reader must carry the tail of each block over
    assert main(["predict", str(run), str(data), "--out", str(streamed), "--block-rows", "50"]) == 0
    shuffled = tmp_path / "shuffled.csv"  # rows of a sequence scattered: read whole instead
    frame.sample(frac=1.0, random_state=0).to_csv(shuffled, index=False)
    assert main(["predict", str(run), str(shuffled), "--out", str(whole), "--block-rows", "50"]) == 0
    a = pd.read_csv(streamed).sort_values("device_id").reset_index(drop=True)
    b = pd.read_csv(whole).sort_values("device_id").reset_index(drop=True)
    assert len(a) == frame["device_id"].nunique() == len(b)
    pd.testing.assert_frame_equal(a, b, atol=1e-6)

    broken = tmp_path / "broken.csv"  # bad value in the last block
    frame.assign(Vdd_voltage=frame["Vdd_voltage"].where(frame.index < len(frame) - 3, "oops")).to_csv(
        broken, index=False)
    capsys.readouterr()
    out = tmp_path / "never.csv"
    assert main(["predict", str(run), str(broken), "--out", str(out), "--block-rows", "50"]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "block.csv" not in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".never.csv*"))


def test_permission_denied_is_one_line_and_exit_status_2(tiny_run, capsys):
    import tempfile

    from tfseq.cli.main import main

    read_only = Path("/sys")  # sysfs refuses new files even to root, who ignores chmod
    try:
        tempfile.mkstemp(dir=read_only)
        pytest.skip("/sys accepts new files here")
    except PermissionError:
        pass
    run, data = tiny_run
    capsys.readouterr()
    assert main(["predict", str(run), str(data), "--out", str(read_only / "predictions.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tfseq: error:") and "Permission denied" in err and err.count("\n") == 1
