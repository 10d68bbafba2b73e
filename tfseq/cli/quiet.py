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


def start_tensorflow() -> None:
    """Imports TensorFlow and Keras with the C++ start-up logs sent nowhere.

    TF 2.21's absl logging ignores ``TF_CPP_MIN_LOG_LEVEL`` before it is
    initialised, so its oneDNN and CUDA notices would otherwise stand above
    every error line the command line prints.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    with _stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the CUDA probe logs once, here
        tf.get_logger().setLevel("ERROR")
