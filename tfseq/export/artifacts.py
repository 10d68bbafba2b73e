"""One interface per artifact format: build it from a model, then run it in its own runtime.

:class:`ArtifactFormat` is what :func:`tfseq.export.pipeline.export_model` asks of a format;
:data:`ARTIFACT_FORMATS` holds the three tfseq ships (SavedModel for TF Serving, TF Lite for edge
stations, ONNX). A format builds its files under a temporary root and runs them on the held-out
sequences in the runtime that will serve them (a fresh TensorFlow process, LiteRT without
TensorFlow, onnxruntime); comparing those outputs with Keras' is the pipeline's job
(:mod:`tfseq.export.verify`), the same for every format.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tfseq.data.sequences import Task

__all__ = ["ExportJob", "Built", "ArtifactFormat", "ARTIFACT_FORMATS", "FORMATS"]


@dataclass(frozen=True)
class ExportJob:
    """What every format builds from: a model, its fixed input shape, its head, and how to build.

    Attributes:
        model: The trained Keras model.
        name: Model name in file names and in TF Serving.
        steps: The fixed number of steps of every artifact's input.
        head: The output the artifacts answer with (``classes`` of a multi-head model and so on).
        task: The model's task.
        threshold: The decision threshold of a binary model.
        x: Held-out raw sequences ``[n, steps, features]``: every artifact runs on them.
        quantize: TF Lite modes to build (:data:`tfseq.export.tflite.QUANTIZATIONS`).
        representative: Raw training sequences to calibrate ``int8``, or None.
        seed: Seed of the draw of representative sequences.
        overwrite: Replace the newest SavedModel version instead of adding one.
        step: Also build step artifacts (a streaming model, :mod:`tfseq.export.step`).
    """

    model: Any
    name: str
    steps: int
    head: str
    task: Task
    threshold: float
    x: np.ndarray
    quantize: tuple[str, ...] = ("none",)
    representative: np.ndarray | None = None
    seed: int = 0
    overwrite: bool = False
    step: bool = False


@dataclass
class Built:
    """One artifact built under the temporary root, and its run on the held-out sequences.

    Attributes:
        path: The file or directory.
        format: ``savedmodel``, ``tflite`` or ``onnx``.
        quantization: The TF Lite mode, None for the other formats.
        extra: Facts recorded in its manifest entry (runtime, SavedModel version, ONNX ops ...).
        outputs: Its outputs by name, once run.
        timing: Its run's timing figures (and the runtime's own facts), once run.
        step: For a step artifact, its interface (:func:`tfseq.export.step.step_interface`);
            its outputs are then the sequences fed cycle by cycle, ``[n, steps, k]``.
    """

    path: Path
    format: str
    quantization: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    step: dict[str, Any] | None = None


def _split(built: list[Built]) -> tuple[list[Built], list[Built]]:
    return [b for b in built if b.step is None], [b for b in built if b.step is not None]


class ArtifactFormat(Protocol):
    """A deployment format: how to build its artifacts and how to run them where they will run."""

    name: str

    def build(self, job: ExportJob, root: Path) -> list[Built]:
        """Builds this format's artifacts for ``job`` under ``root`` (the export's temporary copy)."""
        ...

    def run(self, job: ExportJob, built: list[Built]) -> None:
        """Runs ``built`` on ``job.x`` in this format's own runtime, filling each one's outputs and timing."""
        ...


class SavedModelFormat:
    """TF Serving's layout: ``savedmodel/<name>/<version>/``, ``models.config`` and a sample request."""

    name = "savedmodel"

    def build(self, job: ExportJob, root: Path) -> list[Built]:
        from tfseq.export.saved_model import (
            existing_versions,
            export_saved_model,
            write_models_config,
            write_sample_request,
        )

        base = root / "savedmodel" / job.name
        versions = existing_versions(base)
        if job.overwrite and versions:
            version = versions[-1]
            shutil.rmtree(base / str(version))
        else:
            version = versions[-1] + 1 if versions else 1
        path = export_saved_model(job.model, base / str(version), steps=job.steps, head=job.head,
                                  task=job.task, threshold=job.threshold, step=job.step)
        write_sample_request(base / "sample_request.json", job.x[:3])
        write_models_config(root / "savedmodel")
        runtime = "tf.saved_model.load (fresh process)"
        built = [Built(path, self.name, extra={"version": version, "signature": "serving_default",
                                               "runtime": runtime})]
        if job.step:
            from tfseq.export.saved_model import write_step_sample_request
            from tfseq.export.step import STEP_SIGNATURE, state_layout, step_interface

            write_step_sample_request(base / "sample_request_step.json", job.x[:3, 0],
                                      {s.input: s.units for s in state_layout(job.model)})
            built.append(Built(path, self.name, extra={"signature": STEP_SIGNATURE, "runtime": runtime},
                               step=step_interface(job.model)))
        return built

    def run(self, job: ExportJob, built: list[Built]) -> None:
        from tfseq.export.verify import run_savedmodel_isolated, run_savedmodel_step_isolated

        full, steps = _split(built)
        for artifact in full:
            artifact.outputs, artifact.timing = run_savedmodel_isolated(artifact.path, job.x)
        for artifact in steps:
            artifact.outputs, artifact.timing = run_savedmodel_step_isolated(artifact.path, job.x)


