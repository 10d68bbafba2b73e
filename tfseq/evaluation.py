"""Metrics and latency figures shared by ``evaluate``, the demo and export checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn import metrics as skm

if TYPE_CHECKING:  # Keras is imported where it is used
    import keras


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, *, threshold: float = 0.5
) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, AUC and the confusion matrix.

    Args:
        y_true: Class indices ``[n]``.
        probabilities: ``[n]`` or ``[n, 1]`` probability of class 1 (binary),
            or ``[n, classes]`` (multiclass).
        threshold: Decision threshold of a binary model.

    Returns:
        A JSON-serialisable dict; binary precision and recall are those of
        class 1 (the failing devices), multiclass ones are macro averages.
    """
    y_true = np.asarray(y_true).reshape(-1).astype(int)
    p = np.asarray(probabilities, dtype=np.float64)
    binary = p.ndim == 1 or p.shape[-1] == 1
    if binary:
        p = p.reshape(-1)
        y_pred = (p >= threshold).astype(int)
        labels = [0, 1]
        average = "binary"
    else:
        y_pred = p.argmax(axis=-1)
        labels = list(range(p.shape[-1]))
        average = "macro"
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=None if binary else labels, average=average, zero_division=0
    )
    result: dict[str, Any] = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if len(np.unique(y_true)) > 1:
        result["auc"] = float(
            skm.roc_auc_score(y_true, p) if binary
            else skm.roc_auc_score(y_true, p, multi_class="ovr", labels=labels)
        )
    if binary:
        result["threshold"] = float(threshold)
    return result


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R^2 over all values."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    predicted = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
    return {
        "mae": float(skm.mean_absolute_error(y_true, predicted)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, predicted))),
        "r2": float(skm.r2_score(y_true, predicted)),
    }


#: The study's early-warning targets: the earliest step meeting all of them is reported.
EARLY_WARNING_TARGETS: dict[str, float] = {"accuracy": 0.85, "recall": 0.90, "precision": 0.80}


