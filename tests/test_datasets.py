"""Datasets: a directory or a glob of Parquet / CSV files (Hive partitions included) as DATA."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tfseq.data.datasets import dataset_files
from tfseq.data.files import read_chunks, read_columns
from tfseq.data.long_format import load_long_format
from tfseq.data.synthetic import make_semiconductor_data, to_long_frame
from tfseq.errors import InputError

COLS = dict(id_col="device_id", time_col="cycle", label_col="status")


@pytest.fixture(scope="module")
def long():
    return to_long_frame(make_semiconductor_data(30, n_cycles=5, seed=4))


def split_rows(frame: pd.DataFrame, parts: int) -> list[pd.DataFrame]:
    """``parts`` pieces of the rows in a shuffled order: most sequences end up split across files."""
    order = np.random.default_rng(0).permutation(len(frame))
    return [frame.iloc[idx] for idx in np.array_split(order, parts)]


def assert_same(a, b):
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.ids.astype(str), b.ids.astype(str))
    assert a.feature_names == b.feature_names and a.class_names == b.class_names


@pytest.mark.parametrize("suffix", ["parquet", "csv", "csv.gz"])
def test_a_directory_of_files_with_sequences_split_across_them(tmp_path, long, suffix):
    single = tmp_path / f"all.{suffix}"
    long.to_parquet(single) if suffix == "parquet" else long.to_csv(single, index=False)
    folder = tmp_path / "ds"
    folder.mkdir()
    for i, piece in enumerate(split_rows(long, 3)):
        path = folder / f"part-{i}.{suffix}"
        piece.to_parquet(path) if suffix == "parquet" else piece.to_csv(path, index=False)
    (folder / "_SUCCESS").write_text("")  # written by Spark: skipped, as are hidden files
    (folder / ".part-0.crc").write_bytes(b"\0")
    assert [f.path.name for f in dataset_files(folder)] == [f"part-{i}.{suffix}" for i in range(3)]
    expected, _ = load_long_format(single, **COLS)
    got, task = load_long_format(folder, **COLS)
    assert task == "binary"
    assert_same(got, expected)
    globbed, _ = load_long_format(tmp_path / "ds" / f"*.{suffix}", **COLS)
    assert_same(globbed, expected)


def test_hive_partitions_become_text_columns(tmp_path, long):
    lots = {d: f"L{i % 2}" for i, d in enumerate(sorted(long["device_id"].unique()))}
    for lot in ("L0", "L1"):
        rows = long[long["device_id"].map(lots) == lot]
        folder = tmp_path / "ds" / f"lot={lot}" / "day=2026-11-30"
        folder.mkdir(parents=True)
        rows.iloc[: len(rows) // 2].to_parquet(folder / "a.parquet", index=False)
        rows.iloc[len(rows) // 2:].to_parquet(folder / "b.parquet", index=False)
    columns = read_columns(tmp_path / "ds")
    assert columns[-2:] == ["lot", "day"] and columns[:-2] == list(long.columns)
    assert [f.partitions for f in dataset_files(tmp_path / "ds" / "lot=L1")] == [(("day", "2026-11-30"),)] * 2
    assert [f.partitions for f in dataset_files(tmp_path / "ds" / "lot=*")] == (
        [(("lot", "L0"), ("day", "2026-11-30"))] * 2 + [(("lot", "L1"), ("day", "2026-11-30"))] * 2)
    chunk = next(read_chunks(tmp_path / "ds", ["device_id", "lot", "day"], 1_000))
    assert chunk["lot"].eq("L0").all() and chunk["day"].eq("2026-11-30").all()
    data, _ = load_long_format(tmp_path / "ds", **COLS)
    assert "lot" not in data.feature_names  # text: never a default feature
    by_lot, task = load_long_format(tmp_path / "ds", id_col="device_id", time_col="cycle", label_col="lot")
    assert task == "binary" and sorted(by_lot.class_names) == ["L0", "L1"]
    names = np.asarray(by_lot.class_names)[by_lot.y]
    assert all(names[i] == lots[d] for i, d in enumerate(by_lot.ids))


def test_files_that_differ_are_one_error_naming_both(tmp_path, long):
    folder = tmp_path / "ds"
    folder.mkdir()
    long.to_parquet(folder / "a.parquet")
    long.drop(columns=["Vdd_voltage"]).to_parquet(folder / "b.parquet")
    with pytest.raises(InputError) as caught:
        load_long_format(folder, **COLS)
    assert str(caught.value) == (f"{folder / 'b.parquet'}: lacks column 'Vdd_voltage', unlike {folder / 'a.parquet'}; "
                                 f"expected every file of the dataset {folder} to have the same columns.")
    long.assign(cycle=long["cycle"].astype("float64")).to_parquet(folder / "b.parquet")
    with pytest.raises(InputError, match=r"b.parquet: column 'cycle' is double but int64 in .*a.parquet"):
        read_columns(folder)
    (folder / "b.parquet").unlink()
    (folder / "k=1").mkdir()
    long.to_parquet(folder / "k=1" / "c.parquet")
    with pytest.raises(InputError, match=r"c.parquet: partition folders \['k'\] differ from \[\] of .*a.parquet"):
        read_columns(folder)


def test_empty_and_unmatched_datasets(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="empty: holds no .csv, .parquet or .stdf file"):
        load_long_format(tmp_path / "empty", **COLS)
    with pytest.raises(InputError, match=r"\*.parquet: holds no .csv, .parquet or .stdf file"):
        read_columns(tmp_path / "*.parquet")


def test_predict_reads_a_dataset_file_by_file(tmp_path, long):
    from tfseq.workflows.predict import sequence_blocks

    folder = tmp_path / "ds"
    folder.mkdir()
    devices = sorted(long["device_id"].unique())
    # contiguous sequences, one of them split across the boundary of two files
    ordered = long.sort_values(["device_id", "cycle"], ignore_index=True)
    cut = int(np.flatnonzero(ordered["device_id"] == devices[10])[2])
    ordered.iloc[:cut].to_parquet(folder / "a.parquet", index=False)
    ordered.iloc[cut:].to_parquet(folder / "b.parquet", index=False)
    chunks = list(read_chunks(folder, list(ordered.columns), 10_000))
    assert [len(c) for c in chunks] == [cut, len(ordered) - cut]  # a chunk never spans two files
    blocks = list(sequence_blocks(folder, "device_id", 40))
    assert max(len(b) for b in blocks) <= 40 + 5  # bounded by the block, not the dataset
    seen = pd.concat(blocks)["device_id"]
    assert seen.tolist() == ordered["device_id"].tolist()
    assert all(b["device_id"].is_monotonic_increasing for b in blocks)
    assert sum(devices[10] in set(b["device_id"]) for b in blocks) == 1  # the split sequence is one block


def test_a_sequence_in_files_apart_makes_predict_read_the_dataset_whole(tmp_path, long):
    from tfseq.workflows.predict import _Interleaved, sequence_blocks

    folder = tmp_path / "ds"
    folder.mkdir()
    ordered = long.sort_values(["device_id", "cycle"], ignore_index=True)
    first = ordered["device_id"] == ordered["device_id"].iloc[0]
    ordered[first].iloc[:2].to_parquet(folder / "a.parquet", index=False)
    ordered[~first].to_parquet(folder / "b.parquet", index=False)
    ordered[first].iloc[2:].to_parquet(folder / "c.parquet", index=False)  # the first device again, after b
    with pytest.raises(_Interleaved):
        list(sequence_blocks(folder, "device_id", 1_000))
    data, _ = load_long_format(folder, **COLS)  # what predict then does: every sequence whole
    assert data.lengths.tolist() == [5] * 30


@pytest.mark.slow
def test_predict_on_a_dataset_matches_the_single_file(tmp_path, tiny_run):
    from tfseq.cli.main import main

    run, data = tiny_run
    frame = pd.read_csv(data)
    folder = tmp_path / "ds"
    folder.mkdir()
    for i, piece in enumerate(np.array_split(np.arange(len(frame)), 4)):
        frame.iloc[piece].to_csv(folder / f"p{i}.csv", index=False)
    assert main(["predict", str(run), str(data), "--out", str(tmp_path / "one.csv")]) == 0
    assert main(["predict", str(run), str(folder), "--out", str(tmp_path / "many.csv"), "--block-rows", "100"]) == 0
    one, many = pd.read_csv(tmp_path / "one.csv"), pd.read_csv(tmp_path / "many.csv")
    # the same rows, ids and classes; the Keras model's probabilities may differ in the last
    # digit, as TensorFlow's CPU kernels (oneDNN, AVX-512) round by batch composition
    pd.testing.assert_frame_equal(one.select_dtypes(exclude="float"), many.select_dtypes(exclude="float"))
    pd.testing.assert_frame_equal(one, many, check_exact=False, rtol=0, atol=1e-5)
