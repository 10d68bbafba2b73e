"""Fitting the adaptive-test policy: the most test steps saved with bounded escape and scrap rates.

A streaming model gives P(fail) after every step. The policy (:class:`~tfseq.models.policy.AdaptiveTestPolicy`)
stops a device's test early, binning it ``fail`` or ``pass``. Two errors matter, each counted over
all devices: an **escape** is a failing device passed early, a **scrap** a good device failed early.

The promise is a bound, not an estimate: with probability at least ``confidence`` over the draw of
the calibration devices, the chosen policy's true escape rate is at most ``max_escape`` and its scrap
rate at most ``max_scrap``. It is kept with a Learn-then-Test procedure (Angelopoulos et al., 2021)
with fixed-sequence testing:

1. The calibration devices are split at random in two halves, *learn* and *test*.
2. On *learn*, candidate policies are made from a two-parameter family: at step ``k``, ``t_pass(k)``
   is the ``a``-quantile of the failing devices' P(fail) at ``k`` and ``t_fail(k)`` the
   ``(1 - b)``-quantile of the good devices' (so the thresholds follow how the model's answers
   sharpen with the steps), over grids of ``a`` and ``b`` (0: never stop that way). Each candidate's
   risk is estimated on *learn*, and the candidates are ordered from the safest to the riskiest,
   keeping only those that save more test than every safer one (the path).
3. On *test*, the candidates are tested in that order for the null hypothesis "escape rate > E or
   scrap rate > S" with the exact binomial p-value ``max(P(Bin(n, E) <= escapes), P(Bin(n, S) <= scraps))``,
   until the first one that cannot be rejected at level ``1 - confidence``. Fixed-sequence testing
   controls the family-wise error at that level, so every rejected candidate meets both bounds
   together; the one that saves the most test steps (or test cost) on *test* is chosen. Its one-sided
   Clopper-Pearson upper bounds on *test* are what the report states.

When no candidate is rejected, the policy never stops early, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats  # type: ignore[import-untyped]  # no stubs in the lint extra

from tfseq.errors import InputError
from tfseq.models.policy import FAIL, FULL_TEST, PASS, AdaptiveTestPolicy

#: Quantile levels of the two threshold families (0: that kind of early stop is off).
LEVELS: tuple[float, ...] = (0.0, *np.geomspace(1e-4, 0.5, 30).round(6).tolist())

__all__ = ["check_fraction", "clopper_pearson_upper", "policy_outcome", "fit_policy", "LEVELS"]


def clopper_pearson_upper(count: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound of a rate with ``count`` events in ``n`` trials."""
    if n <= 0:
        return 1.0
    return 1.0 if count >= n else float(stats.beta.ppf(confidence, count + 1, n - count))


