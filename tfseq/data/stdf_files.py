"""STDF files: their names, the reader, and one file's record tables (compression, damage, salvage).

The records are read by ``stdf-convert`` (an optional dependency: ``pip install
'stdf-convert~=0.3.0'``, Python >= 3.11), one Arrow table per record type;
:mod:`tfseq.data.stdf` assembles them into the long table. Written here, where stdf-convert falls
short: it recognises only lower-case ``.gz``/``.bz2``/``.zip`` names (a lower-case link is read
instead), and on a truncated file it raises and returns nothing (the record headers are walked to
find the last complete record, which ``salvage`` keeps).
"""

from __future__ import annotations

import bz2
import contextlib
import glob
import os
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfseq.errors import InputError, MissingDependencyError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["STDF_SUFFIXES", "RECORDS", "is_stdf", "stdf_paths", "read_tables", "start_time"]

#: File name endings read as STDF (any letter case).
STDF_SUFFIXES = (".stdf", ".std")
_COMPRESSED = (".gz", ".bz2", ".zip")
#: The version range of stdf-convert this module is written for (its API changed in 0.3).
_READER = "stdf-convert~=0.3.0"
_INSTALL = "pip install 'stdf-convert~=0.3.0' (Python >= 3.11), or pip install 'tfseq[stdf]'"
#: The record types read.
RECORDS = ["MIR", "WIR", "PIR", "PTR", "MPR", "PRR"]


def is_stdf(path: Path | str) -> bool:
    """Whether the name is an STDF file's (``.stdf``/``.std``, optionally compressed, any case)."""
    name = Path(path).name.lower()
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.endswith(STDF_SUFFIXES)


def stdf_paths(paths: Path | str | Sequence[Path | str]) -> list[Path]:
    """The STDF files named by ``paths``: files, directories (their STDF files, sorted) or globs.

    Raises:
        InputError: for a name that matches nothing, a file that is not STDF, or no file at all.
    """
    given = [paths] if isinstance(paths, (str, Path)) else list(paths)
    found: list[Path] = []
    for item in given:
        path = Path(item)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and is_stdf(p))
            if not inside:
                raise InputError(f"{path}: holds no STDF file; expected .stdf or .std files "
                                 "(optionally .gz, .bz2 or .zip).")
            found += inside
        elif glob.has_magic(str(path)):
            matched = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if is_stdf(p))
            if not matched:
                raise InputError(f"{path}: matches no STDF file; expected .stdf or .std files "
                                 "(optionally .gz, .bz2 or .zip).")
            found += matched
        elif not path.exists():
            raise InputError(f"{path}: no such STDF file.")
        elif not is_stdf(path):
            raise InputError(f"{path}: not an STDF file name; expected .stdf or .std (optionally .gz, .bz2 "
                             "or .zip, any letter case).")
        else:
            found.append(path)
    if not found:
        raise InputError("Received no STDF file in argument paths; expected at least one.", arguments=("paths",))
    return found


def _reader() -> Any:
    try:
        import stdf_convert
    except ImportError:
        raise MissingDependencyError("stdf-convert", "Reading STDF files", install=_INSTALL) from None
    if not str(stdf_convert.__version__).startswith("0.3."):
        error = MissingDependencyError("stdf-convert", "Reading STDF files", install=_INSTALL)
        error.args = (f"Reading STDF files needs {_READER} (its API changed between minor versions), found "
                      f"stdf-convert {stdf_convert.__version__}; install it with: {_INSTALL}",)
        raise error
    return stdf_convert


# --- reading ------------------------------------------------------------------------------


@contextlib.contextmanager
def _readable(path: Path) -> Iterator[Path]:
    """``path``, or a lower-case-named link to it: stdf-convert knows ``.gz``, not ``.GZ``."""
    name = path.name
    if name == name.lower() or not name.lower().endswith(_COMPRESSED):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="tfseq-stdf-") as tmp:
        link = Path(tmp) / name.lower()
        try:
            os.symlink(path.resolve(), link)
        except OSError:  # a file system without symbolic links: a copy, still compressed
            shutil.copyfile(path, link)
        yield link


def _decompressed(path: Path) -> bytes:
    """The file's bytes, decompressed as far as they go (a truncated stream gives its beginning)."""
    raw = path.read_bytes()
    name = path.name.lower()
    if name.endswith(".gz"):
        return zlib.decompressobj(wbits=31).decompress(raw)
    if name.endswith(".bz2"):
        return bz2.BZ2Decompressor().decompress(raw)
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            return archive.read(archive.namelist()[0])
    return raw


