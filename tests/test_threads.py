import os
import subprocess
import sys

import pytest

from tfseq.training.threads import SINGLE_THREAD_OPS_UP_TO_CORES

POOLS = ("import tensorflow as tf; print(tf.config.threading.get_intra_op_parallelism_threads(), "
         "tf.config.threading.get_inter_op_parallelism_threads())")


def _fresh(code: str, **env) -> list[str]:
    """Runs ``code`` in a new Python, where TensorFlow has not started yet."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TF_NUM_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}, timeout=120)
    return out.stdout.split()


def test_small_machines_get_one_thread_per_operation():
    code = "from tfseq.training.threads import configure_threads as c; print(c(cores=2)); " + POOLS
    assert _fresh(code) == ["True", "1", "2"]


@pytest.mark.parametrize("setting", [{"cores": SINGLE_THREAD_OPS_UP_TO_CORES + 1}, {"env": "1"}])
def test_bigger_machines_and_explicit_settings_keep_their_pools(setting):
    call = f"c(cores={setting['cores']})" if "cores" in setting else "c(cores=1)"
    env = {"TF_NUM_INTRAOP_THREADS": "2"} if "env" in setting else {}
    code = f"from tfseq.training.threads import configure_threads as c; print({call}); " + POOLS
    assert _fresh(code, **env) == ["False", "0", "0"]


def test_a_running_tensorflow_is_left_alone():
    # In a fresh process: in this one, an earlier test may have set the same pools before TensorFlow started.
    code = ("import tensorflow as tf; tf.constant(1.0) + 1.0; "  # TensorFlow has started: its pools are fixed
            "from tfseq.training.threads import configure_threads as c; print(c(cores=1)); " + POOLS)
    assert _fresh(code) == ["False", "0", "0"]


def test_the_command_line_sets_the_pools_before_tensorflow_starts():
    code = "from tfseq.startup import start_tensorflow; start_tensorflow(threads=True); " + POOLS
    cores = len(os.sched_getaffinity(0))
    expected = ["1", str(max(cores, 2))] if cores <= SINGLE_THREAD_OPS_UP_TO_CORES else ["0", "0"]
    assert _fresh(code) == expected
