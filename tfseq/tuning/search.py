"""The search: Keras Tuner over :class:`~tfseq.models.spec.ModelSpec`, with results users can act on.

(Objectives: :mod:`tfseq.tuning.objective`; the search directory and its results files:
:mod:`tfseq.tuning.results`; Keras Tuner's classes: :mod:`tfseq.tuning.tuners`.)

Re-running the same search on the same directory continues it: finished trials
are kept and the trial that was running when the process died starts again.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import numpy as np

from tfseq.checks import positive_int, positive_number
from tfseq.data.sequences import infer_task, num_classes
from tfseq.errors import InputError
from tfseq.io import write_json_atomic
from tfseq.tuning.distributed import env_is_worker
from tfseq.tuning.objective import parse_objective
from tfseq.tuning.results import TuningResult, budget_problem, check_settings, write_summary
from tfseq.tuning.space import SearchSpace

if TYPE_CHECKING:  # tfseq.models starts Keras; imported where needed instead
    from tfseq.data.sequences import SequenceSet
    from tfseq.data.streamed import StreamedData
    from tfseq.models.spec import ModelSpec

__all__ = ["TUNERS", "tune"]

TUNERS = ("random", "bayesian", "hyperband")


def _default_base(task: str, data: SequenceSet) -> ModelSpec:
    from tfseq.training.defaults import default_spec

    horizon = int(np.asarray(data.y).shape[1]) if task == "forecast" else 1
    return default_spec(task, num_classes=num_classes(data), horizon=horizon, steps=data.steps,
                        variable_length=data.padded)


def _targets(data: SequenceSet, task: str) -> np.ndarray:
    y = np.asarray(data.y)
    return y.astype("float32") if task in ("regression", "forecast") else y


def _model_metric_names(
    base: ModelSpec, data: SequenceSet, task: str, normalization: tuple[np.ndarray, np.ndarray] | None
) -> list[str]:
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
    streamed: StreamedData | None = None,
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
        streamed: Tune out of core on this scanned dataset (:func:`tfseq.data.streamed.scan_dataset`):
            every trial reads its files as ``tfseq train --out-of-core`` does; ``train`` and
            ``validation`` are then samples of its splits, used only to check the settings.

    Returns:
        The :class:`TuningResult`; ``best_spec`` is None if no trial finished.

    Raises:
        InputError: for an unknown tuner, a zero budget, an objective the model
            does not report, a budget no architecture in the space fits,
            settings that differ from an earlier search in ``directory``, or
            empty data.

    Examples:
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

    from tfseq.data.streamed import flag_padding_of

    if base.masking:  # in memory or out of core, as train does
        train, validation, streamed = flag_padding_of(train, validation, streamed)
    assert train.y is not None  # checked above; the flag keeps it
    from tfseq.models.builders import build_model, normalization_stats

    normalization = normalization_stats(train.x, masking=base.masking) if streamed is None else \
        streamed.normalization(masking=base.masking)
    reported = _model_metric_names(base, train, task, normalization)
    if name.removeprefix("val_") not in reported:
        names = ", ".join(("val_" if validation is not None else "") + m for m in reported)
        raise InputError(f"Received an invalid value for argument objective, expected a metric the model "
                         f"reports ({names}), got {name!r}.")
    if max_params is not None or max_size_mb is not None:
        smallest = space.smallest_spec(base)
        params = build_model(smallest, n_features=train.x.shape[-1], steps=train.steps).count_params()
        problem = budget_problem(int(params), max_params, max_size_mb)
        if problem:
            raise InputError(f"Received an edge budget no architecture in the search space fits: the smallest, "
                             f"{smallest.name}, has {problem}.")

    settings = {
        "tuner": tuner, "objective": name, "direction": direction, "space": space.get_config(),
        "base_spec": base.get_config(), "epochs": epochs, "patience": patience, "max_params": max_params,
        "max_size_mb": max_size_mb, "task": task, "seed": seed, "steps": train.steps,
        "features": list(train.feature_names),
        **({} if streamed is None else {"out_of_core": {"data": str(streamed.source), "split_seed": streamed.seed,
                                                        "val_fraction": streamed.val_fraction}}),
    }
    check_settings(directory, settings, overwrite)
    if overwrite:
        import shutil

        for stale in ("records", "keras_tuner"):
            shutil.rmtree(directory / stale, ignore_errors=True)
        for stale in ("trials.csv", "best_spec.json", "best_trial.json", "scores.png"):
            (directory / stale).unlink(missing_ok=True)
    (directory / "records").mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / "tuning.json", settings)

    deadline = None if max_seconds is None else time.time() + float(max_seconds)
    from tfseq.tuning.tuners import CallLimit, Recording, SpecHyperModel, make_tuner

    hypermodel = SpecHyperModel(space, base, n_features=int(train.x.shape[-1]), steps=train.steps,
                                normalization=normalization, seed=seed, objective=name, direction=direction,
                                patience=patience, deadline=deadline,
                                targets=(_targets(train, task) if streamed is None else streamed.target_sample())
                                if task in ("regression", "forecast") else None, streamed=streamed)
    recording = Recording(objective=name, direction=direction, records_dir=directory, max_params=max_params,
                          max_size_mb=max_size_mb, trials_per_call=trials_per_call)
    search = make_tuner(tuner, hypermodel=hypermodel, recording=recording, max_trials=int(max_trials),
                        epochs=int(epochs), seed=seed, directory=directory, deadline=deadline)
    head = base.heads[0].name
    fit_y = {head: _targets(train, task)}
    sample_weight = None
    if task in ("binary", "multiclass") and streamed is None:  # streamed batches carry their weights
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
    except CallLimit:
        finished = False
    finally:
        if not env_is_worker():
            # Keras Tuner saves the oracle before it drops the ended trial from its ongoing
            # trials; without this save a re-run would run the last trial again.
            search.oracle.save()
    result = write_summary(directory, settings)
    result.finished = finished
    return result


class _quiet_tuner:
    """Keras Tuner prints a block per trial; keep it unless the caller asked for silence."""

    def __init__(self, verbose: int | str) -> None:
        self.silent = verbose in (0, "0")

    def __enter__(self) -> _quiet_tuner:
        if self.silent:
            import contextlib

            self._redirect = contextlib.redirect_stdout(io.StringIO())
            self._redirect.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> Literal[False]:
        if self.silent:
            self._redirect.__exit__(kind, error, traceback)
        return False
