"""``tfseq tune``: search architectures with Keras Tuner; re-run the same command to resume."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tfseq.cli.args import Subparsers
from tfseq.errors import InputError

if TYPE_CHECKING:
    from tfseq.data.sequences import SequenceSet, Task
    from tfseq.data.streamed import StreamedData
    from tfseq.tuning.space import SearchSpace

EXAMPLES = """examples:
  tfseq tune tests.csv --id-col device_id --time-col cycle --label-col status --out search
  tfseq tune tests.csv --id-col device_id --time-col cycle --label-col status --out search \\
      --tuner bayesian --trials 30 --objective val_recall --max-params 200000 --max-seconds 3600
  tfseq tune tests.csv ... --out search --cell lstm,gru --layers 1:2 --units 16,32,64 --learning-rate 1e-4:1e-2
  tfseq tune tests.csv ... --out search --space space.yaml --retrain      (best spec -> search/run)
  tfseq train tests.csv ... --config search/best_spec.json --out runs/best

search space (flags or --space FILE, JSON/YAML/TOML; flags win): a value fixes a hyperparameter,
A,B,C gives choices, MIN:MAX a range. Names: cell, bidirectional, layers (1-3), units, dropout,
recurrent_dropout, pooling, learning_rate (log scale), batch_size. In a file:
  cell: [lstm, gru]
  layers: {min: 1, max: 2}
  learning_rate: {min: 0.0001, max: 0.01, log: true}

results in --out: trials.csv (one row per trial, as each ends), best_spec.json (a tfseq train --config
file), best_trial.json, scores.png. Killed? Run the same command again: the search continues and only
the trial that was running starts over.

