"""The synthetic semiconductor data set of the classic RNN/LSTM/GRU study.

Devices are measured over test cycles on 15 parametric tests around their
nominal values. Failing devices drift, quadratically accelerating, in the
direction the study gives for each parameter (Vdd, Idd and frequency drop;
temperature, leakage and jitter rise ...). Unlike the study's notebook, every
device also carries a process offset and measurement noise proportional to
each parameter's drift scale, so no single cycle gives a failing device away:
a model has to see the trend.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tfseq.data.sequences import SequenceSet
from tfseq.errors import InputError

#: (name, nominal value, drift at the last cycle for a failing device of severity 1)
PARAMETERS: tuple[tuple[str, float, float], ...] = (
    ("Vdd_voltage", 1.05, -0.01),  # V
    ("Idd_current", 250.0, -2.0),  # mA
    ("Frequency", 2.4, -0.05),  # GHz
    ("Power", 0.6, -0.02),  # W
    ("Temperature", 75.0, 2.0),  # C
    ("Leakage_current", 10.0, 1.5),  # uA
    ("Rise_time", 50.0, 3.0),  # ps
    ("Fall_time", 50.0, 3.0),  # ps
    ("Setup_time", 100.0, -5.0),  # ps
    ("Hold_time", 100.0, -5.0),  # ps
    ("Jitter", 20.0, 2.0),  # ps
    ("Phase_noise", -80.0, 5.0),  # dBc/Hz
    ("THD", 1.0, 0.5),  # %
    ("SNR", 40.0, -2.0),  # dB
    ("BER", -9.0, 0.5),  # log10
)
FEATURE_NAMES: list[str] = [p[0] for p in PARAMETERS]
CLASS_NAMES: list[str] = ["pass", "fail"]


def make_semiconductor_data(
    n_devices: int = 50_000,
    n_cycles: int = 20,
    *,
    fail_rate: float = 0.20,
    noise: float = 0.25,
    process_variation: float = 0.5,
    seed: int = 0,
) -> SequenceSet:
    """Generates parametric test sequences of passing and failing devices.

    Args:
        n_devices: Number of devices (sequences).
        n_cycles: Test cycles per device (steps).
        fail_rate: Fraction of failing devices.
        noise: Measurement noise, as a fraction of each parameter's drift scale.
        process_variation: Device-to-device offset, as a fraction of the drift scale.
        seed: Seed of the generator; the same seed gives the same data.

    Returns:
        A :class:`SequenceSet` with float32 ``x`` of shape
        ``[n_devices, n_cycles, 15]``, ``y`` 1 for failing devices, ids such
        as ``D000042`` and class names ``["pass", "fail"]``.

    Raises:
        InputError: for a non-positive size or a fail rate outside (0, 1).

    Examples:
        >>> data = make_semiconductor_data(1000, seed=1)
        >>> data.x.shape
        (1000, 20, 15)
    """
    for name, value in (("n_devices", n_devices), ("n_cycles", n_cycles)):
        if not isinstance(value, (int, np.integer)) or value < 2:
            raise InputError(
                f"Received an invalid value for argument {name}, expected an integer >= 2, got {value!r}."
            )
    if not 0.0 < fail_rate < 1.0:
        raise InputError(
            f"Received an invalid value for argument fail_rate, expected a number in (0, 1), got {fail_rate!r}."
        )
    rng = np.random.default_rng(seed)
    nominal = np.array([p[1] for p in PARAMETERS])
    drift = np.array([p[2] for p in PARAMETERS])
    scale = np.abs(drift)

    fails = rng.permutation(n_devices) < round(n_devices * fail_rate)
    offset = rng.normal(0.0, process_variation, (n_devices, 1, len(nominal))) * scale
    measurement = rng.normal(0.0, noise, (n_devices, n_cycles, len(nominal))) * scale
    severity = np.where(fails, rng.uniform(0.3, 1.5, n_devices), 0.0)
    progress = (np.arange(n_cycles) / n_cycles) ** 2  # quadratic acceleration
    trend = severity[:, None, None] * progress[None, :, None] * drift
    x = nominal + offset + measurement + trend

    return SequenceSet(
        x=x.astype(np.float32),
        y=fails.astype(np.int32),
        ids=np.array([f"D{i:06d}" for i in range(n_devices)]),
        feature_names=list(FEATURE_NAMES),
        class_names=list(CLASS_NAMES),
    )


def to_long_frame(
    data: SequenceSet,
    *,
    id_col: str = "device_id",
    time_col: str = "cycle",
    label_col: str = "status",
) -> pd.DataFrame:
    """Returns ``data`` in long format: one row per (sequence, step).

    Class targets are written as class names, so the frame goes through
    ``tfseq train --id-col device_id --time-col cycle --label-col status``.
    """
    n, steps, _ = data.x.shape
    valid = np.arange(steps)[None, :] < data.lengths[:, None]
    frame = pd.DataFrame(data.x[valid], columns=data.feature_names)
    seq_index = np.repeat(np.arange(n), data.lengths)
    frame.insert(0, time_col, np.concatenate([np.arange(k) + 1 for k in data.lengths]))
    frame.insert(0, id_col, data.ids[seq_index])
    if data.y is not None:
        labels = data.y[seq_index]
        if data.class_names is not None:
            labels = np.asarray(data.class_names)[labels]
        frame[label_col] = labels
    return frame
