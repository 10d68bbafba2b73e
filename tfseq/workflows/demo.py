"""The classic study: SimpleRNN vs LSTM vs GRU vs BiLSTM on synthetic devices.

Trains the four architectures on the first ``predict_at`` test cycles of each
device (the early-warning model you would deploy at that cycle), evaluates
them at that cycle and on the full sequences, trains a streaming model that
answers after every cycle with its adaptive-test policy
(:mod:`tfseq.workflows.demo_streaming`), and writes a report, metrics and plots.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfseq import __version__
from tfseq.analysis.reference import compute_reference
from tfseq.data.sequences import SequenceSet
from tfseq.data.splits import split_sequences
from tfseq.data.synthetic import make_semiconductor_data, to_long_frame
from tfseq.errors import InputError
from tfseq.evaluation import EARLY_WARNING_TARGETS, classification_metrics, keras_predict_function, latency
from tfseq.export.manifest import MANIFEST
from tfseq.export.schema import Manifest
from tfseq.export.tflite import require_litert
from tfseq.io import atomic_directory, read_json_or_empty, write_json_atomic, write_text_atomic
from tfseq.models.builders import build_model
from tfseq.models.spec import ModelSpec
from tfseq.plots import plot_comparison, plot_confusion_matrices, plot_training_curves
from tfseq.run import DataContract, save_run
from tfseq.training.fit import fit
from tfseq.workflows.demo_streaming import render_streaming, streaming_stage
from tfseq.workflows.export import export_run

#: The study's success metrics for the model at the early-warning cycle.
TARGETS = EARLY_WARNING_TARGETS

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "SimpleRNN": dict(cell="simple_rnn"),
    "LSTM": dict(cell="lstm"),
    "GRU": dict(cell="gru"),
    "BiLSTM": dict(cell="lstm", bidirectional=True),
}


def demo_specs(units: int = 128) -> dict[str, ModelSpec]:
    """The four specs of the study: one recurrent layer of ``units``, last-state pooling."""
    return {name: ModelSpec(units=(units,), **kw) for name, kw in ARCHITECTURES.items()}


def meets_targets(metrics: dict[str, float]) -> bool:
    return all(metrics[k] >= v for k, v in TARGETS.items())


def run_demo(
    out: Path = Path("runs/demo"),
    *,
    devices: int = 50_000,
    epochs: int = 20,
    units: int = 128,
    batch_size: int = 128,
    patience: int = 5,
    predict_at: int = 15,
    seed: int = 0,
    precision: str = "auto",
    log: Callable[[str], None] = print,
    verbose: int | str = 2,
) -> dict[str, Any]:
    """Runs the study into ``out``, keeping every finished stage.

    Each model becomes a RUN directory ``out/models/<name>/`` the moment it is trained
    (written atomically: whole or not at all). The report, metrics and plots follow, then the
    export of the recommended model. When a stage fails, the stages before it stay on disk
    and the log says which stage failed; running the same call again skips every model and the
    export already done with the same settings (a model trained with other settings is
    retrained, and replaced only once its new RUN is complete).

    Args:
        out: Output directory: ``report.md``, ``metrics.json``, ``plots/``,
            ``models/<name>/`` (RUN directories), ``export/`` and ``data/test_long.csv``
            (a long-format sample of the test devices).
        devices: Number of synthetic devices.
        epochs: Maximum epochs per architecture (early stopping may end sooner).
        units: Hidden units of each architecture.
        batch_size: Training batch size.
        patience: Early-stopping patience in epochs.
        predict_at: Early-warning cycle: models see only this many cycles.
        seed: Seed of the data, the split and the weights.
        precision: Precision policy of the models.
        log: Where progress lines go.
        verbose: Keras progress: 1 (bar), 2 (one line per epoch) or 0.

    Returns:
        The content of ``metrics.json``.

    Raises:
        InputError: for sizes too small to split or train on.
        MissingDependencyError: if the LiteRT runtime the export needs is missing (checked
            before any training).
    """
    if devices < 50:
        raise InputError(f"Received an invalid value for argument devices, expected >= 50, got {devices}.")
    if not 2 <= predict_at <= 20:
        raise InputError(
            f"Received an invalid value for argument predict_at, expected 2 to 20 cycles, got {predict_at}."
        )
    require_litert()  # the export stage needs it: say so before an hour of training, not after
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory; expected the demo's output directory.")
    settings = {"devices": devices, "epochs": epochs, "units": units, "batch_size": batch_size,
                "patience": patience, "predict_at": predict_at, "seed": seed, "precision": precision,
                "tfseq": __version__}
    started = time.perf_counter()
    stage = "data"
    try:
        data = make_semiconductor_data(devices, seed=seed)
        assert data.y is not None and data.class_names is not None  # the synthetic set is labelled
        contract = DataContract(
            feature_names=list(data.feature_names), steps=predict_at, task="binary",
            class_names=list(data.class_names), id_col="device_id", time_col="cycle", label_col="status",
            predict_at=predict_at, head="binary",
        )
        train, val, test = split_sequences(data, seed=seed)
        splits = {"train": train, "validation": val, "test": test}
        log(
            f"data: {devices:,} devices x {data.steps} cycles x {len(data.feature_names)} parameters, "
            f"{data.y.mean():.1%} failing; train {len(train):,} / validation {len(val):,} / test {len(test):,}; "
            f"models see the first {predict_at} cycles"
        )
        results: dict[str, Any] = {}
        for k, (name, spec) in enumerate(demo_specs(units).items(), start=1):
            stage = f"training {name}"
            spec = spec.replace(precision=precision)
            results[name] = _trained(out / "models" / name, name, spec, contract, splits, settings,
                                     f"[{k}/{len(ARCHITECTURES)}]", log, verbose)
        stage = "streaming model and adaptive-test policy"
        streaming = streaming_stage(out / "models" / "streaming", splits, settings, contract, log, verbose)
        stage = "report"
        best = choose_best(results, predict_at)
        summary = {
            "settings": settings,
            "devices": devices,
            "cycles": data.steps,
            "predict_at": predict_at,
            "fail_rate": float(data.y.mean()),
            "split": {"train": len(train), "validation": len(val), "test": len(test)},
            "targets": TARGETS,
            "best": best,
            "models": {n: {k2: v for k2, v in r.items() if k2 not in ("history", "settings")}
                       for n, r in results.items()},
            "streaming": {k: v for k, v in streaming.items() if k != "settings"},
            "export": _finished_export(out, settings, best),
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        _write_plots(out / "plots", results, {n: r["history"] for n, r in results.items()}, predict_at,
                     data.class_names or ["0", "1"])
        sample = to_long_frame(test.subset(np.arange(min(len(test), 200))))
        write_text_atomic(out / "data" / "test_long.csv", sample.to_csv(index=False))
        _write_summary(out, summary)
        stage = "export"
        if summary["export"]:
            log(f"export of {best}: done in a previous run ({out / 'export'})")
        else:
            log(f"exporting {best} to SavedModel, TF Lite (float32, float16, dynamic, int8) and ONNX; "
                "verifying each in its own runtime")
            with atomic_directory(out / "export", overwrite=True) as tmp:
                manifest = export_run(out / "models" / best, tmp, quantize="all", name=best.lower(),
                                      allow_degraded=True)
            summary["export"] = _export_summary(manifest)
        summary["wall_seconds"] = round(time.perf_counter() - started, 1)
        _write_summary(out, summary)
    except BaseException:
        kept = sorted(p.name for p in (out / "models").iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if (out / "models").is_dir() else []
        log(f"demo: stage '{stage}' failed; " + (
            f"finished models are kept in {out / 'models'} ({', '.join(kept)}): run the same command again "
            "to continue from them" if kept else "nothing was finished"))
        raise
    log(f"best at cycle {predict_at}: {best}; report: {out / 'report.md'} "
        f"({summary['wall_seconds']:.0f} s in all)")
    return json.loads(json.dumps(summary, default=str))


def _trained(run_dir: Path, name: str, spec: ModelSpec, contract: DataContract, splits: dict[str, SequenceSet],
             settings: dict[str, Any], counter: str, log: Callable[[str], None], verbose: int | str) -> dict[str, Any]:
    """One architecture's results: read from its RUN when it was trained with ``settings``, else
    trained, evaluated and written as a whole RUN directory."""
    done = read_json_or_empty(run_dir / "metrics.json")
    if done.get("settings") == settings and (run_dir / "model.keras").is_file():
        log(f"{counter} {name}: trained in a previous run ({run_dir})")
        return done
    predict_at = settings["predict_at"]
    train, val, test = splits["train"], splits["validation"], splits["test"]
    tr, va, te = (s.first_steps(predict_at) for s in (train, val, test))
    assert tr.y is not None and te.y is not None and test.y is not None  # the synthetic set is labelled
    log(f"{counter} {name} ({spec.name}): training up to {settings['epochs']} epochs")
    with atomic_directory(run_dir, overwrite=True) as tmp:
        model = build_model(spec, n_features=tr.x.shape[-1], adapt=tr.x, seed=settings["seed"])
        t0 = time.perf_counter()
        history = fit(
            model, tr.x, tr.y,
            validation_data=(va.x, va.y),
            epochs=settings["epochs"], batch_size=settings["batch_size"], patience=settings["patience"],
            run_dir=tmp, seed=settings["seed"], verbose=verbose,
        )
        train_s = time.perf_counter() - t0
        shutil.rmtree(tmp / "checkpoints", ignore_errors=True)  # model.keras is the best epoch
        head = spec.heads[0].name
        p_early = model.predict(te.x, batch_size=1024, verbose=0)[head]
        reference = compute_reference(tr.x, tr.lengths, contract.feature_names, output=p_early,
                                      task=contract.task, class_names=contract.class_names, seed=settings["seed"])
        save_run(tmp, model, spec, contract, export_sample=(te.x, te.y, tr.x), reference=reference)
        p_full = model.predict(test.x, batch_size=1024, verbose=0)[head]
        speed = latency(keras_predict_function(model), te.x)
        result: dict[str, Any] = {
            "settings": settings,
            "spec": spec.get_config(),
            "parameters": int(model.count_params()),
            "model_bytes": (tmp / "model.keras").stat().st_size,
            "epochs": len(history.history["loss"]),
            "train_seconds": round(train_s, 1),
            "train_sequences_per_second": round(len(tr) * len(history.history["loss"]) / train_s),
            f"cycle_{predict_at}": classification_metrics(te.y, p_early),
            "full_sequence": classification_metrics(test.y, p_full),
            "latency": speed,
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        }
        write_json_atomic(tmp / "metrics.json", result)
    r = result[f"cycle_{predict_at}"]
    log(
        f"    {name}: cycle {predict_at} accuracy {r['accuracy']:.3f}, recall {r['recall']:.3f}, "
        f"precision {r['precision']:.3f}, F1 {r['f1']:.3f}; {result['epochs']} epochs "
        f"in {train_s:.0f} s; {speed['single_p50_us']:.0f} us per device (batch 1)"
    )
    return json.loads(json.dumps(result, default=str))




def _finished_export(out: Path, settings: dict[str, Any], best: str) -> list[dict[str, Any]]:
    """The export rows of a previous run with the same settings and model, if its export is whole."""
    previous = read_json_or_empty(out / "metrics.json")
    if (previous.get("settings") == settings and previous.get("best") == best and previous.get("export")
            and (out / "export" / MANIFEST).is_file()):
        return previous["export"]
    return []


def _write_summary(out: Path, summary: dict[str, Any]) -> None:
    write_json_atomic(out / "metrics.json", summary)
    write_text_atomic(out / "report.md", render_report(summary))


def choose_best(results: dict[str, Any], predict_at: int) -> str:
    """The model to deploy at the early-warning cycle.

    Among the models meeting the targets (all models, when none does), those
    within 0.005 F1 of the best; of these the one that catches the most
    failing devices (missing one is the costly error), recall ties within
    0.002 going to the faster model.
    """
    key = f"cycle_{predict_at}"
    pool = [n for n in results if meets_targets(results[n][key])] or list(results)
    top_f1 = max(results[n][key]["f1"] for n in pool)
    close = [n for n in pool if results[n][key]["f1"] >= top_f1 - 0.005]
    top_recall = max(results[n][key]["recall"] for n in close)
    finalists = [n for n in close if results[n][key]["recall"] >= top_recall - 0.002]
    return min(finalists, key=lambda n: results[n]["latency"]["single_p50_us"])


def _export_summary(manifest: Manifest) -> list[dict[str, Any]]:
    """One row per exported artifact: what it is, its size and how it verified."""
    rows = []
    for a in manifest["artifacts"]:
        v = a["verification"]
        rows.append({
            "path": a["path"], "format": a["format"], "quantization": a["quantization"] or "none",
            "kilobytes": round(a["size_bytes"] / 1024, 1), "max_abs_diff": v.get("max_abs_diff"),
            "class_agreement": v.get("class_agreement"), "batch1_latency_ms": v.get("batch1_latency_ms"),
            "passed": a["passed"],
        })
    return rows


def _write_plots(plots: Path, results: dict[str, Any], histories: dict[str, dict[str, list[float]]], predict_at: int,
                 class_names: list[str]) -> None:
    key = f"cycle_{predict_at}"
    names = list(results)
    plot_training_curves(histories, plots / "training_curves.png")
    plot_confusion_matrices(
        {n: results[n][key]["confusion_matrix"] for n in names}, class_names,
        plots / "confusion_matrices.png",
    )
    plot_comparison(
        names,
        {
            f"accuracy at cycle {predict_at}": [results[n][key]["accuracy"] for n in names],
            "accuracy, full sequence": [results[n]["full_sequence"]["accuracy"] for n in names],
            f"recall at cycle {predict_at}": [results[n][key]["recall"] for n in names],
        },
        plots / "accuracy.png",
    )
    plot_comparison(
        names,
        {
            "batch-1 latency p50 (us)": [results[n]["latency"]["single_p50_us"] for n in names],
            "batched latency (us / device)": [results[n]["latency"]["batched_us_per_sequence"] for n in names],
            "parameters": [results[n]["parameters"] for n in names],
        },
        plots / "latency.png",
    )


def render_report(summary: dict[str, Any]) -> str:
    """The Markdown report: set-up, comparison table, targets and recommendation."""
    k = summary["predict_at"]
    key = f"cycle_{k}"
    models = summary["models"]
    best = summary["best"]
    lines = [
        "# tfseq demo: SimpleRNN vs LSTM vs GRU vs BiLSTM",
        "",
        f"{summary['devices']:,} synthetic devices x {summary['cycles']} test cycles x 15 parametric "
        f"measurements, {summary['fail_rate']:.1%} failing with accelerating drift. Split by device "
        f"(train {summary['split']['train']:,}, validation {summary['split']['validation']:,}, "
        f"test {summary['split']['test']:,}). Models see the first {k} cycles: an early warning "
        f"{summary['cycles'] - k} cycles before the end of test. Wall time {summary['wall_seconds']:.0f} s.",
        "",
        f"| model | params | size (KB) | epochs | acc @{k} | prec @{k} | recall @{k} | F1 @{k} | AUC @{k} "
        "| acc full | batch-1 p50 (us) | batched (us/device) | meets targets |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for name, r in models.items():
        e, f = r[key], r["full_sequence"]
        lines.append(
            f"| {'**' + name + '**' if name == best else name} | {r['parameters']:,} | "
            f"{r['model_bytes'] / 1024:.0f} | {r['epochs']} | {e['accuracy']:.3f} | {e['precision']:.3f} | "
            f"{e['recall']:.3f} | {e['f1']:.3f} | {e.get('auc', float('nan')):.3f} | {f['accuracy']:.3f} | "
            f"{r['latency']['single_p50_us']:.0f} | {r['latency']['batched_us_per_sequence']:.1f} | "
            f"{'yes' if meets_targets(e) else 'no'} |"
        )
    b = models[best][key]
    targets = ", ".join(f"{m} >= {v:.0%}" for m, v in summary["targets"].items())
    lines += [
        "",
        f"Targets at cycle {k} (the study's success metrics): {targets}.",
        "",
        "## Recommendation",
        "",
        f"**{best}**: at cycle {k} it flags {b['recall']:.1%} of failing devices with "
        f"{b['precision']:.1%} precision (accuracy {b['accuracy']:.1%}), "
        f"{models[best]['parameters']:,} parameters, {models[best]['latency']['single_p50_us']:.0f} us per "
        f"device at batch 1. "
        + (
            "It meets every target and, among the models within 0.005 F1 of the best, misses the "
            "fewest failing devices."
            if meets_targets(b)
            else "No model met every target on this run; train for more epochs or on more devices."
        ),
        "",
        "Plots: `plots/training_curves.png`, `plots/confusion_matrices.png`, `plots/accuracy.png`, "
        "`plots/latency.png`. Models: `models/<name>/` (RUN directories: `tfseq export`, `tfseq predict`).",
        "",
    ]
    if summary.get("streaming"):
        lines += render_streaming(summary["streaming"], models, k)
    lines += [
        f"## Export of {best}",
        "",
    ]
    if not summary["export"]:
        lines += ["Not exported yet: the export stage has not finished (run the same command again).", ""]
        return "\n".join(lines)
    lines += [
        "Every artifact ran in its own runtime on held-out test devices and was compared with the Keras "
        "model (`export/manifest.json` holds all figures and the sha256 of each file).",
        "",
        "| artifact | size (KB) | max abs diff | class agreement | batch-1 latency (us) | verified |",
        "|---|---:|---:|---:|---:|:-:|",
    ]
    for a in summary["export"]:
        agreement = "" if a["class_agreement"] is None else f"{a['class_agreement']:.2%}"
        latency_us = "" if a["batch1_latency_ms"] is None else f"{a['batch1_latency_ms'] * 1000:.0f}"
        lines.append(f"| `{a['path']}` | {a['kilobytes']:.0f} | {a['max_abs_diff']:.1e} | {agreement} | "
                     f"{latency_us} | {'yes' if a['passed'] else 'DEGRADED'} |")
    lines.append("")
    return "\n".join(lines)
