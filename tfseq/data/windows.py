"""Forecast windows: long series cut into (last ``window`` steps -> next ``horizon`` values).

Each id's series (or one long series without an id column) is cut into
sliding windows of ``window`` steps of every feature; a window's target is the
next ``horizon`` values of the ``target`` column. The train / validation split
is made in time, per series: validation windows have every target at or after
the series' cut point, training windows every target before it, so no value a
model is validated on was a training target, and windows are never shuffled
across the cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tfseq.checks import positive_int
from tfseq.data.files import missing_column, read_columns
from tfseq.data.frames import read_frame
from tfseq.data.sequences import SequenceSet
from tfseq.errors import InputError

__all__ = ["load_windows", "load_last_windows", "forecast_names"]


def forecast_names(horizon: int) -> list[str]:
    """Output column names of a forecast: ``predicted`` for one step, ``predicted_1`` .. otherwise."""
    return ["predicted"] if horizon == 1 else [f"predicted_{k}" for k in range(1, horizon + 1)]


def _series(
    path: Path,
    *,
    target: str,
    id_col: str | None,
    time_col: str,
    features: str | Sequence[str] | None,
    fill: str | None,
) -> tuple[list[str], list[tuple[Any, np.ndarray, np.ndarray, np.ndarray]]]:
    """Returns ``(feature_names, [(id, values, target values, times) per series])``."""
    path = Path(path)
    frame, feature_names = read_frame(path, id_col=id_col, time_col=time_col, features=features, fill=fill)
    if target not in feature_names:
        if target in read_columns(path) and target not in (id_col, time_col):
            frame, _ = read_frame(path, id_col=id_col, time_col=time_col,
                                  features=feature_names + [target], fill=fill)
        else:
            raise missing_column(path, "target", target, read_columns(path))
    values = frame[feature_names].to_numpy(dtype=np.float32)
    goal = frame[target].to_numpy(dtype=np.float32)
    times = frame[time_col].to_numpy()
    keys = frame[id_col].to_numpy() if id_col else np.zeros(len(frame), dtype=object)
    bounds = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    series = [(keys[lo] if id_col else "series", values[lo:hi], goal[lo:hi], times[lo:hi])
              for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(frame)])]
    return feature_names, series


def load_windows(
    path: Path,
    *,
    target: str,
    window: int,
    horizon: int = 1,
    time_col: str,
    id_col: str | None = None,
    features: str | Sequence[str] | None = None,
    fill: str | None = None,
    stride: int = 1,
    val_fraction: float = 0.2,
) -> tuple[SequenceSet, SequenceSet | None]:
    """Cuts long series into forecast windows, split in time.

    Args:
        path: Long-format ``.csv`` or ``.parquet`` file.
        target: Column whose next ``horizon`` values are forecast. It is also
            an input feature when it is among ``features`` (the default takes
            every numeric column but the id and time columns).
        window: Steps of input per window.
        horizon: Future values per window.
        time_col: Order column.
        id_col: Series id column; None for one long series.
        features: Input feature columns in model order (list or ``"a,b"``).
        fill: ``"ffill"`` or ``"zero"`` to repair NaN / inf, else an error.
        stride: Steps between the starts of consecutive windows.
        val_fraction: Fraction of each series, at its end, whose values are
            validation targets (0: no validation set).

    Returns:
        ``(train, validation)``: SequenceSets with ``x`` ``[n, window,
        features]`` and ``y`` float32 ``[n, horizon]``; ids are
        ``"<id>@<time of the window's last step>"``. With ``val_fraction=0`` the
        validation set is None.

    Raises:
        InputError: for bad arguments, bad data (as :func:`tfseq.data.long_format.load_long_format`)
            or series too short for a single window.
    """
    window, horizon, stride = positive_int("window", window), positive_int("horizon", horizon), positive_int("stride", stride)
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"Received an invalid value for argument val_fraction, expected a number in [0, 1), "
                         f"got {val_fraction!r}.", arguments=("val_fraction",))
    parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {"train": [], "val": []}
    feature_names, series = _series(path, target=target, id_col=id_col, time_col=time_col,
                                    features=features, fill=fill)
    longest = 0
    for key, values, goal, times in series:
        n = len(values)
        longest = max(longest, n)
        if n < window + horizon:
            continue
        starts = np.arange(0, n - window - horizon + 1, stride)
        xs = sliding_window_view(values, (window, values.shape[1]))[:, 0][starts]
        ys = sliding_window_view(goal[window:], horizon)[starts]
        ids = np.array([f"{key}@{times[s + window - 1]}" for s in starts], dtype=object)
        cut = int(np.floor(n * (1.0 - val_fraction))) if val_fraction else n
        train = starts + window + horizon <= cut
        val = starts + window >= cut
        parts["train"].append((xs[train], ys[train], ids[train]))
        parts["val"].append((xs[val], ys[val], ids[val]))
    out: list[SequenceSet | None] = []
    for name in ("train", "val"):
        chunks = [p for p in parts[name] if len(p[0])]
        if not chunks:
            if name == "val" and val_fraction == 0:
                out.append(None)
                continue
            raise InputError(
                f"{path}: no {'training' if name == 'train' else 'validation'} window of window {window} + "
                f"horizon {horizon} steps fits in the series (longest: {longest} steps); expected longer "
                "series, or a smaller window, horizon or validation fraction.", arguments=("window", "horizon")
            )
        out.append(SequenceSet(
            x=np.concatenate([c[0] for c in chunks]), y=np.concatenate([c[1] for c in chunks]),
            ids=np.concatenate([c[2] for c in chunks]), feature_names=list(feature_names),
        ))
    train_set = out[0]
    assert train_set is not None  # only the validation set may be absent
    return train_set, out[1]


def load_last_windows(
    path: Path,
    *,
    window: int,
    time_col: str,
    feature_names: Sequence[str],
    id_col: str | None = None,
    fill: str | None = None,
) -> SequenceSet:
    """The last ``window`` steps of each series: the input of a forecast from its end.

    Series shorter than ``window`` are zero-padded at the end, as in training.
    """
    window = positive_int("window", window)
    names = list(feature_names)
    frame, _ = read_frame(Path(path), id_col=id_col, time_col=time_col, features=names, fill=fill)
    keys = frame[id_col].to_numpy() if id_col else np.zeros(len(frame), dtype=object)
    bounds = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    xs, ids, lengths = [], [], []
    values = frame[names].to_numpy(dtype=np.float32)
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(frame)]):
        part = values[max(lo, hi - window):hi]
        padded = np.zeros((window, len(names)), dtype=np.float32)
        padded[: len(part)] = part
        xs.append(padded)
        ids.append(keys[lo] if id_col else "series")
        lengths.append(len(part))
    return SequenceSet(x=np.stack(xs), y=None, ids=np.asarray(ids), feature_names=list(names),
                       lengths=np.asarray(lengths, dtype=np.int32))
