"""Out-of-core training: the scan, the hash split, the streamed batches, sharding, and equivalence with
training in memory on data that fit; ``tfseq train --out-of-core`` and ``tfseq tune`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tfseq.data.long_format import load_long_format
from tfseq.data.sequences import STEP_FLAG
from tfseq.data.streamed import is_validation, read_blocks, read_sample, scan_dataset
from tfseq.data.synthetic import make_semiconductor_data, to_long_frame
from tfseq.errors import InputError

KEYS = dict(id_col="device_id", time_col="cycle", label_col="status")


def _write(frame: pd.DataFrame, folder, files: int):
    """``frame`` as a dataset of ``files`` Parquet files, each sequence's rows in one file."""
    folder.mkdir(parents=True)
    ids = frame["device_id"].unique()
    for i, part in enumerate(np.array_split(ids, files)):
        frame[frame["device_id"].isin(part)].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def frame():
    data = make_semiconductor_data(600, n_cycles=8, seed=3)
    # variable lengths, and real steps whose features are all exactly 0
    keep = np.arange(8)[None, :] < np.random.default_rng(0).integers(3, 9, size=len(data.x))[:, None]
    data.lengths = keep.sum(axis=1).astype(np.int32)
    data.x[~keep] = 0.0
    frame = to_long_frame(data)
    frame.loc[frame.cycle == 2, data.feature_names] = 0.0
    return frame


@pytest.fixture(scope="module")
def dataset(frame, tmp_path_factory):
    return _write(frame, tmp_path_factory.mktemp("ooc") / "data", files=3)


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    """Data a tiny model learns well in a few epochs (the study's 20 cycles), in two files."""
    frame = to_long_frame(make_semiconductor_data(800, n_cycles=20, seed=5))
    return _write(frame, tmp_path_factory.mktemp("easy") / "data", files=2)


def _in_memory_split(path, fraction=0.2, seed=0):
    data, _ = load_long_format(path, **KEYS)
    val = is_validation(data.ids, fraction, seed)
    return data, data.subset(np.flatnonzero(~val)), data.subset(np.flatnonzero(val))


def test_the_hash_split_depends_on_the_id_and_seed_only():
    ids = np.array([f"D{i:06d}" for i in range(20_000)])
    val = is_validation(ids, 0.2, seed=0)
    assert 0.19 < val.mean() < 0.21
    assert np.array_equal(is_validation(ids[::-1], 0.2, seed=0), val[::-1])  # no dependence on the others
    assert np.array_equal(is_validation(ids[:10], 0.2, seed=0), val[:10])
    assert not np.array_equal(is_validation(ids, 0.2, seed=1), val)
    assert np.array_equal(is_validation(np.arange(100), 0.3), is_validation(np.arange(100).astype(str), 0.3))


def test_scan_finds_what_the_in_memory_loader_finds(dataset):
    scan = scan_dataset(dataset, **KEYS, block_rows=500)  # blocks end inside files: sequences carry over
    data, train, val = _in_memory_split(dataset)
    assert scan.steps == data.steps == 8 and scan.task == "binary" and list(scan.class_names) == data.class_names
    assert (scan.train_sequences, scan.validation_sequences) == (len(train), len(val))
    assert len(scan.counts) == 3 and list(scan.class_counts) == list(np.bincount(train.y))
    from tfseq.models.builders import normalization_stats

    for masking in (True, False):
        mean, variance = normalization_stats(train.x, masking=masking)
        got_mean, got_variance = scan.normalization(masking=masking)
        np.testing.assert_allclose(got_mean, mean, rtol=1e-6)
        np.testing.assert_allclose(got_variance, variance, rtol=1e-5)
    # cycle 2's rows are all 0.0: with the step flag they count, as in memory
    assert scan.zero_steps == train.zero_steps > 0
    flagged = scan.with_step_flag()
    mean, variance = normalization_stats(train.with_step_flag().x, masking=True)
    got_mean, got_variance = flagged.normalization(masking=True)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(got_variance, variance, rtol=1e-5, atol=1e-12)
    sample = read_sample(flagged, "train", 10_000)
    order, want = np.argsort(sample.ids.astype(str)), np.argsort(train.ids.astype(str))
    assert sample.feature_names == train.with_step_flag().feature_names
    np.testing.assert_array_equal(sample.x[order], train.with_step_flag().x[want])


