"""A streaming runner over a step artifact: one recurrent state per device, answers every cycle.

A step artifact (:mod:`tfseq.export.step`) holds no state; :class:`StreamingRunner` keeps each
device's state between calls, so one interpreter serves many devices interleaved, as on a
multi-site tester. Each :meth:`StreamingRunner.update` feeds one device's next cycle and returns
the task head's answer and, when the export carries an adaptive-test policy
(:class:`tfseq.models.policy.AdaptiveTestPolicy`), its decision at that step.

Runtimes: ``.tflite`` in the standalone LiteRT runtime (``ai_edge_litert``; TensorFlow is never
imported), ``.onnx`` in onnxruntime, a SavedModel directory's ``step`` signature in TensorFlow.

Examples:
    >>> runner = open_step_runner(Path("export/lstm-step.tflite"))
    >>> probabilities, decision = runner.update("wafer3-x12-y40", cycle_measurements)
    >>> runner.reset("wafer3-x12-y40")  # the device left the socket
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tfseq.errors import InputError
from tfseq.models.policy import AdaptiveTestPolicy

#: Name of the step input of raw measurements (as :data:`tfseq.export.step.FEATURES`; repeated
#: here so that this module imports no TensorFlow).
FEATURES = "features"
_MANIFEST = "manifest.json"

__all__ = ["StepBackend", "StreamingRunner", "open_step_runner"]


class StepBackend(Protocol):
    """One step artifact in its runtime: named float32 arrays in, named arrays out."""

    runtime: str
    n_features: int
    states: dict[str, int]  # state input name -> units, in the artifact's order
    outputs: list[str]  # head outputs (not the new states)

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs one step for a batch of devices."""
        ...


class _LiteRTStep:
    """A ``.tflite`` step artifact in LiteRT (its default XNNPACK delegate when it applies).

    The interpreter is driven tensor by tensor: the signature runner would reallocate every
    tensor at every call, a large part of a step that takes microseconds.
    """

    runtime = "ai_edge_litert"

    def __init__(self, path: Path, num_threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        try:
            interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
            runner = interpreter.get_signature_runner("step")
        except ValueError as exc:
            raise InputError(f"{path}: not a step artifact (no signature 'step'): {exc}") from None
        except RuntimeError:  # the default delegate refused the graph
            interpreter = Interpreter(
                model_path=str(path), num_threads=num_threads,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            runner = interpreter.get_signature_runner("step")
        self.interpreter = interpreter
        inputs = runner.get_input_details()
        if FEATURES not in inputs:
            raise InputError(f"{path}: not a step artifact (no input {FEATURES!r}).")
        self.n_features = int(inputs[FEATURES]["shape_signature"][-1])
        self.states = {k: int(v["shape_signature"][-1]) for k, v in sorted(inputs.items()) if k != FEATURES}
        self._inputs = {k: int(v["index"]) for k, v in inputs.items()}
        self._outputs = {k: int(v["index"]) for k, v in runner.get_output_details().items()}
        self.outputs = sorted(k for k in self._outputs if not k.startswith("new_state_"))
        self._batch = -1

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        interpreter = self.interpreter
        batch = len(feeds[FEATURES])
        if batch != self._batch:
            for name, index in self._inputs.items():
                interpreter.resize_tensor_input(index, [batch, feeds[name].shape[-1]])
            interpreter.allocate_tensors()
            self._batch = batch
        for name, index in self._inputs.items():
            interpreter.set_tensor(index, feeds[name])
        interpreter.invoke()
        return {name: interpreter.get_tensor(index) for name, index in self._outputs.items()}


class _OnnxStep:
    """An ONNX step artifact in onnxruntime (CPU)."""

    runtime = "onnxruntime"

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in self._session.get_inputs()}
        if FEATURES not in inputs:
            raise InputError(f"{path}: not a step artifact (no input {FEATURES!r}).")
        self.n_features = int(inputs[FEATURES].shape[-1])
        self.states = {k: int(v.shape[-1]) for k, v in inputs.items() if k != FEATURES}
        self._names = [o.name for o in self._session.get_outputs()]
        self.outputs = [n for n in self._names if not n.startswith("new_state_")]

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._names, self._session.run(self._names, feeds)))


