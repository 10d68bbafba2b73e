"""The callbacks a practitioner expects around ``model.fit``."""

from __future__ import annotations

from pathlib import Path

import keras


def default_callbacks(
    run_dir: Path | None,
    *,
    monitor: str = "val_loss",
    patience: int = 5,
    tensorboard: bool = False,
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
    """
    mode = "max" if any(k in monitor for k in ("auc", "accuracy", "precision", "recall")) else "min"
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=patience, restore_best_weights=True
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
    callbacks += [
        keras.callbacks.BackupAndRestore(str(backup)),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "checkpoints" / "best.keras"),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
        ),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resuming),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard")))
    return callbacks
