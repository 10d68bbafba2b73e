"""``tfseq train``: long-format data in, a RUN directory out."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from tfseq.cli.args import Subparsers, number_in, positive_int
from tfseq.cli.data_args import DATA_KEYS, add_data_arguments, add_input_arguments, load_training_data
from tfseq.errors import InputError

EXAMPLES = """examples:
  tfseq train tests.csv --id-col device_id --time-col cycle --label-col status --out runs/lstm
  tfseq train tests.parquet --id-col device_id --time-col cycle --label-col bin --task multiclass \\
      --cell gru --units 64,32 --epochs 30 --out runs/bins
  tfseq train tests.csv --id-col device_id --time-col cycle --label-col status --predict-at 12 --out runs/early
  tfseq train tests.csv --id-col device_id --time-col cycle --label-col status --streaming --out runs/stream
  tfseq train wafer.csv --id-col tool --time-col t --window 24 --horizon 4 --target temp --out runs/forecast
  tfseq train tests.csv --config train.yaml --epochs 5 --out runs/quick    (flags override the config)
  tfseq train year/ --id-col device_id --time-col cycle --label-col status --out-of-core --out runs/year
      (a Parquet dataset larger than memory, streamed from its files every epoch)

config file (YAML, TOML or JSON, e.g. tune's best_spec.json): any flag as a key, e.g.
  id-col: device_id
  time-col: cycle
  label-col: status
  units: [64, 32]
  model: {pooling: mean, layer_norm: true}     # any ModelSpec field"""

#: Dests of the model and training flags (config files may set them too).
TRAIN_KEYS = ("out", "cell", "bidirectional", "streaming", "units", "epochs", "batch_size", "precision", "strategy", "seed",
              "learning_rate", "dropout", "patience", "overwrite")


#: Training settings of ``tfseq train`` (flag dest -> default); tfseq.training.defaults holds the model.
#: Kept here, not there, so that bad input is reported before TensorFlow starts.
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": None,  # None: by the training sequences (tfseq.training.defaults.training_budget)
    "batch_size": 64,
    "patience": None,
    "val_fraction": 0.2,
    "seed": 0,
    "precision": "auto",
    "strategy": "auto",
}