distributed (one shared --out, same command everywhere, see docs/guide/tune.md, "Distributed search"):
  KERASTUNER_TUNER_ID=chief  KERASTUNER_ORACLE_IP=10.0.0.5 KERASTUNER_ORACLE_PORT=8000 tfseq tune ...
  KERASTUNER_TUNER_ID=tuner0 KERASTUNER_ORACLE_IP=10.0.0.5 KERASTUNER_ORACLE_PORT=8000 tfseq tune ..."""

#: Search-space flags: name -> (metavar, default shown in --help); tfseq.tuning.space holds the defaults.
_SPACE_FLAGS = {
    "cell": ("A,B", "simple_rnn,lstm,gru"),
    "bidirectional": ("A,B", "false,true"),
    "layers": ("MIN:MAX", "1:3"),
    "units": ("A,B", "16,32,64,128 per layer"),
    "dropout": ("MIN:MAX", "0:0.5 in steps of 0.1"),
    "recurrent_dropout": ("MIN:MAX", "0:0.3 in steps of 0.1"),
    "pooling": ("A,B", "last,mean,attention"),
    "learning_rate": ("MIN:MAX", "1e-4:1e-2, log scale"),
    "batch_size": ("A,B", "32,64,128"),
}


def add_parser(sub: Subparsers) -> None:
    from tfseq.cli.data_args import add_data_arguments, add_input_arguments

    parser = sub.add_parser(
        "tune",
        help="search for the best architecture with Keras Tuner (resumable, distributed)",
        description=(
            "Search recurrent architectures for DATA with Keras Tuner (random, Bayesian or Hyperband) and "
            "write the results to --out. Each trial trains with early stopping on --objective; trials over "
            "the edge budget (--max-params, --max-size-mb) are skipped. Re-running the same command "
            "continues an interrupted search."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", type=Path, metavar="DATA",
                        help="long-format .csv or .parquet file, a directory or glob of them, or STDF files")
    parser.add_argument("--out", type=Path, metavar="DIR", help="search directory (re-use it to resume)")
    add_data_arguments(parser)
    add_input_arguments(parser)
    search = parser.add_argument_group("search")
    search.add_argument("--tuner", choices=("random", "bayesian", "hyperband"), default="random",
                        help="search algorithm (default: random)")
    search.add_argument("--trials", type=int, default=20, metavar="N", help="most trials (default: 20)")
    search.add_argument("--max-seconds", type=float, metavar="S",
                        help="wall-clock budget of this run: no trial starts after it (default: none)")
    search.add_argument("--objective", default="val_loss", metavar="NAME",
                        help="metric to optimise, e.g. val_auc, val_recall, val_loss; NAME:max or NAME:min "
                             "to give the direction (default: val_loss)")
    search.add_argument("--epochs", type=int, default=20, metavar="N",
                        help="maximum epochs per trial (default: 20)")
    search.add_argument("--patience", type=int, default=3, metavar="N",
                        help="early-stopping patience inside a trial (default: 3)")
    search.add_argument("--max-params", type=int, metavar="N", help="edge budget: most weights a model may have")
    search.add_argument("--max-size-mb", type=float, metavar="MB",
                        help="edge budget: most MB of float32 weights (4 bytes per parameter)")
    search.add_argument("--seed", type=int, default=0, metavar="N", help="seed of split, oracle and weights (default: 0)")
    search.add_argument("--overwrite", action="store_true", help="start afresh, deleting an earlier search in --out")
    search.add_argument("--trials-per-process", type=int, default=10, metavar="N",
                        help="run the search in a fresh process every N trials, which keeps memory flat "
                             "(Keras keeps some memory of every model a process trains); 0: one process "
                             "(default: 10)")
    search.add_argument("--retrain", nargs="?", const=True, default=None, metavar="RUN",
                        help="train the best spec on train + validation into RUN (default: DIR/run)")
    space = parser.add_argument_group("search space (VALUE fixes, A,B,C chooses, MIN:MAX ranges)")
    space.add_argument("--space", type=Path, metavar="FILE", help="search space file (.json, .yaml or .toml)")
    for name, (metavar, default) in _SPACE_FLAGS.items():
        space.add_argument("--" + name.replace("_", "-"), dest=f"space_{name}", metavar=metavar,
                           help=f"default: {default}")
    parser.set_defaults(run=run)


def _check_args(args: argparse.Namespace) -> SearchSpace:
    """Checks every argument before data loading and TensorFlow; returns the search space."""
    from tfseq.tuning.objective import parse_objective
    from tfseq.tuning.space import SearchSpace, parse_values

    if args.out is None:
        raise InputError("Received no value for argument --out; expected --out DIR (the search directory).")
    for flag, value in (("--trials", args.trials), ("--epochs", args.epochs), ("--patience", args.patience),
                        ("--max-params", args.max_params)):
        if value is not None and value < 1:
            raise InputError(f"Received an invalid value for argument {flag}, expected a positive integer, got {value}.")
    for flag, value in (("--max-seconds", args.max_seconds), ("--max-size-mb", args.max_size_mb)):
        if value is not None and not value > 0:
            raise InputError(f"Received an invalid value for argument {flag}, expected a positive number, got {value}.")
    parse_objective(args.objective)
    space = SearchSpace.from_file(args.space) if args.space else SearchSpace()
    changes = {name: parse_values(name, getattr(args, f"space_{name}")) for name in _SPACE_FLAGS
               if getattr(args, f"space_{name}") is not None}
    return space.replace(**changes) if changes else space


#: Exit status of a search process that stopped after --trials-per-process trials (EX_TEMPFAIL).
_RECYCLE = 75
_PATH_KEYS = ("data", "out", "val", "space")


def run(args: argparse.Namespace) -> int:
    space = _check_args(args)
    from tfseq.cli.data_args import load_training_data

    if args.trials_per_process is not None and args.trials_per_process < 0:
        raise InputError(f"Received an invalid value for argument --trials-per-process, expected 0 (never restart) "
                         f"or a positive integer, got {args.trials_per_process}.")
    retrain_dir = _retrain_dir(args)
    if retrain_dir is not None:
        from tfseq.workflows.retrain import check_retrain_target

        check_retrain_target(retrain_dir, args.out, overwrite=bool(args.overwrite))
    # bad data fails before TF starts; out of core, a first pass over the files finds it
    train, val, task, streamed, how = load_training_data(args, args.data, seed=args.seed)
    from tfseq.tuning.distributed import env_is_chief

    if args.trials_per_process and not env_is_chief():
        return _supervise(args)
    print(f"input      {how}")
    return _search(args, space, train, val, task, started=time.time(), overwrite_run=bool(args.overwrite),
                   streamed=streamed)


def _retrain_dir(args: argparse.Namespace) -> Path | None:
    if args.retrain is None:
        return None
    return args.out / "run" if args.retrain is True else Path(args.retrain)


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` that has Linux kill the search process when its supervisor dies.

    Without it a ``kill -9`` of ``tfseq tune`` leaves the search running on, and the same command
    run again would start a second search in the same directory.
    """
    def preexec() -> None:
        if not sys.platform.startswith("linux"):
            return
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the supervisor died before the request took effect
            os._exit(1)

    return preexec


