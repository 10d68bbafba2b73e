"""Training: the fit loop, its callbacks and thread pools (the precision policy is in tfseq.models.precision)."""

from tfseq.training.callbacks import default_callbacks as default_callbacks
from tfseq.training.fit import balanced_sample_weights as balanced_sample_weights
from tfseq.training.fit import fit as fit
from tfseq.training.threads import configure_threads as configure_threads

__all__ = ["balanced_sample_weights", "configure_threads", "default_callbacks", "fit"]
