"""``tfseq tune`` end to end: bad input, kill-and-resume, and a chief with two workers on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import wait_until

from tfseq.cli.main import main

DATA_FLAGS = ["--id-col", "device_id", "--time-col", "cycle", "--label-col", "status"]
TINY = ["--layers", "1", "--units", "4,8", "--bidirectional", "false", "--batch-size", "64", "--epochs", "1"]


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    from tfseq.data.synthetic import make_semiconductor_data, to_long_frame

    path = tmp_path_factory.mktemp("tune") / "tests.csv"
    to_long_frame(make_semiconductor_data(160, n_cycles=6, seed=6)).to_csv(path, index=False)
    return path


def _command(csv: Path, out: Path, *extra: str) -> list[str]:
    return ["tune", str(csv), *DATA_FLAGS, "--out", str(out), *TINY, *extra]


def _runs(out: Path) -> list[dict]:
    """Every run of every trial, from the per-process logs."""
    lines = []
    for log in sorted((out / "records").glob("runs_*.jsonl")):
        lines += [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return lines


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--trials", "0"], "--trials, expected a positive integer, got 0"),
        (["--max-seconds", "0"], "--max-seconds, expected a positive number"),
        (["--units", "8:4"], "an empty range"),
        (["--cell", "transformer"], "one of simple_rnn, lstm, gru"),
        (["--objective", "val_auc:up"], "NAME:max or NAME:min"),
        (["--objective", "val_mae"], "expected a metric the model reports"),
        (["--max-params", "10"], "no architecture in the search space fits"),
        (["--trials-per-process", "-1"], "--trials-per-process, expected 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(csv, tmp_path, capfd, extra, message):
    assert main(_command(csv, tmp_path / "s", *extra)) == 2
    err = capfd.readouterr().err.strip()  # checks after TensorFlow starts run in the search process
    assert message in err and len(err.splitlines()) == 1 and err.startswith("tfseq: error:")


def test_unknown_hyperparameter_in_space_file(csv, tmp_path, capfd):
    (tmp_path / "space.yaml").write_text("cell: [lstm, gru]\nunit: [4, 8]\n")
    assert main(_command(csv, tmp_path / "s", "--space", str(tmp_path / "space.yaml"))) == 2
    assert "unknown hyperparameter 'unit'; did you mean 'units'?" in capfd.readouterr().err


def _alive_in_session(sid: int) -> int:
    """Processes of session ``sid`` that are not zombies (from /proc: state, then session id)."""
    alive = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        alive += fields[0] != "Z" and int(fields[3]) == sid
    return alive


@pytest.mark.slow
def test_sigkill_mid_search_then_the_same_command_continues(csv, tmp_path, capfd):
    out = tmp_path / "s"
    # Two trials per search process: the re-run also restarts its process once, losing nothing.
    args = _command(csv, out, "--trials", "3", "--epochs", "3", "--objective", "val_auc", "--retrain",
                    "--trials-per-process", "2")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "tfseq", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: len(_runs(out)) >= 1 or proc.poll() is not None, timeout=180)  # trial 0 done
        assert proc.poll() is None, "the search ended before it could be killed"
        assert _alive_in_session(proc.pid) >= 2  # the supervisor and its search process, into trial 1
        proc.send_signal(signal.SIGKILL)  # the supervisor alone: its search process must follow
        proc.wait()
        assert wait_until(lambda: _alive_in_session(proc.pid) == 0, timeout=30), \
            "the search process outlived its killed supervisor"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    killed = {r["trial"] for r in _runs(out)}
    assert killed and len(killed) < 3
    first = (out / "records" / "trial_0.json").read_text()

    assert main(args) == 0  # the same command again
    runs = _runs(out)
    assert sorted(r["trial"] for r in runs) == ["0", "1", "2"]  # nothing lost, nothing run twice
    assert (out / "records" / "trial_0.json").read_text() == first
    trials = pd.read_csv(out / "trials.csv")
    assert list(trials.trial) == [0, 1, 2] and (trials.status == "completed").all()
    assert "3 completed" in capfd.readouterr().out
    contract = json.loads((out / "run" / "contract.json").read_text())  # --retrain: a RUN for tfseq export
    assert contract["id_col"] == "device_id" and contract["label_col"] == "status"
    assert (out / "run" / "model.keras").is_file() and (out / "run" / "spec.json").is_file()

    # best_spec.json is a `tfseq train --config` as it is
    run = tmp_path / "from_best"
    assert main(["train", str(csv), *DATA_FLAGS, "--config", str(out / "best_spec.json"), "--epochs", "1",
                 "--out", str(run)]) == 0
    best = json.loads((out / "best_spec.json").read_text())
    assert json.loads((run / "spec.json").read_text())["cell"] == best["cell"]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_on_loopback_run_every_trial_once(csv, tmp_path):
    out = tmp_path / "shared"
    args = [sys.executable, "-m", "tfseq", *_command(csv, out, "--trials", "4", "--objective", "val_loss")]
    port = str(_free_port())
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERASTUNER_TUNER_ID": tuner_id,
               "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": port}
        procs[tuner_id] = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           text=True, start_new_session=True)
        if tuner_id == "chief":  # the workers ask the chief's oracle for trials: start it first
            assert wait_until(lambda: _listening(int(port)) or procs["chief"].poll() is not None, timeout=120)
    try:
        outputs = {k: p.communicate(timeout=300)[0] for k, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    for tuner_id, p in procs.items():
        assert p.returncode == 0, f"{tuner_id}: {outputs[tuner_id][-2000:]}"
    runs = _runs(out)
    assert sorted(r["trial"] for r in runs) == ["0", "1", "2", "3"]  # every trial once, none lost
    assert all(r["status"] == "completed" for r in runs)
    assert {p.name for p in (out / "records").glob("runs_*.jsonl")} <= {"runs_tuner0.jsonl", "runs_tuner1.jsonl"}
    oracle = json.loads((out / "keras_tuner" / "oracle.json").read_text())
    assert oracle["ongoing_trials"] == {} and len(pd.read_csv(out / "trials.csv")) == 4
    assert (out / "best_spec.json").is_file()
