"""The CPUs a process may use: affinity capped by the cgroup quota, read from real cgroup files."""

from pathlib import Path

import pytest

from tfseq import cpus


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("limit, expected", [("200000 100000\n", 2.0), ("50000 100000\n", 0.5), ("max 100000\n", None)])
def test_cgroup_v2_quota(tmp_path, limit, expected):
    _write(tmp_path / "proc", "0::/docker/abc\n")
    _write(tmp_path / "cg" / "docker" / "abc" / "cpu.max", limit)
    assert cpus.cgroup_quota(tmp_path / "cg", tmp_path / "proc") == expected


def test_cgroup_v2_takes_the_tightest_ancestor(tmp_path):
    _write(tmp_path / "proc", "0::/outer/inner\n")
    _write(tmp_path / "cg" / "outer" / "cpu.max", "300000 100000\n")
    _write(tmp_path / "cg" / "outer" / "inner" / "cpu.max", "max 100000\n")
    assert cpus.cgroup_quota(tmp_path / "cg", tmp_path / "proc") == 3.0


def test_cgroup_v1_quota(tmp_path):
    _write(tmp_path / "proc", "4:memory:/x\n3:cpu,cpuacct:/job\n")
    _write(tmp_path / "cg" / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us", "150000\n")
    _write(tmp_path / "cg" / "cpu,cpuacct" / "job" / "cpu.cfs_period_us", "100000\n")
    assert cpus.cgroup_quota(tmp_path / "cg", tmp_path / "proc") == 1.5
    _write(tmp_path / "cg" / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us", "-1\n")
    assert cpus.cgroup_quota(tmp_path / "cg", tmp_path / "proc") is None


def test_available_cpus_is_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(cpus, "_affinity", lambda: 64)
    monkeypatch.setattr(cpus, "cgroup_quota", lambda: 1.5)
    assert cpus.available_cpus() == 2
    monkeypatch.setattr(cpus, "cgroup_quota", lambda: None)
    assert cpus.available_cpus() == 64
