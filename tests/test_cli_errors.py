"""Bad input: one line naming the file, the column or argument, what was found and what was expected; exit 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tfseq.cli.main import main

COLS = ["--id-col", "device_id", "--time-col", "cycle", "--label-col", "status"]


def good_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n, steps = 24, 4
    return pd.DataFrame({
        "device_id": np.repeat([f"D{i:02d}" for i in range(n)], steps),
        "cycle": np.tile(np.arange(1, steps + 1), n),
        "vdd": rng.normal(1.0, 0.1, n * steps),
        "idd": rng.normal(250, 5, n * steps),
        "status": np.repeat(np.where(np.arange(n) % 4 == 0, "fail", "pass"), steps),
    })


def _write(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    _write(good_frame(), root / "good.csv")
    rc = main(["train", str(root / "good.csv"), *COLS, "--out", str(root / "run"), "--units", "4",
               "--epochs", "1", "--no-bidirectional"])
    assert rc == 0
    return root


def _edit(edit):
    def make(tmp):
        frame = good_frame()
        return _write(edit(frame) if edit else frame, tmp / "data.csv")
    return make


def _raw(content: bytes, name: str = "data.csv"):
    def make(tmp):
        (tmp / name).write_bytes(content)
        return tmp / name
    return make


def _set(frame, row, col, value):
    frame[col] = frame[col].astype(object) if isinstance(value, str) else frame[col]
    frame.loc[row, col] = value
    return frame


TRAIN = lambda data, run, tmp: ["train", str(data), *COLS, "--out", str(tmp / "new_run")]  # noqa: E731
PREDICT = lambda data, run, tmp: ["predict", str(run), str(data), "--out", str(tmp / "p.csv")]  # noqa: E731
EVALUATE = lambda data, run, tmp: ["evaluate", str(run), str(data)]  # noqa: E731

CASES = {
    # name: (file maker, command, fragments the one line must hold)
    "missing file": (lambda tmp: tmp / "nope.csv", TRAIN, ["nope.csv", "no such data file"]),
    "empty file": (_raw(b""), TRAIN, ["data.csv", "empty", "expected a header"]),
    "unreadable parquet": (_raw(b"\x00\x01garbage", "data.parquet"), TRAIN, ["data.parquet", "unreadable PARQUET"]),
    "unsupported type": (_raw(b"a,b\n1,2\n", "data.xlsx"), TRAIN, ["data.xlsx", "expected a long-format .csv"]),
    "header only": (_raw(b"device_id,cycle,vdd,idd,status\n"), TRAIN, ["data.csv", "no rows"]),
    "misspelled column": (_edit(lambda f: f.rename(columns={"cycle": "cylce"})), TRAIN,
                          ["data.csv", "'cycle'", "--time-col", "did you mean 'cylce'"]),
    "non-numeric feature": (_edit(lambda f: _set(f, 5, "vdd", "1.0V")), lambda d, r, t: TRAIN(d, r, t)
                            + ["--features", "vdd,idd"], ["data.csv", "'vdd'", "'1.0V'", "expected numbers"]),
    "nan feature": (_edit(lambda f: _set(f, 6, "idd", np.nan)), TRAIN, ["data.csv", "'idd'", "nan", "--fill"]),
    "inf feature": (_edit(lambda f: _set(f, 7, "vdd", np.inf)), TRAIN, ["data.csv", "'vdd'", "inf", "--fill"]),
    "duplicate rows": (_edit(lambda f: pd.concat([f, f.iloc[[3]]])), TRAIN,
                       ["data.csv", "duplicate rows", "'D00'", "one row per sequence and step"]),
    "single class": (_edit(lambda f: f.assign(status="pass")), TRAIN, ["data.csv", "'status'", "single class",
                                                                       "at least two"]),
    "label changes in a sequence": (_edit(lambda f: _set(f, 5, "status", "fail")), TRAIN,
                                    ["data.csv", "'status'", "changes within device_id 'D01'", "one target"]),
    "bad config key": (lambda tmp: (tmp / "c.yaml").write_text("id-col: device_id\nepoch: 3\n") and _edit(None)(tmp),
                       lambda d, r, t: ["train", str(d), "--config", str(t / "c.yaml"), "--out", str(t / "x")],
                       ["c.yaml", "'epoch'", "did you mean 'epochs'"]),
    "existing run": (_edit(None), lambda d, r, t: ["train", str(d), *COLS, "--out", str(r)], ["run", "already exists"]),
    "unseen class at predict": (_edit(lambda f: f.assign(status=f.status.where(f.device_id != "D01", "scrap"))), PREDICT,
                                ["data.csv", "'status'", "'scrap'", "never saw", "'pass', 'fail'"]),
    "unseen class at evaluate": (_edit(lambda f: f.replace({"status": {"fail": "FAIL"}})), EVALUATE,
                                 ["data.csv", "'FAIL'", "never saw"]),
    "missing feature at predict": (_edit(lambda f: f.drop(columns="idd")), PREDICT,
                                   ["data.csv", "'idd'", "--features", "not found"]),
    "renamed feature at predict": (_edit(lambda f: f.rename(columns={"vdd": "Vdd"})), PREDICT,
                                   ["data.csv", "'vdd'", "did you mean 'Vdd'"]),
    "no label at evaluate": (_edit(lambda f: f.drop(columns="status")), EVALUATE, ["data.csv", "'status'", "label"]),
    "min-recall out of range": (_edit(None), lambda d, r, t: EVALUATE(d, r, t) + ["--min-recall", "1.5"],
                                ["--min-recall", "(0, 1]", "1.5"]),
    "not a run dir": (_edit(None), lambda d, r, t: ["evaluate", str(t), str(d)], ["contract.json"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_exit_status_2(name, trained, tmp_path, capsys):
    make, command, fragments = CASES[name]
    data = make(tmp_path)
    rc = main(command(data, trained / "run", tmp_path))
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("tfseq: error: ") and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not (tmp_path / "new_run").exists() and not (tmp_path / "p.csv").exists()


def test_tfseq_warnings_print_as_one_line_and_others_as_python_prints_them():
    import io

    from tfseq.cli.main import _show_warning
    from tfseq.data.stdf import StdfWarning

    buffer = io.StringIO()
    _show_warning(StdfWarning("lot7_ft.stdf: 12 parts retested; the last test of each is kept"), StdfWarning,
                  "/work/main/tfseq/data/datasets.py", 88, file=buffer)
    assert buffer.getvalue() == "tfseq: warning: lot7_ft.stdf: 12 parts retested; the last test of each is kept\n"
    buffer = io.StringIO()
    _show_warning(UserWarning("from elsewhere"), UserWarning, "x.py", 3, file=buffer)
    assert "tfseq: warning" not in buffer.getvalue()  # left to Python's (here pytest's) own handler
