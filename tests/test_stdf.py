"""STDF in (tfseq.data.stdf, tfseq convert): files written here record by record, read by stdf-convert."""

from __future__ import annotations

import bz2
import gzip
import struct
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# stdf-convert publishes wheels for CPython >= 3.11 only (the test extra leaves it out below that); on 3.10
# tfseq convert says in one line that the reader is missing, which test_stdf's reader-state tests cover on 3.11.
pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="stdf-convert needs CPython >= 3.11")

# --------------------------------------------------------------------------------------------
# A small STDF V4 writer: every record the reader uses, either byte order, optional trailing
# fields left out where asked.


@dataclass
class Writer:
    """Records of one STDF V4 file, in order; ``bytes()`` gives the file."""

    big_endian: bool = False
    records: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.record(0, 10, [("U1", 1 if self.big_endian else 2), ("U1", 4)])  # FAR

    @property
    def order(self) -> str:
        return ">" if self.big_endian else "<"

    def _field(self, kind: str, value: object) -> bytes:
        o = self.order
        if kind in ("U1", "B1"):
            return struct.pack(o + "B", value)
        if kind == "I1":
            return struct.pack(o + "b", value)
        if kind == "U2":
            return struct.pack(o + "H", value)
        if kind == "I2":
            return struct.pack(o + "h", value)
        if kind == "U4":
            return struct.pack(o + "I", value)
        if kind == "R4":
            return struct.pack(o + "f", value)
        if kind == "C1":
            return str(value).encode("latin-1")[:1]
        if kind == "Cn":
            raw = str(value).encode("latin-1")
            return struct.pack("B", len(raw)) + raw
        if kind == "Bn":
            return struct.pack("B", len(value)) + bytes(value)  # type: ignore[arg-type]
        if kind == "N1s":  # packed nibbles, two per byte
            nibbles = list(value)  # type: ignore[call-overload]
            nibbles += [0] * (len(nibbles) % 2)
            return bytes(nibbles[i] | (nibbles[i + 1] << 4) for i in range(0, len(nibbles), 2))
        if kind == "R4s":
            return b"".join(struct.pack(o + "f", v) for v in value)  # type: ignore[attr-defined]
        if kind == "U2s":
            return b"".join(struct.pack(o + "H", v) for v in value)  # type: ignore[attr-defined]
        raise ValueError(kind)

    def record(self, typ: int, sub: int, fields: list[tuple[str, object]]) -> None:
        body = b"".join(self._field(kind, value) for kind, value in fields)
        self.records.append(struct.pack(self.order + "HBB", len(body), typ, sub) + body)

    def mir(self, start_t: int, lot: str = "LOT1") -> None:
        self.record(1, 10, [("U4", start_t), ("U4", start_t), ("U1", 1), ("C1", "P"), ("C1", " "), ("C1", " "),
                            ("U2", 0), ("C1", " "), ("Cn", lot), ("Cn", "PART"), ("Cn", "node"), ("Cn", "tester"),
                            ("Cn", "job"), ("Cn", "1")] + [("Cn", "")] * 24)

    def wir(self, wafer: str, head: int = 1) -> None:
        self.record(2, 10, [("U1", head), ("U1", 255), ("U4", 0), ("Cn", wafer)])

    def pir(self, head: int = 1, site: int = 1) -> None:
        self.record(5, 10, [("U1", head), ("U1", site)])

    def ptr(self, test: int, result: float, text: str = "", *, head: int = 1, site: int = 1, flag: int = 0,
            units: str | None = "V", res_scal: int = 0) -> None:
        fields: list[tuple[str, object]] = [("U4", test), ("U1", head), ("U1", site), ("B1", flag), ("B1", 0),
                                            ("R4", result), ("Cn", text), ("Cn", "")]
        if units is not None:  # the optional trailing fields; None leaves them out
            fields += [("B1", 0), ("I1", res_scal), ("I1", 0), ("I1", 0), ("R4", 0.0), ("R4", 1.0), ("Cn", units)]
        self.record(15, 10, fields)

    def mpr(self, test: int, results: list[float], text: str = "", *, head: int = 1, site: int = 1, flag: int = 0,
            pins: list[int] | None = None) -> None:
        fields: list[tuple[str, object]] = [
            ("U4", test), ("U1", head), ("U1", site), ("B1", flag), ("B1", 0), ("U2", len(results)),
            ("U2", len(results)), ("N1s", [1] * len(results)), ("R4s", results), ("Cn", text), ("Cn", "")]
        if pins is not None:
            fields += [("B1", 0), ("I1", 0), ("I1", 0), ("I1", 0), ("R4", 0.0), ("R4", 1.0), ("R4", 0.0),
                       ("R4", 0.0), ("U2s", pins)]
        self.record(15, 15, fields)

    def prr(self, part_id: str, *, fail: bool = False, hard_bin: int = 1, soft_bin: int = 1, x: int = 0,
            y: int = 0, head: int = 1, site: int = 1, flag: int | None = None) -> None:
        part_flg = flag if flag is not None else (0x08 if fail else 0)
        self.record(5, 20, [("U1", head), ("U1", site), ("B1", part_flg), ("U2", 0), ("U2", hard_bin),
                            ("U2", soft_bin), ("I2", x), ("I2", y), ("U4", 0), ("Cn", part_id), ("Cn", ""),
                            ("Bn", b"")])

    def mrr(self) -> None:
        self.record(1, 20, [("U4", 0), ("C1", " "), ("Cn", ""), ("Cn", "")])

    def part(self, part_id: str, results: dict[int, float], *, texts: dict[int, str] | None = None,
             fail: bool = False, hard_bin: int = 1, soft_bin: int = 1, x: int = 0, y: int = 0) -> None:
        """One device on head 1 site 1: PIR, a PTR per test, PRR."""
        self.pir()
        for test, value in results.items():
            self.ptr(test, value, (texts or {}).get(test, f"t{test}"))
        self.prr(part_id, fail=fail, hard_bin=hard_bin, soft_bin=soft_bin, x=x, y=y)

    def bytes(self) -> bytes:
        return b"".join(self.records)

    def save(self, path: Path) -> Path:
        return store(path, self.bytes())