def last_step_output(output: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """A streaming model's answer at each sequence's last step: ``[n, steps, k]`` in, ``[n, k]`` out.

    ``lengths`` (steps per sequence) picks the last real step of shorter, padded sequences; an
    output of one answer per sequence is returned as it is.
    """
    output = np.asarray(output)
    if output.ndim != 3:
        return output
    last = np.full(len(output), output.shape[1]) if lengths is None else np.clip(lengths, 1, output.shape[1])
    return output[np.arange(len(output)), np.asarray(last, dtype=np.int64) - 1]


def per_step_metrics(task: str, y_true: np.ndarray, output: np.ndarray, lengths: np.ndarray | None = None,
                     *, threshold: float = 0.5) -> list[dict[str, Any]]:
    """A streaming model's metrics after every step, over the sequences that reached it.

    Args:
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: Targets per sequence ``[n]``.
        output: Per-step outputs ``[n, steps, k]``.
        lengths: Steps per sequence (default: all).
        threshold: Decision threshold of a binary model.

    Returns:
        One dict per step: ``step`` (1-based), ``sequences`` and the metrics of
        :func:`classification_metrics` (without the confusion matrix) or :func:`regression_metrics`.
    """
    output = np.asarray(output)
    n, steps = output.shape[:2]
    lengths = np.full(n, steps) if lengths is None else np.asarray(lengths)
    y_true = np.asarray(y_true)
    rows: list[dict[str, Any]] = []
    for k in range(steps):
        reached = lengths > k
        if not reached.any():
            break
        if task in ("binary", "multiclass"):
            figures = classification_metrics(y_true[reached], output[reached, k], threshold=threshold)
            figures.pop("confusion_matrix")
        else:
            figures = regression_metrics(y_true[reached], output[reached, k])
        rows.append({"step": k + 1, "sequences": int(reached.sum()), **figures})
    return rows


def earliest_step(rows: list[dict[str, Any]], targets: dict[str, float]) -> int | None:
    """The first step of :func:`per_step_metrics` whose metrics all reach ``targets`` (None: none does)."""
    for row in rows:
        if all(row.get(name, -np.inf) >= value for name, value in targets.items()):
            return int(row["step"])
    return None


def scaled_errors(x: np.ndarray, y_true: np.ndarray, predicted: np.ndarray, target: int,
                  season: int | None = None) -> dict[str, float]:
    """Forecast errors scaled by naive forecasts, as forecasting practice reports them (MASE).

    Each scale is the mean absolute error of a naive one-step forecast within the input windows'
    own history of the target (feature ``target`` of ``x``): the last value (``y[t-1]``) and, with
    ``season``, the seasonal naive (``y[t-season]``). A MASE under 1 beats that naive forecast made
    in-sample; the model's MAE is over every horizon of every window.

    Args:
        x: Input windows ``[n, window, features]``.
        y_true: Targets ``[n, horizon]``.
        predicted: Forecasts ``[n, horizon]``.
        target: Index of the target among the features.
        season: Season length in steps (e.g. 12 for monthly data); needs ``window > season``.

    Returns:
        ``mase_last_value`` and, with ``season``, ``mase_seasonal``; a scale of 0 (a constant
        history) leaves its figure out.
    """
    history = np.asarray(x, dtype=np.float64)[:, :, target]
    mae = float(np.mean(np.abs(np.asarray(y_true, dtype=np.float64).reshape(len(history), -1)
                               - np.asarray(predicted, dtype=np.float64).reshape(len(history), -1))))
    result: dict[str, float] = {}
    scales = {"mase_last_value": 1}
    if season is not None and history.shape[1] > season:
        scales["mase_seasonal"] = season
    for name, lag in scales.items():
        scale = float(np.mean(np.abs(history[:, lag:] - history[:, :-lag]))) if history.shape[1] > lag else 0.0
        if scale > 0:
            result[name] = mae / scale
    return result


def latency(
    predict_batch: Callable[[np.ndarray], Any], x: np.ndarray, *, batch_size: int = 1024, single_calls: int = 200
) -> dict[str, float]:
    """Times a prediction function batched and one sequence at a time.

    Args:
        predict_batch: Callable taking a float32 ``[b, steps, features]`` array.
        x: Sequences to run.
        batch_size: Batch of the batched measurement.
        single_calls: Number of batch-1 calls (after 20 warm-up calls).

    Returns:
        ``batched_us_per_sequence``, ``single_p50_us`` and ``single_p99_us``.
    """
    x = np.asarray(x, dtype=np.float32)
    batch = x[:batch_size]
    predict_batch(batch)
    start = time.perf_counter()
    done = 0
    while done < 2 * len(batch) or time.perf_counter() - start < 0.5:
        predict_batch(batch)
        done += len(batch)
    batched = (time.perf_counter() - start) / done * 1e6
    one = x[:1]
    for _ in range(20):
        predict_batch(one)
    times = []
    for i in range(single_calls):
        sample = x[i % len(x)][None]
        t0 = time.perf_counter()
        predict_batch(sample)
        times.append(time.perf_counter() - t0)
    times_us = np.array(times) * 1e6
    return {
        "batched_us_per_sequence": float(batched),
        "single_p50_us": float(np.percentile(times_us, 50)),
        "single_p99_us": float(np.percentile(times_us, 99)),
    }


def keras_predict_function(model: keras.Model) -> Callable[[np.ndarray], Any]:
    """A traced ``model(x, training=False)`` for timing and serving Keras models in-process.

    In-process, LSTM layers may run the fused op (:func:`tfseq.models.recurrent.fused_inference`):
    this graph is never saved.
    """
    import tensorflow as tf

    from tfseq.models.recurrent import fused_inference

    def call(x: Any) -> Any:
        with fused_inference():
            return model(x, training=False)

    fn = tf.function(call, reduce_retracing=True)
    return lambda x: tf.nest.map_structure(lambda t: t.numpy(), fn(tf.constant(x)))
