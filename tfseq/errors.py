"""Error classes of tfseq, and the one place that turns any exception into a line and a status.

One base class; each subclass also inherits the built-in type a Python user would catch (as
keras-tuner's ``FatalValueError(FatalError, ValueError)``), and carries the exit status the
``tfseq`` command ends with (click's ``ClickException.exit_code``):

======  ==============================================================================
status  meaning
======  ==============================================================================
0       success
1       an internal failure (a bug: ``TFSEQ_DEBUG=1`` prints the traceback)
2       bad input or usage, a missing optional dependency, a full disk or a path that
        cannot be written: something the user can fix
3       a documented outcome: an export whose artifacts missed their parity thresholds
        (nothing was written; ``--allow-degraded`` keeps them)
4       a documented outcome: ``tfseq monitor`` found drift (new data unlike the training
        data; the report was written)
130     interrupted (Ctrl-C)
======  ==============================================================================

:func:`describe` is the single handler: the command line and ``tfseq tune``'s search processes
both print its line and exit with its status.
"""

from __future__ import annotations

import os
import re
import traceback

#: Exit status of :class:`ParityError`: an export that ran but missed its thresholds.
PARITY_STATUS = 3
#: Exit status of :class:`DriftFound`: ``tfseq monitor`` found the data drifted from the training data.
DRIFT_STATUS = 4


class TfseqError(Exception):
    """Base class of every error tfseq raises on purpose."""

    exit_code = 1


class InputError(TfseqError, ValueError):
    """Bad input: a file, a column, an argument or a value users can fix.

    Args:
        message: One sentence naming what was received and what was expected. Arguments are
            named as Python names (``id_col``), which the command line shows as its flags.
        arguments: The Python argument names the message mentions, for that mapping.
    """

    exit_code = 2

    def __init__(self, message: str = "", *, arguments: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.arguments = tuple(arguments)


class SpecError(InputError):
    """An invalid model specification value."""


class MissingDependencyError(InputError, ImportError):
    """An optional package a command needs is not installed; the message gives the install command."""

    def __init__(self, package: str, needed_for: str, install: str | None = None) -> None:
        self.package = package
        self.install = install or f"pip install {package}"
        super().__init__(f"{needed_for} needs the package {package!r}, which is not installed; "
                         f"install it with: {self.install}")
        self.name = package.replace("-", "_")  # ImportError's attribute


class ExportError(TfseqError, RuntimeError):
    """An export that could not be built (a converter or runtime failed)."""


class ParityError(ExportError):
    """An export whose artifacts ran but missed their parity thresholds: a documented outcome."""

    exit_code = PARITY_STATUS


class DriftFound(TfseqError):
    """New data drifted from the training data (``tfseq monitor``): a documented outcome, not a failure.

    The monitor's report is written before this is raised; the message names what drifted.
    """

    exit_code = DRIFT_STATUS


def _as_flags(exc: BaseException, flags: dict[str, str]) -> str:
    text = str(exc)
    for name in getattr(exc, "arguments", ()):
        if name in flags:
            # A whole word, not part of a path or file name ("runs/out/p.csv", "out.csv").
            text = re.sub(rf"(?<![\w/.-]){re.escape(name)}(?=[\s,;:)]|\.(?:\s|$)|$)", flags[name], text)
    return text


def exit_code(exc: BaseException) -> int:
    """The exit status for ``exc`` (see the table at the top of this module)."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, TfseqError):
        return exc.exit_code
    if isinstance(exc, ModuleNotFoundError):  # an optional dependency was missing after all
        return 2
    if isinstance(exc, OSError):  # disk full, permission denied, read-only file system ...
        return 2
    return 1


def describe(exc: BaseException, flags: dict[str, str] | None = None) -> tuple[str, int]:
    """One line for the terminal and the exit status, for any exception.

    Args:
        exc: The exception.
        flags: Python argument name -> command-line flag (``{"id_col": "--id-col"}``): an
            :class:`InputError` naming those arguments then names the flags instead.

    With ``TFSEQ_DEBUG`` set, internal failures also print their traceback.
    """
    status = exit_code(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "tfseq: interrupted", status
    if isinstance(exc, (ParityError, DriftFound)):
        return f"tfseq: {exc}", status
    if isinstance(exc, TfseqError) and status == 2:
        return f"tfseq: error: {_as_flags(exc, flags or {})}", status
    if isinstance(exc, ModuleNotFoundError):
        package = (exc.name or "a module").split(".")[0]
        hint = {"ai_edge_litert": "ai-edge-litert", "sklearn": "scikit-learn", "yaml": "pyyaml"}.get(package, package)
        return (f"tfseq: error: the package {package!r} is not installed; install it with: pip install {hint}",
                status)
    if isinstance(exc, OSError) and not isinstance(exc, TfseqError):
        where = f"{exc.filename}: " if exc.filename else ""
        reason = exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]
        return (f"tfseq: error: {where}{reason} (free space or choose another path, then run the command "
                "again)", status)
    if os.environ.get("TFSEQ_DEBUG"):
        traceback.print_exception(exc)
    first = str(exc).splitlines()[0] if str(exc) else ""
    return (f"tfseq: internal error: {type(exc).__name__}: {first} (set TFSEQ_DEBUG=1 for the traceback)",
            status)