def store(path: Path, data: bytes) -> Path:
    """Writes ``data`` to ``path``, compressed as its name says (any letter case)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        data = gzip.compress(data)
    elif name.endswith(".bz2"):
        data = bz2.compress(data)
    elif name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(path.stem, data)
        return path
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------
# The assembly, value by value.

from tfseq.data.long_format import load_long_format  # noqa: E402
from tfseq.data.stdf import StdfWarning, is_stdf, read_stdf  # noqa: E402
from tfseq.errors import InputError  # noqa: E402


def read(paths, **kwargs):
    """``read_stdf`` where any note fails the test: the tests that expect one catch it themselves."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", StdfWarning)
        return read_stdf(paths, **kwargs)


def two_insertions(tmp_path: Path, big_endian: bool = False) -> list[Path]:
    """Three devices at wafer sort (start 100), two of them again at final test (start 200)."""
    ws = Writer(big_endian=big_endian)
    ws.mir(100)
    ws.part("a", {10: 1.25, 20: -3.5})
    ws.part("b", {10: 2.5, 20: 0.0})
    ws.part("c", {10: 7.0, 20: 1.0e-9}, fail=True, hard_bin=4, soft_bin=41)
    ws.mrr()
    ft = Writer(big_endian=big_endian)
    ft.mir(200)
    ft.part("b", {10: 2.75, 20: 0.5}, fail=True, hard_bin=6, soft_bin=61)
    ft.part("a", {10: 1.5, 20: -3.25})
    ft.mrr()
    # named so that the file order and the start-time order disagree
    return [ft.save(tmp_path / "1_final.stdf"), ws.save(tmp_path / "2_sort.stdf")]


@pytest.mark.parametrize("big_endian", [False, True], ids=["little-endian", "big-endian"])
def test_insertions_become_steps_in_start_time_order_value_by_value(tmp_path, big_endian):
    table = read(two_insertions(tmp_path, big_endian))
    frame = table.frame
    assert list(frame.columns) == ["device", "insertion", "10:t10", "20:t20", "final_outcome", "final_hard_bin",
                                   "final_soft_bin"]
    assert [p.name for p in table.files] == ["2_sort.stdf", "1_final.stdf"]
    assert frame["device"].tolist() == ["a", "a", "b", "b", "c"]
    assert frame["insertion"].tolist() == [1, 2, 1, 2, 1]
    np.testing.assert_array_equal(frame["10:t10"].to_numpy(), np.float32([1.25, 1.5, 2.5, 2.75, 7.0]))
    np.testing.assert_array_equal(frame["20:t20"].to_numpy(), np.float32([-3.5, -3.25, 0.0, 0.5, 1.0e-9]))
    assert frame["10:t10"].dtype == np.float32
    # the label is the device's last PRR, on every row of the device
    assert frame["final_outcome"].tolist() == ["pass", "pass", "fail", "fail", "fail"]
    assert frame["final_hard_bin"].tolist() == ["1", "1", "6", "6", "4"]
    assert frame["final_soft_bin"].tolist() == ["1", "1", "61", "61", "41"]
    assert table.notes == []


