"""One error policy: each error class carries its exit status; one handler reads it everywhere."""

import errno
import os
import subprocess
import sys

import pytest

from tfseq.errors import (
    ExportError,
    InputError,
    MissingDependencyError,
    ParityError,
    SpecError,
    describe,
    exit_code,
)


@pytest.mark.parametrize("exc, status, start", [
    (InputError("bad column"), 2, "tfseq: error: bad column"),
    (SpecError("bad units"), 2, "tfseq: error: bad units"),
    (MissingDependencyError("ai-edge-litert", "Running TF Lite files"), 2,
     "tfseq: error: Running TF Lite files needs the package 'ai-edge-litert'"),
    (ModuleNotFoundError("No module named 'ai_edge_litert'", name="ai_edge_litert"), 2,
     "tfseq: error: the package 'ai_edge_litert' is not installed; install it with: pip install ai-edge-litert"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/out.csv"), 2,
     "tfseq: error: /data/out.csv: No space left on device"),
    (ParityError("export of lstm missed its parity thresholds"), 3, "tfseq: export of lstm missed"),
    (ExportError("the converter crashed"), 1, "tfseq: internal error: ExportError: the converter crashed"),
    (RuntimeError("a bug"), 1, "tfseq: internal error: RuntimeError: a bug"),
    (KeyboardInterrupt(), 130, "tfseq: interrupted"),
])
def test_each_error_has_one_line_and_its_status(exc, status, start):
    line, code = describe(exc)
    assert code == status == exit_code(exc)
    assert line.startswith(start) and "\n" not in line


def test_library_errors_are_also_the_builtin_types_users_catch():
    assert issubclass(InputError, ValueError) and issubclass(MissingDependencyError, ImportError)
    assert issubclass(ParityError, ExportError) and issubclass(ExportError, RuntimeError)


def test_an_export_below_its_thresholds_exits_3_with_a_plain_message(tiny_run, tmp_path, capsys, monkeypatch):
    from tfseq.cli.main import main
    from tfseq.export import verify

    # Demand bit-exact dynamic-range artifacts: a real export then misses the threshold.
    monkeypatch.setitem(verify.THRESHOLDS, "tflite-dynamic", {"max_abs_diff": 0.0})
    run, _ = tiny_run
    status = main(["export", str(run), "--out", str(tmp_path / "export"), "--format", "tflite",
                   "--quantize", "dynamic"])
    err = capsys.readouterr().err.strip()
    assert status == 3, err
    assert err.startswith("tfseq: export of") and "parity thresholds" in err and "--allow-degraded" in err
    assert "internal error" not in err and "TFSEQ_DEBUG" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "export").exists()  # nothing was written


BLOCKED = ("import sys; sys.modules['ai_edge_litert'] = None; "
           "from tfseq.cli.main import main; sys.exit(main(sys.argv[1:]))")


def test_a_missing_litert_stops_the_demo_before_any_work(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-c", BLOCKED, "demo", "--devices", "100", "--epochs", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip().splitlines()
    assert err[-1].startswith("tfseq: error:") and "pip install ai-edge-litert" in err[-1]
    assert "data:" not in done.stdout and not out.exists()  # no data made, no model trained


def _fsize_limited(args, limit=100):
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "from tfseq.cli.main import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


@pytest.mark.slow
@pytest.mark.parametrize("processes", [["--trials-per-process", "0"], ["--trials-per-process", "1"]],
                         ids=["one_process", "child_processes"])
def test_a_full_disk_during_tune_exits_2_in_the_main_process_and_in_child_processes(tiny_run, tmp_path, processes):
    _, data = tiny_run
    done = _fsize_limited(["tune", str(data), "--id-col", "device_id", "--time-col", "cycle", "--label-col",
                           "status", "--out", str(tmp_path / "search"), "--trials", "1", "--epochs", "1",
                           *processes])
    lines = [line for line in done.stderr.strip().splitlines() if line.startswith("tfseq:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert lines and lines[-1].startswith("tfseq: error:") and "too large" in lines[-1].lower()


def test_library_errors_name_python_arguments_and_the_cli_shows_flags(tmp_path, capsys):
    import numpy as np
    import pandas as pd

    from tfseq.cli.main import main
    from tfseq.data.long_format import load_long_format

    frame = pd.DataFrame({"id": ["a", "a", "b", "b"], "t": [1, 2, 1, 2], "f": [1.0, np.nan, 2.0, 3.0],
                          "y": [0, 0, 1, 1]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(InputError, match=r"or pass fill ffill\|zero\.$") as raised:
        load_long_format(tmp_path / "d.csv", id_col="id", time_col="t", label_col="y")
    assert "--" not in str(raised.value)
    status = main(["train", str(tmp_path / "d.csv"), "--id-col", "id", "--time-col", "t", "--label-col", "y",
                   "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and err.rstrip().endswith("or pass --fill ffill|zero.")
    with pytest.raises(InputError, match="of id_col not found"):
        load_long_format(tmp_path / "d.csv", id_col="ident", time_col="t", label_col="y")
    assert main(["train", str(tmp_path / "d.csv"), "--id-col", "ident", "--time-col", "t", "--label-col", "y",
                 "--out", str(tmp_path / "run")]) == 2
    assert "column 'ident' of --id-col not found" in capsys.readouterr().err


def test_the_console_entry_exits_at_once_with_every_file_whole_and_its_status(tiny_run, tmp_path):
    """``python -m tfseq`` (the console script's :func:`entry`) leaves by ``os._exit`` once TensorFlow
    is loaded: the predictions it wrote are whole, the same bytes as in-process; errors keep status 2."""
    from tfseq.cli.main import main

    run, data = tiny_run
    assert main(["predict", str(run), str(data), "--out", str(tmp_path / "in_process.csv")]) == 0
    command = [sys.executable, "-m", "tfseq", "predict", str(run), str(data), "--out", str(tmp_path / "entry.csv")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "entry.csv").read_bytes() == (tmp_path / "in_process.csv").read_bytes()
    assert done.stdout.strip(), "what predict printed was lost at the exit"

    broken = tmp_path / "no_features.csv"
    broken.write_text("device_id,cycle\nd1,1\n")
    done = subprocess.run([sys.executable, "-m", "tfseq", "predict", str(run), str(broken), "--out",
                           str(tmp_path / "never.csv")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().startswith("tfseq: error:") and not (tmp_path / "never.csv").exists()
