"""Keras Tuner's classes, specialised for tfseq: the hypermodel over ModelSpecs, oracles that stop at
a wall-clock deadline, and tuners that write one record per trial and keep memory flat.

This module imports ``keras_tuner`` (and Keras): :func:`tfseq.tuning.tune` imports it only when a
search runs, so the command line can check its flags first.
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import keras_tuner as kt
import numpy as np

from tfseq.errors import InputError
from tfseq.io import write_json_atomic
from tfseq.tuning.distributed import env_is_worker
from tfseq.tuning.results import budget_problem, read_records, record_path, size_mb, write_trials_csv
from tfseq.tuning.space import HYPERPARAMETERS, SearchSpace, spec_from_values

if TYPE_CHECKING:
    from keras_tuner import Oracle as _Oracle  # the mixins below extend an oracle's and a tuner's methods
    from keras_tuner import Tuner as _Tuner

    from tfseq.data.streamed import StreamedData
    from tfseq.models.spec import ModelSpec
else:
    _Oracle = _Tuner = object


class CallLimit(Exception):
    """Ends a call of :func:`tfseq.tuning.tune` after ``trials_per_call`` trials."""


class DeadlineCallback(keras.callbacks.Callback):
    """Stops training at the end of the epoch in which the search's wall-clock deadline passed."""

    def __init__(self, deadline: float | None) -> None:
        super().__init__()
        self.deadline = deadline

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.deadline is not None and time.time() >= self.deadline:
            self.model.stop_training = True


class SpecHyperModel(kt.HyperModel):
    """Builds the ModelSpec a trial's hyperparameters describe; fits with the trial's batch size."""

    def __init__(
        self,
        space: SearchSpace,
        base: ModelSpec,
        *,
        n_features: int,
        steps: int | None,
        normalization: tuple[np.ndarray, np.ndarray] | None,
        seed: int | None,
        objective: str,
        direction: str,
        patience: int,
        deadline: float | None,
        targets: np.ndarray | Mapping[str, np.ndarray] | None = None,
        streamed: StreamedData | None = None,
    ) -> None:
        super().__init__(name="tfseq_spec")
        self.streamed = streamed  # out of core: trials read the dataset's files, not x
        self.space, self.base = space, base
        self.n_features, self.steps, self.normalization, self.targets = n_features, steps, normalization, targets
        self.seed, self.objective, self.direction = seed, objective, direction
        self.patience, self.deadline = patience, deadline

    def space_values(self, hp: kt.HyperParameters) -> dict[str, Any]:
        values = {k: v for k, v in hp.values.items() if not k.startswith("tuner/")}
        layers = int(values.get("layers", 1))
        values["units"] = [int(values[f"units_{i}"]) for i in range(layers) if f"units_{i}" in values]
        if "bidirectional" in values:
            values["bidirectional"] = bool(values["bidirectional"])
        return {k: values[k] for k in HYPERPARAMETERS if k in values}

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        from tfseq.models.builders import build_model

        values = self.space.declare(hp)
        spec = spec_from_values(self.base, values)
        return build_model(spec, n_features=self.n_features, steps=self.steps, normalization=self.normalization,
                           targets=self.targets, seed=self.seed)

    def fit(
        self,
        hp: kt.HyperParameters,
        model: keras.Model,
        x: np.ndarray,
        y: Any,
        *,
        sample_weight: np.ndarray | None = None,
        validation_data: tuple[Any, ...] | None = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        epochs: int = 1,
        initial_epoch: int = 0,
        verbose: int | str = 0,
        **kwargs: Any,
    ) -> keras.callbacks.History:
        from tfseq.training.batches import make_dataset, make_validation_dataset

        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        stopping = keras.callbacks.EarlyStopping(monitor=self.objective, mode=self.direction, patience=self.patience)
        batch = int(hp.get("batch_size"))
        if self.streamed is not None:
            from tfseq.training.streamed import make_streamed_dataset

            head = model.output_names[0]
            train = make_streamed_dataset(self.streamed, "train", batch_size=batch, head=head, shuffle=True,
                                          seed=self.seed)
            if validation_data is not None:
                validation_data = make_streamed_dataset(self.streamed, "validation", batch_size=batch, head=head,
                                                        shuffle=False)
        else:
            train = make_dataset(x, y, batch_size=batch, sample_weight=sample_weight)
            if validation_data is not None:
                validation_data = make_validation_dataset(validation_data, batch_size=batch)
        return model.fit(
            train,
            validation_data=validation_data, epochs=epochs, initial_epoch=initial_epoch,
            callbacks=list(callbacks) + [stopping, DeadlineCallback(self.deadline)], shuffle=False,
            verbose=verbose,
        )


class _Deadline(_Oracle):
    """Oracle mixin: stops handing out trials once the wall-clock budget is spent (the chief's
    oracle decides this in distributed mode). Set ``deadline`` (a ``time.time()``) after building."""

    deadline: float | None = None

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        if self.deadline is not None and time.time() >= self.deadline:
            return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
        return super().populate_space(trial_id)


class RandomSearchOracle(_Deadline, kt.oracles.RandomSearchOracle):
    """Keras Tuner's random search, stopping at the search's deadline."""


class BayesianOptimizationOracle(_Deadline, kt.oracles.BayesianOptimizationOracle):
    """Keras Tuner's Bayesian optimisation, stopping at the search's deadline."""


