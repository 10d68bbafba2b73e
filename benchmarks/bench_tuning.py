"""Memory over a long Keras Tuner search: does the process grow from trial to trial?

``--mode process`` (default): one ``tfseq.tuning.tune`` search of N trials
(default 30) in this process while a sampler thread reads the resident set
size (``/proc/self/status`` VmRSS) every 50 ms; reports RSS after each trial
and the peak growth: the highest RSS after the warm-up trials minus the
highest RSS during them. This is what Keras itself keeps per model.

``--mode cli``: the same search through ``tfseq tune`` (which restarts its
search process every ``--trials-per-process`` trials); the sampler adds up the
RSS of the command and its children, so the figure is what a user's machine
sees. Writes ``benchmarks/tuning_memory_<mode>.json``.

    python benchmarks/bench_tuning.py                  # 30 trials in one process (about 6 min on 2 cores)
    python benchmarks/bench_tuning.py --mode cli       # 30 trials through tfseq tune
    python benchmarks/bench_tuning.py --trials 6       # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent


def rss_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_rss_mb(root: int) -> float:
    """RSS of ``root`` and all its descendants."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(rss_mb(p) for p in tree)


class Sampler(threading.Thread):
    def __init__(self, interval: float = 0.05, root: int | None = None):
        super().__init__(daemon=True)
        self.interval, self.samples, self.stop, self.root = interval, [], threading.Event(), root

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.time(), rss_mb() if self.root is None else tree_rss_mb(self.root)))
            time.sleep(self.interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="trials before the baseline (default: 5)")
    parser.add_argument("--devices", type=int, default=400)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--tuner", default="random")
    parser.add_argument("--mode", choices=("process", "cli"), default="process")
    parser.add_argument("--trials-per-process", type=int, default=10, help="--mode cli (default: 10)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.out = args.out or HERE / f"tuning_memory_{args.mode}.json"

    from tfseq.data.splits import split_sequences
    from tfseq.data.synthetic import make_semiconductor_data
    from tfseq.tuning import SearchSpace, tune

    train, val, _ = split_sequences(make_semiconductor_data(args.devices, n_cycles=args.cycles, seed=0),
                                    (0.8, 0.2, 0.0))
    # The default space, with units kept small so 30 trials fit in minutes on 2 cores.
    space = SearchSpace({"units": [8, 16, 32]})
    start_rss = rss_mb()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        if args.mode == "process":
            sampler = Sampler()
            sampler.start()
            result = tune(train, val, Path(tmp) / "search", space=space, tuner=args.tuner, objective="val_auc",
                          max_trials=args.trials, epochs=args.epochs, patience=1)
        else:
            import subprocess
            import sys

            from tfseq.data.synthetic import to_long_frame
            from tfseq.tuning import load_result

            data = make_semiconductor_data(args.devices, n_cycles=args.cycles, seed=0)
            to_long_frame(data).to_csv(Path(tmp) / "data.csv", index=False)
            command = [sys.executable, "-m", "tfseq", "tune", str(Path(tmp) / "data.csv"), "--id-col", "device_id",
                       "--time-col", "cycle", "--label-col", "status", "--val-fraction", "0.2", "--out",
                       str(Path(tmp) / "search"), "--units", "8,16,32", "--tuner", args.tuner, "--objective",
                       "val_auc", "--trials", str(args.trials), "--epochs", str(args.epochs), "--patience", "1",
                       "--trials-per-process", str(args.trials_per_process)]
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sampler = Sampler(interval=0.2, root=proc.pid)
            sampler.start()
            if proc.wait() != 0:
                raise SystemExit(f"tfseq tune failed with exit status {proc.returncode}")
            result = load_result(Path(tmp) / "search")
        ends = []
        for record in result.trials:
            path = Path(tmp) / "search" / "records" / f"trial_{record['trial']}.json"
            ends.append(path.stat().st_mtime)
    sampler.stop.set()
    sampler.join()
    samples = sampler.samples

    def rss_at(t: float) -> float:
        before = [r for s, r in samples if s <= t]
        return before[-1] if before else samples[0][1]

    after_trial = [round(rss_at(t), 1) for t in ends]
    # Peaks per window of --trials-per-process trials (10 in process mode): flat windows mean flat memory.
    window = args.trials_per_process if args.mode == "cli" and args.trials_per_process else 10
    warm = min(args.warmup, len(ends))
    warm_end = ends[warm - 1]
    peak_warm = max(r for s, r in samples if s <= warm_end)
    peak_all = max(r for _, r in samples)
    report = {
        "trials": len(result.trials),
        "completed": result.completed,
        "tuner": args.tuner,
        "mode": args.mode if args.mode == "process" else f"cli, --trials-per-process {args.trials_per_process}",
        "data": f"{len(train)} train / {len(val)} validation sequences x {args.cycles} steps x 15 features",
        "seconds": round(time.time() - started, 1),
        "rss_mb_before_search": round(start_rss, 1),
        "rss_mb_after_each_trial": after_trial,
        "peak_rss_mb_first_warmup_trials": round(peak_warm, 1),
        "peak_rss_mb_whole_search": round(peak_all, 1),
        "peak_growth_mb_after_warmup": round(peak_all - peak_warm, 1),
        "rss_growth_mb_trial_warmup_to_last": round(after_trial[-1] - after_trial[warm - 1], 1),
        "window_trials": window,
        "peak_rss_mb_per_window": [
            round(max([r for t, r in samples if lo <= t <= hi] or [0.0]), 1)
            for lo, hi in zip([started] + ends[window - 1::window], ends[window - 1::window] + [ends[-1]])
            if hi > lo
        ],
        "rss_growth_mb_per_trial_after_warmup": round(
            (after_trial[-1] - after_trial[warm - 1]) / max(1, len(after_trial) - warm), 2),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report.items():
        if key not in ("rss_mb_after_each_trial",):
            print(f"{key:40s} {value}")
    print("rss after each trial (MB):", " ".join(f"{v:.0f}" for v in after_trial))


if __name__ == "__main__":
    main()
