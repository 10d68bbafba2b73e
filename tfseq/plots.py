"""PNG plots: training curves, confusion matrices and architecture comparisons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # matplotlib is imported where it is used
    from matplotlib.figure import Figure


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_training_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], path: Path) -> Path:
    """Loss (train dashed, validation solid) and the first validation metric per model, by epoch."""
    plt = _pyplot()
    metric = next(
        (m for m in ("val_accuracy", "val_auc", "val_mae") if all(m in h for h in histories.values())),
        None,
    )
    fig, axes = plt.subplots(1, 2 if metric else 1, figsize=(11 if metric else 6, 4), squeeze=False)
    for k, (name, history) in enumerate(histories.items()):
        color = f"C{k}"
        epochs = np.arange(1, len(history["loss"]) + 1)
        axes[0, 0].plot(epochs, history["loss"], "--", color=color, alpha=0.6)
        if "val_loss" in history:
            axes[0, 0].plot(epochs, history["val_loss"], color=color, label=name)
        if metric:
            axes[0, 1].plot(epochs, history[metric], color=color, label=name)
    axes[0, 0].set(title="Loss (dashed: train, solid: validation)", xlabel="epoch", ylabel="loss")
    axes[0, 0].legend()
    if metric:
        axes[0, 1].set(title=metric.replace("_", " "), xlabel="epoch")
        axes[0, 1].legend()
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion_matrices(
    matrices: Mapping[str, Sequence[Sequence[int]]], class_names: Sequence[str], path: Path
) -> Path:
    """One confusion matrix per model, counts and row percentages in each cell."""
    plt = _pyplot()
    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    for ax, (name, matrix) in zip(axes.flat, matrices.items()):
        m = np.asarray(matrix)
        rows = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m[i, j]:,}\n{rows[i, j]:.1%}", ha="center", va="center",
                        color="white" if rows[i, j] > 0.5 else "black", fontsize=9)
        ticks = range(len(class_names))
        ax.set_xticks(ticks, class_names)
        ax.set_yticks(ticks, class_names)
        ax.set(title=name, xlabel="predicted", ylabel="true")
    return _save(fig, path)


def plot_comparison(
    names: Sequence[str], panels: Mapping[str, Sequence[float]], path: Path
) -> Path:
    """One bar chart per panel (e.g. accuracy at cycle 15, latency), models side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (title, values) in zip(axes.flat, panels.items()):
        bars = ax.bar(names, values, color=[f"C{k}" for k in range(len(names))])
        ax.bar_label(bars, fmt=lambda v: f"{v:,.0f}" if v >= 100 else f"{v:.3g}", fontsize=8)
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=20)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_per_step(rows: Sequence[Mapping[str, float]], path: Path, *,
                  targets: Mapping[str, float] | None = None, earliest: int | None = None) -> Path:
    """A streaming model's metrics against the step (:func:`tfseq.evaluation.per_step_metrics`)."""
    plt = _pyplot()
    steps = [int(r["step"]) for r in rows]
    names = [m for m in ("accuracy", "precision", "recall", "auc", "rmse", "mae") if rows and m in rows[0]]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, name in enumerate(names):
        ax.plot(steps, [r.get(name, np.nan) for r in rows], marker=".", color=f"C{k}", label=name)
        if targets and name in targets:
            ax.axhline(targets[name], linestyle=":", color=f"C{k}", alpha=0.7)
    if earliest is not None:
        ax.axvline(earliest, color="grey", linestyle="--", label=f"targets met at step {earliest}")
    ax.set(title="Metrics after each step (dotted: targets)", xlabel="step (cycle)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_policy(frontier: Sequence[Mapping[str, float]], chosen: Mapping[str, float] | None,
                decided_at: Sequence[int], path: Path, *, max_escape: float) -> Path:
    """The adaptive-test policy: test saved against the escape bound of every candidate that met the
    bounds (the chosen one marked), and how many devices were decided at each step."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    if frontier:
        ax.plot([100 * f["escape_bound"] for f in frontier], [100 * f["steps_saved"] for f in frontier], "o-",
                color="C0", label="policies meeting the bounds")
    if chosen:
        ax.plot(100 * chosen["escape_bound"], 100 * chosen["steps_saved"], "*", color="C3", markersize=14,
                label="chosen")
    ax.axvline(100 * max_escape, linestyle=":", color="grey", label=f"max escape {100 * max_escape:.3g} %")
    ax.set(title="Test saved against the escape bound", xlabel="escape rate, upper bound (% of devices)",
           ylabel="test steps saved (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    steps = np.arange(1, len(decided_at) + 1)
    axes[1].bar(steps, decided_at, color="C2")
    axes[1].set(title="Devices decided at each step", xlabel="step (cycle)", ylabel="devices")
    axes[1].grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_roc_curve(y_true: npt.ArrayLike, probabilities: npt.ArrayLike, path: Path,
                   *, threshold: float | None = None) -> Path:
    """ROC curve of a binary classifier (class 1 positive), AUC in the title, the threshold marked."""
    from sklearn import metrics as skm

    plt = _pyplot()
    y, p = np.asarray(y_true).reshape(-1), np.asarray(probabilities, dtype=np.float64).reshape(-1)
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot(fpr, tpr, color="C0", label=f"AUC {skm.auc(fpr, tpr):.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    if threshold is not None:
        k = int(np.argmin(np.abs(thresholds - threshold)))
        ax.plot(fpr[k], tpr[k], "o", color="C3", label=f"threshold {threshold:.3g}")
    ax.set(title="ROC curve", xlabel="false positive rate", ylabel="true positive rate (recall)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_pr_curve(y_true: npt.ArrayLike, probabilities: npt.ArrayLike, path: Path,
                  *, threshold: float | None = None) -> Path:
    """Precision-recall curve of a binary classifier, average precision in the title, the threshold marked."""
    from sklearn import metrics as skm

    plt = _pyplot()
    y, p = np.asarray(y_true).reshape(-1), np.asarray(probabilities, dtype=np.float64).reshape(-1)
    precision, recall, thresholds = skm.precision_recall_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot(recall, precision, color="C0", label=f"AP {skm.average_precision_score(y, p):.3f}")
    ax.axhline(y.mean(), linestyle=":", color="grey")
    if threshold is not None and len(thresholds):
        k = int(np.argmin(np.abs(thresholds - threshold)))
        ax.plot(recall[k], precision[k], "o", color="C3", label=f"threshold {threshold:.3g}")
    ax.set(title="Precision-recall curve", xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return _save(fig, path)
