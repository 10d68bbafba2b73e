"""Fitting the adaptive-test policy: the most test steps saved with bounded escape and scrap rates.

A streaming model gives P(fail) after every step. The policy (:class:`~tfseq.models.policy.AdaptiveTestPolicy`)
stops a device's test early, binning it ``fail`` or ``pass``. Two errors matter, each counted over
all devices: an **escape** is a failing device passed early, a **scrap** a good device failed early.

The promise is a bound, not an estimate: with probability at least ``confidence`` over the draw of
the calibration devices, the chosen policy's true escape rate is at most ``max_escape`` and its scrap
rate at most ``max_scrap``. It is kept with a Learn-then-Test procedure (Angelopoulos et al., 2021)
with fixed-sequence testing:

1. The calibration devices are split at random: 40 % *learn*, 60 % *test*.
2. On *learn*, candidate policies are made from a three-parameter family: at step ``k``, ``t_pass(k)``
   is the ``a``-quantile of the failing devices' P(fail) at ``k`` (from step ``m`` on) and ``t_fail(k)``
   the ``(1 - b)``-quantile of the good devices' (so the thresholds follow how the model's answers
   sharpen with the steps), over grids of ``a``, ``b`` (0: never stop that way; below the lowest level,
   the extreme score moved towards 0 or 1) and ``m``. Each candidate's risk (its one-sided bounds on
   *learn* over the bounds asked) and savings are measured on *learn*, and the candidates are ordered
   from the safest to the riskiest (at equal risk, the least aggressive first), keeping only those that
   save more test than every safer one (the path).
3. On *test*, the candidates are tested in that order for the null hypothesis "escape rate > E or
   scrap rate > S" with the exact binomial p-value ``max(P(Bin(n, E) <= escapes), P(Bin(n, S) <= scraps))``,
   until the first one that cannot be rejected at level ``1 - confidence``. Fixed-sequence testing
   controls the family-wise error at that level, so every rejected candidate meets both bounds
   together; the one that saves the most test steps (or test cost) on *test* is chosen. Its one-sided
   Clopper-Pearson upper bounds on *test* are what the report states.

When no candidate is rejected, the policy never stops early, and the report says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats  # type: ignore[import-untyped]  # no stubs in the lint extra

from tfseq.errors import InputError
from tfseq.models.policy import FAIL, FULL_TEST, PASS, AdaptiveTestPolicy

#: Quantile levels of the two threshold families (0: that kind of early stop is off).
LEVELS: tuple[float, ...] = (0.0, *np.geomspace(1e-4, 0.5, 16).round(6).tolist())
#: Share of the calibration devices that shapes and orders the candidates; the rest bounds them.
LEARN_FRACTION = 0.4
#: Beyond the lowest quantile level: the extreme score moved by these factors towards 0 (pass) or 1 (fail);
#: reported as negative levels.
SHRINK: tuple[float, ...] = (0.5, 0.2, 0.1, 0.03, 0.01)

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


def _quantiles(scores: np.ndarray, level: float, upper: bool, first: int, last: int) -> list[float | None]:
    """Per step, the ``level`` (``upper``: ``1 - level``) quantile of ``scores`` ``[devices, steps]`` (NaN:
    not observed), between 1-based steps ``first`` and ``last``; None elsewhere (never stop there)."""
    steps = scores.shape[1]
    out: list[float | None] = [None] * steps
    if level == 0.0 or len(scores) == 0:
        return out
    with np.errstate(all="ignore"):
        q = np.nanquantile(scores, 1.0 - level if upper else level, axis=0)
    for k in range(first - 1, min(last, steps)):
        if np.isfinite(q[k]):
            # never fail a device under P(fail) 0.5, nor pass one above it
            out[k] = float(max(q[k], 0.5) if upper else min(q[k], 0.5))
    return out


def _first_hits(hit: np.ndarray) -> np.ndarray:
    """``[n, steps]`` booleans -> for each start step ``k`` (column), the first 1-based step ``>= k+1``
    with a hit, or ``steps + 1`` (never)."""
    n, steps = hit.shape
    out = np.empty((n, steps), dtype=np.int32)
    following = np.full(n, steps + 1, dtype=np.int32)
    for k in range(steps - 1, -1, -1):
        following = np.where(hit[:, k], k + 1, following)
        out[:, k] = following
    return out


def _hits(p: np.ndarray, thresholds: list[float | None], upper: bool, observed: np.ndarray) -> np.ndarray:
    t = np.array([np.nan if v is None else v for v in thresholds])
    with np.errstate(invalid="ignore"):
        hit = (p >= t[None, :]) if upper else (p < t[None, :])
    return hit & observed & np.isfinite(t)[None, :]


class _Family:
    """The candidate policies: a fail level ``b``, a pass level ``a`` and the first step ``m`` of early
    passes, with thresholds from the quantiles of the *learn* devices' scores."""

    def __init__(self, p: np.ndarray, y: np.ndarray, observed: np.ndarray, *, early_pass: bool, early_fail: bool,
                 min_step: int) -> None:
        steps = p.shape[1]
        scores = np.where(observed, p, np.nan)
        self.fail_levels = LEVELS if early_fail else (0.0,)
        self.pass_levels = LEVELS if early_pass else (0.0,)
        self.pass_starts = list(range(min_step, steps)) if early_pass else [steps]
        last_early = steps - 1  # the last step is the full test's
        self.t_fail = [_quantiles(scores[y == 0], b, True, min_step, last_early) for b in self.fail_levels]
        self.t_pass = [_quantiles(scores[y == 1], a, False, min_step, last_early) for a in self.pass_levels]
        # beyond the extremes seen on learn: the lowest failing (highest good) score moved towards 0 (1) by
        # SHRINK, for bounds that the learn devices' extremes would still break on new devices
        if early_pass:
            lowest = self.t_pass[self.pass_levels.index(LEVELS[1])]
            for f in SHRINK:
                self.pass_levels = (*self.pass_levels, -f)
                self.t_pass.append([None if t is None else t * f for t in lowest])
        if early_fail:
            highest = self.t_fail[self.fail_levels.index(LEVELS[1])]
            for f in SHRINK:
                self.fail_levels = (*self.fail_levels, -f)
                self.t_fail.append([None if t is None else 1.0 - (1.0 - t) * f for t in highest])

    def size(self) -> int:
        return len(self.fail_levels) * len(self.pass_levels) * len(self.pass_starts)

    def policy(self, index: tuple[int, int, int]) -> AdaptiveTestPolicy:
        b, a, m = index
        start = self.pass_starts[m]
        t_pass = [t if k + 1 >= start else None for k, t in enumerate(self.t_pass[a])]
        return AdaptiveTestPolicy(t_fail=tuple(self.t_fail[b]), t_pass=tuple(t_pass))

    def evaluate(self, p: np.ndarray, y: np.ndarray, last: np.ndarray, costs: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Escapes, scraps and the fraction of test cost saved of every candidate on these devices, as
        arrays ``[fail levels, pass levels, pass starts]`` (the same outcome as replaying each policy)."""
        steps = p.shape[1]
        observed = np.arange(steps)[None, :] < last[:, None]
        first_fail = np.stack([_first_hits(_hits(p, t, True, observed))[:, 0] for t in self.t_fail])  # [B, n]
        starts = np.array(self.pass_starts) - 1
        first_pass = np.stack([_first_hits(_hits(p, t, False, observed))[:, np.minimum(starts, steps - 1)].T
                               for t in self.t_pass])  # [A, M, n]
        if self.pass_starts == [steps]:
            first_pass[:] = steps + 1
        cumulative = np.concatenate([[0.0], np.cumsum(costs)])
        full = cumulative[last]
        failing = y == 1
        shape = (len(self.t_fail), len(self.t_pass), len(self.pass_starts))
        escapes, scraps, saved = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64), np.zeros(shape)
        for b in range(len(self.t_fail)):
            ff = first_fail[b][None, None, :]
            fail = (ff <= first_pass) & (ff <= last)
            passed = (first_pass < ff) & (first_pass <= last)
            decided = np.where(fail, ff, np.where(passed, first_pass, last))
            escapes[b] = (passed & failing).sum(axis=-1)
            scraps[b] = (fail & ~failing).sum(axis=-1)
            saved[b] = (full - cumulative[decided]).sum(axis=-1) / full.sum()
        return escapes, scraps, saved


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
        The policy, whose ``report`` holds the bounds asked, the procedure's figures, the chosen
        candidate, the candidates that met the bounds (``frontier``) and :func:`policy_outcome` on the
        test part (``calibration``).

    Raises:
        InputError: for bounds outside (0, 1), calibration data without a failing (or a good)
            device, or fewer than 20 devices.
    """
    max_escape = check_fraction("max_escape", max_escape)
    max_scrap = check_fraction("max_scrap", max_scrap)
    confidence = check_fraction("confidence", confidence)
    p, y, last = _check(p_fail, y_true, lengths)
    steps = p.shape[1]
    if not isinstance(min_step, (int, np.integer)) or not 1 <= min_step < max(steps, 2):
        raise InputError(f"Received an invalid value for argument min_step, expected 1 to {steps - 1}, "
                         f"got {min_step!r}.", arguments=("min_step",))
    for label, outcome in ((1, "failing"), (0, "good")):
        if not np.any(y == label):
            raise InputError(f"Received calibration data without a {outcome} device; expected labelled devices "
                             "of both outcomes.")
    if len(p) < 20:
        raise InputError(f"Received {len(p)} calibration devices; expected at least 20 (thousands for bounds "
                         "of a fraction of a percent).")
    costs = _costs(step_costs, steps)
    order = np.random.default_rng(seed).permutation(len(p))
    learn, test = order[: round(len(p) * LEARN_FRACTION)], order[round(len(p) * LEARN_FRACTION):]
    observed = np.arange(steps)[None, :] < last[:, None]
    family = _Family(p[learn], y[learn], observed[learn], early_pass=early_pass, early_fail=early_fail,
                     min_step=int(min_step))

    # 1. on learn: each candidate's risk (its one-sided bounds over the bounds asked) and savings
    escapes, scraps, saved = family.evaluate(p[learn], y[learn], last[learn], costs)
    n = len(learn)
    upper = np.vectorize(lambda k: clopper_pearson_upper(int(k), n, confidence), otypes=[float])
    risk = np.maximum(upper(escapes) / max_escape, upper(scraps) / max_scrap)
    indices = [i for i in np.ndindex(*risk.shape) if saved[i] > 0]
    # safest first; among equal risks (e.g. no escape and no scrap on learn) the one that saves least, the
    # least aggressive, first
    indices.sort(key=lambda i: (risk[i], saved[i]))
    # the path tested: from the safest candidate on, each next one saving more on learn (a candidate
    # that is riskier without saving more is not worth a test that could end the sequence)
    path: list[tuple[int, ...]] = []
    for i in indices:
        if not path or saved[i] > saved[path[-1]]:
            path.append(i)

    # 2. on test: fixed-sequence testing along the path, until the first candidate not rejected
    test_escapes, test_scraps, test_saved = family.evaluate(p[test], y[test], last[test], costs)
    delta, n_test = 1.0 - confidence, len(test)
    accepted: list[tuple[int, ...]] = []
    for i in path:
        p_value = max(stats.binom.cdf(test_escapes[i], n_test, max_escape),
                      stats.binom.cdf(test_scraps[i], n_test, max_scrap))
        if p_value > delta:
            break
        accepted.append(i)
    bounds = {"max_escape": max_escape, "max_scrap": max_scrap, "confidence": confidence,
              "early_pass": early_pass, "early_fail": early_fail, "min_step": int(min_step),
              "step_costs": None if step_costs is None else costs.tolist()}
    frontier = [{"steps_saved": float(test_saved[i]),
                 "escape_bound": clopper_pearson_upper(int(test_escapes[i]), n_test, confidence),
                 "scrap_bound": clopper_pearson_upper(int(test_scraps[i]), n_test, confidence)} for i in accepted]
    procedure = {"method": "learn-then-test, fixed-sequence, exact binomial p-values", "seed": seed,
                 "learn_devices": n, "test_devices": n_test, "candidates": family.size(), "path": len(path),
                 "tested": min(len(accepted) + 1, len(path)), "accepted": len(accepted)}
    if not accepted:
        never = AdaptiveTestPolicy.never(steps)
        report: dict[str, Any] = {
            **bounds, "procedure": procedure, "stops_early": False, "frontier": [],
            "calibration": policy_outcome(never, p[test], y[test], lengths=last[test], confidence=confidence,
                                          step_costs=step_costs)}
        return AdaptiveTestPolicy.never(steps, report=report)
    best = max(accepted, key=lambda i: test_saved[i])
    chosen = family.policy((int(best[0]), int(best[1]), int(best[2])))
    report = {**bounds, "procedure": procedure, "stops_early": chosen.stops_early,
              "levels": {"fail_quantile_of_good": family.fail_levels[best[0]],
                         "pass_quantile_of_failing": family.pass_levels[best[1]],
                         "pass_from_step": family.pass_starts[best[2]]},
              "frontier": frontier,
              "calibration": policy_outcome(chosen, p[test], y[test], lengths=last[test],
                                            confidence=confidence, step_costs=step_costs)}
    return AdaptiveTestPolicy(t_fail=chosen.t_fail, t_pass=chosen.t_pass, report=report)
