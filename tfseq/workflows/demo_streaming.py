"""The demo's streaming stage: one model that answers after every cycle, and the adaptive-test policy.

A unidirectional LSTM trained with a loss at every cycle gives P(fail | first k cycles) for every k.
Its adaptive-test policy (:mod:`tfseq.analysis.adaptive_test`) is fitted on a calibration lot (fresh
devices from the same generator, never trained on) and applied to the study's test devices: the
report states the test cycles saved with escapes and scraps bounded.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfseq.analysis.adaptive_test import policy_outcome
from tfseq.data.sequences import SequenceSet
from tfseq.data.synthetic import make_semiconductor_data
from tfseq.evaluation import EARLY_WARNING_TARGETS, earliest_step, per_step_metrics
from tfseq.io import atomic_directory, read_json_or_empty, write_json_atomic
from tfseq.models.builders import build_model
from tfseq.models.policy import read_policy
from tfseq.models.spec import ModelSpec
from tfseq.plots import plot_per_step
from tfseq.run import DataContract, read_contract, save_run
from tfseq.training.fit import fit
from tfseq.workflows.policy import fit_sequences_policy

#: The demo's bounds: escapes at most 0.1 % of devices (1,000 DPPM), scraps at most 1 %, at 95 %.
MAX_ESCAPE, MAX_SCRAP, CONFIDENCE = 0.001, 0.01, 0.95


def streaming_stage(run_dir: Path, splits: dict[str, SequenceSet], settings: dict[str, Any], contract: DataContract,
                    log: Callable[[str], None], verbose: int | str) -> dict[str, Any]:
    """Trains (or reads) the streaming RUN ``run_dir``, fits its policy on a calibration lot and returns
    its per-cycle metrics on the test devices and the policy's outcome there."""
    train, val, test = splits["train"], splits["validation"], splits["test"]
    assert train.y is not None and test.y is not None  # the synthetic set is labelled
    spec = ModelSpec(units=(settings["units"],), streaming=True, precision=settings["precision"])
    done = read_json_or_empty(run_dir / "metrics.json")
    if done.get("settings") == settings and (run_dir / "model.keras").is_file() and read_policy(run_dir):
        log(f"streaming {spec.name}: trained and calibrated in a previous run ({run_dir})")
        return done
    log(f"streaming {spec.name}: one model answering after every cycle, up to {settings['epochs']} epochs")
    contract = DataContract(**{**contract.get_config(), "steps": train.steps, "predict_at": None, "streaming": True})
    # a calibration lot: as many fresh devices as the study's, from the same generator, never trained on (a
    # bound of 0.1 % needs tens of thousands: with 25,000 the policy saved 29.7 % of cycles, with 50,000 32.3 %)
    lot = make_semiconductor_data(max(settings["devices"], 2000), seed=settings["seed"] + 7919)
    with atomic_directory(run_dir, overwrite=True) as tmp:
        model = build_model(spec, n_features=train.x.shape[-1], adapt=train.x, seed=settings["seed"])
        t0 = time.perf_counter()
        history = fit(model, train.x, train.y, validation_data=(val.x, val.y), epochs=settings["epochs"],
                      batch_size=settings["batch_size"], patience=settings["patience"], run_dir=tmp,
                      seed=settings["seed"], verbose=verbose)
        train_s = time.perf_counter() - t0
        shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
        save_run(tmp, model, spec, contract, export_sample=(test.x[:1000], test.y[:1000], train.x))
        p = model.predict(test.x, batch_size=1024, verbose=0)[spec.heads[0].name]
        rows = per_step_metrics("binary", test.y, p)
        found = earliest_step(rows, EARLY_WARNING_TARGETS)
        plot_per_step(rows, tmp / "plots" / "per_step_metrics.png", targets=EARLY_WARNING_TARGETS, earliest=found)
        fitted = fit_sequences_policy(tmp, read_contract(tmp), lot, data=f"calibration lot: {len(lot):,} fresh "
                                      "synthetic devices", max_escape=MAX_ESCAPE, max_scrap=MAX_SCRAP,
                                      confidence=CONFIDENCE, seed=settings["seed"])
        policy = read_policy(tmp)
        assert policy is not None  # just written
        outcome = policy_outcome(policy, p[..., 0], test.y, confidence=CONFIDENCE)
        result: dict[str, Any] = {
            "settings": settings, "spec": spec.get_config(), "parameters": int(model.count_params()),
            "epochs": len(history.history["loss"]), "train_seconds": round(train_s, 1),
            "per_step": rows, "early_warning": {"targets": dict(EARLY_WARNING_TARGETS), "earliest_step": found},
            "policy": {"bounds": {"max_escape": MAX_ESCAPE, "max_scrap": MAX_SCRAP, "confidence": CONFIDENCE},
                       "calibration_devices": len(lot), "calibration": fitted["outcome"],
                       "procedure": fitted["policy"]["report"]["procedure"], "test": outcome},
        }
        write_json_atomic(tmp / "metrics.json", result)
    test_outcome = result["policy"]["test"]
    met = f"targets met from cycle {found}" if found else "targets met at no cycle"
    log(f"    streaming: {met}; policy on the test devices saves "
        f"{100 * test_outcome['steps_saved']:.1f} % of test cycles, escapes {test_outcome['escapes']['count']} "
        f"(bound {100 * test_outcome['escapes']['upper_bound']:.3f} %), scraps {test_outcome['scraps']['count']} "
        f"(bound {100 * test_outcome['scraps']['upper_bound']:.2f} %)")
    return json.loads(json.dumps(result, default=str))




