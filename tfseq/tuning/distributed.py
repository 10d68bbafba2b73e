"""Where this process stands in a distributed search (Keras Tuner's chief / worker environment)."""

from __future__ import annotations

import os


def env_is_worker() -> bool:
    """True in a distributed search's worker process (``KERASTUNER_TUNER_ID`` set, not ``chief``)."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    return bool(os.environ.get("KERASTUNER_ORACLE_IP")) and tuner_id not in (None, "chief")


def env_is_chief() -> bool:
    """True in a distributed search's chief process (it hands out trials and trains nothing)."""
    return bool(os.environ.get("KERASTUNER_ORACLE_IP")) and os.environ.get("KERASTUNER_TUNER_ID") == "chief"
