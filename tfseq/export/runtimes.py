"""Run any tfseq artifact in its own runtime: one interface for predict and verification.

``load_runner(path)`` returns a :class:`Runner` for a RUN directory, a
``.keras`` file, a SavedModel directory, a ``.tflite`` or an ``.onnx`` file.
A runner maps float32 ``[n, steps, features]`` raw measurements to a dict of
output name -> numpy array, exactly as the Keras model's outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from tfseq.errors import InputError
from tfseq.run import DataContract

if TYPE_CHECKING:  # Keras is imported where it is used
    import keras


#: Sequences per invoke when a TF Lite file has a dynamic batch axis: with dynamic-range weights
#: an LSTM-128 ran 140K sequences/s at 128 and 91K at 1,024 on 2 cores (34 us at batch 1).
TFLITE_BATCH = 128
#: LiteRT threads for the step runner: every core, as onnxruntime and PyTorch use.
_THREADS = os.cpu_count() or 1
#: Lanes of whole-sequence TF Lite and ONNX runners: one single-threaded interpreter or session
#: per CPU this process may use, each running its share of a call's batches on a thread of its
#: own (both runtimes release the GIL while they run). LSTM-128, batches of 128, 2 cores (Xeon,
#: AVX-512): TF Lite dynamic-range 58,200 sequences/s against 28,400 for one interpreter on two
#: threads (float32 43,300 against 23,800); onnxruntime 36,000 against 28,400.
_LANES_MAX = 8


def _lanes() -> int:
    from tfseq.cpus import available_cpus

    return max(1, min(available_cpus(), _LANES_MAX))


def _in_lanes(handles: list[Any], open_handle: Callable[[], Any],
              call: Callable[[Any, np.ndarray], dict[str, np.ndarray]], x: np.ndarray,
              batch: int) -> dict[str, np.ndarray]:
    """``call(handle, batch_of_x)`` over ``x`` in batches: with more than one batch, the batches
    are dealt out in contiguous runs to one handle (interpreter, session) per lane, each on a
    thread of its own, and the outputs put back in order. ``handles`` grows with ``open_handle``
    on the first call that has work for more lanes."""
    starts = list(range(0, len(x), batch))
    lanes = min(_lanes(), len(starts)) if len(starts) > 1 else 1
    while len(handles) < lanes:
        handles.append(open_handle())

    def run(handle: Any, mine: list[int]) -> dict[str, list[np.ndarray]]:
        out: dict[str, list[np.ndarray]] = {}
        for i in mine:
            for name, value in call(handle, x[i:i + batch]).items():
                out.setdefault(name, []).append(np.asarray(value))
        return out

    if lanes <= 1:
        parts = [run(handles[0], starts)]  # no sequences: no outputs
    else:
        from concurrent.futures import ThreadPoolExecutor

        shares = [[int(i) for i in part] for part in np.array_split(starts, lanes)]
        with ThreadPoolExecutor(lanes, thread_name_prefix="tfseq-lane") as pool:
            parts = list(pool.map(run, handles[:lanes], shares))
    return {k: np.concatenate([v for part in parts for v in part[k]]) for k in parts[0]}


@dataclass
class Runner:
    """A loaded artifact.

    Attributes:
        kind: ``keras``, ``savedmodel``, ``tflite`` or ``onnx``; ``tflite-step`` or
            ``onnx-step`` for a step artifact of a streaming model (sequences are fed cycle by
            cycle from zero states; outputs ``[n, steps, k]``).
        predict: float32 ``[n, steps, features]`` -> ``{output name: array}``.
        contract: The data contract (from the RUN dir or the export manifest),
            or None when the artifact carries none.
        steps: Fixed number of steps the artifact takes, or None for any.
    """

    kind: str
    predict: Callable[[np.ndarray], dict[str, np.ndarray]]
    contract: DataContract | None
    steps: int | None


def load_runner(path: Path, *, verify: bool = True) -> Runner:
    """Loads the artifact at ``path`` in its own runtime.

    Args:
        path: A RUN directory, ``.keras`` file, SavedModel directory,
            ``.tflite`` or ``.onnx`` file.
        verify: Check an exported artifact's sha256 against the
            ``manifest.json`` beside it and refuse it on a mismatch.

    Raises:
        InputError: if ``path`` is missing, not an artifact tfseq knows, or
            (with ``verify``) does not match its manifest.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such artifact.")
    if path.is_dir() and (path / "contract.json").is_file():
        from tfseq.run import load_run

        model, _, contract = load_run(path)
        return _keras_runner(model, contract)
    if path.suffix == ".keras":
        from tfseq.models.io import load_model

        return _keras_runner(load_model(path), None)
    if path.is_dir():
        version_dir = _savedmodel_version(path)
        if version_dir is not None:
            return _savedmodel_runner(version_dir, verify)
    if path.is_file() and path.suffix in (".tflite", ".onnx") and _is_step_artifact(path):
        return _step_runner(path, verify)
    if path.is_file() and path.suffix == ".tflite":
        return _tflite_runner(path, verify)
    if path.is_file() and path.suffix == ".onnx":
        return _onnx_runner(path, verify)
    raise InputError(
        f"{path}: not a tfseq artifact; expected a RUN directory, a .keras file, a SavedModel "
        "directory, a .tflite or an .onnx file."
    )


