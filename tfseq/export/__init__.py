"""Deployment exporters: SavedModel for TF Serving, TF Lite for edge stations, ONNX.

One module per format (:mod:`~tfseq.export.saved_model`,
:mod:`~tfseq.export.tflite`, :mod:`~tfseq.export.onnx`), plus
:mod:`~tfseq.export.verify` (each artifact checked in its own runtime) and
:mod:`~tfseq.export.manifest` (its typed keys in :mod:`~tfseq.export.schema`).
:func:`export_model` does all of it (and, for a streaming model, the step artifacts of
:mod:`~tfseq.export.step`, which :func:`open_step_runner` runs one device cycle at a time): build beside the target (each format through one interface,
:mod:`~tfseq.export.artifacts`), verify, rename into place. Exporting a RUN directory is a
workflow: :func:`tfseq.workflows.export.export_run`, also ``tfseq.export_run``.

TensorFlow, tf2onnx and the runtimes are imported only when a function runs.

Examples:
    >>> from tfseq.export import export_model
    >>> manifest = export_model(model, contract, Path("export"), name="lstm",
    ...                         holdout=(x_val, y_val), quantize="all",
    ...                         representative=x_train)
"""

from __future__ import annotations

from tfseq.export.artifacts import FORMATS as FORMATS
from tfseq.export.manifest import check_manifest as check_manifest
from tfseq.export.manifest import read_manifest as read_manifest
from tfseq.export.onnx import export_onnx as export_onnx
from tfseq.export.pipeline import choices_tuple as choices_tuple
from tfseq.export.pipeline import export_model as export_model
from tfseq.export.runtimes import Runner as Runner
from tfseq.export.runtimes import load_runner as load_runner
from tfseq.export.saved_model import export_saved_model as export_saved_model
from tfseq.export.streaming import StreamingRunner as StreamingRunner
from tfseq.export.streaming import open_step_runner as open_step_runner
from tfseq.export.tflite import QUANTIZATIONS as QUANTIZATIONS
from tfseq.export.tflite import convert_tflite as convert_tflite
from tfseq.export.tflite import export_tflite as export_tflite

__all__ = [
    "FORMATS",
    "QUANTIZATIONS",
    "Runner",
    "StreamingRunner",
    "check_manifest",
    "choices_tuple",
    "convert_tflite",
    "export_model",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
    "load_runner",
    "open_step_runner",
    "read_manifest",
]
