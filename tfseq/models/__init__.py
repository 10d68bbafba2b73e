"""Model specification and Functional-API builders."""

from tfseq.models.builders import build_model as build_model
from tfseq.models.builders import normalization_stats as normalization_stats
from tfseq.models.io import load_model as load_model
from tfseq.models.layers import AttentionPooling as AttentionPooling
from tfseq.models.spec import HeadSpec as HeadSpec
from tfseq.models.spec import ModelSpec as ModelSpec

__all__ = ["AttentionPooling", "HeadSpec", "ModelSpec", "build_model", "load_model", "normalization_stats"]
