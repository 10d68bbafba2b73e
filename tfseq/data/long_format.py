"""Long-format CSV / Parquet in, padded :class:`SequenceSet` out.

One row per (sequence, step): an id column, an order column (cycle / time),
numeric feature columns and, for training, a target column that is constant
within a sequence. Sequences may differ in length; they are zero-padded at
the end (post-padding, which the masked recurrent layers and cuDNN expect)
and, with ``max_steps``, cut to their first ``max_steps`` steps.

Files are read in chunks of :data:`CHUNK_ROWS` rows, only the columns needed,
with the features converted to float32 chunk by chunk, so the peak memory is
close to the size of the numeric data rather than of a pandas frame of it.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfseq.data.sequences import MAX_INFERRED_CLASSES, TASKS, SequenceSet
from tfseq.checks import positive_int
from tfseq.errors import InputError

CHUNK_ROWS = 100_000
FILLS = ("ffill", "zero")
#: Integer targets with more distinct values than this are taken as regression.
#: Binary class names taken as the positive class (index 1: the costly one to miss).
POSITIVE_NAMES = frozenset(
    {"1", "true", "yes", "y", "fail", "failed", "failure", "failing", "bad", "defect",
     "defective", "reject", "rejected", "positive", "pos", "anomaly", "abnormal", "faulty"}
)

__all__ = ["load_long_format", "read_columns", "read_frame", "infer_task", "fit_steps"]


def _show(value) -> str:
    """``repr`` of a cell value without NumPy's type wrapper (``2``, not ``np.int64(2)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _suffix_kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if suffixes and (suffixes[-1] == ".csv" or suffixes[-2:-1] == [".csv"]):
        return "csv"
    raise InputError(
        f"{path}: unsupported file type {''.join(path.suffixes) or 'without suffix'!r}; expected "
        "a long-format .csv (optionally compressed, e.g. .csv.gz) or .parquet file."
    )


def _check_file(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such data file.")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; expected a long-format .csv or .parquet file.")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; expected a header row and data rows.")
    return path


