"""``tfseq demo``: the classic study on the built-in synthetic data set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfseq.cli.args import Subparsers, positive_int

EXAMPLES = """examples:
  tfseq demo                                   50,000 devices, up to 20 epochs each (about 3 min on 2 cores)
  tfseq demo --devices 5000 --epochs 3         a quick look
  tfseq demo --out runs/study --predict-at 12  warn 8 cycles ahead instead of 5"""


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "demo",
        help="SimpleRNN vs LSTM vs GRU vs BiLSTM on synthetic semiconductor test data",
        description=(
            "Generate the synthetic semiconductor data set (devices x 20 test cycles x 15 parametric "
            "measurements, 20 % failing with accelerating drift), train SimpleRNN, LSTM, GRU and "
            "BiLSTM on the first --predict-at cycles, compare them, and write report.md, "
            "metrics.json and plots/ to --out."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory (default: runs/demo)")
    parser.add_argument("--devices", type=positive_int, default=50_000, help="number of devices (default: 50000)")
    parser.add_argument("--epochs", type=positive_int, default=20, help="maximum epochs per model (default: 20)")
    parser.add_argument("--units", type=positive_int, default=128, help="hidden units (default: 128)")
    parser.add_argument("--predict-at", type=positive_int, default=15, help="early-warning cycle (default: 15)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, split and weights (default: 0)")
    parser.add_argument(
        "--precision", choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"), default="auto",
        help="precision policy (default: auto)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tfseq.startup import start_tensorflow

    start_tensorflow(threads=True)
    from tfseq.workflows.demo import run_demo

    run_demo(
        args.out, devices=args.devices, epochs=args.epochs, units=args.units,
        predict_at=args.predict_at, seed=args.seed, precision=args.precision,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return 0