class HyperbandOracle(_Deadline, kt.oracles.HyperbandOracle):
    """Keras Tuner's Hyperband, stopping at the search's deadline."""


@dataclass
class Recording:
    """What a tuner records about its trials, and its limits."""

    objective: str
    direction: str
    records_dir: Path
    max_params: int | None = None
    max_size_mb: float | None = None
    trials_per_call: int | None = None


class _RecordingTuner(_Tuner):
    """Tuner mixin: writes one record per finished trial and clears the Keras session after each."""

    recording: Recording
    hypermodel: SpecHyperModel
    _params: int | None
    _pending: tuple[str, keras.callbacks.History | None, float, str | None] | None

    def _try_build(self, hp: kt.HyperParameters) -> keras.Model:
        model = super()._try_build(hp)
        self._params = int(model.count_params())
        problem = budget_problem(self._params, self.recording.max_params, self.recording.max_size_mb)
        if problem:
            raise kt.errors.FailedTrialError(f"Skipped: the model has {problem}.")
        return model

    def run_trial(self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any) -> Any:
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

    def _record(
        self,
        trial: kt.engine.trial.Trial,
        status: str,
        history: keras.callbacks.History | None,
        seconds: float,
        error: str | None,
    ) -> None:
        recording = self.recording
        values = self.hypermodel.space_values(trial.hyperparameters)
        record: dict[str, Any] = {
            "trial": trial.trial_id, "status": status, "score": None, "epochs": 0, "best_epoch": None,
            "seconds": round(seconds, 2), "params": self._params,
            "size_mb": None if self._params is None else round(size_mb(self._params), 4),
            "values": values, "tuner_id": self.tuner_id, "error": error,
        }
        try:
            spec = spec_from_values(self.hypermodel.base, values)
            record["spec"], record["spec_config"] = spec.name, spec.get_config()
        except InputError:
            pass
        if history is not None:
            curve = [float(v) for v in history.history.get(recording.objective, [])]
            finite = [v for v in curve if math.isfinite(v)]
            if finite:
                best = max(finite) if recording.direction == "max" else min(finite)
                record["score"] = best
                record["best_epoch"] = int(history.epoch[curve.index(best)]) + 1
            record["epochs"] = len(history.epoch)
            if not finite:
                record["status"] = "failed"
        write_json_atomic(record_path(recording.records_dir, trial.trial_id), record)
        # An append-only log per process: every run of every trial, for audits of
        # resumed and distributed searches (a record file keeps only the last run).
        with open(recording.records_dir / "records" / f"runs_{self.tuner_id}.jsonl", "a") as log:
            log.write(json.dumps({"trial": trial.trial_id, "status": record["status"],
                                  "score": record["score"], "pid": os.getpid()}) + "\n")

    def on_trial_end(self, trial: kt.engine.trial.Trial) -> None:
        super().on_trial_end(trial)
        if not env_is_worker():
            # Keras Tuner saved the oracle before dropping this trial from its ongoing
            # trials; a kill before the next save would otherwise run it again.
            self.oracle.save()
        pending = getattr(self, "_pending", None) or ("failed", None, 0.0, None)
        self._pending = None
        self._record(trial, *pending)
        self._ended = getattr(self, "_ended", 0) + 1
        write_trials_csv(self.recording.records_dir, read_records(self.recording.records_dir))

    def pre_create_trial(self) -> None:
        limit = self.recording.trials_per_call
        if limit is not None and getattr(self, "_ended", 0) >= limit:
            raise CallLimit()
        super().pre_create_trial()


class SequenceTuner(_RecordingTuner, kt.Tuner):
    """Keras Tuner's tuner over a given oracle (random search, Bayesian), recording each trial."""

    def __init__(self, *, recording: Recording, **kwargs: Any) -> None:
        self.recording = recording
        super().__init__(**kwargs)


class SequenceHyperband(_RecordingTuner, kt.Hyperband):
    """Keras Tuner's Hyperband tuner over a given oracle, recording each trial."""

    def __init__(self, *, recording: Recording, **kwargs: Any) -> None:
        self.recording = recording
        kt.Tuner.__init__(self, **kwargs)  # Hyperband's own __init__ would build another oracle


def make_tuner(kind: str, *, hypermodel: SpecHyperModel, recording: Recording, max_trials: int, epochs: int,
               seed: int | None, directory: Path, deadline: float | None, overwrite: bool = False) -> kt.Tuner:
    """The tuner of ``kind`` (``random``, ``bayesian`` or ``hyperband``) over ``hypermodel``."""
    common = dict(objective=kt.Objective(recording.objective, recording.direction), seed=seed,
                  max_consecutive_failed_trials=max_trials + 1)
    if kind == "random":
        oracle, tuner = RandomSearchOracle(max_trials=max_trials, **common), SequenceTuner
    elif kind == "bayesian":
        oracle, tuner = BayesianOptimizationOracle(max_trials=max_trials, **common), SequenceTuner
    else:
        oracle = HyperbandOracle(max_epochs=epochs, factor=3, hyperband_iterations=1, **common)
        oracle.max_trials = max_trials  # Hyperband has no trial limit of its own
        tuner = SequenceHyperband
    oracle.deadline = deadline
    return tuner(recording=recording, oracle=oracle, hypermodel=hypermodel, directory=str(directory),
                 project_name="keras_tuner", overwrite=overwrite)
