"""Long-format files: their type, their columns, and their rows in chunks.

CSV (optionally compressed, e.g. ``.csv.gz``) and Parquet are read in chunks of
:data:`CHUNK_ROWS` rows and only the columns asked for, so that the peak memory of a load stays
close to the size of the numeric data. Every problem is an :class:`~tfseq.errors.InputError`
naming the file.

A path may also be a dataset, a directory or a glob of such files (or STDF files), which
:mod:`tfseq.data.datasets` reads file by file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tfseq.errors import InputError

#: Rows per chunk when reading a file.
CHUNK_ROWS = 100_000

__all__ = ["CHUNK_ROWS", "read_columns", "read_chunks", "missing_column", "show_value"]


def show_value(value: object) -> str:
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
    """Returns the column names of a long-format file or dataset without reading its rows.

    A dataset's columns are its files' columns followed by its Hive partition keys.

    Raises:
        InputError: if the file is missing, empty or unreadable, or the files of a dataset
            differ in their columns.
    """
    from tfseq.data.datasets import dataset_columns

    columns = dataset_columns(Path(path))
    return columns if columns is not None else _file_columns(Path(path))


def _file_columns(path: Path) -> list[str]:
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
    """Reads ``columns`` in chunks; CSV columns in ``text`` stay strings (ids such as ``00017``).

    A dataset is read file by file (a chunk never spans two files); partition columns are text.
    """
    from tfseq.data.datasets import dataset_chunks

    chunks = dataset_chunks(Path(path), columns, chunk_rows, text)
    yield from (chunks if chunks is not None else _file_chunks(Path(path), columns, chunk_rows, text))


def _file_chunks(path: Path, columns: list[str], chunk_rows: int, text: Sequence[str]) -> Iterator[pd.DataFrame]:
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
    """The error for column ``name`` (given as ``argument``) missing from ``columns``, with a close match."""
    same_case = [c for c in columns if c.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, list(columns), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; the columns are {', '.join(columns)}."
    return InputError(f"{path}: column {name!r} of {argument} not found{hint}", arguments=(argument,))