class _SavedModelStep:
    """The ``step`` signature of a SavedModel, in TensorFlow."""

    runtime = "tensorflow"

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        signatures = tf.saved_model.load(str(path)).signatures
        if "step" not in signatures:
            raise InputError(f"{path}: this SavedModel has no signature 'step' (not a streaming model).")
        self._fn = signatures["step"]
        _, specs = self._fn.structured_input_signature
        self.n_features = int(specs[FEATURES].shape[-1])
        self.states = {k: int(v.shape[-1]) for k, v in specs.items() if k != FEATURES}
        self.outputs = sorted(k for k in self._fn.structured_outputs if not k.startswith("new_state_"))

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        out = self._fn(**{k: tf.constant(v) for k, v in feeds.items()})
        return {k: v.numpy() for k, v in out.items()}


def _savedmodel_dir(path: Path) -> Path | None:
    """``path`` itself, or its highest integer version, when it holds a SavedModel."""
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted((p for p in path.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    return versions[-1] if versions and (versions[-1] / "saved_model.pb").is_file() else None


def _find_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of the export holding ``path`` (the file's directory, or up to
    ``savedmodel/<name>/<version>``'s export directory)."""
    for parent in [path.parent, *path.parents][:4]:
        candidate = parent / _MANIFEST
        if candidate.is_file():
            try:
                manifest = json.loads(candidate.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"{candidate}: unreadable manifest ({exc}).") from None
            return manifest if isinstance(manifest, dict) else None
    return None


class StreamingRunner:
    """Keeps one recurrent state per device id over one stateless step artifact.

    Args:
        backend: The step artifact in its runtime (see :func:`open_step_runner`).
        head: The output :meth:`update` returns (default: the manifest's head, else the first).
        policy: The adaptive-test policy whose decisions :meth:`update` returns, or None.
        positive_class: Index of the failing class in a multi-class head (a binary head's single
            output is P(fail)).

    Examples:
        >>> runner = open_step_runner(Path("export/lstm-step-dynamic.tflite"))
        >>> for device, x_t in tester_results():  # devices interleaved, one cycle each
        ...     p, decision = runner.update(device, x_t)
        ...     if decision is not None:
        ...         bin_device(device, decision)
        ...         runner.reset(device)
    """

    def __init__(self, backend: StepBackend, *, head: str | None = None,
                 policy: AdaptiveTestPolicy | None = None, positive_class: int | None = None) -> None:
        self.backend = backend
        if head is not None and head not in backend.outputs:
            raise InputError(f"Received head {head!r}; the step artifact has outputs {backend.outputs}.",
                             arguments=("head",))
        self.head = head or backend.outputs[0]
        self.policy = policy
        self.positive_class = positive_class if positive_class is not None else (
            policy.positive_class if policy is not None else 1)
        self._states: dict[Hashable, dict[str, np.ndarray]] = {}
        self._steps: dict[Hashable, int] = {}

    @property
    def n_features(self) -> int:
        """Measurements per step the artifact takes."""
        return self.backend.n_features

    @property
    def devices(self) -> list[Hashable]:
        """Ids of the devices with a state (fed at least once and not reset)."""
        return list(self._states)

    def steps_seen(self, device_id: Hashable) -> int:
        """Cycles fed for ``device_id`` since it started (0 for an unknown device)."""
        return self._steps.get(device_id, 0)

    def zero_state(self, batch: int = 1) -> dict[str, np.ndarray]:
        """The state that starts a device: zeros, ``{state_<i>_<s>: [batch, units]}``."""
        return {k: np.zeros((batch, u), dtype=np.float32) for k, u in self.backend.states.items()}

    def _features(self, x: Any, argument: str) -> np.ndarray:
        try:
            x = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError(f"Received {argument} that is not numeric; expected {self.n_features} "
                             "measurements (float32).", arguments=(argument,)) from None
        shape = tuple(x.shape)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[-1] != self.n_features:
            raise InputError(
                f"Received {argument} of shape {shape}, expected ({self.n_features},) or "
                f"[batch, {self.n_features}] raw measurements.", arguments=(argument,)
            )
        return np.ascontiguousarray(x)

    def step(self, features: Any, states: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """One stateless step for a batch of devices: the artifact's own interface, checked.

        Args:
            features: ``[batch, n_features]`` raw measurements (or ``[n_features]``).
            states: ``{state_<i>_<s>: [batch, units]}``, every state of the layout.

        Returns:
            ``(outputs, new_states)``: ``{head: [batch, k]}`` and ``{state_<i>_<s>: [batch, units]}``.

        Raises:
            InputError: for a wrong feature count, a missing or unknown state, or a state of
                the wrong shape.
        """
        x = self._features(features, "features")
        names = set(self.backend.states)
        if set(states) != names:
            raise InputError(
                f"Received states {sorted(states)}, expected {sorted(names)} (the step artifact's "
                "state layout).", arguments=("states",)
            )
        feeds = {FEATURES: x}
        for name, units in self.backend.states.items():
            value = np.asarray(states[name], dtype=np.float32)
            if value.shape != (len(x), units):
                raise InputError(
                    f"Received state {name} of shape {tuple(value.shape)}, expected ({len(x)}, {units}) "
                    "(batch, units).", arguments=("states",)
                )
            feeds[name] = np.ascontiguousarray(value)
        out = self.backend(feeds)
        new_states = {k: np.asarray(out[f"new_{k}"]) for k in self.backend.states}
        return {k: np.asarray(out[k]) for k in self.backend.outputs}, new_states

    def p_fail(self, output: np.ndarray) -> float:
        """P(fail) in one device's head output (a binary head's single value, else the failing
        class's probability)."""
        flat = np.asarray(output).reshape(-1)
        return float(flat[0] if flat.size == 1 else flat[self.positive_class])

    def update(self, device_id: Hashable, x_t: Any) -> tuple[np.ndarray, str | None]:
        """Feeds one device's next cycle and keeps its new state.

        Args:
            device_id: Any hashable id; an unknown device starts from zero states.
            x_t: Its raw measurements of this cycle, ``[n_features]``.

        Returns:
            ``(output, decision)``: the head's output for this device (``[k]``, probabilities for
            a classifier) and the policy's decision at this step (``fail``, ``pass``,
            ``full-test`` at the policy's last step), or None with no policy, while undecided,
            or past the policy's steps.

        Raises:
            InputError: for measurements of the wrong shape.
        """
        x = self._features(x_t, "x_t")
        if len(x) != 1:
            raise InputError(f"Received x_t of shape {tuple(np.shape(x_t))}, expected one cycle "
                             f"({self.n_features},) of one device.", arguments=("x_t",))
        state = self._states.get(device_id) or self.zero_state()
        outputs, new_state = self.step(x, state)
        self._states[device_id] = new_state
        step = self._steps.get(device_id, 0) + 1
        self._steps[device_id] = step
        output = outputs[self.head][0]
        decision = None
        if self.policy is not None and step <= self.policy.steps:
            decision = self.policy.decide(step, self.p_fail(output))
        return output, decision

    def reset(self, device_id: Hashable) -> None:
        """Forgets a device (its next :meth:`update` starts from zero states)."""
        self._states.pop(device_id, None)
        self._steps.pop(device_id, None)


def open_step_runner(
    path: Path,
    *,
    policy: AdaptiveTestPolicy | None = None,
    use_manifest: bool = True,
    num_threads: int | None = None,
) -> StreamingRunner:
    """Opens a step artifact in its own runtime as a :class:`StreamingRunner`.

    Args:
        path: ``<name>-step[-<mode>].tflite`` (LiteRT, no TensorFlow imported),
            ``<name>-step.onnx`` (onnxruntime), or a SavedModel directory (a version directory,
            or ``savedmodel/<name>`` for its highest version) with a ``step`` signature.
        policy: The adaptive-test policy to apply; default: the one in the export's
            ``manifest.json`` (when ``use_manifest``), else none.
        use_manifest: Read the head and the policy from the export's ``manifest.json``.
        num_threads: LiteRT threads (default: LiteRT's own).

    Returns:
        The runner, with no device yet.

    Raises:
        InputError: if ``path`` is missing or not a step artifact.
        MissingDependencyError: if the runtime of that format is not installed.
    """
    from tfseq.errors import MissingDependencyError

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such step artifact.", arguments=("path",))
    backend: StepBackend
    try:
        if path.is_file() and path.suffix == ".tflite":
            backend = _LiteRTStep(path, num_threads)
        elif path.is_file() and path.suffix == ".onnx":
            backend = _OnnxStep(path)
        elif path.is_dir() and (version := _savedmodel_dir(path)) is not None:
            backend = _SavedModelStep(version)
            path = version
        else:
            raise InputError(f"{path}: not a step artifact; expected a .tflite or .onnx file or a "
                             "SavedModel directory with a 'step' signature.", arguments=("path",))
    except ImportError as exc:
        package = {"ai_edge_litert": "ai-edge-litert"}.get(str(exc.name), str(exc.name))
        raise MissingDependencyError(package, "Running a step artifact") from exc
    manifest = _find_manifest(path) if use_manifest else None
    head = None
    if manifest is not None:
        if policy is None and isinstance(manifest.get("policy"), dict):
            policy = AdaptiveTestPolicy.from_dict(manifest["policy"])
        if manifest.get("head") in backend.outputs:
            head = str(manifest["head"])
    return StreamingRunner(backend, head=head, policy=policy)