def _manifest_contract(path: Path, export_dir: Path, verify: bool) -> tuple[DataContract | None, int | None]:
    """Contract and steps from ``manifest.json`` of the export holding ``path``.

    With ``verify``, checks the artifact's sha256 against the manifest when the manifest lists it.
    """
    from tfseq.export.manifest import MANIFEST, check_manifest, read_manifest

    if not (export_dir / MANIFEST).is_file():
        return None, None
    manifest = check_manifest(export_dir, only=path) if verify else read_manifest(export_dir)
    contract = manifest.get("contract")
    steps = (manifest.get("input") or {}).get("steps")
    return (DataContract.from_config(contract) if isinstance(contract, dict) else None), steps


def _savedmodel_version(path: Path) -> Path | None:
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted(
        (int(p.name), p) for p in path.iterdir()
        if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file()
    )
    return versions[-1][1] if versions else None


def _check_shape(x: np.ndarray, steps: int | None, n_features: int | None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or (steps and x.shape[1] != steps) or (n_features and x.shape[2] != n_features):
        raise InputError(
            f"Received sequences of shape {x.shape}, expected [n, {steps or 'steps'}, "
            f"{n_features or 'features'}]."
        )
    return x


def _savedmodel_runner(version_dir: Path, verify: bool) -> Runner:
    from tfseq.startup import start_tensorflow

    start_tensorflow()
    import tensorflow as tf

    contract, steps = _manifest_contract(version_dir, version_dir.parent.parent.parent, verify)
    try:
        fn = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{version_dir}: not a loadable SavedModel with serving_default ({exc}).") from None
    spec = fn.structured_input_signature[1]["sequence"]
    steps = steps or spec.shape[1]
    outputs = [k for k in fn.structured_outputs if k != "class_index"]

    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        x = _check_shape(x, steps, spec.shape[2])
        parts = [fn(sequence=tf.constant(x[i:i + 4096])) for i in range(0, len(x), 4096)]
        return {k: np.concatenate([p[k].numpy() for p in parts]) for k in outputs}

    return Runner("savedmodel", predict, contract, steps)


def _tflite_runner(path: Path, verify: bool) -> Runner:
    from tfseq.export.tflite import require_litert

    require_litert()
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    contract, steps = _manifest_contract(path, path.parent, verify)
    resolver = OpResolverType.AUTO

    def open_interpreter() -> Any:
        return Interpreter(model_path=str(path), num_threads=1, experimental_op_resolver_type=resolver)

    try:
        interpreter = open_interpreter()
        shape = interpreter.get_input_details()[0]["shape"]
        interpreter.get_signature_runner("serving_default")(sequence=np.zeros(shape, dtype=np.float32))
    except ValueError as exc:
        raise InputError(f"{path}: not a loadable TF Lite model ({exc}).") from None
    except RuntimeError:  # XNNPACK refuses some int8 graphs: fall back to the builtin kernels
        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interpreter = open_interpreter()
        shape = interpreter.get_input_details()[0]["shape"]
    steps = steps or int(shape[1])
    signature = interpreter.get_input_details()[0].get("shape_signature", shape)
    batch = TFLITE_BATCH if int(signature[0]) == -1 else 1  # files exported before the free batch axis: 1
    runners = [interpreter.get_signature_runner("serving_default")]

    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        x = _check_shape(x, steps, int(shape[2]))
        return _in_lanes(runners, lambda: open_interpreter().get_signature_runner("serving_default"),
                         lambda runner, part: runner(sequence=part), x, batch)

    return Runner("tflite", predict, contract, steps)


def _onnx_runner(path: Path, verify: bool) -> Runner:
    import onnxruntime as ort

    contract, steps = _manifest_contract(path, path.parent, verify)

    def open_session() -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    try:
        sessions = [open_session()]
    except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own untyped errors)
        raise InputError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]}).") from None
    shape = sessions[0].get_inputs()[0].shape
    steps = steps or (shape[1] if isinstance(shape[1], int) else None)
    names = [o.name for o in sessions[0].get_outputs()]
    feed = sessions[0].get_inputs()[0].name
    batch = TFLITE_BATCH if not isinstance(shape[0], int) else shape[0]

    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        x = _check_shape(x, steps, shape[2] if isinstance(shape[2], int) else None)
        return _in_lanes(sessions, open_session,
                         lambda session, part: dict(zip(names, session.run(names, {feed: part}))), x, batch)

    return Runner("onnx", predict, contract, steps)


