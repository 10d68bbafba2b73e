"""``tfseq predict``: any artifact + long-format data in, one CSV row per sequence out."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfseq.cli.args import positive_int
from tfseq.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

EXAMPLES = """examples:
  tfseq predict runs/lstm new_devices.csv --out predictions.csv
  tfseq predict export/lstm.tflite new_devices.parquet --out predictions.csv
  tfseq predict export/lstm.onnx new_devices.csv --out predictions.csv --overwrite

output columns: the id column, predicted (class name or value) and, for classifiers, p_<class> per class.
DATA needs the id, time and every feature column the model was trained on (extra columns are ignored);
a label column, if present, must hold only classes the model knows."""


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "predict",
        help="predict with a RUN dir, .keras, SavedModel, .tflite or .onnx artifact",
        description=(
            "Predict one row per sequence of long-format DATA with ARTIFACT (a RUN directory, .keras file, "
            "SavedModel directory, .tflite or .onnx file). Sequences are padded or cut exactly as in "
            "training. The CSV is written atomically."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("artifact", type=Path, metavar="ARTIFACT", help="model artifact")
    parser.add_argument("--no-verify", action="store_true",
                        help="run an exported artifact even if its sha256 differs from manifest.json")
    parser.add_argument("data", type=Path, metavar="DATA", help="long-format .csv or .parquet file")
    parser.add_argument("--out", type=Path, required=True, metavar="PRED.csv", help="predictions CSV to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--fill", choices=("ffill", "zero"), help="repair NaN/inf features (default: as in training)")
    parser.add_argument("--block-rows", type=positive_int, default=500_000, metavar="N",
                        help="rows read at a time; memory grows with this, not with the file (default: 500000)")
    parser.add_argument("--batch-size", type=positive_int, default=4096, metavar="N",
                        help="sequences per prediction call (default: 4096)")
    parser.set_defaults(run=run)


def _contract_of(artifact: Path):
    """The contract without starting TensorFlow, when the artifact is (inside) a RUN directory."""
    from tfseq.run import read_contract

    for folder in (artifact, artifact.parent):
        if folder.is_dir() and (folder / "contract.json").is_file():
            return read_contract(folder)
    return None


def predictions_frame(ids: np.ndarray, output: np.ndarray, contract) -> "pd.DataFrame":
    """The predictions table: id column, ``predicted`` and ``p_<class>`` per class for classifiers."""
    import pandas as pd

    frame = pd.DataFrame({contract.id_col: ids})
    output = np.asarray(output, dtype=np.float64)
    if contract.task == "binary":
        p = output.reshape(len(ids), -1)[:, -1]
        names = contract.class_names or ["0", "1"]
        frame["predicted"] = np.asarray(names, dtype=object)[(p >= contract.threshold).astype(int)]
        frame[f"p_{names[0]}"] = 1.0 - p
        frame[f"p_{names[1]}"] = p
    elif contract.task == "multiclass":
        names = contract.class_names or [str(k) for k in range(output.shape[-1])]
        frame["predicted"] = np.asarray(names, dtype=object)[output.argmax(axis=-1)]
        for k, name in enumerate(names):
            frame[f"p_{name}"] = output[:, k]
    elif contract.task == "forecast":
        from tfseq.data.windows import forecast_names

        values = output.reshape(len(ids), -1)
        for k, name in enumerate(forecast_names(values.shape[1])):
            frame[name] = values[:, k]
    else:
        frame["predicted"] = output.reshape(len(ids), -1)[:, 0]
    return frame


def run(args: argparse.Namespace) -> int:
    from tfseq.cli.data_args import load_for_contract
    from tfseq.data.long_format import read_columns

    if args.out.exists() and not args.overwrite:
        raise InputError(f"{args.out}: already exists; choose another --out or pass --overwrite.")
    if not args.artifact.exists():
        raise InputError(f"{args.artifact}: no such artifact.")
    columns = read_columns(args.data)  # a missing or unreadable DATA fails before TensorFlow starts
    contract = _contract_of(args.artifact)
    if contract is not None and contract.id_col not in columns:
        _load(args, contract, load_for_contract)  # raises the error that names the missing column

    from tfseq.startup import start_tensorflow

    start_tensorflow(threads=True)
    from tfseq.export.runtimes import load_runner

    runner = load_runner(args.artifact, verify=not args.no_verify)
    contract = runner.contract or contract
    if contract is None:
        raise InputError(
            f"{args.artifact}: carries no data contract (feature names, steps, classes); expected a RUN "
            "directory, a .keras file inside one, or an exported artifact with its manifest.json."
        )
    count = None
    if contract.task != "forecast":
        try:
            count = _predict_streamed(args, runner, contract)
        except _Interleaved:
            count = None  # rows of a sequence are scattered through the file: read it whole
    if count is None:
        count = _predict_whole(args, runner, contract)
    print(f"predicted {count:,} sequences with {args.artifact} ({runner.kind}); wrote {args.out}")
    return 0


class _Interleaved(Exception):
    """The rows of one sequence are not next to each other in the file."""


def _sequence_blocks(path: Path, id_col: str, block_rows: int):
    """Yields frames of whole sequences, about ``block_rows`` rows each, reading the file in chunks.

    Raises:
        _Interleaved: when a sequence's rows are not contiguous in the file.
    """
    import pandas as pd

    from tfseq.data.long_format import _chunks, read_columns

    done: set = set()
    carry = empty = None
    for chunk in _chunks(path, read_columns(path), block_rows, text=[id_col]):
        if chunk.empty:  # a header without rows: the loader below says so, once
            empty = chunk
            continue
        if carry is not None:
            chunk = pd.concat([carry, chunk], ignore_index=True)
        ids = chunk[id_col]
        tail = (ids == ids.iloc[-1]).to_numpy()
        if not tail[tail.argmax():].all():
            raise _Interleaved
        complete, carry = chunk[~tail], chunk[tail]
        if len(complete):
            yield _check_contiguous(complete, id_col, done)
    if carry is not None and len(carry):
        yield _check_contiguous(carry, id_col, done)
    elif not done and empty is not None:
        yield empty


def _check_contiguous(block, id_col: str, done: set):
    ids = block[id_col]
    unique = ids.unique()
    if (ids != ids.shift()).sum() != len(unique) or done.intersection(unique):
        raise _Interleaved
    done.update(unique)
    return block


def _predict_streamed(args, runner, contract) -> int:
    """Predicts block by block, so memory stays bounded by the block, not the file.

    The CSV grows in a temporary file beside ``--out`` and is renamed into place at the end.
    """
    import os
    import tempfile

    from tqdm.auto import tqdm

    from tfseq.cli.data_args import head_output, load_for_contract
    from tfseq.data.long_format import fit_steps

    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{args.out.name}.", suffix=".partial", dir=args.out.parent)
    os.close(fd)
    count = 0
    try:
        with tempfile.TemporaryDirectory() as tmp, open(partial, "w") as out, \
                tqdm(unit="seq", desc="predict", disable=None, leave=False) as bar:
            block_path = Path(tmp) / "block.csv"  # text keeps whatever the file held, as read
            for block in _sequence_blocks(args.data, contract.id_col, args.block_rows):
                block.to_csv(block_path, index=False)
                try:
                    data = _load(args, contract, load_for_contract, path=block_path)
                except InputError as exc:  # name the user's file, not the block
                    raise InputError(str(exc).replace(str(block_path), str(args.data))) from None
                if runner.steps is not None and runner.steps != data.steps:
                    data = fit_steps(data, int(runner.steps))
                output = _predict(runner, data.x, args.batch_size, contract, args.artifact, head_output)
                predictions_frame(data.ids, output, contract).to_csv(out, index=False, header=count == 0)
                count += len(data)
                bar.update(len(data))
            out.flush()
            os.fsync(out.fileno())
        if count == 0:
            raise InputError(f"{args.data}: the file has no rows; expected one row per (sequence, step).")
        os.replace(partial, args.out)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return count


def _predict_whole(args, runner, contract) -> int:
    from tfseq.cli.data_args import head_output, load_for_contract
    from tfseq.data.long_format import fit_steps
    from tfseq.io import write_text_atomic

    data = _load(args, contract, load_for_contract)
    if runner.steps is not None and runner.steps != data.steps:
        data = fit_steps(data, int(runner.steps))
    output = _predict(runner, data.x, args.batch_size, contract, args.artifact, head_output)
    buffer = io.StringIO()
    predictions_frame(data.ids, output, contract).to_csv(buffer, index=False)
    write_text_atomic(args.out, buffer.getvalue())
    return len(data)


def _load(args, contract, load_for_contract, path: Path | None = None):
    from tfseq.data.long_format import read_columns

    path = path or args.data
    has_labels = bool(contract.label_col) and contract.label_col in read_columns(path) \
        and contract.task in ("binary", "multiclass")
    return load_for_contract(path, contract, labels=has_labels, fill=args.fill)


def _predict(runner, x: np.ndarray, batch_size: int, contract, artifact: Path, head_output) -> np.ndarray:
    from tqdm.auto import tqdm

    parts = []
    with tqdm(total=len(x), unit="seq", desc="predict", disable=None, leave=False) as bar:
        for start in range(0, len(x), batch_size):
            batch = np.ascontiguousarray(x[start:start + batch_size], dtype=np.float32)
            parts.append(head_output(runner.predict(batch), contract, artifact))
            bar.update(len(batch))
    return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)
