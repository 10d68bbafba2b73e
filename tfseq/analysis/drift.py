"""Drift: is new data still like the data a model was trained on?

:func:`compare_with_reference` compares new sequences (and the model's outputs on them) with the
reference statistics saved at training time (:mod:`tfseq.analysis.reference`):

- **per feature**, on the per-sequence means (independent across devices, unlike the steps of one
  device): the population stability index (PSI) over the reference's decile bins, and the
  two-sample Kolmogorov-Smirnov test (:func:`scipy.stats.ks_2samp`) against the stored sample;
  plus the fraction of step values outside the training range (the reference's [0.1 %, 99.9 %]
  quantiles of the steps, widened by a margin: see :func:`tfseq.analysis.reference.out_of_range`);
- **lengths**: PSI and KS on the sequence lengths, and the fraction outside the training lengths;
- **predictions**: PSI and KS on the monitored score (``p_<class 1>``, the confidence of a
  multiclass model, or the predicted value).

A distribution has drifted when its PSI exceeds ``psi_threshold`` **and** its KS p-value, adjusted
for the number of tests with Holm's step-down method, is below ``alpha``: PSI says the change is
large enough to matter, the test says it is not sampling noise (a small batch of new data has a
noisy PSI). A feature or the lengths have also drifted when more than ``max_out_of_range`` of the
values fall outside the training range. The Holm adjustment is written here (a few lines) because
SciPy has none and statsmodels is not a dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfseq.analysis.reference import (
    RANGE_MARGIN,
    bin_proportions,
    prediction_scores,
    range_bounds,
    sequence_means,
    valid_mask,
)
from tfseq.errors import InputError

#: Default PSI above which a distribution counts as shifted (with a significant KS test).
PSI_THRESHOLD = 0.1
#: Default family-wise significance level of the KS tests (Holm-adjusted over all tests of a run).
ALPHA = 0.01
#: Default largest fraction of values outside the training range before a feature counts as drifted.
MAX_OUT_OF_RANGE = 0.01

__all__ = ["PSI_THRESHOLD", "ALPHA", "MAX_OUT_OF_RANGE", "check_thresholds", "psi", "holm",
           "compare_with_reference"]


def check_thresholds(psi_threshold: float, alpha: float, max_out_of_range: float,
                     range_margin: float = RANGE_MARGIN) -> None:
    """Checks the drift thresholds.

    Raises:
        InputError: naming the argument out of range: ``psi_threshold`` > 0, ``alpha`` in (0, 1),
            ``max_out_of_range`` in [0, 1), ``range_margin`` >= 0.
    """
    checks = (("psi_threshold", psi_threshold, lambda v: v > 0, "a number > 0"),
              ("alpha", alpha, lambda v: 0 < v < 1, "a number in (0, 1)"),
              ("max_out_of_range", max_out_of_range, lambda v: 0 <= v < 1, "a number in [0, 1)"),
              ("range_margin", range_margin, lambda v: v >= 0, "a number >= 0"))
    for name, value, ok, expected in checks:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or not ok(value):
            raise InputError(f"Received an invalid value for argument {name}, expected {expected}, got {value!r}.",
                             arguments=(name,))


def psi(reference_proportions: Sequence[float], values: np.ndarray, cuts: Sequence[float]) -> float:
    """Population stability index of ``values`` against the reference's bin proportions.

    ``sum((new - ref) * ln(new / ref))`` over the bins; both shares get half a count of
    smoothing (an empty bin of a small batch would otherwise weigh infinitely).
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    bins = len(cuts) + 1
    if bins < 2 or not len(values):
        return 0.0
    ref = np.asarray(reference_proportions, dtype=np.float64)
    new = bin_proportions(values, cuts)
    n = len(values)
    new = (new * n + 0.5) / (n + 0.5 * bins)
    ref = (ref + 0.5 / max(n, 1000)) / (1 + 0.5 * bins / max(n, 1000))
    return float(np.sum((new - ref) * np.log(new / ref)))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of ``p_values`` (family-wise error rate)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if not m:
        return p
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def _ks(values: np.ndarray, sample: Sequence[float]) -> tuple[float, float]:
    from scipy.stats import ks_2samp  # type: ignore[import-untyped]  # no stubs in the lint extra

    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    reference = np.asarray(sample, dtype=np.float64)
    if not len(values) or not len(reference):
        return 0.0, 1.0
    result = ks_2samp(values, reference)
    return float(result.statistic), float(result.pvalue)


