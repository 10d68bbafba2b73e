"""The search: Keras Tuner over :class:`~tfseq.models.spec.ModelSpec`, with results users can act on.

Layout of a search directory ``DIR``::

    DIR/tuning.json        the settings of the search (a re-run must match them)
    DIR/trials.csv         one row per finished trial, rewritten as each trial ends
    DIR/best_spec.json     the winner as a ``tfseq train --config`` file
    DIR/best_trial.json    the winner's score, trial, epochs and full ModelSpec
    DIR/scores.png         score by trial, with the best so far
    DIR/records/           one JSON per finished trial (what trials.csv is made of)
    DIR/keras_tuner/       Keras Tuner's project: oracle state, trial checkpoints

Re-running the same search on the same ``DIR`` continues it: finished trials
are kept and the trial that was running when the process died starts again.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfseq.checks import positive_int, positive_number
from tfseq.data.sequences import infer_task, num_classes
from tfseq.errors import InputError
from tfseq.io import write_json_atomic, write_text_atomic
from tfseq.tuning.space import HYPERPARAMETERS, SearchSpace, spec_from_values

if TYPE_CHECKING:  # tfseq.models starts Keras; imported where needed instead
    from tfseq.data.sequences import SequenceSet
    from tfseq.models.spec import ModelSpec

__all__ = [
    "TUNERS",
    "TuningResult",
    "parse_objective",
    "tune",
    "load_result",
    "best_train_config",
]

TUNERS = ("random", "bayesian", "hyperband")
_MAXIMISE = ("auc", "accuracy", "precision", "recall", "f1", "r2")
_MINIMISE = ("loss", "mae", "mse", "rmse", "error")
#: ModelSpec fields that are ``tfseq train`` flags; the rest go in the config's ``model:`` table.
_TRAIN_FLAG_FIELDS = ("cell", "bidirectional", "units", "dropout", "learning_rate", "precision")
_CSV_FIXED = ("trial", "status", "score", "epochs", "best_epoch", "seconds", "params", "size_mb", "spec")


def parse_objective(objective: str) -> tuple[str, str]:
    """Splits ``"val_auc"`` or ``"val_auc:max"`` into ``(name, "max" | "min")``.

    Without an explicit direction, AUC, accuracy, precision, recall, F1 and R2
    are maximised and losses and errors minimised.

    Raises:
        InputError: for an empty name, an unknown direction or a metric whose
            direction cannot be inferred.
    """
    text = str(objective or "").strip()
    name, _, direction = text.partition(":")
    name, direction = name.strip(), direction.strip().lower()
    if not name:
        raise InputError(f"Received an invalid value for argument objective, expected a metric name such as "
                         f"val_auc or val_loss, got {objective!r}.")
    if direction:
        if direction not in ("max", "min"):
            raise InputError(f"Received an invalid value for argument objective, expected NAME, NAME:max or "
                             f"NAME:min, got {objective!r}.")
        return name, direction
    base = name[4:] if name.startswith("val_") else name
    if any(base == m or base.endswith("_" + m) for m in _MAXIMISE):
        return name, "max"
    if any(base == m or base.endswith("_" + m) for m in _MINIMISE):
        return name, "min"
    raise InputError(f"Received an objective {name!r} whose direction is unknown; expected {name}:max or {name}:min.")


@dataclass
class TuningResult:
    """What a search found.

    Attributes:
        directory: The search directory.
        objective: Objective name, e.g. ``val_auc``.
        direction: ``"max"`` or ``"min"``.
        best_spec: The winning architecture (None when no trial finished).
        best_values: The winner's hyperparameters, including ``batch_size``.
        best_score: The winner's best objective value over its epochs.
        best_epoch: The epoch at which the winner scored best (1-based).
        best_trial: The winner's trial id.
        trials: One record per finished trial, in trial order (as trials.csv).
    """

    directory: Path
    objective: str
    direction: str
    best_spec: ModelSpec | None
    best_values: dict[str, Any] = field(default_factory=dict)
    best_score: float | None = None
    best_epoch: int | None = None
    best_trial: str | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = True

    @property
    def completed(self) -> int:
        return sum(1 for r in self.trials if r["status"] == "completed")


def _default_base(task: str, data: SequenceSet) -> ModelSpec:
    from tfseq.training.defaults import default_spec

    horizon = int(np.asarray(data.y).shape[1]) if task == "forecast" else 1
    return default_spec(task, num_classes=num_classes(data), horizon=horizon)


def _targets(data: SequenceSet, task: str) -> np.ndarray:
    y = np.asarray(data.y)
    return y.astype("float32") if task in ("regression", "forecast") else y


def _size_mb(params: int) -> float:
    # float32 weights; the exported TF Lite / ONNX / SavedModel file adds graph overhead on top.
    return params * 4 / 1e6


def _budget_problem(params: int, max_params: int | None, max_size_mb: float | None) -> str | None:
    if max_params is not None and params > max_params:
        return f"{params:,} parameters, over max_params {max_params:,}"
    if max_size_mb is not None and _size_mb(params) > max_size_mb:
        return f"{_size_mb(params):.3f} MB of float32 weights, over max_size_mb {max_size_mb}"
    return None


def _model_metric_names(base: ModelSpec, data: SequenceSet, task: str, normalization) -> list[str]:
    """The metric names the model reports, found by evaluating a tiny model on two sequences."""
    import keras

    from tfseq.models.builders import build_model

    spec = base.replace(units=(2,), bidirectional=False, pooling="last", recurrent_dropout=0.0)
    model = build_model(spec, n_features=data.x.shape[-1], steps=data.steps, normalization=normalization)
    y = _targets(data, task)[:2]
    logs = model.evaluate(data.x[:2], {spec.heads[0].name: y} if len(spec.heads) == 1 else y,
                          return_dict=True, verbose=0)
    del model
    keras.backend.clear_session()
    return sorted(logs)


def _record_path(directory: Path, trial_id: str) -> Path:
    return directory / "records" / f"trial_{trial_id}.json"


def _read_records(directory: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((directory / "records").glob("trial_*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue  # a record being replaced right now; the next rewrite picks it up
    return sorted(records, key=lambda r: int(r["trial"]))


def _is_better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "max" else a < b


def _best_record(records: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    best = None
    for record in records:
        score = record.get("score")
        if record["status"] != "completed" or score is None or not math.isfinite(score):
            continue
        if best is None or _is_better(score, best["score"], direction):
            best = record
    return best


def write_trials_csv(directory: Path, records: list[dict[str, Any]]) -> Path:
    """Writes ``trials.csv``: one row per finished trial, hyperparameters after the fixed columns."""
    columns = list(_CSV_FIXED) + [h for h in HYPERPARAMETERS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = {k: record.get(k) for k in _CSV_FIXED}
        for name in HYPERPARAMETERS:
            value = record.get("values", {}).get(name)
            row[name] = "x".join(str(u) for u in value) if name == "units" and value else value
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    path = Path(directory) / "trials.csv"
    write_text_atomic(path, buffer.getvalue())
    return path


def plot_scores(records: list[dict[str, Any]], path: Path, *, objective: str, direction: str) -> Path:
    """Score of each completed trial (dots) and the best so far (line), by trial."""
    from tfseq.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    done = [r for r in records if r["status"] == "completed" and r.get("score") is not None
            and math.isfinite(r["score"])]
    trials = [int(r["trial"]) for r in done]
    scores = [r["score"] for r in done]
    best, running = None, []
    for score in scores:
        best = score if best is None or _is_better(score, best, direction) else best
        running.append(best)
    ax.plot(trials, scores, "o", alpha=0.6, label="trial")
    ax.step(trials, running, where="post", color="C3", label=f"best so far ({direction})")
    skipped = [int(r["trial"]) for r in records if r["status"] != "completed"]
    if skipped and scores:
        ax.plot(skipped, [min(scores) if direction == "max" else max(scores)] * len(skipped), "x",
                color="grey", label="over budget / failed")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.set_title(f"{objective} by trial")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


def best_train_config(spec: ModelSpec, batch_size: int) -> dict[str, Any]:
    """The ``tfseq train --config`` mapping of a spec: flag keys, and the other fields under ``model``.

    Heads are left out: ``tfseq train`` derives them from the data's task.
    """
    config = spec.get_config()
    flags = {k: config.pop(k) for k in _TRAIN_FLAG_FIELDS}
    config.pop("heads")
    return {**flags, "batch_size": int(batch_size), "model": config}


def _write_summary(directory: Path, settings: dict[str, Any]) -> TuningResult:
    """Rewrites trials.csv, best_spec.json, best_trial.json and scores.png from the records."""
    from tfseq.models.spec import ModelSpec

    records = _read_records(directory)
    write_trials_csv(directory, records)
    objective, direction = settings["objective"], settings["direction"]
    result = TuningResult(directory=directory, objective=objective, direction=direction, best_spec=None,
                          trials=records)
    best = _best_record(records, direction)
    if records:
        plot_scores(records, directory / "scores.png", objective=objective, direction=direction)
    if best is None:
        return result
    spec = ModelSpec.from_config(best["spec_config"])
    result.best_spec = spec
    result.best_values = dict(best["values"])
    result.best_score = float(best["score"])
    result.best_epoch = int(best["best_epoch"])
    result.best_trial = str(best["trial"])
    write_json_atomic(directory / "best_spec.json", best_train_config(spec, best["values"]["batch_size"]))
    write_json_atomic(directory / "best_trial.json", {
        "trial": best["trial"], "objective": objective, "direction": direction, "score": best["score"],
        "best_epoch": best["best_epoch"], "epochs": best["epochs"], "params": best["params"],
        "size_mb": best["size_mb"], "values": best["values"], "spec": best["spec_config"],
    })
    return result


def load_result(directory: Path) -> TuningResult:
    """Reads the results of a search directory (finished, interrupted or running).

    Raises:
        InputError: if ``directory`` holds no search.
    """
    directory = Path(directory)
    path = directory / "tuning.json"
    if not path.is_file():
        raise InputError(f"{directory}: not a tfseq search directory (no tuning.json).")
    return _write_summary(directory, json.loads(path.read_text()))


def _settings_check(directory: Path, settings: dict[str, Any], overwrite: bool) -> None:
    path = directory / "tuning.json"
    if overwrite or not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    for key, value in settings.items():
        if old.get(key) != json.loads(json.dumps(value)):
            raise InputError(
                f"{directory}: holds a search with another {key} ({old.get(key)!r}, now {value!r}); "
                "re-run with the same settings to continue it, or choose another directory or overwrite."
            )


class _CallLimit(Exception):
    """Ends a call of :func:`tune` after ``trials_per_call`` trials."""


def _make_tuner(kind: str, *, hypermodel, objective, direction, max_trials, epochs, seed, directory,
                overwrite, deadline, budget, records_dir, trials_per_call=None):
    """Builds the Keras Tuner tuner; classes are made here so keras_tuner loads only when searching."""
    import keras
    import keras_tuner as kt

    class _Recording:
        """Writes one record per finished trial and clears the Keras session after each."""

        def _try_build(self, hp):
            model = super()._try_build(hp)
            self._params = int(model.count_params())
            problem = _budget_problem(self._params, *budget)
            if problem:
                raise kt.errors.FailedTrialError(f"Skipped: the model has {problem}.")
            return model

        def run_trial(self, trial, *args, **kwargs):
            self._params, started = None, time.perf_counter()
            status, history, error = "failed", None, None
            try:
                results = super().run_trial(trial, *args, **kwargs)
                history = results[0] if isinstance(results, list) else results
                status = "completed"
                return results
            except kt.errors.FailedTrialError as exc:
                status, error = "over_budget", str(exc)
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
                raise
            finally:
                # Recorded in on_trial_end, once the oracle has the result: a record never
                # exists for a trial that a re-run would run again.
                self._pending = (status, history, time.perf_counter() - started, error)
                keras.backend.clear_session()
                gc.collect()

        def _record(self, trial, status, history, seconds, error):
            values = hypermodel.space_values(trial.hyperparameters)
            record: dict[str, Any] = {
                "trial": trial.trial_id, "status": status, "score": None, "epochs": 0, "best_epoch": None,
                "seconds": round(seconds, 2), "params": self._params,
                "size_mb": None if self._params is None else round(_size_mb(self._params), 4),
                "values": values, "tuner_id": self.tuner_id, "error": error,
            }
            try:
                spec = spec_from_values(hypermodel.base, values)
                record["spec"], record["spec_config"] = spec.name, spec.get_config()
            except InputError:
                pass
            if history is not None:
                curve = [float(v) for v in history.history.get(objective, [])]
                finite = [v for v in curve if math.isfinite(v)]
                if finite:
                    best = max(finite) if direction == "max" else min(finite)
                    record["score"] = best
                    record["best_epoch"] = int(history.epoch[curve.index(best)]) + 1
                record["epochs"] = len(history.epoch)
                if not finite:
                    record["status"] = "failed"
            write_json_atomic(_record_path(records_dir, trial.trial_id), record)
            # An append-only log per process: every run of every trial, for audits of
            # resumed and distributed searches (a record file keeps only the last run).
            with open(records_dir / "records" / f"runs_{self.tuner_id}.jsonl", "a") as log:
                log.write(json.dumps({"trial": trial.trial_id, "status": record["status"],
                                      "score": record["score"], "pid": os.getpid()}) + "\n")

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            if not env_is_worker():
                # Keras Tuner saved the oracle before dropping this trial from its ongoing
                # trials; a kill before the next save would otherwise run it again.
                self.oracle.save()
            pending = getattr(self, "_pending", None) or ("failed", None, 0.0, None)
            self._pending = None
            self._record(trial, *pending)
            self._ended = getattr(self, "_ended", 0) + 1
            write_trials_csv(records_dir, _read_records(records_dir))

        def pre_create_trial(self):
            if trials_per_call is not None and getattr(self, "_ended", 0) >= trials_per_call:
                raise _CallLimit()
            super().pre_create_trial()

    def limited(oracle_class):
        class Limited(oracle_class):
            # Stops handing out trials once the wall-clock budget is spent; the chief's
            # oracle decides this in distributed mode.
            def populate_space(self, trial_id):
                if deadline is not None and time.time() >= deadline:
                    return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
                return super().populate_space(trial_id)

        Limited.__name__ = oracle_class.__name__
        return Limited

    common = dict(objective=kt.Objective(objective, direction), seed=seed,
                  max_consecutive_failed_trials=max_trials + 1)
    if kind == "random":
        oracle = limited(kt.oracles.RandomSearchOracle)(max_trials=max_trials, **common)
        base = kt.Tuner
    elif kind == "bayesian":
        oracle = limited(kt.oracles.BayesianOptimizationOracle)(max_trials=max_trials, **common)
        base = kt.Tuner
    else:
        oracle = limited(kt.oracles.HyperbandOracle)(max_epochs=epochs, factor=3, hyperband_iterations=1,
                                                     **common)
        oracle.max_trials = max_trials  # Hyperband has no trial limit of its own
        base = kt.Hyperband

    class SequenceTuner(_Recording, base):
        def __init__(self, **kwargs):
            kt.Tuner.__init__(self, **kwargs)  # Hyperband's own __init__ would build another oracle

    return SequenceTuner(oracle=oracle, hypermodel=hypermodel, directory=str(directory),
                         project_name="keras_tuner", overwrite=overwrite)


def _make_hypermodel(space: SearchSpace, base: ModelSpec, *, n_features, steps, normalization, seed,
                     objective, direction, patience, deadline, targets=None):
    import keras
    import keras_tuner as kt

    from tfseq.models.builders import build_model
    from tfseq.training.batches import make_dataset, make_validation_dataset

    class _Deadline(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if deadline is not None and time.time() >= deadline:
                self.model.stop_training = True

    class SpecHyperModel(kt.HyperModel):
        """Builds the ModelSpec a trial's hyperparameters describe; fits with the trial's batch size."""

        def __init__(self):
            super().__init__(name="tfseq_spec")
            self.space, self.base = space, base

        def space_values(self, hp) -> dict[str, Any]:
            values = {k: v for k, v in hp.values.items() if not k.startswith("tuner/")}
            layers = int(values.get("layers", 1))
            values["units"] = [int(values[f"units_{i}"]) for i in range(layers) if f"units_{i}" in values]
            if "bidirectional" in values:
                values["bidirectional"] = bool(values["bidirectional"])
            return {k: values[k] for k in HYPERPARAMETERS if k in values}

        def build(self, hp):
            values = self.space.declare(hp)
            spec = spec_from_values(self.base, values)
            return build_model(spec, n_features=n_features, steps=steps, normalization=normalization,
                               targets=targets, seed=seed)

        def fit(self, hp, model, x, y, *, sample_weight=None, validation_data=None, callbacks=(),
                epochs=1, initial_epoch=0, verbose=0, **kwargs):
            if seed is not None:
                keras.utils.set_random_seed(seed)
            stopping = keras.callbacks.EarlyStopping(monitor=objective, mode=direction, patience=patience)
            batch = int(hp.get("batch_size"))
            if validation_data is not None:
                validation_data = make_validation_dataset(validation_data, batch_size=batch)
            return model.fit(
                make_dataset(x, y, batch_size=batch, sample_weight=sample_weight),
                validation_data=validation_data, epochs=epochs, initial_epoch=initial_epoch,
                callbacks=list(callbacks) + [stopping, _Deadline()], shuffle=False, verbose=verbose,
            )

    return SpecHyperModel()


def tune(
    train: SequenceSet,
    validation: SequenceSet | None,
    directory: Path,
    *,
    space: SearchSpace | None = None,
    tuner: str = "random",
    objective: str = "val_loss",
    max_trials: int = 10,
    max_seconds: float | None = None,
    epochs: int = 10,
    patience: int = 3,
    max_params: int | None = None,
    max_size_mb: float | None = None,
    task: str | None = None,
    base_spec: ModelSpec | None = None,
    seed: int | None = 0,
    overwrite: bool = False,
    trials_per_call: int | None = None,
    verbose: int | str = 0,
) -> TuningResult:
    """Searches architectures over ``space`` with Keras Tuner; resumable, memory-flat, budget-aware.

    Each trial builds a :class:`ModelSpec` from ``base_spec`` and the trial's
    hyperparameters, trains it with early stopping on the objective and
    class-balanced sample weights, and writes one row to ``DIR/trials.csv``.
    The Keras session is cleared after every trial, so memory stays flat over
    long searches. Calling ``tune`` again on the same ``directory`` with the
    same settings continues the search (a raised ``max_trials`` extends it).

    Distributed search: set ``KERASTUNER_TUNER_ID`` (``chief``, ``tuner0``,
    ``tuner1`` ...), ``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``
    and call ``tune`` with the same arguments and a shared ``directory`` in
    every process; the chief hands out trials and returns when all are done.

    Args:
        train: Training sequences.
        validation: Validation sequences (needed for ``val_*`` objectives).
        directory: The search directory (created; see the module docstring).
        space: What to search; default :class:`SearchSpace()`.
        tuner: ``"random"``, ``"bayesian"`` or ``"hyperband"``.
        objective: Metric to optimise, ``NAME`` or ``NAME:max``/``NAME:min``,
            e.g. ``val_auc``, ``val_recall``, ``val_loss``.
        max_trials: Most trials (including any skipped for the budget).
        max_seconds: Wall-clock budget of this call: no trial starts after
            it, and the running trial stops at its next epoch end.
        epochs: Maximum epochs per trial (Hyperband's ``max_epochs``).
        patience: Early-stopping patience inside a trial, in epochs.
        max_params: Edge budget: trials whose model has more weights are
            skipped (recorded as ``over_budget``).
        max_size_mb: Edge budget on the float32 weight size (4 bytes per
            parameter) in MB.
        task: ``binary``, ``multiclass``, ``regression`` or ``forecast``;
            default inferred from ``train``.
        base_spec: The fields the search does not vary (heads, masking,
            dense layer ...); default ``tfseq train``'s model for ``task``.
        seed: Seed of the oracle, the weights and the shuffles.
        overwrite: Start afresh, deleting an earlier search in ``directory``.
        trials_per_call: Return after this many trials (``result.finished``
            is then False); call again, in a fresh process, to continue. Keras
            keeps some memory of every model it trains (keras-team/keras#17458,
            #20552), so a long search in one process grows; ``tfseq tune``
            restarts its search process every ``--trials-per-process`` trials.
        verbose: Keras progress output inside trials.

    Returns:
        The :class:`TuningResult`; ``best_spec`` is None if no trial finished.

    Raises:
        InputError: for an unknown tuner, a zero budget, an objective the model
            does not report, a budget no architecture in the space fits,
            settings that differ from an earlier search in ``directory``, or
            empty data.

    Example:
        >>> result = tune(train, val, Path("search"), objective="val_auc", max_trials=20,
        ...               space=SearchSpace({"cell": ["lstm", "gru"]}), max_params=50_000)
        >>> result.best_spec.name
        'gru-32'
    """
    directory = Path(directory)
    if tuner not in TUNERS:
        raise InputError(f"Received an invalid value for argument tuner, expected one of {', '.join(TUNERS)}, "
                         f"got {tuner!r}.")
    positive_int("max_trials", max_trials)
    positive_int("epochs", epochs)
    positive_int("patience", patience)
    positive_int("max_params", max_params, allow_none=True)
    positive_int("trials_per_call", trials_per_call, allow_none=True)
    positive_number("max_seconds", max_seconds)
    positive_number("max_size_mb", max_size_mb)
    name, direction = parse_objective(objective)
    space = space if space is not None else SearchSpace()
    if train.y is None or len(train) == 0:
        raise InputError("Received no labelled training sequences; expected targets to tune on.")
    if name.startswith("val_") and (validation is None or len(validation) == 0):
        raise InputError(f"Received objective {name!r} without validation data; pass validation sequences or use "
                         f"{name[4:]!r}.")
    task = task or infer_task(train)
    base = base_spec if base_spec is not None else _default_base(task, train)
    if len(base.heads) != 1:
        raise InputError(f"Received a base_spec with {len(base.heads)} heads, expected one head to tune on.")

    from tfseq.models.builders import build_model, normalization_stats

    normalization = normalization_stats(train.x, masking=base.masking)
    reported = _model_metric_names(base, train, task, normalization)
    if name.removeprefix("val_") not in reported:
        names = ", ".join(("val_" if validation is not None else "") + m for m in reported)
        raise InputError(f"Received an invalid value for argument objective, expected a metric the model "
                         f"reports ({names}), got {name!r}.")
    if max_params is not None or max_size_mb is not None:
        smallest = space.smallest_spec(base)
        params = build_model(smallest, n_features=train.x.shape[-1], steps=train.steps).count_params()
        problem = _budget_problem(int(params), max_params, max_size_mb)
        if problem:
            raise InputError(f"Received an edge budget no architecture in the search space fits: the smallest, "
                             f"{smallest.name}, has {problem}.")

    settings = {
        "tuner": tuner, "objective": name, "direction": direction, "space": space.get_config(),
        "base_spec": base.get_config(), "epochs": epochs, "patience": patience, "max_params": max_params,
        "max_size_mb": max_size_mb, "task": task, "seed": seed, "steps": train.steps,
        "features": list(train.feature_names),
    }
    _settings_check(directory, settings, overwrite)
    if overwrite:
        import shutil

        for stale in ("records", "keras_tuner"):
            shutil.rmtree(directory / stale, ignore_errors=True)
        for stale in ("trials.csv", "best_spec.json", "best_trial.json", "scores.png"):
            (directory / stale).unlink(missing_ok=True)
    (directory / "records").mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / "tuning.json", settings)

    deadline = None if max_seconds is None else time.time() + float(max_seconds)
    hypermodel = _make_hypermodel(space, base, n_features=int(train.x.shape[-1]), steps=train.steps,
                                  normalization=normalization, seed=seed, objective=name, direction=direction,
                                  patience=patience, deadline=deadline,
                                  targets=_targets(train, task) if task in ("regression", "forecast") else None)
    search = _make_tuner(tuner, hypermodel=hypermodel, objective=name, direction=direction,
                         max_trials=int(max_trials), epochs=int(epochs), seed=seed, directory=directory,
                         overwrite=False, deadline=deadline, budget=(max_params, max_size_mb),
                         records_dir=directory, trials_per_call=trials_per_call)
    head = base.heads[0].name
    fit_y = {head: _targets(train, task)}
    sample_weight = None
    if task in ("binary", "multiclass"):
        from tfseq.training.fit import balanced_sample_weights

        sample_weight = balanced_sample_weights(train.y)
    validation_data = None
    if validation is not None and len(validation):
        validation_data = (validation.x, {head: _targets(validation, task)})
    finished = True
    try:
        with _quiet_tuner(verbose):
            search.search(train.x, fit_y, sample_weight=sample_weight, validation_data=validation_data,
                          epochs=int(epochs), verbose=verbose)
    except _CallLimit:
        finished = False
    finally:
        if not env_is_worker():
            # Keras Tuner saves the oracle before it drops the ended trial from its ongoing
            # trials; without this save a re-run would run the last trial again.
            search.oracle.save()
    result = _write_summary(directory, settings)
    result.finished = finished
    return result


class _quiet_tuner:
    """Keras Tuner prints a block per trial; keep it unless the caller asked for silence."""

    def __init__(self, verbose):
        self.silent = verbose in (0, "0")

    def __enter__(self):
        if self.silent:
            import contextlib

            self._redirect = contextlib.redirect_stdout(io.StringIO())
            self._redirect.__enter__()
        return self

    def __exit__(self, *exc):
        if self.silent:
            self._redirect.__exit__(*exc)
        return False


def env_is_worker() -> bool:
    """True in a distributed search's worker process (``KERASTUNER_TUNER_ID`` set, not ``chief``)."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    return bool(os.environ.get("KERASTUNER_ORACLE_IP")) and tuner_id not in (None, "chief")


def env_is_chief() -> bool:
    """True in a distributed search's chief process (it hands out trials and trains nothing)."""
    return bool(os.environ.get("KERASTUNER_ORACLE_IP")) and os.environ.get("KERASTUNER_TUNER_ID") == "chief"
