"""The in-memory form of a data set: padded sequences, targets and their names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tfseq.checks import positive_int
from tfseq.errors import InputError


#: What a model answers: one of these, everywhere in tfseq (specs, contracts, data, flags).
Task = Literal["binary", "multiclass", "regression", "forecast"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression", "forecast")
#: Integer labels with up to this many distinct values are read as classes, more as a regression target.
MAX_INFERRED_CLASSES = 20


@dataclass
class SequenceSet:
    """Sequences of equal padded length with one target per sequence.

    Attributes:
        x: Raw measurements, float32 ``[n, steps, features]``; steps past a
            sequence's length are zero (padding).
        y: Targets: class indices (int) for classification, floats otherwise.
        ids: One identifier per sequence.
        feature_names: Names of the features, in the order of the last axis.
        lengths: Number of valid steps of each sequence.
        class_names: Names of the classes for classification targets.
    """

    x: np.ndarray
    y: np.ndarray | None
    ids: np.ndarray
    feature_names: list[str]
    lengths: np.ndarray = field(default=None)  # type: ignore[assignment]
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float32)
        if self.x.ndim != 3:
            raise InputError(f"Received x of shape {self.x.shape}, expected [sequences, steps, features].")
        if self.lengths is None:
            self.lengths = np.full(len(self.x), self.x.shape[1], dtype=np.int32)
        if len(self.feature_names) != self.x.shape[2]:
            raise InputError(
                f"Received {len(self.feature_names)} feature names for {self.x.shape[2]} features."
            )

    def __len__(self) -> int:
        return len(self.x)

    @property
    def steps(self) -> int:
        return int(self.x.shape[1])

    def subset(self, index: np.ndarray) -> "SequenceSet":
        """Returns the sequences at ``index`` (an index array or boolean mask)."""
        return dataclasses.replace(
            self,
            x=self.x[index],
            y=None if self.y is None else self.y[index],
            ids=self.ids[index],
            lengths=self.lengths[index],
        )

    def first_steps(self, n: int) -> "SequenceSet":
        """Keeps only the first ``n`` steps of every sequence (early warning).

        Raises:
            InputError: if ``n`` is not a positive integer.
        """
        n = positive_int("predict_at", n)
        return dataclasses.replace(
            self, x=self.x[:, :n], lengths=np.minimum(self.lengths, n).astype(np.int32)
        )


def infer_task(data: SequenceSet) -> Task:
    """The task ``data``'s targets imply: the one rule tfseq uses wherever no task is given.

    Several target columns (forecast windows) make ``forecast``; class names, or integer labels
    with up to :data:`MAX_INFERRED_CLASSES` distinct values, make ``binary`` (two) or
    ``multiclass`` (more); anything else is ``regression``.

    Raises:
        InputError: if ``data`` has no targets.
    """
    if data.y is None:
        raise InputError("Received sequences without targets; expected targets to infer the task from.")
    y = np.asarray(data.y)
    if y.ndim == 2 and y.shape[1] > 1:
        return "forecast"
    if data.class_names:
        return "binary" if len(data.class_names) <= 2 else "multiclass"
    if not np.issubdtype(y.dtype, np.integer) and not np.issubdtype(y.dtype, np.bool_):
        return "regression"
    distinct = len(np.unique(y))
    if distinct <= 2:
        return "binary"
    return "multiclass" if distinct <= MAX_INFERRED_CLASSES else "regression"


def num_classes(data: SequenceSet) -> int:
    """Classes of a classification target: its class names, else the largest label + 1 (at least 2)."""
    if data.class_names:
        return len(data.class_names)
    y = np.asarray(data.y)
    return max(2, int(y.max()) + 1) if y.size else 2
