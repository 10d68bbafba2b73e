"""MkDocs hook: benchmark tables rendered from the measurements at build time, never copied by hand.

A page asks for a table with a placeholder line; the hook replaces it before the Markdown is
converted:

``<!-- benchmarks: results -->``
    ``benchmarks/results.json`` (written by ``make bench``) through ``render()`` of
    ``benchmarks/run.py``, the same function that writes ``benchmarks/results.md``, headed by the
    date of the run and the machine it ran on.
``<!-- benchmarks: targets -->``
    The speed issue's targets against the same ``results.json``, each marked met or not.
``<!-- benchmarks: tuning-memory -->``
    ``benchmarks/tuning_memory_process.json`` and ``tuning_memory_cli.json`` (written by
    ``benchmarks/bench_tuning.py``): memory over a 30-trial search, one process against
    ``tfseq tune``'s fresh process every 10 trials.
``<!-- benchmarks: stdf -->``
    ``benchmarks/stdf_results.json`` (written by ``make bench-stdf``) through ``render()`` of
    ``benchmarks/bench_stdf.py``: one STDF file of 50,000 parts to the long table, time and memory.
``<!-- benchmarks: commands -->``
    ``benchmarks/commands_results.json`` (written by ``make bench-commands``) through ``render()`` of
    ``benchmarks/bench_commands.py``: whole ``tfseq`` commands with default models against PyTorch,
    where ``tfseq train``'s time goes, the exports' inference and ``tfseq predict`` end to end.
``<!-- benchmarks: commands-zen4 -->``
    The same from ``benchmarks/commands_zen4_results.json``: a run on an AMD EPYC (Zen 4: AVX-512
    without AMX), ``python benchmarks/bench_commands.py --json benchmarks/commands_zen4_results.json``.
``<!-- benchmarks: outofcore -->``
    ``benchmarks/outofcore_results.json`` (written by ``make bench-outofcore``) through ``render()`` of
    ``benchmarks/bench_outofcore.py``: out-of-core training's peak memory as the data grow, its
    throughput against in-memory training, and two workers on loopback.
``<!-- benchmarks: lstm-isa -->``
    ``benchmarks/lstm_isa_results.json`` (written by ``benchmarks/bench_lstm_isa.py``) through its
    ``render()``: the fused LSTM kernel built for AVX2 and for this CPU against PyTorch held to each.
``<!-- benchmarks: streaming -->``
    ``benchmarks/streaming_results.json`` (written by ``make bench-streaming``) through ``render()`` of
    ``benchmarks/bench_streaming.py``: the streaming model per cycle, the adaptive-test policy's savings
    and escapes, and the bound over repeated splits.
``<!-- benchmarks: realdata -->``
    ``benchmarks/realdata_results.json`` (written by ``benchmarks/realdata.py``) through that
    script's own ``render()``: ``tfseq train``'s defaults against simple baselines and the
    published best on real public data sets.

The date is the ``date`` that ``benchmarks/run.py`` records; for results written before it
recorded one, the date of the last commit that changed the file. An unknown placeholder or a
missing file is a warning, so ``mkdocs build --strict`` fails rather than publish a page without
its table.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger("mkdocs.hooks.benchmarks")

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
PLACEHOLDER = re.compile(r"^<!-- benchmarks: ([a-z-]+) -->[ \t]*$", re.MULTILINE)


def _benchmark_module(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module: ``run.py`` imports only NumPy at the top and
    ``realdata.py`` only the standard library, so loading either runs no benchmark."""
    spec = importlib.util.spec_from_file_location(f"tfseq_benchmarks_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def realdata_section() -> str:
    results = _load("realdata_results.json")
    runs: dict[tuple[str, str], list[str]] = {}
    for name, row in results["sets"].items():
        record = row.get("run") or {"command": results.get("command", ""), "date": results.get("date", "")}
        runs.setdefault((record["command"], record["date"]), []).append(name)
    if len(runs) == 1:
        how = f"`{next(iter(runs))[0]}`"
    else:  # sets rerun after a whole run: each run names its sets
        how = "; ".join(f"`{command}` on {date} ({', '.join(names)})" for (command, date), names in runs.items())
    return (f"Run by `benchmarks/realdata.py` ({how}), rendered from "
            "`benchmarks/realdata_results.json`.\n\n" + _benchmark_module("realdata").render(results))


def _load(name: str) -> dict[str, Any]:
    return json.loads((BENCHMARKS / name).read_text(encoding="utf-8"))


def run_date(results: dict[str, Any], name: str) -> str:
    """The date the measurements were taken: recorded in the file, else its last commit's."""
    if results.get("date"):
        return str(results["date"])
    try:
        done = subprocess.run(["git", "log", "-1", "--format=%cs", "--", f"benchmarks/{name}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    except OSError:
        pass
    return "an unrecorded date"


def results_section() -> str:
    results = _load("results.json")
    table = _benchmark_module("run").render(results).strip()
    return (f"Measured on {run_date(results, 'results.json')} by `make bench` (`benchmarks/run.py`), "
            f"rendered from `benchmarks/results.json`.\n\n{table}\n")


def _mark(met: bool) -> str:
    return "yes" if met else "**no**"


def targets_section() -> str:
    """The speed issue's targets, each with what ``results.json`` holds and whether it is met."""
    results = _load("results.json")
    models = results["training"]["models"]
    ratios = []
    for name, row in models.items():
        spread = row.get("round_ratios") or [row["ratio_vs_pytorch"]]
        ratios.append(f"{name} {row['ratio_vs_pytorch']:.2f}x (rounds {min(spread):.2f}-{max(spread):.2f}x)")
    training_met = all(row["ratio_vs_pytorch"] >= 1.0 for row in models.values())

    rows = results["inference"]["rows"]
    torch_rate = rows["PyTorch eager"]["sequences_per_second"]
    dynamic, int8 = rows.get("TF Lite dynamic (LiteRT)"), rows.get("TF Lite int8 (LiteRT)")
    onnx = rows.get("onnxruntime")
    lines = ["| target | measured | met |", "|---|---|:-:|",
             f"| training >= 1.0x PyTorch on the same model | {', '.join(ratios)} | {_mark(training_met)} |"]
    if dynamic:
        ratio = dynamic["sequences_per_second"] / torch_rate
        onnx_text = f" (onnxruntime {onnx['sequences_per_second'] / torch_rate:.2f}x)" if onnx else ""
        lines.append(f"| recommended batched artifact >= 1.5x PyTorch eager | TF Lite dynamic-range "
                     f"{ratio:.2f}x{onnx_text} | {_mark(ratio >= 1.5)} |")
    if int8:
        dynamic_text = f" (dynamic-range: {dynamic['single_p50_us']:.0f} us)" if dynamic else ""
        lines.append(f"| {results['inference']['model'].upper()} int8 TF Lite batch-1 p50 <= 100 us "
                     f"| {int8['single_p50_us']:.0f} us{dynamic_text} | {_mark(int8['single_p50_us'] <= 100)} |")
    if "demo" in results:
        demo = results["demo"]
        met = demo["wall_seconds"] <= 300 and demo["peak_rss_mb"] <= 4000
        lines.append(f"| full demo <= 5 min, peak <= 4 GB | {demo['wall_seconds']:.0f} s, "
                     f"{demo['peak_rss_mb'] / 1000:.1f} GB | {_mark(met)} |")
    return (f"From the same run ({run_date(results, 'results.json')}):\n\n" + "\n".join(lines) + "\n")


def tuning_memory_section() -> str:
    runs = {"process": _load("tuning_memory_process.json"), "cli": _load("tuning_memory_cli.json")}
    window = runs["process"]["window_trials"]
    count = len(runs["process"]["peak_rss_mb_per_window"])
    heads = [f"trials {i * window + 1}-{(i + 1) * window}" for i in range(count)]
    names = {"process": "one process (`--mode process`)",
             "cli": f"`tfseq tune {runs['cli']['mode'].partition(', ')[2]}` (`--mode cli`)"}
    lines = ["| search | " + " | ".join(f"peak RSS, {h}" for h in heads)
             + " | growth per trial after warm-up | wall time |",
             "|---|" + "---:|" * (count + 2)]
    for key, run in runs.items():
        peaks = " | ".join(f"{mb / 1000:.2f} GB" for mb in run["peak_rss_mb_per_window"])
        lines.append(f"| {names[key]} | {peaks} | {run['rss_growth_mb_per_trial_after_warmup']:.1f} MB "
                     f"| {run['seconds']:.0f} s |")
    first = runs["process"]
    return (f"Measured on {run_date(first, 'tuning_memory_process.json')} by `benchmarks/bench_tuning.py` "
            f"({first['trials']} {first['tuner']}-search trials, {first['data']}), rendered from "
            "`benchmarks/tuning_memory_process.json` and `benchmarks/tuning_memory_cli.json`:\n\n"
            + "\n".join(lines) + "\n")


def _rendered(name: str, file: str | None = None) -> Callable[[], str]:
    """The section of ``benchmarks/{name}_results.json`` (or ``file``), written by ``make bench-{name}``
    through ``benchmarks/bench_{name}.py``, whose ``render()`` makes its tables."""
    file = file or f"{name}_results.json"

    def section() -> str:
        results = _load(file)
        return (f"Measured on {run_date(results, file)} by `make bench-{name}` "
                f"(`benchmarks/bench_{name}.py`), rendered from `benchmarks/{file}`:\n\n"
                + _benchmark_module(f"bench_{name}").render(results))

    return section


def lstm_isa_section() -> str:
    results = _load("lstm_isa_results.json")
    return (f"Measured on {run_date(results, 'lstm_isa_results.json')} by `benchmarks/bench_lstm_isa.py` "
            f"({results['sequences']:,} sequences, best epoch of {results['rounds']} alternating rounds x "
            f"{results['epochs']} epochs; {results['machine']['cpu']}, {results['machine']['cores']} cores), "
            "rendered from `benchmarks/lstm_isa_results.json`:\n\n" + _benchmark_module("bench_lstm_isa").render(results))


SECTIONS = {"results": results_section, "targets": targets_section, "tuning-memory": tuning_memory_section,
            "realdata": realdata_section, "lstm-isa": lstm_isa_section,
            **{name: _rendered(name) for name in ("stdf", "commands", "outofcore", "streaming")},
            "commands-zen4": _rendered("commands", "commands_zen4_results.json")}


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in SECTIONS:
            log.warning("%s: unknown placeholder '<!-- benchmarks: %s -->'; known: %s",
                        page.file.src_path, name, ", ".join(SECTIONS))
            return match.group(0)
        try:
            return SECTIONS[name]()
        except (OSError, KeyError, ValueError) as exc:
            log.warning("%s: cannot render the '%s' benchmark table: %s: %s", page.file.src_path, name,
                        type(exc).__name__, exc)
            return match.group(0)

    return PLACEHOLDER.sub(replace, markdown)
