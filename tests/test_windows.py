"""Forecast windows: shapes, targets, the time split without leakage, and the last windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tfseq.data.windows import forecast_names, load_last_windows, load_windows
from tfseq.errors import InputError


@pytest.fixture()
def series_csv(tmp_path):
    n = 20
    frame = pd.DataFrame({"unit": np.repeat(["a", "b"], n), "t": np.tile(np.arange(n), 2),
                          "temp": np.r_[np.arange(n), 100 + np.arange(n)].astype(float),
                          "load": np.r_[np.arange(n), np.arange(n)] * 2.0})
    path = tmp_path / "series.csv"
    frame.sample(frac=1.0, random_state=1).to_csv(path, index=False)  # row order must not matter
    return path


def test_windows_hold_the_next_horizon_values_of_the_target(series_csv):
    train, val = load_windows(series_csv, target="temp", window=4, horizon=2, time_col="t", id_col="unit")
    assert train.feature_names == ["temp", "load"]
    assert train.x.shape[1:] == (4, 2) and train.y.shape[1:] == (2,)
    np.testing.assert_array_equal(train.x[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(train.y[0], [4, 5])
    assert train.ids[0] == "a@3"
    for x, y in zip(train.x, train.y):  # targets continue the target column
        assert y[0] == x[-1, 0] + 1


def test_time_split_per_series_has_no_leakage(series_csv):
    train, val = load_windows(series_csv, target="temp", window=4, horizon=2, time_col="t", id_col="unit",
                              val_fraction=0.25)
    for offset in (0, 100):  # series a holds 0..19, series b 100..119; cut at step 15
        tr_targets = train.y[(train.y >= offset) & (train.y < offset + 20)]
        va_targets = val.y[(val.y >= offset) & (val.y < offset + 20)]
        assert tr_targets.max() < offset + 15 <= va_targets.min()


def test_one_long_series_and_a_target_outside_the_features(series_csv):
    frame = pd.read_csv(series_csv)
    one = frame[frame.unit == "a"].drop(columns="unit")
    one.to_csv(series_csv.with_name("one.csv"), index=False)
    train, val = load_windows(series_csv.with_name("one.csv"), target="temp", window=3, horizon=1,
                              time_col="t", features="load", val_fraction=0.0)
    assert val is None and train.feature_names == ["load"] and len(train) == 17
    np.testing.assert_array_equal(train.y[:, 0], np.arange(3, 20))


def test_last_windows_are_the_end_of_each_series(series_csv):
    last = load_last_windows(series_csv, window=4, time_col="t", id_col="unit", feature_names=["temp", "load"])
    np.testing.assert_array_equal(last.ids, ["a", "b"])
    np.testing.assert_array_equal(last.x[1, :, 0], [116, 117, 118, 119])
    assert forecast_names(1) == ["predicted"] and forecast_names(2) == ["predicted_1", "predicted_2"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(window=19, horizon=2), "no training window"),
    (dict(window=0), "argument window,"),
    (dict(window=3, target="tmp"), "did you mean 'temp'"),
])
def test_bad_window_arguments(series_csv, kwargs, match):
    kwargs = {"target": "temp", **kwargs}
    with pytest.raises(InputError, match=match):
        load_windows(series_csv, time_col="t", id_col="unit", **kwargs)
