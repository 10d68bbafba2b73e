"""Verification: run every artifact in its own runtime and compare it with Keras.

* SavedModel: ``tf.saved_model.load`` in a fresh Python process.
* TF Lite: the standalone LiteRT runtime (``ai_edge_litert``) in a process
  where ``tensorflow`` cannot be imported, as on an edge test station.
* ONNX: onnxruntime.

Figures per artifact: max absolute difference over all outputs, class
agreement and metric change on the task head, batch-1 and batched latency.
:func:`parity_failures` turns them into one-line reasons against
:data:`THRESHOLDS`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tfseq.errors import ExportError

#: Parity thresholds: max abs difference for float artifacts; class agreement
#: (fraction) and metric change (points, i.e. percent) for every artifact.
THRESHOLDS = {
    "savedmodel": {"max_abs_diff": 1e-5},
    "onnx": {"max_abs_diff": 1e-4},
    "tflite-none": {"max_abs_diff": 1e-4},
    # float16 weights through every recurrent step: trained 128-unit models differed from Keras by
    # up to 5.1e-2 (SimpleRNN; LSTM 3.5e-2) while agreeing on every class of 1,000 held-out
    # devices (benchmarks/bench_export.py); class agreement and metric change gate it as well,
    # the bound only catches a broken conversion
    "tflite-float16": {"max_abs_diff": 0.1},
    "tflite-dynamic": {},
    "tflite-int8": {},
    # step artifacts of streaming models, fed cycle by cycle and compared at every step
    "savedmodel-step": {"max_abs_diff": 1e-5},
    "onnx-step": {"max_abs_diff": 1e-5},
    "tflite-step-none": {"max_abs_diff": 1e-5},
    "tflite-step-float16": {"max_abs_diff": 0.1},
    "tflite-step-dynamic": {},
    "tflite-step-int8": {},
}
MIN_CLASS_AGREEMENT = 0.99
#: A binary decision whose Keras score lies this close to the threshold is a tie: an artifact's
#: float32 rounding may fall on either side, and counts as agreeing. ``tfseq evaluate
#: --min-recall`` puts the threshold on a validation score, the very data exports are checked on,
#: where one such sequence of 24 failed a float32 TF Lite file (95.8 % class agreement).
TIE = 1e-5
MAX_METRIC_CHANGE_POINTS = 1.0
WORKER_TIMEOUT_S = 600

__all__ = [
    "THRESHOLDS",
    "compare_outputs",
    "parity_failures",
    "run_savedmodel_isolated",
    "run_tflite_isolated",
    "run_onnx",
    "run_onnx_step",
    "run_savedmodel_step_isolated",
    "run_tflite_step_isolated",
    "task_metric",
]


def _classes(p: np.ndarray, task: str, threshold: float) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 3:  # a streaming model's answer after every step: each step is a decision
        p = p.reshape(-1, p.shape[-1])
    if task == "binary":
        return (p.reshape(len(p), -1)[:, 0] >= threshold).astype(np.int64)
    return np.argmax(p.reshape(len(p), -1), axis=-1)


def task_metric(p: np.ndarray, y: np.ndarray, task: str, threshold: float) -> tuple[str, float]:
    """``("accuracy", %)`` for classifiers, ``("rmse", value)`` otherwise.

    A streaming model's outputs ``[n, steps, k]`` are scored at the last step.
    """
    if np.ndim(p) == 3:
        p = np.asarray(p)[:, -1]
    if task in ("binary", "multiclass"):
        return "accuracy", float(100.0 * np.mean(_classes(p, task, threshold) == np.asarray(y).reshape(-1)))
    diff = np.asarray(p, dtype=np.float64).reshape(len(p), -1) - np.asarray(y, dtype=np.float64).reshape(len(p), -1)
    return "rmse", float(np.sqrt(np.mean(diff**2)))


def compare_outputs(
    reference: dict[str, np.ndarray],
    got: dict[str, np.ndarray],
    *,
    head: str,
    task: str,
    threshold: float = 0.5,
    y: np.ndarray | None = None,
) -> dict:
    """Compares an artifact's outputs with the reference (Keras) outputs.

    Args:
        reference: ``{output name: array}`` of the Keras model.
        got: ``{output name: array}`` of the artifact.
        head: Output answering the task.
        task: ``binary``, ``multiclass``, ``regression`` or ``forecast``.
        threshold: Decision threshold of a binary head.
        y: Held-out targets, or None (then no metric change).

    Returns:
        ``max_abs_diff``; ``class_agreement`` for classifiers; ``metric``,
        ``metric_reference``, ``metric_artifact`` and ``metric_change_points``
        when ``y`` is given (for regression the change is relative, in %).

    Raises:
        ExportError: if an output is missing or has another shape.
    """
    figures: dict = {}
    diffs = []
    for name, ref in reference.items():
        if name not in got:
            raise ExportError(f"the artifact has no output {name!r}; it has {sorted(got)}.")
        value = np.asarray(got[name], dtype=np.float64).reshape(len(ref), -1)
        ref = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
        if value.shape != ref.shape:
            raise ExportError(f"output {name!r} has shape {value.shape}, expected {ref.shape}.")
        diffs.append(float(np.max(np.abs(value - ref))) if ref.size else 0.0)
    figures["max_abs_diff"] = max(diffs) if diffs else 0.0
    figures["sequences"] = int(len(reference[head]))
    decided = np.asarray(got[head], dtype=np.float64)
    if task == "binary":  # ties decide as Keras did (see TIE)
        ref = np.asarray(reference[head], dtype=np.float64).reshape(decided.shape)
        tie = np.abs(ref - threshold) <= TIE
        decided = np.where(tie, ref, decided)
        figures["threshold_ties"] = int(np.count_nonzero(tie))
    if task in ("binary", "multiclass"):
        figures["class_agreement"] = float(
            np.mean(_classes(reference[head], task, threshold) == _classes(decided, task, threshold))
        )
    if y is not None:
        name, ref_metric = task_metric(reference[head], y, task, threshold)
        _, art_metric = task_metric(decided, y, task, threshold)
        change = abs(art_metric - ref_metric)
        if name == "rmse":
            change = 100.0 * change / max(ref_metric, 1e-12)
        figures.update(metric=name, metric_reference=ref_metric, metric_artifact=art_metric,
                       metric_change_points=change)
    return figures


def parity_failures(kind: str, figures: dict) -> list[str]:
    """Reasons why an artifact misses its parity thresholds (empty when it passes).

    Args:
        kind: ``savedmodel``, ``onnx`` or ``tflite-<quantization>``.
        figures: Output of :func:`compare_outputs`.
    """
    reasons = []
    limit = THRESHOLDS.get(kind, {}).get("max_abs_diff")
    if limit is not None and figures["max_abs_diff"] > limit:
        reasons.append(f"max abs difference {figures['max_abs_diff']:.3g} > {limit:g}")
    agreement = figures.get("class_agreement")
    if agreement is not None and agreement < MIN_CLASS_AGREEMENT:
        reasons.append(f"class agreement {100 * agreement:.1f} % < {100 * MIN_CLASS_AGREEMENT:.0f} %")
    change = figures.get("metric_change_points")
    if change is not None and change > MAX_METRIC_CHANGE_POINTS:
        reasons.append(f"{figures['metric']} changed by {change:.2f} points > {MAX_METRIC_CHANGE_POINTS:g}")
    return reasons


def _run_worker(script: str, x: np.ndarray, args: list[str], what: str) -> tuple[list[dict], dict]:
    with tempfile.TemporaryDirectory(prefix="tfseq-verify-") as tmp:
        data = Path(tmp) / "x.npz"
        np.savez(data, x=np.asarray(x, dtype=np.float32))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        worker = Path(__file__).with_name(script)
        try:
            proc = subprocess.run(
                [sys.executable, "-I", str(worker), str(data), tmp, *args],
                capture_output=True, text=True, env=env, timeout=WORKER_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise ExportError(f"{what} verification timed out after {WORKER_TIMEOUT_S} s.") from None
        if proc.returncode != 0:
            tail = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            raise ExportError(f"{what} verification failed: {tail[-1] if tail else 'no message'}")
        report = json.loads((Path(tmp) / "report.json").read_text())
        outputs = []
        for i in range(len(report["files"])):
            with np.load(Path(tmp) / f"{i}.npz") as npz:
                outputs.append({k: npz[k] for k in npz.files})
    return outputs, report


def run_tflite_isolated(paths: list[Path], x: np.ndarray) -> tuple[list[dict], dict]:
    """Runs ``.tflite`` files in LiteRT in a subprocess that cannot import TensorFlow.

    Returns:
        ``(outputs per file, report)``; the report says per file the latency
        and delegate, and ``tensorflow_importable`` (always False).

    Raises:
        ExportError: if the runtime fails or TensorFlow was importable.
    """
    outputs, report = _run_worker("_litert_worker.py", x, [str(p) for p in paths], "LiteRT")
    if report["tensorflow_importable"] or report["tensorflow_loaded"]:
        raise ExportError("the LiteRT check could import TensorFlow; it must run without it.")
    return outputs, report


def run_tflite_step_isolated(paths: list[Path], x: np.ndarray) -> tuple[list[dict], dict]:
    """Feeds ``x`` ``[n, steps, features]`` cycle by cycle through ``.tflite`` step artifacts in
    LiteRT, in a subprocess that cannot import TensorFlow (as :func:`run_tflite_isolated`).

    Returns:
        ``(outputs per file as {head: [n, steps, k]}, report)``.

    Raises:
        ExportError: if the runtime fails or TensorFlow was importable.
    """
    outputs, report = _run_worker("_litert_worker.py", x, ["--step", *(str(p) for p in paths)], "LiteRT")
    if report["tensorflow_importable"] or report["tensorflow_loaded"]:
        raise ExportError("the LiteRT check could import TensorFlow; it must run without it.")
    return outputs, report


def run_savedmodel_step_isolated(path: Path, x: np.ndarray) -> tuple[dict, dict]:
    """Feeds ``x`` cycle by cycle through the SavedModel's ``step`` signature in a fresh process.

    Returns:
        ``({head: [n, steps, k]}, report)``.
    """
    outputs, report = _run_worker("_savedmodel_worker.py", x, [str(path), "--step"], "SavedModel step")
    return outputs[0], report["files"][0]


def run_onnx_step(path: Path, x: np.ndarray) -> tuple[dict, dict]:
    """Feeds ``x`` cycle by cycle through an ONNX step artifact in onnxruntime (CPU).

    Returns:
        ``({head: [n, steps, k]}, report)``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    states = {i.name: int(i.shape[-1]) for i in session.get_inputs() if i.name != "features"}
    x = np.asarray(x, dtype=np.float32)

    def replay(batch: np.ndarray) -> dict[str, np.ndarray]:
        state = {k: np.zeros((len(batch), u), dtype=np.float32) for k, u in states.items()}
        outs: dict[str, list[np.ndarray]] = {}
        for t in range(batch.shape[1]):
            out = dict(zip(names, session.run(names, {"features": np.ascontiguousarray(batch[:, t]), **state})))
            state = {k: out[f"new_{k}"] for k in states}
            for name, value in out.items():
                if not name.startswith("new_state_"):
                    outs.setdefault(name, []).append(np.asarray(value))
        return {k: np.stack(v, axis=1) for k, v in outs.items()}

    start = time.perf_counter()
    arrays = replay(x)
    batched = time.perf_counter() - start
    one = {"features": x[:1, 0], **{k: np.zeros((1, u), dtype=np.float32) for k, u in states.items()}}
    for _ in range(20):
        session.run(names, one)
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        session.run(names, one)
        times.append(time.perf_counter() - t0)
    return arrays, {"step_batch1_latency_us": float(np.median(times) * 1e6),
                    "replay_latency_ms": float(batched * 1e3), "batch_size": int(len(x)),
                    "steps": int(x.shape[1])}


def run_savedmodel_isolated(path: Path, x: np.ndarray) -> tuple[dict, dict]:
    """Loads a SavedModel with ``tf.saved_model.load`` in a fresh process and runs ``x``.

    Returns:
        ``(outputs, latency report of the one file)``.
    """
    outputs, report = _run_worker("_savedmodel_worker.py", x, [str(path)], "SavedModel")
    return outputs[0], report["files"][0]


def run_onnx(path: Path, x: np.ndarray) -> tuple[dict, dict]:
    """Runs an ONNX file in onnxruntime (CPU); returns ``(outputs, latency report)``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    x = np.asarray(x, dtype=np.float32)
    start = time.perf_counter()
    values = session.run(names, {"sequence": x})
    batched = time.perf_counter() - start
    one = x[:1]
    for _ in range(5):
        session.run(names, {"sequence": one})
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        session.run(names, {"sequence": one})
        times.append(time.perf_counter() - t0)
    return dict(zip(names, values)), {
        "batch1_latency_ms": float(np.median(times) * 1e3),
        "batched_latency_ms": float(batched * 1e3),
        "batch_size": int(len(x)),
    }
