"""The in-memory form of a data set: padded sequences, targets and their names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from tfseq.errors import InputError


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
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise InputError(
                f"Received an invalid value for argument predict_at, expected a positive integer, got {n!r}."
            )
        return dataclasses.replace(
            self, x=self.x[:, :n], lengths=np.minimum(self.lengths, n).astype(np.int32)
        )
