"""The precision policy: which dtypes a model computes in.

``auto`` picks what measured fastest for recurrent models on the hardware at
hand: ``mixed_float16`` on GPUs with tensor cores (compute capability 7.0 or
newer), ``float32`` on CPUs. On a 2-core AMD EPYC with AVX512-BF16,
``mixed_bfloat16`` trained an LSTM-128 at 13,200 sequences/s against 14,600
for float32 and a BiLSTM-128 at 7,800 against 8,600 (best epoch of four); on
a 2-core CPU with AMX it gained 3 % for LSTM and lost 2 % for GRU, and
predicted 6-36 % slower. So it is no default there. Output layers always stay
float32.
"""

from __future__ import annotations

from tfseq.errors import InputError

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def _tensor_core_gpu() -> bool:
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= (7, 0):
            return True
    return False


def resolve_precision(precision: str = "auto") -> str:
    """Returns the concrete Keras dtype policy name for ``precision``.

    Args:
        precision: ``"auto"``, ``"float32"``, ``"mixed_float16"`` or
            ``"mixed_bfloat16"``.

    Returns:
        One of ``"float32"``, ``"mixed_float16"``, ``"mixed_bfloat16"``.

    Raises:
        InputError: for an unknown policy name.
    """
    if precision in POLICIES:
        return precision
    if precision != "auto":
        raise InputError(
            f"Received an invalid value for argument precision, expected one of auto, "
            f"{', '.join(POLICIES)}, got {precision!r}."
        )
    if _tensor_core_gpu():
        return "mixed_float16"
    return "float32"
