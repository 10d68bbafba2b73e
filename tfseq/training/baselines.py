"""The simple baselines a recurrent model must beat, fitted in seconds on the same split.

``tfseq train`` fits them beside its model and reports them in its summary, ``metrics.json`` and
the plots, so that a model that loses to a random forest on per-sequence summaries says so.

* Classification and regression: per-channel summaries of each sequence's valid steps (mean,
  std, min, max, 10 / 50 / 90 % quantiles and the least-squares slope over the steps, see
  :func:`summary_features`) into a random forest and into a linear model (logistic regression,
  or ridge regression with its penalty chosen by cross-validation), both from scikit-learn.
* Forecasting: the last value of the target repeated over the horizon (when the target is one of
  the window's features) and a ridge autoregression on the flattened window.

These are the baselines of ``benchmarks/realdata.py``, where on real public data sets they beat
``tfseq train``'s defaults on long univariate sequences and on trending series.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfseq.data.sequences import SequenceSet, Task

__all__ = ["Baseline", "summary_features", "fit_baselines", "SUMMARIES"]

#: The per-channel summaries of :func:`summary_features`, in column order within a channel.
SUMMARIES = ("mean", "std", "min", "max", "q10", "q50", "q90", "slope")
#: Trees of the random forests, and the sequences each tree draws at most: a stable baseline in
#: seconds on 2 cores, also for tens of thousands of training sequences. 16,000 demo-shaped
#: sequences with noise added (2 cores): 4,000 draws per tree took 2.2 s against 4.6 s for 10,000,
#: at a validation AUC 0.001-0.003 lower (0.920 against 0.921, 0.796 against 0.799); no set of
#: benchmarks/realdata.py has more training sequences than that, so its baselines are unchanged.
TREES = 100
MAX_TREE_SAMPLES = 4_000


@dataclass
class Baseline:
    """One fitted baseline and its outputs on the evaluation sequences.

    Attributes:
        name: What it is, for people (``random forest on per-sequence summaries``).
        key: A short identifier (``random_forest``, ``linear``, ``last_value``, ``ridge_ar``).
        output: Its outputs in the model's form: P(class 1) ``[n]`` (binary), class probabilities
            ``[n, classes]`` (multiclass), values ``[n]`` or ``[n, horizon]``.
        seconds: Time to fit and predict.
    """

    name: str
    key: str
    output: np.ndarray
    seconds: float


def summary_features(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per-channel summaries of each sequence's valid steps: ``[n, features * len(SUMMARIES)]``.

    Sequences of one length are summarised together (padding sits after the valid steps), which
    keeps this a few vectorised passes: 50,000 sequences x 20 steps x 15 features take well under
    a second, where NumPy's NaN-aware quantiles over a masked array took about a minute.

    Args:
        x: float32 ``[n, steps, features]``, padded after ``lengths``.
        lengths: Valid steps per sequence.
    """
    x = np.asarray(x, dtype=np.float64)
    n, steps, features = x.shape
    lengths = np.clip(np.asarray(lengths).reshape(-1), 1, steps)
    out = np.zeros((n, features, len(SUMMARIES)), dtype=np.float64)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        v = x[rows, :length]  # [rows, length, features]
        t = np.arange(length, dtype=np.float64) - (length - 1) / 2.0
        mean = v.mean(axis=1)
        denominator = float(np.sum(t**2))
        slope = np.einsum("t,rtf->rf", t, v - mean[:, None, :]) / denominator if denominator > 0 \
            else np.zeros_like(mean)
        q10, q50, q90 = np.quantile(v, [0.1, 0.5, 0.9], axis=1)
        out[rows] = np.stack([mean, v.std(axis=1), v.min(axis=1), v.max(axis=1), q10, q50, q90, slope], axis=-1)
    return out.reshape(n, features * len(SUMMARIES)).astype(np.float32)


def _timed_fit(make: Callable[[], Any], x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray,
               predict: str) -> tuple[np.ndarray, float]:
    import time

    started = time.perf_counter()
    estimator = make()
    estimator.fit(x_train, y_train)
    output = getattr(estimator, predict)(x_eval)
    return np.asarray(output), time.perf_counter() - started


