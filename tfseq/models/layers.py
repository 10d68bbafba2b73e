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
