"""``tfseq monitor``: is new data still like the training data? drift.json, a plot, exit status 4 on drift."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tfseq.cli.args import Subparsers

EXAMPLES = """examples:
  tfseq monitor runs/lstm new_devices.csv
  tfseq monitor export/lstm.onnx new_devices.parquet --out reports/2026-12-01
  tfseq monitor runs/lstm new_devices.csv --psi-threshold 0.25 --alpha 0.001

  # cron: alert when this week's devices drift from the training data
  tfseq monitor export/lstm.tflite week.parquet --out monitor/week; [ $? -eq 4 ] && mail -s drift ops < monitor/week/drift.json

what is compared with the statistics saved at training time (RUN/reference.json, or the
manifest.json of an export): per feature the per-sequence means (PSI over the training deciles and
a two-sample KS test) and the fraction of steps outside the training range; the sequence lengths;
the distribution of the predictions. A distribution drifted when PSI > --psi-threshold and the
Holm-adjusted KS p-value < --alpha, or when more than --max-out-of-range of its values are outside
the training range.

exit status: 0 no drift, 4 drift found (the report is written either way), 2 bad input."""


def add_parser(sub: Subparsers) -> None:
    from tfseq.analysis.drift import ALPHA, MAX_OUT_OF_RANGE, PSI_THRESHOLD
    from tfseq.analysis.reference import RANGE_MARGIN

    parser = sub.add_parser(
        "monitor",
        help="compare new data with the training data: feature, length and prediction drift",
        description=(
            "Compare long-format DATA with the reference statistics saved when the model of ARTIFACT (a RUN "
            "directory, or an exported .tflite, .onnx or SavedModel beside its manifest.json) was trained. "
            "Writes DIR/drift.json and DIR/plots/drift.png (whole, replacing an earlier report), prints a "
            "summary and exits 4 when drift is found."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("artifact", type=Path, metavar="RUN|ARTIFACT", help="RUN directory or exported artifact")
    parser.add_argument("data", type=Path, metavar="DATA",
                        help="long-format .csv or .parquet file, a directory or glob of them, or STDF files")
    parser.add_argument("--out", type=Path, default=Path("monitor"), metavar="DIR",
                        help="report directory (default: ./monitor)")
    parser.add_argument("--psi-threshold", type=float, default=PSI_THRESHOLD, metavar="PSI",
                        help=f"PSI above which a distribution may count as drifted (default: {PSI_THRESHOLD:g})")
    parser.add_argument("--alpha", type=float, default=ALPHA, metavar="A",
                        help=f"family-wise significance level of the KS tests, Holm-adjusted (default: {ALPHA:g})")
    parser.add_argument("--max-out-of-range", type=float, default=MAX_OUT_OF_RANGE, metavar="F",
                        help="largest fraction of values outside the training range "
                             f"(default: {MAX_OUT_OF_RANGE:g})")
    parser.add_argument("--range-margin", type=float, default=RANGE_MARGIN, metavar="M",
                        help="the training range [q0.1%%, q99.9%%] widened by M times its width on each side "
                             f"(default: {RANGE_MARGIN:g})")
    parser.add_argument("--no-predictions", dest="predictions", action="store_false",
                        help="do not run the model (no prediction drift)")
    parser.add_argument("--fill", choices=("ffill", "zero"), help="repair NaN/inf features (default: as in training)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="run an exported artifact even if its sha256 differs from manifest.json")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tfseq.workflows.monitor import load_monitor_inputs

    thresholds = {"psi_threshold": args.psi_threshold, "alpha": args.alpha,
                  "max_out_of_range": args.max_out_of_range, "range_margin": args.range_margin}
    # Bad flags, an artifact without reference statistics or data without a trained feature fail
    # before TensorFlow starts.
    inputs = load_monitor_inputs(args.artifact, args.data, out=args.out, fill=args.fill, **thresholds)
    if args.predictions:
        from tfseq.startup import start_tensorflow

        start_tensorflow(threads=True)
    from tfseq.workflows.monitor import DRIFT_JSON, monitor_sequences

    report = monitor_sequences(inputs, predictions=args.predictions, verify=args.verify, **thresholds)
    _print(report)
    if report["drift"]:
        from tfseq.errors import DriftFound

        raise DriftFound(f"drift found in {args.data}: {'; '.join(report['reasons'][:3])}"
                         + (f" (and {len(report['reasons']) - 3} more)" if len(report["reasons"]) > 3 else "")
                         + f"; report: {args.out / DRIFT_JSON}")
    return 0


def _print(report: dict[str, Any]) -> None:
    features = report["features"]
    width = max([len("feature")] + [len(f["name"]) for f in features[:20]])
    print(f"{report['data']}: {report['sequences']:,} sequences vs {report['reference_sequences']:,} "
          f"training sequences ({report['reference']})")
    print(f"{'feature':<{width}}  {'PSI':>6}  {'KS p':>8}  {'outside':>7}  {'shift':>6}  drift")
    for f in features[:20]:
        shift = "" if f["mean_shift_std"] is None else f"{f['mean_shift_std']:+.2f}"
        print(f"{f['name']:<{width}}  {f['psi']:6.3f}  {f['p_adjusted']:8.2g}  {100 * f['out_of_range']:6.1f}%  "
              f"{shift:>6}  {'DRIFT' if f['drift'] else 'ok'}")
    if len(features) > 20:
        print(f"... {len(features) - 20} more features in drift.json")
    lengths = report["lengths"]
    print(f"{'lengths':<{width}}  {lengths['psi']:6.3f}  {lengths['p_adjusted']:8.2g}  "
          f"{100 * lengths['out_of_range']:6.1f}%  {'':>6}  {'DRIFT' if lengths['drift'] else 'ok'}")
    prediction = report.get("prediction")
    if prediction:
        print(f"{prediction['kind'][:width]:<{width}}  {prediction['psi']:6.3f}  {prediction['p_adjusted']:8.2g}  "
              f"{'':>7}  {'':>6}  {'DRIFT' if prediction['drift'] else 'ok'}")
    oor = report["out_of_range_sequences"]
    print(f"sequences out of range: {oor['count']:,} ({100 * oor['fraction']:.1f} %)")
    print(f"drift: {'YES' if report['drift'] else 'no'}; wrote {report['out']}")
