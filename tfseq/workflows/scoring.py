"""Data in as a trained model expects it, outputs out as the table users read."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfseq.data.sequences import STEP_FLAG
from tfseq.errors import InputError

#: Files already named in the warning about sequences shorter than an unmasked model's steps.
_WARNED_SHORT: set[str] = set()
#: Files already named in the warning about real all-zero steps that a model without a step flag masks.
_WARNED_ZERO: set[str] = set()

if TYPE_CHECKING:
    import pandas as pd

    from tfseq.data.sequences import SequenceSet
    from tfseq.run import DataContract


def load_for_contract(path: Path | pd.DataFrame, contract: DataContract, *, labels: bool,
                      fill: str | None = None, label_col: str | None = None,
                      source: str | None = None) -> SequenceSet:
    """Loads ``path`` as a trained model expects it: its features in its order, padded or cut to its steps.

    Feature columns the contract names must all be present (extra columns are
    ignored); with ``labels`` the label column must be present and hold only
    classes the model was trained on.

    Args:
        path: Long-format data file, or a DataFrame of whole sequences (not for forecasts).
        contract: The model's :class:`tfseq.run.DataContract`.
        labels: Read the targets (evaluate) or not (predict).
        fill: ``ffill`` / ``zero`` repair of NaN / inf; default: the training run's setting.
        label_col: Target column overriding the contract's.
        source: How messages name the data (default: the path, or ``DataFrame``).

    Raises:
        InputError: for missing columns, unseen classes and bad data.
    """
    import pandas as pd

    from tfseq.data.files import missing_column, read_columns
    from tfseq.data.long_format import fit_steps, load_long_format

    frame = path if isinstance(path, pd.DataFrame) else None
    file = None if isinstance(path, pd.DataFrame) else Path(path)
    name = Path(source) if source else file if file is not None else Path("DataFrame")
    fill = fill if fill is not None else contract.extra.get("fill")
    label_col = label_col or contract.label_col
    if labels:
        columns = [str(c) for c in frame.columns] if frame is not None else read_columns(name if file is None else file)
        if label_col is None:
            raise InputError(f"{name}: the model's contract names no label column; expected label_col.",
                             arguments=("label_col",))
        if label_col not in columns:
            raise missing_column(name, "label_col", label_col, columns)
    if contract.task == "forecast":
        from tfseq.data.windows import load_last_windows, load_windows

        if file is None:
            raise InputError("Received a DataFrame for a forecasting model; expected a long-format file.",
                             arguments=("path",))
        if contract.steps is None:
            raise InputError(f"{name}: the forecasting model's contract has no window (steps); expected a RUN "
                             "written by tfseq train.")
        id_col = contract.id_col if contract.id_col in read_columns(file) else None
        if labels:
            assert label_col is not None  # checked above
            data, _ = load_windows(file, target=label_col, window=contract.steps,
                                   horizon=int(contract.extra.get("horizon") or 1), time_col=contract.time_col,
                                   id_col=id_col, features=contract.feature_names, fill=fill, val_fraction=0.0)
            return data
        return load_last_windows(file, window=contract.steps, time_col=contract.time_col,
                                 feature_names=contract.feature_names, id_col=id_col, fill=fill)
    data, _ = load_long_format(
        path, id_col=contract.id_col, time_col=contract.time_col, label_col=label_col if labels else None,
        features=contract.feature_names, max_steps=contract.steps, fill=fill,
        task=contract.task if labels else None, class_names=contract.class_names if labels else None,
        source=source,
    )
    data = fit_steps(data, contract.steps) if contract.steps else data
    if not contract.masking and not contract.streaming and data.padded \
            and str(name) not in _WARNED_SHORT:
        _WARNED_SHORT.add(str(name))  # once per file: whole-file reads come in blocks
        logging.getLogger("tfseq").warning(
            "tfseq: %s: sequences shorter than the model's %d steps; the model was trained on sequences of one "
            "length and has no mask, so it reads their zero padding as data.", name, data.steps)
    if contract.masking and STEP_FLAG not in contract.feature_names and data.zero_steps \
            and str(name) not in _WARNED_ZERO:
        _WARNED_ZERO.add(str(name))
        logging.getLogger("tfseq").warning(
            "tfseq: %s: holds real steps whose every feature is 0.0; the model masks all-zero steps as padding "
            "(its training data held none), so it skips them. Retrained on data that hold such steps, a model "
            "reads a step flag and keeps them.", name)
    return data


def head_output(outputs: dict, contract: DataContract, artifact: Path) -> np.ndarray:
    """The output array answering the contract's task (by head name, or the only output)."""
    if contract.head in outputs:
        return np.asarray(outputs[contract.head])
    if len(outputs) == 1:
        return np.asarray(next(iter(outputs.values())))
    raise InputError(f"{artifact}: has outputs {', '.join(outputs)}; expected one named {contract.head!r}.")


def predictions_frame(ids: np.ndarray, output: np.ndarray, contract: DataContract) -> pd.DataFrame:
    """The predictions table: id column, ``predicted`` and ``p_<class>`` per class for classifiers."""
    import pandas as pd

    frame = pd.DataFrame({contract.id_col: ids})
    output = np.asarray(output, dtype=np.float64)
    if contract.task == "binary":
        p = output.reshape(len(ids), -1)[:, -1]
        names = contract.class_names or ["0", "1"]
        frame["predicted"] = np.asarray(names, dtype=object)[(p >= contract.threshold).astype(int)]
        frame[f"p_{names[0]}"] = 1.0 - p
        frame[f"p_{names[1]}"] = p
    elif contract.task == "multiclass":
        names = contract.class_names or [str(k) for k in range(output.shape[-1])]
        frame["predicted"] = np.asarray(names, dtype=object)[output.argmax(axis=-1)]
        for k, name in enumerate(names):
            frame[f"p_{name}"] = output[:, k]
    elif contract.task == "forecast":
        from tfseq.data.windows import forecast_names

        values = output.reshape(len(ids), -1)
        for k, name in enumerate(forecast_names(values.shape[1])):
            frame[name] = values[:, k]
    else:
        frame["predicted"] = output.reshape(len(ids), -1)[:, 0]
    return frame
