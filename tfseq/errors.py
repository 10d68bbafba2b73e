"""Error classes of tfseq.

One base class; each subclass also inherits the built-in type a Python user
would catch (as keras-tuner's ``FatalValueError(FatalError, ValueError)``).
The command line maps :class:`InputError` to exit status 2.
"""

from __future__ import annotations


class TfseqError(Exception):
    """Base class of every error tfseq raises on purpose."""


class InputError(TfseqError, ValueError):
    """Bad input: a file, a column, an argument or a value users can fix."""


class SpecError(InputError):
    """An invalid model specification value."""


class ExportError(TfseqError, RuntimeError):
    """An export that could not be built or failed its verification."""
