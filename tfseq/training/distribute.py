"""TensorFlow's distribution strategies for training: one host's GPUs or several hosts.

Nothing of our own: ``MirroredStrategy`` for the GPUs of one host,
``MultiWorkerMirroredStrategy`` across hosts configured by the standard
``TF_CONFIG``; :func:`tfseq.training.batches.make_dataset` shards the input
across workers (``AutoShardPolicy.DATA``) with a global batch of
``batch_size`` per replica.

Examples:
    >>> strategy = make_strategy("auto")           # doctest: +SKIP
    >>> with strategy.scope():                     # doctest: +SKIP
    ...     model = tfseq.build_model(spec, n_features=15, adapt=x)
    >>> tfseq.fit(model, x, y, strategy=strategy)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from tfseq.errors import InputError

if TYPE_CHECKING:  # TensorFlow is imported where it is used
    import tensorflow as tf

STRATEGIES = ("auto", "none", "mirrored", "multi-worker")


def cluster_spec() -> dict[str, Any]:
    """The parsed ``TF_CONFIG`` environment variable, or ``{}`` when unset.

    Raises:
        InputError: if ``TF_CONFIG`` is not valid JSON with a cluster and a task.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"TF_CONFIG is not valid JSON: {exc.msg} at column {exc.colno}.") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise InputError("TF_CONFIG must hold a 'cluster' and a 'task', e.g. "
                         '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}.')
    return config


def _slurm_tasks() -> int:
    """Number of tasks of the Slurm job step this process belongs to (0 outside Slurm)."""
    try:
        return int(os.environ.get("SLURM_NTASKS", "0")) if "SLURM_PROCID" in os.environ else 0
    except ValueError:
        return 0


def is_chief() -> bool:
    """True for the process that writes checkpoints, logs and the RUN dir.

    That is the ``chief`` task, or worker 0 when the cluster has no chief
    (Slurm: task 0); a process outside any cluster is its own chief.
    """
    config = cluster_spec()
    if not config:
        return _slurm_tasks() < 2 or os.environ.get("SLURM_PROCID") == "0"
    task = config["task"]
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in config["cluster"]


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Returns the ``tf.distribute.Strategy`` for ``name``.

    Args:
        name: ``"none"`` (the default strategy), ``"mirrored"`` (all GPUs of
            this host), ``"multi-worker"`` (hosts listed in ``TF_CONFIG``, or
            the tasks of a Slurm job step) or ``"auto"``: multi-worker when
            ``TF_CONFIG`` or Slurm lists several tasks, mirrored when this
            host has several GPUs, none otherwise.

    Raises:
        InputError: for an unknown name, or multi-worker outside a cluster.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise InputError(
            f"Received an invalid value for argument strategy, expected one of {', '.join(STRATEGIES)}, got {name!r}."
        )
    config = cluster_spec()
    tasks = sum(len(v) for v in config.get("cluster", {}).values()) or _slurm_tasks()
    if name == "auto":
        if tasks > 1:
            name = "multi-worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "none"
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if not config and _slurm_tasks() > 1:
        # TF's Slurm resolver hands out tasks by GPU (it runs nvidia-smi and gives a node no more
        # tasks than GPUs): on CPU-only nodes it cannot place a task at all.
        gpus = len(tf.config.list_physical_devices("GPU"))
        if gpus == 0:
            raise InputError(
                "Received a Slurm job of several tasks on a node without GPUs; TensorFlow's "
                "SlurmClusterResolver places tasks by GPU, so on CPU-only nodes set TF_CONFIG in each "
                "task (see docs/scaling.md)."
            )
        return tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=tf.distribute.cluster_resolver.SlurmClusterResolver(gpus_per_node=gpus)
        )
    if not config:
        raise InputError(
            "Received strategy 'multi-worker' without TF_CONFIG or a Slurm job of several tasks; "
            "set TF_CONFIG on every worker (see docs/scaling.md)."
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def describe_strategy(strategy: tf.distribute.Strategy) -> dict[str, Any]:
    """What a run trained under, for its records: ``strategy`` (the class name, e.g.
    ``MultiWorkerMirroredStrategy``; ``default`` for none), ``workers`` and ``replicas``."""
    import tensorflow as tf

    config = cluster_spec()
    workers = sum(len(v) for k, v in config.get("cluster", {}).items() if k in ("chief", "worker")) \
        or _slurm_tasks() or 1
    if strategy is tf.distribute.get_strategy():
        name = "default"
    else:  # the public name (tf.distribute.MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy)
        public = ((tf.distribute.MultiWorkerMirroredStrategy, "MultiWorkerMirroredStrategy"),
                  (tf.distribute.MirroredStrategy, "MirroredStrategy"))
        name = next((n for cls, n in public if isinstance(strategy, cls)), type(strategy).__name__)
    return {"strategy": name, "workers": int(workers) if name == "MultiWorkerMirroredStrategy" else 1,
            "replicas": int(strategy.num_replicas_in_sync)}


def is_distributed(strategy: tf.distribute.Strategy | None) -> bool:
    import tensorflow as tf

    return strategy is not None and strategy is not tf.distribute.get_strategy() and (
        strategy.num_replicas_in_sync > 1 or bool(cluster_spec())
    )

