"""Out-of-core training input: a scanned dataset (:mod:`tfseq.data.streamed`) as ``tf.data`` batches.

Files are read a block of whole sequences at a time (:func:`tfseq.data.streamed.read_blocks`),
several files interleaved; the blocks gather into windows of bounded bytes, each shuffled and cut
into batches, which ``tf.data.Dataset.from_generator`` hands to Keras; a new file order and a new
shuffle every epoch. Memory holds a window, a block per interleaved file and a few batches,
whatever the size of the data.

Under a distribution strategy the input comes from
``strategy.distribute_datasets_from_function``: each input pipeline (each worker) reads only its
own files (FILE sharding, ``files[pipeline::pipelines]``). With fewer files than pipelines every
worker reads every file and keeps its share of the sequences (DATA sharding), and
:func:`fit_streamed` says so in one line. Workers whose files hold different numbers of sequences
still take the same number of steps an epoch (the fewest any worker has), their input repeating.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from tfseq.checks import positive_int
from tfseq.data.streamed import Part, StreamedData, read_blocks
from tfseq.training.distribute import is_distributed
from tfseq.training.fit import fit_batches

if TYPE_CHECKING:  # TensorFlow is imported where it is used
    import tensorflow as tf

#: Bytes of padded sequences the shuffle buffer may hold.
SHUFFLE_BYTES = 128 * 2**20

#: Files read at the same time (their blocks interleave).
INTERLEAVE = 4

__all__ = ["SHUFFLE_BYTES", "shuffle_buffer", "make_streamed_dataset", "fit_streamed", "predict_streamed"]


def shuffle_buffer(data: StreamedData, batch_size: int, budget: int = SHUFFLE_BYTES) -> int:
    """Sequences in the shuffle buffer: as many as ``budget`` bytes hold (at least 4 batches), at most
    the training split (then every epoch is a full shuffle)."""
    per_sequence = data.steps * len(data.model_features) * 4
    return int(min(max(4 * batch_size, budget // per_sequence), max(data.train_sequences, 1)))


def _shard(data: StreamedData, pipeline: int, pipelines: int) -> tuple[list[int], bool]:
    """This pipeline's files, and whether it must keep only its share of their sequences (DATA sharding)."""
    files = list(range(len(data.files)))
    if pipelines <= 1:
        return files, False
    if len(files) >= pipelines:
        return files[pipeline::pipelines], False
    return files, True


def _sequences(data: StreamedData, part: Part, files: Sequence[int]) -> int:
    column = 1 if part == "validation" else 0
    return sum(data.counts[i][column] for i in files)


def _interleaved(data: StreamedData, part: Part, files: Sequence[int]) -> Iterator[tuple[np.ndarray, ...]]:
    """Blocks ``(x, y, lengths)`` of up to :data:`INTERLEAVE` files at a time, in turn."""
    pending = list(files)
    active: list[Iterator[tuple[np.ndarray, ...]]] = []
    while pending or active:
        while pending and len(active) < INTERLEAVE:
            active.append(iter(read_blocks(data, part, [pending.pop(0)])))
        for reader in list(active):
            block = next(reader, None)
            if block is None:
                active.remove(reader)
            else:
                yield block


def _batches(data: StreamedData, part: Part, files: Sequence[int], *, batch_size: int, shuffle: bool,
             seed: int, epoch: int, share: tuple[int, int] | None) -> Iterator[tuple[np.ndarray, ...]]:
    """One epoch of batches: blocks gathered into windows of about :func:`shuffle_buffer` sequences,
    each window shuffled whole and cut into batches (the rest of a window joins the next).

    The shuffle happens here, in NumPy, rather than element by element in ``tf.data``
    (``unbatch`` then ``shuffle``): that pipeline alone fed 20,000 sequences/s, which is what a
    GRU-32 trains at on 2 cores, so training waited on its input.
    """
    rng = np.random.default_rng([seed, epoch])
    order = list(files)
    if shuffle:
        rng.shuffle(order)
    window = shuffle_buffer(data, batch_size) if shuffle else batch_size
    pool: list[tuple[np.ndarray, ...]] = []
    pooled = seen = 0
    for block in _interleaved(data, part, order):
        if share is not None:  # DATA sharding: every pipeline reads every file and keeps every n-th sequence
            pipeline, pipelines = share
            keep = (seen + np.arange(len(block[0]))) % pipelines == pipeline
            seen += len(block[0])
            block = tuple(a[keep] for a in block)
        pool.append(block)
        pooled += len(block[0])
        if pooled >= window:
            rest = yield from _drain(pool, batch_size, rng if shuffle else None, last=False)
            pool, pooled = [rest], len(rest[0])
    if pooled:
        yield from _drain(pool, batch_size, rng if shuffle else None, last=True)


