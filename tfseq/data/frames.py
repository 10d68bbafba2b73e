"""Long-format rows, checked: a file or a DataFrame in, sorted float32 feature columns out.

:func:`read_frame` is the one entry point for both a file (read in chunks by
:mod:`tfseq.data.files`) and a ``pandas.DataFrame`` already in memory (``tfseq predict`` passes
each block of a large file this way), so both get the same checks and messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfseq.data import files
from tfseq.data.files import missing_column, read_chunks, read_columns, show_value
from tfseq.errors import InputError

#: How :func:`read_frame` repairs NaN / inf features when asked to.
FILLS = ("ffill", "zero")

__all__ = ["FILLS", "read_frame"]


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
    ``chunk_rows`` defaults to :data:`tfseq.data.files.CHUNK_ROWS`. ``source`` names the data in messages (default:
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
    path = Path(source or ("DataFrame" if isinstance(path, pd.DataFrame) else path))
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
        read_chunks(path, wanted, chunk_rows or files.CHUNK_ROWS, text=[id_col] if id_col else [])
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
                    f"{path}: column {name!r} holds the non-numeric value {show_value(column[bad].iloc[0])}; "
                    "expected numbers in every feature column."
                )
            converted[name] = values.astype(np.float32)
        block = pd.DataFrame(converted).reset_index(drop=True)
        keyed = chunk[keys].reset_index(drop=True)
        finite = np.isfinite(block.to_numpy(dtype=np.float32))
        if not finite.all():
            if fill is None:  # reported from the chunk: no full-size copy just to find it
                r, c = np.argwhere(~finite)[0]
                where = f"{id_col} {show_value(keyed[id_col].iloc[r])} at " if id_col else ""
                raise InputError(
                    f"{path}: column {feature_names[c]!r} holds {block.iloc[r, c]} for "
                    f"{where}{time_col} {show_value(keyed[time_col].iloc[r])}; expected finite numbers, "
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
            f"{path}: duplicate rows for ({', '.join(order)}) = ({', '.join(show_value(row[c]) for c in order)}); "
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
    assert feature_names is not None  # decided on the first chunk, and there is one
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
