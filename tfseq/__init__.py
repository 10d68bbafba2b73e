"""tfseq: recurrent sequence models from ``model.fit`` to TF Serving, TF Lite and ONNX.

The public names below are imported on first use, so ``import tfseq`` (and the
``tfseq`` command's ``--help`` and input checks) does not wait for TensorFlow.

Examples:
    >>> import tfseq
    >>> data = tfseq.make_semiconductor_data(2000, seed=0)
    >>> spec = tfseq.ModelSpec(cell="lstm", units=(32,))
    >>> model = tfseq.build_model(spec, n_features=15, steps=20, adapt=data.x)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfseq._lazy import attach

__version__ = "0.1.0"

_EXPORTS = {
    "ModelSpec": "tfseq.models.spec",
    "HeadSpec": "tfseq.models.spec",
    "build_model": "tfseq.models.builders",
    "AttentionPooling": "tfseq.models.layers",
    "fit": "tfseq.training.fit",
    "default_callbacks": "tfseq.training.callbacks",
    "resolve_precision": "tfseq.models.precision",
    "configure_threads": "tfseq.training.threads",
    "SequenceSet": "tfseq.data.sequences",
    "split_sequences": "tfseq.data.splits",
    "make_semiconductor_data": "tfseq.data.synthetic",
    "to_long_frame": "tfseq.data.synthetic",
    "load_model": "tfseq.models.io",
    "load_long_format": "tfseq.data.long_format",
    "export_model": "tfseq.export",
    "export_run": "tfseq.workflows.export",
    "load_runner": "tfseq.export",
    "tune": "tfseq.tuning",
    "retrain": "tfseq.workflows.retrain",
    "SearchSpace": "tfseq.tuning",
    "DataContract": "tfseq.run",
    "make_strategy": "tfseq.training.distribute",
    "TfseqError": "tfseq.errors",
    "InputError": "tfseq.errors",
    "SpecError": "tfseq.errors",
    "ExportError": "tfseq.errors",
    "ParityError": "tfseq.errors",
    "MissingDependencyError": "tfseq.errors",
}

if TYPE_CHECKING:  # what a type checker sees; at run time __getattr__ imports on first use
    from tfseq.data.long_format import load_long_format as load_long_format
    from tfseq.data.sequences import SequenceSet as SequenceSet
    from tfseq.data.splits import split_sequences as split_sequences
    from tfseq.data.synthetic import make_semiconductor_data as make_semiconductor_data
    from tfseq.data.synthetic import to_long_frame as to_long_frame
    from tfseq.errors import ExportError as ExportError
    from tfseq.errors import InputError as InputError
    from tfseq.errors import MissingDependencyError as MissingDependencyError
    from tfseq.errors import ParityError as ParityError
    from tfseq.errors import SpecError as SpecError
    from tfseq.errors import TfseqError as TfseqError
    from tfseq.export import export_model as export_model
    from tfseq.export import load_runner as load_runner
    from tfseq.models.builders import build_model as build_model
    from tfseq.models.io import load_model as load_model
    from tfseq.models.layers import AttentionPooling as AttentionPooling
    from tfseq.models.precision import resolve_precision as resolve_precision
    from tfseq.models.spec import HeadSpec as HeadSpec
    from tfseq.models.spec import ModelSpec as ModelSpec
    from tfseq.run import DataContract as DataContract
    from tfseq.training.callbacks import default_callbacks as default_callbacks
    from tfseq.training.distribute import make_strategy as make_strategy
    from tfseq.training.fit import fit as fit
    from tfseq.training.threads import configure_threads as configure_threads
    from tfseq.tuning import SearchSpace as SearchSpace
    from tfseq.tuning import tune as tune
    from tfseq.workflows.export import export_run as export_run
    from tfseq.workflows.retrain import retrain as retrain

__all__ = sorted(_EXPORTS) + ["__version__"]

__getattr__ = attach(__name__, _EXPORTS)[0]


def __dir__() -> list[str]:
    return __all__
