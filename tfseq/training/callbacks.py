"""The callbacks a practitioner expects around ``model.fit``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import keras


def default_callbacks(
    run_dir: Path | None,
    *,
    monitor: str = "val_loss",
    patience: int = 5,
    tensorboard: bool = False,
    restore_best: bool = True,
) -> list[keras.callbacks.Callback]:
    """Returns early stopping, learning-rate decay and, given ``run_dir``, the files.

    With ``run_dir``: ``checkpoints/best.keras`` (best epoch so far),
    ``backup/`` (``BackupAndRestore``: a rerun after a crash resumes from the
    last finished epoch; removed when training ends), ``history.csv`` and,
    optionally, ``tensorboard/``.

    Args:
        run_dir: Directory for the files, or None for none.
        monitor: Quantity to monitor, e.g. ``"val_loss"`` or ``"val_auc"``.
        patience: Epochs without improvement before stopping; the learning
            rate halves after ``max(1, patience // 2)`` such epochs.
        tensorboard: Also write TensorBoard logs.
        restore_best: Early stopping puts back the weights of the best epoch when training ends;
            False keeps the last epoch's (training for a number of epochs chosen before).
    """
    mode = "max" if any(k in monitor for k in ("auc", "accuracy", "precision", "recall")) else "min"
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=patience, restore_best_weights=restore_best
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, mode=mode, factor=0.5, patience=max(1, patience // 2), min_lr=1e-5
        ),
    ]
    if run_dir is None:
        return callbacks
    run_dir = Path(run_dir)
    backup = run_dir / "backup"
    resuming = backup.exists()
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    best = run_dir / "checkpoints" / "best.keras"
    checkpoint = keras.callbacks.ModelCheckpoint(str(best), monitor=monitor, mode=mode, save_best_only=True)
    callbacks += [
        keras.callbacks.BackupAndRestore(str(backup)),
        checkpoint,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resuming),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))
    callbacks.append(ResumeState(backup / "callbacks.json", callbacks[0], callbacks[1], checkpoint))
    return callbacks


class ResumeState(keras.callbacks.Callback):
    """Carries early stopping, learning-rate decay and best-checkpoint state across a crash.

    ``BackupAndRestore`` restores weights, optimiser and epoch only; without
    this, a resumed run would forget how long it has waited for an improvement
    and stop later than the run that was not interrupted. Runs after the
    callbacks it restores, which reset themselves when training begins.
    """

    def __init__(
        self,
        path: Path,
        early_stopping: keras.callbacks.EarlyStopping,
        plateau: keras.callbacks.ReduceLROnPlateau,
        checkpoint: keras.callbacks.ModelCheckpoint,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.early_stopping, self.plateau, self.checkpoint = early_stopping, plateau, checkpoint

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self.path.is_file():
            return
        state = json.loads(self.path.read_text())
        es, lr = self.early_stopping, self.plateau
        es.wait, es.best, es.best_epoch = state["es_wait"], _load(state["es_best"]), state["es_best_epoch"]
        lr.wait, lr.best, lr.cooldown_counter = state["lr_wait"], _load(state["lr_best"]), state["lr_cooldown"]
        self.checkpoint.best = _load(state["checkpoint_best"])
        best = Path(self.checkpoint.filepath)
        if es.restore_best_weights and best.is_file():
            es.best_weights = keras.saving.load_model(best, safe_mode=True, compile=False).get_weights()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        from tfseq.io import write_json_atomic

        es, lr = self.early_stopping, self.plateau
        write_json_atomic(self.path, {
            "epoch": epoch, "es_wait": es.wait, "es_best": _dump(es.best), "es_best_epoch": es.best_epoch,
            "lr_wait": lr.wait, "lr_best": _dump(lr.best), "lr_cooldown": lr.cooldown_counter,
            "checkpoint_best": _dump(self.checkpoint.best),
        })


def _dump(value: float | None) -> float | str | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _load(value: float | str | None) -> float | None:
    return float(value) if value is not None else None
