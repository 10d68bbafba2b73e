"""``tfseq convert``: STDF insertions in, one long-format Parquet file out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfseq.cli.args import Subparsers

EXAMPLES = """examples:
  tfseq convert lot7/*.stdf --out lot7.parquet                 one file per insertion, devices by PART_ID
  tfseq convert ws/LOT7_WS1.STDF.GZ ws/LOT7_WS2.std.bz2 --out ws.parquet --part-key wafer_xy
  tfseq convert burnin/ --out burnin.parquet --part-key test:9000    a chip id test names the device
  tfseq convert cut_short.stdf --out partial.parquet --salvage        keep what came before the damage
  tfseq train lot7.parquet --id-col device --time-col insertion --label-col final_outcome --out runs/lot7

output: one row per (device, insertion): device, insertion (1, 2, ... by MIR START_T), one float32
column per PTR (and MPR pin) named <TEST_NUM>:<TEST_TXT>, and the labels final_outcome (pass/fail of
the device's last PRR), final_hard_bin, final_soft_bin (strings: never default features).
A result flagged invalid or not executed is NaN (train with --fill, or drop those tests). A retested
device keeps its last test in a file (--retests steps: each test is a step). Notes (retests, tests missing on failing parts only, salvage)
are printed to stderr. Needs stdf-convert: pip install 'stdf-convert~=0.3.0' (Python >= 3.11)."""


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "convert",
        help="STDF test files (one per insertion) to long-format Parquet",
        description=(
            "Convert STDF V4 / V4-2007 files (.stdf, .std, optionally .gz, .bz2 or .zip, any letter case), "
            "one per test insertion, into one long-format Parquet file: one row per device and insertion. "
            "The file is written atomically."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE", help="STDF files, directories or globs")
    parser.add_argument("--out", type=Path, required=True, metavar="LONG.parquet", help="Parquet file to write")
    parser.add_argument("--part-key", default="part_id", metavar="KEY",
                        help="device identity: part_id (PRR PART_ID), wafer_xy (lot, wafer, die X/Y) or "
                             "test:<TEST_NUM> (that test's result, e.g. a chip id) (default: part_id)")
    parser.add_argument("--retests", choices=("last", "steps"), default="last",
                        help="a device tested more than once in a file: keep its last test, or make each test "
                             "a step of its own (default: last)")
    parser.add_argument("--salvage", action="store_true",
                        help="read a damaged file up to its last complete record (with a warning)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tfseq.workflows.convert import convert_stdf

    done = convert_stdf(args.files, args.out, part_key=args.part_key, salvage=args.salvage, retests=args.retests,
                        overwrite=args.overwrite)
    for note in done.notes:
        print(f"tfseq: warning: {note}", file=sys.stderr)
    print(f"converted {len(done.insertions)} insertion(s): {done.devices:,} devices, {done.rows:,} rows, "
          f"{len(done.features):,} features; wrote {done.out}")
    print(f"next: tfseq train {done.out} --id-col device --time-col insertion --label-col final_outcome --out RUN"
          " (--fill zero where tests are missing)")
    return 0
