import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfseq.errors import InputError
from tfseq.training.distribute import cluster_spec, is_chief, make_strategy

WORKER = Path(__file__).with_name("distributed_worker.py")
EPOCHS = 30


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start(out, strategy, tf_config=None, **env):
    environ = {**os.environ, **env}
    environ.pop("TF_CONFIG", None)
    if tf_config:
        environ["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, str(WORKER), str(out), strategy, str(EPOCHS)], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_workers_on_loopback_match_single_process_training(tmp_path):
    # mixed_bfloat16 on both sides: mixed precision under the strategy is part of the promise
    single = _start(tmp_path / "single", "none", PRECISION="mixed_bfloat16")
    single_out = single.communicate(timeout=300)[0]
    assert single.returncode == 0, single_out[-2000:]
    workers_cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    run = tmp_path / "multi"
    started = time.perf_counter()
    procs = [
        _start(run, "multi-worker", {"cluster": workers_cluster, "task": {"type": "worker", "index": i}},
               PRECISION="mixed_bfloat16")
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=420)[0] for p in procs]
    elapsed = time.perf_counter() - started
    for p, output in zip(procs, outputs):
        assert p.returncode == 0, output[-2000:]
    alone = json.loads((tmp_path / "single" / "result.json").read_text())
    multi = json.loads((run / "result.json").read_text())  # written by the chief only
    assert multi["replicas"] == 2 and multi["epochs"] == EPOCHS
    assert multi["accuracy"] >= alone["accuracy"] - 0.05, (multi, alone)
    assert (run / "history.csv").read_text().count("\n") == EPOCHS + 1  # the chief's log, written once
    assert (run / "checkpoints" / "best.keras").is_file()
    print(f"two workers: {elapsed:.1f} s for {EPOCHS} epochs; accuracy {multi['accuracy']:.3f} "
          f"against {alone['accuracy']:.3f} in one process")


def test_chief_is_worker_0_without_a_chief_task(monkeypatch):
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert not is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["h:1"], **cluster},
                                                "task": {"type": "worker", "index": 0}}))
    assert not is_chief()


@pytest.mark.parametrize(
    "tf_config, strategy, match",
    [("{not json", "auto", "TF_CONFIG is not valid JSON"),
     ('{"cluster": {}}', "auto", "must hold a 'cluster' and a 'task'"),
     ("", "multi-worker", "without TF_CONFIG"),
     ("", "ring", "argument strategy")],
)
def test_bad_strategy_configuration(monkeypatch, tf_config, strategy, match):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(InputError, match=match):
        cluster_spec()
        make_strategy(strategy)


def test_none_and_auto_without_gpus_use_the_default_strategy(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert make_strategy("none") is tf.distribute.get_strategy()
    assert make_strategy("auto") is tf.distribute.get_strategy()


def test_slurm_task_0_is_the_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert not is_chief()
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert is_chief()
