"""Explain a RUN's model on long-format data: which features, at which steps, drive its answers.

:func:`explain_run` loads the data as the RUN expects them, samples up to ``max_sequences``
sequences, computes integrated gradients through the Keras model and permutation importance
through the Keras model or any exported artifact (:mod:`tfseq.analysis.explain`,
:mod:`tfseq.analysis.permutation`), and writes
one directory, whole or not at all::

    OUT/explain.json          method, baseline, quadrature points, completeness check, ranked
                              features, per-step totals, permutation importances
    OUT/features.csv          the ranked table of features
    OUT/drivers.csv           each sequence's top drivers (feature@step)
    OUT/attributions.npz      the attributions [sequences, steps, features, targets] and ids
    OUT/plots/attribution_heatmap.png       features x steps, mean |attribution|
    OUT/plots/attribution_heatmap_<class>.png  per class (multiclass)
    OUT/plots/permutation_importance.png    per feature and per window of steps

:func:`sequence_drivers` is the same attribution for ``tfseq predict --explain``. This module is
over 400 lines because it is one step end to end (its checks before TensorFlow starts, the run,
and the report's files); the methods themselves live in :mod:`tfseq.analysis`.
"""

from __future__ import annotations

import difflib
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tfseq.checks import positive_int
from tfseq.errors import InputError

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from tfseq.analysis.explain import Attributions
    from tfseq.analysis.permutation import PermutationImportance
    from tfseq.data.sequences import SequenceSet
    from tfseq.run import DataContract

#: Tasks whose models can be explained (a forecast has no single answer to attribute).
TASKS = ("binary", "multiclass", "regression")
#: What the baseline is, in explain.json and the docs.
BASELINE = ("the training mean of each feature (the model's normalization layer) on every valid step; "
            "padded steps keep the input, so they get zero attribution")


class Explained(NamedTuple):
    """What :func:`explain_run` wrote."""

    out: Path  #: the directory written
    sequences: int  #: sequences explained
    features: list[dict[str, Any]]  #: the ranked table (features.csv), one dict per feature
    completeness: dict[str, Any]  #: max and median relative error, tolerance, within tolerance
    permutation_metric: str  #: auc, accuracy, rmse or mean_abs_change


def explain_targets(contract: DataContract) -> tuple[list[int], list[str]]:
    """The output columns explained and their names: ``p(class 1)`` of a binary model (named by
    its class), every class of a multiclass model, the value of a regression."""
    if contract.task == "binary":
        names = contract.class_names or ["0", "1"]
        return [-1], [names[-1]]
    if contract.task == "multiclass":
        names = contract.class_names or []
        return list(range(len(names))), list(names)
    return [0], ["value"]


def check_explain_inputs(
    run_dir: Path,
    data: Path | pd.DataFrame,
    out: Path | None = None,
    *,
    overwrite: bool = False,
    fill: str | None = None,
    max_sequences: int = 2000,
    ig_steps: int | None = None,
    top: int = 5,
    repeats: int = 3,
    permutation_sequences: int = 1000,
    window: int | None = None,
    artifact: Path | None = None,
) -> tuple[DataContract, SequenceSet, Path]:
    """The checks :func:`explain_run` makes before any model loads, and the data as the RUN expects them.

    Returns:
        ``(contract, sequences, out)``, ``out`` defaulting to ``RUN/explain``.

    Raises:
        InputError: for a non-positive count, a missing RUN or ``artifact``, a forecasting RUN,
            an existing ``out`` (without ``overwrite``), or data without the RUN's columns.
    """
    import pandas as pd

    from tfseq.data.files import read_columns
    from tfseq.run import read_contract
    from tfseq.workflows.scoring import load_for_contract

    for name, value in (("max_sequences", max_sequences), ("top", top), ("repeats", repeats),
                        ("permutation_sequences", permutation_sequences)):
        positive_int(name, value)
    positive_int("ig_steps", ig_steps, allow_none=True)
    positive_int("window", window, allow_none=True)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such RUN directory.", arguments=("run_dir",))
    contract = read_contract(run_dir)
    if contract.task not in TASKS:
        raise InputError(f"{run_dir}: a {contract.task} model; explain takes a {', '.join(TASKS)} model.",
                         arguments=("run_dir",))
    out = Path(out) if out is not None else run_dir / "explain"
    if out.exists() and not overwrite:
        raise InputError(f"{out}: already exists; choose another out or pass overwrite.",
                         arguments=("out", "overwrite"))
    if out.exists() and not (out / "explain.json").is_file():
        # overwrite replaces a whole directory: never a RUN, or anything but an earlier report
        raise InputError(f"{out}: exists and is not an explain report (no explain.json); choose another out.",
                         arguments=("out",))
    if artifact is not None and not Path(artifact).exists():
        raise InputError(f"{artifact}: no such file; expected an exported model for artifact.",
                         arguments=("artifact",))
    columns = [str(c) for c in data.columns] if isinstance(data, pd.DataFrame) else read_columns(data)
    missing = [name for name in contract.columns if name not in columns]
    if missing:
        close = difflib.get_close_matches(missing[0], columns, n=1, cutoff=0.5)
        more = f" (nor {len(missing) - 1} more)" if len(missing) > 1 else ""
        hint = f"; did you mean {close[0]!r}?" if close else "."
        shown = ", ".join(contract.columns[:8]) + (" ..." if len(contract.columns) > 8 else "")
        raise InputError(f"{data}: has no column {missing[0]!r}{more}, a feature the model was trained on; "
                         f"expected every trained feature ({shown}){hint}", arguments=("data",))
    labels = bool(contract.label_col) and contract.label_col in columns
    sequences = load_for_contract(data, contract, labels=labels, fill=fill)
    if len(sequences) < 2:
        raise InputError(f"{data}: holds {len(sequences)} sequence(s); expected at least 2, since permutation "
                         "importance shuffles sequences among each other.", arguments=("data",))
    return contract, sequences, out