def test_a_v4_2007_file(tmp_path):
    w = Writer(big_endian=True)
    w.record(0, 30, [("Cn", "V4-2007")])  # VUR: the file uses the 2007 addendum
    w.mir(5)
    w.record(1, 90, [("B1", 0), ("U2", 1), ("Cn", "scan"), ("B1", 0), ("U2", 0), ("U2", 0)])  # a V4-2007 PSR
    w.part("a", {1: 0.125}, texts={1: "vddq"})
    path = w.save(tmp_path / "v2007.stdf")
    import stdf_convert

    whole = stdf_convert.tables(str(path))  # every record reads, the 2007 ones included
    assert whole["VUR"]["UPD_NAM"].to_pylist() == [["V4-2007"]] and whole["PSR"]["PSR_NAM"].to_pylist() == ["scan"]
    assert read(path).frame[["device", "1:vddq"]].values.tolist() == [["a", 0.125]]


def test_omitted_optional_fields_latin1_units_and_mpr_pins(tmp_path):
    w = Writer()
    w.mir(1)
    w.pir()
    w.ptr(1, 0.5, "vdd", units=None)  # every optional trailing field left out
    w.ptr(2, 250.0, "idd", units="µA")
    w.mpr(3, [1.0, 2.0, 3.0], "leak", pins=[11, 12, 13])
    w.prr("p1")
    w.pir()
    w.ptr(1, 0.75, "", units=None)  # TEST_TXT given once, empty afterwards
    w.ptr(2, 260.0, "", units="µA")
    w.mpr(3, [4.0, 5.0, 6.0], "")  # RTN_INDX left out: the test's last one applies
    w.prr("p2")
    w.mpr(4, [7.0, 8.0], "")  # outside any part: dropped
    w.mrr()
    frame = read(w.save(tmp_path / "m.stdf")).frame
    assert list(frame.columns[2:-3]) == ["1:vdd", "2:idd", "3:leak[11]", "3:leak[12]", "3:leak[13]"]
    np.testing.assert_array_equal(frame.iloc[:, 2:-3].to_numpy(),
                                  np.float32([[0.5, 250, 1, 2, 3], [0.75, 260, 4, 5, 6]]))


def test_mpr_without_pin_indexes_numbers_pins_by_position(tmp_path):
    w = Writer()
    w.mir(1)
    w.pir()
    w.mpr(7, [0.1, 0.2], "scan")
    w.prr("p1")
    frame = read(w.save(tmp_path / "m.stdf")).frame
    assert list(frame.columns[2:4]) == ["7:scan[0]", "7:scan[1]"]


def test_multi_site_results_go_to_the_open_part_of_their_own_site(tmp_path):
    w = Writer()
    w.mir(1)
    w.pir(site=1)
    w.pir(site=2)
    w.ptr(1, 20.0, "x", site=2)
    w.ptr(1, 10.0, "x", site=1)
    w.pir(head=2, site=1)  # another head, same site number
    w.ptr(1, 30.0, "x", head=2, site=1)
    w.ptr(2, 11.0, "y", site=1)
    w.prr("s1", site=1)
    w.ptr(2, 21.0, "y", site=2)
    w.prr("s2", site=2, fail=True)
    w.ptr(2, 31.0, "y", head=2, site=1)
    w.prr("h2", head=2, site=1)
    frame = read(w.save(tmp_path / "sites.stdf")).frame.set_index("device")
    assert frame.loc["s1", ["1:x", "2:y"]].tolist() == [10.0, 11.0]
    assert frame.loc["s2", ["1:x", "2:y"]].tolist() == [20.0, 21.0]
    assert frame.loc["h2", ["1:x", "2:y"]].tolist() == [30.0, 31.0]
    assert frame["final_outcome"].to_dict() == {"h2": "pass", "s1": "pass", "s2": "fail"}


