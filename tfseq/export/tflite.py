"""TF Lite export for edge test stations: builtin ops only, float32 in and out.

Keras 3 recurrent layers do not convert with ``from_keras_model`` on TF 2.21
(``TensorListReserve`` needs a static element shape), and ``SELECT_TF_OPS``
brings Flex ops the standalone LiteRT runtime lacks. What converts with
builtin ops alone: a float32 copy with ``batch_size=1`` and static shapes,
exported to a temporary SavedModel and converted with ``from_saved_model``.
In that copy each recurrent layer, masked or not, runs as one builtin ``WHILE``
loop (:mod:`tfseq.export._loop`): the file is little more than its weights.
The full-int8 mode gets loops whose every variable changes each step (the
TF 2.21 calibrator crashes on a loop variable passed through unchanged).

Full-int8 quantises the input with one scale for all features, so raw
measurements of very different ranges (Vdd ~1 V beside Idd ~250 mA) lose
their small-range features. The ``int8`` mode therefore keeps every op that
sees raw values (masking and the normalisation) and the summary branch in float and quantises the
rest, through the converter's selective quantisation.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfseq.errors import ExportError, InputError, MissingDependencyError

if TYPE_CHECKING:  # Keras and TensorFlow are imported where they are used
    import keras
    import tensorflow as tf

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
#: Sequences of the representative data set used to calibrate ``int8``.
REPRESENTATIVE_SEQUENCES = 200

__all__ = ["QUANTIZATIONS", "convert_tflite", "export_tflite", "tflite_filename"]


def tflite_filename(name: str, quantize: str) -> str:
    """``<name>.tflite`` for float32, ``<name>-<quantize>.tflite`` otherwise."""
    return f"{name}.tflite" if quantize == "none" else f"{name}-{quantize}.tflite"


def require_litert() -> None:
    """Checks, before any work, that the LiteRT runtime that verifies and runs ``.tflite`` files
    is installed (``ai-edge-litert``, a dependency of tfseq wherever it publishes wheels).

    Raises:
        MissingDependencyError: (exit status 2 on the command line) naming the install command.
    """
    try:
        found = importlib.util.find_spec("ai_edge_litert") is not None
    except (ImportError, ValueError):  # blocked in sys.modules, or a broken installation
        found = False
    if not found:
        raise MissingDependencyError("ai-edge-litert", "Verifying and running TF Lite artifacts")


def _check_quantize(quantize: str) -> None:
    if quantize not in QUANTIZATIONS:
        raise InputError(
            f"Received an invalid value for argument quantize, expected one of "
            f"{', '.join(QUANTIZATIONS)}, got {quantize!r}."
        )


#: Layers whose ops stay float in the ``int8`` mode: those that see raw measurements, and the
#: summary branch (step positions up to the sequence length, segment indices by ``floor`` and
#: squared deviations lose their meaning on one int8 scale), the random convolutions (soft
#: counts of steps above biases, a hundredth of a spread wide) and the competing convolutions
#: (which of eight kernels is largest: on one int8 scale they tie; in int8 the default's
#: probabilities moved by up to 0.10 in tests/test_export_formats.py, 0.004 without that layer).
FLOAT_LAYERS = ("normalization", "masking", "summary", "random_convolutions", "competing_convolutions")


def _raw_value_nodes(float_model: bytes) -> list[str]:
    """Output tensor names of the ops of :data:`FLOAT_LAYERS` and those that read the input."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=float_model)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    inputs = {d["index"] for d in interpreter.get_input_details()}
    nodes = []
    for op in interpreter._get_ops_details():  # noqa: SLF001  (the only op-level view)
        outputs = [names[i] for i in op["outputs"] if i in names]
        if inputs & set(int(i) for i in op["inputs"]) or any(
            any(layer in n for layer in FLOAT_LAYERS) for n in outputs
        ):
            nodes.extend(outputs)
    return nodes


