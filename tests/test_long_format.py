"""Long-format loading: grouping, ordering, padding, task inference, repairs and chunked reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tfseq.data import files
from tfseq.data.long_format import fit_steps, load_long_format
from tfseq.data.sequences import task_of_targets
from tfseq.data.synthetic import make_semiconductor_data, to_long_frame
from tfseq.errors import InputError


@pytest.fixture(scope="module")
def frame():
    data = make_semiconductor_data(40, n_cycles=6, seed=2)
    return data, to_long_frame(data)


@pytest.mark.parametrize("suffix", ["csv", "parquet", "csv.gz"])
def test_round_trip_of_the_long_frame_in_any_row_order(frame, tmp_path, suffix):
    data, long = frame
    path = tmp_path / f"d.{suffix}"
    shuffled = long.sample(frac=1.0, random_state=0)
    shuffled.to_parquet(path) if suffix == "parquet" else shuffled.to_csv(path, index=False)
    got, task = load_long_format(path, id_col="device_id", time_col="cycle", label_col="status")
    assert task == "binary"
    assert got.class_names == ["pass", "fail"]  # "fail" is class 1 whatever the sort order says
    np.testing.assert_allclose(got.x, data.x, rtol=1e-6)
    np.testing.assert_array_equal(got.y, data.y)
    np.testing.assert_array_equal(got.ids, data.ids)
    assert got.feature_names == data.feature_names


def test_variable_lengths_are_padded_at_the_end_and_capped(tmp_path):
    rows = [("a", t, float(t), 2.0 * t, "x") for t in range(1, 6)] + [("b", t, 10.0 + t, 1.0, "y") for t in (3, 1, 2)]
    pd.DataFrame(rows, columns=["id", "t", "f1", "f2", "label"]).to_csv(tmp_path / "v.csv", index=False)
    data, _ = load_long_format(tmp_path / "v.csv", id_col="id", time_col="t", label_col="label")
    assert data.x.shape == (2, 5, 2)
    np.testing.assert_array_equal(data.lengths, [5, 3])
    np.testing.assert_array_equal(data.x[1, :, 0], [11, 12, 13, 0, 0])
    capped, _ = load_long_format(tmp_path / "v.csv", id_col="id", time_col="t", label_col="label", max_steps=4)
    early, _ = load_long_format(tmp_path / "v.csv", id_col="id", time_col="t", label_col="label",
                                max_steps=4, predict_at=2, features="f2,f1")
    assert capped.steps == 4 and early.steps == 2
    assert early.feature_names == ["f2", "f1"]
    np.testing.assert_array_equal(early.x[0, :, 0], [2, 4])
    np.testing.assert_array_equal(fit_steps(early, 4).x[1, :, 1], [11, 12, 0, 0])
    np.testing.assert_array_equal(fit_steps(capped, 2).lengths, [2, 2])


@pytest.mark.parametrize(
    "labels, task",
    [
        (["ok", "bad"], "binary"),
        ([0, 1], "binary"),
        ([True, False], "binary"),
        (["bin1", "bin2", "bin7"], "multiclass"),
        ([1, 2, 3, 4], "multiclass"),
        ([0.5, 1.25, 3.0], "regression"),
        (list(range(30)), "regression"),
    ],
)
def test_task_inference(labels, task):
    assert task_of_targets(labels * 2) == task
    assert task_of_targets(pd.Series(labels * 2, dtype=object).to_numpy()) == task  # as read from a file


def test_string_classes_and_given_class_names(tmp_path):
    rows = [(i, t, float(i + t), ["B", "A", "C"][i % 3]) for i in range(9) for t in range(3)]
    pd.DataFrame(rows, columns=["id", "t", "f", "bin"]).to_csv(tmp_path / "m.csv", index=False)
    data, task = load_long_format(tmp_path / "m.csv", id_col="id", time_col="t", label_col="bin")
    assert (task, data.class_names) == ("multiclass", ["A", "B", "C"])
    np.testing.assert_array_equal(data.y[:3], [1, 0, 2])
    fixed, _ = load_long_format(tmp_path / "m.csv", id_col="id", time_col="t", label_col="bin",
                                class_names=["C", "B", "A", "D"], task="multiclass")
    np.testing.assert_array_equal(fixed.y[:3], [1, 2, 0])


@pytest.mark.parametrize("fill, expected", [("ffill", [1.0, 1.0, 3.0]), ("zero", [1.0, 0.0, 3.0])])
def test_fill_repairs_nan_and_inf(tmp_path, fill, expected):
    frame = pd.DataFrame({"id": ["a"] * 3 + ["b"] * 3, "t": [1, 2, 3] * 2,
                          "f": [1.0, np.nan, 3.0, np.inf, 5.0, 6.0], "y": [0] * 3 + [1] * 3})
    frame.to_csv(tmp_path / "n.csv", index=False)
    with pytest.raises(InputError, match="or pass fill ffill|zero"):
        load_long_format(tmp_path / "n.csv", id_col="id", time_col="t", label_col="y")
    data, _ = load_long_format(tmp_path / "n.csv", id_col="id", time_col="t", label_col="y", fill=fill)
    np.testing.assert_array_equal(data.x[0, :, 0], expected)
    assert data.x[1, 0, 0] == (5.0 if fill == "ffill" else 0.0)  # a leading gap takes the first valid value


def test_chunked_read_gives_the_same_sequences(frame, tmp_path, monkeypatch):
    data, long = frame
    long.to_csv(tmp_path / "c.csv", index=False)
    long.to_parquet(tmp_path / "c.parquet", row_group_size=17)
    monkeypatch.setattr(files, "CHUNK_ROWS", 7)  # many chunks; ids straddle chunk borders
    for name in ("c.csv", "c.parquet"):
        got, _ = load_long_format(tmp_path / name, id_col="device_id", time_col="cycle", label_col="status")
        np.testing.assert_allclose(got.x, data.x, rtol=1e-6)


def test_regression_target_is_float(tmp_path):
    frame = pd.DataFrame({"id": np.repeat(np.arange(6), 2), "t": [0, 1] * 6, "f": np.arange(12.0),
                          "ttf": np.repeat(np.linspace(0.5, 3.0, 6), 2)})
    frame.to_csv(tmp_path / "r.csv", index=False)
    data, task = load_long_format(tmp_path / "r.csv", id_col="id", time_col="t", label_col="ttf")
    assert task == "regression" and data.y.dtype == np.float32 and data.class_names is None


def test_the_step_flag_marks_real_steps_and_readers_make_it(tmp_path):
    from tfseq.data.sequences import STEP_FLAG, flag_padding

    rows = [("a", 1, 0.0, 0.0), ("a", 2, 1.0, 2.0), ("a", 3, 0.0, 0.0), ("b", 1, 3.0, 0.0), ("b", 2, 0.0, 0.0)]
    frame = pd.DataFrame(rows, columns=["id", "t", "u", "v"])
    data, _ = load_long_format(frame, id_col="id", time_col="t")
    assert data.padded and data.zero_steps == 3  # a's steps 1 and 3, b's step 2; not b's padding
    flagged, none = flag_padding(data)
    assert none is None and flagged.feature_names == ["u", "v", STEP_FLAG] and flagged.zero_steps == 0
    np.testing.assert_array_equal(flagged.x[..., -1], [[1, 1, 1], [1, 1, 0]])
    np.testing.assert_array_equal(flagged.x[..., :-1], data.x)
    assert flag_padding(flagged)[0] is flagged and flagged.with_step_flag() is flagged
    unflagged = data.subset(np.array([1]))  # b alone: a real zero step still
    assert flag_padding(unflagged)[0].feature_names[-1] == STEP_FLAG
    no_zeros = data.subset(np.array([0]))
    no_zeros.x[0, [0, 2], 0] = 5.0
    assert flag_padding(no_zeros)[0] is no_zeros  # nothing to tell from padding: the input stays as it is

    # a trained model's features end in the flag: the reader makes it, from the lengths, and cut or padded
    again, _ = load_long_format(frame, id_col="id", time_col="t", features=["u", "v", STEP_FLAG])
    np.testing.assert_array_equal(again.x, flagged.x)
    assert fit_steps(again, 4).x[:, 3].max() == 0.0  # padding: every feature 0.0, the flag too
    with pytest.raises(InputError, match=f"column named '{STEP_FLAG}'"):
        load_long_format(frame.rename(columns={"v": STEP_FLAG}), id_col="id", time_col="t")
