"""The README's Python examples run as written (the quick start first), so the README cannot drift."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_readme_python_examples_run_as_written(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / ".ci" / "readme_examples.py"), str(ROOT / "README.md")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = [line for line in done.stdout.splitlines() if line.startswith("README python block")]
    assert ran and ran[0].startswith("README python block 1/") and ran[0].split("(")[0].endswith("ran ")
    assert (tmp_path / "export" / "manifest.json").is_file()  # the quick start's export