@contextlib.contextmanager
def _quiet_native_output() -> Iterator[None]:
    """Silences the converter's C++ prints (``fully_quantize: 0, ...``) and its deprecation warnings."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _strip_tensor_names(flat: bytes) -> bytes:
    """Drops the names of inner tensors (kept: the input and outputs).

    The unrolled graph has ~20 tensors per step and cell; their TensorFlow
    names are debugging aids only (signatures refer to tensor indices) and
    take 4 % of a float32 file and up to 18 % of an int8 one.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flat))
    for k, subgraph in enumerate(model.subgraphs):
        keep = set(subgraph.inputs) | set(subgraph.outputs) if k == 0 else set()
        for i, tensor in enumerate(subgraph.tensors):
            if i not in keep:
                tensor.name = b""
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _saved_clone(model: keras.Model, path: Path, *, steps: int, rotate: bool = False) -> str:
    """Exports the float32 while-loop clone of ``model`` as a SavedModel at ``path``.

    The batch axis stays dynamic: the file runs one device at a time on an edge station
    (batch 1, the size it allocates by default) and in batches where many are scored.
    """
    from tfseq.export._graph import export_clone

    export_clone(model, steps=steps, batch_size=None, unroll=True, loop=True, rotate=rotate).export(
        str(path), verbose=False
    )
    return str(path)


def _converter(saved: str) -> tf.lite.TFLiteConverter:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(saved)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return conv


#: Ops kept in float in the full-int8 sequence file of a streaming model (an answer after every
#: step): with them in int8 a streaming LSTM-128 agreed with Keras on 84 % of its per-step answers
#: (max abs difference 0.82); with the elementwise and data-movement ops in float, 99.6 % (0.011).
STREAMING_FLOAT_OPS = ("MUL", "ADD", "SUB", "LOGISTIC", "TANH", "SPLIT", "MAXIMUM", "RELU",
                       "CONCATENATION", "STRIDED_SLICE", "GATHER", "ONE_HOT", "RESHAPE")


def _convert_int8(saved: str, calibration: np.ndarray, float_ops: tuple[str, ...] = ()) -> bytes:
    """Full int8, the ops that see raw values (and ``float_ops``) kept in float."""
    import tensorflow as tf

    def dataset() -> Iterator[list[np.ndarray]]:
        for row in calibration:
            yield [row[None]]

    conv = _converter(saved)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = dataset
    # One scale per weight tensor instead of one per output channel: per-channel scales and int64
    # zero points of the 4x128 gate rows were 18 KB of a 101 KB LSTM-128 file (0.34x of float32,
    # now 0.28x) and bought no agreement (99.8 % per channel, 99.9 % per tensor; 1,000 devices).
    conv._experimental_disable_per_channel = True  # noqa: SLF001  (the converter's only switch)
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=_raw_value_nodes(_converter(saved).convert()),
        denylisted_ops=list(float_ops) or None,
    )
    with _quiet_native_output():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=dataset, debug_options=options
        )
    with _quiet_native_output():
        return debugger.get_nondebug_quantized_model()


def convert_tflite(
    model: keras.Model,
    *,
    steps: int,
    quantize: str | tuple[str, ...] = "none",
    representative: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, bytes]:
    """Converts ``model`` to TF Lite flatbuffers, one per quantisation mode.

    Args:
        model: A Keras model built by :func:`tfseq.build_model` (any precision).
        steps: Fixed number of steps of the artifact's input.
        quantize: One mode or several of ``"none"`` (float32), ``"float16"``
            (float16 weights), ``"dynamic"`` (int8 weights, float activations)
            and ``"int8"`` (int8 weights and activations, calibrated on
            ``representative``; the normalisation stays float).
        representative: Raw training sequences ``[n, steps, features]`` to
            calibrate ``int8``; up to :data:`REPRESENTATIVE_SEQUENCES` are drawn.
        seed: Seed of the draw of representative sequences.

    Returns:
        ``{mode: flatbuffer bytes}`` in the order asked.

    Raises:
        InputError: for an unknown mode, or ``int8`` without representative data.
        ExportError: if the converter fails.

    Examples:
        >>> flat = convert_tflite(model, steps=20, quantize=("none", "dynamic"))
        >>> len(flat["dynamic"]) < len(flat["none"])
        True
    """
    import tensorflow as tf

    modes = (quantize,) if isinstance(quantize, str) else tuple(quantize)
    for mode in modes:
        _check_quantize(mode)
    if "int8" in modes:
        if representative is None or len(representative) == 0:
            raise InputError(
                "Received no representative data for quantize='int8'; pass training sequences "
                "as representative (the int8 calibration needs them)."
            )
        representative = np.asarray(representative, dtype=np.float32)
        if representative.ndim != 3 or representative.shape[1] != steps:
            raise InputError(
                f"Received representative data of shape {representative.shape}, expected "
                f"[n, {steps}, features]."
            )
        rng = np.random.default_rng(seed)
        take = rng.permutation(len(representative))[:REPRESENTATIVE_SEQUENCES]
        calibration = representative[np.sort(take)]

    result: dict[str, bytes] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="tfseq-tflite-") as tmp:
            loop = None
            for mode in modes:
                if mode == "int8":
                    calibratable = _saved_clone(model, Path(tmp) / "rotate", steps=steps, rotate=True)
                    from tfseq.export.step import is_streaming

                    float_ops = STREAMING_FLOAT_OPS if is_streaming(model) else ()
                    result["int8"] = _convert_int8(calibratable, calibration, float_ops)
                    continue
                loop = loop or _saved_clone(model, Path(tmp) / "loop", steps=steps)
                conv = _converter(loop)
                if mode != "none":
                    conv.optimizations = [tf.lite.Optimize.DEFAULT]
                if mode == "float16":
                    conv.target_spec.supported_types = [tf.float16]
                result[mode] = conv.convert()
    except (InputError, ExportError):
        raise
    except Exception as exc:  # noqa: BLE001  (converter errors are many and untyped)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"TF Lite conversion of {model.name} failed: {first}") from exc
    return {mode: _strip_tensor_names(result[mode]) for mode in modes}


