"""``tfseq predict``: any artifact + long-format data in, one CSV row per sequence out."""

from __future__ import annotations

import argparse
from pathlib import Path

from tfseq.cli.args import Subparsers, positive_int

EXAMPLES = """examples:
  tfseq predict runs/lstm new_devices.csv --out predictions.csv
  tfseq predict export/lstm.tflite new_devices.parquet --out predictions.csv
  tfseq predict export/lstm.onnx new_devices.csv --out predictions.csv --overwrite
  tfseq predict runs/lstm lake/ --out predictions.csv               a Parquet dataset (Hive partitions), file by file
  tfseq predict runs/lstm new_devices.csv --out predictions.csv --explain 3    adds drivers: Idd_current@12;Vdd_voltage@11;...

output columns: the id column, predicted (class name or value) and, for classifiers, p_<class> per class;
with --explain K, drivers: the sequence's K largest integrated-gradient attributions as feature@step
(1-based step, largest first; RUN or .keras artifacts only, see tfseq explain).
DATA needs the id, time and every feature column the model was trained on (extra columns are ignored);
a label column, if present, must hold only classes the model knows."""


def add_parser(sub: Subparsers) -> None:
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
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="run an exported artifact even if its sha256 differs from manifest.json")
    parser.add_argument("data", type=Path, metavar="DATA",
                        help="long-format .csv or .parquet file, a directory or glob of them, or STDF files")
    parser.add_argument("--out", type=Path, required=True, metavar="PRED.csv", help="predictions CSV to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--fill", choices=("ffill", "zero"), help="repair NaN/inf features (default: as in training)")
    parser.add_argument("--block-rows", type=positive_int, default=500_000, metavar="N",
                        help="rows read at a time; memory grows with this, not with the file (default: 500000)")
    parser.add_argument("--batch-size", type=positive_int, default=4096, metavar="N",
                        help="sequences per prediction call (default: 4096)")
    parser.add_argument("--explain", type=positive_int, metavar="K",
                        help="add a drivers column: each sequence's top K feature@step attributions (RUN or .keras)")
    parser.add_argument("--ig-steps", type=positive_int, metavar="N",
                        help="Gauss-Legendre points of --explain's integrated gradients (default: 16)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tfseq.workflows.predict import check_prediction_inputs

    # A missing or unreadable DATA, or missing columns, fail before TensorFlow starts.
    check_prediction_inputs(args.artifact, args.data, args.out, overwrite=args.overwrite, fill=args.fill,
                            explain=args.explain)

    from tfseq.workflows.predict import needs_tensorflow, predict_file

    if needs_tensorflow(args.artifact):  # LiteRT and onnxruntime run without it: no seconds spent starting it
        from tfseq.startup import start_tensorflow

        start_tensorflow(threads=True)

    done = predict_file(args.artifact, args.data, args.out, overwrite=args.overwrite, fill=args.fill,
                        block_rows=args.block_rows, batch_size=args.batch_size, verify=args.verify,
                        explain=args.explain, ig_steps=args.ig_steps)
    print(f"predicted {done.sequences:,} sequences with {args.artifact} ({done.kind}); wrote {done.out}")
    return 0
