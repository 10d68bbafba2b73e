"""Datasets: a directory or a glob of long-format files (or of STDF files), read file by file.

A directory is read recursively, its files in name order; hidden files and folders (``.name``,
``_name`` such as ``_SUCCESS``) and files of other types are skipped. Folders named ``key=value``
below the directory (or below a glob's fixed part) are Hive partitions: ``key`` becomes a text
column holding ``value`` (text, so a partition is never a default numeric feature; name it in
``features`` to use it as one). Every file must have the same columns (Parquet files: and the
same types); a file that differs is one error naming it and the first file. A sequence may be
split across files: :func:`tfseq.data.frames.read_frame` assembles it.

STDF files (a file, a directory or a glob of them) read as the long table of
:func:`tfseq.data.stdf.read_stdf` with its default part key (``device``, ``insertion``,
``final_outcome`` ...), converted once while the files stay unchanged.

:func:`tfseq.data.files.read_columns` and :func:`tfseq.data.files.read_chunks` call
:func:`dataset_columns` and :func:`dataset_chunks` first: every command that reads DATA takes a
dataset.
"""

from __future__ import annotations

import glob
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tfseq.data.files import _check_file, _file_chunks, _file_columns, _suffix_kind
from tfseq.errors import InputError

if TYPE_CHECKING:
    from tfseq.data.stdf import StdfTable

__all__ = ["DatasetFile", "dataset_files", "dataset_columns", "dataset_chunks", "file_chunks"]


@dataclass(frozen=True)
class DatasetFile:
    """One file of a dataset and its Hive partition values (``lot=L7/part-0.parquet``)."""

    path: Path
    partitions: tuple[tuple[str, str], ...] = ()


def _kind_of(path: Path) -> str | None:
    """``parquet``, ``csv``, ``stdf`` or None (not a data file), from the name."""
    from tfseq.data.stdf import is_stdf

    if is_stdf(path):
        return "stdf"
    try:
        return _suffix_kind(path)
    except InputError:
        return None


def dataset_files(path: Path) -> list[DatasetFile] | None:
    """The files of a dataset (a directory or a glob) in name order; None for a single file.

    Raises:
        InputError: for a dataset without data files, or one mixing STDF and long-format files.
    """
    path = Path(path)
    if path.is_dir():
        root, found = path, [p for p in path.rglob("*") if p.is_file()]
    elif glob.has_magic(str(path)) and not path.exists():
        fixed = []
        for part in path.parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        root = Path(*fixed) if fixed else Path()
        found = []
        for match in map(Path, glob.glob(str(path), recursive=True)):  # a matched folder stands for its files
            found += [p for p in match.rglob("*") if p.is_file()] if match.is_dir() else [match]
    else:
        return None
    files = []
    for file in sorted(found):
        relative = file.relative_to(root).parts if file.is_relative_to(root) else (file.name,)
        if any(part.startswith((".", "_")) for part in relative) or _kind_of(file) is None:
            continue
        folders = (part.partition("=") for part in relative[:-1])
        files.append(DatasetFile(file, tuple((k, urllib.parse.unquote(v)) for k, _, v in folders if k and v)))
    if not files:
        raise InputError(f"{path}: holds no .csv, .parquet or .stdf file; expected a directory or glob of "
                         "long-format files (a dataset) or of STDF files.")
    stdf = [f.path for f in files if _kind_of(f.path) == "stdf"]
    if stdf and len(stdf) < len(files):
        other = next(f.path for f in files if _kind_of(f.path) != "stdf")
        raise InputError(f"{path}: mixes STDF files ({stdf[0]}) with long-format files ({other}); expected one kind.")
    return files


def _is_stdf(path: Path, files: list[DatasetFile] | None) -> bool:
    from tfseq.data.stdf import is_stdf

    return _kind_of(files[0].path) == "stdf" if files else is_stdf(path)


_stdf_tables: dict[tuple[object, ...], StdfTable] = {}