def export_tflite(
    model: keras.Model,
    filepath: Path,
    *,
    steps: int,
    quantize: str = "none",
    representative: np.ndarray | None = None,
    seed: int = 0,
) -> Path:
    """Writes one TF Lite file of ``model`` to ``filepath``.

    Args:
        model: A Keras model built by :func:`tfseq.build_model`.
        filepath: Destination ``.tflite`` path.
        steps: Fixed number of steps of the artifact's input.
        quantize: ``"none"``, ``"float16"``, ``"dynamic"`` or ``"int8"``.
        representative: Training sequences to calibrate ``int8``.
        seed: Seed of the draw of representative sequences.

    Returns:
        ``filepath``.

    Raises:
        InputError: for an unknown mode, or ``int8`` without representative data.
        ExportError: if the converter fails.
    """
    _check_quantize(quantize)
    flat = convert_tflite(
        model, steps=steps, quantize=quantize, representative=representative, seed=seed
    )[quantize]
    filepath = Path(filepath)
    filepath.write_bytes(flat)
    return filepath


def _step_saved_model(model: keras.Model, path: Path) -> str:
    """Writes a SavedModel holding only the ``step`` signature of ``model``'s step graph."""
    import keras

    from tfseq.export.step import STEP_SIGNATURE, StepGraph

    graph = StepGraph(model)
    archive = keras.export.ExportArchive()
    archive.track(graph.clone)
    archive.add_endpoint(name=STEP_SIGNATURE, fn=graph.__call__, input_signature=graph.signature())
    archive.write_out(str(path), verbose=False)
    return str(path)


def _step_raw_nodes(float_model: bytes) -> list[str]:
    """Output tensor names of the ops that see the raw ``features`` (the normalisation)."""
    from ai_edge_litert.interpreter import Interpreter

    from tfseq.export.step import FEATURES, STEP_SIGNATURE

    interpreter = Interpreter(model_content=float_model)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    raw = {interpreter.get_signature_runner(STEP_SIGNATURE).get_input_details()[FEATURES]["index"]}
    nodes = []
    for op in interpreter._get_ops_details():  # noqa: SLF001  (the only op-level view)
        outputs = [names[i] for i in op["outputs"] if i in names]
        if raw & set(int(i) for i in op["inputs"]) or any("normalization" in n for n in outputs):
            nodes.extend(outputs)
            raw |= set(int(i) for i in op["outputs"]) if not any("normalization" in n for n in outputs) else set()
    return nodes


def step_calibration(model: keras.Model, representative: np.ndarray, *, seed: int = 0,
                     samples: int = REPRESENTATIVE_SEQUENCES * 4) -> list[dict[str, np.ndarray]]:
    """Calibration inputs of the int8 step artifact: single steps of the representative sequences
    with the states the model carries into them (run step by step, zeros at the first step).

    Returns:
        Up to ``samples`` dicts ``{features: [1, F], state_<i>_<s>: [1, units] ...}``.
    """
    from tfseq.export.step import FEATURES, StepGraph

    representative = np.asarray(representative, dtype=np.float32)
    rng = np.random.default_rng(seed)
    take = np.sort(rng.permutation(len(representative))[:REPRESENTATIVE_SEQUENCES])
    x = representative[take]
    graph = StepGraph(model)
    _, states = graph.replay(x)
    pairs = [(i, t) for i in range(len(x)) for t in range(x.shape[1])]
    chosen = rng.permutation(len(pairs))[:samples]
    rows = []
    for k in sorted(chosen):
        i, t = pairs[k]
        row = {FEATURES: x[i:i + 1, t]}
        row.update({slot.input: s[i:i + 1, t] for slot, s in zip(graph.slots, states)})
        rows.append(row)
    return rows


