"""A search directory's results: one record per trial, trials.csv, the winner, the score plot.

Layout of a search directory ``DIR``::

    DIR/tuning.json        the settings of the search (a re-run must match them)
    DIR/trials.csv         one row per finished trial, rewritten as each trial ends
    DIR/best_spec.json     the winner as a ``tfseq train --config`` file
    DIR/best_trial.json    the winner's score, trial, epochs and full ModelSpec
    DIR/scores.png         score by trial, with the best so far
    DIR/records/           one JSON per finished trial (what trials.csv is made of)
    DIR/keras_tuner/       Keras Tuner's project: oracle state, trial checkpoints
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfseq.errors import InputError
from tfseq.io import write_json_atomic, write_text_atomic
from tfseq.tuning.objective import best_record, is_better
from tfseq.tuning.space import HYPERPARAMETERS

if TYPE_CHECKING:  # tfseq.models.spec is light, but ModelSpec is only needed for annotations here
    from tfseq.models.spec import ModelSpec

#: ModelSpec fields that are ``tfseq train`` flags; the rest go in the config's ``model:`` table.
_TRAIN_FLAG_FIELDS = ("cell", "bidirectional", "units", "dropout", "learning_rate", "precision")
_CSV_FIXED = ("trial", "status", "score", "epochs", "best_epoch", "seconds", "params", "size_mb", "spec")


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


def size_mb(params: int) -> float:
    # float32 weights; the exported TF Lite / ONNX / SavedModel file adds graph overhead on top.
    return params * 4 / 1e6


def budget_problem(params: int, max_params: int | None, max_size_mb: float | None) -> str | None:
    if max_params is not None and params > max_params:
        return f"{params:,} parameters, over max_params {max_params:,}"
    if max_size_mb is not None and size_mb(params) > max_size_mb:
        return f"{size_mb(params):.3f} MB of float32 weights, over max_size_mb {max_size_mb}"
    return None


def record_path(directory: Path, trial_id: str) -> Path:
    return directory / "records" / f"trial_{trial_id}.json"


def read_records(directory: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((directory / "records").glob("trial_*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue  # a record being replaced right now; the next rewrite picks it up
    return sorted(records, key=lambda r: int(r["trial"]))


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
        best = score if best is None or is_better(score, best, direction) else best
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


def write_summary(directory: Path, settings: dict[str, Any]) -> TuningResult:
    """Rewrites trials.csv, best_spec.json, best_trial.json and scores.png from the records."""
    from tfseq.models.spec import ModelSpec

    records = read_records(directory)
    write_trials_csv(directory, records)
    objective, direction = settings["objective"], settings["direction"]
    result = TuningResult(directory=directory, objective=objective, direction=direction, best_spec=None,
                          trials=records)
    best = best_record(records, direction)
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
    return write_summary(directory, json.loads(path.read_text()))


def check_settings(directory: Path, settings: dict[str, Any], overwrite: bool) -> None:
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
