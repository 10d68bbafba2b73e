"""Run any tfseq artifact in its own runtime: one interface for predict and verification.

``load_runner(path)`` returns a :class:`Runner` for a RUN directory, a
``.keras`` file, a SavedModel directory, a ``.tflite`` or an ``.onnx`` file.
A runner maps float32 ``[n, steps, features]`` raw measurements to a dict of
output name -> numpy array, exactly as the Keras model's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tfseq.errors import InputError
from tfseq.run import DataContract


@dataclass
class Runner:
    """A loaded artifact.

    Attributes:
        kind: ``keras``, ``savedmodel``, ``tflite`` or ``onnx``.
        predict: float32 ``[n, steps, features]`` -> ``{output name: array}``.
        contract: The data contract (from the RUN dir or the export manifest),
            or None when the artifact carries none.
        steps: Fixed number of steps the artifact takes, or None for any.
    """

    kind: str
    predict: Callable[[np.ndarray], dict[str, np.ndarray]]
    contract: DataContract | None
    steps: int | None


def load_runner(path: Path) -> Runner:
    """Loads the artifact at ``path`` in its own runtime.

    Raises:
        InputError: if ``path`` is missing or not an artifact tfseq knows.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such artifact.")
    if path.is_dir() and (path / "contract.json").is_file():
        from tfseq.run import load_run

        model, _, contract = load_run(path)
        return _keras_runner(model, contract)
    if path.suffix == ".keras":
        from tfseq.models.io import load_model

        return _keras_runner(load_model(path), None)
    raise InputError(
        f"{path}: not a tfseq artifact; expected a RUN directory, a .keras file, a SavedModel "
        "directory, a .tflite or an .onnx file."
    )


def _keras_runner(model, contract: DataContract | None) -> Runner:
    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        out = model.predict(np.asarray(x, dtype=np.float32), batch_size=1024, verbose=0)
        return out if isinstance(out, dict) else {model.output_names[0]: out}

    steps = model.inputs[0].shape[1]
    return Runner("keras", predict, contract, steps)
