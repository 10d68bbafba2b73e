"""The in-memory form of a data set: padded sequences, targets and their names."""

from __future__ import annotations

import dataclasses
import numbers
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
#: The last feature of sequences whose padding must be told from data: 1.0 on each of a sequence's own
#: steps, 0.0 on its padding. Padding stays every feature 0.0 (this one too), so a masking model still
#: masks it, and a real step whose measurements are all 0.0 keeps a 1.0 here and stays data. Readers
#: make it (:meth:`SequenceSet.with_step_flag`); a data file never holds it.
STEP_FLAG = "__step__"


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
    lengths: np.ndarray = field(default=None)  # type: ignore[arg-type]  # None: __post_init__ fills it in
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
    def padded(self) -> bool:
        """Whether any sequence is shorter than the padded length (there is padding to mask)."""
        return bool(np.any(self.lengths < self.x.shape[1]))

    @property
    def steps(self) -> int:
        return int(self.x.shape[1])

    @property
    def zero_steps(self) -> int:
        """Real steps (before their sequence's length) whose measurements are all exactly 0.0: what a
        model masking all-zero steps would take for padding unless the data carry :data:`STEP_FLAG`."""
        if STEP_FLAG in self.feature_names:
            return 0
        return int(np.count_nonzero(valid_mask(self.lengths, self.steps) & ~np.any(self.x != 0.0, axis=-1)))

    def with_step_flag(self) -> "SequenceSet":
        """These sequences with :data:`STEP_FLAG` as their last feature (unchanged if they have it)."""
        if STEP_FLAG in self.feature_names:
            return self
        flag = valid_mask(self.lengths, self.steps).astype(np.float32)
        return dataclasses.replace(self, x=np.concatenate([self.x, flag[..., None]], axis=-1),
                                   feature_names=[*self.feature_names, STEP_FLAG])

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


def valid_mask(lengths: np.ndarray, steps: int) -> np.ndarray:
    """``[n, steps]`` booleans: True at the valid (not padded) steps of each sequence."""
    return np.arange(steps)[None, :] < np.asarray(lengths).reshape(-1, 1)


def flag_padding(train: SequenceSet, val: SequenceSet | None = None) -> tuple[SequenceSet, SequenceSet | None]:
    """``train`` and ``val`` with :data:`STEP_FLAG` when they hold real steps whose measurements are all
    0.0, which a model masking all-zero steps would take for padding; otherwise unchanged (all-zero
    padding alone tells a sequence's end, and the model's input stays the measurements)."""
    if not any(s.zero_steps for s in (train, val) if s is not None):
        return train, val
    return train.with_step_flag(), None if val is None else val.with_step_flag()


def task_of_targets(values: np.ndarray | list) -> Task:
    """The one rule tfseq infers a task by, applied to one raw target per sequence.

    Booleans and text are classes; numbers are classes when every one is an integer and there are
    at most :data:`MAX_INFERRED_CLASSES` distinct values, else a regression target. Classes are
    ``binary`` when there are at most two, else ``multiclass``.
    """
    values = np.asarray(values)
    if values.dtype.kind == "O" and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        values = values.astype(np.float64)
    distinct = len(np.unique(values))
    if values.dtype.kind in "iuf":
        as_float = values.astype(np.float64)
        integral = bool(np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)))
        if not integral or distinct > MAX_INFERRED_CLASSES:
            return "regression"
    return "binary" if distinct <= 2 else "multiclass"


def infer_task(data: SequenceSet) -> Task:
    """The task ``data``'s targets imply, wherever no task is given (:func:`task_of_targets`).

    Several target columns (forecast windows) make ``forecast``; class names make ``binary`` (two)
    or ``multiclass`` (more); float targets are a regression target (the loaders store classes as
    integer indices, so a float ``y`` says the task was decided as regression); integer targets
    follow :func:`task_of_targets`.

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
    if y.dtype.kind == "f":
        return "regression"
    return task_of_targets(y)


def num_classes(data: SequenceSet) -> int:
    """Classes of a classification target: its class names, else the largest label + 1 (at least 2)."""
    if data.class_names:
        return len(data.class_names)
    y = np.asarray(data.y)
    return max(2, int(y.max()) + 1) if y.size else 2