def _units(text: str) -> tuple[int, ...]:
    try:
        units = tuple(int(u) for u in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected positive integers such as 64 or 64,32, got {text!r}") from None
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers such as 64 or 64,32, got {text!r}")
    return units


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "train",
        help="train a recurrent model on long-format CSV/Parquet data",
        description=(
            "Train a recurrent model on DATA (long format: one row per sequence and step) and write "
            "the RUN directory: model.keras, spec.json, contract.json, history.csv, metrics.json and "
            "plots/. The task is inferred from the label column unless --task is given. Default model: "
            "a bidirectional LSTM of 64 units beside a convolutional branch and a summary branch, a ridge-fitted "
            "linear path into the head, normalisation inside, masking only of padding (data of one length keep "
            "every step); up to 300 epochs on small data, else 100, with early stopping."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", type=Path, metavar="DATA", help="long-format .csv or .parquet file, a directory or glob of them, or STDF files")
    parser.add_argument("--out", type=Path, metavar="RUN", help="RUN directory to create")
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML, TOML or JSON file with flag values")
    add_data_arguments(parser)
    add_input_arguments(parser)
    model = parser.add_argument_group("model and training")
    model.add_argument("--cell", choices=("simple_rnn", "lstm", "gru"), help="recurrent cell (default: lstm)")
    model.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                       help="bidirectional layers (default: yes)")
    model.add_argument("--streaming", action="store_true", default=None,
                       help="one unidirectional model that answers after every step (early warning, "
                            "tfseq policy); implies --no-bidirectional")
    model.add_argument("--units", type=_units, metavar="64[,32]", help="units per layer (default: 64)")
    model.add_argument("--dropout", type=number_in(0, 1, low_closed=True), metavar="R", help="dropout rate (default: 0.2)")
    model.add_argument("--learning-rate", type=number_in(0), metavar="LR", help="Adam learning rate (default: 0.001)")
    model.add_argument("--epochs", type=positive_int, metavar="N", help="maximum epochs (default: 300 under 250,000 training steps (sequences x steps), else 100; "
                       "early stopping)")
    model.add_argument("--patience", type=positive_int, metavar="N", help="early-stopping patience (default: 30 under 250,000 training steps, else 10)")
    model.add_argument("--batch-size", type=positive_int, metavar="N", help="batch size (default: 64)")
    model.add_argument("--precision", choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"),
                       help="precision policy (default: auto)")
    model.add_argument("--strategy", choices=("auto", "none", "mirrored", "multi-worker"),
                       help="distribution: mirrored (this host's GPUs), multi-worker (hosts in TF_CONFIG "
                            "or a Slurm job) or auto (default)")
    model.add_argument("--seed", type=int, metavar="N", help="seed of the split and the weights (default: 0)")
    model.add_argument("--overwrite", action="store_true", default=None, help="replace an existing RUN directory")
    parser.set_defaults(run=run)


def merge_config(args: argparse.Namespace, keys: tuple[str, ...]) -> dict[str, Any]:
    """Fills unset flags from ``--config``; returns its ``model:`` mapping (ModelSpec fields)."""
    if getattr(args, "config", None) is None:
        return {}
    from tfseq.config import check_keys, read_config

    config = read_config(args.config)
    check_keys(config, set(keys) | {"model"}, args.config)
    model = config.pop("model", None) or {}
    if not isinstance(model, dict):
        raise InputError(f"{args.config}: config key 'model' holds {model!r}; expected a mapping of ModelSpec fields.")
    for key, value in config.items():
        if getattr(args, key, None) is None:
            if key in ("units",) and not isinstance(value, (list, tuple)):
                value = _units(str(value))
            if key in ("features",) and isinstance(value, (list, tuple)):
                value = ",".join(map(str, value))
            if key in ("out", "val") and value is not None:
                value = Path(value)
            setattr(args, key, value)
    return model


def _check_config_types(args: argparse.Namespace, source: Path | None) -> None:
    ints = ("epochs", "batch_size", "patience", "max_steps", "predict_at", "window", "horizon")
    for key in ints:
        value = getattr(args, key, None)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InputError(f"{source}: {key} is {value!r}; expected a positive integer.")


def run(args: argparse.Namespace) -> int:
    model_overrides = merge_config(args, DATA_KEYS + TRAIN_KEYS)
    _check_config_types(args, args.config)
    for key, value in TRAINING_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.out is None:
        raise InputError("Received no value for argument --out; expected --out RUN (a directory to create).")
    from tfseq.workflows.train import check_new_run, claim_partial, train_run

    check_new_run(args.out, overwrite=bool(args.overwrite))
    started = time.perf_counter()
    # bad data fails before TF starts; out of core, a first pass over the files finds it
    train, val, task, streamed, how = load_training_data(args, args.data, seed=args.seed)
    claim_partial(args.out, {k: v for k, v in sorted(vars(args).items()) if k not in _NOT_RESUME_KEYS},
                  overwrite=bool(args.overwrite))

    from tfseq.startup import start_tensorflow

    start_tensorflow(threads=True)

    result = train_run(
        train, val, task, args.out, id_col=args.id_col, time_col=args.time_col,
        label_col=args.target if task == "forecast" else args.label_col,
        spec_changes=_spec_changes(args),
        spec_overrides=model_overrides, epochs=args.epochs, batch_size=args.batch_size, patience=args.patience,
        seed=args.seed, predict_at=args.predict_at, overwrite=bool(args.overwrite),
        extra={"data": str(args.data), "window": args.window, "horizon": args.horizon, "target": args.target,
               "max_steps": args.max_steps, "fill": args.fill},
        verbose=1 if sys.stdout.isatty() else 2, strategy=args.strategy, streamed=streamed,
    )
    if not result.get("chief", True):
        print(f"worker done; the chief writes {args.out}")
        return 0
    print_summary({**result, "input_how": how}, inferred=getattr(args, "task", None) is None,
                  seconds=time.perf_counter() - started)
    return 0


def _spec_changes(args: argparse.Namespace) -> dict[str, Any]:
    """ModelSpec fields set by flags; ``--streaming`` makes the model unidirectional unless told otherwise."""
    changes = {k: getattr(args, k) for k in ("cell", "bidirectional", "units", "dropout", "learning_rate",
                                             "precision") if getattr(args, k, None) is not None}
    if getattr(args, "streaming", None):
        if args.bidirectional:
            raise InputError("Received --streaming with --bidirectional; a streaming model answers after every "
                             "step and cannot read the steps still to come: drop --bidirectional.")
        changes.update(streaming=True, bidirectional=False)
    return changes


#: Flags that do not change what is trained, so a resume may differ in them.
_NOT_RESUME_KEYS = {"run", "overwrite", "strategy"}


def _input_line(result: dict[str, Any]) -> str:
    record = result["input"]
    how = result.get("input_how") or record["mode"].replace("-", " ")
    if record["mode"] != "out-of-core":
        return how
    return (f"{how}; streamed from {record['files']} file(s), shuffle buffer {record['shuffle_buffer']:,} sequences, "
            f"{record['split']}")


def _share(share: float) -> str:
    return "the network" if share == 1.0 else "half the network" if share == 0.5 else f"{share:g} of the network"


def _epochs(epochs: int) -> str:
    return "1 epoch" if epochs == 1 else f"{epochs} epochs"


def _fmt(metrics: dict[str, Any]) -> str:
    keys = ("accuracy", "precision", "recall", "f1", "auc", "mae", "rmse", "r2")
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in keys if k in metrics)