def fit_baselines(train: SequenceSet, evaluated: SequenceSet, task: Task, *, seed: int = 0,
                  target_feature: str | None = None) -> list[Baseline]:
    """Fits the simple baselines of ``task`` on ``train`` and answers on ``evaluated``.

    Args:
        train: Training sequences (or forecast windows) with targets.
        evaluated: The sequences to answer on (the validation split).
        task: ``binary``, ``multiclass``, ``regression`` or ``forecast``.
        seed: Seed of the random forests.
        target_feature: For forecasts, the feature holding the target (the last-value baseline
            repeats its last step); None leaves that baseline out.

    Returns:
        One :class:`Baseline` per baseline, in the order above; empty for a classification
        target with a single class in ``train``.
    """
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tfseq.cpus import available_cpus

    assert train.y is not None
    jobs = max(1, available_cpus())
    alphas = np.logspace(-3, 3, 13)
    if task == "forecast":
        horizon = np.asarray(train.y).reshape(len(train), -1).shape[1]
        flat_train = np.asarray(train.x, dtype=np.float64).reshape(len(train), -1)
        flat_eval = np.asarray(evaluated.x, dtype=np.float64).reshape(len(evaluated), -1)
        baselines = []
        if target_feature is not None and target_feature in evaluated.feature_names:
            column = evaluated.feature_names.index(target_feature)
            last = np.repeat(np.asarray(evaluated.x)[:, -1, column:column + 1], horizon, axis=1)
            baselines.append(Baseline("last value of the target", "last_value", last, 0.0))
        output, seconds = _timed_fit(lambda: make_pipeline(StandardScaler(), RidgeCV(alphas=alphas)),
                                     flat_train, np.asarray(train.y, dtype=np.float64), flat_eval, "predict")
        baselines.append(Baseline("ridge autoregression on the window", "ridge_ar", output, seconds))
        return baselines

    features_train = summary_features(train.x, train.lengths)
    features_eval = summary_features(evaluated.x, evaluated.lengths)
    y = np.asarray(train.y).reshape(-1)
    if task == "regression":
        forest, seconds_f = _timed_fit(
            lambda: RandomForestRegressor(n_estimators=TREES, max_samples=min(len(y), MAX_TREE_SAMPLES),
                                          random_state=seed, n_jobs=jobs),
            features_train, y.astype(np.float64), features_eval, "predict")
        linear, seconds_l = _timed_fit(lambda: make_pipeline(StandardScaler(), RidgeCV(alphas=alphas)),
                                       features_train, y.astype(np.float64), features_eval, "predict")
        return [Baseline("random forest on per-sequence summaries", "random_forest", forest, seconds_f),
                Baseline("ridge regression on per-sequence summaries", "linear", linear, seconds_l)]

    classes = int(max(2, len(train.class_names or ()) or int(y.max()) + 1))
    if len(np.unique(y)) < 2:
        return []

    def probabilities(p: np.ndarray, seen: Sequence[int]) -> np.ndarray:
        full = np.zeros((len(p), classes))
        full[:, list(seen)] = p  # classes absent from train get probability 0
        return full[:, 1] if task == "binary" else full

    forest_model = RandomForestClassifier(n_estimators=TREES, max_samples=min(len(y), MAX_TREE_SAMPLES),
                                          random_state=seed, n_jobs=jobs)
    forest, seconds_f = _timed_fit(lambda: forest_model, features_train, y, features_eval, "predict_proba")
    linear_model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    linear, seconds_l = _timed_fit(lambda: linear_model, features_train, y, features_eval, "predict_proba")
    seen = [int(c) for c in forest_model.classes_]
    return [Baseline("random forest on per-sequence summaries", "random_forest", probabilities(forest, seen),
                     seconds_f),
            Baseline("logistic regression on per-sequence summaries", "linear", probabilities(linear, seen),
                     seconds_l)]