def test_a_retest_in_a_file_keeps_the_last_test_and_says_so(tmp_path):
    w = Writer()
    w.mir(1)
    w.part("a", {1: 1.0, 2: 2.0}, fail=True, hard_bin=5)
    w.part("b", {1: 3.0, 2: 4.0})
    w.part("a", {1: 1.5}, hard_bin=1)  # the retest ran one test only: its part replaces the first whole
    with pytest.warns(StdfWarning, match="1 earlier test"):
        table = read_stdf(w.save(tmp_path / "r.stdf"))
    frame = table.frame.set_index("device")
    assert frame.loc["a", "1:t1"] == 1.5 and np.isnan(frame.loc["a", "2:t2"])
    assert frame.loc["a", "final_outcome"] == "pass" and frame.loc["a", "final_hard_bin"] == "1"
    assert any("retested" in note for note in table.notes)


@pytest.mark.parametrize("flag, nan", [(0x00, False), (0x80, False), (0x02, True), (0x10, True), (0x12, True)])
def test_results_flagged_invalid_or_not_executed_are_nan(tmp_path, flag, nan):
    w = Writer()
    w.mir(1)
    w.pir()
    w.ptr(1, 5.0, "x", flag=flag)
    w.mpr(2, [6.0, 7.0], "m", flag=flag)
    w.prr("a")
    frame = read(w.save(tmp_path / "f.stdf")).frame
    values = frame[["1:x", "2:m[0]", "2:m[1]"]].to_numpy()[0]
    assert np.isnan(values).all() if nan else values.tolist() == [5.0, 6.0, 7.0]


def test_a_test_number_with_two_names_is_two_columns_and_a_note(tmp_path):
    w = Writer()
    w.mir(1)
    w.part("a", {1: 1.0}, texts={1: "vdd_min"})
    w.pir()
    w.ptr(1, 2.0, "vdd_max")
    w.ptr(1, 3.0, "")  # empty: the last name seen (vdd_max); a second result of it in the part wins
    w.prr("b")
    with pytest.warns(StdfWarning, match="2 different TEST_TXTs"):
        table = read_stdf(w.save(tmp_path / "n.stdf"))
    frame = table.frame.set_index("device")
    assert table.features == ["1:vdd_min", "1:vdd_max"]
    assert frame.loc["a", "1:vdd_min"] == 1.0 and np.isnan(frame.loc["a", "1:vdd_max"])
    assert frame.loc["b", "1:vdd_max"] == 3.0 and np.isnan(frame.loc["b", "1:vdd_min"])


def test_an_empty_test_name_in_a_later_file_takes_the_last_name_seen(tmp_path):
    first, second = Writer(), Writer()
    first.mir(1)
    first.part("a", {1: 1.0}, texts={1: "vdd"})
    second.mir(2)
    second.part("a", {1: 2.0}, texts={1: ""})
    table = read([first.save(tmp_path / "1.stdf"), second.save(tmp_path / "2.stdf")])
    assert table.features == ["1:vdd"]
    assert table.frame["1:vdd"].tolist() == [1.0, 2.0]


def test_part_keys(tmp_path):
    w = Writer()
    w.mir(1, lot="L9")
    w.wir("W3")
    for n, (x, y) in enumerate([(1, 2), (-1, 0)]):
        w.pir()
        w.ptr(9000, 4711.0 + n, "ecid")
        w.ptr(1, float(n), "vdd")
        w.prr("", x=x, y=y)
    path = w.save(tmp_path / "k.stdf")
    by_xy = read(path, part_key="wafer_xy").frame
    assert by_xy["device"].tolist() == ["L9/W3/-1,0", "L9/W3/1,2"]
    assert by_xy["1:vdd"].tolist() == [1.0, 0.0]
    by_chip = read(path, part_key="test:9000")
    assert by_chip.frame["device"].tolist() == ["4711", "4712"]
    assert by_chip.features == ["1:vdd"]  # the identity is not a feature
    with pytest.raises(InputError, match=r"k.stdf: part 1 has an empty PART_ID; expected one for part_key"):
        read(path)
    with pytest.raises(InputError, match="expected part_id, wafer_xy or test:<TEST_NUM>"):
        read(path, part_key="serial")
    with pytest.raises(InputError, match="has no PTR of test 77"):
        read(path, part_key="test:77")


@pytest.mark.parametrize("name", ["x.stdf.gz", "X.STDF.GZ", "x.std.bz2", "X.Std.Bz2", "x.stdf.zip", "X.STD.ZIP",
                                  "X.STDF"])
def test_compressed_and_upper_case_names(tmp_path, name):
    assert is_stdf(name)
    paths = two_insertions(tmp_path)
    w = Writer()
    w.mir(300)
    w.part("a", {10: 9.0, 20: 9.5})
    frame = read(paths + [w.save(tmp_path / name)]).frame
    assert frame.loc[frame["device"] == "a", "10:t10"].tolist() == [1.25, 1.5, 9.0]