def _complete_prefix(data: bytes) -> tuple[int, int]:
    """(bytes, records) of the complete records at the start of ``data``; (0, 0) without a FAR."""
    if len(data) < 6 or data[2:4] != b"\x00\x0a":
        return 0, 0
    order = ">" if struct.unpack(">H", data[:2])[0] == 2 else "<"
    header = struct.Struct(order + "H")
    pos = records = 0
    while pos + 4 <= len(data):
        end = pos + 4 + header.unpack_from(data, pos)[0]
        if end > len(data):
            break
        pos, records = end, records + 1
    return pos, records


def _reason(path: Path, exc: BaseException) -> str:
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    for prefix in (f"{path}: ", f"{path.name}: ", f"{path.name.lower()}: "):
        text = text.removeprefix(prefix)
    return text


def start_time(path: Path, limit: int = 1 << 16) -> int | None:
    """MIR START_T from the file's first bytes (FAR, then ATR/VUR ..., then MIR), without parsing it all.

    None when the MIR is not in the first ``limit`` bytes or the file cannot be opened this way;
    the full read then decides (and reports a damaged file).
    """
    name = path.name.lower()
    try:
        if name.endswith(".gz"):
            import gzip

            with gzip.open(path, "rb") as stream:
                head = stream.read(limit)
        elif name.endswith(".bz2"):
            with bz2.open(path, "rb") as stream:
                head = stream.read(limit)
        elif name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as member:
                head = member.read(limit)
        else:
            with open(path, "rb") as stream:
                head = stream.read(limit)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, IndexError):
        return None
    if len(head) < 6 or head[2:4] != b"\x00\x0a":
        return None
    order = ">" if struct.unpack(">H", head[:2])[0] == 2 else "<"
    pos = 0
    while pos + 4 <= len(head):
        length, typ, sub = struct.unpack_from(order + "HBB", head, pos)
        if (typ, sub) == (1, 10):
            return int(struct.unpack_from(order + "I", head, pos + 8)[0]) if pos + 12 <= len(head) else None
        pos += 4 + length
    return None


def _damage(path: Path, exc: BaseException) -> tuple[str, bytes, int, int]:
    """What is wrong with a file the reader refused, and (data, end, records) of its complete records."""
    reason = _reason(path, exc)
    try:
        data = _decompressed(path)
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error, IndexError) as cause:
        return f"{reason}; {_reason(path, cause)}", b"", 0, 0
    end, records = _complete_prefix(data)
    if records == 0:
        compressed = path.name.lower().endswith(_COMPRESSED)
        return ("a compressed stream cut short before any complete record" if compressed and len(data) < 6
                else "no STDF FAR record at its start"), data, 0, 0
    if end < len(data):
        return (f"truncated: ends inside a record at byte {end:,} of {len(data):,}, after {records:,} complete "
                "records"), data, end, records
    return reason, data, end, records


def read_tables(path: Path, salvage: bool, notes: list[str]) -> dict[str, pa.Table]:
    reader = _reader()
    try:
        with _readable(path) as readable:
            return dict(reader.tables(str(readable), RECORDS))
    except (reader.StdfError, OSError, ValueError) as exc:
        reason, data, end, records = _damage(path, exc)
    if records == 0:  # nothing before the damage: salvage has nothing to keep
        raise InputError(f"{path}: damaged or not an STDF file ({reason}); expected STDF V4 records.")
    if end == len(data):  # every record is whole, yet one does not read: nothing to cut off
        raise InputError(f"{path}: damaged STDF file ({reason}); expected STDF V4 records as the specification "
                         "lays them out.")
    if not salvage:
        raise InputError(f"{path}: damaged STDF file ({reason}); expected complete STDF V4 records (salvage "
                         "keeps the records before the damage).", arguments=("salvage",))
    with tempfile.TemporaryDirectory(prefix="tfseq-stdf-") as tmp:
        part = Path(tmp) / "salvaged.stdf"
        part.write_bytes(data[:end])
        try:
            tables = dict(reader.tables(str(part), RECORDS))
        except (reader.StdfError, OSError, ValueError) as exc:
            raise InputError(f"{path}: damaged STDF file ({reason}) that cannot be salvaged: its first {records:,} "
                             f"complete records do not read either ({_reason(part, exc)}).") from None
    notes.append(f"{path}: damaged ({reason}); salvaged its first {records:,} complete records "
                 f"({end:,} of {len(data):,} bytes); a part cut off there is left out.")
    return tables
