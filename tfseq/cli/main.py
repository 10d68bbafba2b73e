"""The ``tfseq`` command: a thin layer over the library.

Each sub-command lives in its own module with ``add_parser(subparsers)``;
the parser it adds sets ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn, TextIO

from tfseq import __version__
from tfseq.errors import InputError, describe

# Sub-command modules, in the order --help lists them.
COMMAND_MODULES = (
    "tfseq.cli.demo",
    "tfseq.cli.convert",
    "tfseq.cli.train",
    "tfseq.cli.evaluate",
    "tfseq.cli.policy",
    "tfseq.cli.tune",
    "tfseq.cli.export",
    "tfseq.cli.predict",
    "tfseq.cli.explain",
    "tfseq.cli.monitor",
    "tfseq.cli.kernels",
)

EPILOG = """examples:
  tfseq demo                                  the classic study on 50,000 synthetic devices
  tfseq demo --devices 5000 --epochs 3 --out runs/small
  tfseq convert lot7/*.stdf --out lot7.parquet   STDF insertions to long format (device, insertion, tests)
  tfseq train tests.csv --id-col device_id --time-col cycle --label-col status --out runs/lstm
  tfseq evaluate runs/lstm holdout.csv --min-recall 0.95
  tfseq policy runs/stream calibration.csv --max-escape 0.001   stop testing early, escapes bounded
  tfseq tune tests.csv --id-col device_id --time-col cycle --label-col status --out tuning --trials 20
  tfseq export runs/lstm --out export --quantize none,dynamic,int8
  tfseq predict export/lstm-64-int8.tflite new.csv --out predictions.csv
  tfseq explain runs/lstm holdout.csv --out why  which features, at which cycles, drive the answers
  tfseq monitor export/lstm-64-int8.tflite new.csv     drift from the training data? (exit 4 if so)
  tfseq build-kernels                         compile the fused LSTM kernel now (container images)

run 'tfseq COMMAND --help' for a command's flags and examples."""


class UsageError(InputError):
    """A bad command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit status 2 (argparse prints usage too)
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(
        prog="tfseq",
        description="Recurrent sequence models from model.fit to TF Serving, TF Lite and ONNX.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tfseq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Python argument name -> flag (``id_col`` -> ``--id-col``) over the parser and its sub-commands."""
    flags: dict[str, str] = {}
    for action in parser._actions:  # noqa: SLF001  (argparse has no public listing)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                flags.update(flag_names(sub))
        elif action.option_strings:
            flags.setdefault(action.dest, max(action.option_strings, key=len))
    return flags


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """tfseq's own warnings (e.g. STDF notes while reading DATA) as one ``tfseq: warning:`` line each."""
    if category.__module__.startswith("tfseq."):
        print(f"tfseq: warning: {message}", file=file or sys.stderr)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (see :mod:`tfseq.errors`)."""
    parser = None
    warnings.showwarning = _show_warning
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return 2
        return int(args.run(args) or 0)
    except BaseException as exc:  # noqa: BLE001  (one handler: tfseq.errors.describe)
        if isinstance(exc, SystemExit):
            raise
        line, status = describe(exc, flag_names(parser) if parser is not None else None)
        print(line, file=sys.stderr)
        return status


def entry() -> NoReturn:
    """The ``tfseq`` console script: :func:`main`, then :func:`leave`."""
    leave(main())


def leave(status: int) -> NoReturn:
    """Ends the process with ``status``, at once once TensorFlow has been loaded. By then every file
    is written and closed (RUN and export directories are renamed into place before a command
    returns, worker processes and thread lanes are joined), and the interpreter's teardown of
    TensorFlow and its modules only costs time: 1.3-1.7 s of a 3-epoch ``tfseq train`` of 20,000
    devices (benchmarks/bench_commands.py, phase ``exit``, 2-core AMD EPYC), 1.0 s of the 7.4 s of a
    ``tfseq predict`` of 2,000 devices. Commands that never loaded it (``--help``, ``convert``) exit
    normally."""
    if "tensorflow" not in sys.modules:
        sys.exit(status)
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``tfseq ... | head``): nothing left to say
            pass
    os._exit(status)


if __name__ == "__main__":
    entry()
