"""Loading models safely."""

from __future__ import annotations

from pathlib import Path

import keras

from tfseq.errors import InputError
from tfseq.models import layers as _layers  # noqa: F401  (registers tfseq's custom layers)
from tfseq.models import recurrent


def load_model(path: Path) -> keras.Model:
    """Loads a ``.keras`` model in Keras safe mode: no code inside the file runs.

    Its recurrent layers then run tfseq's faster loop in this process
    (:func:`tfseq.models.recurrent.accelerate`).

    Raises:
        InputError: if the file is missing, not a ``.keras`` archive, or holds
            code (a ``Lambda`` layer) that safe mode refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file.")
    if path.suffix != ".keras":
        raise InputError(f"{path}: expected a .keras model file, got {path.suffix or 'no suffix'!r}.")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise InputError(
                f"{path}: refused to load: the model holds Python code (a Lambda layer), "
                "which safe mode does not run."
            ) from None
        raise InputError(f"{path}: not a loadable Keras model ({str(exc).splitlines()[0]}).") from None
    except (OSError, KeyError) as exc:
        raise InputError(f"{path}: not a loadable Keras model ({exc}).") from None
    return recurrent.accelerate(model)