def _drain(pool: list[tuple[np.ndarray, ...]], batch_size: int, rng: np.random.Generator | None,
           *, last: bool) -> Generator[tuple[np.ndarray, ...], None, tuple[np.ndarray, ...]]:
    """Yields the pool's sequences in batches (shuffled with ``rng``); returns the rest short of a batch."""
    arrays = tuple(np.concatenate(column) for column in zip(*pool)) if len(pool) > 1 else pool[0]
    count = len(arrays[0])
    index = rng.permutation(count) if rng is not None else np.arange(count)
    whole = count if last else count - count % batch_size
    for start in range(0, whole, batch_size):
        rows = index[start:start + batch_size]
        yield tuple(a[rows] for a in arrays)
    rest = index[whole:]
    return tuple(a[rest] for a in arrays)


def make_streamed_dataset(
    data: StreamedData,
    part: Part,
    *,
    batch_size: int,
    head: str,
    shuffle: bool,
    seed: int | None = 0,
    class_weight: bool = True,
    pipeline: int = 0,
    pipelines: int = 1,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Batches ``(x, {head: y}, sample_weight)`` of ``part`` (``(x, {head: y})`` without class weights).

    Args:
        data: The scanned dataset.
        part: ``train``, ``validation`` or ``all``.
        batch_size: Sequences per batch.
        head: The model's output name.
        shuffle: Shuffle files and sequences, anew every epoch.
        seed: Seed of the shuffles.
        class_weight: Weigh each class the same (classifiers), as :func:`tfseq.training.fit.fit` does.
        pipeline: This input pipeline's index (a worker's), for sharding.
        pipelines: The number of input pipelines.
        repeat: Repeat without end (a multi-worker run bounds its epochs by steps).
    """
    import tensorflow as tf

    positive_int("batch_size", batch_size)
    files, shared = _shard(data, pipeline, pipelines)
    y_type = tf.float32 if data.task == "regression" else tf.int32
    signature = (tf.TensorSpec([None, data.steps, len(data.model_features)], tf.float32),
                 tf.TensorSpec([None], y_type), tf.TensorSpec([None], tf.int32))
    epochs = iter(range(2**62))
    base = 0 if seed is None else int(seed)

    def batches() -> Iterator[tuple[np.ndarray, ...]]:
        for x, y, lengths in _batches(data, part, files, batch_size=batch_size, shuffle=shuffle, seed=base,
                                      epoch=next(epochs), share=(pipeline, pipelines) if shared else None):
            yield x, y.astype(y_type.as_numpy_dtype, copy=False), lengths

    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    if repeat:
        dataset = dataset.repeat()
    weights = data.class_weights() if class_weight else None
    if weights is not None:
        table = tf.constant(weights)
        dataset = dataset.map(lambda x, y, _: (x, {head: y}, tf.gather(table, y)))
    else:
        dataset = dataset.map(lambda x, y, _: (x, {head: y}))
    if not repeat:
        count = _sequences(data, part, files)
        if shared:
            count = (count - pipeline + pipelines - 1) // pipelines
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(count / batch_size)))
    # One batch read ahead while one trains; no autotuned threads beside it (as in
    # tfseq.training.batches): on 2 cores, BiLSTM-64 epochs ran at 82 % of in-memory training
    # this way, at 50 % with prefetch(2) and tf.data's default optimisations, at 65 % without prefetch.
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.inject_prefetch = False
    options.experimental_optimization.apply_default_optimizations = False
    return dataset.prefetch(1).with_options(options)


def fit_streamed(
    model: keras.Model,
    data: StreamedData,
    *,
    epochs: int = 20,
    batch_size: int = 128,
    run_dir: Path | None = None,
    monitor: str = "val_loss",
    patience: int = 5,
    class_weight: str | None = "balanced",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    seed: int | None = None,
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
) -> keras.callbacks.History:
    """Trains ``model`` on ``data`` read from its files: :func:`tfseq.training.fit.fit`, out of core.

    Validation (the early-stopping signal) streams the validation split the same way; without
    validation sequences the training loss is monitored. Arguments as :func:`tfseq.training.fit.fit`,
    ``batch_size`` per replica.
    """
    import tensorflow as tf

    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        positive_int(name, value)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    head = model.output_names[0]
    balanced = class_weight == "balanced"
    validation = data.validation_sequences > 0
    if not is_distributed(strategy):
        train = make_streamed_dataset(data, "train", batch_size=batch_size, head=head, shuffle=True, seed=seed,
                                      class_weight=balanced)
        val = make_streamed_dataset(data, "validation", batch_size=batch_size, head=head, shuffle=False,
                                    class_weight=balanced) if validation else None
        return fit_batches(model, train, val, epochs=epochs, run_dir=run_dir, monitor=monitor, patience=patience,
                           callbacks=callbacks, verbose=verbose, strategy=strategy)
    assert strategy is not None
    workers = _pipelines(strategy)
    _, share = _shard(data, 0, workers)
    if share:
        print(f"note: {len(data.files)} file(s) for {workers} workers: every worker reads every file and keeps "
              "its share of the sequences (DATA sharding); write at least one file per worker to read less")
    shares = [_shard(data, p, workers)[0] for p in range(workers)]

    def steps(part: Part) -> int:
        if share:
            return max(1, math.ceil(_sequences(data, part, range(len(data.files))) / workers / batch_size))
        return max(1, math.ceil(min(_sequences(data, part, files) for files in shares) / batch_size))

    def inputs(part: Part, shuffle: bool) -> Any:
        def make(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return make_streamed_dataset(
                data, part, batch_size=batch_size, head=head, shuffle=shuffle, seed=0 if seed is None else seed,
                class_weight=balanced, pipeline=context.input_pipeline_id,
                pipelines=context.num_input_pipelines, repeat=True)

        options = tf.distribute.InputOptions(experimental_fetch_to_device=False)
        return strategy.distribute_datasets_from_function(make, options)

    return fit_batches(model, inputs("train", True), inputs("validation", False) if validation else None,
                       epochs=epochs, run_dir=run_dir, monitor=monitor, patience=patience, callbacks=callbacks,
                       verbose=verbose, strategy=strategy, steps_per_epoch=steps("train"),
                       validation_steps=steps("validation") if validation else None)


def _pipelines(strategy: tf.distribute.Strategy) -> int:
    """Input pipelines ``distribute_datasets_from_function`` makes: one per worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))


