"""Long-format CSV / Parquet or a DataFrame in, padded :class:`SequenceSet` out.

One row per (sequence, step): an id column, an order column (cycle / time),
numeric feature columns and, for training, a target column that is constant
within a sequence. Sequences may differ in length; they are zero-padded at
the end (post-padding, which the masked recurrent layers and cuDNN expect)
and, with ``max_steps``, cut to their first ``max_steps`` steps.

The steps of a load live in three modules below this one: :mod:`tfseq.data.files` reads a file's
columns in chunks, :mod:`tfseq.data.frames` checks them into sorted float32 columns (a DataFrame
enters there too) and :mod:`tfseq.data.labels` encodes the targets. This module pads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfseq.checks import positive_int
from tfseq.data.frames import read_frame
from tfseq.data.labels import encode_targets
from tfseq.data.sequences import STEP_FLAG, TASKS, SequenceSet, Task
from tfseq.errors import InputError

__all__ = ["load_long_format", "fit_steps", "pad_sequences"]


def pad_sequences(frame: pd.DataFrame, id_col: str, feature_names: Sequence[str],
                  steps: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Checked long-format rows (sorted by id then time, from :func:`read_frame`) as padded sequences.

    Args:
        frame: The rows.
        id_col: The id column.
        feature_names: The feature columns, in model order.
        steps: Cut every sequence to its first ``steps`` steps; None pads to the longest.

    Returns:
        ``(x, lengths, codes, ids)``: float32 ``[sequences, steps, features]`` zero-padded at the
        end, each sequence's length, each row's sequence index, and the ids in sequence order.
    """
    codes, ids = pd.factorize(frame[id_col], sort=False)  # frame is sorted by id: codes ascend
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(frame)) - starts[codes]
    longest = int(counts.max())
    steps = longest if steps is None else min(longest, int(steps))
    keep = position < steps
    x = np.zeros((len(ids), steps, len(feature_names)), dtype=np.float32)
    values = frame[list(feature_names)].to_numpy(dtype=np.float32)
    if keep.all():
        x[codes, position] = values
    else:
        x[codes[keep], position[keep]] = values[keep]
    return x, np.minimum(counts, steps).astype(np.int32), codes, np.asarray(ids)


def fit_steps(data: SequenceSet, steps: int) -> SequenceSet:
    """Pads (zeros at the end) or cuts (keeps the first ``steps``) every sequence to ``steps`` steps."""
    n, have, f = data.x.shape
    if have >= steps:
        x = data.x[:, :steps]
    else:
        x = np.zeros((n, steps, f), dtype=np.float32)
        x[:, :have] = data.x
    return dataclasses.replace(data, x=x, lengths=np.minimum(data.lengths, steps).astype(np.int32))


def load_long_format(
    path: Path | pd.DataFrame,
    *,
    id_col: str,
    time_col: str,
    label_col: str | None = None,
    features: str | Sequence[str] | None = None,
    max_steps: int | None = None,
    predict_at: int | None = None,
    fill: str | None = None,
    task: Task | None = None,
    class_names: Sequence[str] | None = None,
    source: str | None = None,
) -> tuple[SequenceSet, Task | None]:
    """Loads a long-format CSV or Parquet file, or a DataFrame, as padded sequences.

    Args:
        path: ``.csv`` (also ``.csv.gz``) or ``.parquet`` file, or a ``pandas.DataFrame``
            with the same columns, one row per (sequence, step).
        id_col: Column identifying a sequence (a device).
        time_col: Column ordering the steps of a sequence (cycle, time).
        label_col: Target column, constant within a sequence; None when
            predicting.
        features: Feature columns in model order, as a list or ``"a,b,c"``;
            None takes every other numeric column in file order. Columns not
            named are ignored. A list ending in :data:`~tfseq.data.sequences.STEP_FLAG`
            (a trained model's features) reads the others and makes the flag.
        max_steps: Cut sequences to their first ``max_steps`` steps.
        predict_at: Keep only the first ``predict_at`` steps (early warning);
            applied after ``max_steps``.
        fill: Repair NaN / inf features: ``"ffill"`` (last valid value of the
            sequence) or ``"zero"``; None makes them an error.
        task: ``binary``, ``multiclass`` or ``regression``; None infers it
            from the labels (see :func:`tfseq.data.sequences.task_of_targets`).
        class_names: Class names in index order (from a trained model's
            contract); labels outside them are an error. None derives them
            from the labels (sorted; for two classes a name such as ``fail``
            or ``1`` becomes class 1).
        source: How messages name the data (default: the path, or ``DataFrame``).

    Returns:
        ``(sequences, task)``: ``y`` holds class indices (int32) with
        ``class_names`` set for classification, float32 for regression, None
        without ``label_col``; ``task`` is the given or inferred task (None
        without ``label_col`` and ``task``).

    Raises:
        InputError: for any problem with the file, its columns or values,
            each named in one line.

    Examples:
        >>> data, task = load_long_format("tests.csv", id_col="device_id",
        ...                               time_col="cycle", label_col="status")  # doctest: +SKIP
    """
    if source is None and isinstance(path, pd.DataFrame):
        source = "DataFrame"
    for name, value in (("max_steps", max_steps), ("predict_at", predict_at)):
        positive_int(name, value, allow_none=True)
    if task is not None and task not in TASKS[:3]:  # a forecast reads windows (tfseq.data.windows)
        raise InputError(f"Received an invalid value for argument task, expected one of {', '.join(TASKS[:3])}, "
                         f"got {task!r}.", arguments=("task",))
    flagged = False
    if isinstance(features, (list, tuple)) and STEP_FLAG in features:
        features, flagged = [f for f in features if f != STEP_FLAG], True
    frame, feature_names = read_frame(path, id_col=id_col, time_col=time_col, label_col=label_col,
                                      features=features, fill=fill, source=source)
    path = Path(source or ("DataFrame" if isinstance(path, pd.DataFrame) else path))
    if STEP_FLAG in feature_names:
        raise InputError(f"{path}: has a column named {STEP_FLAG!r}, the name tfseq gives its step flag; "
                         "expected it renamed.")
    steps_cap = min([v for v in (max_steps, predict_at) if v is not None], default=None)
    x, lengths, codes, ids = pad_sequences(frame, id_col, feature_names, steps_cap)

    y, names = None, (list(class_names) if class_names is not None else None)
    if label_col is not None:
        y, names, task = encode_targets(frame[label_col], frame[id_col], codes, label_col=label_col,
                                        id_col=id_col, task=task, class_names=class_names, path=path)
    data = SequenceSet(
        x=x, y=y, ids=np.asarray(ids), feature_names=list(feature_names), lengths=lengths,
        class_names=names if task in ("binary", "multiclass") else None,
    )
    return (data.with_step_flag() if flagged else data), task
