"""``tfseq build-kernels``: build the fused LSTM kernel ahead of time (e.g. in a container image)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tfseq.cli.args import Subparsers

EXAMPLES = """examples:
  tfseq build-kernels                          into ~/.cache/tfseq/kernels (or $TFSEQ_CACHE_DIR)
  TFSEQ_CACHE_DIR=/opt/tfseq tfseq build-kernels   in a Dockerfile: RUN this, then ENV TFSEQ_CACHE_DIR=/opt/tfseq

The kernel is compiled for the CPU it is built on (-march=native): build the image on the
machine class that runs it. Without a C++ compiler, LSTM layers use the gate-by-gate loop."""


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "build-kernels",
        help="compile the fused LSTM training kernel now instead of on first use",
        description=(
            "Compile tfseq's fused LSTM op (one C++ TensorFlow op per training pass) for this CPU and "
            "TensorFlow version with g++ (or $CXX), and cache it. tfseq otherwise does this on the "
            "first LSTM training call (about 40 s on 2 cores, once per machine)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where to keep the library (default: $TFSEQ_CACHE_DIR or ~/.cache/tfseq/kernels)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tfseq.startup import start_tensorflow

    start_tensorflow()
    from tfseq.errors import InputError
    from tfseq.models import fused_lstm

    started = time.perf_counter()
    try:
        path = fused_lstm.build(args.cache_dir, announce=False, retry=True)
        fused_lstm.load_library(path)
    except RuntimeError as exc:
        raise InputError(f"the fused LSTM kernel cannot be built here: {exc} (LSTM layers will use the "
                         "gate-by-gate loop)") from None
    print(f"{path} ({time.perf_counter() - started:.0f} s)")
    return 0
