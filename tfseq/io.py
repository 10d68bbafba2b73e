"""Atomic file and directory writes: results appear whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tfseq.errors import InputError


def write_text_atomic(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json_or_empty(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when the file is missing, unreadable or not an object
    (a stage's record that may not have been written yet)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_atomic(path: Path, data: Any) -> None:
    """Writes ``data`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def make_readable(root: Path) -> None:
    """Makes ``root`` and everything below it readable by all (directories 755, files 644).

    Files written through :func:`write_text_atomic` and directories from :func:`atomic_directory`
    start private (``tempfile``'s 600 / 700); an export or a report is for others to read (a
    serving container, a cron job's mail).
    """
    root = Path(root)
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def partial_path(target: Path) -> Path:
    """Where :func:`atomic_directory` builds ``target`` when it can be resumed."""
    target = Path(target)
    return target.with_name(f".{target.name}.partial")


@contextlib.contextmanager
def atomic_directory(target: Path, *, overwrite: bool = False, resume: bool = False) -> Iterator[Path]:
    """Yields a temporary directory beside ``target``; renames it into place on success.

    On any error the temporary directory is removed and ``target`` is left as
    it was. With ``overwrite=True`` an existing ``target`` is replaced only
    after the new one is complete.

    With ``resume=True`` the directory is ``.<name>.partial`` (see
    :func:`partial_path`), clearly marked unfinished: what a crashed or
    interrupted run left there is kept and handed to the next run, which
    continues from it (training's crash backup). Only bad input
    (:class:`~tfseq.errors.InputError`) removes it.

    Raises:
        InputError: if ``target`` exists and ``overwrite`` is false.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise InputError(f"{target}: already exists; choose another path or ask to overwrite.")
    target.parent.mkdir(parents=True, exist_ok=True)
    if resume:
        tmp = partial_path(target)
        tmp.mkdir(exist_ok=True)
    else:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        if not resume or isinstance(exc, InputError):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
