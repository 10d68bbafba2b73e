"""TensorFlow's CPU thread pools, set for small recurrent models.

A recurrent step is a chain of small operations, several of them independent
(an LSTM step's four gate products). TensorFlow's default splits each
operation across every core (intra-op) and also runs independent operations
side by side (inter-op). On a 2-core AMD EPYC, one thread per operation with
two side by side trained LSTM-128 at 24,300-25,100 sequences/s against
21,800 with the defaults, GRU-128 at 27,100 against 25,000 and SimpleRNN-128
at 79,000 against 70,200 (BiLSTM-128 the same, 11,300 against 11,700; batch
128, best epoch of four, one process each), and ``model.predict`` of
LSTM-128 in batches of 1,024 ran 72,400 sequences/s against 47,400. Bigger
machines were not measured, so there TensorFlow's defaults stay.

The thread pools start with TensorFlow's first operation and cannot change
afterwards: the ``tfseq`` command calls :func:`configure_threads` before
anything else; from Python, call it before building a model.

Examples:
    >>> import tfseq
    >>> tfseq.configure_threads()   # doctest: +SKIP
    True
"""

from __future__ import annotations

import os

from tfseq.cpus import available_cpus, note_intra_op_set_by_tfseq

#: Largest core count where one thread per operation was measured faster.
SINGLE_THREAD_OPS_UP_TO_CORES = 2

_ENV = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def configure_threads(cores: int | None = None) -> bool:
    """Runs each TensorFlow operation on one thread on machines of up to 2 cores.

    Leaves TensorFlow's defaults where the machine is bigger, where the
    environment sets ``TF_NUM_INTRAOP_THREADS`` or ``TF_NUM_INTEROP_THREADS``,
    and where TensorFlow has already started (its pools are fixed by then).

    Args:
        cores: Cores to plan for; None counts the CPUs this process may use (its affinity
            mask capped by its cgroup quota, :func:`tfseq.cpus.available_cpus`).

    Returns:
        Whether the thread pools were set.
    """
    cores = available_cpus() if cores is None else int(cores)
    if cores > SINGLE_THREAD_OPS_UP_TO_CORES or any(os.environ.get(name) for name in _ENV):
        return False
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(max(cores, 2))
    except RuntimeError:  # TensorFlow is running: its pools can no longer change
        return False
    note_intra_op_set_by_tfseq()  # the fused LSTM kernel keeps its own threads (tfseq.models.fused_lstm)
    return True
