"""Out-of-core data: a long-format dataset scanned once, then read block by block, never whole.

:func:`scan_dataset` reads every file once and keeps only what training needs: the feature
names, the longest sequence, the task and classes, the normalisation sums over the training
sequences' real steps, the regression target's mean and spread, and the count of training and
validation sequences of each file. :func:`read_blocks` then reads one file at a time, in blocks
of whole sequences, as padded arrays; :mod:`tfseq.training.streamed` turns them into a
``tf.data`` pipeline. Memory holds one block and the shuffle buffer, whatever the data's size.

Sequences go to validation by a hash of their id (:func:`is_validation`), so the split needs no
list of ids, is the same on every worker and in every epoch, and never puts one sequence in both.

Each sequence's rows must lie together in one file (as ``tfseq convert`` and per-lot files write
them); a file whose sequences interleave is one error naming it. A file is read in blocks of
about :data:`BLOCK_ROWS` rows, so no file needs to fit in memory either.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from tfseq.checks import positive_int
from tfseq.data.datasets import DatasetFile, dataset_files, file_chunks
from tfseq.data.files import read_columns, show_value
from tfseq.data.frames import read_frame
from tfseq.data.labels import balanced_class_weights, encode_targets, label_text, order_classes, sequence_targets
from tfseq.data.long_format import pad_sequences
from tfseq.data.sequences import (
    MAX_INFERRED_CLASSES,
    STEP_FLAG,
    TASKS,
    SequenceSet,
    Task,
    flag_padding,
    task_of_targets,
    valid_mask,
)
from tfseq.errors import InputError

#: Rows read at a time from a file (whole sequences: a block ends where a sequence does).
BLOCK_ROWS = 100_000

#: Peak memory of in-memory training, as a multiple of the data's float32 size: ``make bench-outofcore``
#: measured 4.7 GB at 250,000 devices x 20 cycles x 15 parameters (0.3 GB) and 6.6 GB at 500,000, that
#: is 6.3 GB more per GB of data (the long table in pandas, then the padded arrays and their copies).
IN_MEMORY_PEAK = 6.5

Part = Literal["train", "validation", "all"]

__all__ = ["BLOCK_ROWS", "StreamedData", "scan_dataset", "read_blocks", "read_sample", "is_validation",
           "padded_bytes", "available_memory", "whole"]


def flag_padding_of(train: SequenceSet, val: SequenceSet | None, streamed: StreamedData | None
                    ) -> tuple[SequenceSet, SequenceSet | None, StreamedData | None]:
    """``(train, val, streamed)`` with the step flag where real steps are all 0.0, for a model that
    masks padding: in memory as :func:`tfseq.data.sequences.flag_padding` decides; out of core as
    the scan found, the dataset then read with the flag and its samples ``train`` and ``val`` (read
    without it) given it too."""
    if streamed is None:
        return (*flag_padding(train, val), None)
    if not streamed.zero_steps:
        return train, val, streamed
    return train.with_step_flag(), None if val is None else val.with_step_flag(), streamed.with_step_flag()


def is_validation(ids: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Whether each id's sequence is in the validation split: a hash of the id (as text) and ``seed``.

    About ``fraction`` of the ids are; the answer for an id never depends on the other ids.
    """
    key = f"tfseq-split{seed:05d}"[-16:]
    hashed = pd.util.hash_array(np.asarray(ids).astype(str).astype(object), hash_key=key, categorize=False)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(2**53) < fraction


