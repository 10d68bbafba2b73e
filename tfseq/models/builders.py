"""Functional-API builders: a :class:`ModelSpec` in, a compiled Keras model out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

from tfseq.checks import positive_int
from tfseq.errors import InputError
from tfseq.models import recurrent
from tfseq.models.layers import (
    AttentionPooling,
    CompetingConvolutions,
    MaskedAverage,
    RandomConvolutions,
    RelativeToLast,
    SequenceSummary,
    StepMask,
)
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
    skip: keras.KerasTensor | None = None,
) -> keras.KerasTensor:
    """The head's output; regression and forecast heads with targets answer in their units.

    Their linear layer learns standardised targets and a fixed rescaling by the training
    targets' standard deviation and mean follows: a ~75 C temperature is then no number the
    network has to grow its weights towards, and artifacts still output real units.
    """
    activation = {"binary": "sigmoid", "multiclass": "softmax"}.get(head.kind, "linear")
    scale = _target_scale(head, targets)
    if skip is None:
        dense = keras.layers.Dense(
            head.output_size,
            activation=activation,
            dtype="float32",  # keeps probabilities and losses in float32 under mixed precision
            kernel_initializer=keras.initializers.GlorotUniform(seed=_seed(seed, offset)),
            name=head.name if scale is None else f"{head.name}_standardized",
        )
        y = dense(x)
    else:  # beside a fitted linear path the network's part starts at 0: the model starts at the fit
        network = keras.layers.Dense(head.output_size, dtype="float32", kernel_initializer="zeros",
                                     name=f"{head.name}_network")
        linear = keras.layers.Dense(head.output_size, dtype="float32", kernel_initializer="zeros",
                                    name=f"{head.name}_linear")
        last = activation == "linear" and scale is None
        y = keras.layers.Add(dtype="float32", name=head.name if last else f"{head.name}_sum")(
            [network(x), linear(skip)])
        if activation != "linear":
            return keras.layers.Activation(activation, dtype="float32", name=head.name)(y)
    if scale is None:
        return y
    mean, std = scale
    return keras.layers.Rescaling(scale=std, offset=mean, dtype="float32", name=head.name)(y)


def _linear_targets(head: HeadSpec, targets: np.ndarray | Mapping[str, np.ndarray], n: int,
                    scale: tuple[float, float] | None = None) -> np.ndarray | None:
    """What a head's linear path is fitted to: standardised values (by ``scale``, else by the
    targets' own mean and standard deviation), 0/1 or one-hot classes."""
    values = targets.get(head.name) if isinstance(targets, Mapping) else targets
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64).reshape(n, -1)
    if head.kind == "multiclass":
        return np.eye(head.num_classes)[values[:, 0].astype(int)]
    if head.kind == "binary":
        return values
    scale = scale or _target_scale(head, targets)
    return None if scale is None else (values - scale[0]) / scale[1]


def _logit_scale(head: HeadSpec, scores: np.ndarray, y: np.ndarray) -> float:
    """The factor that turns a ridge classifier's held-out scores into the best logits (cross-entropy)."""
    best = (np.inf, 1.0)
    for k in np.logspace(0, np.log10(30.0), 31):  # capped: separable training data would pick any large k
        if head.kind == "binary":
            z = k * (scores[:, 0] - 0.5)
            loss = np.mean(np.logaddexp(0.0, z) - y[:, 0] * z)
        else:
            z = k * scores
            loss = np.mean(np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - (z * y).sum(1))
        if loss < best[0]:
            best = (float(loss), float(k))
    return best[1]


