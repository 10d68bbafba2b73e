"""Search objectives: a metric name and whether more or less is better."""

from __future__ import annotations

import math
from typing import Any

from tfseq.errors import InputError

_MAXIMISE = ("auc", "accuracy", "precision", "recall", "f1", "r2")
_MINIMISE = ("loss", "mae", "mse", "rmse", "error")


def parse_objective(objective: str) -> tuple[str, str]:
    """Splits ``"val_auc"`` or ``"val_auc:max"`` into ``(name, "max" | "min")``.

    Without an explicit direction, AUC, accuracy, precision, recall, F1 and R2
    are maximised and losses and errors minimised.

    Raises:
        InputError: for an empty name, an unknown direction or a metric whose
            direction cannot be inferred.
    """
    text = str(objective or "").strip()
    name, _, direction = text.partition(":")
    name, direction = name.strip(), direction.strip().lower()
    if not name:
        raise InputError(f"Received an invalid value for argument objective, expected a metric name such as "
                         f"val_auc or val_loss, got {objective!r}.", arguments=("objective",))
    if direction:
        if direction not in ("max", "min"):
            raise InputError(f"Received an invalid value for argument objective, expected NAME, NAME:max or "
                             f"NAME:min, got {objective!r}.", arguments=("objective",))
        return name, direction
    base = name[4:] if name.startswith("val_") else name
    if any(base == m or base.endswith("_" + m) for m in _MAXIMISE):
        return name, "max"
    if any(base == m or base.endswith("_" + m) for m in _MINIMISE):
        return name, "min"
    raise InputError(f"Received an objective {name!r} whose direction is unknown; expected {name}:max or {name}:min.")


def is_better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "max" else a < b


def best_record(records: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    best = None
    for record in records:
        score = record.get("score")
        if record["status"] != "completed" or score is None or not math.isfinite(score):
            continue
        if best is None or is_better(score, best["score"], direction):
            best = record
    return best