def print_summary(result: dict[str, Any], *, inferred: bool, seconds: float) -> None:
    task = result["task"]
    classes = f"; classes {', '.join(result['class_names'])}" if result.get("class_names") else ""
    rows = [
        ("task", f"{task} ({'inferred' if inferred and task != 'forecast' else 'given'}{classes})"),
        ("data", f"{result['train_sequences']:,} train / {result['validation_sequences']:,} validation sequences "
                 f"x {result['steps']} steps x {len(result['feature_names']) - bool(result.get('step_flag'))} features"
                 + (" and the step flag" if result.get("step_flag") else "")),
        ("model", f"{result['model']}, {result['parameters']:,} parameters"),
        ("epochs", f"{result['epochs']} (best epoch restored), {seconds:.0f} s"),
        *([("input", _input_line(result))] if result.get("input") else []),
        *([("padding", f"marked by the step flag {result['step_flag']['feature']} (the last feature, made by the "
                       f"readers): {result['step_flag']['zero_steps']:,} real steps whose measurements are all 0.0 "
                       "stay data")] if result.get("step_flag") else []),
        *([("distribution", "{strategy}: {workers} worker(s), {replicas} replica(s)".format(**result["distribution"]))]
          if result.get("distribution") else []),
        ("validation", _fmt(result["validation"])),
    ]
    if "linear_fit_only" in result:
        losses = result["validation_loss"]
        rows.insert(-1, ("linear path", (
            "the ridge fit alone (the network did not lower the validation loss beyond its noise: "
            f"{losses['trained']:.4g} against the fit's {losses['linear fit']:.4g}, standard error "
            f"{losses.get('standard_error', 0.0):.2g})" if result["linear_fit_only"] else
            f"ridge fit plus {_share(result.get('network_share', 1.0))} (validation loss {losses['trained']:.4g}, "
            f"the fit alone {losses['linear fit']:.4g})") + (f"; refit on all {result['linear_refit_sequences']:,} sequences"
                                               if result.get("linear_refit_sequences") else "")
            + (f"; the network trained again on them for {_epochs(result['trained_again']['epochs'])}"
               if result.get("trained_again") else "")))
    if result.get("early_warning"):
        found, steps = result["early_warning"]["earliest_step"], result["steps"]
        targets = ", ".join(f"{k} >= {v:.2f}" for k, v in result["early_warning"]["targets"].items())
        rows.append(("per step", f"targets ({targets}) met from step {found} of {steps}" if found
                     else f"targets ({targets}) met at no step of {steps}"))
    if result.get("baseline"):
        rows.append(("baseline", f"{result['baseline']['name']}: {_fmt(result['baseline']['validation'])}"))
    rows.append(("run", str(result["run_dir"])))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    comparison = result.get("baseline_comparison") or {}
    if comparison.get("baseline_wins"):
        print(f"note: the baseline beats the model on validation {comparison['metric']} "
              f"({comparison['baseline']:.4g} against {comparison['model']:.4g}); see docs/guide/train.md, "
              "'Against a simple baseline'")