def _fit_linear_paths(model: keras.Model, spec: ModelSpec, x: np.ndarray,
                      targets: np.ndarray | Mapping[str, np.ndarray], *, residual: bool = False) -> None:
    """Sets each ``<head>_linear`` layer to the ridge fit of what it reads (the summary branch, and
    the random convolutions where the spec has them) on the training
    targets (as the head learns them: standardised values, or classes as logits), and freezes it.

    With ``residual``, regression and forecast heads fit what the network's part leaves (targets
    minus ``<head>_network``); a classifier head's path is fitted as when the model was built (on
    more sequences), beside the network's part as trained: on ACSF1 keeping the path fitted on 80
    of the 100 sequences scored 0.77-0.80 (numpy: the ridge classifier on 80 scored 0.78-0.84,
    on 100 0.87-0.88).
    """
    from tfseq.models.ridge import fit_ridge

    heads = spec.heads
    # the network's part is needed only where a regression or forecast head fits what it leaves:
    # running the recurrent layers eagerly over every sequence cost about 2 s at 16,000 sequences
    residual_heads = [h.name for h in heads if residual and not h.is_classifier]
    reads = [model.get_layer(f"{heads[0].name}_linear").input]  # every head's path reads the same features
    outputs = _outputs(model, reads + [model.get_layer(f"{h}_network").output for h in residual_heads], x)
    features, network = outputs[0], dict(zip(residual_heads, outputs[1:]))
    for head in heads:
        scale = None
        output = model.get_layer(head.name)
        if residual and isinstance(output, keras.layers.Rescaling):  # the model's own standardisation
            scale = (float(np.asarray(output.offset)), float(np.asarray(output.scale)))
        y = _linear_targets(head, targets, len(x), scale)
        if y is None:
            continue
        if head.name in network:
            y = y - network[head.name]
        keep = np.all(np.isfinite(y), axis=1)
        w, b, held_out = fit_ridge(features[keep], y[keep])
        if head.is_classifier:
            k = _logit_scale(head, held_out, y[keep])
            w, b = k * w, k * (b - 0.5) if head.kind == "binary" else k * b
        layer = model.get_layer(f"{head.name}_linear")
        layer.set_weights([w.astype("float32"), b.astype("float32")])
        layer.trainable = False


def _outputs(model: keras.Model, tensors: list[keras.KerasTensor], x: np.ndarray, block: int = 4096
             ) -> list[np.ndarray]:
    """The values of the model's ``tensors`` on ``x``, run eagerly block by block: once per model,
    tracing a ``predict`` function would cost more than the call."""
    part = keras.Model(model.input, tensors)
    blocks = [part(x[i:i + block], training=False) for i in range(0, len(x), block)]
    blocks = [b if isinstance(b, (list, tuple)) else [b] for b in blocks]  # one output comes unlisted
    return [np.concatenate([keras.ops.convert_to_numpy(b[k]) for b in blocks]) for k in range(len(tensors))]


def _adapt_convolutions(model: keras.Model, spec: ModelSpec, x: np.ndarray, seed: int | None) -> None:
    """Draws the biases of the model's :class:`RandomConvolutions` and the centres of its
    :class:`CompetingConvolutions` from (a sample of) the training sequences ``x``, as their input
    sees them (normalised, averaged over steps, masked)."""
    names = [n for n, on in (("random_convolutions", spec.random_features),
                             ("competing_convolutions", spec.competing_groups)) if on]
    if len(x) > 2048:
        x = x[np.random.default_rng(seed).choice(len(x), 2048, replace=False)]
    layer = model.get_layer(names[0])
    reads = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]  # both read the same
    values = _outputs(model, list(reads), x)
    for name in names:
        model.get_layer(name).adapt(values[0], values[1] if len(values) > 1 else None)


