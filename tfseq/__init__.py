"""tfseq: recurrent sequence models from ``model.fit`` to TF Serving, TF Lite and ONNX.

The public names below are imported on first use, so ``import tfseq`` (and the
``tfseq`` command's ``--help`` and input checks) does not wait for TensorFlow.

Example:
    >>> import tfseq
    >>> data = tfseq.make_semiconductor_data(2000, seed=0)
    >>> spec = tfseq.ModelSpec(cell="lstm", units=(32,))
    >>> model = tfseq.build_model(spec, n_features=15, steps=20, adapt=data.x)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ModelSpec": "tfseq.models.spec",
    "HeadSpec": "tfseq.models.spec",
    "build_model": "tfseq.models.builders",
    "AttentionPooling": "tfseq.models.layers",
    "fit": "tfseq.training.fit",
    "default_callbacks": "tfseq.training.callbacks",
    "resolve_precision": "tfseq.training.precision",
    "configure_threads": "tfseq.training.threads",
    "SequenceSet": "tfseq.data.sequences",
    "split_sequences": "tfseq.data.splits",
    "make_semiconductor_data": "tfseq.data.synthetic",
    "to_long_frame": "tfseq.data.synthetic",
    "load_model": "tfseq.models.io",
    "load_long_format": "tfseq.data.long_format",
    "export_model": "tfseq.export",
    "export_run": "tfseq.export",
    "load_runner": "tfseq.export",
    "tune": "tfseq.tuning",
    "make_strategy": "tfseq.training.distribute",
    "TfseqError": "tfseq.errors",
    "InputError": "tfseq.errors",
    "SpecError": "tfseq.errors",
    "ExportError": "tfseq.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfseq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