def explain_run(
    run_dir: Path,
    data: Path | pd.DataFrame,
    *,
    out: Path | None = None,
    overwrite: bool = False,
    fill: str | None = None,
    max_sequences: int = 2000,
    ig_steps: int | None = None,
    top: int = 5,
    repeats: int = 3,
    permutation_sequences: int = 1000,
    window: int | None = None,
    artifact: Path | None = None,
    seed: int = 0,
    verify: bool = True,
) -> Explained:
    """Explains the model of ``run_dir`` on long-format ``data`` and writes ``out`` (default ``RUN/explain``).

    Integrated gradients attribute each sequence's answer (``p(class 1)`` of a binary model, each
    class's probability of a multiclass one, a regression's value) to every feature at every step,
    from the training mean (see :data:`BASELINE`); permutation importance cross-checks the ranking
    through the Keras model or, with ``artifact``, any exported artifact, scored with the data's
    labels when they are present (AUC, accuracy, RMSE) and by the change of the output otherwise.

    Args:
        run_dir: RUN directory from ``tfseq train``.
        data: Long-format ``.csv`` or ``.parquet`` file with the RUN's columns; the label column
            is optional.
        out: Directory to write (see the module docstring); default ``RUN/explain``.
        overwrite: Replace an existing ``out``.
        fill: ``ffill`` / ``zero`` repair of NaN / inf; default: as in training.
        max_sequences: Sequences explained, sampled with ``seed`` when the data hold more.
        ig_steps: Gauss-Legendre points of integrated gradients (default
            :data:`tfseq.analysis.explain.DEFAULT_IG_STEPS`).
        top: Drivers per sequence in ``drivers.csv``.
        repeats: Permutations per feature and per window.
        permutation_sequences: Sequences permuted (a sample of those explained): permutation
            importance ranks features over the data set, and its cost grows with this, not with
            ``max_sequences``.
        window: Steps per permuted window (default ``max(1, steps // 10)``).
        artifact: Exported artifact (``.tflite``, ``.onnx``, SavedModel, ``.keras``) to run the
            permutations through instead of the RUN's Keras model.
        seed: Seed of the sampling and the permutations.
        verify: Check an exported ``artifact``'s sha256 against its manifest.

    Returns:
        The directory written, the sequences explained, the ranked features, the completeness
        figures and the permutation metric.

    Raises:
        InputError: for bad input (see :func:`check_explain_inputs`).
    """
    contract, sequences, out = check_explain_inputs(
        run_dir, data, out, overwrite=overwrite, fill=fill, max_sequences=max_sequences, ig_steps=ig_steps,
        top=top, repeats=repeats, permutation_sequences=permutation_sequences, window=window, artifact=artifact)
    return explain_sequences(run_dir, contract, sequences, out=out, overwrite=overwrite, max_sequences=max_sequences,
                             ig_steps=ig_steps, top=top, repeats=repeats, permutation_sequences=permutation_sequences,
                             window=window, artifact=artifact, seed=seed, verify=verify, data=str(data))


