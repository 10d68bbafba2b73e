"""The data flags shared by ``train``, ``evaluate``, ``predict`` and ``tune``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfseq.cli.args import number_in, positive_int
from tfseq.data.sequences import SequenceSet, Task
from tfseq.errors import InputError

if TYPE_CHECKING:
    from tfseq.data.streamed import StreamedData

#: Dests of the data flags (config files may set them too).
DATA_KEYS = ("id_col", "time_col", "label_col", "features", "max_steps", "predict_at", "fill", "task",
             "val", "val_fraction", "window", "horizon", "target", "out_of_core")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the long-format data flags; every default is None so a config file can fill it."""
    group = parser.add_argument_group("data (long format: one row per sequence and step)")
    group.add_argument("--id-col", metavar="C", help="sequence id column (a device)")
    group.add_argument("--time-col", metavar="C", help="order column (cycle, time)")
    group.add_argument("--label-col", metavar="C", help="target column, constant within a sequence")
    group.add_argument("--features", metavar="A,B,C",
                       help="feature columns in this order (default: every other numeric column)")
    group.add_argument("--max-steps", type=positive_int, metavar="N", help="cut sequences to their first N steps")
    group.add_argument("--predict-at", type=positive_int, metavar="N",
                       help="early warning: use only the first N steps")
    group.add_argument("--fill", choices=("ffill", "zero"),
                       help="repair NaN/inf features (default: they are an error)")
    group.add_argument("--task", choices=("binary", "multiclass", "regression"),
                       help="default: inferred from the label column")
    group.add_argument("--val", type=Path, metavar="DATA", help="validation file (default: a split of DATA)")
    group.add_argument("--val-fraction", type=number_in(0, 1), metavar="F",
                       help="validation fraction of DATA, split by sequence, stratified (default: 0.2)")
    group.add_argument("--window", type=positive_int, metavar="W",
                       help="forecasting: windows of W steps (with --target, --horizon)")
    group.add_argument("--horizon", type=positive_int, metavar="H", help="forecasting: predict the next H values")
    group.add_argument("--target", metavar="COL", help="forecasting: column to forecast")


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out-of-core`` / ``--in-memory``: how ``train`` and ``tune`` read DATA (default: by its size)."""
    group = parser.add_argument_group("input (default: in memory when the data fit, else out of core)")
    choice = group.add_mutually_exclusive_group()
    choice.add_argument("--out-of-core", dest="out_of_core", action="store_const", const=True,
                        help="stream DATA from its files every epoch (Parquet/CSV datasets larger than memory; "
                             "validation split by a hash of the id)")
    choice.add_argument("--in-memory", dest="out_of_core", action="store_const", const=False,
                        help="load DATA whole into memory")


def choose_out_of_core(args: argparse.Namespace, path: Path) -> tuple[bool, str]:
    """Whether to train out of core, and why: ``--out-of-core`` / ``--in-memory``, else the data's size.

    The in-memory path is kept for forecast windows, STDF files and ``--val`` files.

    Raises:
        InputError: for ``--out-of-core`` with forecast windows, STDF files or ``--val``.
    """
    from tfseq.data.datasets import dataset_files
    from tfseq.data.stdf import is_stdf
    from tfseq.data.streamed import IN_MEMORY_PEAK, available_memory, padded_bytes

    given = getattr(args, "out_of_core", None)
    files = dataset_files(path)
    stdf = any(is_stdf(f.path) for f in files) if files else is_stdf(path)
    held = "--window" if getattr(args, "window", None) else "--val" if getattr(args, "val", None) else \
        "STDF files" if stdf else None
    if held is not None:
        if given:
            raise InputError(f"Received --out-of-core with {held}; expected a long-format Parquet/CSV dataset split by "
                             "--val-fraction (forecast windows, --val files and STDF files train in memory).",
                             arguments=("out_of_core",))
        return False, "in memory"
    if given is not None:
        return bool(given), "out of core (--out-of-core)" if given else "in memory (--in-memory)"
    need, have = padded_bytes(path) * IN_MEMORY_PEAK, available_memory()
    if need > 0.7 * have:
        return True, f"out of core: in memory would take about {need / 2**30:.1f} GiB of {have / 2**30:.1f} GiB free"
    return False, "in memory"


def load_training_data(
    args: argparse.Namespace, path: Path, *, seed: int = 0
) -> tuple[SequenceSet, SequenceSet | None, Task, StreamedData | None, str]:
    """Training data as ``train`` and ``tune`` read it: in memory, or scanned for out-of-core training.

    Returns:
        ``(train, validation, task, streamed, how)``: out of core, ``streamed`` is the scanned
        dataset and ``train`` / ``validation`` are samples of its splits; ``how`` says which ran and why.
    """
    out_of_core, how = choose_out_of_core(args, path)
    if not out_of_core:
        train, val, task = load_split_from_args(args, path, seed=seed)
        return train, val, task, None, how
    from tfseq.data.streamed import read_sample

    streamed = scan_from_args(args, path, seed=seed)  # statistics, classes and the split; bad data fails here
    val = read_sample(streamed, "validation", SAMPLE_SEQUENCES) if streamed.validation_sequences else None
    return read_sample(streamed, "train", SAMPLE_SEQUENCES), val, streamed.task, streamed, how


#: Sequences of each split an out-of-core run keeps in memory for its baselines, reference and export checks.
SAMPLE_SEQUENCES = 20_000


def scan_from_args(args: argparse.Namespace, path: Path, *, seed: int = 0) -> StreamedData:
    """Scans ``path`` for out-of-core training as the data flags in ``args`` say."""
    from tfseq.data.streamed import scan_dataset

    _require(args, "id_col", "time_col", "label_col")
    cut = [v for v in (getattr(args, "max_steps", None), getattr(args, "predict_at", None)) if v is not None]
    return scan_dataset(path, id_col=args.id_col, time_col=args.time_col, label_col=args.label_col,
                        features=getattr(args, "features", None), max_steps=min(cut) if cut else None,
                        fill=getattr(args, "fill", None), task=getattr(args, "task", None),
                        val_fraction=getattr(args, "val_fraction", None) or 0.2, seed=seed)


def _require(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if getattr(args, name, None) is None:
            flag = "--" + name.replace("_", "-")
            raise InputError(f"Received no value for argument {flag}; expected {flag} C (or {name}: C in --config).")


def load_from_args(args: argparse.Namespace, path: Path) -> tuple[SequenceSet, Task | None]:
    """Loads ``path`` as the data flags in ``args`` say.

    Returns:
        ``(sequences, task)``; the task is None without a label column and
        ``--task``. With ``--window`` the sequences are every forecast window
        (training windows first, then validation windows, in time order) and
        the task is ``forecast``; use :func:`load_split_from_args` to keep the
        time split.

    Raises:
        InputError: for missing flags or bad data.
    """
    if getattr(args, "window", None):
        train, val, task = load_split_from_args(args, path)
        if val is None:
            return train, task
        joined = SequenceSet(x=np.concatenate([train.x, val.x]), y=np.concatenate([train.y, val.y]),
                             ids=np.concatenate([train.ids, val.ids]), feature_names=train.feature_names)
        return joined, task
    from tfseq.data.long_format import load_long_format

    _require(args, "id_col", "time_col")
    return load_long_format(
        path, id_col=args.id_col, time_col=args.time_col, label_col=getattr(args, "label_col", None),
        features=getattr(args, "features", None), max_steps=getattr(args, "max_steps", None),
        predict_at=getattr(args, "predict_at", None), fill=getattr(args, "fill", None),
        task=getattr(args, "task", None),
    )


def load_split_from_args(
    args: argparse.Namespace, path: Path, *, seed: int = 0
) -> tuple[SequenceSet, SequenceSet | None, Task]:
    """Loads training and validation data: ``--val`` file, time split of windows, or a split of ``path``.

    Sequences are split by id (no sequence in two splits), stratified by class
    for classifiers; forecast windows are split in time per series.

    Returns:
        ``(train, validation, task)``.
    """
    fraction = getattr(args, "val_fraction", None) or 0.2
    if getattr(args, "window", None):
        from tfseq.data.windows import load_windows

        _require(args, "time_col", "target")
        horizon = getattr(args, "horizon", None) or 1
        common = dict(target=args.target, window=args.window, horizon=horizon, time_col=args.time_col,
                      id_col=getattr(args, "id_col", None), features=getattr(args, "features", None),
                      fill=getattr(args, "fill", None))
        if getattr(args, "val", None):
            train, _ = load_windows(path, val_fraction=0.0, **common)
            val, _ = load_windows(args.val, val_fraction=0.0, **common)
            return train, val, "forecast"
        train, split_off = load_windows(path, val_fraction=fraction, **common)
        return train, split_off, "forecast"
    from tfseq.data.long_format import fit_steps, load_long_format

    _require(args, "id_col", "time_col", "label_col")
    data, task = load_from_args(args, path)
    assert task is not None  # the label column is required above, and labelled data always has a task
    if getattr(args, "val", None):
        val, _ = load_long_format(
            args.val, id_col=args.id_col, time_col=args.time_col, label_col=args.label_col,
            features=data.feature_names, max_steps=getattr(args, "max_steps", None),
            predict_at=getattr(args, "predict_at", None), fill=getattr(args, "fill", None), task=task,
            class_names=data.class_names,
        )
        overlap = np.intersect1d(data.ids.astype(str), val.ids.astype(str))
        if len(overlap):
            raise InputError(f"{args.val}: {args.id_col} {overlap[0]!r} is in both DATA and --val; "
                             "expected every sequence in one split only.")
        return data, fit_steps(val, data.steps), task
    from tfseq.data.splits import split_sequences

    classifier = task in ("binary", "multiclass")
    if classifier:
        assert data.y is not None and data.class_names is not None  # set for labelled classifier data
        counts = np.bincount(data.y, minlength=len(data.class_names))
        if counts.min() < 2:
            rare = data.class_names[int(counts.argmin())]
            raise InputError(f"{path}: class {rare!r} of column {args.label_col!r} has {counts.min()} sequence(s); "
                             "expected at least 2 per class to split off validation data (or pass --val).")
    if len(data) < 4:
        raise InputError(f"{path}: found {len(data)} sequences; expected at least 4 to split off validation data.")
    try:
        train, val, _ = split_sequences(data, (1.0 - fraction, fraction, 0.0), seed=seed, stratify=classifier)
    except ValueError as exc:  # too few sequences of a class for a stratified split
        raise InputError(f"{path}: cannot split {len(data)} sequences stratified by class ({exc}); pass --val.") from None
    return train, val, task