class TFLiteFormat:
    """One ``.tflite`` flat buffer per quantization mode, run by LiteRT in a process without TensorFlow."""

    name = "tflite"

    def build(self, job: ExportJob, root: Path) -> list[Built]:
        from tfseq.export.tflite import convert_tflite, tflite_filename

        flat = convert_tflite(job.model, steps=job.steps, quantize=job.quantize,
                              representative=job.representative, seed=job.seed)
        runtime = "ai_edge_litert (subprocess, TensorFlow not importable)"
        built = []
        for mode, content in flat.items():
            path = root / tflite_filename(job.name, mode)
            path.write_bytes(content)
            built.append(Built(path, self.name, mode, extra={"runtime": runtime}))
        if job.step:
            from tfseq.export.step import STEP_SIGNATURE, step_filename, step_interface
            from tfseq.export.tflite import convert_step_tflite

            interface = step_interface(job.model)
            flat = convert_step_tflite(job.model, quantize=job.quantize, representative=job.representative,
                                       seed=job.seed)
            for mode, content in flat.items():
                path = root / step_filename(job.name, mode)
                path.write_bytes(content)
                built.append(Built(path, self.name, mode, extra={"runtime": runtime, "signature": STEP_SIGNATURE},
                                   step=interface))
        return built

    def run(self, job: ExportJob, built: list[Built]) -> None:
        from tfseq.export.verify import run_tflite_isolated, run_tflite_step_isolated

        full, steps = _split(built)
        for group, runner in ((full, run_tflite_isolated), (steps, run_tflite_step_isolated)):
            if not group:
                continue
            outputs, report = runner([b.path for b in group], job.x)
            for artifact, out, timing in zip(group, outputs, report["files"]):
                artifact.outputs, artifact.timing = out, timing
                artifact.extra["delegate"] = timing["delegate"]


class OnnxFormat:
    """One ``.onnx`` file (tf2onnx), run by onnxruntime on the CPU."""

    name = "onnx"

    def build(self, job: ExportJob, root: Path) -> list[Built]:
        from tfseq.export.onnx import DEFAULT_OPSET, count_ops, export_onnx

        path = export_onnx(job.model, root / f"{job.name}.onnx", steps=job.steps)
        built = [Built(path, self.name, extra={"opset": DEFAULT_OPSET, "runtime": "onnxruntime (CPU)",
                                               "ops": count_ops(path)})]
        if job.step:
            from tfseq.export.onnx import export_step_onnx
            from tfseq.export.step import step_filename, step_interface

            path = export_step_onnx(job.model, root / step_filename(job.name, "onnx"))
            built.append(Built(path, self.name, extra={"opset": DEFAULT_OPSET, "runtime": "onnxruntime (CPU)",
                                                       "ops": count_ops(path)}, step=step_interface(job.model)))
        return built

    def run(self, job: ExportJob, built: list[Built]) -> None:
        from tfseq.export.verify import run_onnx, run_onnx_step

        for artifact in built:
            run = run_onnx if artifact.step is None else run_onnx_step
            artifact.outputs, artifact.timing = run(artifact.path, job.x)


#: The formats tfseq exports, in the order they are built.
ARTIFACT_FORMATS: dict[str, ArtifactFormat] = {f.name: f for f in (SavedModelFormat(), TFLiteFormat(), OnnxFormat())}
FORMATS: tuple[str, ...] = tuple(ARTIFACT_FORMATS)