def test_streamed_blocks_hold_the_same_sequences_as_memory(dataset):
    scan = scan_dataset(dataset, **KEYS)
    _, train, val = _in_memory_split(dataset)
    for part, expected in (("train", train), ("validation", val)):
        x, y, lengths = (np.concatenate(a) for a in zip(*read_blocks(scan, part, block_rows=700)))
        order = np.argsort(read_sample(scan, part, 10_000).ids.astype(str))
        want = np.argsort(expected.ids.astype(str))
        np.testing.assert_array_equal(x[order], expected.x[want])
        np.testing.assert_array_equal(y[order], expected.y[want])
        np.testing.assert_array_equal(lengths[order], expected.lengths[want])
    # the rows of cycle 2 are all zero, and they are data: inside every sequence's length
    assert (x[:, 1] == 0).all() and (lengths > 2).all()


def test_the_fast_parquet_path_gives_the_checked_path_arrays(frame, tmp_path):
    """Epochs read Parquet through Arrow without pandas' checks; the arrays are the checked path's,
    also for steps stored out of time order and blocks that end inside a sequence."""
    shuffled = frame.sample(frac=1.0, random_state=0).sort_values("device_id", kind="stable")
    path = _write(shuffled, tmp_path / "d", files=2)
    fast = scan_dataset(path, **KEYS)
    checked = scan_dataset(path, **KEYS, fill="zero")  # fill: the per-block checks of the scan, every epoch
    for part in ("train", "validation"):
        got, want = (list(zip(*read_blocks(scan, part, block_rows=333))) for scan in (fast, checked))
        for a, b in zip(got, want):
            np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))


def test_regression_targets_and_their_scale(frame, tmp_path):
    frame = frame.copy()
    frame["yield_pct"] = frame["device_id"].str[1:].astype(int) % 97 + 0.5  # many distinct numbers
    path = _write(frame.drop(columns="status"), tmp_path / "r", files=2)
    scan = scan_dataset(path, id_col="device_id", time_col="cycle", label_col="yield_pct")
    data, _ = load_long_format(path, id_col="device_id", time_col="cycle", label_col="yield_pct")
    y = data.y[~is_validation(data.ids, 0.2)]
    assert scan.task == "regression" and scan.class_names is None
    assert scan.target_mean == pytest.approx(y.mean(), rel=1e-6)
    assert scan.target_std == pytest.approx(y.std(), rel=1e-5)
    sample = scan.target_sample()
    assert sample.mean() == pytest.approx(y.mean()) and sample.std() == pytest.approx(y.std(), rel=1e-5)


def test_interleaved_sequences_and_bad_values_fail_in_the_scan(frame, tmp_path):
    (tmp_path / "mixed").mkdir()
    frame.sort_values(["cycle", "device_id"]).to_parquet(tmp_path / "mixed" / "a.parquet", index=False)
    with pytest.raises(InputError, match=r"a\.parquet: the rows of a sequence .* are not next to each other"):
        scan_dataset(tmp_path / "mixed", **KEYS, block_rows=1000)
    bad = frame.copy()
    bad.loc[5, "Vdd_voltage"] = np.nan
    path = _write(bad, tmp_path / "nan", files=2)
    with pytest.raises(InputError, match="part-0.parquet: column 'Vdd_voltage' holds nan"):
        scan_dataset(path, **KEYS)
    assert scan_dataset(path, **KEYS, fill="zero").train_sequences > 0


