"""``tfseq export``: a RUN to SavedModel (TF Serving), TF Lite (LiteRT) and ONNX, verified."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfseq.cli.args import Subparsers

EXAMPLES = """examples:
  tfseq export runs/demo/lstm --out export                       SavedModel + float32 TF Lite + ONNX
  tfseq export runs/demo/lstm --out export --format tflite --quantize int8
  tfseq export runs/demo/lstm --out export --quantize none,dynamic,int8 --name yield-lstm
  tfseq export runs/demo/lstm --out export --quantize all --allow-degraded

layout of --out:
  savedmodel/<name>/<version>/   TF Serving SavedModel (signature serving_default); a new export
                                 adds the next version, an existing one is never overwritten
  savedmodel/models.config       TF Serving model_config_list
  <name>[-<quantization>].tflite builtin ops only: runs in the standalone LiteRT runtime
  <name>.onnx                    opset 17, dynamic batch axis
  <name>-step[-<quantization>].tflite, <name>-step.onnx, SavedModel signature "step"
                                 streaming RUNs: one cycle and the recurrent state in, outputs and new state out
  manifest.json                  input contract, sha256 and verification figures per artifact

Every artifact is run in its own runtime on held-out sequences (RUN/export_sample.npz with
arrays x, y and x_train if present, otherwise sequences drawn from the normalisation statistics)
and compared with Keras. An artifact below its parity thresholds fails the export (exit status 3, nothing written)
unless --allow-degraded is given."""


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "export",
        help="export a RUN to SavedModel, TF Lite and ONNX, each verified in its own runtime",
        description=(
            "Export the model of a RUN directory for TF Serving (SavedModel), edge test stations "
            "(TF Lite, builtin ops only) and ONNX runtimes. The artifacts take raw float32 "
            "measurements [batch, steps, features]; the normalisation is inside."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="a RUN directory (model.keras, spec.json, contract.json)")
    parser.add_argument("--out", type=Path, required=True, help="export directory")
    parser.add_argument(
        "--format", default="all", metavar="FORMATS",
        help="savedmodel, tflite, onnx, a comma-separated list, or all (default: all)",
    )
    parser.add_argument(
        "--quantize", default="none", metavar="MODES",
        help="TF Lite modes: none (float32), float16, dynamic, int8, a comma-separated list, "
             "or all (default: none)",
    )
    parser.add_argument("--name", default=None, help="model name (default: the spec's name, e.g. lstm-64)")
    parser.add_argument(
        "--allow-degraded", action="store_true",
        help="keep artifacts that miss their parity thresholds (marked in manifest.json)",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace the highest SavedModel version instead of adding the next one",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of calibration draws (default: 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tfseq.export import FORMATS, choices_tuple
    from tfseq.export.tflite import QUANTIZATIONS

    # Check the flags before TensorFlow starts: bad input answers at once.
    formats = choices_tuple(args.format, FORMATS, "--format")
    modes = choices_tuple(args.quantize, QUANTIZATIONS, "--quantize")
    if "tflite" in formats:
        from tfseq.export.tflite import require_litert

        require_litert()
    if not (args.run_dir / "contract.json").is_file():
        from tfseq.errors import InputError

        raise InputError(f"{args.run_dir}: not a tfseq RUN directory (no contract.json).")

    from tfseq.startup import start_tensorflow

    start_tensorflow(threads=True)
    from tfseq.errors import ParityError
    from tfseq.workflows.export import export_run

    try:
        manifest = export_run(
            args.run_dir, args.out, formats=formats, quantize=modes, name=args.name,
            allow_degraded=args.allow_degraded, overwrite=args.overwrite, seed=args.seed,
        )
    except ParityError as exc:  # the library names its argument; the command names the flag
        raise ParityError(str(exc).replace("allow_degraded=True", "--allow-degraded")) from None
    for artifact in manifest["artifacts"]:
        figures = artifact["verification"]
        agreement = figures.get("class_agreement")
        status = "ok" if artifact["passed"] else "DEGRADED: " + "; ".join(artifact["failures"])
        # a SavedModel's step signature is a second record of the same directory
        signature = f" (signature {artifact['signature']})" if artifact.get("signature") not in \
            (None, "serving_default") and not str(artifact["path"]).endswith((".tflite", ".onnx")) else ""
        print(
            f"{args.out / artifact['path']}{signature}  {artifact['size_bytes'] / 1024:.0f} KiB  "
            f"max|diff| {figures['max_abs_diff']:.2g}"
            + (f"  agreement {100 * agreement:.1f} %" if agreement is not None else "")
            + f"  batch-1 {1000 * figures['batch1_latency_ms']:.0f} us  {status}",
            file=sys.stdout,
        )
    print(f"{args.out / 'manifest.json'}")
    return 0
