"""``fit``: ``model.fit`` with the defaults that suit imbalanced test data."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from tfseq.checks import positive_int
from tfseq.data.labels import balanced_class_weights
from tfseq.errors import InputError
from tfseq.training.batches import make_dataset, make_validation_dataset
from tfseq.training.callbacks import default_callbacks
from tfseq.training.distribute import cluster_spec, is_chief, is_distributed

if TYPE_CHECKING:  # TensorFlow is imported where it is used
    import tensorflow as tf


def balanced_sample_weights(labels: np.ndarray) -> np.ndarray:
    """Weights ``n / (classes * count(class))`` per sample, so each class weighs the same."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    return balanced_class_weights(np.bincount(labels))[labels]


def _classifier_labels(model: keras.Model, y: Any) -> np.ndarray | None:
    """Labels of the first classification head (per sequence), or None when there is none."""
    for name in model.output_names:
        activation = getattr(model.get_layer(name), "activation", None)
        if getattr(activation, "__name__", "") in ("sigmoid", "softmax"):
            labels = np.asarray(y[name] if isinstance(y, Mapping) else y)
            return labels.reshape(len(labels), -1)[:, 0]  # a streaming head's labels repeat at every step
    return None


def _is_streaming(model: keras.Model) -> bool:
    """Whether the model's first head answers after every step (output ``[batch, steps, k]``)."""
    return len(model.get_layer(model.output_names[0]).output.shape) == 3


def step_targets(model: keras.Model, y: np.ndarray | Mapping[str, np.ndarray], steps: int) -> Any:
    """``y`` with one target per sequence repeated at each of ``steps`` steps for a streaming model's heads.

    A streaming head (output ``[batch, steps, k]``) learns its sequence's target at every step;
    targets that already have a steps axis are left as they are.
    """
    def expand(name: str, values: np.ndarray) -> np.ndarray:
        shape = model.get_layer(name).output.shape
        values = np.asarray(values)
        if len(shape) != 3 or (values.ndim == 3 and values.shape[1] == steps):
            return values
        per_sequence = values.reshape(len(values), -1)[:, :1]
        if shape[-1] == 1:  # binary or regression: [n, steps, 1]
            return np.repeat(per_sequence[:, None, :], steps, axis=1)
        return np.repeat(per_sequence, steps, axis=1)  # sparse multiclass labels: [n, steps]

    if isinstance(y, Mapping):
        return {name: expand(name, values) for name, values in y.items()}
    return expand(model.output_names[0], y)


