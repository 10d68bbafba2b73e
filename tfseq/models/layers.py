"""Custom layers. Registered so that ``.keras`` files load in safe mode."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfseq")
class AttentionPooling(keras.layers.Layer):
    """Pools a sequence ``[batch, steps, units]`` into ``[batch, units]``.

    Each step gets a learned score ``tanh(h W + b) v``; a softmax over the
    valid steps (padding masked out) turns the scores into weights, and the
    output is the weighted sum of the steps.

    Args:
        seed: Seed of the weight initialisers.
    """

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        units = input_shape[-1]
        init = keras.initializers.GlorotUniform(seed=self.seed)
        self.w = self.add_weight(name="w", shape=(units, units), initializer=init)
        self.b = self.add_weight(name="b", shape=(units,), initializer="zeros")
        self.v = self.add_weight(name="v", shape=(units, 1), initializer=init)

    def call(self, inputs: Any, mask: Any = None) -> Any:
        scores = ops.matmul(ops.tanh(ops.matmul(inputs, self.w) + self.b), self.v)[..., 0]
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, -1e4))
        weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        weights = ops.cast(weights, inputs.dtype)
        return ops.sum(inputs * weights[..., None], axis=1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, int | None]:
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


def _split_mask(inputs: Any) -> tuple[Any, Any]:
    """``(x, float mask [batch, steps, 1] or None)`` from ``x`` or ``[x, mask]``."""
    if isinstance(inputs, (list, tuple)):
        return inputs[0], inputs[1]
    return inputs, None


@keras.saving.register_keras_serializable(package="tfseq")
class StepMask(keras.layers.Layer):
    """1.0 for a real step and 0.0 for a padding step (all features exactly 0, as
    ``keras.layers.Masking(0.0)`` decides), ``[batch, steps, 1]`` float32; with ``as_bool``
    ``[batch, steps]`` boolean, for a recurrent layer's ``mask`` argument.
    """

    def __init__(self, as_bool: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.as_bool = as_bool

    def call(self, inputs: Any) -> Any:
        if self.as_bool:  # a (possibly average-pooled) float mask in
            return ops.greater(inputs[..., 0], 0.0)
        valid = ops.any(ops.not_equal(inputs, 0.0), axis=-1, keepdims=True)
        return ops.cast(valid, "float32")

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        return tuple(input_shape[:2]) if self.as_bool else (*input_shape[:2], 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "as_bool": self.as_bool}


@keras.saving.register_keras_serializable(package="tfseq")
class MaskedAverage(keras.layers.Layer):
    """The average over the real steps: ``x`` ``[batch, steps, units]``, or ``[x, mask]`` with
    the float mask of :class:`StepMask` (fractions allowed: an average-pooled mask)."""

    def call(self, inputs: Any) -> Any:
        x, mask = _split_mask(inputs)
        if mask is None:
            return ops.mean(x, axis=1)
        mask = ops.cast(mask, x.dtype)
        return ops.sum(x * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1e-3)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (shape[0], shape[-1])

    def get_config(self) -> dict[str, Any]:
        return super().get_config()


@keras.saving.register_keras_serializable(package="tfseq")
class SequenceSummary(keras.layers.Layer):
    """What a simple baseline sees, per feature over the real steps: mean, standard deviation,
    minimum, maximum, the least-squares slope (as the change over the sequence), ``segments``
    quantiles (the distribution of the values, from the sorted steps) and the mean of each of
    ``segments`` equal parts (the sequence's shape resampled to a fixed length).

    ``x`` ``[batch, steps, features]``, or ``[x, mask]`` with the float mask of :class:`StepMask`.
    Output ``[batch, features * (5 + 2 * segments)]``, or ``[batch, features * segments]`` (the
    parts) without ``statistics``.

    Args:
        segments: Equal parts and quantiles of each sequence (at most its steps).
        statistics: Include the statistics and the quantiles.
    """

    def __init__(self, segments: int = 32, statistics: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.segments = segments
        self.statistics = statistics

    def call(self, inputs: Any) -> Any:
        x, mask = _split_mask(inputs)
        x = ops.cast(x, "float32")
        steps = ops.shape(x)[1]
        if mask is None:
            mask = ops.ones_like(x[..., :1])
        mask = ops.cast(mask, "float32")
        count = ops.maximum(ops.sum(mask, axis=1), 1.0)  # [batch, 1]
        mean = ops.sum(x * mask, axis=1) / count
        centred = (x - mean[:, None, :]) * mask
        std = ops.sqrt(ops.sum(centred * centred, axis=1) / count + 1e-6)
        low = ops.min(x * mask + (1.0 - mask) * 1e4, axis=1)
        high = ops.max(x * mask - (1.0 - mask) * 1e4, axis=1)
        t = ops.cast(ops.arange(steps), "float32")[None, :, None] * mask  # [1, steps, 1]
        t_centred = (t - (ops.sum(t, axis=1) / count)[:, None, :]) * mask
        slope = ops.sum(t_centred * centred, axis=1) / ops.maximum(ops.sum(t_centred * t_centred, axis=1), 1e-6)
        slope = slope * count  # the fitted change over the sequence: comparable across lengths
        # segment k of a sequence of length n holds its steps t with floor(t * segments / n) == k
        part = ops.floor(t * self.segments / count[:, None, :])[..., 0]  # [batch, steps]
        weights = ops.one_hot(ops.cast(part, "int32"), self.segments) * mask  # [batch, steps, segments]
        sums = ops.matmul(ops.transpose(weights, (0, 2, 1)), x)  # [batch, segments, features]
        parts = sums / ops.maximum(ops.sum(weights, axis=1)[..., None], 1.0)
        parts = ops.reshape(parts, (-1, self.segments * x.shape[-1]))
        if not self.statistics:
            return parts
        # quantiles: each feature's real values sorted in descending order (padding last), read at
        # ``segments`` evenly spaced ranks of its own count
        ordered = ops.top_k(ops.transpose(x * mask - (1.0 - mask) * 1e4, (0, 2, 1)), steps, sorted=True)[0]
        ranks = ops.round(ops.linspace(0.0, 1.0, self.segments)[None, :] * (count - 1.0))  # [batch, segments]
        pick = ops.one_hot(ops.cast(ranks, "int32"), steps)  # [batch, segments, steps]
        quantiles = ops.reshape(ops.matmul(ordered, ops.transpose(pick, (0, 2, 1))), (-1, x.shape[-1] * self.segments))
        return ops.concatenate([mean, std, low, high, slope, quantiles, parts], axis=-1)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (shape[0], shape[-1] * (5 * self.statistics + (1 + self.statistics) * self.segments))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "segments": self.segments, "statistics": self.statistics}


@keras.saving.register_keras_serializable(package="tfseq")
class RelativeToLast(keras.layers.Layer):
    """Each step minus the sequence's last step (a forecast window seen relative to its newest
    values: a trending series then looks the same at every level)."""

    def call(self, inputs: Any) -> Any:
        return inputs - inputs[:, -1:, :]

    def get_config(self) -> dict[str, Any]:
        return super().get_config()


def _kernel_taps() -> Any:
    """MiniRocket's 84 kernels of 9 taps: -1 everywhere and 2 at three of the nine (they sum to 0)."""
    import itertools

    import numpy as np

    taps = -np.ones((84, 9), dtype="float32")
    for k, chosen in enumerate(itertools.combinations(range(9), 3)):
        taps[k, list(chosen)] = 2.0
    return taps