def _supervise(args: argparse.Namespace) -> int:
    """Runs the search in child processes of --trials-per-process trials each, until it is done.

    Keras keeps some memory of every model a process trains (keras-team/keras#17458, #20552), so a
    fresh process every few trials keeps a long search flat; the resumable search directory makes
    each child continue where the last one stopped.
    """
    import json
    import subprocess

    started = time.time()
    deadline = None if args.max_seconds is None else started + args.max_seconds
    payload = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "run"}
    payload.update(_started=started, _overwrite_run=bool(args.overwrite))
    while True:
        if deadline is not None:
            payload["max_seconds"] = max(deadline - time.time(), 1e-3)
        rc = subprocess.call([sys.executable, "-m", "tfseq.cli.tune", json.dumps(payload)],
                             preexec_fn=_die_with_parent(os.getpid()))
        payload["overwrite"] = False  # only the first process starts afresh
        if rc != _RECYCLE:
            break
    if rc < 0:
        print(f"tfseq: internal error: the search process died (signal {-rc}); run the same command to resume.",
              file=sys.stderr)
        return 1
    return rc


def _search(args: argparse.Namespace, space: SearchSpace, train: SequenceSet, val: SequenceSet | None,
            task: Task, *, started: float, overwrite_run: bool,
            trials_per_call: int | None = None, streamed: StreamedData | None = None) -> int:
    from tfseq.startup import start_tensorflow

    start_tensorflow(threads=True)
    from tfseq.tuning.distributed import env_is_worker
    from tfseq.tuning.search import tune
    from tfseq.workflows.retrain import retrain

    result = tune(
        train, val, args.out, space=space, tuner=args.tuner, objective=args.objective, max_trials=args.trials,
        max_seconds=args.max_seconds, epochs=args.epochs, patience=args.patience, max_params=args.max_params,
        max_size_mb=args.max_size_mb, task=task, seed=args.seed, overwrite=args.overwrite,
        trials_per_call=trials_per_call, verbose=2 if not sys.stdout.isatty() else 1, streamed=streamed,
    )
    if not result.finished:
        return _RECYCLE
    skipped = len(result.trials) - result.completed
    print(f"trials     {result.completed} completed" + (f", {skipped} skipped or failed" if skipped else "")
          + f", {time.time() - started:.0f} s")
    if result.best_spec is None:
        errors = [r["error"] for r in result.trials if r.get("error")]
        print(f"best       none yet; results in {args.out}" + (f" (first error: {errors[0]})" if errors else ""))
        return 0
    print(f"best       trial {result.best_trial}: {result.objective} {result.best_score:.4f} "
          f"({result.best_spec.name}, {result.best_spec.pooling} pooling, epoch {result.best_epoch})")
    print(f"results    {args.out / 'trials.csv'}, {args.out / 'best_spec.json'}, {args.out / 'scores.png'}")
    retrain_dir = _retrain_dir(args)
    if retrain_dir is not None and not env_is_worker():  # only the chief (or a single process) retrains
        run_result = retrain(
            result, train, val, retrain_dir, id_col=args.id_col, time_col=args.time_col,
            label_col=args.target if task == "forecast" else args.label_col, task=task,
            predict_at=args.predict_at, seed=args.seed, overwrite=overwrite_run,
            extra={"data": str(args.data), "max_steps": args.max_steps, "fill": args.fill},
            verbose=2 if not sys.stdout.isatty() else 1, streamed=streamed,
        )
        done = " (retrained in a previous run; kept)" if run_result.get("skipped") else ""
        print(f"run        {run_result['run_dir']} ({run_result['parameters']:,} parameters, "
              f"{run_result['epochs']} epochs on train + validation){done}")
    return 0


def _child(payload_json: str) -> int:
    """One search process of :func:`_supervise`: the flags arrive as JSON."""
    import json

    payload = json.loads(payload_json)
    started, overwrite_run = payload.pop("_started"), payload.pop("_overwrite_run")
    for key in _PATH_KEYS:
        if payload.get(key) is not None:
            payload[key] = Path(payload[key])
    args = argparse.Namespace(**payload)
    try:
        space = _check_args(args)
        from tfseq.cli.data_args import load_training_data

        train, val, task, streamed, _ = load_training_data(args, args.data, seed=args.seed)
        return _search(args, space, train, val, task, started=started, overwrite_run=overwrite_run,
                       trials_per_call=args.trials_per_process, streamed=streamed)
    except BaseException as exc:  # noqa: BLE001  (the same handler as tfseq.cli.main)
        if isinstance(exc, SystemExit):
            raise
        from tfseq.cli.main import build_parser, flag_names
        from tfseq.errors import describe

        line, status = describe(exc, flag_names(build_parser()))
        if status != 130:
            print(line, file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
