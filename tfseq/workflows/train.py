"""Train into a RUN directory: the default model of ``tfseq train`` (with changes), written whole.

See :mod:`tfseq.training.defaults` for why the default model and settings are what they are.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tfseq.data.sequences import STEP_FLAG, SequenceSet, Task
from tfseq.data.streamed import StreamedData, flag_padding_of
from tfseq.errors import InputError


def _curves(history_csv: Path, history: Any) -> dict[str, list[float]]:
    """Per-epoch figures of the whole run: history.csv spans a resumed run's earlier epochs too."""
    import pandas as pd

    if history_csv.is_file():
        frame = pd.read_csv(history_csv).drop(columns=["epoch"], errors="ignore")
        if len(frame):
            return {k: [float(v) for v in frame[k]] for k in frame.columns}
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


def _threshold_metrics(task: str, y: np.ndarray, output: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    from tfseq.evaluation import classification_metrics, regression_metrics

    if task in ("binary", "multiclass"):
        return classification_metrics(y, output, threshold=threshold)
    return regression_metrics(y, output)


#: The metric a model and its baselines are compared on, and whether higher is better.
COMPARED_ON: dict[str, tuple[str, bool]] = {"binary": ("auc", True), "multiclass": ("accuracy", True),
                                            "regression": ("rmse", False), "forecast": ("rmse", False)}


def _baselines(train: SequenceSet, val: SequenceSet | None, task: Task, metrics_val: dict[str, Any],
               label_col: str | None, seed: int, plots: Path) -> dict[str, Any]:
    """The simple baselines on the same split (:mod:`tfseq.training.baselines`), for metrics.json.

    Returns ``baselines`` (each one's validation metrics), ``baseline`` (the best of them on the
    compared metric) and ``baseline_comparison`` (that metric for the model and the best baseline,
    and whether the baseline wins); nothing without a validation split.
    """
    if val is None or val.y is None:
        return {}
    from tfseq.plots import plot_comparison
    from tfseq.training.baselines import fit_baselines

    fitted = fit_baselines(train, val, task, seed=seed, target_feature=label_col if task == "forecast" else None)
    metric, higher = COMPARED_ON[task]
    rows: list[dict[str, Any]] = []
    for baseline in fitted:
        rows.append({"name": baseline.name, "key": baseline.key, "seconds": round(baseline.seconds, 2),
                     "validation": _threshold_metrics(task, val.y, baseline.output)})
    rows = [r for r in rows if metric in r["validation"]]
    if not rows or metric not in metrics_val:
        return {"baselines": rows}
    best = (max if higher else min)(rows, key=lambda r: r["validation"][metric])
    model_value, baseline_value = float(metrics_val[metric]), float(best["validation"][metric])
    wins = baseline_wins(model_value, baseline_value, higher_is_better=higher)
    names = ["tfseq model", *(r["name"].split(" on ")[0] for r in rows)]
    plot_comparison(names, {f"validation {metric} ({'higher' if higher else 'lower'} is better)":
                            [model_value, *(r["validation"][metric] for r in rows)]},
                    plots / "baseline_comparison.png")
    return {"baselines": rows, "baseline": best,
            "baseline_comparison": {"metric": metric, "higher_is_better": higher, "model": model_value,
                                    "baseline": baseline_value, "baseline_wins": bool(wins)}}


def baseline_wins(model: float, baseline: float, *, higher_is_better: bool) -> bool:
    """Whether ``baseline`` scores better than ``model``, beyond float32 rounding: a model that kept
    its linear fit alone scores the ridge baseline's own error, give or take 1e-7, and that is a tie."""
    import math

    if math.isclose(model, baseline, rel_tol=1e-4, abs_tol=1e-9):
        return False
    return baseline > model if higher_is_better else baseline < model


def _streaming_metrics(task: str, evaluated: SequenceSet, per_step: np.ndarray, plots: Path) -> dict[str, Any]:
    """A streaming model's metrics after every step (``per_step``) and, for binary models, the earliest
    step meeting the study's early-warning targets (``earliest_step``), with their plot."""
    from tfseq.evaluation import EARLY_WARNING_TARGETS, earliest_step, per_step_metrics
    from tfseq.plots import plot_per_step

    assert evaluated.y is not None  # checked by the caller
    rows = per_step_metrics(task, evaluated.y, per_step, evaluated.lengths)
    found = earliest_step(rows, EARLY_WARNING_TARGETS) if task == "binary" else None
    plot_per_step(rows, plots / "per_step_metrics.png", targets=EARLY_WARNING_TARGETS if task == "binary" else None,
                  earliest=found)
    result: dict[str, Any] = {"per_step": rows}
    if task == "binary":
        result["early_warning"] = {"targets": dict(EARLY_WARNING_TARGETS), "earliest_step": found}
    return result


def _input_record(streamed: StreamedData | None, batch_size: int, train: int, val: int) -> dict[str, Any]:
    """How the data reached the model, for metrics.json and the summary."""
    if streamed is None:
        return {"mode": "in-memory"}
    from tfseq.training.streamed import shuffle_buffer

    return {"mode": "out-of-core", "files": len(streamed.files), "shuffle_buffer": shuffle_buffer(streamed, batch_size),
            "split": f"validation by a hash of the id ({streamed.val_fraction:g})",
            "sample": {"train": train, "validation": val,
                       "note": "baselines, reference and export checks use these first sequences of each split"}}


def check_new_run(out: Path, *, overwrite: bool) -> None:
    """Checks, before any data is loaded, that ``out`` may be written.

    Raises:
        InputError: if ``out`` exists and ``overwrite`` is false.
    """
    if Path(out).exists() and not overwrite:
        raise InputError(f"{out}: already exists; choose another out or set overwrite.",
                         arguments=("out", "overwrite"))


def claim_partial(out: Path, command: dict[str, Any], *, overwrite: bool) -> None:
    """Resumes ``.RUN.partial`` only for the same command; records ``command`` for the next run.

    A crash backup holds the weights and optimiser of one model: resumed under another command
    (another cell, units or data) it would fail inside Keras, or train the wrong model. So the
    command (any JSON-able mapping of what decides the model and data) is kept beside it.

    Raises:
        InputError: if an unfinished run of another command is there and ``overwrite`` is false
            (with ``overwrite`` it is discarded).
    """
    import json

    from tfseq.io import partial_path, write_json_atomic

    partial = partial_path(Path(out))
    command = json.loads(json.dumps(command, default=str))
    record = partial / "command.json"
    if (partial / "backup").is_dir():
        try:
            previous = json.loads(record.read_text())
        except (OSError, ValueError):
            previous = None
        if previous == command:
            print(f"resuming the unfinished run in {partial} from its last finished epoch")
        elif overwrite:
            print(f"discarding the unfinished run of another command in {partial}")
            shutil.rmtree(partial)
        else:
            changed = sorted(k for k in set(command) | set(previous or {})
                             if (previous or {}).get(k) != command.get(k))
            raise InputError(
                f"{partial}: holds an unfinished run of another command (differs in "
                f"{', '.join(changed[:5]) or 'an unknown way'}); expected the same command to resume it, "
                "or overwrite to start afresh.", arguments=("overwrite",)
            )
    partial.mkdir(parents=True, exist_ok=True)
    write_json_atomic(record, command)


def _keep_better_start(model: Any, start: list[np.ndarray], x: np.ndarray, y: dict[str, np.ndarray],
                       outcome: dict[str, Any], *, evidence: float) -> None:
    """Puts ``model`` back at its start (the frozen linear fits, the network's part at 0) unless the
    trained model lowers the validation loss by more than ``evidence`` standard errors of the
    sequences' loss differences (early stopping chose its epoch on these very sequences, so a lead
    within their noise is luck); records which won in ``outcome``."""
    import keras

    [(head, target)] = y.items()
    compiled = model.loss[head]  # compile_model gives every head its loss by name
    per_sequence = type(compiled).from_config({**compiled.get_config(), "reduction": None})

    def losses() -> np.ndarray:
        output = model.predict(x, batch_size=1024, verbose=0)[head]
        return np.asarray(keras.ops.convert_to_numpy(per_sequence(target, output)), dtype="float64").reshape(len(x))

    trained = model.get_weights()
    trained_losses = losses()
    model.set_weights(start)
    start_losses = losses()
    keep_trained, noise = network_leads(start_losses, trained_losses, evidence=evidence)
    if keep_trained:
        model.set_weights(trained)
    outcome["linear_fit_only"] = not keep_trained
    outcome["validation_loss"] = {"linear fit": float(start_losses.mean()), "trained": float(trained_losses.mean()),
                                  "standard_error": noise}


def network_leads(start: np.ndarray, trained: np.ndarray, *, evidence: float) -> tuple[bool, float]:
    """Whether the trained model's per-sequence losses (``trained``) beat the fit alone's (``start``)
    by more than ``evidence`` standard errors of their paired differences; and that standard error."""
    lead = np.asarray(start, dtype="float64") - np.asarray(trained, dtype="float64")
    noise = float(lead.std(ddof=1) / np.sqrt(len(lead))) if len(lead) > 1 else 0.0
    return bool(lead.mean() > evidence * noise), noise


def _best_epoch(curves: dict[str, list[float]]) -> int:
    """The epoch (from 1) of the lowest validation loss in the run's per-epoch figures: the one
    early stopping restored."""
    return int(np.argmin(curves["val_loss"])) + 1


def _variable_length(train: SequenceSet, val: SequenceSet | None, streamed: StreamedData | None) -> bool:
    """Whether any training or validation sequence is shorter than the padded length."""
    if streamed is not None:
        return True  # the scan does not keep lengths; masking costs nothing when nothing is padded
    return any(s.padded for s in (train, val) if s is not None)


def train_run(
    train: SequenceSet,
    val: SequenceSet | None,
    task: Task,
    out: Path,
    *,
    id_col: str | None,
    time_col: str,
    label_col: str | None,
    spec_changes: dict[str, Any] | None = None,
    spec_overrides: dict[str, Any] | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    patience: int | None = None,
    seed: int = 0,
    predict_at: int | None = None,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
    verbose: int | str = 2,
    strategy: str = "auto",
    streamed: StreamedData | None = None,
) -> dict[str, Any]:
    """Trains the default model (with changes) and writes the RUN directory, whole or not at all.

    Args:
        train: Training sequences (or forecast windows).
        val: Validation sequences, or None to monitor the training loss.
        task: ``binary``, ``multiclass``, ``regression`` or ``forecast``.
        out: The RUN directory to create.
        id_col: Id column recorded in the contract.
        time_col: Time column recorded in the contract.
        label_col: Target column recorded in the contract.
        spec_changes: ModelSpec fields set by flags (win over ``spec_overrides``).
        spec_overrides: ModelSpec fields from a config file's ``model:`` table.
        epochs: Maximum epochs (None: :func:`tfseq.training.defaults.training_budget`).
        batch_size: Batch size.
        patience: Early-stopping patience (None: as ``epochs``).
        seed: Seed of the weights and the shuffles.
        predict_at: Early-warning cut recorded in the contract.
        overwrite: Replace an existing ``out``.
        extra: Recorded in the contract's ``extra``.
        verbose: Keras progress.
        strategy: Distribution strategy (:func:`tfseq.training.distribute.make_strategy`).
            Under several workers every one trains, and only the chief writes the RUN.
        streamed: Train out of core on this scanned dataset (:func:`tfseq.data.streamed.scan_dataset`),
            read from its files every epoch; ``train`` and ``val`` are then samples of its splits
            (:func:`tfseq.data.streamed.read_sample`) for the baselines, the reference and the export checks, and
            the validation metrics cover the whole validation split.

    The RUN also holds ``reference.json``: statistics of the training sequences and of the
    predictions on the validation sequences (the training sequences when ``val`` is None), which
    ``tfseq monitor`` compares new data with.

    Returns:
        The content of ``metrics.json`` plus ``run_dir``.

    Raises:
        InputError: for invalid spec values or an existing ``out``.
    """
    from tfseq.analysis.reference import compute_reference
    from tfseq.evaluation import last_step_output
    from tfseq.io import atomic_directory, partial_path, write_json_atomic
    from tfseq.models.builders import build_model, carry_optimizer_state, fixed_features_model, share_network_parts
    from tfseq.plots import plot_confusion_matrices, plot_training_curves
    from tfseq.run import DataContract, save_run
    from tfseq.training.defaults import (
        NETWORK_EVIDENCE,
        NETWORK_SHARE,
        TRAINED_AGAIN,
        default_spec,
        is_small,
        training_budget,
    )
    from tfseq.training.distribute import describe_strategy, is_chief, make_strategy
    from tfseq.training.fit import fit

    if train.y is None or (val is not None and val.y is None):
        raise InputError("Received sequences without targets; expected targets to train on.")
    horizon = int(train.y.shape[1]) if task == "forecast" else 1
    budget = training_budget(len(train) if streamed is None else streamed.train_sequences, train.steps)
    epochs, patience = epochs or budget[0], patience or budget[1]
    overrides = dict(spec_overrides or {})
    spec = default_spec(task, num_classes=len(train.class_names or ()) or 2, horizon=horizon, steps=train.steps,
                        variable_length=_variable_length(train, val, streamed),
                        sequences=len(train) if streamed is None else None,  # out of core: no random features
                        streaming={**overrides, **(spec_changes or {})}.get("streaming") is True)
    if "units" in overrides and isinstance(overrides["units"], list):
        overrides["units"] = tuple(overrides["units"])
    try:
        spec = spec.replace(**{**overrides, **(spec_changes or {})})
    except TypeError as exc:
        raise InputError(f"Received an unknown model setting ({exc}); expected ModelSpec fields.") from None
    head = spec.heads[0].name
    zero_steps = streamed.zero_steps if streamed is not None else sum(s.zero_steps for s in (train, val) if s)
    if spec.masking:  # real all-zero steps stay data: a step flag marks the padding
        train, val, streamed = flag_padding_of(train, val, streamed)
    assert train.y is not None and (val is None or val.y is not None)  # checked above; the flag keeps them
    if streamed is not None and (spec.streaming or task not in ("binary", "multiclass", "regression")):
        raise InputError("Received an out-of-core run of a streaming model or a forecast; expected a model with "
                         "one answer per sequence out of core (train the others in memory).",
                         arguments=("out_of_core",))
    distribution = make_strategy(strategy)
    # the choice of start or trained model and the refit run in one process on one replica (under
    # several, the model's variables are per replica; the linear paths stay as fitted at build)
    placement = describe_strategy(distribution)
    single = placement["workers"] == 1 and placement["replicas"] == 1
    with distribution.scope():
        if streamed is None:
            model = build_model(spec, n_features=train.x.shape[-1], steps=train.steps, adapt=train.x,
                                targets=train.y, seed=seed)
        else:
            model = build_model(spec, n_features=len(streamed.model_features), steps=streamed.steps,
                                normalization=streamed.normalization(masking=spec.masking),
                                targets=streamed.target_sample(), seed=seed)
    y_train = train.y.astype("float32") if task in ("regression", "forecast") else train.y
    validation = None if val is None or val.y is None else \
        (val.x, val.y.astype("float32") if task in ("regression", "forecast") else val.y)
    evaluated = val if val is not None else train
    outcome: dict[str, Any] = {}

    def train_and_predict(run_dir: Path) -> tuple[Any, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        if streamed is not None:
            from tfseq.training.streamed import fit_streamed, predict_streamed

            history = fit_streamed(model, streamed, epochs=epochs, batch_size=batch_size, patience=patience,
                                   run_dir=run_dir, seed=seed, verbose=verbose, strategy=distribution)
            whole = None
            if is_chief():  # the whole validation split, read from the files by this process alone
                targets, output, lengths = predict_streamed(
                    model, streamed, "validation" if streamed.validation_sequences else "train")
                whole = (targets, last_step_output(output, lengths))
        else:
            start = model.get_weights() if spec.linear_skip and validation is not None and single else None
            # in one replica the linear paths' fixed convolutions are computed once, not every step
            twin = fixed_features_model(model, spec) if single else None
            trained = model
            x_fit: Any = train.x
            x_val: Any = None if validation is None else validation[0]
            if twin is not None:
                trained, features = twin
                x_fit = (train.x, features(train.x))
                x_val = None if x_val is None else (x_val, features(x_val))
            history = fit(trained, x_fit, {head: y_train}, validation_data=None if validation is None else
                          (x_val, {head: validation[1]}), epochs=epochs, batch_size=batch_size,
                          patience=patience, run_dir=run_dir, seed=seed, verbose=verbose, strategy=distribution)
            if trained is not model:
                carry_optimizer_state(trained, model)
            whole = None
            if start is not None and validation is not None:
                share_network_parts(model, spec, NETWORK_SHARE)
                outcome["network_share"] = NETWORK_SHARE
                _keep_better_start(model, start, validation[0], {head: validation[1]}, outcome,
                                   evidence=NETWORK_EVIDENCE)
        # every worker predicts: under several workers prediction is a collective step too
        return history, model.predict(evaluated.x, batch_size=1024, verbose=0)[head], whole


    if not is_chief():  # its crash backup lives under the chief's .RUN.partial/.workers/
        train_and_predict(partial_path(Path(out)))
        return {"task": task, "run_dir": Path(out), "chief": False}
    with atomic_directory(Path(out), overwrite=overwrite, resume=True) as tmp:
        history, output, whole = train_and_predict(tmp)
        if outcome.get("linear_fit_only") is False and task in TRAINED_AGAIN and val is not None and \
                val.y is not None and is_small(len(train) + len(val), train.steps):
            # validation chose the epochs (its metrics below are the first network's); the saved
            # network then learns from every sequence given, beside the linear paths refit below
            epochs_chosen = _best_epoch(_curves(tmp / "history.csv", history))
            if verbose:
                print(f"training again on all {len(train) + len(val):,} sequences for the {epochs_chosen} epochs "
                      "validation chose")
            every_x, every_y = np.concatenate([train.x, val.x]), np.concatenate([train.y, val.y]).astype("float32")
            with distribution.scope():
                model = build_model(spec, n_features=train.x.shape[-1], steps=train.steps, adapt=every_x,
                                    targets=every_y, seed=seed)
            fit(model, every_x, {head: every_y}, epochs=epochs_chosen, batch_size=batch_size,
                patience=epochs_chosen + 1, run_dir=tmp / "again", seed=seed, verbose=verbose, strategy=distribution,
                restore_best=False)  # the last epoch's weights: early stopping would restore the lowest training loss
            share_network_parts(model, spec, NETWORK_SHARE)
            shutil.rmtree(tmp / "again", ignore_errors=True)
            outcome["trained_again"] = {"sequences": len(every_x), "epochs": epochs_chosen}
        if spec.linear_skip and streamed is None and val is not None and val.y is not None and single:
            from tfseq.models.builders import refit_linear_paths

            # validation chose the model (its metrics below are the model's before this); the final
            # linear paths then see every sequence given, as the simple baselines do
            refit_linear_paths(model, spec, np.concatenate([train.x, val.x]), np.concatenate([train.y, val.y]))
            outcome["linear_refit_sequences"] = len(train) + len(val)
            # tfseq monitor compares new predictions with these: the saved model's, after the refit
            saved_output = model.predict(evaluated.x, batch_size=1024, verbose=0)[head]
        else:
            saved_output = output
        per_step = output if spec.streaming else None
        output = last_step_output(output, evaluated.lengths)  # a streaming model's answer after each whole sequence
        shutil.rmtree(tmp / ".workers", ignore_errors=True)  # the workers are done once predict returned
        assert evaluated.y is not None  # checked above
        metrics_val = _threshold_metrics(task, evaluated.y, output)
        metrics_whole = metrics_val if whole is None else _threshold_metrics(task, *whole)
        curves = _curves(tmp / "history.csv", history)
        plot_training_curves({spec.name: curves}, tmp / "plots" / "training_curves.png")
        if task in ("binary", "multiclass"):
            plot_confusion_matrices({"validation": metrics_whole["confusion_matrix"]}, train.class_names or [],
                                    tmp / "plots" / "confusion_matrix.png")
        contract = DataContract(
            feature_names=list(train.feature_names), steps=train.steps, task=task,
            class_names=list(train.class_names) if train.class_names else None, threshold=0.5,
            id_col=id_col or "id", time_col=time_col, label_col=label_col, predict_at=predict_at,
            masking=spec.masking, head=head, streaming=spec.streaming, extra={k: v for k, v in (extra or {}).items() if v is not None},
        )
        result = {
            "task": task,
            "class_names": contract.class_names,
            "feature_names": contract.feature_names,
            "steps": train.steps,
            "train_sequences": len(train) if streamed is None else streamed.train_sequences,
            "validation_sequences": (0 if val is None else len(val)) if streamed is None else
            streamed.validation_sequences,
            "model": spec.description,
            "parameters": int(model.count_params()),
            "epochs": len(curves.get("loss", [])),
            "distribution": describe_strategy(distribution),
            "input": _input_record(streamed, batch_size, len(train), 0 if val is None else len(val)),
            **({"step_flag": {"feature": STEP_FLAG, "zero_steps": zero_steps}} if STEP_FLAG in train.feature_names
               else {}),
            **outcome,
            "validation": metrics_whole,
        }
        if per_step is not None:
            result.update(_streaming_metrics(task, evaluated, per_step, tmp / "plots"))
        result.update(_baselines(train, val, task, metrics_val, label_col, seed, tmp / "plots"))
        reference = compute_reference(train.x, train.lengths, contract.feature_names,
                                      output=last_step_output(saved_output, evaluated.lengths), task=task,
                                      class_names=contract.class_names, seed=seed)
        save_run(tmp, model, spec, contract, metrics=result,
                 export_sample=(evaluated.x, evaluated.y, train.x), reference=reference)
        shutil.rmtree(tmp / "checkpoints", ignore_errors=True)  # model.keras holds the best epoch
        write_json_atomic(tmp / "metrics.json", result)
        command = tmp / "command.json"
        if command.is_file():  # the command as given, and the distribution it ran under
            import json

            write_json_atomic(command, {**json.loads(command.read_text()), "distribution": result["distribution"]})
    return {**result, "run_dir": Path(out)}
