"""Targets of long-format data: one per sequence, checked, and encoded as the model's classes.

Classification targets become class indices (int32) with their class names in index order;
regression targets become float32. A two-class target puts the class that is costly to miss
(``fail``, ``1``, ``defect`` ... see :data:`POSITIVE_NAMES`) at index 1, so that "positive" means
what test engineers mean by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfseq.data.files import show_value
from tfseq.data.sequences import Task, task_of_targets
from tfseq.errors import InputError

#: Binary class names taken as the positive class (index 1: the costly one to miss).
POSITIVE_NAMES = frozenset(
    {"1", "true", "yes", "y", "fail", "failed", "failure", "failing", "bad", "defect",
     "defective", "reject", "rejected", "positive", "pos", "anomaly", "abnormal", "faulty"}
)

__all__ = ["POSITIVE_NAMES", "balanced_class_weights", "encode_targets", "label_text", "order_classes", "sequence_targets"]


def balanced_class_weights(counts: np.ndarray) -> np.ndarray:
    """Weight of each class, ``n / (classes present * count)``, so each class weighs the same (0 for absent ones)."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    weights = np.zeros(len(counts))
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def label_text(values: np.ndarray) -> np.ndarray:
    """Labels as class names: text, with integral numbers written without ``.0``."""
    out = []
    for v in values:
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        out.append(str(v))
    return np.asarray(out, dtype=object)


def order_classes(names: list[str], numeric: bool) -> list[str]:
    """Class names in index order: sorted (as numbers when the labels are), the positive class last of two."""
    names = sorted(names, key=(lambda s: float(s)) if numeric else str)
    if len(names) == 2:
        positive = [n for n in names if n.strip().lower() in POSITIVE_NAMES]
        if len(positive) == 1:
            names = [n for n in names if n != positive[0]] + positive
    return names


def sequence_targets(labels: pd.Series, sequence_ids: pd.Series, codes: np.ndarray, *, label_col: str,
                     id_col: str, path: Path) -> np.ndarray:
    """The raw target of each sequence (its first row's), checked to be present and constant.

    Arguments as :func:`encode_targets`; out-of-core training (:mod:`tfseq.data.streamed`) calls it
    block by block to learn the task and the classes before it encodes any target.

    Raises:
        InputError: for an empty target, or one that changes within a sequence.
    """
    if labels.isna().any():
        where = sequence_ids[labels.isna()].iloc[0]
        raise InputError(f"{path}: column {label_col!r} is empty for {id_col} {show_value(where)}; "
                         "expected a target on every row.")
    per_sequence = labels.groupby(codes, sort=True).nunique()
    changing = np.flatnonzero(per_sequence.to_numpy() > 1)
    if len(changing):
        seq = changing[0]
        seen = labels[codes == seq].unique()[:3]
        raise InputError(
            f"{path}: column {label_col!r} changes within {id_col} {show_value(sequence_ids[codes == seq].iloc[0])} "
            f"(found {', '.join(map(show_value, seen))}); expected one target per sequence."
        )
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    return labels.to_numpy()[starts]


def encode_targets(
    labels: pd.Series,
    sequence_ids: pd.Series,
    codes: np.ndarray,
    *,
    label_col: str,
    id_col: str,
    task: Task | None,
    class_names: Sequence[str] | None,
    path: Path,
) -> tuple[np.ndarray, list[str] | None, Task]:
    """One target per sequence from a label column, checked and encoded.

    Args:
        labels: The label column, one row per (sequence, step), rows grouped by sequence.
        sequence_ids: The id column of the same rows.
        codes: Sequence index of each row (ascending, as ``pandas.factorize`` of sorted ids gives).
        label_col: The label column's name, for messages.
        id_col: The id column's name, for messages.
        task: The task, or None to infer it (:func:`tfseq.data.sequences.task_of_targets`; with
            ``class_names`` given, their count decides).
        class_names: The model's class names in index order; labels outside them are an error.
            None derives them from the labels.
        path: How messages name the data.

    Returns:
        ``(y, class_names, task)``: class indices (int32) and names for classification, float32
        targets and None for regression.

    Raises:
        InputError: for empty or changing targets within a sequence, a single class, text in a
            regression target, or a class the model never saw.
    """
    first = sequence_targets(labels, sequence_ids, codes, label_col=label_col, id_col=id_col, path=path)
    names = list(class_names) if class_names is not None else None
    if task is None:
        task = task_of_targets(first) if names is None else ("binary" if len(names) == 2 else "multiclass")
    if task == "regression":
        values = pd.to_numeric(pd.Series(first), errors="coerce")
        if values.isna().any():
            bad = first[values.isna().to_numpy()][0]
            raise InputError(
                f"{path}: column {label_col!r} holds {show_value(bad)}; expected numbers for a regression target."
            )
        return values.to_numpy(dtype=np.float32), None, task
    text = label_text(first)
    found = sorted(set(text))
    if names is None:
        if len(found) < 2:
            raise InputError(
                f"{path}: column {label_col!r} holds a single class {found[0]!r}; expected at "
                "least two classes to train a classifier."
            )
        if task == "binary" and len(found) != 2:
            raise InputError(
                f"{path}: column {label_col!r} holds {len(found)} classes for task binary; "
                "expected exactly two (use task multiclass).", arguments=("task",)
            )
        numeric = pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels)
        names = order_classes(found, numeric)
    unknown = [c for c in found if c not in names]
    if unknown:
        raise InputError(
            f"{path}: column {label_col!r} holds class {unknown[0]!r}, which the model never saw; "
            f"expected one of {', '.join(map(repr, names))}."
        )
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[c] for c in text], dtype=np.int32), names, task