def predict_streamed(model: keras.Model, data: StreamedData, part: Part, *,
                     batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(targets, outputs, lengths)`` of ``part``'s sequences, the model run block by block.

    Outputs are the first head's, in file order; memory holds the targets and outputs, not the
    sequences. A model trained under a strategy of several workers runs here in this process alone
    (``model.predict`` would be a collective step, and the small last block of a file would leave
    some worker an empty batch).
    """
    head = model.output_names[0]
    if is_distributed(model.distribute_strategy):
        import tensorflow as tf

        call = tf.function(lambda x: model(x, training=False))

        def run(x: np.ndarray) -> Any:
            return np.concatenate([np.asarray(_head(call(x[i:i + batch_size]), head))
                                   for i in range(0, len(x), batch_size)])
    else:
        def run(x: np.ndarray) -> Any:
            return _head(model.predict(x, batch_size=batch_size, verbose=0), head)

    targets, outputs, lengths = [], [], []
    for x, y, length in read_blocks(data, part):
        outputs.append(run(x))
        targets.append(y)
        lengths.append(length)
    if not outputs:
        raise ValueError(f"no sequence in the {part} split")
    return np.concatenate(targets), np.concatenate(outputs), np.concatenate(lengths)


def _head(output: Any, head: str) -> Any:
    return output[head] if isinstance(output, dict) else output