def explain_sequences(
    run_dir: Path,
    contract: DataContract,
    sequences: SequenceSet,
    *,
    out: Path,
    overwrite: bool = False,
    max_sequences: int = 2000,
    ig_steps: int | None = None,
    top: int = 5,
    repeats: int = 3,
    permutation_sequences: int = 1000,
    window: int | None = None,
    artifact: Path | None = None,
    seed: int = 0,
    verify: bool = True,
    data: str = "DataFrame",
) -> Explained:
    """:func:`explain_run` on sequences already loaded by :func:`check_explain_inputs` (same arguments)."""
    from tfseq.analysis.explain import (
        COMPLETENESS_TOLERANCE,
        DEFAULT_IG_STEPS,
        completeness_error,
        integrated_gradients,
        keras_predict,
        valid_steps,
    )
    from tfseq.analysis.permutation import permutation_importance
    from tfseq.io import atomic_directory
    from tfseq.run import load_run

    ig_steps = positive_int("ig_steps", ig_steps if ig_steps is not None else DEFAULT_IG_STEPS)
    rng = np.random.default_rng(seed)
    total = len(sequences)
    if total > max_sequences:
        sequences = sequences.subset(np.sort(rng.choice(total, max_sequences, replace=False)))
    model, _, _ = load_run(run_dir)
    targets, target_names = explain_targets(contract)
    valid = valid_steps(sequences.lengths, len(sequences), sequences.steps)
    scale = 1.0  # probabilities; a regression's outputs in their own units
    if contract.task == "regression":
        scale = float(np.std(keras_predict(model, contract.head)(sequences.x))) or 1.0
    result = integrated_gradients(model, sequences.x, head=contract.head, targets=targets, valid=valid,
                                  steps=ig_steps, tolerance=COMPLETENESS_TOLERANCE, scale=scale, progress=True)
    error = completeness_error(result, scale=scale)
    completeness = {
        "max_relative_error": float(error.max()), "median_relative_error": float(np.median(error)),
        "max_abs_error": float(np.abs(result.values.sum(axis=(1, 2)) - (result.output - result.baseline_output)).max()),
        "tolerance": COMPLETENESS_TOLERANCE, "within_tolerance": bool(error.max() <= COMPLETENESS_TOLERANCE),
        "refined_sequences": int((result.points > ig_steps).sum()), "most_steps": int(result.points.max()),
        "definition": "|sum(attributions) - (f(x) - f(baseline))| / max(|f(x) - f(baseline)|, 0.01 * scale), "
                      f"scale {scale:.4g} (1 for probabilities, the spread of the outputs for a regression)",
    }
    perm_index = np.arange(len(sequences))
    if len(perm_index) > permutation_sequences:
        perm_index = np.sort(rng.choice(len(perm_index), permutation_sequences, replace=False))
    predict, runtime = _permutation_predict(model, contract, artifact, verify)
    y = sequences.y[perm_index] if sequences.y is not None else None
    permutation = permutation_importance(predict, sequences.x[perm_index], task=contract.task, y=y,
                                         valid=valid[perm_index], window=window, repeats=repeats, seed=seed,
                                         progress=True)
    chosen = _chosen(result, contract)
    rows = _feature_rows(result, chosen, sequences, contract, target_names, permutation)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        _write(tmp, rows, result, chosen, sequences, contract, target_names, permutation, top)
        _write_json(tmp / "explain.json", {
            "run": str(run_dir), "data": data, "task": contract.task, "sequences": len(sequences),
            "sequences_in_data": total, "seed": seed, "targets": target_names,
            "integrated_gradients": {
                "baseline": BASELINE, "quadrature": "gauss-legendre", "steps": ig_steps,
                "attributes": _attributes(contract), "completeness": completeness,
            },
            "features": rows,
            "per_step": {"mean_abs_attribution": np.abs(chosen).sum(axis=2).mean(axis=0).tolist()},
            "heatmap": {"features": contract.feature_names,
                        "mean_abs_attribution": np.abs(chosen).mean(axis=0).T.tolist()},
            "permutation": {
                "runtime": runtime, "metric": permutation.metric, "score": permutation.score,
                "sequences": len(perm_index), "repeats": repeats, "seed": seed,
                "features": {name: {"importance": float(m), "std": float(s)} for name, m, s in
                             zip(contract.feature_names, permutation.features, permutation.features_std)},
                "windows": [{"steps": list(w), "importance": float(m), "std": float(s)} for w, m, s in
                            zip(permutation.windows, permutation.window_importance, permutation.window_std)],
            },
        })
    return Explained(out, len(sequences), rows, completeness, permutation.metric)