def fit(
    model: keras.Model,
    x: np.ndarray | tuple[np.ndarray, ...],
    y: np.ndarray | Mapping[str, np.ndarray],
    *,
    validation_data: tuple[Any, Any] | None = None,
    epochs: int = 20,
    batch_size: int = 128,
    run_dir: Path | None = None,
    monitor: str = "val_loss",
    patience: int = 5,
    class_weight: str | None = "balanced",
    tensorboard: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    seed: int | None = None,
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
    restore_best: bool = True,
) -> keras.callbacks.History:
    """Trains ``model`` with early stopping, checkpoints and crash recovery.

    Batches come from :func:`tfseq.training.batches.make_dataset`, which draws
    a new order every epoch without the extra threads of Keras' array adapter.

    Args:
        model: A compiled model, e.g. from :func:`tfseq.build_model`.
        x: Raw sequences ``[n, steps, features]``, or a tuple whose first
            array they are, for a model of several inputs (e.g.
            :func:`tfseq.models.builders.fixed_features_model`).
        y: Targets: an array for one head, or a dict by head name.
        validation_data: ``(x, y)`` to monitor; without it ``monitor`` falls
            back to the training loss.
        epochs: Maximum number of epochs.
        batch_size: Sequences per step.
        run_dir: Where checkpoints, the crash backup and ``history.csv`` go
            (see :func:`default_callbacks`); None writes nothing.
        monitor: Quantity for early stopping and the best checkpoint.
        patience: Epochs without improvement before stopping.
        class_weight: ``"balanced"`` weighs each class of the first
            classification head equally (a 5 % fail rate otherwise teaches the
            model to say "pass"); None weighs every sequence the same.
        tensorboard: Also write TensorBoard logs under ``run_dir``.
        callbacks: Extra callbacks, run after the defaults.
        seed: Seeds Python, NumPy and TensorFlow before training, so the same
            seed and data give the same model on CPU.
        verbose: Passed to ``model.fit`` (progress bar, one line per epoch, or silent).
        strategy: A ``tf.distribute.Strategy`` from
            :func:`tfseq.training.distribute.make_strategy`, in whose scope
            ``model`` was built. Input then goes through ``tf.data`` sharded
            across workers with ``batch_size`` per replica, and only the chief
            writes into ``run_dir`` (other workers keep their crash backup
            under ``run_dir/.workers/``).
        restore_best: Put back the weights of the best epoch (by ``monitor``)
            when training ends; False keeps the last epoch's, as when training
            again for a number of epochs chosen on validation.

    Returns:
        The ``History`` of the run (best weights restored in ``model``
        unless ``restore_best`` is False).

    Raises:
        InputError: for a non-positive ``epochs`` or ``batch_size``, an
            unknown ``class_weight``, inputs of mismatched lengths, or a model
            built outside ``strategy``'s scope.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        positive_int(name, value)
    if class_weight not in ("balanced", None):
        raise InputError(
            f"Received an invalid value for argument class_weight, expected 'balanced' or None, "
            f"got {class_weight!r}."
        )
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = x if isinstance(x, tuple) else (x,)
    steps = np.shape(inputs[0])[1]
    y = step_targets(model, y, steps)
    if validation_data is not None:
        first = validation_data[0][0] if isinstance(validation_data[0], tuple) else validation_data[0]
        validation_data = (validation_data[0], step_targets(model, validation_data[1], np.shape(first)[1]),
                           *validation_data[2:])
    sample_weight = None
    if class_weight == "balanced":
        labels = _classifier_labels(model, y)
        if labels is not None:
            sample_weight = balanced_sample_weights(labels)
            if _is_streaming(model):  # the loss of a streaming head has a value per step: the weight repeats
                sample_weight = np.repeat(sample_weight[:, None], steps, axis=1)
    lengths = {len(a) for a in inputs} | {len(v) for v in (y.values() if isinstance(y, Mapping) else [y])}
    if len(lengths) != 1:
        raise InputError(f"Received inputs and targets of different lengths: {sorted(lengths)}.")
    sharded = strategy if is_distributed(strategy) else None
    train = make_dataset(x, y, batch_size=int(batch_size), sample_weight=sample_weight, seed=seed,
                         strategy=sharded)
    if validation_data is not None:
        validation_data = make_validation_dataset(validation_data, batch_size=int(batch_size),
                                                  strategy=sharded)
    return fit_batches(model, train, validation_data, epochs=epochs, run_dir=run_dir, monitor=monitor,
                       patience=patience, tensorboard=tensorboard, callbacks=callbacks, verbose=verbose,
                       strategy=strategy, restore_best=restore_best)


def fit_batches(
    model: keras.Model,
    train: Any,
    validation_data: Any,
    *,
    epochs: int,
    run_dir: Path | None,
    monitor: str,
    patience: int,
    tensorboard: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    restore_best: bool = True,
) -> keras.callbacks.History:
    """``model.fit`` on batches already made (a ``tf.data.Dataset``, or a distributed one) with the
    callbacks of :func:`fit`; out-of-core training (:mod:`tfseq.training.streamed`) enters here.

    ``steps_per_epoch`` and ``validation_steps`` bound epochs of repeated input (every worker of a
    multi-worker run must take the same number of steps). Arguments otherwise as :func:`fit`.
    """
    if validation_data is None and monitor.startswith("val_"):
        monitor = monitor[4:]
    distributed = is_distributed(strategy)
    if distributed:
        if model.distribute_strategy is not strategy:
            raise InputError("Received a model built outside the strategy's scope; build it inside "
                             "`with strategy.scope():`.")
        # Keras 3.15 cannot run several batches per call on a distributed iterator
        # (InvalidArgumentError at while/cond/Placeholder), so one batch per call here.
        model.steps_per_execution = 1
        if run_dir is not None and not is_chief():
            run_dir, tensorboard = Path(run_dir) / ".workers" / _task_name(), False
    fit_kwargs = dict(
        x=train, validation_data=validation_data, epochs=int(epochs), shuffle=False,  # the input shuffles itself
        callbacks=default_callbacks(run_dir, monitor=monitor, patience=patience, tensorboard=tensorboard,
                                    restore_best=restore_best)
        + list(callbacks),
        verbose=verbose, steps_per_epoch=steps_per_epoch, validation_steps=validation_steps)
    if distributed and _is_multi_worker(strategy):
        return _fit_multi_worker(model, strategy, fit_kwargs)
    if not distributed and model.optimizer is not None and not model.optimizer.built:
        # Without a strategy Keras builds the optimizer inside the first traced training step, and
        # TensorFlow then traces that step a second time, as a function that created variables:
        # about 1.3 s of every `tfseq train` (the default model, 2 cores). Built here, it traces once.
        model.optimizer.build(model.trainable_variables)
    return model.fit(**fit_kwargs)


def _is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _fit_multi_worker(
    model: keras.Model, strategy: tf.distribute.Strategy, fit_kwargs: dict[str, Any]
) -> keras.callbacks.History:
    # Keras 3.15 breaks under MultiWorkerMirroredStrategy (keras-team/keras#20585) twice: its
    # eager "symbolic build" reduces a PerReplica batch across workers, and its train function
    # reduces the scalar logs with strategy.reduce("MEAN", v, axis=0), which needs an axis 0.
    # Building the optimiser in the strategy's scope and leaving the model's strategy to the
    # scope skips the first; steps that return their logs as 1-element vectors fix the
    # second, so every worker sees the mean across workers and stops at the same epoch.
    import tensorflow as tf

    def vectorised(step: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(data: Any) -> Any:
            return tf.nest.map_structure(lambda v: tf.reshape(v, [-1]), step(data))

        return run

    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
        model._distribute_strategy = None
        model.train_step = vectorised(model.train_step)
        model.test_step = vectorised(model.test_step)
        model.train_function = model.test_function = None
        try:
            return model.fit(**fit_kwargs)
        finally:
            del model.train_step, model.test_step
            model.train_function = model.test_function = None
            model._distribute_strategy = strategy


def _task_name() -> str:
    task = cluster_spec().get("task", {})
    return f"{task.get('type', 'worker')}-{task.get('index', 0)}"