def fixed_features_model(model: keras.Model, spec: ModelSpec
                         ) -> tuple[keras.Model, Callable[[np.ndarray], np.ndarray]] | None:
    """A model that trains ``model`` faster, or None: when the linear paths read random or competing
    convolutions (``spec.random_features``, ``spec.competing_groups``), whose values are fixed once
    the model is built, ``(twin, features)``: ``twin`` shares every layer of ``model``, reads
    ``(x, features(x))`` and answers as ``model`` does on ``x``, without computing the
    convolutions at every step of every epoch. Compiled as ``model``; training it trains ``model``.

    The convolutions cost more than the rest of a small set's training step: PickupGestureWiimoteZ
    (40 sequences of 361 steps) took 0.68 s an epoch with them in the step (beside another job on
    2 cores), 0.30-0.34 s with them computed once.
    """
    if not spec.linear_skip or not (spec.random_features or spec.competing_groups):
        return None
    fixed = model.get_layer("linear_features").output
    seen: dict[str, keras.KerasTensor] = {}

    def call(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        output = layer(*args, **kwargs)
        if layer.name == "linear_features":
            seen["fixed"] = output
        return output

    # the twin reads an intermediate tensor of a copy of the graph (the same layers called again):
    # a model reading one of the model's own tensors would leave the model unable to save
    copy = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    twin = keras.Model([copy.input, seen["fixed"]], copy.output, name=f"{model.name}_fixed_features")
    compile_model(twin, spec)

    def features(x: np.ndarray) -> np.ndarray:
        return _outputs(model, [fixed], np.asarray(x, dtype=np.float32))[0]

    return twin, features


def carry_optimizer_state(twin: keras.Model, model: keras.Model) -> None:
    """Gives ``model``'s optimizer the state of its trained twin's (:func:`fixed_features_model`): the
    two share their variables, so the slots have the same names. The model is then saved with a
    built optimizer, as Keras builds one when loading the file (an unbuilt one made every load warn
    "Skipping variable loading for optimizer")."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    state = {v.path.split("/", 1)[-1]: v for v in twin.optimizer.variables}
    for variable in model.optimizer.variables:
        source = state.get(variable.path.split("/", 1)[-1])
        if source is not None and tuple(source.shape) == tuple(variable.shape):
            variable.assign(source)


def refit_linear_paths(model: keras.Model, spec: ModelSpec, x: np.ndarray,
                       targets: np.ndarray | Mapping[str, np.ndarray]) -> None:
    """Refits the frozen linear paths of a trained ``model`` (``spec.linear_skip``) on ``x``, e.g.
    the training and validation sequences together once validation has chosen the model: a
    regression or forecast head's fit takes what the trained network leaves; a classifier's fit
    is the ridge classifier of the build, on these sequences."""
    if spec.linear_skip:
        _fit_linear_paths(model, spec, np.asarray(x, dtype=np.float32), targets, residual=True)


def share_network_parts(model: keras.Model, spec: ModelSpec, share: float) -> None:
    """Scales the trained network's part of every head beside a linear path (``spec.linear_skip``)
    by ``share``: the head then answers the fit plus that share of the network's correction (0.5: a
    regression or forecast head answers the mean of the fit alone and the fit plus the network; a
    classifier, whose parts add in logits, the normalised geometric mean of their probabilities)."""
    if not spec.linear_skip:
        return
    for head in spec.heads:
        layer = model.get_layer(f"{head.name}_network")
        layer.set_weights([w * np.float32(share) for w in layer.get_weights()])


def _pooled(x: keras.KerasTensor, mask: keras.KerasTensor | None, pool: int, name: str
            ) -> tuple[keras.KerasTensor, keras.KerasTensor | None]:
    """``x`` (and its float mask) averaged over every ``pool`` steps."""
    if pool <= 1:
        return x, mask
    average = keras.layers.AveragePooling1D(pool, padding="same", dtype="float32", name=f"{name}_pool")
    if mask is None:
        return average(x), None
    mask_average = keras.layers.AveragePooling1D(pool, padding="same", dtype="float32",
                                                 name=f"{name}_masking_pool")
    return average(x), mask_average(mask)


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
            rescales its output to their units inside the model. With
            ``spec.linear_skip`` and ``adapt``, every head's linear path is fitted
            to them (ridge regression on the summary branch and random convolutions, then
            frozen; the random convolutions' biases are drawn from ``adapt``); without
            ``adapt`` the paths start at 0 and train with the network.
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
        # a feature constant on every training step (the step flag on real steps) keeps its unit: Keras
        # divides by max(std, 1e-7), which would turn its padding, or any later change, into +-1e7
        variance = np.where(variance > 0.0, variance, 1.0)
    policy = keras.DTypePolicy(resolve_precision(spec.precision))

    inputs = keras.Input(shape=(steps, n_features), dtype="float32", name=INPUT_NAME)
    branches = bool(spec.conv_filters or spec.summary_segments or spec.relative or spec.recurrent_pool > 1)
    x = inputs
    step_mask = None
    if spec.masking:
        x = keras.layers.Masking(mask_value=MASK_VALUE, name="masking")(x)
        if branches:
            step_mask = StepMask(name="masking_steps")(inputs)
    normalized = x = keras.layers.Normalization(
        mean=mean.tolist(), variance=variance.tolist(), dtype="float32", name="normalization"
    )(x)
    if step_mask is not None:  # padding at 0 in normalised units: the branches' sums leave it out
        normalized = keras.layers.Multiply(dtype="float32", name="normalization_masked")([x, step_mask])

    features, skip = [], None
    if spec.summary_segments:
        segments = min(spec.summary_segments, steps or spec.summary_segments)
        summary = SequenceSummary(segments, spec.summary_statistics, dtype="float32", name="summary")(
            normalized if step_mask is None else [normalized, step_mask])
        skip = summary if spec.linear_skip else None
        features.append(summary)
    if spec.conv_filters or spec.random_features or spec.competing_groups:
        c, c_mask = _pooled(normalized, step_mask, spec.conv_pool, "conv")
    if spec.random_features:  # read by the linear path alone: the network would overfit them on a small set
        random = RandomConvolutions(c.shape[1] or 64, n_features, spec.random_features,  # steps as pooled
                                    seed=_seed(seed, 700) or 0, differences=True, dtype="float32",
                                    name="random_convolutions")(
            c if c_mask is None else [c, c_mask])
    if spec.competing_groups:
        competing = CompetingConvolutions(c.shape[1] or 64, n_features, spec.competing_groups,
                                          seed=_seed(seed, 800) or 0, dtype="float32", name="competing_convolutions")(
            c if c_mask is None else [c, c_mask])
    if spec.random_features or spec.competing_groups:
        skip = keras.layers.Concatenate(dtype="float32", name="linear_features")(
            [summary] + ([random] if spec.random_features else []) + ([competing] if spec.competing_groups else []))
    if spec.conv_filters:
        for i, filters in enumerate(spec.conv_filters):
            c = keras.layers.Conv1D(filters, (8, 5, 3)[i % 3], padding="same", dtype=policy, name=f"conv_{i}",
                                    kernel_initializer=keras.initializers.HeUniform(seed=_seed(seed, 500 + i)))(c)
            c = keras.layers.BatchNormalization(dtype=policy, name=f"conv_norm_{i}")(c)
            c = keras.layers.Activation("relu", dtype=policy, name=f"conv_relu_{i}")(c)
        features.append(MaskedAverage(dtype=policy, name="conv_average")(c if c_mask is None else [c, c_mask]))

    rnn_mask = None
    if spec.relative:
        x = RelativeToLast(dtype="float32", name="relative")(normalized)
    if spec.recurrent_pool > 1:
        x, pooled_mask = _pooled(x if spec.relative else normalized, step_mask, spec.recurrent_pool, "recurrent")
        if pooled_mask is not None:
            rnn_mask = StepMask(as_bool=True, name="masking_pooled")(pooled_mask)
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
        x = layer(x) if i or rnn_mask is None else layer(x, mask=rnn_mask)
        if spec.layer_norm:
            x = keras.layers.LayerNormalization(dtype=policy, name=f"layer_norm_{i}")(x)

    if spec.pooling == "mean":
        x = keras.layers.GlobalAveragePooling1D(dtype=policy, name="mean_pooling")(x)
    elif spec.pooling == "attention":
        x = AttentionPooling(seed=_seed(seed, 100), dtype=policy, name="attention_pooling")(x)
    if features:
        x = keras.layers.Concatenate(dtype=policy, name="branches")([x, *features])
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
        head.name: _head(head, x, seed, 400 + k, targets, skip) for k, head in enumerate(spec.heads)
    }
    model = keras.Model(inputs, outputs, name=spec.name.replace("-", "_"))
    if (spec.random_features or spec.competing_groups) and adapt is not None:
        _adapt_convolutions(model, spec, np.asarray(adapt, dtype=np.float32), seed)
    if skip is not None and adapt is not None and targets is not None:
        _fit_linear_paths(model, spec, np.asarray(adapt, dtype=np.float32), targets)
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
