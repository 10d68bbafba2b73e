"""Group-aware, stratified splits: no sequence lands in two splits."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from tfseq.data.sequences import SequenceSet
from tfseq.errors import InputError


def split_sequences(
    data: SequenceSet,
    fractions: tuple[float, float, float] = (0.64, 0.16, 0.20),
    *,
    seed: int = 0,
    stratify: bool = True,
) -> tuple[SequenceSet, SequenceSet, SequenceSet]:
    """Splits sequences into train, validation and test sets.

    Each sequence (one device) goes to exactly one split. Classification
    targets keep their class proportions in every split (stratified).

    Args:
        data: The sequences.
        fractions: Train, validation and test fractions; they must add to 1.
            The default 64/16/20 is the seed study's split.
        seed: Seed of the shuffle.
        stratify: Stratify by ``data.y`` (classification targets).

    Returns:
        ``(train, validation, test)``; a fraction of 0 gives an empty set.

    Raises:
        InputError: if the fractions are not three non-negative numbers adding to 1.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise InputError(
            f"Received an invalid value for argument fractions, expected three non-negative "
            f"numbers adding to 1, got {fractions!r}."
        )
    index = np.arange(len(data))
    labels = data.y if stratify and data.y is not None else None
    parts = []
    rest, rest_labels, left = index, labels, 1.0
    for fraction in fractions[:2]:
        if fraction == 0:
            parts.append(index[:0])
            continue
        if abs(left - fraction) < 1e-9:
            parts.append(rest)
            rest = rest[:0]
            continue
        take, rest = train_test_split(
            rest, train_size=fraction / left, random_state=seed, stratify=rest_labels
        )
        rest_labels = None if labels is None else labels[rest]
        parts.append(take)
        left -= fraction
    parts.append(rest)
    return tuple(data.subset(np.sort(p)) for p in parts)  # type: ignore[return-value]
