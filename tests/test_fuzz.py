"""Malformed input, fuzzed: every generated file and argument set ends in a result or one clean line.

Hypothesis writes hundreds of long-format CSV and Parquet files (strings among numbers, NaN and
inf, empty cells, duplicate rows, labels that change inside a sequence, odd headers, binary
junk) and combinations of arguments. Loading must return sequences or raise ``InputError``;
the command line must exit 0 or 2 with one line on stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tfseq.cli.main import main
from tfseq.data.long_format import load_long_format
from tfseq.data.sequences import SequenceSet
from tfseq.errors import InputError

CASES = 250
COLUMNS = ["device_id", "cycle", "status", "vdd", "idd"]
finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)

cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-3, 3),
    st.sampled_from(["", "pass", "fail", "x", "1e3", "nan", "inf", " ", "1,5", "\"", "NULL"]),
    st.none(),
)


@st.composite
def long_frames(draw):
    """Well-formed long frames, then zero to three defects each, so both outcomes are exercised."""
    lengths = draw(st.lists(st.integers(1, 4), min_size=0, max_size=5))
    rows = []
    for i, length in enumerate(lengths):
        status = ["pass", "fail"][i % 2] if i < 2 else draw(st.sampled_from(["pass", "fail"]))
        for t in range(length):
            rows.append({"device_id": f"d{i}", "cycle": t + 1, "status": status,
                         "vdd": draw(finite), "idd": draw(finite)})
    frame = pd.DataFrame(rows, columns=COLUMNS).astype(object)
    if len(frame):
        frame = frame.sample(frac=1.0, random_state=draw(st.integers(0, 9)))  # any row order
    for _ in range(draw(st.integers(0, 3))):
        defect = draw(st.sampled_from(["cell", "drop_column", "rename", "duplicate_row", "extra_column"]))
        if defect == "cell" and len(frame):
            frame = frame.astype(object)
            row = draw(st.integers(0, len(frame) - 1))
            frame.iloc[row, draw(st.integers(0, frame.shape[1] - 1))] = draw(cells)
        elif defect == "drop_column" and frame.shape[1] > 1:
            frame = frame.drop(columns=[draw(st.sampled_from(list(frame.columns)))])
        elif defect == "rename":
            frame = frame.rename(columns={draw(st.sampled_from(list(frame.columns))): draw(
                st.sampled_from(["Status", "", "device id", "vdd"]))})
        elif defect == "duplicate_row" and len(frame):
            frame = pd.concat([frame, frame.iloc[[0]]])
        elif defect == "extra_column":
            frame["note"] = draw(st.sampled_from(["x", 1.5, None]))
    return frame


def _mostly_none(*values):
    return st.sampled_from([None] * (2 * len(values)) + list(values))


arguments = st.fixed_dictionaries({
    "features": _mostly_none("vdd", "vdd,idd", "idd,vdd", "vdd,vdd", ",", "nope"),
    "max_steps": _mostly_none(-1, 0, 1, 2, 5),
    "predict_at": _mostly_none(-1, 0, 1, 3),
    "fill": _mostly_none("ffill", "zero", "mean"),
    "task": _mostly_none("binary", "multiclass", "regression", "ranking"),
})


def _write(frame: pd.DataFrame, path, kind: str) -> None:
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif frame.columns.size == 0:
        path.write_bytes(b"")
    else:  # Parquet needs distinct column names and one type per column
        frame = frame.set_axis([f"{c}" if list(frame.columns).index(c) == k else f"{c}.{k}"
                                for k, c in enumerate(frame.columns)], axis=1)
        for column in frame.columns:  # numbers stay numbers; a column with a stray string becomes text
            try:
                frame[column] = pd.to_numeric(frame[column])
            except (ValueError, TypeError):
                frame[column] = frame[column].map(lambda v: None if v is None else str(v))
        frame.to_parquet(path)


def _check_loaded(data: SequenceSet, task: str) -> None:
    assert data.x.ndim == 3 and data.x.dtype == np.float32 and len(data) > 0
    assert np.isfinite(data.x).all()
    assert len(data.ids) == len(data) and len(set(map(str, data.ids))) == len(data)
    if task in ("binary", "multiclass"):
        assert data.class_names and int(np.max(data.y)) < len(data.class_names)


@settings(max_examples=CASES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=long_frames(), args=arguments, kind=st.sampled_from(["csv", "parquet"]))
def test_loading_malformed_files_gives_sequences_or_an_input_error(tmp_path, frame, args, kind):
    path = tmp_path / f"data.{kind}"
    _write(frame, path, kind)
    try:
        data, task = load_long_format(path, id_col="device_id", time_col="cycle", label_col="status", **args)
    except InputError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message
        event("refused")
        return
    event(f"loaded ({task})")
    _check_loaded(data, task)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=300), kind=st.sampled_from(["csv", "parquet"]))
def test_binary_junk_is_refused_cleanly(tmp_path, junk, kind):
    path = tmp_path / f"junk.{kind}"
    path.write_bytes(junk)
    try:
        load_long_format(path, id_col="device_id", time_col="cycle", label_col="status")
    except InputError as exc:
        assert "\n" not in str(exc)


flags = st.lists(
    st.sampled_from([
        "--id-col", "--time-col", "--label-col", "--features", "--max-steps", "--predict-at", "--fill",
        "--task", "--epochs", "--units", "--batch-size", "--cell", "--precision", "--seed", "--strategy",
        "0", "-1", "x", "1,0", "lstm", "auto", "device_id", "cycle", "status", "--window", "--horizon",
        "--target", "--config", "missing.yaml",
    ]),
    max_size=8,
)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(argv=flags, command=st.sampled_from(["train", "evaluate", "predict", "export", "tune", "demo"]))
def test_argument_combinations_never_end_in_a_traceback(argv, command):
    # the data path never exists, so no combination reaches training: each must fail fast and cleanly
    err = io.StringIO()
    import contextlib

    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main([command, "no/such/data.csv", *argv, "--out", "no/such/out"])
        except SystemExit as exit_:  # --help and --version exit through argparse
            status = exit_.code
    text = err.getvalue()
    assert status in (0, 2), (status, text)
    assert "Traceback" not in text
    if status == 2:
        assert text.count("\n") == 1, text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_need_a_fill(tmp_path, value):
    frame = pd.DataFrame({"device_id": ["a", "a", "b", "b"], "cycle": [1, 2, 1, 2],
                          "status": ["pass", "pass", "fail", "fail"], "vdd": [1.0, value, 1.1, 1.2]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(InputError, match="vdd"):
        load_long_format(tmp_path / "d.csv", id_col="device_id", time_col="cycle", label_col="status")


@pytest.fixture(scope="module")
def vdd_idd_run(tmp_path_factory):
    """A tiny RUN trained on the columns the malformed frames are made of."""
    root = tmp_path_factory.mktemp("fuzz_run")
    rng = np.random.default_rng(0)
    rows = [{"device_id": f"d{i}", "cycle": t + 1, "status": ["pass", "fail"][i % 2],
             "vdd": float(rng.normal()), "idd": float(rng.normal())} for i in range(40) for t in range(4)]
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["train", str(root / "train.csv"), "--id-col", "device_id", "--time-col", "cycle",
                     "--label-col", "status", "--out", str(root / "run"), "--units", "2", "--epochs", "1",
                     "--no-bidirectional"]) == 0
    return root / "run"


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=long_frames(), kind=st.sampled_from(["csv", "parquet"]), block=st.sampled_from(["3", "100000"]))
def test_predict_on_malformed_files_through_the_command_line(vdd_idd_run, tmp_path, frame, kind, block):
    """The whole command: streamed block reader, contract checks, exit status and the one line."""
    path = tmp_path / f"new.{kind}"
    _write(frame, path, kind)
    out = tmp_path / "p.csv"
    out.unlink(missing_ok=True)  # hypothesis reuses tmp_path across examples
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["predict", str(vdd_idd_run), str(path), "--out", str(out), "--block-rows", block])
    text = err.getvalue()
    assert status in (0, 2), (status, text)
    assert "Traceback" not in text
    if status == 2:
        assert text.count("\n") == 1 and text.startswith("tfseq: error:"), text
        assert not out.exists()  # nothing half-written
        assert not list(tmp_path.glob(".p.csv.*"))
        event("refused")
    else:
        predictions = pd.read_csv(out)
        assert list(predictions.columns[1:]) == ["predicted", "p_pass", "p_fail", "out_of_range"]
        event("predicted")
