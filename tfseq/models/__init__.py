"""Model specification and Functional-API builders.

The names below are imported on first use: ``tfseq.models.spec`` (the vocabulary of cells,
poolings and heads) is then importable without Keras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfseq._lazy import attach

if TYPE_CHECKING:  # what a type checker sees; at run time __getattr__ imports on first use
    from tfseq.models.builders import build_model as build_model
    from tfseq.models.builders import normalization_stats as normalization_stats
    from tfseq.models.io import load_model as load_model
    from tfseq.models.layers import AttentionPooling as AttentionPooling
    from tfseq.models.spec import HeadSpec as HeadSpec
    from tfseq.models.spec import ModelSpec as ModelSpec

_EXPORTS = {
    "build_model": "tfseq.models.builders",
    "normalization_stats": "tfseq.models.builders",
    "load_model": "tfseq.models.io",
    "AttentionPooling": "tfseq.models.layers",
    "HeadSpec": "tfseq.models.spec",
    "ModelSpec": "tfseq.models.spec",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = attach(__name__, _EXPORTS)
