"""Permutation importance: how much a model's answers depend on each feature and each window of steps.

The model-agnostic cross-check of :func:`tfseq.analysis.explain.integrated_gradients`: it only
needs a ``predict`` function, so it runs through any artifact (``tfseq.export.load_runner``), and
it measures importance as the drop of the task metric (AUC, accuracy, RMSE with labels; the mean
absolute change of the output without) when a feature's values, or every feature over a window of
steps, are given to other sequences. Only steps valid in both sequences change: padding stays
padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tfseq.analysis.explain import valid_steps
from tfseq.checks import positive_int
from tfseq.errors import InputError

__all__ = ["PermutationImportance", "permutation_importance", "plot_permutation_importance"]


class PermutationImportance(NamedTuple):
    """What :func:`permutation_importance` measured.

    Attributes:
        metric: ``auc``, ``accuracy`` or ``rmse`` (with labels) or ``mean_abs_change`` (without).
        score: The metric on the data as they are (None for ``mean_abs_change``).
        features: Mean importance per feature over the repeats: the drop in AUC or accuracy,
            the rise in RMSE, or the mean absolute change of the output.
        features_std: Its standard deviation over the repeats.
        windows: ``(first, last)`` step of each window, 1-based and inclusive.
        window_importance: Mean importance per window (every feature shuffled there together).
        window_std: Its standard deviation over the repeats.
    """

    metric: str
    score: float | None
    features: np.ndarray
    features_std: np.ndarray
    windows: list[tuple[int, int]]
    window_importance: np.ndarray
    window_std: np.ndarray


def _metric(task: str, y: np.ndarray | None) -> str:
    if y is None:
        return "mean_abs_change"
    if task == "binary":
        return "auc" if len(np.unique(y)) == 2 else "mean_abs_change"
    if task == "multiclass":
        return "accuracy"
    return "rmse"


def _score(metric: str, y: np.ndarray, out: np.ndarray) -> float:
    if metric == "auc":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y.reshape(-1), out[:, -1]))
    if metric == "accuracy":
        return float(np.mean(out.argmax(axis=1) == y.reshape(-1)))
    return float(np.sqrt(np.mean((out[:, -1].astype(np.float64) - y.reshape(-1)) ** 2)))


def _as_columns(out: np.ndarray) -> np.ndarray:
    out = np.asarray(out, dtype=np.float64)
    if out.ndim == 3:
        out = out[:, -1, :]
    return out.reshape(len(out), -1)


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    *,
    task: str,
    y: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    window: int | None = None,
    repeats: int = 3,
    seed: int = 0,
    progress: bool = False,
) -> PermutationImportance:
    """Permutation importance per feature and per window of steps, through any model.

    A feature is permuted by giving each sequence another sequence's values of that feature at
    every step (one random permutation of the sequences per repeat); a window by giving each
    sequence another's values of every feature at the window's steps. Only steps valid in both
    sequences change, so padding stays padding.

    Args:
        predict: float32 ``[n, steps, features]`` -> the head's output (``[n, outputs]``; a
            streaming head's ``[n, steps, outputs]`` counts at its last step), e.g.
            ``tfseq.export.load_runner(artifact).predict`` followed by picking the head.
        x: float32 ``[sequences, steps, features]``.
        task: ``binary``, ``multiclass`` or ``regression``.
        y: Targets (class indices or values); None scores the mean absolute change of the output.
        valid: Boolean ``[sequences, steps]``, False on padding (default: every step).
        window: Steps per window (default ``max(1, steps // 10)``).
        repeats: Permutations per feature and per window.
        seed: Seed of the permutations.
        progress: Show a progress bar on a terminal.

    Returns:
        The metric, its value on ``x`` and the importances (see :class:`PermutationImportance`).

    Raises:
        InputError: for non-positive ``window`` or ``repeats``, or fewer than 2 sequences.
    """
    from tqdm.auto import tqdm

    repeats = positive_int("repeats", repeats)
    x = np.asarray(x, dtype=np.float32)
    n, steps, features = x.shape
    if n < 2:
        raise InputError(f"Received {n} sequence(s); expected at least 2 to permute.", arguments=("x",))
    window = positive_int("window", window if window is not None else max(1, steps // 10))
    valid = valid_steps(None, n, steps) if valid is None else np.asarray(valid, dtype=bool)
    metric = _metric(task, y)
    reference = _as_columns(predict(x))
    score = None if metric == "mean_abs_change" else _score(metric, np.asarray(y), reference)

    def importance(permuted: np.ndarray) -> float:
        out = _as_columns(predict(permuted))
        if metric == "mean_abs_change":
            return float(np.mean(np.abs(out - reference)))
        value = _score(metric, np.asarray(y), out)
        assert score is not None  # set above for every metric but mean_abs_change
        return value - score if metric == "rmse" else score - value

    windows = [(s, min(s + window, steps)) for s in range(0, steps, window)]
    rng = np.random.default_rng(seed)
    by_feature = np.zeros((repeats, features))
    by_window = np.zeros((repeats, len(windows)))
    with tqdm(total=repeats * (features + len(windows)), desc="permutation importance", unit="shuffle",
              disable=None if progress else True, leave=False) as bar:
        for r in range(repeats):
            order = rng.permutation(n)
            both = valid & valid[order]
            for f in range(features):
                permuted = x.copy()
                permuted[:, :, f] = np.where(both, x[order, :, f], x[:, :, f])
                by_feature[r, f] = importance(permuted)
                bar.update()
            for w, (first, end) in enumerate(windows):
                permuted = x.copy()
                cells = both[:, first:end, None]
                permuted[:, first:end] = np.where(cells, x[order, first:end], x[:, first:end])
                by_window[r, w] = importance(permuted)
                bar.update()
    return PermutationImportance(
        metric, score, by_feature.mean(axis=0), by_feature.std(axis=0),
        [(first + 1, end) for first, end in windows], by_window.mean(axis=0), by_window.std(axis=0),
    )


def plot_permutation_importance(result: PermutationImportance, feature_names: Sequence[str], path: Path) -> Path:
    """Bar charts of permutation importance per feature (largest first) and per window of steps."""
    from tfseq.plots import _pyplot, _save

    plt = _pyplot()
    order = np.argsort(-result.features, kind="stable")
    label = {"auc": "drop in AUC", "accuracy": "drop in accuracy", "rmse": "rise in RMSE",
             "mean_abs_change": "mean |change of output|"}[result.metric]
    fig, axes = plt.subplots(1, 2, figsize=(11, max(3.6, 0.3 * len(order) + 1)))
    axes[0].barh([feature_names[i] for i in order][::-1], result.features[order][::-1],
                 xerr=result.features_std[order][::-1], color="C0")
    axes[0].set(title="Per feature", xlabel=label)
    names = [f"{a}" if a == b else f"{a}-{b}" for a, b in result.windows]
    axes[1].bar(names, result.window_importance, yerr=result.window_std, color="C1")
    axes[1].set(title="Per window of steps", xlabel="steps", ylabel=label)
    axes[1].tick_params(axis="x", rotation=45)
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, path)
