"""Deployment exporters: SavedModel for TF Serving, TF Lite for edge stations, ONNX.

One module per format (:mod:`~tfseq.export.saved_model`,
:mod:`~tfseq.export.tflite`, :mod:`~tfseq.export.onnx`), plus
:mod:`~tfseq.export.verify` (each artifact checked in its own runtime) and
:mod:`~tfseq.export.manifest`. :func:`export_model` and :func:`export_run` do
all of it: build beside the target, verify, rename into place.

TensorFlow, tf2onnx and the runtimes are imported only when a function runs.

Example:
    >>> from tfseq.export import export_model
    >>> manifest = export_model(model, contract, Path("export"), name="lstm",
    ...                         holdout=(x_val, y_val), quantize="all",
    ...                         representative=x_train)
"""

from __future__ import annotations

from tfseq.export._pipeline import EXPORT_SAMPLE as EXPORT_SAMPLE
from tfseq.export._pipeline import FORMATS as FORMATS
from tfseq.export._pipeline import choices_tuple as choices_tuple
from tfseq.export._pipeline import export_model as export_model
from tfseq.export._pipeline import export_run as export_run
from tfseq.export.manifest import check_manifest as check_manifest
from tfseq.export.manifest import read_manifest as read_manifest
from tfseq.export.onnx import export_onnx as export_onnx
from tfseq.export.runtimes import Runner as Runner
from tfseq.export.runtimes import load_runner as load_runner
from tfseq.export.saved_model import export_saved_model as export_saved_model
from tfseq.export.tflite import QUANTIZATIONS as QUANTIZATIONS
from tfseq.export.tflite import convert_tflite as convert_tflite
from tfseq.export.tflite import export_tflite as export_tflite

__all__ = [
    "EXPORT_SAMPLE",
    "FORMATS",
    "QUANTIZATIONS",
    "Runner",
    "check_manifest",
    "choices_tuple",
    "convert_tflite",
    "export_model",
    "export_onnx",
    "export_run",
    "export_saved_model",
    "export_tflite",
    "load_runner",
    "read_manifest",
]
