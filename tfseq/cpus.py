"""How many CPUs this process may really use: its affinity mask and its cgroup CPU quota.

``os.cpu_count()`` and the affinity mask both report the host's cores inside a container: a
container limited to 2 CPUs on a 64-core host sees 64. Thread pools sized from them oversubscribe
the quota and stall in the scheduler's throttling. :func:`available_cpus` also reads the cgroup
quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) of the process's cgroup
and its ancestors, and takes the smallest.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")

# Whether TensorFlow's intra-op pool was set by tfseq's own small-machine tuning
# (tfseq.training.threads) rather than by the user: only a user's setting caps tfseq's kernels.
_intra_op_set_by_tfseq = False


def note_intra_op_set_by_tfseq() -> None:
    """Records that tfseq, not the user, set TensorFlow's intra-op thread count."""
    global _intra_op_set_by_tfseq
    _intra_op_set_by_tfseq = True


def intra_op_set_by_tfseq() -> bool:
    return _intra_op_set_by_tfseq


def _affinity() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _quota_v2(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _quota_v1(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The process's CPU quota in CPUs (e.g. 2.0, or 0.5), or None where there is none.

    Args:
        root: Where the cgroup file systems are mounted.
        proc_cgroup: The file naming the process's cgroups.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2: one unified hierarchy
            base, reader = root, _quota_v2
        elif "cpu" in controllers.split(","):
            base = next((root / name for name in (controllers, "cpu", "cpu,cpuacct")
                         if (root / name).is_dir()), root / "cpu")
            reader = _quota_v1
        else:
            continue
        directory = base / path.lstrip("/")
        # The cgroup's own limit and every ancestor's: the tightest one holds.
        while True:
            quota = reader(directory)
            if quota is not None:
                quotas.append(quota)
            if directory == base or base not in directory.parents:
                break
            directory = directory.parent
    return min(quotas) if quotas else None


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup quota (rounded up)."""
    cpus = _affinity()
    quota = cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return cpus