def render_streaming(streaming: dict[str, Any], models: dict[str, Any], predict_at: int) -> list[str]:
    """The report's section on the streaming model and the adaptive-test policy."""
    rows = {r["step"]: r for r in streaming["per_step"]}
    cycles = sorted({c for c in (10, predict_at, max(rows)) if c in rows})
    found = streaming["early_warning"]["earliest_step"]
    policy, test = streaming["policy"], streaming["policy"]["test"]
    bounds = policy["bounds"]
    best_fixed = max(r[f"cycle_{predict_at}"]["accuracy"] for r in models.values())
    lines = [
        "## Streaming: one model for every cycle, and when to stop testing",
        "",
        f"A unidirectional LSTM trained with a loss after every cycle ({streaming['parameters']:,} parameters, "
        f"{streaming['epochs']} epochs) answers after each cycle. " + (f"The study's targets are met from cycle {found} on" if found
                                                 else "The study's targets are met at no cycle") + f"; at cycle {predict_at} its accuracy is "
        f"{rows[predict_at]['accuracy']:.3f} against {best_fixed:.3f} for the best model trained for that cycle.",
        "",
        "| cycle | " + " | ".join(str(c) for c in cycles) + " |",
        "|---|" + "---:|" * len(cycles),
    ]
    for metric in ("accuracy", "precision", "recall", "auc"):
        lines.append(f"| {metric} | " + " | ".join(f"{rows[c].get(metric, float('nan')):.3f}" for c in cycles) + " |")
    decisions = test["decisions"]
    lines += [
        "",
        f"**Adaptive test.** The policy was fitted on a calibration lot of {policy['calibration_devices']:,} "
        f"fresh devices for escapes <= {100 * bounds['max_escape']:.2g} % and scraps <= "
        f"{100 * bounds['max_scrap']:.2g} % of devices (one-sided bounds at {100 * bounds['confidence']:.0f} %). "
        f"On the {test['devices']:,} test devices it saves **{100 * test['steps_saved']:.1f} % of the test "
        f"cycles**: {decisions['fail']:,} devices failed early, {decisions['pass']:,} passed early, "
        f"{decisions['full-test']:,} fully tested; {test['escapes']['count']} escapes (upper bound "
        f"{100 * test['escapes']['upper_bound']:.3f} %) and {test['scraps']['count']} scraps (upper bound "
        f"{100 * test['scraps']['upper_bound']:.2f} %).",
        "",
        "Plots: `models/streaming/plots/per_step_metrics.png`, `models/streaming/plots/policy.png`. "
        "`tfseq export models/streaming` writes its step artifacts (one cycle in, the state in and out).",
        "",
    ]
    return lines
