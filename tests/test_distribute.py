import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tfseq.data.synthetic import make_semiconductor_data, to_long_frame
from tfseq.errors import InputError
from tfseq.training.distribute import cluster_spec, is_chief, make_strategy

EPOCHS = 30


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _train(data, out, strategy, tf_config=None, extra=()):
    """`tfseq train` in a subprocess; mixed_bfloat16, since mixed precision under the strategy is promised."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    command = [sys.executable, "-m", "tfseq", "train", str(data), "--id-col", "device_id", "--time-col", "cycle",
               "--label-col", "status", "--out", str(out), "--strategy", strategy, "--cell", "gru",
               "--no-bidirectional", "--units", "8", "--epochs", str(EPOCHS), "--patience", str(EPOCHS),
               "--batch-size", "32", "--precision", "mixed_bfloat16", "--seed", "0", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_workers_on_loopback_match_single_process_training(tmp_path):
    data = tmp_path / "tests.csv"
    to_long_frame(make_semiconductor_data(800, n_cycles=10, seed=4)).to_csv(data, index=False)
    single = _train(data, tmp_path / "single", "none")
    output = single.communicate(timeout=300)[0]
    assert single.returncode == 0, output[-2000:]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    run = tmp_path / "multi"
    started = time.perf_counter()
    workers = [_train(data, run, "multi-worker", {"cluster": cluster, "task": {"type": "worker", "index": i}})
               for i in range(2)]
    outputs = [w.communicate(timeout=420)[0] for w in workers]
    elapsed = time.perf_counter() - started
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-2000:]
    assert "the chief writes" in outputs[1]
    alone = json.loads((tmp_path / "single" / "metrics.json").read_text())
    multi = json.loads((run / "metrics.json").read_text())  # written by the chief only
    assert multi["epochs"] == EPOCHS
    # the strategy, workers and replicas are on record in metrics.json, command.json and the summary
    assert multi["distribution"] == {"strategy": "MultiWorkerMirroredStrategy", "workers": 2, "replicas": 2}
    assert json.loads((run / "command.json").read_text())["distribution"] == multi["distribution"]
    assert "MultiWorkerMirroredStrategy: 2 worker(s), 2 replica(s)" in outputs[0]
    assert multi["validation"]["accuracy"] >= alone["validation"]["accuracy"] - 0.05, (multi, alone)
    assert (run / "history.csv").read_text().count("\n") == EPOCHS + 1
    assert (run / "model.keras").is_file() and not (run / ".workers").exists()
    print(f"two workers: {elapsed:.1f} s for {EPOCHS} epochs; validation accuracy "
          f"{multi['validation']['accuracy']:.3f} against {alone['validation']['accuracy']:.3f} in one process")


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


@pytest.mark.slow
@pytest.mark.parametrize("input_mode", ["in-memory", "out-of-core"])
def test_killed_workers_resume_together_from_their_backups(tmp_path, input_mode):
    """kill -9 of both workers mid-training, then the same commands again: training ends whole.

    Out of core, the data are a Parquet dataset of four files: each worker streams its own two.
    """
    import signal

    from tfseq.io import partial_path

    frame = to_long_frame(make_semiconductor_data(800, n_cycles=10, seed=4))
    if input_mode == "in-memory":
        data = tmp_path / "tests.csv"
        frame.to_csv(data, index=False)
    else:
        data = tmp_path / "tests"
        data.mkdir()
        for i, ids in enumerate(np.array_split(frame.device_id.unique(), 4)):
            frame[frame.device_id.isin(ids)].to_parquet(data / f"part-{i}.parquet", index=False)
    run = tmp_path / "multi"

    def start():
        cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
        return [_train(data, run, "multi-worker", {"cluster": cluster, "task": {"type": "worker", "index": i}},
                       extra=[f"--{input_mode}"])
                for i in range(2)]

    history = partial_path(run) / "history.csv"
    workers = start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and all(w.poll() is None for w in workers):
        if history.is_file() and len(history.read_text().strip().splitlines()) >= 4:  # 3 epochs done
            break
        time.sleep(0.05)
    for w in workers:
        w.send_signal(signal.SIGKILL)
        w.wait()
    logged = len(history.read_text().strip().splitlines()) - 1
    assert 3 <= logged < EPOCHS, "the kill came too late to test a resume"

    workers = start()
    outputs = [w.communicate(timeout=420)[0] for w in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-2000:]
    assert "resuming the unfinished run" in outputs[0]
    epochs = [int(line.split(",")[0]) for line in (run / "history.csv").read_text().strip().splitlines()[1:]]
    assert epochs == list(range(EPOCHS)), epochs
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == EPOCHS and metrics["input"]["mode"] == input_mode
    assert metrics["distribution"]["workers"] == 2 and metrics["validation"]["accuracy"] > 0.8
    assert "DATA sharding" not in outputs[0] + outputs[1]  # four files: each worker reads its own


def test_unseeded_datasets_draw_the_same_order_on_every_worker():
    """DATA sharding splits batches by position: workers must shuffle alike, seed or not."""
    import tensorflow as tf

    from tfseq.training.batches import make_dataset

    x, y = np.arange(64, dtype=np.float32).reshape(64, 1, 1), np.zeros(64, dtype=np.float32)
    orders = [np.concatenate([b[0].numpy().ravel() for b in make_dataset(
        x, y, batch_size=8, strategy=tf.distribute.get_strategy())]) for _ in range(2)]
    np.testing.assert_array_equal(*orders)
    assert not np.array_equal(orders[0], np.arange(64))  # shuffled all the same


def test_slurm_on_cpu_only_nodes_asks_for_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "0")
    with pytest.raises(InputError, match="CPU-only nodes set TF_CONFIG"):
        make_strategy("multi-worker")
