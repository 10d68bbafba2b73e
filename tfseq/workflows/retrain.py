"""Retrain a search's best trial on train + validation into a RUN directory for ``tfseq export``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from tfseq.data.sequences import SequenceSet, Task, infer_task
from tfseq.data.streamed import StreamedData
from tfseq.errors import InputError
from tfseq.tuning.results import TuningResult


def retrain(
    result: TuningResult,
    train: SequenceSet,
    validation: SequenceSet | None,
    out: Path,
    *,
    id_col: str | None = "id",
    time_col: str = "time",
    label_col: str | None = None,
    task: Task | None = None,
    predict_at: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
    verbose: int | str = 0,
    streamed: StreamedData | None = None,
) -> dict[str, Any]:
    """Trains the best spec on train + validation and writes a RUN directory for ``tfseq export``.

    With ``streamed`` (an out-of-core search) the RUN trains out of core on every sequence of the
    dataset, scanned again without a validation split.

    Training runs for the epoch count at which the best trial scored best
    (there is no held-out data left to stop on).

    A RUN that this search's best trial was already retrained into is kept, not trained
    again (``skipped`` is then true in the result), so re-running a ``tune --retrain`` whose
    retraining finished costs nothing.

    Returns:
        The RUN's ``metrics.json`` content plus ``run_dir`` and ``skipped``.

    Raises:
        InputError: if the search has no finished trial, or ``out`` exists (and
            is not this search's retrained best trial) and ``overwrite`` is false.
    """
    if result.best_spec is None:
        raise InputError(f"{result.directory}: no trial has finished yet; nothing to retrain.")
    from tfseq.workflows.train import train_run

    done = _retrained_before(Path(out), result)
    if done is not None and not overwrite:
        return done

    task = task or infer_task(train)
    both = train
    if validation is not None and len(validation):
        both = dataclasses.replace(
            train, x=np.concatenate([train.x, validation.x]), y=np.concatenate([train.y, validation.y]),
            ids=np.concatenate([train.ids, validation.ids]),
            lengths=np.concatenate([train.lengths, validation.lengths]),
        )
    epochs = max(1, int(result.best_epoch or 1))
    if streamed is not None:
        from tfseq.data.streamed import whole

        streamed = whole(streamed)
    run = train_run(
        both, None, task, Path(out), id_col=id_col, time_col=time_col, label_col=label_col,
        spec_overrides=result.best_spec.get_config(), epochs=epochs,
        batch_size=int(result.best_values.get("batch_size", 64)), patience=epochs, seed=seed,
        predict_at=predict_at, overwrite=overwrite,
        extra={"tuned_in": str(result.directory), "tuned_trial": result.best_trial, **(extra or {})},
        verbose=verbose, streamed=streamed,
    )
    return {**run, "skipped": False}


def check_retrain_target(out: Path, search_dir: Path, *, overwrite: bool) -> None:
    """Checks, before a search starts, that its best trial may be retrained into ``out``.

    ``out`` may be new, or a RUN retrained from this search before (:func:`retrain` keeps it if it
    is the best trial's, or trains it again).

    Raises:
        InputError: if ``out`` exists, is not a RUN retrained from the search in ``search_dir``,
            and ``overwrite`` is false.
    """
    out = Path(out)
    if not out.exists() or overwrite:
        return
    try:
        contract = json.loads((out / "contract.json").read_text())
    except (OSError, ValueError):
        contract = None
    if not (isinstance(contract, dict) and (contract.get("extra") or {}).get("tuned_in") == str(search_dir)):
        raise InputError(f"{out}: already exists; choose another retrain directory or set overwrite.",
                         arguments=("retrain", "overwrite"))


def _retrained_before(out: Path, result: TuningResult) -> dict[str, Any] | None:
    """The metrics of ``out`` if it is a whole RUN retrained from ``result``'s best trial."""
    from tfseq.run import read_contract

    if not (out / "model.keras").is_file() or not (out / "metrics.json").is_file():
        return None
    try:
        extra = read_contract(out).extra
        metrics = json.loads((out / "metrics.json").read_text())
    except (InputError, ValueError, OSError):
        return None
    if extra.get("tuned_in") != str(result.directory) or extra.get("tuned_trial") != result.best_trial:
        return None
    return {**metrics, "run_dir": out, "skipped": True}


