"""Functional-API builders: a :class:`ModelSpec` in, a compiled Keras model out."""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np

from tfseq.checks import positive_int
from tfseq.errors import InputError
from tfseq.models import recurrent
from tfseq.models.layers import AttentionPooling
from tfseq.models.precision import resolve_precision
from tfseq.models.spec import HeadSpec, ModelSpec

MASK_VALUE = 0.0
INPUT_NAME = "sequence"
#: Batches per compiled call of fit, evaluate and predict. One call per batch spends most of a
#: small recurrent model's step outside the model: at 8, LSTM-128 training ran 14,600 sequences/s
#: against 12,800 at 1, SimpleRNN-128 43,000 against 32,000 and GRU-128 14,600 against 13,700
#: (best epoch of four, 2-core CPU; ``benchmarks/run.py``); 32 gained another 5 % (median of eight
#: epoch pairs, LSTM-128) and 1 lost 19 %. Callbacks' batch hooks then run every 32 batches;
#: every tfseq callback works per epoch.
STEPS_PER_EXECUTION = 32

_CELLS = {
    "simple_rnn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}


def normalization_stats(x: np.ndarray, *, masking: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance of ``x`` (``[n, steps, features]``).

    With ``masking``, all-zero steps (padding) are left out.
    """
    flat = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    if masking:
        flat = flat[np.any(flat != MASK_VALUE, axis=-1)]
    if flat.shape[0] == 0:
        raise InputError("Received no training steps to adapt the normalisation on.")
    return flat.mean(axis=0), flat.var(axis=0)


def _seed(seed: int | None, offset: int) -> int | None:
    return None if seed is None else seed + offset


def _target_scale(
    head: HeadSpec, targets: np.ndarray | Mapping[str, np.ndarray] | None
) -> tuple[float, float] | None:
    """``(mean, std)`` of a regression or forecast head's training targets, or None."""
    if targets is None or head.kind not in ("regression", "forecast"):
        return None
    values = targets.get(head.name) if isinstance(targets, Mapping) else targets
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return float(values.mean()), float(values.std()) or 1.0


def _head(
    head: HeadSpec,
    x: keras.KerasTensor,
    seed: int | None,
    offset: int,
    targets: np.ndarray | Mapping[str, np.ndarray] | None,
) -> keras.KerasTensor:
    """The head's output; regression and forecast heads with targets answer in their units.

    Their linear layer learns standardised targets and a fixed rescaling by the training
    targets' standard deviation and mean follows: a ~75 C temperature is then no number the
    network has to grow its weights towards, and artifacts still output real units.
    """
    activation = {"binary": "sigmoid", "multiclass": "softmax"}.get(head.kind, "linear")
    scale = _target_scale(head, targets)
    dense = keras.layers.Dense(
        head.output_size,
        activation=activation,
        dtype="float32",  # keeps probabilities and losses in float32 under mixed precision
        kernel_initializer=keras.initializers.GlorotUniform(seed=_seed(seed, offset)),
        name=head.name if scale is None else f"{head.name}_standardized",
    )
    if scale is None:
        return dense(x)
    mean, std = scale
    return keras.layers.Rescaling(scale=std, offset=mean, dtype="float32", name=head.name)(dense(x))


def _loss_and_metrics(head: HeadSpec) -> tuple[keras.losses.Loss, list[keras.metrics.Metric]]:
    if head.kind == "binary":
        return keras.losses.BinaryCrossentropy(), [
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
            keras.metrics.AUC(name="auc"),
        ]
    if head.kind == "multiclass":
        return keras.losses.SparseCategoricalCrossentropy(), [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        ]
    return keras.losses.MeanSquaredError(), [
        keras.metrics.MeanAbsoluteError(name="mae"),
        keras.metrics.RootMeanSquaredError(name="rmse"),
    ]


def build_model(
    spec: ModelSpec,
    *,
    n_features: int,
    steps: int | None = None,
    normalization: tuple[np.ndarray, np.ndarray] | None = None,
    adapt: np.ndarray | None = None,
    targets: np.ndarray | Mapping[str, np.ndarray] | None = None,
    seed: int | None = None,
) -> keras.Model:
    """Builds and compiles the Functional model described by ``spec``.

    The model takes raw measurements on its input ``sequence``
    (``[batch, steps, n_features]``, float32); a ``Normalization`` layer inside
    the model standardises them, computed in float32 whatever the precision
    policy, so exported artifacts need no preprocessing.

    Args:
        spec: The architecture.
        n_features: Number of features per step.
        steps: Fixed number of steps, or None for any length.
        normalization: Per-feature ``(mean, variance)``; takes precedence over
            ``adapt``.
        adapt: Training sequences to compute the normalisation from (padding
            left out when ``spec.masking``). Without ``normalization`` or
            ``adapt`` the layer is the identity.
        targets: Training targets (an array, or ``{head name: array}``): a
            regression or forecast head then learns standardised targets and
            rescales its output to their units inside the model.
        seed: Seed of the weight initialisers and dropout masks.

    Returns:
        A compiled ``keras.Model`` with one named output per head. Its layers are Keras' own
        classes (a saved ``.keras`` file loads without tfseq); in this process the recurrent
        layers run tfseq's faster loop (:func:`tfseq.models.recurrent.accelerate`).

    Raises:
        InputError: for invalid ``n_features``, ``steps`` or statistics shapes.

    Examples:
        >>> model = build_model(ModelSpec(cell="gru", units=(8,)), n_features=3, steps=5)
        >>> model.output_names
        ['binary']
    """
    n_features = positive_int("n_features", n_features)
    steps = positive_int("steps", steps, allow_none=True)
    if normalization is None and adapt is not None:
        normalization = normalization_stats(adapt, masking=spec.masking)
    if normalization is None:
        mean, variance = np.zeros(n_features), np.ones(n_features)
    else:
        mean, variance = (np.asarray(v, dtype=np.float64).reshape(-1) for v in normalization)
        if mean.shape != (n_features,) or variance.shape != (n_features,):
            raise InputError(
                f"Received normalisation statistics of shape {mean.shape}, expected ({n_features},)."
            )
    policy = keras.DTypePolicy(resolve_precision(spec.precision))

    inputs = keras.Input(shape=(steps, n_features), dtype="float32", name=INPUT_NAME)
    x = inputs
    if spec.masking:
        x = keras.layers.Masking(mask_value=MASK_VALUE, name="masking")(x)
    x = keras.layers.Normalization(
        mean=mean.tolist(), variance=variance.tolist(), dtype="float32", name="normalization"
    )(x)

    cell = _CELLS[spec.cell]
    for i, units in enumerate(spec.units):
        last = i == len(spec.units) - 1
        layer = cell(
            units,
            return_sequences=spec.streaming or not (last and spec.pooling == "last"),
            dropout=spec.dropout,
            recurrent_dropout=spec.recurrent_dropout,
            kernel_initializer=keras.initializers.GlorotUniform(seed=_seed(seed, 10 * i + 1)),
            recurrent_initializer=keras.initializers.Orthogonal(seed=_seed(seed, 10 * i + 2)),
            seed=_seed(seed, 10 * i + 3),
            dtype=policy,
            name=f"{spec.cell}_{i}",
        )
        if spec.bidirectional:
            layer = keras.layers.Bidirectional(
                layer, merge_mode=spec.merge_mode, dtype=policy, name=f"bidirectional_{i}"
            )
        x = layer(x)
        if spec.layer_norm:
            x = keras.layers.LayerNormalization(dtype=policy, name=f"layer_norm_{i}")(x)

    if spec.pooling == "mean":
        x = keras.layers.GlobalAveragePooling1D(dtype=policy, name="mean_pooling")(x)
    elif spec.pooling == "attention":
        x = AttentionPooling(seed=_seed(seed, 100), dtype=policy, name="attention_pooling")(x)
    if spec.dense_units:
        x = keras.layers.Dense(
            spec.dense_units,
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=_seed(seed, 200)),
            dtype=policy,
            name="dense",
        )(x)
    if spec.dropout:
        x = keras.layers.Dropout(spec.dropout, seed=_seed(seed, 300), dtype=policy, name="dropout")(x)

    outputs = {
        head.name: _head(head, x, seed, 400 + k, targets) for k, head in enumerate(spec.heads)
    }
    model = keras.Model(inputs, outputs, name=spec.name.replace("-", "_"))
    recurrent.accelerate(model)  # faster loops in this process; the model stays Keras' own
    compile_model(model, spec)
    return model


def compile_model(model: keras.Model, spec: ModelSpec) -> None:
    """Compiles ``model`` with the optimiser, losses and metrics ``spec`` implies."""
    optimizer = keras.optimizers.Adam(
        learning_rate=spec.learning_rate, clipnorm=spec.clipnorm or None
    )
    if resolve_precision(spec.precision) == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    losses, metrics, weights = {}, {}, {}
    for head in spec.heads:
        losses[head.name], metrics[head.name] = _loss_and_metrics(head)
        weights[head.name] = head.loss_weight
    model.compile(optimizer=optimizer, loss=losses, metrics=metrics, loss_weights=weights,
                  steps_per_execution=STEPS_PER_EXECUTION)