def _shift(values: np.ndarray, distribution: dict[str, Any]) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    std = distribution.get("std")
    if not len(values) or distribution.get("mean") is None or not std:
        return None
    return float((values.mean() - float(distribution["mean"])) / float(std))


def compare_with_reference(
    reference: dict[str, Any],
    x: np.ndarray,
    lengths: np.ndarray | None,
    feature_names: Sequence[str],
    *,
    output: np.ndarray | None = None,
    psi_threshold: float = PSI_THRESHOLD,
    alpha: float = ALPHA,
    max_out_of_range: float = MAX_OUT_OF_RANGE,
    range_margin: float = RANGE_MARGIN,
) -> dict[str, Any]:
    """The drift report of new sequences ``x`` against ``reference``.

    Args:
        reference: Reference statistics (:func:`tfseq.analysis.reference.compute_reference`).
        x: New raw sequences ``[n, steps, features]``.
        lengths: Their valid steps (None: all steps).
        feature_names: Names of the last axis of ``x``; each must be in the reference.
        output: The model's output on ``x``, for the prediction drift; None skips it.
        psi_threshold: PSI above which a distribution may count as drifted.
        alpha: Family-wise significance level of the KS tests (Holm-adjusted).
        max_out_of_range: Largest fraction of values outside the training range.
        range_margin: Widening of the training range (see :func:`tfseq.analysis.reference.out_of_range`).

    Returns:
        A JSON-able dict: ``drift`` (bool), ``reasons`` (one line per drifted item), ``features``
        (one entry per feature, drifted first, each group by PSI, highest first: ``psi``,
        ``ks_statistic``, ``p_value``, ``p_adjusted``, ``out_of_range``, ``mean_shift_std``,
        ``drift``), ``lengths``, ``prediction`` (or None) and ``thresholds``.

    Raises:
        InputError: for thresholds out of range, or features the reference does not hold.

    Examples:
        >>> report = compare_with_reference(reference, data.x, data.lengths, data.feature_names)  # doctest: +SKIP
        >>> report["drift"], [f["name"] for f in report["features"] if f["drift"]]  # doctest: +SKIP
        (True, ['Idd_leakage'])
    """
    check_thresholds(psi_threshold, alpha, max_out_of_range, range_margin)
    x = np.asarray(x, dtype=np.float64)
    names = [str(n) for n in feature_names]
    if x.ndim != 3 or x.shape[2] != len(names) or not len(x):
        raise InputError(f"Received sequences of shape {x.shape}, expected [n > 0, steps, {len(names)}].",
                         arguments=("x",))
    missing = [n for n in names if n not in reference["features"]]
    if missing:
        raise InputError(f"Received feature {missing[0]!r}, which the reference statistics do not hold.",
                         arguments=("feature_names",))
    lengths = np.full(len(x), x.shape[1]) if lengths is None else np.asarray(lengths)
    mask = valid_mask(lengths, x.shape[1])
    means = sequence_means(x, lengths)
    lows, highs = range_bounds(reference, names, range_margin)

    features: list[dict[str, Any]] = []
    p_values: list[float] = []
    for k, name in enumerate(names):
        ref = reference["features"][name]
        dist = ref["sequence_means"]
        steps = x[:, :, k][mask]
        low, high = float(lows[k]), float(highs[k])
        with np.errstate(invalid="ignore"):
            outside = float(np.mean(~((steps >= low) & (steps <= high)))) if len(steps) else 0.0
        statistic, p = _ks(means[:, k], dist["sample"])
        features.append({"name": name, "psi": psi(dist["proportions"], means[:, k], dist["cuts"]),
                         "ks_statistic": statistic, "p_value": p, "out_of_range": outside,
                         "mean_shift_std": _shift(means[:, k], dist)})
        p_values.append(p)

    ref_lengths = reference["lengths"]
    statistic, p = _ks(lengths, ref_lengths["sample"])
    length_report = {
        "psi": psi(ref_lengths["proportions"], lengths, ref_lengths["cuts"]), "ks_statistic": statistic,
        "p_value": p, "min": int(lengths.min()), "max": int(lengths.max()),
        "reference_min": int(ref_lengths["min"]), "reference_max": int(ref_lengths["max"]),
        "out_of_range": float(np.mean((lengths < int(ref_lengths["min"])) | (lengths > int(ref_lengths["max"])))),
    }
    p_values.append(p)

    prediction = None
    ref_prediction = reference.get("prediction")
    if output is not None and ref_prediction:
        _, scores = prediction_scores(output, str(ref_prediction.get("task", "binary")))
        statistic, p = _ks(scores, ref_prediction["sample"])
        prediction = {"kind": ref_prediction["kind"], "psi": psi(ref_prediction["proportions"], scores,
                                                                 ref_prediction["cuts"]),
                      "ks_statistic": statistic, "p_value": p, "mean": float(np.mean(scores)),
                      "reference_mean": ref_prediction.get("mean"),
                      "quantiles": {q: float(v) for q, v in zip(ref_prediction["quantiles"],
                                                                np.quantile(scores, [float(q) for q in
                                                                                     ref_prediction["quantiles"]]))}}
        p_values.append(p)

    adjusted = holm(p_values)
    reasons = []
    for entry, p_adj in zip(features, adjusted):
        entry["p_adjusted"] = float(p_adj)
        shifted = entry["psi"] > psi_threshold and p_adj < alpha
        entry["drift"] = bool(shifted or entry["out_of_range"] > max_out_of_range)
    features.sort(key=lambda e: (not e["drift"], -e["psi"]))  # drifted first, then by PSI
    for entry in features:
        if entry["drift"]:
            reasons.append(f"feature {entry['name']}: PSI {entry['psi']:.3f}, KS p {entry['p_adjusted']:.2g}, "
                           f"{100 * entry['out_of_range']:.1f} % of steps outside the training range")
    length_report["p_adjusted"] = float(adjusted[len(names)])
    length_report["drift"] = bool((length_report["psi"] > psi_threshold and length_report["p_adjusted"] < alpha)
                                  or length_report["out_of_range"] > max_out_of_range)
    if length_report["drift"]:
        reasons.append(f"lengths: PSI {length_report['psi']:.3f}, KS p {length_report['p_adjusted']:.2g}, "
                       f"{100 * length_report['out_of_range']:.1f} % outside the training lengths "
                       f"{length_report['reference_min']}-{length_report['reference_max']}")
    if prediction is not None:
        prediction["p_adjusted"] = float(adjusted[-1])
        prediction["drift"] = bool(prediction["psi"] > psi_threshold and prediction["p_adjusted"] < alpha)
        if prediction["drift"]:
            reasons.append(f"predictions ({prediction['kind']}): PSI {prediction['psi']:.3f}, "
                           f"KS p {prediction['p_adjusted']:.2g}")
    return {
        "drift": bool(reasons), "reasons": reasons, "sequences": int(len(x)),
        "reference_sequences": int(reference.get("sequences", 0)),
        "thresholds": {"psi_threshold": psi_threshold, "alpha": alpha, "max_out_of_range": max_out_of_range,
                       "range_margin": range_margin, "correction": "holm", "tests": len(p_values)},
        "features": features, "lengths": length_report, "prediction": prediction,
    }