def _attributes(contract: DataContract) -> str:
    if contract.task == "binary":
        return f"p({(contract.class_names or ['0', '1'])[-1]}), the probability of class 1"
    if contract.task == "multiclass":
        return "each class's probability; overall figures use each sequence's predicted class"
    return "the predicted value"


def _chosen(result: Attributions, contract: DataContract) -> np.ndarray:
    """``[n, steps, features]``: each sequence's attributions of its answer (its predicted class
    for a multiclass model)."""
    if contract.task != "multiclass":
        return result.values[..., 0]
    predicted = result.output.argmax(axis=1)
    return np.take_along_axis(result.values, predicted[:, None, None, None], axis=3)[..., 0]


def _groups(result: Attributions, sequences: SequenceSet, contract: DataContract) -> list[np.ndarray]:
    """Per explained target, the sequences of that class: by label where known, else by prediction."""
    if contract.task == "binary":
        is_one = sequences.y == 1 if sequences.y is not None else result.output[:, 0] >= contract.threshold
        return [np.asarray(is_one).reshape(-1)]
    labels = sequences.y if sequences.y is not None else result.output.argmax(axis=1)
    return [np.asarray(labels).reshape(-1) == k for k in range(result.values.shape[-1])]


def _feature_rows(result: Attributions, chosen: np.ndarray, sequences: SequenceSet, contract: DataContract,
                  target_names: list[str], permutation: PermutationImportance) -> list[dict[str, Any]]:
    overall = np.abs(chosen).sum(axis=1).mean(axis=0)  # [features]: sum over steps, mean over sequences
    columns: dict[str, np.ndarray] = {}
    if contract.task in ("binary", "multiclass"):
        for k, (name, members) in enumerate(zip(target_names, _groups(result, sequences, contract))):
            per = np.abs(result.values[members, ..., k]).sum(axis=1)
            columns[f"mean_abs_attribution_{name}"] = per.mean(axis=0) if len(per) else \
                np.full(len(overall), np.nan)
    order = np.argsort(-overall, kind="stable")
    perm_rank = np.empty(len(overall), dtype=int)
    perm_rank[np.argsort(-permutation.features, kind="stable")] = np.arange(1, len(overall) + 1)
    share = overall / overall.sum() if overall.sum() > 0 else np.zeros_like(overall)
    rows = []
    for rank, f in enumerate(order, start=1):
        row: dict[str, Any] = {"rank": rank, "feature": contract.feature_names[f],
                               "mean_abs_attribution": float(overall[f]), "share": float(share[f])}
        for key, values in columns.items():
            row[key] = None if np.isnan(values[f]) else float(values[f])
        row.update({"permutation_importance": float(permutation.features[f]),
                    "permutation_std": float(permutation.features_std[f]), "permutation_rank": int(perm_rank[f])})
        rows.append(row)
    return rows


