"""The RUN directory: a trained model with everything needed to use it again.

Layout::

    RUN/model.keras      the trained model (loads in Keras safe mode)
    RUN/spec.json        the ModelSpec
    RUN/contract.json    the data contract: feature names and order, steps,
                         task, class names, decision threshold, column names
    RUN/history.csv      one row per epoch
    RUN/metrics.json     validation metrics
    RUN/plots/           training curves and, for classifiers, evaluation plots
    RUN/export_sample.npz  held-out sequences (x, y) and calibration sequences
                         (x_train) that ``tfseq export`` verifies and calibrates on
    RUN/reference.json   reference statistics of the training data and of the
                         predictions (tfseq.analysis.reference), for ``tfseq monitor``

``evaluate``, ``predict``, ``export`` and ``tune --retrain`` all read and
write this one format through :func:`load_run` and :func:`save_run`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfseq.data.sequences import STEP_FLAG, Task
from tfseq.errors import InputError
from tfseq.io import write_json_atomic, write_text_atomic

if TYPE_CHECKING:  # Keras and the model package are imported where they are used
    import keras

    from tfseq.models.spec import ModelSpec

#: The RUN's reference statistics (see :mod:`tfseq.analysis.reference`).
REFERENCE = "reference.json"


@dataclass
class DataContract:
    """What a model expects on its input and means on its output.

    Attributes:
        feature_names: Feature columns, in the order of the input's last axis.
        steps: Steps the model was trained on (sequences are padded or cut
            to this many); None for any length.
        task: ``binary``, ``multiclass``, ``regression`` or ``forecast``.
        class_names: Class names of a classifier, index order.
        threshold: Decision threshold on ``p(class 1)`` of a binary model.
        id_col: Sequence id column of the long-format data.
        time_col: Order column of the long-format data.
        label_col: Target column (None at prediction time).
        predict_at: Early-warning cut: only the first N steps are used.
        masking: Whether padded (all-zero) steps are masked. A model whose training data held real
            all-zero steps among sequences of several lengths also reads a step flag, the last of
            ``feature_names`` (:data:`tfseq.data.sequences.STEP_FLAG`).
        head: Name of the model output that answers the task.
        streaming: Whether the model answers after every step (output ``[n, steps, k]``).
    """

    feature_names: list[str]
    steps: int | None
    task: Task = "binary"
    class_names: list[str] | None = None
    threshold: float = 0.5
    id_col: str = "id"
    time_col: str = "time"
    label_col: str | None = None
    predict_at: int | None = None
    masking: bool = False
    head: str = "binary"
    streaming: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """The feature columns data must hold: :attr:`feature_names` less the step flag readers make
        (:data:`tfseq.data.sequences.STEP_FLAG`)."""
        return [name for name in self.feature_names if name != STEP_FLAG]

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DataContract":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in known})


def save_run(
    run_dir: Path,
    model: keras.Model,
    spec: ModelSpec,
    contract: DataContract,
    *,
    metrics: dict[str, Any] | None = None,
    export_sample: tuple[np.ndarray, np.ndarray | None, np.ndarray] | None = None,
    sample_size: int = 512,
    reference: dict[str, Any] | None = None,
) -> Path:
    """Writes ``model.keras``, ``spec.json``, ``contract.json`` and ``metrics.json`` into ``run_dir``.

    ``history.csv`` and ``plots/`` are written by training itself. Call this
    inside :func:`tfseq.io.atomic_directory` so the RUN appears whole.

    Args:
        export_sample: ``(x_heldout, y_heldout or None, x_train)``; up to
            ``sample_size`` sequences of each go to ``export_sample.npz`` so a
            later ``tfseq export`` verifies on real held-out data and
            calibrates int8 on real training data.
        reference: Reference statistics of the training data
            (:func:`tfseq.analysis.reference.compute_reference`), written to
            ``reference.json`` (compact JSON) for ``tfseq monitor``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "model.keras")
    spec.to_json(run_dir / "spec.json")
    write_json_atomic(run_dir / "contract.json", contract.get_config())
    write_json_atomic(run_dir / "metrics.json", metrics or {})
    if reference is not None:
        write_text_atomic(run_dir / REFERENCE, json.dumps(reference, separators=(",", ":")) + "\n")
    if export_sample is not None:
        x, y, x_train = export_sample
        arrays = {"x": np.asarray(x[:sample_size], np.float32), "x_train": np.asarray(x_train[:sample_size], np.float32)}
        if y is not None:
            arrays["y"] = np.asarray(y[:sample_size])
        np.savez_compressed(run_dir / "export_sample.npz", **arrays)  # type: ignore[arg-type]  # mypy: **arrays may hit allow_pickle
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    return run_dir


def read_contract(run_dir: Path) -> DataContract:
    """Reads ``contract.json`` of a RUN directory.

    Raises:
        InputError: if ``run_dir`` is not a RUN directory.
    """
    path = Path(run_dir) / "contract.json"
    if not path.is_file():
        raise InputError(f"{run_dir}: not a tfseq RUN directory (no contract.json).")
    try:
        return DataContract.from_config(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise InputError(f"{path}: unreadable data contract ({exc}).") from None


def update_contract(run_dir: Path, **changes: Any) -> DataContract:
    """Changes fields of a RUN's contract (e.g. the decision threshold), atomically."""
    contract = dataclasses.replace(read_contract(run_dir), **changes)
    write_json_atomic(Path(run_dir) / "contract.json", contract.get_config())
    return contract


def load_run(run_dir: Path) -> tuple[keras.Model, ModelSpec, DataContract]:
    """Returns ``(model, spec, contract)`` of a RUN directory; the model loads in safe mode.

    Raises:
        InputError: if ``run_dir`` is not a complete RUN directory.
    """
    from tfseq.models.io import load_model
    from tfseq.models.spec import ModelSpec

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such RUN directory.")
    contract = read_contract(run_dir)
    spec = ModelSpec.from_json(run_dir / "spec.json")
    return load_model(run_dir / "model.keras"), spec, contract