def _is_step_artifact(path: Path) -> bool:
    """Whether a ``.tflite``/``.onnx`` file is a step artifact (:mod:`tfseq.export.step`)."""
    try:
        if path.suffix == ".tflite":
            from tfseq.export.tflite import require_litert

            require_litert()
            from ai_edge_litert.interpreter import Interpreter

            signatures = Interpreter(model_path=str(path)).get_signature_list()
            return "step" in signatures and "serving_default" not in signatures
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return "features" in {i.name for i in session.get_inputs()}
    except (ValueError, RuntimeError, OSError):
        return False
    except Exception:  # noqa: BLE001  (onnxruntime raises its own untyped errors; loading reports them)
        return False


def _step_runner(path: Path, verify: bool) -> Runner:
    """Whole sequences through a step artifact: every device from zero states, cycle by cycle,
    outputs ``[n, steps, k]`` as the streaming Keras model's."""
    from tfseq.export.streaming import open_step_runner

    contract, steps = _manifest_contract(path, path.parent, verify)
    backend = open_step_runner(path, use_manifest=False, num_threads=_THREADS).backend

    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        x = _check_shape(x, None, backend.n_features)
        out: dict[str, list[np.ndarray]] = {}
        for i in range(0, len(x), TFLITE_BATCH):
            batch = x[i:i + TFLITE_BATCH]
            state = {k: np.zeros((len(batch), u), dtype=np.float32) for k, u in backend.states.items()}
            per_step: dict[str, list[np.ndarray]] = {}
            for t in range(batch.shape[1]):
                result = backend({"features": np.ascontiguousarray(batch[:, t]), **state})
                state = {k: np.asarray(result[f"new_{k}"]) for k in backend.states}
                for name in backend.outputs:
                    per_step.setdefault(name, []).append(np.asarray(result[name]))
            for name, values in per_step.items():
                out.setdefault(name, []).append(np.stack(values, axis=1))
        return {k: np.concatenate(v) for k, v in out.items()}

    return Runner(path.suffix.lstrip(".") + "-step", predict, contract, steps)


def _keras_runner(model: keras.Model, contract: DataContract | None) -> Runner:
    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        out = model.predict(np.asarray(x, dtype=np.float32), batch_size=1024, verbose=0)
        return out if isinstance(out, dict) else {model.output_names[0]: out}

    steps = model.inputs[0].shape[1]
    return Runner("keras", predict, contract, steps)
