"""Start TensorFlow without its start-up log lines on the terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def start_tensorflow(threads: bool = False) -> None:
    """Imports TensorFlow and Keras with the C++ start-up logs sent nowhere.

    TF 2.21's absl logging ignores ``TF_CPP_MIN_LOG_LEVEL`` before it is
    initialised, so its oneDNN and CUDA notices would otherwise stand above
    every error line the command line prints.

    Args:
        threads: Also set TensorFlow's thread pools for small recurrent
            models (:func:`tfseq.training.threads.configure_threads`), as
            every ``tfseq`` command does before TensorFlow starts.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    started = "tensorflow" in sys.modules
    with _stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf

        if threads:
            from tfseq.training.threads import configure_threads

            configure_threads()  # a no-op once TensorFlow has run
        if started:
            return
        tf.config.list_physical_devices("GPU")  # the CUDA probe logs once, here
        tf.get_logger().setLevel("ERROR")