@dataclass(frozen=True)
class StreamedData:
    """What a scan of a dataset found: enough to build, normalise and feed a model.

    Attributes:
        source: The dataset as given (a file, a directory or a glob).
        files: Its files, in name order.
        id_col: The id column.
        time_col: The time column.
        label_col: The target column.
        feature_names: The feature columns, in model order.
        fill: How NaN / inf features are repaired (None: they are an error).
        steps: Steps of the padded sequences (the longest, or the cut).
        task: ``binary``, ``multiclass`` or ``regression``.
        class_names: Class names in index order (classification).
        val_fraction: Fraction of the ids in the validation split.
        seed: Seed of the split.
        counts: ``(train, validation)`` sequences of each file.
        class_counts: Training sequences of each class (classification).
        feature_sum: Per feature, the sum over the training sequences' steps.
        feature_sumsq: Per feature, the sum of squares over the same steps.
        real_steps: Training steps with any non-zero feature (what a masked model sees).
        target_mean: Mean of the training targets (regression).
        target_std: Their standard deviation (regression).
        zero_steps: Training steps inside their sequence's length whose features are all 0.0.
        step_flag: Whether the blocks carry :data:`~tfseq.data.sequences.STEP_FLAG` as their last
            feature (see :meth:`with_step_flag`).
    """

    source: Path
    files: tuple[DatasetFile, ...]
    id_col: str
    time_col: str
    label_col: str
    feature_names: tuple[str, ...]
    fill: str | None
    steps: int
    task: Task
    class_names: tuple[str, ...] | None
    val_fraction: float
    seed: int
    counts: tuple[tuple[int, int], ...]
    class_counts: tuple[int, ...] | None
    feature_sum: tuple[float, ...]
    feature_sumsq: tuple[float, ...]
    real_steps: int
    target_mean: float | None = None
    target_std: float | None = None
    zero_steps: int = 0
    step_flag: bool = False

    @property
    def model_features(self) -> tuple[str, ...]:
        """The features of the blocks: :attr:`feature_names`, then the step flag if they carry it."""
        return (*self.feature_names, STEP_FLAG) if self.step_flag else self.feature_names

    def with_step_flag(self) -> "StreamedData":
        """This dataset read with the step flag, as :func:`tfseq.data.sequences.flag_padding` does in
        memory when real steps are all 0.0 (unchanged when none are)."""
        return dataclasses.replace(self, step_flag=True) if self.zero_steps else self

    @property
    def train_sequences(self) -> int:
        return sum(t for t, _ in self.counts)

    @property
    def validation_sequences(self) -> int:
        return sum(v for _, v in self.counts)

    def normalization(self, *, masking: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature ``(mean, variance)`` over the training steps, as
        :func:`tfseq.models.builders.normalization_stats` computes them in memory: with
        ``masking`` over the steps with any non-zero feature, else over every padded step."""
        count = self.real_steps if masking else self.train_sequences * self.steps
        if self.step_flag:  # only the padding is all 0.0: the real zero steps count
            count += self.zero_steps if masking else 0
        if count == 0:
            raise InputError(f"{self.source}: found no training steps to compute the normalisation on.")
        mean = np.asarray(self.feature_sum) / count
        variance = np.maximum(np.asarray(self.feature_sumsq) / count - mean**2, 0.0)
        if self.step_flag:  # 1.0 on every step counted (a masked model counts no padding)
            real = (self.real_steps + self.zero_steps) / count
            mean, variance = np.append(mean, real), np.append(variance, real - real**2)
        return mean, variance

    def target_sample(self) -> np.ndarray | None:
        """Two targets with the training targets' mean and standard deviation (regression), for
        :func:`tfseq.models.builders.build_model`'s ``targets``; None for classifiers."""
        if self.target_mean is None or self.target_std is None:
            return None
        return np.array([self.target_mean - self.target_std, self.target_mean + self.target_std], dtype=np.float64)

    def class_weights(self) -> np.ndarray | None:
        """Weight of each class over the training split (:func:`tfseq.data.labels.balanced_class_weights`)."""
        return None if self.class_counts is None else balanced_class_weights(np.asarray(self.class_counts))


@dataclass
class _Block:
    """Whole sequences of one file: padded, with targets and their split."""

    x: np.ndarray
    lengths: np.ndarray
    ids: np.ndarray
    first: np.ndarray  # the raw target of each sequence
    labels: pd.Series
    row_ids: pd.Series
    codes: np.ndarray
    validation: np.ndarray
    path: Path


def _sequence_chunks(file: DatasetFile, columns: list[str], id_col: str, block_rows: int) -> Iterator[pd.DataFrame]:
    """The file's rows in blocks of whole sequences; each sequence's rows must be together."""
    carry: pd.DataFrame | None = None
    seen: list[np.ndarray] = []
    for chunk in file_chunks(file, columns, block_rows, text=[id_col]):
        if chunk.empty:
            continue
        if carry is not None:
            chunk = pd.concat([carry, chunk], ignore_index=True)
        ids = chunk[id_col]
        tail = (ids == ids.iloc[-1]).to_numpy()
        complete, carry = chunk[~tail], chunk[tail]
        if len(complete):
            seen.append(_runs(complete, id_col, file.path))
            yield complete.reset_index(drop=True)
    if carry is not None and len(carry):
        seen.append(_runs(carry, id_col, file.path))
        yield carry.reset_index(drop=True)
    hashed = np.concatenate(seen) if seen else np.zeros(0, np.uint64)
    if len(np.unique(hashed)) != len(hashed):
        raise _interleaved(file.path, id_col)


def _runs(block: pd.DataFrame, id_col: str, path: Path) -> np.ndarray:
    """Hashes of the block's ids, one per run of equal ids; an id in two runs is an error."""
    ids = block[id_col]
    starts = (ids != ids.shift()).to_numpy()
    runs = ids[starts]
    if runs.duplicated().any():
        raise _interleaved(path, id_col, runs[runs.duplicated()].iloc[0])
    return pd.util.hash_array(runs.astype(str).to_numpy(dtype=object), categorize=False)


def _interleaved(path: Path, id_col: str, where: object = None) -> InputError:
    which = f" (e.g. {id_col} {show_value(where)})" if where is not None else ""
    return InputError(f"{path}: the rows of a sequence{which} are not next to each other; expected each "
                      "sequence's rows together in one file for out-of-core training, or in_memory.")


def _blocks(source: Path, file: DatasetFile, *, id_col: str, time_col: str, label_col: str,
            features: Sequence[str] | None, fill: str | None, steps: int | None, val_fraction: float,
            seed: int, block_rows: int) -> Iterator[tuple[_Block, list[str]]]:
    columns = read_columns(source) if features is None else [id_col, time_col, label_col, *features]
    for chunk in _sequence_chunks(file, columns, id_col, block_rows):
        frame, names = read_frame(chunk, id_col=id_col, time_col=time_col, label_col=label_col,
                                  features=features, fill=fill, source=str(file.path))
        x, lengths, codes, ids = pad_sequences(frame, id_col, names, steps)
        first = sequence_targets(frame[label_col], frame[id_col], codes, label_col=label_col, id_col=id_col,
                                 path=file.path)
        yield _Block(x, lengths, ids, first, frame[label_col], frame[id_col], codes,
                     is_validation(ids, val_fraction, seed), file.path), names


def _files_of(path: Path) -> tuple[DatasetFile, ...]:
    files = dataset_files(path)
    if files is None:
        from tfseq.data.files import _check_file

        files = [DatasetFile(_check_file(path))]
    from tfseq.data.stdf import is_stdf

    if any(is_stdf(f.path) for f in files):
        raise InputError(f"{path}: STDF files train in memory; convert them to a Parquet dataset first "
                         "(tfseq convert) to train out of core.")
    return tuple(files)


def scan_dataset(
    path: Path,
    *,
    id_col: str,
    time_col: str,
    label_col: str,
    features: str | Sequence[str] | None = None,
    max_steps: int | None = None,
    fill: str | None = None,
    task: Task | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    block_rows: int = BLOCK_ROWS,
) -> StreamedData:
    """Reads every file of ``path`` once and returns what out-of-core training needs.

    The same checks and messages as :func:`tfseq.data.long_format.load_long_format` apply block
    by block, so bad data fails here, before any training.

    Args:
        path: A long-format ``.parquet`` / ``.csv`` file, or a directory or glob of them.
        id_col: Column identifying a sequence.
        time_col: Column ordering the steps.
        label_col: Target column, constant within a sequence.
        features: Feature columns (list or ``"a,b,c"``); None takes every other numeric column.
        max_steps: Cut sequences to their first ``max_steps`` steps.
        fill: Repair NaN / inf features (``ffill`` or ``zero``).
        task: ``binary``, ``multiclass`` or ``regression``; None infers it from the targets.
        val_fraction: Fraction of the sequences (by id hash) for validation, in [0, 1).
        seed: Seed of the split.
        block_rows: Rows read at a time.

    Raises:
        InputError: for any problem with the data, named in one line.
    """
    positive_int("max_steps", max_steps, allow_none=True)
    if task is not None and task not in TASKS[:3]:
        raise InputError(f"Received an invalid value for argument task, expected one of {', '.join(TASKS[:3])}, "
                         f"got {task!r}.", arguments=("task",))
    if not 0 <= val_fraction < 1:
        raise InputError(f"Received an invalid value for argument val_fraction, expected a number in [0, 1), "
                         f"got {val_fraction!r}.", arguments=("val_fraction",))
    path = Path(path)
    files = _files_of(path)
    names: list[str] | None = list(features.split(",")) if isinstance(features, str) else \
        (list(features) if features is not None else None)
    longest = 0
    counts: list[tuple[int, int]] = []
    distinct: set[object] = set()
    numeric_labels = True
    regression = task == "regression"
    sums: np.ndarray | None = None
    squares: np.ndarray | None = None
    real_steps = length_steps = 0
    target_sum = target_squares = 0.0
    train_labels: dict[object, int] = {}  # training sequences of each raw label (until it looks like regression)
    from tqdm.auto import tqdm

    for file in tqdm(files, desc="scan", unit="file", disable=None if len(files) > 1 else True, leave=False):
        train = validation = 0
        for block, found in _blocks(path, file, id_col=id_col, time_col=time_col, label_col=label_col,
                                    features=names, fill=fill, steps=max_steps, val_fraction=val_fraction,
                                    seed=seed, block_rows=block_rows):
            names = found
            longest = max(longest, block.x.shape[1])
            keep = ~block.validation
            train += int(keep.sum())
            validation += int(block.validation.sum())
            flat = block.x[keep].reshape(-1, block.x.shape[-1]).astype(np.float64)
            sums = flat.sum(axis=0) if sums is None else sums + flat.sum(axis=0)
            squares = (flat**2).sum(axis=0) if squares is None else squares + (flat**2).sum(axis=0)
            real_steps += int(np.any(flat != 0, axis=-1).sum())
            length_steps += int(block.lengths[keep].sum())
            numeric_labels &= pd.api.types.is_numeric_dtype(block.labels) and \
                not pd.api.types.is_bool_dtype(block.labels)
            if not regression:
                distinct.update(np.unique(block.first).tolist())
                for value, count in pd.Series(block.first[keep]).value_counts(sort=False).items():
                    train_labels[value] = train_labels.get(value, 0) + int(count)
                if numeric_labels and len(distinct) > MAX_INFERRED_CLASSES and task is None:
                    regression = True  # many distinct numbers: a regression target (task_of_targets)
            if numeric_labels:
                values = np.asarray(block.first[keep], dtype=np.float64)
                target_sum += float(values.sum())
                target_squares += float((values**2).sum())
        counts.append((train, validation))
    if names is None or sums is None or squares is None:
        raise InputError(f"{path}: the files have a header but no rows; expected one row per (sequence, step).")
    train_total = sum(t for t, _ in counts)
    if train_total == 0:
        raise InputError(f"{path}: no sequence fell in the training split; expected more sequences "
                         "(or a smaller val_fraction).", arguments=("val_fraction",))
    if task is None:
        task = "regression" if regression else task_of_targets(np.asarray(sorted(distinct, key=str), dtype=object))
    scan: dict[str, Any] = dict(source=path, files=files, id_col=id_col, time_col=time_col, label_col=label_col,
                feature_names=tuple(names), fill=fill, steps=longest if max_steps is None else min(longest, max_steps),
                task=task, val_fraction=val_fraction, seed=seed, counts=tuple(counts),
                feature_sum=tuple(float(v) for v in sums), feature_sumsq=tuple(float(v) for v in squares),
                real_steps=real_steps, zero_steps=length_steps - real_steps)
    if task == "regression":
        if not numeric_labels:
            raise InputError(f"{path}: column {label_col!r} holds text; expected numbers for a regression target.")
        mean = target_sum / train_total
        std = float(np.sqrt(max(target_squares / train_total - mean**2, 0.0))) or 1.0
        return StreamedData(**scan, class_names=None, class_counts=None, target_mean=mean, target_std=std)
    classes = order_classes(sorted(set(label_text(np.asarray(list(distinct), dtype=object)))), numeric_labels)
    if len(classes) < 2:
        raise InputError(f"{path}: column {label_col!r} holds a single class {classes[0]!r}; expected at least two "
                         "classes to train a classifier.")
    if task == "binary" and len(classes) != 2:
        raise InputError(f"{path}: column {label_col!r} holds {len(classes)} classes for task binary; expected "
                         "exactly two (use task multiclass).", arguments=("task",))
    index = {name: i for i, name in enumerate(classes)}
    class_counts = [0] * len(classes)
    for value, count in train_labels.items():
        class_counts[index[str(label_text(np.asarray([value], dtype=object))[0])]] += count
    return StreamedData(**scan, class_names=tuple(classes), class_counts=tuple(class_counts))


def whole(data: StreamedData) -> StreamedData:
    """``data`` scanned again with every sequence in training (no validation split), e.g. to retrain."""
    again = scan_dataset(data.source, id_col=data.id_col, time_col=data.time_col, label_col=data.label_col,
                         features=list(data.feature_names), max_steps=data.steps, fill=data.fill, task=data.task,
                         val_fraction=0.0, seed=data.seed)
    return dataclasses.replace(again, step_flag=data.step_flag)


def _encoded(data: StreamedData, part: Part, files: Sequence[int] | None = None,
             block_rows: int = BLOCK_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(x, lengths, y, ids)`` of the ``part``'s sequences, block by block, y encoded."""
    for index in range(len(data.files)) if files is None else files:
        file = data.files[index]
        if _fast(data, file):
            blocks = _parquet_blocks(data, file, block_rows)
        else:
            blocks = _checked_blocks(data, file, block_rows)
        for x, lengths, y, ids, validation in blocks:
            if data.step_flag:
                flag = valid_mask(lengths, data.steps).astype(np.float32)
                x = np.concatenate([x, flag[..., None]], axis=-1)
            keep = np.ones(len(ids), bool) if part == "all" else (validation if part == "validation" else ~validation)
            if keep.all():
                yield x, lengths, y, ids
            elif keep.any():
                yield x[keep], lengths[keep], y[keep], ids[keep]


def _fast(data: StreamedData, file: DatasetFile) -> bool:
    """Whether ``file`` may skip the checks the scan already made: a Parquet file, no fill, no partition column."""
    used = {data.id_col, data.time_col, data.label_col, *data.feature_names}
    return (file.path.suffix.lower() in (".parquet", ".pq") and data.fill is None
            and not used & {k for k, _ in file.partitions})


def _checked_blocks(data: StreamedData, file: DatasetFile, block_rows: int) -> Iterator[tuple[np.ndarray, ...]]:
    for block, _ in _blocks(data.source, file, id_col=data.id_col, time_col=data.time_col,
                            label_col=data.label_col, features=list(data.feature_names), fill=data.fill,
                            steps=data.steps, val_fraction=data.val_fraction, seed=data.seed, block_rows=block_rows):
        if data.task == "regression":
            y = block.first.astype(np.float32)
        else:
            y, _, _ = encode_targets(block.labels, block.row_ids, block.codes, label_col=data.label_col,
                                     id_col=data.id_col, task=data.task, class_names=data.class_names,
                                     path=block.path)
        yield _pad_to(block.x, data.steps), block.lengths, y, block.ids, block.validation


def _pad_to(x: np.ndarray, steps: int) -> np.ndarray:
    """A block of shorter sequences padded to the dataset's steps."""
    if x.shape[1] >= steps:
        return x
    return np.concatenate([x, np.zeros((len(x), steps - x.shape[1], x.shape[2]), np.float32)], axis=1)


def _parquet_blocks(data: StreamedData, file: DatasetFile, block_rows: int) -> Iterator[tuple[np.ndarray, ...]]:
    """The blocks of :func:`_checked_blocks` for a Parquet file the scan has checked, read through Arrow.

    Every epoch reads the files again; pandas' per-block checks took as long as training a
    GRU-32 on the same sequences, so this path trusts the scan (the files are the same) and
    only orders, pads and encodes. It gives the same arrays (tested).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = [data.id_col, data.time_col, data.label_col, *data.feature_names]
    classes = {name: i for i, name in enumerate(data.class_names or ())}
    carry: pa.Table | None = None
    batches = pq.ParquetFile(file.path).iter_batches(batch_size=block_rows, columns=columns)
    for batch in [*batches, None]:
        if batch is None:
            if carry is None or carry.num_rows == 0:
                return
            table, carry = carry, None
        else:
            table = pa.Table.from_batches([batch]) if carry is None else pa.concat_tables(
                [carry, pa.Table.from_batches([batch])])
            ids = table.column(data.id_col)
            last = pc.equal(ids, ids[-1]).to_numpy(zero_copy_only=False)
            tail = int(np.argmax(last))
            if tail == 0:  # one sequence so far: read on
                carry = table
                continue
            table, carry = table.slice(0, tail), table.slice(tail)
        yield _arrow_block(data, table, classes)


def _arrow_block(data: StreamedData, table: Any, classes: dict[str, int]) -> tuple[np.ndarray, ...]:
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(table.column(data.id_col)).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    time = table.column(data.time_col).to_numpy()
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    run = np.cumsum(np.r_[True, codes[1:] != codes[:-1]]) - 1  # sequence index of each row, in file order
    same = run[1:] == run[:-1]
    order = None
    if not np.all(np.diff(time)[same] > 0):  # steps out of time order within a sequence
        order = np.lexsort((time, run))
    counts = np.bincount(run)
    position = np.arange(len(run)) - np.repeat(starts, counts)
    values = np.column_stack([table.column(name).to_numpy().astype(np.float32, copy=False)
                              for name in data.feature_names])
    if order is not None:
        values = values[order]
    keep = position < data.steps
    x = np.zeros((len(starts), data.steps, len(data.feature_names)), dtype=np.float32)
    x[run[keep], position[keep]] = values[keep]
    ids = encoded.dictionary.to_numpy(zero_copy_only=False)[codes[starts]]
    labels = table.column(data.label_col).take(starts)
    if data.task == "regression":
        y = labels.to_numpy().astype(np.float32)
    else:
        unique = pc.unique(labels)
        lookup = np.asarray([classes[t] for t in label_text(np.asarray(unique.to_pylist(), dtype=object))],
                            dtype=np.int32)
        y = lookup[pc.index_in(labels, value_set=unique).to_numpy(zero_copy_only=False)]
    lengths = np.minimum(counts, data.steps).astype(np.int32)
    return x, lengths, y, ids, is_validation(ids, data.val_fraction, data.seed)


def read_blocks(data: StreamedData, part: Part, files: Sequence[int] | None = None,
                block_rows: int = BLOCK_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(x, y, lengths)`` of ``part``'s sequences (``train``, ``validation`` or ``all``), a block at a time.

    ``files`` picks files by index (a worker's share); x is float32 ``[n, data.steps, features]``,
    y class indices (int32) or float32 targets.
    """
    for x, lengths, y, _ in _encoded(data, part, files, block_rows):
        yield x, y, lengths


def read_sample(data: StreamedData, part: Part, limit: int) -> SequenceSet:
    """The first ``limit`` sequences of ``part`` (files in order) in memory, e.g. for baselines."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    have = 0
    for block in _encoded(data, part):
        parts.append(tuple(a[:limit - have] for a in block))  # type: ignore[arg-type]
        have += len(parts[-1][0])
        if have >= limit:
            break
    if not parts:
        raise InputError(f"{data.source}: no sequence fell in the {part} split; expected more sequences.")
    x, lengths, y, ids = (np.concatenate(p) for p in zip(*parts))
    return SequenceSet(x=x, y=y, ids=ids, feature_names=list(data.model_features), lengths=lengths,
                       class_names=list(data.class_names) if data.class_names else None)


def padded_bytes(path: Path, *, features: int | None = None) -> int:
    """About the padded float32 size of ``path``'s data in memory, from the files' metadata alone.

    Parquet: rows x numeric columns x 4 bytes; CSV: the file's size (text is about as large).
    """
    total = 0
    for file in _files_of(Path(path)):
        if file.path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            try:
                meta = pq.ParquetFile(file.path).metadata
            except Exception:  # noqa: BLE001  (a damaged file: the loader reports it in one line)
                total += file.path.stat().st_size
                continue
            width = features or sum(1 for i in range(meta.num_columns)
                                    if meta.schema.column(i).physical_type in ("FLOAT", "DOUBLE", "INT32", "INT64"))
            total += meta.num_rows * width * 4
        else:
            total += file.path.stat().st_size
    return total


def available_memory() -> int:
    """Bytes this process may still use: the smaller of what its cgroup has left and MemAvailable."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit, usage = (Path(f).read_text().strip() for f in (limit_file, usage_file))
        except OSError:
            continue
        if limit.isdigit() and usage.isdigit() and int(limit) < 2**60:
            limits.append(max(int(limit) - int(usage), 0))
    if not limits:
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            return 2**40
    return min(limits)
