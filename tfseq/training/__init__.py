"""Training: the fit loop, its callbacks and the precision policy."""

from tfseq.training.callbacks import default_callbacks as default_callbacks
from tfseq.training.fit import balanced_sample_weights as balanced_sample_weights
from tfseq.training.fit import fit as fit
from tfseq.training.precision import resolve_precision as resolve_precision

__all__ = ["balanced_sample_weights", "default_callbacks", "fit", "resolve_precision"]