def dilations(steps: int, count: int = 32) -> list[int]:
    """The distinct dilations of :class:`RandomConvolutions` over ``steps`` steps: up to ``count``
    exponentially spaced from 1 to the widest whose 9 taps span the sequence."""
    import numpy as np

    widest = max((steps - 1) / 8.0, 1.0)
    return sorted({int(d) for d in np.floor(2.0 ** np.linspace(0.0, np.log2(widest), count))})


def _dilated_products(x: Any, dilation: int, kernel: Any) -> Any:
    """``[batch, steps, outputs]``: 9-tap kernels at ``dilation`` over ``x`` zero-padded ('same'), as
    one matrix product of the nine shifted copies of ``x`` (``[batch, steps, 9 * features]``) with
    ``kernel`` (``[9 * features, outputs]``, tap-major) rather than nine products."""
    steps = ops.shape(x)[1]
    span = 4 * dilation
    padded = ops.pad(x, ((0, 0), (span, span), (0, 0)))
    shifted = ops.concatenate([padded[:, j * dilation:j * dilation + steps, :] for j in range(9)], axis=-1)
    return ops.matmul(shifted, kernel)


def _first_differences(x: Any, mask: Any) -> Any:
    """Each step minus the one before: 0 at the first step and, given the float ``mask``, at padding."""
    change = ops.pad(x[:, 1:, :] - x[:, :-1, :], ((0, 0), (1, 0), (0, 0)))
    return change if mask is None else change * ops.cast(mask, "float32")