def test_each_worker_reads_only_its_own_files_and_one_file_is_shared_by_data_sharding(dataset, frame, tmp_path):
    from tfseq.training.streamed import make_streamed_dataset

    def ids_of(scan, pipeline, pipelines):
        seen = []
        for x, y in make_streamed_dataset(scan, "train", batch_size=64, head="binary", shuffle=False,
                                          class_weight=False, pipeline=pipeline, pipelines=pipelines):
            seen += [tuple(row) for row in x.numpy()[:, 0, :3].round(5)]
        return seen

    scan = scan_dataset(dataset, **KEYS)
    shares = [ids_of(scan, p, 2) for p in range(2)]  # files 0, 2 and file 1
    assert len(shares[0]) == scan.counts[0][0] + scan.counts[2][0] and len(shares[1]) == scan.counts[1][0]
    assert not set(shares[0]) & set(shares[1]) and len(shares[0]) + len(shares[1]) == scan.train_sequences
    single = scan_dataset(_write(frame, tmp_path / "one", files=1), **KEYS)
    halves = [ids_of(single, p, 2) for p in range(2)]
    assert not set(halves[0]) & set(halves[1]) and len(halves[0]) + len(halves[1]) == single.train_sequences


def test_streamed_batches_shuffle_every_epoch_and_weigh_classes(dataset):
    from tfseq.training.streamed import make_streamed_dataset

    scan = scan_dataset(dataset, **KEYS)
    batches = make_streamed_dataset(scan, "train", batch_size=32, head="binary", shuffle=True, seed=0)
    assert batches.cardinality().numpy() == -(-scan.train_sequences // 32)
    epochs = [np.concatenate([x.numpy()[:, 0, 0] for x, _, _ in batches]) for _ in range(2)]
    assert len(epochs[0]) == scan.train_sequences and not np.array_equal(epochs[0], epochs[1])
    np.testing.assert_allclose(np.sort(epochs[0]), np.sort(epochs[1]))
    x, y, w = next(iter(batches))
    weights = scan.class_weights()
    np.testing.assert_allclose(w.numpy(), weights[y["binary"].numpy()])
    assert weights[1] > weights[0]  # the rarer fail class weighs more


def test_training_out_of_core_matches_training_in_memory(easy):
    """Same model, seed and split: the streamed run's validation accuracy and AUC are within 0.02 of the
    in-memory run's (the batches differ in order, so the weights differ a little)."""
    from tfseq.evaluation import classification_metrics
    from tfseq.models.builders import build_model
    from tfseq.training.defaults import default_spec
    from tfseq.training.fit import fit
    from tfseq.training.streamed import fit_streamed, predict_streamed

    scan = scan_dataset(easy, **KEYS)
    _, train, val = _in_memory_split(easy)
    spec = default_spec("binary").replace(cell="gru", units=(8,), bidirectional=False)
    scores = {}
    for how in ("memory", "streamed"):
        model = build_model(spec, n_features=15, steps=20, normalization=scan.normalization(masking=True), seed=0)
        if how == "memory":
            history = fit(model, train.x, train.y, validation_data=(val.x, val.y), epochs=6, batch_size=32,
                          seed=0, verbose=0)
            y, output = val.y, model.predict(val.x, verbose=0)["binary"]
        else:
            history = fit_streamed(model, scan, epochs=6, batch_size=32, seed=0, verbose=0)
            y, output, _ = predict_streamed(model, scan, "validation")
        scores[how] = classification_metrics(y, output)
        assert len(history.history["val_loss"]) == 6
    assert scores["memory"]["auc"] > 0.95 and scores["streamed"]["auc"] > 0.95, scores
    for metric in ("accuracy", "auc"):
        assert abs(scores["streamed"][metric] - scores["memory"][metric]) <= 0.02, scores


def _tfseq(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tfseq", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.mark.slow
def test_cli_train_out_of_core_writes_a_whole_run_and_says_so(dataset, tmp_path):
    done = _tfseq("train", dataset, "--id-col", "device_id", "--time-col", "cycle", "--label-col", "status",
                  "--out-of-core", "--cell", "gru", "--no-bidirectional", "--units", "8", "--epochs", "2",
                  "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "input         out of core (--out-of-core); streamed from 3 file(s)" in done.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    scan = scan_dataset(dataset, **KEYS)
    assert metrics["input"]["mode"] == "out-of-core" and metrics["input"]["files"] == 3
    assert (metrics["train_sequences"], metrics["validation_sequences"]) == (scan.train_sequences,
                                                                          scan.validation_sequences)
    assert sum(map(sum, metrics["validation"]["confusion_matrix"])) == scan.validation_sequences
    assert metrics["baselines"] and (tmp_path / "run" / "model.keras").is_file()
    from tfseq.run import load_run

    model, _, contract = load_run(tmp_path / "run")
    assert contract.steps == 8 and contract.class_names == ["pass", "fail"]
    assert contract.feature_names[-1] == STEP_FLAG and contract.masking  # cycle 2's zero rows stay data
    assert metrics["step_flag"]["zero_steps"] == scan.zero_steps and "real steps whose" in done.stdout

    small = _tfseq("train", dataset, "--id-col", "device_id", "--time-col", "cycle", "--label-col", "status",
                   "--cell", "gru", "--no-bidirectional", "--units", "4", "--epochs", "1", "--out", tmp_path / "auto")
    assert small.returncode == 0, small.stderr[-2000:]
    assert "input         in memory" in small.stdout  # the data fit: the default keeps them in memory
    assert json.loads((tmp_path / "auto" / "metrics.json").read_text())["input"] == {"mode": "in-memory"}


@pytest.mark.parametrize("flags, message", [
    (["--out-of-core", "--window", "4", "--target", "Vdd_voltage"], "Received --out-of-core with --window"),
    (["--out-of-core", "--in-memory"], "not allowed with argument"),
])
def test_cli_out_of_core_refuses_what_it_cannot_stream(dataset, tmp_path, flags, message):
    done = _tfseq("train", dataset, "--id-col", "device_id", "--time-col", "cycle", "--label-col", "status",
                  *flags, "--out", tmp_path / "run")
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_tune_trials_read_the_streamed_input(easy, tmp_path):
    from tfseq.tuning import SearchSpace, tune

    dataset = easy
    scan = scan_dataset(dataset, **KEYS)
    # samples with their labels scrambled: they only check the settings; trials that trained or
    # validated on them would score an AUC near 0.5
    train, val = read_sample(scan, "train", 60), read_sample(scan, "validation", 60)
    rng = np.random.default_rng(0)
    train.y, val.y = rng.permutation(train.y), rng.permutation(val.y)
    result = tune(train, val, tmp_path / "s", space=SearchSpace({"layers": 1, "units": 16, "batch_size": 32,
                                                                 "bidirectional": False, "cell": "gru",
                                                                 "learning_rate": 3e-3}),
                  objective="val_auc", max_trials=1, epochs=4, patience=4, streamed=scan)
    trials = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert (trials.status == "completed").all()
    assert result.best_score > 0.85, result.best_score
    assert json.loads((tmp_path / "s" / "tuning.json").read_text())["out_of_core"]["data"] == str(dataset)


@pytest.mark.slow
def test_tune_out_of_core_keeps_real_all_zero_steps_as_data(dataset, tmp_path):
    """Cycle 2's rows are all 0.0: the trials read the files with the step flag, as out-of-core train does."""
    from tfseq.tuning import SearchSpace, tune

    scan = scan_dataset(dataset, **KEYS)
    assert scan.zero_steps
    train, val = read_sample(scan, "train", 60), read_sample(scan, "validation", 60)
    assert STEP_FLAG not in train.feature_names  # the samples are read without it
    tune(train, val, tmp_path / "s", space=SearchSpace({"layers": 1, "units": 8, "batch_size": 32,
                                                         "bidirectional": False, "cell": "gru"}),
         objective="val_loss", max_trials=1, epochs=1, patience=1, streamed=scan)
    assert (pd.read_csv(tmp_path / "s" / "trials.csv").status == "completed").all()
    assert json.loads((tmp_path / "s" / "tuning.json").read_text())["features"] == [*train.feature_names, STEP_FLAG]