def _stdf_table(path: Path, files: list[DatasetFile] | None) -> StdfTable:
    """The long table of STDF ``path``, converted once while its files stay unchanged."""
    from tfseq.data.stdf import read_stdf

    paths = [f.path for f in files] if files else [path]
    key = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in paths if p.exists())
    if key not in _stdf_tables:
        _stdf_tables.clear()  # one table at a time: memory stays bounded by the latest data
        _stdf_tables[key] = read_stdf(paths)
    return _stdf_tables[key]


def _schema(path: Path) -> list[tuple[str, str | None]]:
    """(name, type) of a file's columns; types for Parquet only (CSV types come from the values)."""
    if _suffix_kind(path) != "parquet":
        return [(name, None) for name in _file_columns(path)]
    import pyarrow.parquet as pq

    _check_file(path)
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # noqa: BLE001  (pyarrow's errors for a damaged footer vary)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: unreadable PARQUET file ({first}).") from None
    return [(name, str(schema.field(name).type)) for name in schema.names]


def dataset_columns(path: Path) -> list[str] | None:
    """A dataset's columns (its files' columns, then its partition keys); None for a single file.

    Raises:
        InputError: for files that differ in their columns, column types or partition keys.
    """
    files = dataset_files(path)
    if _is_stdf(path, files):
        return [str(c) for c in _stdf_table(path, files).frame.columns]
    if files is None:
        return None
    first = files[0]
    schema = _schema(first.path)
    types = dict(schema)
    keys = [k for k, _ in first.partitions]
    for other in files[1:]:
        theirs = dict(_schema(other.path))
        if set(theirs) != set(types):
            extra, lacks = sorted(set(theirs) - set(types)), sorted(set(types) - set(theirs))
            found = f"has column {extra[0]!r}" if extra else f"lacks column {lacks[0]!r}"
            raise InputError(f"{other.path}: {found}, unlike {first.path}; expected every file of the dataset "
                             f"{path} to have the same columns.")
        for name, kind in theirs.items():
            if kind is not None and types[name] is not None and kind != types[name]:
                raise InputError(f"{other.path}: column {name!r} is {kind} but {types[name]} in {first.path}; "
                                 f"expected every file of the dataset {path} to have the same column types.")
        if [k for k, _ in other.partitions] != keys:
            raise InputError(f"{other.path}: partition folders {[k for k, _ in other.partitions]} differ from "
                             f"{keys} of {first.path}; expected the same partition keys in every folder.")
    clash = [k for k in keys if k in types]
    if clash:
        raise InputError(f"{first.path}: partition folder {clash[0]!r} is also a column of the file; expected "
                         "partition keys apart from the columns.")
    return [n for n, _ in schema] + keys


def dataset_chunks(path: Path, columns: list[str], chunk_rows: int,
                   text: Sequence[str] = ()) -> Iterator[pd.DataFrame] | None:
    """A dataset's ``columns`` in chunks, file by file (a chunk never spans two files); None for a single file."""
    files = dataset_files(path)
    if _is_stdf(path, files):
        return _table_chunks(_stdf_table(path, files).frame, columns, chunk_rows)
    if files is None:
        return None
    dataset_columns(path)  # the same columns everywhere, or one error naming two files
    return _files_chunks(files, columns, chunk_rows, text)


def _table_chunks(frame: pd.DataFrame, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), chunk_rows):
        yield frame.iloc[start:start + chunk_rows][columns].reset_index(drop=True)


def _files_chunks(files: list[DatasetFile], columns: list[str], chunk_rows: int,
                  text: Sequence[str]) -> Iterator[pd.DataFrame]:
    for file in files:
        yield from file_chunks(file, columns, chunk_rows, text)


def file_chunks(file: DatasetFile, columns: list[str], chunk_rows: int,
                text: Sequence[str] = ()) -> Iterator[pd.DataFrame]:
    """One file's ``columns`` in chunks, its partition values as text columns (see :func:`dataset_chunks`)."""
    values = dict(file.partitions)
    own = [c for c in columns if c not in values]
    for chunk in _file_chunks(_check_file(file.path), own, chunk_rows, text):
        for name in columns:
            if name in values:
                chunk[name] = pd.Series([values[name]] * len(chunk), index=chunk.index, dtype=object)
        yield chunk  # columns by name (pandas turns a stored index column back into the index)
