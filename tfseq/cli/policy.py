"""``tfseq policy``: the adaptive-test policy of a streaming RUN, fitted on labelled calibration data."""

from __future__ import annotations

import argparse
from pathlib import Path

from tfseq.cli.args import Subparsers, positive_int
from tfseq.errors import InputError

EXAMPLES = """examples:
  tfseq train tests.csv --id-col device_id --time-col cycle --label-col status --streaming --out runs/stream
  tfseq policy runs/stream calibration.csv --max-escape 0.001 --max-scrap 0.01
  tfseq policy runs/stream calibration.csv --max-escape 0.001 --step-costs 1,1,1,2,2,2,4,...   (cost per step)
  tfseq policy runs/stream calibration.csv --max-escape 0.0005 --no-early-pass     (stop early on fails only)

A device is binned fail when its P(fail) after step k reaches t_fail(k), or pass when it is under
t_pass(k); escapes (failing devices passed early) and scraps (good devices failed early), each over all
devices, stay under --max-escape and --max-scrap as one-sided upper confidence bounds at --confidence
(learn-then-test with fixed-sequence testing: 40 % of the calibration devices learn, 60 % test). Writes
RUN/policy.json and RUN/plots/policy.png; evaluate, predict and export then use the policy."""


def _costs(text: str) -> list[float]:
    try:
        costs = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if any(not c >= 0 for c in costs):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return costs


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "policy",
        help="fit a streaming RUN's adaptive-test policy: stop testing early, escapes bounded",
        description=(
            "Fit the adaptive-test policy of a streaming RUN (tfseq train --streaming) on labelled calibration "
            "DATA the model was not trained on: per-step thresholds on P(fail) that stop a device's test as "
            "soon as its outcome is clear, saving the most test steps while the escape and scrap rates stay "
            "under their bounds with the given confidence. When no early stop meets the bounds, it says so and "
            "stores a policy that never stops early."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="streaming RUN directory from tfseq train")
    parser.add_argument("data", type=Path, metavar="DATA", help="labelled long-format calibration data: a .csv or .parquet file, a directory or glob of them, or STDF files")
    parser.add_argument("--max-escape", type=float, required=True, metavar="E",
                        help="bound on failing devices passed early, a fraction of all devices (e.g. 0.001)")
    parser.add_argument("--max-scrap", type=float, default=0.01, metavar="S",
                        help="bound on good devices failed early, a fraction of all devices (default: 0.01)")
    parser.add_argument("--confidence", type=float, default=0.95, metavar="C",
                        help="probability that both bounds hold (default: 0.95)")
    parser.add_argument("--no-early-pass", dest="early_pass", action="store_false",
                        help="never pass a device early (no escapes)")
    parser.add_argument("--no-early-fail", dest="early_fail", action="store_false",
                        help="never fail a device early (no scraps)")
    parser.add_argument("--min-step", type=positive_int, default=1, metavar="N",
                        help="first step at which a test may stop (default: 1)")
    parser.add_argument("--step-costs", type=_costs, metavar="C1,C2,...",
                        help="test cost of each step; the policy then saves the most cost (default: 1 each)")
    parser.add_argument("--label-col", metavar="C", help="target column (default: the one trained on)")
    parser.add_argument("--fill", choices=("ffill", "zero"), help="repair NaN/inf features (default: as in training)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the calibration split (default: 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tfseq.workflows.policy import load_calibration_data

    options = dict(max_escape=args.max_escape, max_scrap=args.max_scrap, confidence=args.confidence)
    # Bad flags or data fail before TensorFlow starts.
    contract, sequences = load_calibration_data(args.run_dir, args.data, step_costs=args.step_costs,
                                                label_col=args.label_col, fill=args.fill, **options)
    if args.min_step > (contract.steps or args.min_step):
        raise InputError(f"Received --min-step {args.min_step}; expected at most the model's {contract.steps} steps.")

    from tfseq.startup import start_tensorflow

    start_tensorflow(threads=True)
    from tfseq.cli.evaluate import policy_rows
    from tfseq.workflows.policy import fit_sequences_policy

    result = fit_sequences_policy(args.run_dir, contract, sequences, data=str(args.data),
                                  early_pass=args.early_pass, early_fail=args.early_fail, min_step=args.min_step,
                                  step_costs=args.step_costs, seed=args.seed, **options)
    report, outcome = result["policy"]["report"], result["outcome"]
    procedure = report["procedure"]
    rows = [("data", f"{args.data}: {len(sequences):,} devices x {contract.steps} steps; policy learnt on "
                     f"{procedure['learn_devices']:,}, bounded on {procedure['test_devices']:,}"),
            ("bounds", f"escape <= {100 * args.max_escape:.3g} %, scrap <= {100 * args.max_scrap:.3g} % of devices, "
                       f"confidence {100 * args.confidence:.3g} %"),
            ("candidates", f"{procedure['tested']} of {procedure['path']} tested in sequence, "
                           f"{procedure['accepted']} met the bounds")]
    rows += policy_rows(outcome)
    histogram = outcome["decided_at"]
    rows.append(("decided at", " ".join(f"{k + 1}:{v}" for k, v in enumerate(histogram) if v)))
    rows.append(("written", f"{args.run_dir / 'policy.json'}, {args.run_dir / 'plots' / 'policy.png'}"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if not result["stops_early"]:
        print("note: no early stop meets these bounds on these devices; the stored policy tests every device fully "
              "(more calibration devices or looser bounds may allow one)")
    return 0