@keras.saving.register_keras_serializable(package="tfseq")
class CompetingConvolutions(keras.layers.Layer):
    """Competing random convolutional kernels (Hydra, Dempster et al. 2023): what the ridge path of a
    small classification set reads beside :class:`RandomConvolutions`.

    At each dilation of 1, 2, 4, .. up to the widest whose 9 taps span the sequence, ``groups``
    groups of ``kernels`` random kernels (9 normal taps, less their mean, scaled to absolute sum 1)
    per representation (the steps and their first differences). Each group reads the sum of a
    random subset of the features. At every real step the kernels of a group compete: the feature
    of a kernel is the sum of its outputs over the steps where it is the group's largest (Hydra's
    soft count), and the number of steps where it is the smallest (its hard count), each as the
    square root of its positive part. Nothing is learned by gradient; every op is a TF Lite builtin
    (matrix product, pad, slices, maximum and minimum over an axis, equality, sums, square root).

    ``x`` ``[batch, steps, features]``, or ``[x, mask]`` with the float mask of :class:`StepMask`.
    Output ``[batch, 2 * 2 * groups * kernels * len(dilations)]``: per representation and dilation
    the soft counts, then the hard counts, each less its mean over the training sequences
    (:meth:`adapt`) where it is not 0 (Hydra's sparse scaling; the ridge fit then standardises).

    Args:
        steps: Steps of the input (it sets the dilations).
        n_features: Features per step of the input.
        groups: Groups per dilation and representation.
        kernels: Kernels per group.
        seed: Seed of the taps and the feature subsets.
    """

    def __init__(self, steps: int, n_features: int, groups: int = 32, kernels: int = 8, seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        import numpy as np

        self.steps, self.n_features = int(steps), int(n_features)
        self.groups, self.kernels, self.seed = int(groups), int(kernels), int(seed)
        self.dilations = [2**i for i in range(int(np.log2(max((self.steps - 1) / 8.0, 1.0))) + 1)]
        self.trainable = False

    def build(self, input_shape: Any = None) -> None:
        import numpy as np

        rng = np.random.default_rng(self.seed)
        outputs = self.groups * self.kernels
        for prefix in ("", "difference_"):
            taps = rng.standard_normal((len(self.dilations), 9, outputs)).astype("float32")
            taps -= taps.mean(axis=1, keepdims=True)
            taps /= np.abs(taps).sum(axis=1, keepdims=True)
            channels = np.zeros((self.n_features, self.groups), dtype="float32")
            for g in range(self.groups):
                chosen = rng.choice(self.n_features, size=int(rng.integers(1, min(self.n_features, 9) + 1)),
                                    replace=False)
                channels[chosen, g] = 1.0
            setattr(self, f"{prefix}taps", self.add_weight(
                name=f"{prefix}taps", shape=taps.shape, trainable=False, initializer=keras.initializers.Constant(taps)))
            setattr(self, f"{prefix}channels", self.add_weight(
                name=f"{prefix}channels", shape=channels.shape, trainable=False,
                initializer=keras.initializers.Constant(channels)))
        self.centres = self.add_weight(name="centres", shape=(2 * 2 * outputs * len(self.dilations),),
                                       trainable=False, initializer="zeros")

    def call(self, inputs: Any) -> Any:
        x, mask = _split_mask(inputs)
        x = ops.cast(x, "float32")
        steps = ops.shape(x)[1]
        weight = None if mask is None else ops.cast(mask, "float32")[..., None]  # [batch, steps, 1, 1]
        counts = []
        for values, prefix in ((x, ""), (_first_differences(x, mask), "difference_")):
            taps, channels = getattr(self, f"{prefix}taps"), getattr(self, f"{prefix}channels")
            # each output's kernel over its group's features: [9, features, groups * kernels]
            reads = ops.repeat(ops.convert_to_tensor(channels), self.kernels, axis=1)
            for i, dilation in enumerate(self.dilations):
                kernel = ops.reshape(taps[i][:, None, :] * reads[None, :, :],
                                     (9 * self.n_features, self.groups * self.kernels))
                z = ops.reshape(_dilated_products(values, dilation, kernel), (-1, steps, self.groups, self.kernels))
                largest = ops.cast(ops.equal(z, ops.max(z, axis=-1, keepdims=True)), "float32")
                smallest = ops.cast(ops.equal(z, ops.min(z, axis=-1, keepdims=True)), "float32")
                if weight is not None:
                    largest, smallest = largest * weight, smallest * weight
                counts += [ops.sum(largest * z, axis=1), ops.sum(smallest, axis=1)]  # [batch, groups, kernels]
        features = ops.concatenate([ops.reshape(c, (-1, self.groups * self.kernels)) for c in counts], axis=-1)
        # Hydra's sparse scaling: 0 stays 0 (a kernel that never won), the rest centred
        roots = ops.sqrt(ops.relu(features) + 1e-6)  # finite gradients at 0 for integrated gradients
        return (roots - self.centres) * ops.cast(ops.greater(features, 0.0), "float32")

    def adapt(self, x: Any, mask: Any = None) -> None:
        """Sets the centres: each feature's mean square root of its positive part over ``x`` (the
        layer's training input; ``mask`` its float mask)."""
        import numpy as np

        if not self.built:
            self.build()
        self.centres.assign(np.zeros(self.centres.shape, dtype="float32"))
        inputs = [x] if mask is None else [x, mask]
        roots = np.concatenate([keras.ops.convert_to_numpy(self(  # with the centres at 0: the roots, or 0
            [v[i:i + 256] for v in inputs] if mask is not None else inputs[0][i:i + 256]))
            for i in range(0, len(x), 256)])
        self.centres.assign(roots.mean(axis=0).astype("float32"))

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (shape[0], 2 * 2 * self.groups * self.kernels * len(self.dilations))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "steps": self.steps, "n_features": self.n_features, "groups": self.groups,
                "kernels": self.kernels, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tfseq")
class RandomConvolutions(keras.layers.Layer):
    """Random convolutional features (MiniRocket, Dempster et al. 2021; with ``differences``, also
    over the first differences, as MultiRocket does): what the ridge path of a small data set reads
    beside :class:`SequenceSummary`.

    84 fixed kernels of 9 taps, each over a random subset of the features (summed), at every
    dilation of :func:`dilations` (at most one per 84 features of a representation). Each (kernel,
    dilation) output is compared with ``biases`` drawn from the quantiles of the training
    sequences' own outputs (:meth:`adapt`), and the feature is the proportion of real steps above
    the bias (MiniRocket's PPV), counted softly: a sigmoid of the distance to the bias in ``widths``
    (a hundredth of the spread of that kernel's outputs). Hard counts scored the same on real data
    (ACSF1, ArrowHead; a tenth of the spread lost 0.15 on ACSF1's spiky power readings), but a
    step function has no gradient, so integrated gradients (``tfseq explain``) would not see these
    features, and a rounding in a quantised artifact could flip a step. Nothing is learned by
    gradient: the channels are drawn from ``seed`` and the biases and widths come from data.
    Every op is a TF Lite builtin (matrix product, pad, slices, subtraction, sigmoid, sums).

    ``x`` ``[batch, steps, features]``, or ``[x, mask]`` with the float mask of
    :class:`StepMask`. Output ``[batch, representations * 84 * per_dilation * len(dilations)]``,
    the features of ``x`` first, then those of its differences.

    Args:
        steps: Steps of the input (it sets the dilations).
        n_features: Features per step of the input.
        features: About this many outputs in all (at least one bias per kernel and dilation).
        seed: Seed of the random feature subsets and of the sequences the biases come from.
        differences: Half the features read the first differences of ``x`` (step minus the step
            before; 0 at the first step and at padding), with kernels of their own.
        min_biases: At least this many biases per kernel and dilation: more features go to more
            biases, not to more dilations (at most one dilation per ``84 * min_biases`` features of a
            representation; MiniRocket's 10,000 features have about 3.7 biases per dilation).
            Ridge alone on 6,000 features, 3 draws, against one bias per kernel and dilation
            (more dilations): ArrowHead 0.867 -> 0.855, PickupGestureWiimoteZ 0.867 -> 0.940.
            Models saved before this setting load with 1.
    """

    def __init__(self, steps: int, n_features: int, features: int = 1000, seed: int = 0,
                 differences: bool = False, min_biases: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps = int(steps)
        self.n_features = int(n_features)
        self.features = int(features)
        self.seed = int(seed)
        self.differences = bool(differences)
        self.min_biases = max(1, int(min_biases))
        self.representations = 2 if self.differences else 1
        each = max(1, self.features // self.representations)
        # at most one dilation per 84 * min_biases features asked for: ACSF1 (487 steps read) scored the same
        # with its 11 dilations as with all 23 (MiniRocket's 32 suit its 10,000 features), at half the cost
        self.dilations = dilations(self.steps, max(1, each // (84 * self.min_biases)))
        self.per_dilation = max(1, each // (84 * len(self.dilations)))
        self.trainable = False

    def build(self, input_shape: Any = None) -> None:  # the shapes come from the config (a list input's may not)
        import numpy as np

        n_features = self.n_features
        rng = np.random.default_rng(self.seed)
        for prefix in ("", "difference_")[:self.representations]:
            channels = np.zeros((n_features, 84), dtype="float32")
            for k in range(84):
                chosen = rng.choice(n_features, size=int(rng.integers(1, min(n_features, 9) + 1)), replace=False)
                channels[chosen, k] = 1.0
            setattr(self, f"{prefix}channels", self.add_weight(
                name=f"{prefix}channels", shape=(n_features, 84), trainable=False,
                initializer=keras.initializers.Constant(channels)))
            setattr(self, f"{prefix}biases", self.add_weight(
                name=f"{prefix}biases", shape=(len(self.dilations), 84, self.per_dilation), trainable=False,
                initializer="zeros"))
            setattr(self, f"{prefix}widths", self.add_weight(
                name=f"{prefix}widths", shape=(len(self.dilations), 84), trainable=False, initializer="ones"))

    def _kernels(self) -> list[tuple[Any, Any, Any]]:
        """``(channels, biases, widths)`` of ``x``'s kernels and, with ``differences``, of theirs."""
        return [(getattr(self, f"{prefix}channels"), getattr(self, f"{prefix}biases"),
                 getattr(self, f"{prefix}widths")) for prefix in ("", "difference_")[:self.representations]]

    def _convolve(self, x: Any, dilation: int, channels: Any) -> Any:
        """``[batch, steps, 84]``: each kernel over its features at ``dilation``, zero-padded ('same')."""
        kernels = _kernel_taps().T[:, None, :] * ops.convert_to_tensor(channels)[None, :, :]  # [9, features, 84]
        return _dilated_products(ops.cast(x, "float32"), dilation, ops.reshape(kernels, (9 * self.n_features, 84)))

    def _inputs(self, x: Any, mask: Any) -> list[Any]:
        """``x`` and, with ``differences``, its first differences (0 at the first step and at padding)."""
        if not self.differences:
            return [x]
        x = ops.cast(x, "float32")
        return [x, _first_differences(x, mask)]

    def call(self, inputs: Any) -> Any:
        x, mask = _split_mask(inputs)
        shares = []
        for values, (channels, biases, widths) in zip(self._inputs(x, mask), self._kernels()):
            conv = ops.concatenate([self._convolve(values, d, channels) for d in self.dilations],
                                   axis=-1)  # [batch, steps, 84 * dilations]
            biases = ops.reshape(biases, (84 * len(self.dilations), self.per_dilation))
            widths = ops.reshape(widths, (84 * len(self.dilations), 1))
            above = ops.sigmoid((conv[..., None] - biases) / widths)  # [batch, steps, 84 * dilations, per]
            if mask is None:
                share = ops.mean(above, axis=1)
            else:
                weight = ops.cast(mask, "float32")[..., None]  # [batch, steps, 1, 1]
                share = ops.sum(above * weight, axis=1) / ops.maximum(ops.sum(weight, axis=1), 1e-3)
            shares.append(ops.reshape(share, (-1, 84 * len(self.dilations) * self.per_dilation)))
        return shares[0] if len(shares) == 1 else ops.concatenate(shares, axis=-1)

    def adapt(self, x: Any, mask: Any = None) -> None:
        """Draws the biases and widths from ``x`` (the layer's training input; ``mask`` its float
        mask): for each kernel and dilation, quantiles of its output on one training sequence
        chosen at random, over that sequence's real steps, and a hundredth of their standard deviation."""
        import numpy as np

        x = np.asarray(x, dtype="float32")
        if not self.built:
            self.build()
        valid = np.ones(x.shape[:2], bool) if mask is None else np.asarray(mask)[..., 0] > 0.5
        rng = np.random.default_rng(self.seed + 1)
        golden = (np.arange(1, self.per_dilation + 1) * 0.6180339887498949) % 1.0
        for values, (channels, bias_weight, width_weight) in zip(self._inputs(x, mask), self._kernels()):
            values = keras.ops.convert_to_numpy(values)
            biases = np.zeros((len(self.dilations), 84, self.per_dilation), dtype="float32")
            widths = np.ones((len(self.dilations), 84), dtype="float32")
            for i, dilation in enumerate(self.dilations):
                picked = rng.integers(0, len(x), size=84)
                conv = keras.ops.convert_to_numpy(self._convolve(values[picked], dilation, channels))
                for k in range(84):
                    real = conv[k, valid[picked[k]], k]
                    if real.size:
                        biases[i, k] = np.quantile(real, golden)
                        widths[i, k] = max(0.01 * float(real.std()), 1e-4)
            bias_weight.assign(biases)
            width_weight.assign(widths)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (shape[0], self.representations * 84 * self.per_dilation * len(self.dilations))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "steps": self.steps, "n_features": self.n_features,
                "features": self.features, "seed": self.seed, "differences": self.differences,
                "min_biases": self.min_biases}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RandomConvolutions:
        # saved before the setting: one bias per kernel and dilation; Keras' own from_config reads the dtype
        return super().from_config({"min_biases": 1, **config})
