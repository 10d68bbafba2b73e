"""The adaptive-test policy: when a streaming model's answer stops a device's test early.

A policy holds a threshold pair per step ``k`` (1-based). At step ``k`` a device is binned
``fail`` when its probability of failing reaches ``t_fail[k]``, else ``pass`` when the probability
is under ``t_pass[k]``, else testing goes on; a device still undecided after the last step is
``full-test`` (its outcome is the full test's). A threshold of None never stops at that step.
:func:`tfseq.analysis.adaptive_test.fit_policy` fits one with bounded escape and scrap rates; this
module only applies it, so that any runtime (Keras, LiteRT, onnxruntime) can, without TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tfseq.errors import InputError

#: Decision names, in ``decision`` columns and :meth:`AdaptiveTestPolicy.decide`.
FAIL, PASS, FULL_TEST = "fail", "pass", "full-test"
POLICY_FILE = "policy.json"

__all__ = ["AdaptiveTestPolicy", "FAIL", "PASS", "FULL_TEST", "POLICY_FILE", "read_policy"]


def _thresholds(name: str, values: Any, steps: int) -> tuple[float | None, ...]:
    if not isinstance(values, (list, tuple)) or len(values) != steps:
        raise InputError(f"Received {name} of {len(values) if isinstance(values, (list, tuple)) else values!r} "
                         f"values; expected one per step ({steps}).")
    out = []
    for v in values:
        if v is not None and not (isinstance(v, (int, float)) and np.isfinite(v)):
            raise InputError(f"Received {name} value {v!r}; expected a number or null.")
        out.append(None if v is None else float(v))
    return tuple(out)


@dataclass(frozen=True)
class AdaptiveTestPolicy:
    """Per-step thresholds on P(fail) that stop a device's test early.

    Args:
        t_fail: Per step, the probability at or above which the device is binned ``fail``
            (None: never at that step).
        t_pass: Per step, the probability under which the device is binned ``pass``
            (None: never at that step).
        positive_class: Index of the failing class in the model's output.
        report: What fitting measured (bounds, steps saved), kept with the policy.

    Examples:
        >>> policy = AdaptiveTestPolicy(t_fail=(None, 0.9, 0.5), t_pass=(None, 0.01, None))
        >>> policy.replay(np.array([[0.2, 0.95, 0.9], [0.2, 0.005, 0.1], [0.2, 0.3, 0.1]]))[0].tolist()
        ['fail', 'pass', 'full-test']
    """

    t_fail: tuple[float | None, ...]
    t_pass: tuple[float | None, ...]
    positive_class: int = 1
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        steps = len(self.t_fail) if isinstance(self.t_fail, (list, tuple)) else 0
        if steps < 1:
            raise InputError(f"Received t_fail {self.t_fail!r}; expected one threshold (or null) per step.")
        object.__setattr__(self, "t_fail", _thresholds("t_fail", self.t_fail, steps))
        object.__setattr__(self, "t_pass", _thresholds("t_pass", self.t_pass, steps))

    @property
    def steps(self) -> int:
        """Number of steps of the full test."""
        return len(self.t_fail)

    @property
    def stops_early(self) -> bool:
        """Whether the policy ever stops before the last step."""
        return any(t is not None for t in self.t_fail[:-1] + self.t_pass[:-1])

    @classmethod
    def never(cls, steps: int, **kwargs: Any) -> "AdaptiveTestPolicy":
        """A policy that tests every device fully."""
        return cls(t_fail=(None,) * steps, t_pass=(None,) * steps, **kwargs)

    def decide(self, step: int, p_fail: float) -> str | None:
        """The decision at 1-based ``step`` for probability ``p_fail``, or None to test on.

        The last step always decides: ``fail``/``pass`` when a threshold says so, else ``full-test``.
        """
        if not 1 <= step <= self.steps:
            raise InputError(f"Received step {step}; expected 1 to {self.steps}.")
        t_fail, t_pass = self.t_fail[step - 1], self.t_pass[step - 1]
        if t_fail is not None and p_fail >= t_fail:
            return FAIL
        if t_pass is not None and p_fail < t_pass:
            return PASS
        return FULL_TEST if step == self.steps else None

    def replay(self, p_fail: np.ndarray, lengths: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Applies the policy to every device's per-step probabilities at once.

        Args:
            p_fail: ``[devices, steps]`` probabilities of failing after each step.
            lengths: Steps each device was tested for (default: all); a device shorter than the
                policy is ``full-test`` at its last step unless a threshold stopped it before.

        Returns:
            ``(decision, decided_at, probability)``: per device the decision name, its 1-based
            step and the probability at that step.
        """
        p = np.asarray(p_fail, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] < self.steps:
            raise InputError(f"Received probabilities of shape {p.shape}; expected [devices, {self.steps}].")
        p = p[:, : self.steps]
        n = len(p)
        last = np.full(n, self.steps) if lengths is None else np.clip(np.asarray(lengths), 1, self.steps)
        inf = np.inf
        t_fail = np.array([inf if t is None else t for t in self.t_fail])
        t_pass = np.array([-inf if t is None else t for t in self.t_pass])
        valid = np.arange(1, self.steps + 1)[None, :] <= last[:, None]
        fail = (p >= t_fail[None, :]) & valid
        passed = (p < t_pass[None, :]) & ~fail & valid
        stop = fail | passed
        first = np.where(stop.any(axis=1), stop.argmax(axis=1) + 1, last)
        rows = np.arange(n)
        decision = np.where(stop[rows, first - 1], np.where(fail[rows, first - 1], FAIL, PASS), FULL_TEST)
        return decision.astype(object), first.astype(np.int64), p[rows, first - 1]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``policy.json`` and the manifest."""
        config = asdict(self)
        config["t_fail"], config["t_pass"] = list(self.t_fail), list(self.t_pass)
        return {"version": 1, "steps": self.steps, **config}

    @classmethod
    def from_dict(cls, config: Any) -> "AdaptiveTestPolicy":
        """Reads :meth:`to_dict`'s form.

        Raises:
            InputError: for anything else.
        """
        if not isinstance(config, dict) or "t_fail" not in config or "t_pass" not in config:
            raise InputError("Received a policy without t_fail and t_pass; expected policy.json's form.")
        return cls(t_fail=config["t_fail"], t_pass=config["t_pass"],
                   positive_class=int(config.get("positive_class", 1)), report=dict(config.get("report") or {}))


def read_policy(path: Path) -> AdaptiveTestPolicy | None:
    """The policy in ``path`` (a ``policy.json`` or a RUN directory holding one), or None when absent.

    Raises:
        InputError: for a file that is not a policy.
    """
    path = Path(path)
    if path.is_dir():
        path = path / POLICY_FILE
    if not path.exists():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the policy ({exc}).") from None
    try:
        return AdaptiveTestPolicy.from_dict(config)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