def check_fraction(name: str, value: float) -> float:
    """``value`` as a float in (0, 1).

    Raises:
        InputError: naming ``name`` otherwise.
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < value < 1.0:
        raise InputError(f"Received an invalid value for argument {name}, expected a number in (0, 1), "
                         f"got {value!r}.", arguments=(name,))
    return float(value)


def _check(p_fail: np.ndarray, y_true: np.ndarray, lengths: np.ndarray | None) -> tuple[np.ndarray, ...]:
    p = np.asarray(p_fail, dtype=np.float64)
    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    if p.ndim != 2 or len(p) != len(y):
        raise InputError(f"Received probabilities of shape {p.shape} for {len(y)} labels; expected "
                         "[devices, steps] with one label per device.")
    last = np.full(len(p), p.shape[1]) if lengths is None else np.clip(np.asarray(lengths), 1, p.shape[1])
    return p, y, last.astype(np.int64)


def _costs(step_costs: Any, steps: int) -> np.ndarray:
    if step_costs is None:
        return np.ones(steps)
    costs = np.asarray(step_costs, dtype=np.float64).reshape(-1)
    if len(costs) != steps or not np.all(np.isfinite(costs)) or np.any(costs < 0) or costs.sum() <= 0:
        raise InputError(f"Received step_costs of {len(costs)} values; expected {steps} non-negative numbers "
                         "(one per step), not all zero.", arguments=("step_costs",))
    return costs


def _counts(policy: AdaptiveTestPolicy, p: np.ndarray, y: np.ndarray, last: np.ndarray,
            costs: np.ndarray) -> tuple[int, int, float, np.ndarray, np.ndarray]:
    """``(escapes, scraps, cost saved fraction, decision, decided_at)`` of ``policy`` on devices."""
    decision, decided_at, _ = policy.replay(p, last)
    escapes = int(np.sum((decision == PASS) & (y == 1)))
    scraps = int(np.sum((decision == FAIL) & (y == 0)))
    cumulative = np.concatenate([[0.0], np.cumsum(costs)])
    full = cumulative[last]
    saved = float((full - cumulative[decided_at]).sum() / full.sum())
    return escapes, scraps, saved, decision, decided_at


def policy_outcome(policy: AdaptiveTestPolicy, p_fail: np.ndarray, y_true: np.ndarray, *,
                   lengths: np.ndarray | None = None, confidence: float = 0.95,
                   step_costs: Any = None) -> dict[str, Any]:
    """What ``policy`` does on labelled devices: test saved, escapes and scraps with their bounds.

    Args:
        policy: The policy.
        p_fail: ``[devices, steps]`` P(fail) after each step.
        y_true: 1 for failing devices, 0 for good ones.
        lengths: Steps each device was tested for (default: all).
        confidence: Level of the one-sided Clopper-Pearson upper bounds.
        step_costs: Test cost per step (default: 1 each).

    Returns:
        ``devices``, ``steps_saved`` (fraction of the test steps, or of the cost with
        ``step_costs``), ``escapes`` and ``scraps`` (``count``, ``rate``, ``upper_bound`` over all
        devices), ``decisions`` (count per decision) and ``decided_at`` (devices per step).
    """
    p, y, last = _check(p_fail, y_true, lengths)
    confidence = check_fraction("confidence", confidence)
    escapes, scraps, saved, decision, decided_at = _counts(policy, p, y, last, _costs(step_costs, policy.steps))
    n = len(p)

    def rate(count: int) -> dict[str, Any]:
        return {"count": count, "rate": count / n if n else 0.0,
                "upper_bound": clopper_pearson_upper(count, n, confidence)}

    return {
        "devices": n,
        "steps_saved": saved,
        "escapes": rate(escapes),
        "scraps": rate(scraps),
        "confidence": confidence,
        "decisions": {name: int(np.sum(decision == name)) for name in (FAIL, PASS, FULL_TEST)},
        "decided_at": np.bincount(decided_at, minlength=policy.steps + 1)[1:].tolist(),
    }


@dataclass
class _Candidate:
    a: float
    b: float
    policy: AdaptiveTestPolicy
    risk: float = 0.0
    saved: float = 0.0
    escapes: int = 0
    scraps: int = 0


def _thresholds(scores: np.ndarray, level: float, upper: bool, min_step: int) -> list[float | None]:
    """Per step, the ``level`` (``upper``: ``1 - level``) quantile of ``scores`` ``[devices, steps]``."""
    steps = scores.shape[1]
    if level == 0.0 or len(scores) == 0:
        return [None] * steps
    q = np.quantile(scores, 1.0 - level if upper else level, axis=0, method="linear")
    out: list[float | None] = [float(v) for v in q]
    for k in range(steps):
        if k + 1 < min_step or k == steps - 1:  # the last step is the full test's
            out[k] = None
    if upper:  # fail at or above; never at a probability under 0.5
        out = [None if t is None else max(t, 0.5) for t in out]
    else:  # pass under; never at a probability over 0.5
        out = [None if t is None else min(t, 0.5) for t in out]
    return out


def fit_policy(p_fail: np.ndarray, y_true: np.ndarray, *, max_escape: float, max_scrap: float = 0.01,
               confidence: float = 0.95, lengths: np.ndarray | None = None, early_pass: bool = True,
               early_fail: bool = True, min_step: int = 1, step_costs: Any = None,
               seed: int = 0) -> AdaptiveTestPolicy:
    """Fits the adaptive-test policy that saves the most test with escape and scrap rates bounded.

    See the module's text for the procedure and its guarantee.

    Args:
        p_fail: Calibration devices' ``[devices, steps]`` P(fail) after each step, from a streaming
            model that never saw them in training.
        y_true: 1 for failing devices, 0 for good ones.
        max_escape: Bound on the escape rate (failing devices passed early, over all devices).
        max_scrap: Bound on the scrap rate (good devices failed early, over all devices).
        confidence: Probability that both bounds hold (one-sided, over the calibration draw).
        lengths: Steps each device was tested for (default: all).
        early_pass: Allow early ``pass`` decisions (the only source of escapes).
        early_fail: Allow early ``fail`` decisions (the only source of scraps).
        min_step: First step at which the test may stop.
        step_costs: Test cost per step; the objective is then the cost saved.
        seed: Seed of the learn/test split.

    Returns:
        The policy, whose ``report`` holds the bounds asked, the candidates tested, the chosen
        thresholds' levels and :func:`policy_outcome` on the test half (``calibration``).

    Raises:
        InputError: for bounds outside (0, 1), calibration data without a failing (or a good)
            device, or fewer than 20 devices.
    """
    max_escape = check_fraction("max_escape", max_escape)
    max_scrap = check_fraction("max_scrap", max_scrap)
    confidence = check_fraction("confidence", confidence)
    p, y, last = _check(p_fail, y_true, lengths)
    steps = p.shape[1]
    if not isinstance(min_step, (int, np.integer)) or not 1 <= min_step <= steps:
        raise InputError(f"Received an invalid value for argument min_step, expected 1 to {steps}, got {min_step!r}.",
                         arguments=("min_step",))
    if not np.any(y == 1):
        raise InputError("Received calibration data without a failing device; expected labelled devices of "
                         "both outcomes to bound the escape rate.")
    if not np.any(y == 0):
        raise InputError("Received calibration data without a good device; expected labelled devices of "
                         "both outcomes to bound the scrap rate.")
    if len(p) < 20:
        raise InputError(f"Received {len(p)} calibration devices; expected at least 20 (thousands for bounds "
                         "of a fraction of a percent).")
    costs = _costs(step_costs, steps)
    order = np.random.default_rng(seed).permutation(len(p))
    learn, test = order[: len(p) // 2], order[len(p) // 2:]
    # scores after each device's last step carry no information: mask them out of the quantiles
    observed = np.arange(steps)[None, :] < last[:, None]
    scores = np.where(observed, p, np.nan)
    fails, goods = scores[learn][y[learn] == 1], scores[learn][y[learn] == 0]

    def quantiles(values: np.ndarray, level: float, upper: bool) -> list[float | None]:
        filled = np.where(np.isnan(values), np.nanmedian(values, axis=0, keepdims=True), values)
        return _thresholds(filled, level, upper, min_step)

    candidates = []
    for a in LEVELS if early_pass else (0.0,):
        t_pass = quantiles(fails, a, upper=False)
        for b in LEVELS if early_fail else (0.0,):
            policy = AdaptiveTestPolicy(t_fail=tuple(quantiles(goods, b, upper=True)), t_pass=tuple(t_pass))
            escapes, scraps, saved, _, _ = _counts(policy, p[learn], y[learn], last[learn], costs)
            n = len(learn)
            risk = max(clopper_pearson_upper(escapes, n, confidence) / max_escape,
                       clopper_pearson_upper(scraps, n, confidence) / max_scrap)
            candidates.append(_Candidate(a, b, policy, risk=risk, saved=saved))
    candidates.sort(key=lambda c: (c.risk, -c.saved))
    # the path tested: from the safest candidate on, each next one saving more on learn (a candidate
    # that is riskier without saving more is not worth a test that could end the sequence)
    path: list[_Candidate] = []
    for candidate in candidates:
        if candidate.a == 0.0 and candidate.b == 0.0:
            continue  # the full test: nothing to bound
        if not path or candidate.saved > path[-1].saved:
            path.append(candidate)

    delta, n = 1.0 - confidence, len(test)
    accepted: list[_Candidate] = []
    tested = 0
    for candidate in path:
        escapes, scraps, saved, _, _ = _counts(candidate.policy, p[test], y[test], last[test], costs)
        tested += 1
        p_value = max(stats.binom.cdf(escapes, n, max_escape), stats.binom.cdf(scraps, n, max_scrap))
        if p_value > delta:
            break
        candidate.saved, candidate.escapes, candidate.scraps = saved, escapes, scraps
        accepted.append(candidate)
    bounds = {"max_escape": max_escape, "max_scrap": max_scrap, "confidence": confidence,
              "early_pass": early_pass, "early_fail": early_fail, "min_step": int(min_step),
              "step_costs": None if step_costs is None else costs.tolist()}
    frontier = [{"steps_saved": c.saved, "escape_bound": clopper_pearson_upper(c.escapes, n, confidence),
                 "scrap_bound": clopper_pearson_upper(c.scraps, n, confidence)} for c in accepted]
    procedure = {"method": "learn-then-test, fixed-sequence, exact binomial p-values", "seed": seed,
                 "learn_devices": len(learn), "test_devices": n, "candidates": len(candidates),
                 "path": len(path), "tested": tested, "accepted": len(accepted)}
    if not accepted:
        never = AdaptiveTestPolicy.never(steps)
        report: dict[str, Any] = {**bounds, "procedure": procedure, "stops_early": False, "frontier": [],
                  "calibration": policy_outcome(never, p[test], y[test], lengths=last[test], confidence=confidence,
                                                step_costs=step_costs)}
        return AdaptiveTestPolicy.never(steps, report=report)
    best = max(accepted, key=lambda c: c.saved)
    report = {**bounds, "procedure": procedure, "stops_early": best.policy.stops_early,
              "levels": {"pass_quantile_of_failing": best.a, "fail_quantile_of_good": best.b},
              "frontier": frontier,
              "calibration": policy_outcome(best.policy, p[test], y[test], lengths=last[test],
                                            confidence=confidence, step_costs=step_costs)}
    return AdaptiveTestPolicy(t_fail=best.policy.t_fail, t_pass=best.policy.t_pass, report=report)