def read_columns(path: Path) -> list[str]:
    """Returns the column names of a long-format file without reading its rows.

    Raises:
        InputError: if the file is missing, empty or unreadable.
    """
    path = _check_file(Path(path))
    kind = _suffix_kind(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except InputError:
        raise
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty; expected a header row and data rows.") from None
    except Exception as exc:  # noqa: BLE001  (pyarrow, parser and codec errors alike)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: unreadable {kind.upper()} file ({first}).") from None


def read_chunks(
    path: Path, columns: list[str], chunk_rows: int, text: Sequence[str] = ()
) -> Iterator[pd.DataFrame]:
    """Reads ``columns`` in chunks; CSV columns in ``text`` stay strings (ids such as ``00017``)."""
    kind = _suffix_kind(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
                yield batch.to_pandas()
        else:
            dtype = {c: str for c in text if c in columns}
            with pd.read_csv(path, usecols=columns, chunksize=chunk_rows, low_memory=False,
                             dtype=dtype or None) as reader:
                yield from reader
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: unreadable {kind.upper()} file ({first}).") from None


def missing_column(path: Path, argument: str, name: str, columns: Sequence[str]) -> InputError:
    same_case = [c for c in columns if c.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, list(columns), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; the columns are {', '.join(columns)}."
    return InputError(f"{path}: column {name!r} of {argument} not found{hint}", arguments=(argument,))


def _parse_features(features: str | Sequence[str] | None) -> list[str] | None:
    if features is None:
        return None
    if isinstance(features, str):
        features = features.split(",")
    names = [f.strip() for f in features if f.strip()]
    if not names:
        raise InputError(f"Received an invalid value for argument features, expected a,b,c, got {features!r}.",
                         arguments=("features",))
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"Received feature {dup!r} twice in argument features; expected distinct names.",
                         arguments=("features",))
    return names


def read_frame(
    path: Path | pd.DataFrame,
    *,
    id_col: str | None,
    time_col: str,
    label_col: str | None = None,
    features: str | Sequence[str] | None = None,
    fill: str | None = None,
    chunk_rows: int | None = None,
    source: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Reads and checks the columns of a long-format file (in chunks) or DataFrame.

    ``id_col`` None reads one long series (forecasting windows);
    ``chunk_rows`` defaults to :data:`CHUNK_ROWS`. ``source`` names the data in messages (default:
    the path, or ``DataFrame``).

    Returns:
        ``(frame, feature_names)``: the id, time, (label) and float32 feature
        columns, sorted by id then time.

    Raises:
        InputError: for a missing, empty or unreadable file, missing columns,
            non-numeric features, NaN/inf (without ``fill``) or duplicate
            (id, time) rows.
    """
    given = path if isinstance(path, pd.DataFrame) else None
    path = Path(source or ("DataFrame" if given is not None else path))
    if fill is not None and fill not in FILLS:
        raise InputError(f"Received an invalid value for argument fill, expected one of {', '.join(FILLS)}, "
                         f"got {fill!r}.", arguments=("fill",))
    columns = read_columns(path) if given is None else [str(c) for c in given.columns]
    for argument, name in (("id_col", id_col), ("time_col", time_col), ("label_col", label_col)):
        if name is not None and name not in columns:
            raise missing_column(path, argument, name, columns)
    if len({id_col, time_col, label_col} - {None}) != len([c for c in (id_col, time_col, label_col) if c]):
        raise InputError(f"{path}: id_col, time_col and label_col must name different columns, got "
                         f"{id_col!r}, {time_col!r}, {label_col!r}.", arguments=("id_col", "time_col", "label_col"))
    feature_names = _parse_features(features)
    if feature_names is not None:
        for name in feature_names:
            if name not in columns:
                raise missing_column(path, "features", name, columns)
        for name in feature_names:
            if name in (id_col, time_col, label_col):
                raise InputError(f"{path}: column {name!r} is both a feature and the id, time or label column.")
    keys = [c for c in (id_col, time_col, label_col) if c]
    wanted = keys + (feature_names if feature_names is not None else [c for c in columns if c not in keys])
    parts = []
    needs_repair = False
    chunks = ([given[wanted]] if given is not None and len(given) else []) if given is not None else \
        read_chunks(path, wanted, chunk_rows or CHUNK_ROWS, text=[id_col] if id_col else [])
    for chunk in chunks:
        if chunk.empty:  # a header without rows reads as one empty chunk of untyped columns
            continue
        if feature_names is None:  # every other numeric column, decided on the first chunk
            feature_names = [c for c in chunk.columns if c not in keys and pd.api.types.is_numeric_dtype(chunk[c])
                             and not pd.api.types.is_bool_dtype(chunk[c])]
            if not feature_names:
                raise InputError(
                    f"{path}: found no numeric feature column besides {', '.join(keys)}; expected at "
                    "least one (or name them with features).", arguments=("features",)
                )
        chunk = chunk[keys + feature_names]
        converted = {}
        for name in feature_names:
            column = chunk[name]
            values = pd.to_numeric(column, errors="coerce") if not pd.api.types.is_numeric_dtype(column) else column
            bad = values.isna() & column.notna()
            if bad.any():
                raise InputError(
                    f"{path}: column {name!r} holds the non-numeric value {_show(column[bad].iloc[0])}; "
                    "expected numbers in every feature column."
                )
            converted[name] = values.astype(np.float32)
        block = pd.DataFrame(converted).reset_index(drop=True)
        keyed = chunk[keys].reset_index(drop=True)
        finite = np.isfinite(block.to_numpy(dtype=np.float32))
        if not finite.all():
            if fill is None:  # reported from the chunk: no full-size copy just to find it
                r, c = np.argwhere(~finite)[0]
                where = f"{id_col} {_show(keyed[id_col].iloc[r])} at " if id_col else ""
                raise InputError(
                    f"{path}: column {feature_names[c]!r} holds {block.iloc[r, c]} for "
                    f"{where}{time_col} {_show(keyed[time_col].iloc[r])}; expected finite numbers, "
                    "or pass fill ffill|zero.", arguments=("fill",)
                )
            needs_repair = True
        parts.append(pd.concat([keyed, block], axis=1))
    if not parts:
        raise InputError(f"{path}: the file has a header but no rows; expected one row per (sequence, step).")
    frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    del parts
    order = keys[:2 if id_col else 1]
    for name in order:
        if frame[name].isna().any():
            raise InputError(f"{path}: column {name!r} has empty values; expected a value on every row.")
    duplicated = frame.duplicated(order)
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise InputError(
            f"{path}: duplicate rows for ({', '.join(order)}) = ({', '.join(_show(row[c]) for c in order)}); "
            "expected one row per sequence and step."
        )
    if not _is_sorted(frame, id_col, time_col):
        frame = frame.sort_values(order, kind="stable", ignore_index=True)
    if needs_repair:
        values = frame[feature_names].to_numpy(dtype=np.float32, copy=True)
        values[~np.isfinite(values)] = np.nan
        filled = pd.DataFrame(values, columns=feature_names)
        if fill == "ffill":  # within each sequence; a sequence's leading gaps take its first value, then 0
            group = frame[id_col].to_numpy() if id_col else np.zeros(len(frame))
            filled = filled.groupby(group, sort=False).transform(lambda s: s.ffill().bfill())
        frame[feature_names] = filled.fillna(0.0).to_numpy(dtype=np.float32)
    return frame, feature_names


def _is_sorted(frame: pd.DataFrame, id_col: str | None, time_col: str) -> bool:
    """Whether rows are already ordered by id then time (files usually are: sorting copies everything)."""
    time = frame[time_col]
    if not pd.api.types.is_numeric_dtype(time):
        return False
    if id_col is None:
        return bool(time.is_monotonic_increasing)
    ids = frame[id_col]
    if not ids.is_monotonic_increasing:
        return False
    codes = pd.factorize(ids)[0]
    same = codes[1:] == codes[:-1]
    return bool(np.all(np.diff(time.to_numpy())[same] > 0))


def infer_task(labels: pd.Series) -> str:
    """``binary`` for two classes, ``multiclass`` for a few integer or string classes, else ``regression``."""
    values = labels.dropna()
    distinct = values.unique()
    if pd.api.types.is_bool_dtype(values) or len(distinct) == 2:
        return "binary"
    if pd.api.types.is_numeric_dtype(values):
        as_float = values.astype(float)
        integral = bool(np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)))
        if integral and len(distinct) <= MAX_INFERRED_CLASSES:
            return "multiclass"
        return "regression"
    return "multiclass"


def _label_text(values: np.ndarray) -> np.ndarray:
    out = []
    for v in values:
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        out.append(str(v))
    return np.asarray(out, dtype=object)


def _order_classes(names: list[str], numeric: bool) -> list[str]:
    names = sorted(names, key=(lambda s: float(s)) if numeric else str)
    if len(names) == 2:
        positive = [n for n in names if n.strip().lower() in POSITIVE_NAMES]
        if len(positive) == 1:
            names = [n for n in names if n != positive[0]] + positive
    return names


def fit_steps(data: SequenceSet, steps: int) -> SequenceSet:
    """Pads (zeros at the end) or cuts (keeps the first ``steps``) every sequence to ``steps`` steps."""
    n, have, f = data.x.shape
    if have >= steps:
        x = data.x[:, :steps]
    else:
        x = np.zeros((n, steps, f), dtype=np.float32)
        x[:, :have] = data.x
    return dataclasses.replace(data, x=x, lengths=np.minimum(data.lengths, steps).astype(np.int32))


def load_long_format(
    path: Path | pd.DataFrame,
    *,
    id_col: str,
    time_col: str,
    label_col: str | None = None,
    features: str | Sequence[str] | None = None,
    max_steps: int | None = None,
    predict_at: int | None = None,
    fill: str | None = None,
    task: str | None = None,
    class_names: Sequence[str] | None = None,
    source: str | None = None,
) -> tuple[SequenceSet, str]:
    """Loads a long-format CSV or Parquet file, or a DataFrame, as padded sequences.

    Args:
        path: ``.csv`` (also ``.csv.gz``) or ``.parquet`` file, or a ``pandas.DataFrame``
            with the same columns, one row per (sequence, step).
        id_col: Column identifying a sequence (a device).
        time_col: Column ordering the steps of a sequence (cycle, time).
        label_col: Target column, constant within a sequence; None when
            predicting.
        features: Feature columns in model order, as a list or ``"a,b,c"``;
            None takes every other numeric column in file order. Columns not
            named are ignored.
        max_steps: Cut sequences to their first ``max_steps`` steps.
        predict_at: Keep only the first ``predict_at`` steps (early warning);
            applied after ``max_steps``.
        fill: Repair NaN / inf features: ``"ffill"`` (last valid value of the
            sequence) or ``"zero"``; None makes them an error.
        task: ``binary``, ``multiclass`` or ``regression``; None infers it
            from the labels (see :func:`infer_task`).
        class_names: Class names in index order (from a trained model's
            contract); labels outside them are an error. None derives them
            from the labels (sorted; for two classes a name such as ``fail``
            or ``1`` becomes class 1).
        source: How messages name the data (default: the path, or ``DataFrame``).

    Returns:
        ``(sequences, task)``: ``y`` holds class indices (int32) with
        ``class_names`` set for classification, float32 for regression, None
        without ``label_col``; ``task`` is the given or inferred task (None
        without ``label_col`` and ``task``).

    Raises:
        InputError: for any problem with the file, its columns or values,
            each named in one line.

    Example:
        >>> data, task = load_long_format("tests.csv", id_col="device_id",
        ...                               time_col="cycle", label_col="status")  # doctest: +SKIP
    """
    if source is None and isinstance(path, pd.DataFrame):
        source = "DataFrame"
    for name, value in (("max_steps", max_steps), ("predict_at", predict_at)):
        positive_int(name, value, allow_none=True)
    if task is not None and task not in TASKS[:3]:  # a forecast reads windows (tfseq.data.windows)
        raise InputError(f"Received an invalid value for argument task, expected one of {', '.join(TASKS[:3])}, "
                         f"got {task!r}.", arguments=("task",))
    frame, feature_names = read_frame(path, id_col=id_col, time_col=time_col, label_col=label_col,
                                      features=features, fill=fill, source=source)
    path = Path(source or path)
    codes, ids = pd.factorize(frame[id_col], sort=False)  # frame is sorted by id: codes ascend
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(frame)) - starts[codes]
    steps = int(counts.max())
    if max_steps is not None:
        steps = min(steps, int(max_steps))
    if predict_at is not None:
        steps = min(steps, int(predict_at))
    keep = position < steps
    x = np.zeros((len(ids), steps, len(feature_names)), dtype=np.float32)
    values = frame[feature_names].to_numpy(dtype=np.float32)
    if keep.all():
        x[codes, position] = values
    else:
        x[codes[keep], position[keep]] = values[keep]
    del values
    lengths = np.minimum(counts, steps).astype(np.int32)

    y = None
    names = list(class_names) if class_names is not None else None
    if label_col is not None:
        labels = frame[label_col]
        if labels.isna().any():
            where = frame[id_col][labels.isna()].iloc[0]
            raise InputError(f"{path}: column {label_col!r} is empty for {id_col} {_show(where)}; expected a target on every row.")
        per_sequence = labels.groupby(codes, sort=True).nunique()
        changing = np.flatnonzero(per_sequence.to_numpy() > 1)
        if len(changing):
            seq = changing[0]
            seen = labels[codes == seq].unique()[:3]
            raise InputError(
                f"{path}: column {label_col!r} changes within {id_col} {_show(ids[seq])} "
                f"(found {', '.join(map(_show, seen))}); expected one target per sequence."
            )
        first = labels.to_numpy()[starts]
        if task is None:
            task = infer_task(pd.Series(first)) if names is None else ("binary" if len(names) == 2 else "multiclass")
        if task == "regression":
            values = pd.to_numeric(pd.Series(first), errors="coerce")
            if values.isna().any():
                bad = first[values.isna().to_numpy()][0]
                raise InputError(
                    f"{path}: column {label_col!r} holds {_show(bad)}; expected numbers for a regression target."
                )
            y = values.to_numpy(dtype=np.float32)
        else:
            text = _label_text(first)
            found = sorted(set(text))
            if names is None:
                if len(found) < 2:
                    raise InputError(
                        f"{path}: column {label_col!r} holds a single class {found[0]!r}; expected at "
                        "least two classes to train a classifier."
                    )
                if task == "binary" and len(found) != 2:
                    raise InputError(
                        f"{path}: column {label_col!r} holds {len(found)} classes for task binary; "
                        "expected exactly two (use task multiclass).", arguments=("task",)
                    )
                numeric = pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels)
                names = _order_classes(found, numeric)
            unknown = [c for c in found if c not in names]
            if unknown:
                raise InputError(
                    f"{path}: column {label_col!r} holds class {unknown[0]!r}, which the model never saw; "
                    f"expected one of {', '.join(map(repr, names))}."
                )
            index = {c: i for i, c in enumerate(names)}
            y = np.array([index[c] for c in text], dtype=np.int32)
    data = SequenceSet(
        x=x, y=y, ids=np.asarray(ids), feature_names=list(feature_names), lengths=lengths,
        class_names=names if task in ("binary", "multiclass") else None,
    )
    return data, task