def _permutation_predict(model: keras.Model, contract: DataContract, artifact: Path | None,
                         verify: bool) -> tuple[Any, str]:
    """The predict function the permutations run through, and the runtime's name."""
    from tfseq.analysis.explain import keras_predict

    if artifact is None:
        return keras_predict(model, contract.head), "keras"
    from tfseq.export.runtimes import load_runner
    from tfseq.workflows.scoring import head_output

    runner = load_runner(Path(artifact), verify=verify)

    def predict(x: np.ndarray) -> np.ndarray:
        return head_output(runner.predict(np.ascontiguousarray(x, dtype=np.float32)), contract, Path(artifact))

    return predict, runner.kind


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def _write(tmp: Path, rows: list[dict[str, Any]], result: Attributions, chosen: np.ndarray,
           sequences: SequenceSet, contract: DataContract, target_names: list[str],
           permutation: PermutationImportance, top: int) -> None:
    import pandas as pd

    from tfseq.analysis.explain import plot_attribution_heatmap, top_drivers
    from tfseq.analysis.permutation import plot_permutation_importance

    pd.DataFrame(rows).to_csv(tmp / "features.csv", index=False)
    drivers = pd.DataFrame({contract.id_col: sequences.ids,
                            "drivers": top_drivers(chosen, contract.feature_names, top)})
    buffer = io.StringIO()
    drivers.to_csv(buffer, index=False)
    (tmp / "drivers.csv").write_text(buffer.getvalue())
    np.savez_compressed(tmp / "attributions.npz", values=result.values, ids=np.asarray(sequences.ids).astype(str),
                        feature_names=np.asarray(contract.feature_names), targets=np.asarray(target_names),
                        output=result.output, baseline_output=result.baseline_output)
    order = [contract.feature_names.index(r["feature"]) for r in rows]
    names = [contract.feature_names[f] for f in order]
    what = _attributes(contract).split(",")[0]
    plot_attribution_heatmap(np.abs(chosen).mean(axis=0).T[order], names, tmp / "plots" / "attribution_heatmap.png",
                             title=f"Mean |attribution| of {what}")
    if contract.task == "multiclass":
        for k, (name, members) in enumerate(zip(target_names, _groups(result, sequences, contract))):
            if members.any():
                matrix = np.abs(result.values[members, ..., k]).mean(axis=0).T[order]
                plot_attribution_heatmap(matrix, names, tmp / "plots" / f"attribution_heatmap_{_safe(name)}.png",
                                         title=f"Mean |attribution| of p({name}), sequences of class {name}")
    plot_permutation_importance(permutation, contract.feature_names, tmp / "plots" / "permutation_importance.png")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from tfseq.io import write_json_atomic

    def clean(value: Any) -> Any:  # NaN is not JSON
        if isinstance(value, float) and not np.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    write_json_atomic(path, clean(data))




def keras_model_of(artifact: Path) -> keras.Model:
    """The Keras model of a RUN directory or a ``.keras`` file, for explanations.

    Raises:
        InputError: for any other artifact: integrated gradients need the Keras model.
    """
    artifact = Path(artifact)
    if artifact.is_dir() and (artifact / "contract.json").is_file():
        from tfseq.run import load_run

        return load_run(artifact)[0]
    if artifact.suffix == ".keras" and artifact.is_file():
        from tfseq.models.io import load_model

        return load_model(artifact)
    raise InputError(f"{artifact}: explain needs the Keras model (a RUN directory or its model.keras), not an "
                     "exported artifact; pass the RUN or drop explain.", arguments=("explain",))


def sequence_drivers(model: keras.Model, contract: DataContract, sequences: SequenceSet, k: int, *,
                     ig_steps: int | None = None) -> list[str]:
    """Each sequence's top ``k`` drivers of its answer, ``feature@step`` (1-based), ``;``-joined.

    The answer is ``p(class 1)`` of a binary model, the predicted class's probability of a
    multiclass one and the value of a regression; attributions are integrated gradients from the
    training mean, as in :func:`explain_run`.
    """
    from tfseq.analysis.explain import (
        DEFAULT_IG_STEPS,
        integrated_gradients,
        keras_predict,
        top_drivers,
        valid_steps,
    )

    if contract.task not in TASKS:
        raise InputError(f"Received explain for a {contract.task} model; expected a {', '.join(TASKS)} model.",
                         arguments=("explain",))
    valid = valid_steps(sequences.lengths, len(sequences), sequences.steps)
    steps = ig_steps or DEFAULT_IG_STEPS
    if contract.task != "multiclass":
        targets, _ = explain_targets(contract)
        result = integrated_gradients(model, sequences.x, head=contract.head, targets=targets, valid=valid,
                                      steps=steps)
        return top_drivers(result.values[..., 0], contract.feature_names, k)
    # Only each sequence's predicted class: one gradient pass per sequence, not one per class.
    predicted = keras_predict(model, contract.head)(sequences.x).argmax(axis=1)
    chosen = np.zeros(sequences.x.shape, dtype=np.float32)
    for label in np.unique(predicted):
        rows = np.flatnonzero(predicted == label)
        chosen[rows] = integrated_gradients(model, sequences.x[rows], head=contract.head, targets=(int(label),),
                                            valid=valid[rows], steps=steps).values[..., 0]
    return top_drivers(chosen, contract.feature_names, k)