#: Ops of the int8 step graph kept in float: the gates, the cell update and the normalisation.
#: Only the matrix products run in int8. Measured on a streaming LSTM-128 (400 held-out devices x
#: 20 steps): class agreement at every step 99.4 % and 2.7 us per step, against 98.8 % and 7.9 us
#: with every op int8 (the re-quantisation between the small elementwise ops cost more than they
#: saved, and the cell state lost precision at every step).
STEP_FLOAT_OPS = ("MUL", "ADD", "SUB", "LOGISTIC", "TANH", "SPLIT", "MAXIMUM", "RELU")


def convert_step_tflite(
    model: keras.Model,
    *,
    quantize: str | tuple[str, ...] = "none",
    representative: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, bytes]:
    """Converts the step graph of a streaming ``model`` (:mod:`tfseq.export.step`) to TF Lite.

    The flat buffer has one signature, ``step``: ``features`` and the states in, the heads and
    the new states out; builtin ops only, float32 interface. ``int8`` is calibrated on single
    steps of ``representative`` sequences with the states the model carries into them; its
    matrix products run in int8, the normalisation and the elementwise gate ops
    (:data:`STEP_FLOAT_OPS`) in float.

    Args:
        model: A streaming Keras model (``ModelSpec(streaming=True)``).
        quantize: One mode or several of :data:`QUANTIZATIONS`.
        representative: Raw training sequences ``[n, steps, features]`` (needed for ``int8``).
        seed: Seed of the draw of calibration steps.

    Returns:
        ``{mode: flatbuffer bytes}`` in the order asked.

    Raises:
        InputError: for an unknown mode, a model that is not streaming, or ``int8`` without
            representative data.
        ExportError: if the converter fails.
    """
    import tensorflow as tf

    from tfseq.export.step import STEP_SIGNATURE, is_streaming

    modes = (quantize,) if isinstance(quantize, str) else tuple(quantize)
    for mode in modes:
        _check_quantize(mode)
    if not is_streaming(model):
        raise InputError(f"Received model {model.name!r}, expected a streaming model for step artifacts.")
    if "int8" in modes and (representative is None or len(representative) == 0):
        raise InputError(
            "Received no representative data for quantize='int8'; pass training sequences "
            "as representative (the int8 calibration needs them)."
        )
    result: dict[str, bytes] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="tfseq-step-tflite-") as tmp:
            saved = _step_saved_model(model, Path(tmp) / "step")

            def converter() -> tf.lite.TFLiteConverter:
                conv = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[STEP_SIGNATURE])
                conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
                return conv

            for mode in modes:
                conv = converter()
                if mode != "none":
                    conv.optimizations = [tf.lite.Optimize.DEFAULT]
                if mode == "float16":
                    conv.target_spec.supported_types = [tf.float16]
                if mode == "int8":
                    rows = step_calibration(model, np.asarray(representative), seed=seed)

                    def dataset() -> Iterator[dict[str, np.ndarray]]:
                        yield from rows

                    conv.representative_dataset = dataset
                    conv._experimental_disable_per_channel = True  # noqa: SLF001  (as _convert_int8)
                    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                                      tf.lite.OpsSet.TFLITE_BUILTINS]
                    options = tf.lite.experimental.QuantizationDebugOptions(
                        denylisted_nodes=_step_raw_nodes(converter().convert()),
                        denylisted_ops=list(STEP_FLOAT_OPS))
                    with _quiet_native_output():
                        debugger = tf.lite.experimental.QuantizationDebugger(
                            converter=conv, debug_dataset=dataset, debug_options=options)
                    with _quiet_native_output():
                        result[mode] = debugger.get_nondebug_quantized_model()
                    continue
                result[mode] = conv.convert()
    except (InputError, ExportError):
        raise
    except Exception as exc:  # noqa: BLE001  (converter errors are many and untyped)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"TF Lite step conversion of {model.name} failed: {first}") from exc
    return {mode: _strip_tensor_names(result[mode]) for mode in modes}