def test_a_directory_and_a_glob_of_insertions(tmp_path):
    two_insertions(tmp_path)
    (tmp_path / "notes.txt").write_text("not read")
    assert len(read(tmp_path).frame) == 5
    assert len(read(str(tmp_path / "*.stdf")).frame) == 5
    with pytest.raises(InputError, match="matches no STDF file"):
        read(str(tmp_path / "*.std.gz"))
    with pytest.raises(InputError, match="notes.txt: not an STDF file name"):
        read(tmp_path / "notes.txt")


def truncated(tmp_path: Path, name: str = "cut.stdf") -> tuple[Path, int]:
    w = Writer(big_endian=True)
    w.mir(1)
    w.part("a", {1: 1.0})
    w.part("b", {1: 2.0})
    w.pir()
    w.ptr(1, 3.0, "t1")
    data = w.bytes()[:-5]  # inside the last PTR: part c never finished
    return store(tmp_path / name, data), len(w.records) - 1


@pytest.mark.parametrize("name", ["cut.stdf", "CUT.STDF.GZ", "cut.std.bz2", "Cut.Stdf.Zip"])
def test_a_truncated_file_is_one_line_naming_it_or_salvaged(tmp_path, name):
    path, complete = truncated(tmp_path, name)
    if name.endswith(".GZ"):  # cut the compressed stream too (a bz2 block or a zip is lost whole)
        path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(InputError) as caught:
        read(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: damaged STDF file (") and "\n" not in message
    assert caught.value.arguments == ("salvage",)
    assert f"after {complete} complete records" in message
    with pytest.warns(StdfWarning):
        table = read_stdf(path, salvage=True)
    assert f"salvaged its first {complete} complete records" in table.notes[0]
    assert "1 part(s) have no PRR" in table.notes[1]  # c, cut off: left out
    assert table.frame["device"].tolist() == ["a", "b"]
    assert table.frame["1:t1"].tolist() == [1.0, 2.0]


def test_garbage_is_an_error_even_with_salvage(tmp_path):
    path = tmp_path / "noise.stdf"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    for salvage in (False, True):
        with pytest.raises(InputError, match=r"noise.stdf: damaged or not an STDF file \(no STDF FAR record"):
            read(path, salvage=salvage)
    empty = tmp_path / "empty.stdf"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.stdf"):
        read(empty)


def test_tests_skipped_after_a_fail_are_reported(tmp_path):
    w = Writer()
    w.mir(1)
    w.part("a", {1: 1.0, 2: 2.0, 3: 3.0})
    w.part("b", {1: 1.1, 2: 2.1, 3: 3.1})
    w.part("c", {1: 9.0}, fail=True)  # stop on fail: tests 2 and 3 never ran
    with pytest.warns(StdfWarning, match=r"2 test\(s\) have no result on 1 failing part\(s\) but one on every passing"):
        read_stdf(w.save(tmp_path / "sof.stdf"))


def test_no_pass_fail_indication_is_unknown(tmp_path):
    w = Writer()
    w.mir(1)
    w.pir()
    w.ptr(1, 1.0, "x")
    w.prr("a", flag=0x10)
    assert read(w.save(tmp_path / "u.stdf")).frame["final_outcome"].tolist() == ["unknown"]


def test_a_cut_bz2_stream_says_so(tmp_path):
    path, _ = truncated(tmp_path, "cut.stdf.bz2")
    path.write_bytes(path.read_bytes()[:-12])  # the only bz2 block is lost
    with pytest.raises(InputError, match="cut.stdf.bz2: damaged or not an STDF file \\(a compressed stream cut short"):
        read(path, salvage=True)


# --------------------------------------------------------------------------------------------
# tfseq convert


def test_convert_writes_parquet_atomically_and_reports(tmp_path, capsys):
    from tfseq.cli.main import main

    files = two_insertions(tmp_path)
    w = Writer()
    w.mir(50)
    w.part("a", {10: 0.5, 20: 0.5})
    w.part("a", {10: 0.25, 20: 0.25})
    files.append(w.save(tmp_path / "0_probe.stdf"))
    out = tmp_path / "out" / "long.parquet"
    assert main(["convert", *map(str, files), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "converted 3 insertion(s): 3 devices, 6 rows, 2 features" in captured.out
    assert "tfseq: warning:" in captured.err and "retested" in captured.err
    frame = pd.read_parquet(out)
    assert frame.loc[frame["device"] == "a", "10:t10"].tolist() == [0.25, 1.25, 1.5]
    assert [p.name for p in out.parent.iterdir()] == ["long.parquet"]  # nothing partial left
    # an existing file is kept; --overwrite replaces it
    assert main(["convert", str(files[0]), "--out", str(out)]) == 2
    assert "long.parquet: already exists; choose another --out or pass --overwrite." in capsys.readouterr().err
    assert main(["convert", str(files[0]), "--out", str(out), "--overwrite"]) == 0
    assert len(pd.read_parquet(out)) == 2


@pytest.mark.parametrize("argv, message", [
    (["--part-key", "serial"], "Received an invalid value for argument --part-key, expected part_id, wafer_xy"),
    (["--out", "x.csv"], "expected a .parquet file"),
])
def test_convert_usage_errors_name_the_flag(tmp_path, capsys, argv, message):
    from tfseq.cli.main import main

    files = two_insertions(tmp_path)
    args = ["convert", str(files[0]), "--out", str(tmp_path / "o.parquet")] + argv
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_convert_on_a_damaged_file_exits_2_naming_it_and_salvages_on_request(tmp_path, capsys):
    from tfseq.cli.main import main

    path, _ = truncated(tmp_path)
    out = tmp_path / "o.parquet"
    assert main(["convert", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tfseq: error: {path}: damaged STDF file (truncated") and "--salvage" in err
    assert not out.exists()
    assert main(["convert", str(path), "--out", str(out), "--salvage"]) == 0
    assert "salvaged its first" in capsys.readouterr().err
    assert pd.read_parquet(out)["device"].tolist() == ["a", "b"]


def test_without_stdf_convert_the_command_says_how_to_install_it(tmp_path):
    import subprocess
    import sys

    path = two_insertions(tmp_path)[0]
    code = ("import sys\nsys.modules['stdf_convert'] = None  # as if not installed\n"
            "from tfseq.cli.main import main\n"
            f"sys.exit(main(['convert', {str(path)!r}, '--out', {str(tmp_path / 'o.parquet')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "tfseq: error: Reading STDF files needs the package 'stdf-convert', which is not installed; install it "
        "with: pip install 'stdf-convert~=0.3.0' (Python >= 3.11), or pip install 'tfseq[stdf]'"]


def test_another_minor_version_of_stdf_convert_is_refused_with_the_install_command(tmp_path):
    import subprocess
    import sys

    path = two_insertions(tmp_path)[0]
    code = ("import sys\nimport stdf_convert\nstdf_convert.__version__ = '0.4.0'  # as if 0.4 were installed\n"
            "from tfseq.cli.main import main\n"
            f"sys.exit(main(['convert', {str(path)!r}, '--out', {str(tmp_path / 'o.parquet')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("tfseq: error: Reading STDF files needs stdf-convert~=0.3.0 (its API changed "
                                  "between minor versions), found stdf-convert 0.4.0; install it with: pip install")


def test_convert_help_has_examples(capsys):
    from tfseq.cli.main import main

    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    out = capsys.readouterr().out
    assert "tfseq convert lot7/*.stdf --out lot7.parquet" in out and "--part-key" in out


# --------------------------------------------------------------------------------------------
# Real tester output: the demo files the pystdf sdist ships (big-endian, ~1,600 parts each).


@pytest.fixture(scope="module")
def tester_files(request, tmp_path_factory):
    import subprocess
    import sys
    import tarfile

    # pytest's cache keeps the download between runs; without its plugin (-p no:cacheprovider), a temporary folder
    cache = request.config.cache.mkdir("pystdf-1.4.0") if getattr(request.config, "cache", None) else \
        tmp_path_factory.mktemp("pystdf-1.4.0")
    sdist = cache / "pystdf-1.4.0.tar.gz"
    if not sdist.exists():
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--timeout", "20",
                   "--retries", "1", "pystdf==1.4.0", "-d", str(cache)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            pytest.skip("the package registry is out of reach: pip download timed out")
        if done.returncode != 0 or not sdist.exists():
            pytest.skip(f"the package registry is out of reach: {done.stderr.strip().splitlines()[-1:]}")
    folder = cache / "data"
    if not folder.exists():
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith("pystdf-1.4.0/data/") and m.isfile()]
            for member in members:
                member.name = member.name.removeprefix("pystdf-1.4.0/")
            archive.extractall(cache, members=members, filter="data")
    return sorted(folder.glob("*.stdf"))


def test_real_tester_files(tester_files):
    import stdf_convert

    assert [p.name for p in tester_files] == ["demofile.stdf", "lot2.stdf", "lot3.stdf"]
    raw = stdf_convert.tables(str(tester_files[1]), ["PTR", "PRR"])
    with pytest.warns(StdfWarning, match="different TEST_TXTs"):  # the files name tests 1132 ... 1160 twice
        table = read_stdf(tester_files)
    frame = table.frame
    assert [p.name for p in table.files] == ["lot2.stdf", "demofile.stdf", "lot3.stdf"]  # by START_T
    assert len(frame) == 1569 + 1619 + 1619
    lot2 = frame[frame["insertion"] == 1].set_index("device")
    prr = raw["PRR"].to_pandas().set_index("PART_ID")
    assert lot2.index.nunique() == len(prr) == 1569
    # results checked against the reader's own tables: the file's first PTRs, whose part the next PRR closes
    ptr = raw["PTR"].to_pandas()
    part = prr[prr["sequence_number"] > ptr["sequence_number"].iloc[0]].index[0]
    for first in ptr.iloc[:5].itertuples():
        column = next(c for c in table.features if c.startswith(f"{first.TEST_NUM}:"))
        assert lot2.loc[part, column] == first.RESULT
    # the label of a device is its last insertion's PRR
    last = frame.groupby("device").tail(1).set_index("device")
    assert (frame["final_outcome"] == frame["device"].map(last["final_outcome"])).all()
    assert set(frame["final_outcome"]) == {"pass", "fail"}
    with pytest.warns(StdfWarning):
        by_xy = read_stdf(tester_files, part_key="wafer_xy")
    assert "lot2.stdf: 113 earlier test(s) of 113 retested device(s) dropped" in by_xy.notes[0]  # dice retested
    assert by_xy.frame["device"].str.match(r"^[\w-]+/[\w-]+/-?\d+,-?\d+$").all()


# --------------------------------------------------------------------------------------------
# STDF as DATA, and the path a test engineer takes: a folder of insertions to a model.


def insertions_folder(folder: Path, devices: int = 40, steps: int = 3) -> Path:
    """``steps`` insertions (readpoints) of the same devices; failing ones drift upwards."""
    rng = np.random.default_rng(1)
    fails = rng.random(devices) < 0.3
    fails[:2] = [True, False]
    folder.mkdir(parents=True, exist_ok=True)
    for step in range(steps):
        w = Writer(big_endian=step % 2 == 1)
        w.mir(1_000 + step)
        for d in range(devices):
            drift = (step + 1) * (1.0 if fails[d] else 0.05)
            last = step == steps - 1
            w.part(f"D{d:03d}", {100 + t: float(rng.normal() + drift * (t + 1)) for t in range(4)},
                   fail=bool(fails[d] and last), hard_bin=7 if fails[d] and last else 1)
        w.save(folder / f"readpoint_{step}.stdf.gz")
    return folder


def test_stdf_files_are_data_for_every_command(tmp_path):
    folder = insertions_folder(tmp_path / "lot")
    data, task = load_long_format(folder, id_col="device", time_col="insertion", label_col="final_outcome")
    assert task == "binary" and data.class_names == ["pass", "fail"]
    assert data.feature_names == ["100:t100", "101:t101", "102:t102", "103:t103"]  # no bin, no flag
    assert data.x.shape == (40, 3, 4) and (data.lengths == 3).all()
    table = read(folder)
    first = table.frame[table.frame["device"] == "D000"]
    np.testing.assert_array_equal(data.x[0], first[data.feature_names].to_numpy())
    globbed, _ = load_long_format(tmp_path / "lot" / "*.stdf.gz", id_col="device", time_col="insertion",
                                  label_col="final_hard_bin")
    assert sorted(globbed.class_names) == ["1", "7"]


@pytest.mark.slow
def test_a_folder_of_insertions_to_a_model(tmp_path):
    from tfseq.cli.main import main

    folder = insertions_folder(tmp_path / "lot")
    out = tmp_path / "lot.parquet"
    assert main(["convert", str(folder), "--out", str(out)]) == 0
    common = ["--id-col", "device", "--time-col", "insertion", "--label-col", "final_outcome", "--epochs", "1",
              "--units", "4", "--no-bidirectional"]
    assert main(["train", str(out), *common, "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "model.keras").is_file()
    spec = (tmp_path / "run" / "contract.json").read_text()
    assert '"100:t100"' in spec and "final_hard_bin" not in spec.replace('"label_col": "final_outcome"', "")
    # and straight from the STDF folder
    assert main(["train", str(folder), *common, "--out", str(tmp_path / "run2")]) == 0
    assert main(["evaluate", str(tmp_path / "run2"), str(tmp_path / "lot" / "*.stdf.gz")]) == 0
    assert main(["predict", str(tmp_path / "run2"), str(folder), "--out", str(tmp_path / "p.csv")]) == 0
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert len(predictions) == 40 and {"device", "predicted", "p_fail"} <= set(predictions.columns)


def test_retests_as_steps(tmp_path):
    first, second = Writer(), Writer()
    first.mir(1)
    first.part("a", {1: 1.0}, fail=True)
    first.part("b", {1: 2.0})
    first.part("a", {1: 1.5})  # retest
    first.part("a", {1: 1.75})  # and again
    second.mir(2)
    second.part("a", {1: 3.0}, fail=True, hard_bin=9)
    second.part("b", {1: 4.0})
    paths = [first.save(tmp_path / "1.stdf"), second.save(tmp_path / "2.stdf")]
    with pytest.warns(StdfWarning, match="1 retested device"):
        table = read_stdf(paths, retests="steps")
    frame = table.frame
    assert frame["device"].tolist() == ["a", "a", "a", "a", "b", "b"]
    assert frame["1:t1"].tolist() == [1.0, 1.5, 1.75, 3.0, 2.0, 4.0]
    assert frame["insertion"].tolist() == [1, 2, 3, 4, 1, 4]  # (file, test) pairs in order
    assert frame["final_outcome"].tolist() == ["fail"] * 4 + ["pass"] * 2
    with pytest.raises(InputError, match="argument retests, expected one of last, steps, got 'first'"):
        read(paths, retests="first")


def test_mpr_pin_indexes_follow_each_test(tmp_path):
    big = 4_000_000_001  # TEST_NUM is a U4
    w = Writer()
    w.mir(1)
    w.pir()
    w.mpr(1, [1.0, 2.0], "a", pins=[5, 6])
    w.mpr(big, [3.0, 4.0], "b", pins=[7, 8])
    w.prr("p1")
    w.pir()
    w.mpr(big, [13.0, 14.0], "")  # the big test's pins 7, 8
    w.mpr(1, [11.0, 12.0], "", pins=[6, 5])  # new indexes: the same pins, in the other order
    w.prr("p2")
    frame = read(w.save(tmp_path / "m.stdf")).frame.set_index("device")
    names = ["1:a[5]", "1:a[6]", f"{big}:b[7]", f"{big}:b[8]"]
    assert list(frame.columns[1:-3]) == names
    assert frame.loc["p2", names].tolist() == [12.0, 11.0, 13.0, 14.0]


def test_a_corrupted_record_length_in_the_middle(tmp_path):
    w = Writer()
    w.mir(1)
    w.part("a", {1: 1.0})
    w.part("b", {1: 2.0})
    data = bytearray(w.bytes())
    at = sum(len(r) for r in w.records[:6])  # the header of part b's PTR (after FAR, MIR, part a, b's PIR)
    data[at:at + 2] = b"\xff\xff"  # its REC_LEN now runs past the end of the file
    path = store(tmp_path / "bad.stdf", bytes(data))
    with pytest.raises(InputError, match=r"bad.stdf: damaged STDF file \(truncated: ends inside a record at byte"):
        read(path)
    with pytest.warns(StdfWarning):
        table = read_stdf(path, salvage=True)
    assert table.frame["device"].tolist() == ["a"]
    assert "salvaged its first 6 complete records" in table.notes[0] and "1 part(s) have no PRR" in table.notes[1]


def test_start_times_found_late_in_a_file_and_a_file_named_twice(tmp_path):
    late, early = Writer(), Writer()
    for _ in range(300):  # 78 kB of ATR records before the MIR: the start time is found by reading all
        late.record(0, 20, [("U4", 0), ("Cn", "x" * 250)])
    late.mir(200)
    late.part("a", {1: 2.0})
    early.mir(100)
    early.part("a", {1: 1.0})
    paths = [late.save(tmp_path / "late.stdf"), early.save(tmp_path / "early.stdf")]
    table = read(paths + [paths[0]])
    assert [p.name for p in table.files] == ["early.stdf", "late.stdf"]
    assert table.frame["1:t1"].tolist() == [1.0, 2.0]
