"""Predict over a long-format file with any artifact: one CSV row per sequence, written atomically."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tfseq.errors import InputError
from tfseq.workflows.scoring import head_output, load_for_contract, predictions_frame

if TYPE_CHECKING:
    import pandas as pd

    from tfseq.data.sequences import SequenceSet
    from tfseq.export.runtimes import Runner
    from tfseq.models.policy import AdaptiveTestPolicy
    from tfseq.run import DataContract


class Predicted(NamedTuple):
    """What :func:`predict_file` did."""

    sequences: int  #: sequences predicted (rows written)
    kind: str  #: the runtime that ran: keras, savedmodel, tflite or onnx
    out: Path  #: the CSV written


def needs_tensorflow(artifact: Path) -> bool:
    """Whether predicting with ``artifact`` runs TensorFlow: not for ``.tflite`` and ``.onnx`` files.

    Their runtimes (LiteRT, onnxruntime) run without it, so ``tfseq predict`` skips the seconds
    that starting TensorFlow takes, as an edge station without TensorFlow would.
    """
    return Path(artifact).suffix.lower() not in (".tflite", ".onnx")


def contract_of(artifact: Path) -> DataContract | None:
    """The contract without starting TensorFlow, when the artifact is (inside) a RUN directory."""
    from tfseq.run import read_contract

    artifact = Path(artifact)
    for folder in (artifact, artifact.parent):
        if folder.is_dir() and (folder / "contract.json").is_file():
            return read_contract(folder)
    return None


def check_prediction_inputs(artifact: Path, data: Path, out: Path, *, overwrite: bool = False,
                            fill: str | None = None, explain: int | None = None) -> None:
    """The checks :func:`predict_file` makes before any model loads: bad input answers at once.

    Raises:
        InputError: for an existing ``out`` (without ``overwrite``), a missing artifact, an
            unreadable ``data`` file, data without the columns the RUN's contract names, or
            ``explain`` that is not a positive integer or asked of an artifact other than a RUN
            or ``.keras`` file (or of a forecasting model).
    """
    from tfseq.checks import positive_int
    from tfseq.data.files import read_columns
    from tfseq.workflows.explain import TASKS

    if Path(out).exists() and not overwrite:
        raise InputError(f"{out}: already exists; choose another out or pass overwrite.", arguments=("out", "overwrite"))
    if not Path(artifact).exists():
        raise InputError(f"{artifact}: no such artifact.")
    contract = contract_of(artifact)
    if explain is not None:
        positive_int("explain", explain)
        keras_artifact = Path(artifact).suffix == ".keras" or (Path(artifact) / "contract.json").is_file()
        if not keras_artifact:
            raise InputError(f"{artifact}: explain needs the Keras model (a RUN directory or its model.keras), not an "
                             "exported artifact; pass the RUN or drop explain.", arguments=("explain",))
        if contract is not None and contract.task not in TASKS:
            raise InputError(f"Received explain for a {contract.task} model; expected a {', '.join(TASKS)} model.",
                             arguments=("explain",))
    columns = read_columns(data)
    if contract is not None and contract.id_col not in columns:
        _load(data, contract, fill)  # raises the error that names the missing column


def predict_file(
    artifact: Path,
    data: Path,
    out: Path,
    *,
    overwrite: bool = False,
    fill: str | None = None,
    block_rows: int = 500_000,
    batch_size: int = 4096,
    verify: bool = True,
    explain: int | None = None,
    ig_steps: int | None = None,
) -> Predicted:
    """Predicts every sequence of a long-format file and writes one CSV row per sequence.

    The file is read in blocks of about ``block_rows`` rows of whole sequences, so memory is
    bounded by the block, not the file (a file whose sequences' rows are interleaved is read
    whole). Columns: the id column, ``predicted`` (class name or value) and, for classifiers,
    ``p_<class>`` per class, ``out_of_range`` where the artifact carries reference statistics (a
    RUN or an export of this tfseq: true for a sequence with a feature far outside the training
    range or a length the model never saw, see :func:`tfseq.analysis.reference.out_of_range`)
    and, with ``explain``, ``drivers``: the sequence's top ``explain``
    drivers (``feature@step``, 1-based steps, largest ``|attribution|`` first; see
    :func:`tfseq.workflows.explain.sequence_drivers`); the CSV grows beside ``out`` and is
    renamed into place at the end.

    Args:
        artifact: A RUN directory, ``.keras`` file, SavedModel directory, ``.tflite`` or ``.onnx``.
        data: Long-format ``.csv`` or ``.parquet`` file, a directory or glob of them (a dataset,
            read file by file) or STDF files.
        out: Predictions CSV to write.
        overwrite: Replace an existing ``out``.
        fill: ``ffill`` / ``zero`` repair of NaN / inf; default: as in training.
        block_rows: Rows read at a time.
        batch_size: Sequences per prediction call.
        verify: Check an exported artifact's sha256 against its manifest.
        explain: Add each sequence's top ``explain`` drivers (a RUN or ``.keras`` artifact only).
        ig_steps: Gauss-Legendre points of the drivers' integrated gradients (default 16).

    Returns:
        The sequences predicted, the runtime that ran and the CSV written.

    Raises:
        InputError: for bad input (see :func:`check_prediction_inputs`), an artifact without a
            data contract, or data the model cannot take.
    """
    from tfseq.export.runtimes import load_runner

    artifact, data, out = Path(artifact), Path(data), Path(out)
    check_prediction_inputs(artifact, data, out, overwrite=overwrite, fill=fill, explain=explain)
    runner = load_runner(artifact, verify=verify)
    contract = runner.contract or contract_of(artifact)
    if contract is None:
        raise InputError(
            f"{artifact}: carries no data contract (feature names, steps, classes); expected a RUN "
            "directory, a .keras file inside one, or an exported artifact with its manifest.json."
        )
    columns = _columns(artifact, contract, explain, ig_steps)
    count = None
    if contract.task != "forecast":
        try:
            count = _predict_streamed(runner, contract, artifact, data, out, fill, block_rows, batch_size, columns)
        except _Interleaved:
            pass  # rows of a sequence are scattered through the file: read it whole
    if count is None:
        count = _predict_whole(runner, contract, artifact, data, out, fill, batch_size, columns)
    return Predicted(count, runner.kind, out)


#: Columns added after the predictions, computed from each block's sequences and the model's output on
#: them (see :func:`_columns`).
Columns = Callable[["SequenceSet", np.ndarray], dict[str, Any]]


def _columns(artifact: Path, contract: DataContract, explain: int | None, ig_steps: int | None) -> Columns:
    """``out_of_range`` where the artifact carries reference statistics; ``drivers`` with ``explain``."""
    from tfseq.analysis.reference import find_reference, out_of_range

    try:
        reference = find_reference(artifact, required=False).reference
    except InputError:  # an artifact outside a RUN or an export (a bare .tflite): no reference to compare with
        reference = None
    policy = find_policy(artifact) if contract.streaming else None
    positive = (contract.class_names or ["0", "1"])[-1]
    model = None
    if explain is not None:
        from tfseq.workflows.explain import keras_model_of, sequence_drivers

        model = keras_model_of(artifact)

    def columns(sequences: SequenceSet, output: np.ndarray) -> dict[str, Any]:
        added: dict[str, Any] = {}
        if policy is not None and output.ndim == 3:
            decision, decided_at, probability = policy.replay(output[..., 0], sequences.lengths)
            added.update({"decision": decision, "decided_at": decided_at, f"p_{positive}_at_decision": probability})
        if reference is not None:
            added["out_of_range"] = out_of_range(sequences, reference)
        if model is not None and explain is not None:
            added["drivers"] = sequence_drivers(model, contract, sequences, explain, ig_steps=ig_steps)
        return added

    return columns


def find_policy(artifact: Path) -> AdaptiveTestPolicy | None:
    """The adaptive-test policy a RUN (``policy.json``) or an export (``manifest.json``) carries, or None."""
    import json

    from tfseq.models.policy import AdaptiveTestPolicy, read_policy

    artifact = Path(artifact)
    run_dir = artifact if artifact.is_dir() and (artifact / "contract.json").exists() else artifact.parent
    if (run_dir / "contract.json").exists():
        return read_policy(run_dir)
    for folder in (artifact.parent, *artifact.parents[1:4]):
        manifest = folder / "manifest.json"
        if manifest.is_file():
            try:
                policy = json.loads(manifest.read_text()).get("policy")
            except (OSError, ValueError):
                return None
            return None if policy is None else AdaptiveTestPolicy.from_dict(policy)
    return None


def _frame(sequences: SequenceSet, output: np.ndarray, contract: DataContract, columns: Columns) -> pd.DataFrame:
    output = np.asarray(output)
    last = output
    if output.ndim == 3:  # a streaming model's answer after every step (tfseq.evaluation imports scikit-learn)
        from tfseq.evaluation import last_step_output

        last = last_step_output(output, sequences.lengths)
    frame = predictions_frame(sequences.ids, last, contract)
    for name, values in columns(sequences, output).items():
        frame[name] = values
    return frame


class _Interleaved(Exception):
    """The rows of one sequence are not next to each other in the file."""


def sequence_blocks(path: Path, id_col: str, block_rows: int) -> Iterator[pd.DataFrame]:
    """Yields frames of whole sequences, about ``block_rows`` rows each, reading the file in chunks.

    A dataset (a directory or glob) is read file by file; a sequence may continue into the next file.

    Raises:
        _Interleaved: when a sequence's rows are not contiguous in the file.
    """
    import pandas as pd

    from tfseq.data.files import read_chunks, read_columns

    done: set = set()
    carry = empty = None
    for chunk in read_chunks(path, read_columns(path), block_rows, text=[id_col]):
        if chunk.empty:  # a header without rows: the loader below says so, once
            empty = chunk
            continue
        if carry is not None:
            chunk = pd.concat([carry, chunk], ignore_index=True)
        ids = chunk[id_col]
        tail = (ids == ids.iloc[-1]).to_numpy()
        first = int(tail.argmax())
        if not tail[first:].all():
            raise _Interleaved
        complete, carry = chunk.iloc[:first], chunk.iloc[first:]  # slices: no copy of the block
        if len(complete):
            yield _check_contiguous(complete, id_col, done)
    if carry is not None and len(carry):
        yield _check_contiguous(carry, id_col, done)
    elif not done and empty is not None:
        yield empty


def _check_contiguous(block: pd.DataFrame, id_col: str, done: set[object]) -> pd.DataFrame:
    ids = block[id_col]
    unique = ids.unique()
    if (ids != ids.shift()).sum() != len(unique) or done.intersection(unique):
        raise _Interleaved
    done.update(unique)
    return block


def _predict_streamed(runner: Runner, contract: DataContract, artifact: Path, data: Path, out: Path,
                      fill: str | None, block_rows: int, batch_size: int, columns: Columns) -> int:
    from tqdm.auto import tqdm

    from tfseq.data.long_format import fit_steps

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(fd)
    count = 0
    try:
        with open(partial, "w") as handle, tqdm(unit="seq", desc="predict", disable=None, leave=False) as bar:
            for block in sequence_blocks(data, contract.id_col, block_rows):
                sequences = _load(block, contract, fill, source=str(data))  # DataFrame in: no re-parsing
                if runner.steps is not None and runner.steps != sequences.steps:
                    sequences = fit_steps(sequences, int(runner.steps))
                output = _predict(runner, sequences.x, batch_size, contract, artifact)
                _frame(sequences, output, contract, columns).to_csv(handle, index=False, header=count == 0)
                count += len(sequences)
                bar.update(len(sequences))
            handle.flush()
            os.fsync(handle.fileno())
        if count == 0:
            raise InputError(f"{data}: the file has no rows; expected one row per (sequence, step).")
        os.replace(partial, out)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return count


def _predict_whole(runner: Runner, contract: DataContract, artifact: Path, data: Path | pd.DataFrame,
                   out: Path, fill: str | None, batch_size: int, columns: Columns) -> int:
    from tfseq.data.long_format import fit_steps
    from tfseq.io import write_text_atomic

    sequences = _load(data, contract, fill)
    if runner.steps is not None and runner.steps != sequences.steps:
        sequences = fit_steps(sequences, int(runner.steps))
    output = _predict(runner, sequences.x, batch_size, contract, artifact)
    buffer = io.StringIO()
    _frame(sequences, output, contract, columns).to_csv(buffer, index=False)
    write_text_atomic(out, buffer.getvalue())
    return len(sequences)


def _load(data: Path | pd.DataFrame, contract: DataContract, fill: str | None,
          source: str | None = None) -> SequenceSet:
    """Sequences as the contract wants them, with labels only when the data hold known classes."""
    import pandas as pd

    from tfseq.data.files import read_columns

    columns = [str(c) for c in data.columns] if isinstance(data, pd.DataFrame) else read_columns(data)
    has_labels = bool(contract.label_col) and contract.label_col in columns \
        and contract.task in ("binary", "multiclass")
    return load_for_contract(data, contract, labels=has_labels, fill=fill, source=source)


def _predict(runner: Runner, x: np.ndarray, batch_size: int, contract: DataContract, artifact: Path) -> np.ndarray:
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=len(x), unit="seq", desc="predict", disable=None, leave=False) as bar:
        for start in range(0, len(x), batch_size):
            batch = np.ascontiguousarray(x[start:start + batch_size], dtype=np.float32)
            parts.append(head_output(runner.predict(batch), contract, artifact))
            bar.update(len(batch))
    return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
