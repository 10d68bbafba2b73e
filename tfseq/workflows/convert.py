"""STDF insertions in, one long-format Parquet file out (``tfseq convert``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from tfseq.errors import InputError

__all__ = ["Converted", "convert_stdf"]


class Converted(NamedTuple):
    """What :func:`convert_stdf` wrote."""

    out: Path  #: the Parquet file
    devices: int  #: sequences (distinct devices)
    rows: int  #: (device, insertion) rows
    insertions: list[Path]  #: the files, in insertion order
    features: list[str]  #: the feature columns
    notes: list[str]  #: what the assembly reports (retests, stop-on-fail tests, salvage ...)


def convert_stdf(
    paths: Path | str | Sequence[Path | str],
    out: Path | str,
    *,
    part_key: str = "part_id",
    salvage: bool = False,
    retests: str = "last",
    overwrite: bool = False,
) -> Converted:
    """Converts STDF insertions into one long-format Parquet file.

    One row per (device, insertion): ``device``, ``insertion`` (1, 2, ... by MIR START_T), one
    float32 column per parametric test (``<TEST_NUM>:<TEST_TXT>``) and the labels
    ``final_outcome``, ``final_hard_bin``, ``final_soft_bin`` (see :func:`tfseq.data.stdf.read_stdf`
    for every rule). The file appears whole or not at all. Train on it with
    ``--id-col device --time-col insertion --label-col final_outcome``.

    Args:
        paths: STDF files, directories of them or globs (one file per insertion).
        out: The ``.parquet`` file to write.
        part_key: ``"part_id"``, ``"wafer_xy"`` or ``"test:<TEST_NUM>"``: the device identity.
        salvage: Keep a damaged file's records up to the last complete one.
        retests: ``"last"`` (a device retested in a file keeps its last test) or ``"steps"``
            (each test is a step of its own).
        overwrite: Replace an existing ``out``.

    Returns:
        The file written, its devices, rows, insertions, features and the assembly's notes.

    Raises:
        InputError: for an existing ``out`` (without ``overwrite``), an ``out`` that is not
            ``.parquet``, or bad STDF input.
        MissingDependencyError: without ``stdf-convert``.

    Examples:
        >>> convert_stdf(["ws1.stdf", "ft1.stdf.gz"], "long.parquet")  # doctest: +SKIP
    """
    import warnings

    from tfseq.data.stdf import StdfWarning, read_stdf

    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise InputError(f"Received {str(out)!r} for argument out; expected a .parquet file (a CSV would make "
                         "the bin labels numeric features).", arguments=("out",))
    if out.exists() and not overwrite:
        raise InputError(f"{out}: already exists; choose another out or pass overwrite.",
                         arguments=("out", "overwrite"))
    with warnings.catch_warnings():  # the notes are returned; no second copy on stderr
        warnings.simplefilter("ignore", StdfWarning)
        table = read_stdf(paths, part_key=part_key, salvage=salvage, retests=retests)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(fd)
    try:
        table.frame.to_parquet(partial, index=False)
        os.chmod(partial, 0o644)  # mkstemp's 600: the table is for others to read too
        os.replace(partial, out)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    devices = int(table.frame["device"].nunique())
    return Converted(out, devices, len(table.frame), table.files, table.features, table.notes)
