"""Shared fixtures: tiny data so the suite stays fast on 2 cores."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

# The fused LSTM kernel builds into a cache of this test session (subprocesses inherit it),
# never into the user's ~/.cache. pytest-xdist's workers (`make test` runs two) inherit the cache
# the controlling process made, so the kernel builds once; that process removes it at its exit.
if "PYTEST_XDIST_WORKER" in os.environ and os.environ.get("TFSEQ_TEST_KERNEL_CACHE"):
    os.environ["TFSEQ_CACHE_DIR"] = os.environ["TFSEQ_TEST_KERNEL_CACHE"]
else:
    _KERNEL_CACHE = tempfile.mkdtemp(prefix="tfseq-test-kernels-")
    os.environ["TFSEQ_CACHE_DIR"] = os.environ["TFSEQ_TEST_KERNEL_CACHE"] = _KERNEL_CACHE
    atexit.register(shutil.rmtree, _KERNEL_CACHE, True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def wait_until(condition: Callable[[], bool], *, timeout: float = 120.0, poll: float = 0.05) -> bool:
    """Polls ``condition`` until it holds (True) or ``timeout`` seconds pass (False): tests wait
    for an event this way, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


@pytest.fixture(scope="session")
def tiny_data():
    """300 synthetic devices x 8 cycles x 15 parameters (20 % failing)."""
    from tfseq.data.synthetic import make_semiconductor_data

    return make_semiconductor_data(300, n_cycles=8, seed=3)


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A RUN trained with `tfseq train` on 300 devices x 6 cycles, and its long-format CSV."""
    from tfseq.cli.main import main
    from tfseq.data.synthetic import make_semiconductor_data, to_long_frame

    root = tmp_path_factory.mktemp("tiny")
    data = root / "tests.csv"
    to_long_frame(make_semiconductor_data(300, n_cycles=6, seed=2)).to_csv(data, index=False)
    run = root / "run"
    assert main(["train", str(data), "--id-col", "device_id", "--time-col", "cycle", "--label-col", "status",
                 "--out", str(run), "--epochs", "1", "--units", "4", "--no-bidirectional"]) == 0
    return run, data
