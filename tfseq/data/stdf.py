"""STDF V4 / V4-2007 test files in, long format out: one row per (device, insertion).

The records are read by ``stdf-convert`` (an optional dependency: ``pip install
'stdf-convert~=0.3.0'``, Python >= 3.11), which gives one Arrow table per record type
(:mod:`tfseq.data.stdf_files` reads the files); this module assembles them. The rules (each documented in ``docs/guide/convert.md``):

- **Device.** ``part_key`` chooses the part identity: ``"part_id"`` (the PRR's PART_ID),
  ``"wafer_xy"`` (MIR LOT_ID / WIR WAFER_ID / PRR X_COORD,Y_COORD) or ``"test:<TEST_NUM>"`` (the
  result of that test, e.g. an electronic chip id; that test is then not a feature). The same
  device across files is one sequence.
- **Step.** Each file is one insertion; ``insertion`` numbers the files 1, 2, ... in order of
  their MIR START_T (ties keep the order given).
- **Features.** PTR results and MPR results (one column per pin) named ``<TEST_NUM>:<TEST_TXT>``
  (MPR: ``<TEST_NUM>:<TEST_TXT>[<pin>]``, the pin from RTN_INDX or its position). A TEST_TXT left
  empty takes the last one seen for that TEST_NUM; a TEST_NUM seen with several TEST_TXTs gives
  one column per text and a note. A result whose TEST_FLG says invalid (bit 1) or not executed
  (bit 4) is NaN; RES_SCAL is display-only and not applied.
- **Multi-site.** Each result belongs to the open PIR of its own HEAD_NUM and SITE_NUM.
- **Retests.** A device tested more than once in a file keeps its last test (all its results
  from the last PRR's part; earlier ones are dropped and counted in a note), or with
  ``retests="steps"`` each test is a step of its own.
- **Labels.** ``final_outcome`` (``pass`` / ``fail`` from PART_FLG bit 3 of the device's last
  PRR, ``unknown`` where bit 4 says there is no pass/fail indication), ``final_hard_bin`` and
  ``final_soft_bin`` (strings, so that no bin is ever a default numeric feature), constant per
  device.
- **Stop-on-fail.** Tests that have no result on some failing parts but a result on every
  passing part of an insertion are reported: their missing values would tell the model the
  outcome.
- **Damage.** A truncated or corrupted file is an :class:`~tfseq.errors.InputError` naming the
  file; with ``salvage=True`` the records up to the last complete one are read, with a note.
- **Names.** ``.stdf`` / ``.std``, optionally ``.gz``, ``.bz2`` or ``.zip``, in any letter case.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tfseq.data.stdf_files import STDF_SUFFIXES, is_stdf, read_tables, start_time, stdf_paths
from tfseq.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["STDF_SUFFIXES", "PART_KEYS", "RETESTS", "INVALID_FLAGS", "ID_COL", "TIME_COL", "LABEL_COLS", "StdfTable",
           "StdfWarning", "is_stdf", "stdf_paths", "read_stdf"]

#: The part keys; ``"test:<TEST_NUM>"`` names a test instead.
PART_KEYS = ("part_id", "wafer_xy", "test:<TEST_NUM>")
#: What :func:`read_stdf` does with a device tested more than once in a file.
RETESTS = ("last", "steps")
#: TEST_FLG bits that make a result NaN: bit 1 result invalid, bit 4 test not executed.
INVALID_FLAGS = 0x02 | 0x10

#: The id and time columns of the long table.
ID_COL, TIME_COL = "device", "insertion"
#: The label columns of the long table, constant per device.
LABEL_COLS = ("final_outcome", "final_hard_bin", "final_soft_bin")


class StdfWarning(UserWarning):
    """Something in the STDF files a user should know (retests, stop-on-fail tests, salvage)."""


@dataclass(frozen=True)
class StdfTable:
    """What :func:`read_stdf` assembled.

    Attributes:
        frame: One row per (device, insertion): ``device``, ``insertion``, the feature columns
            (float32), ``final_outcome``, ``final_hard_bin``, ``final_soft_bin``; sorted by
            device then insertion.
        features: The feature column names, in order of first appearance.
        files: The files in insertion order (``files[0]`` is insertion 1).
        notes: What the assembly reports (also issued as :class:`StdfWarning`).
    """

    frame: pd.DataFrame
    features: list[str]
    files: list[Path]
    notes: list[str]


def _parse_part_key(part_key: str) -> tuple[str, int | None]:
    if part_key in ("part_id", "wafer_xy"):
        return part_key, None
    if part_key.startswith("test:"):
        with contextlib.suppress(ValueError):
            number = int(part_key[5:])
            if number >= 0:
                return "test", number
    raise InputError(f"Received an invalid value for argument part_key, expected part_id, wafer_xy or "
                     f"test:<TEST_NUM> (e.g. test:9000), got {part_key!r}.", arguments=("part_key",))


def _mir_start(tables: dict[str, pa.Table]) -> int:
    mir = tables.get("MIR")
    return int(_column(mir, "START_T")[0]) if mir is not None and mir.num_rows else 0


# --- assembly -----------------------------------------------------------------------------


def _column(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy())


def _b1(table: pa.Table, name: str) -> np.ndarray:
    """A B1 (one-byte binary) column as uint8."""
    array = table.column(name).combine_chunks()  # a BinaryArray: validity, int32 offsets, data
    if len(array) == 0:
        return np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset:array.offset + len(array) + 1]
    data = array.buffers()[2]
    values = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    out = np.zeros(len(array), dtype=np.uint8)
    has = offsets[1:] > offsets[:-1]
    out[has] = values[offsets[:-1][has]]
    return out


def _owner(start_key: np.ndarray, start_seq: np.ndarray, key: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """For each (key, seq): the index of the last start with the same key at or before it, or -1.

    Keys and sequence numbers are packed into one uint64 (key above bit 40) for one sorted search;
    keys too wide for that (a TEST_NUM is a U4) are replaced by their rank first.
    """
    if len(start_key) == 0:
        return np.full(len(key), -1, dtype=np.int64)
    if max(int(start_key.max()), int(key.max()) if len(key) else 0) >= 1 << 23:
        ranks = np.unique(np.concatenate([start_key, key]), return_inverse=True)[1].ravel()
        start_key, key = ranks[:len(start_key)], ranks[len(start_key):]
    order = np.lexsort((start_seq, start_key))
    sorted_key = start_key[order].astype(np.uint64)
    combined = (sorted_key << np.uint64(40)) | start_seq[order].astype(np.uint64)
    wanted = (key.astype(np.uint64) << np.uint64(40)) | seq.astype(np.uint64)
    pos = np.searchsorted(combined, wanted, side="right") - 1
    out = np.full(len(key), -1, dtype=np.int64)
    ok = pos >= 0
    ok[ok] = sorted_key[pos[ok]] == key[ok].astype(np.uint64)
    out[ok] = order[pos[ok]]
    return out


def _site(table: pa.Table) -> np.ndarray:
    return _column(table, "HEAD_NUM").astype(np.int64) * 256 + _column(table, "SITE_NUM").astype(np.int64)


@dataclass
class _Results:
    """The results of one file: the part, feature key and value of each."""

    part: np.ndarray  # part index (PIR order)
    keys: list[tuple[int, str, int]]  # (TEST_NUM, TEST_TXT, pin); pin -1 for a PTR
    feature: np.ndarray  # index into keys
    value: np.ndarray  # float32, NaN where invalid
    seq: np.ndarray  # record order


class _Texts:
    """TEST_TXT per TEST_NUM, carried from file to file: an empty text takes the last one seen."""

    def __init__(self) -> None:
        self.last: dict[int, str] = {}
        self.several: dict[int, set[str]] = {}

    def resolve(self, tests: np.ndarray, codes: np.ndarray, texts: list[str]) -> np.ndarray:
        """The text code of each record (in record order) after the rule; ``texts`` may grow."""
        width = len(texts)
        empty = texts.index("") if "" in texts else -1
        out = codes.copy()
        by_test: dict[int, set[int]] = {}
        for pair in pd.unique(tests * width + codes).tolist():  # hashing: no sort of a million results
            by_test.setdefault(pair // width, set()).add(pair % width)
        for test, present in by_test.items():
            named = sorted(c for c in present if c != empty)
            self.several.setdefault(test, set()).update(texts[c] for c in named)
            if empty not in present:
                continue
            if len(named) > 1:  # record by record: each empty text takes the last one seen
                last = self.last.get(test, "")
                for i in np.flatnonzero(tests == test).tolist():
                    if codes[i] == empty:
                        out[i] = _code(texts, last)
                    else:
                        last = texts[codes[i]]
            else:
                name = texts[named[0]] if named else self.last.get(test, "")
                out[(tests == test) & (codes == empty)] = _code(texts, name)
        ends = np.flatnonzero(~pd.Series(tests).duplicated(keep="last").to_numpy())  # each test's last result
        for test, code in zip(tests[ends].tolist(), out[ends].tolist(), strict=True):
            self.last[test] = texts[code]
        return out


def _code(texts: list[str], name: str) -> int:
    if name not in texts:
        texts.append(name)
    return texts.index(name)


def _strings(table: pa.Table, name: str) -> tuple[np.ndarray, list[str]]:
    """A string column as (codes, texts)."""
    encoded = table.column(name).combine_chunks().dictionary_encode()
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64), \
        [str(t) for t in encoded.dictionary.to_pylist()]


def _results(tables: dict[str, pa.Table], part_of_record: Any, texts: _Texts) -> _Results:
    parts, tests, codes, values, seqs, pins = [], [], [], [], [], []
    names: list[str] = [""]
    for kind in ("PTR", "MPR"):
        table = tables.get(kind)
        if table is None or table.num_rows == 0:
            continue
        part = part_of_record(_site(table), _column(table, "sequence_number"))
        if not (part >= 0).all():  # results outside any finished part
            inside = np.flatnonzero(part >= 0)
            table, part = table.take(inside), part[inside]
        flags = _b1(table, "TEST_FLG")
        code, text = _strings(table, "TEST_TXT")
        code = _merge(names, text)[code]
        test = _column(table, "TEST_NUM").astype(np.int64)
        seq = _column(table, "sequence_number").astype(np.int64)
        if kind == "PTR":
            value = _column(table, "RESULT").astype(np.float32)
            pin = np.full(len(value), -1, dtype=np.int64)
            record = np.arange(len(value))
        else:
            import pyarrow.compute as pc

            results = table.column("RTN_RSLT").combine_chunks()
            record = np.asarray(pc.list_parent_indices(results).to_numpy(), dtype=np.int64)
            value = np.asarray(pc.list_flatten(results).to_numpy(), dtype=np.float32)
            position = np.arange(len(record)) - np.searchsorted(record, record, side="left")
            pin = _pins(table, test, position, record)
        value = value.copy()
        value[(flags[record] & INVALID_FLAGS) != 0] = np.nan
        parts.append(part[record])
        tests.append(test[record])
        codes.append(code[record])
        values.append(value)
        seqs.append(seq[record])
        pins.append(pin)
    if not parts:
        return _Results(np.zeros(0, np.int64), [], np.zeros(0, np.int64), np.zeros(0, np.float32),
                        np.zeros(0, np.int64))
    part, test, code = np.concatenate(parts), np.concatenate(tests), np.concatenate(codes)
    value, seq, pin = np.concatenate(values), np.concatenate(seqs), np.concatenate(pins)
    if len(parts) > 1 or np.any(seq[1:] < seq[:-1]):  # PTRs alone come in record order already
        order = np.argsort(seq, kind="stable")
        part, test, code, value, seq, pin = part[order], test[order], code[order], value[order], seq[order], pin[order]
    code = texts.resolve(test, code, names)
    text_pin, text_pins = pd.factorize(code * 70_000 + (pin + 1))  # pins are U2: below 65,536
    # one feature per (test, text, pin), numbered in order of first appearance
    feature, combined = pd.factorize(test * len(text_pins) + text_pin)
    keys = []
    for u in np.asarray(combined).tolist():
        both = int(text_pins[u % len(text_pins)])
        keys.append((u // len(text_pins), names[both // 70_000], both % 70_000 - 1))
    return _Results(part, keys, np.asarray(feature, dtype=np.int64), value, seq)


def _merge(names: list[str], text: list[str]) -> np.ndarray:
    """Codes of ``text`` in ``names`` (appending the new ones)."""
    index = {t: i for i, t in enumerate(names)}
    out = []
    for t in text:
        if t not in index:
            index[t] = len(names)
            names.append(t)
        out.append(index[t])
    return np.asarray(out, dtype=np.int64)


def _pins(table: pa.Table, test: np.ndarray, position: np.ndarray, record: np.ndarray) -> np.ndarray:
    """Each MPR result's pin: RTN_INDX where given, else the test's last RTN_INDX, else its position."""
    import pyarrow.compute as pc

    indexes = table.column("RTN_INDX").combine_chunks()
    lengths = np.asarray(pc.fill_null(pc.list_value_length(indexes), 0).to_numpy(), dtype=np.int64)
    flat = np.asarray(pc.list_flatten(indexes).to_numpy(), dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    given = np.flatnonzero(lengths > 0)  # records that carry RTN_INDX
    out = position.astype(np.int64).copy()
    if len(given) == 0:
        return out
    # for each result: the last record of its test, at or before its own, that gave RTN_INDX
    source = _owner(test[given], given, test[record], record)
    found = source >= 0
    source_record = given[np.where(found, source, 0)]
    inside = found & (position < lengths[source_record])
    out[inside] = flat[offsets[source_record[inside]] + position[inside]]
    return out


def _feature_name(key: tuple[int, str, int]) -> str:
    test, text, pin = key
    return f"{test}:{text}" if pin < 0 else f"{test}:{text}[{pin}]"


@dataclass
class _Insertion:
    """One file's devices: their keys, results table and per-insertion outcome."""

    path: Path
    start: int
    devices: np.ndarray  # str, one per kept part
    values: np.ndarray  # (parts, features of this file) float32
    present: np.ndarray  # (parts, features) bool: a record was there
    features: list[str]
    failed: np.ndarray  # bool per part
    unknown: np.ndarray  # bool per part: PART_FLG bit 4, no pass/fail indication
    hard_bin: np.ndarray
    soft_bin: np.ndarray
    attempt: np.ndarray  # 0 for a device's first test in the file, 1 for its first retest ...


def _insertion(path: Path, tables: dict[str, pa.Table], kind: str, test_key: int | None, retests: str,
               texts: _Texts, notes: list[str]) -> _Insertion:
    mir = tables.get("MIR")
    if mir is None or mir.num_rows == 0:
        raise InputError(f"{path}: has no MIR record; expected an STDF file with its MIR (lot and start time).")
    start, lot = int(_column(mir, "START_T")[0]), str(mir.column("LOT_ID")[0].as_py())
    pir, prr = tables.get("PIR"), tables.get("PRR")
    if pir is None or prr is None or pir.num_rows == 0:
        notes.append(f"{path}: holds no complete part (no PIR and PRR records).")
        return _Insertion(path, start, np.zeros(0, object), np.zeros((0, 0), np.float32), np.zeros((0, 0), bool),
                          [], np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0, np.int64),
                          np.zeros(0, np.int64))
    pir_site, pir_seq = _site(pir), _column(pir, "sequence_number").astype(np.int64)
    n_parts = len(pir_seq)
    prr_part = _owner(pir_site, pir_seq, _site(prr), _column(prr, "sequence_number"))
    closed = np.full(n_parts, -1, dtype=np.int64)  # the PRR row that closed each part
    valid = prr_part >= 0
    closed[prr_part[valid]] = np.flatnonzero(valid)
    prr_seq = np.full(n_parts, np.iinfo(np.int64).max, dtype=np.int64)
    prr_seq[prr_part[valid]] = _column(prr, "sequence_number")[valid].astype(np.int64)

    def part_of_record(site: np.ndarray, seq: np.ndarray) -> np.ndarray:
        part = _owner(pir_site, pir_seq, site, seq)
        inside = part >= 0  # and before the PRR that closed it (a part cut off has none: left out)
        inside[inside] = seq[inside] < prr_seq[part[inside]]
        return np.where(inside, part, -1)

    results = _results(tables, part_of_record, texts)
    open_parts = int((closed < 0).sum())
    if open_parts:
        notes.append(f"{path}: {open_parts} part(s) have no PRR (testing did not finish); they are left out.")
    kept = np.flatnonzero(closed >= 0)  # parts in PIR order
    row = closed[kept]
    flags = _b1(prr, "PART_FLG")[row]
    hard = _column(prr, "HARD_BIN")[row].astype(np.int64)
    soft = _column(prr, "SOFT_BIN")[row].astype(np.int64)

    feature_keys = results.keys
    n_features = len(feature_keys)
    slot = np.full(n_parts, -1, dtype=np.int64)
    slot[kept] = np.arange(len(kept))
    use = results.part >= 0
    use[use] = slot[results.part[use]] >= 0
    rows = slot[results.part[use]]
    cols = results.feature[use]
    vals = results.value[use]
    flat = rows * max(n_features, 1) + cols
    last = np.flatnonzero(~pd.Series(flat).duplicated(keep="last").to_numpy())  # a test run twice: its last
    values = np.full((len(kept), n_features), np.nan, dtype=np.float32)
    present = np.zeros((len(kept), n_features), dtype=bool)
    values[rows[last], cols[last]] = vals[last]
    present[rows[last], cols[last]] = True

    if kind == "part_id":
        devices = np.asarray(prr.column("PART_ID").to_numpy(zero_copy_only=False), dtype=object)[row]
        empty = np.flatnonzero(devices == "")
        if len(empty):
            raise InputError(
                f"{path}: part {int(kept[empty[0]]) + 1} has an empty PART_ID; expected one for part_key "
                "part_id (or choose part_key wafer_xy or test:<TEST_NUM>).", arguments=("part_key",))
    elif kind == "wafer_xy":
        x, y = _column(prr, "X_COORD")[row], _column(prr, "Y_COORD")[row]
        if np.any(x == -32768) or np.any(y == -32768):
            raise InputError(f"{path}: a part has no X_COORD/Y_COORD; expected wafer coordinates for part_key "
                             "wafer_xy (or choose part_key part_id or test:<TEST_NUM>).", arguments=("part_key",))
        wafer = np.full(len(kept), "", dtype=object)
        wir = tables.get("WIR")
        if wir is not None and wir.num_rows:
            ids = np.asarray(wir.column("WAFER_ID").to_numpy(zero_copy_only=False), dtype=object)
            wir_seq = _column(wir, "sequence_number").astype(np.int64)
            head = pir_site[kept] // 256
            owner = _owner(_column(wir, "HEAD_NUM").astype(np.int64), wir_seq, head, pir_seq[kept])
            anyhead = np.searchsorted(wir_seq, pir_seq[kept]) - 1  # a WIR of another head, if none of its own
            owner = np.where(owner >= 0, owner, anyhead)
            wafer[owner >= 0] = ids[owner[owner >= 0]]
        devices = np.asarray([f"{lot}/{w}/{a},{b}" for w, a, b in zip(wafer, x.tolist(), y.tolist(), strict=True)],
                             dtype=object)
    else:
        matches = [i for i, key in enumerate(feature_keys) if key[0] == test_key and key[2] < 0]
        if not matches:
            raise InputError(f"{path}: has no PTR of test {test_key}; expected one per part for part_key "
                             f"'test:{test_key}'.", arguments=("part_key",))
        ids = values[:, matches[-1]]
        for i in matches[:-1]:
            ids = np.where(np.isnan(ids), values[:, i], ids)
        missing = np.isnan(ids)
        if missing.any():
            notes.append(f"{path}: {int(missing.sum())} part(s) have no valid result of test {test_key} "
                         "(the part key); they are left out.")
        devices = np.asarray([f"{v:.9g}" for v in ids.tolist()], dtype=object)
        keep_cols = [i for i in range(n_features) if i not in matches]
        good = ~missing
        values, present = values[good][:, keep_cols], present[good][:, keep_cols]
        feature_keys = [feature_keys[i] for i in keep_cols]
        devices, flags, hard, soft = devices[good], flags[good], hard[good], soft[good]

    attempt = pd.Series(devices).groupby(devices, sort=False).cumcount().to_numpy(dtype=np.int64)
    retested = pd.Series(devices).duplicated(keep="last").to_numpy()
    if retested.any() and retests == "last":
        notes.append(f"{path}: {int(retested.sum())} earlier test(s) of {len(set(devices[retested]))} retested "
                     "device(s) dropped; each device keeps its last test in the file.")
        keep = ~retested
        devices, values, present = devices[keep], values[keep], present[keep]
        flags, hard, soft, attempt = flags[keep], hard[keep], soft[keep], np.zeros(int(keep.sum()), np.int64)
    elif retested.any():
        notes.append(f"{path}: {len(set(devices[retested]))} retested device(s); each test is its own step.")
    return _Insertion(path, start, devices, values, present, [_feature_name(k) for k in feature_keys],
                      (flags & 0x08) != 0, (flags & 0x10) != 0, hard, soft, attempt)


def _stop_on_fail(insertion: _Insertion) -> str | None:
    passed, failed = ~insertion.failed & ~insertion.unknown, insertion.failed
    if not passed.any() or not failed.any():
        return None
    always = insertion.present[passed].all(axis=0)
    dropped = always & ~insertion.present[failed].all(axis=0)
    if not dropped.any():
        return None
    names = [insertion.features[i] for i in np.flatnonzero(dropped)]
    parts = int((~insertion.present[failed][:, dropped]).any(axis=1).sum())
    return (f"{insertion.path}: {len(names)} test(s) have no result on {parts} failing part(s) but one on every "
            f"passing part (stop-on-fail testing?), e.g. {names[0]!r}: their missing values give away the outcome; "
            "leave them out of the features or fill them knowingly.")


def read_stdf(
    paths: Path | str | Sequence[Path | str],
    *,
    part_key: str = "part_id",
    salvage: bool = False,
    retests: str = "last",
) -> StdfTable:
    """Reads STDF insertions into one long-format table: one row per (device, insertion).

    Args:
        paths: STDF files (``.stdf``/``.std``, optionally ``.gz``, ``.bz2`` or ``.zip``, any letter
            case), directories of them or globs; one file per test insertion.
        part_key: The device identity: ``"part_id"`` (PRR PART_ID), ``"wafer_xy"`` (lot, wafer and
            die X/Y) or ``"test:<TEST_NUM>"`` (the result of that test, e.g. a chip id).
        salvage: Read a damaged file's records up to the last complete one (with a note)
            instead of raising.
        retests: ``"last"``: a device tested more than once in a file keeps its last test;
            ``"steps"``: each test is its own step (``insertion`` then numbers the tests in order).

    Returns:
        The table, its feature names, the files in insertion order and the notes (each also
        issued as a :class:`StdfWarning`).

    Raises:
        InputError: for a missing, damaged or non-STDF file, a bad ``part_key`` or ``retests``, or
            parts without the identity ``part_key`` asks for.
        MissingDependencyError: without ``stdf-convert`` (``pip install 'stdf-convert~=0.3.0'``).

    Examples:
        >>> table = read_stdf(["lot7_ws1.stdf", "lot7_ft1.stdf.gz"])  # doctest: +SKIP
        >>> table.frame.columns[:3].tolist()  # doctest: +SKIP
        ['device', 'insertion', '1000:Vdd_core']
    """
    kind, test_key = _parse_part_key(part_key)
    if retests not in RETESTS:
        raise InputError(f"Received an invalid value for argument retests, expected one of {', '.join(RETESTS)}, "
                         f"got {retests!r}.", arguments=("retests",))
    files = list(dict.fromkeys(stdf_paths(paths)))  # a file named twice is one insertion
    notes: list[str] = []
    texts = _Texts()
    insertions = []
    peeked = [start_time(path) for path in files]
    if all(start is not None for start in peeked):  # in order from the start, one file's tables at a time
        order = sorted(range(len(files)), key=lambda i: (peeked[i], i))
        for i in order:
            insertions.append(_insertion(files[i], read_tables(files[i], salvage, notes), kind, test_key, retests,
                                         texts, notes))
    else:  # a start time beyond the first records: read every file, then order
        read = [(read_tables(path, salvage, notes), i) for i, path in enumerate(files)]
        read.sort(key=lambda item: (_mir_start(item[0]), item[1]))
        for tables, i in read:
            insertions.append(_insertion(files[i], tables, kind, test_key, retests, texts, notes))
        del read
    insertions.sort(key=lambda item: item.start)  # stable: ties keep the order given
    for test, names in texts.several.items():
        if len(names) > 1:
            shown = ", ".join(repr(n) for n in sorted(names))
            notes.append(f"test {test} has {len(names)} different TEST_TXTs ({shown}); each is its own "
                         f"feature column ({test}:<TEST_TXT>), not merged.")
    for insertion in insertions:
        note = _stop_on_fail(insertion)
        if note:
            notes.append(note)
    frame, features = _long_frame(insertions)
    if frame.empty:
        raise InputError(f"{files[0]}: found no complete part in {len(files)} STDF file(s); expected PIR ... PRR "
                         "records of tested parts.")
    for note in notes:
        warnings.warn(note, StdfWarning, stacklevel=2)
    return StdfTable(frame, features, [item.path for item in insertions], notes)


def _long_frame(insertions: list[_Insertion]) -> tuple[pd.DataFrame, list[str]]:
    features: dict[str, int] = {}
    for insertion in insertions:
        for name in insertion.features:
            features.setdefault(name, len(features))
    total = sum(len(i.devices) for i in insertions)
    values = np.full((total, len(features)), np.nan, dtype=np.float32)
    devices = np.empty(total, dtype=object)
    step = np.empty(total, dtype=np.int64)
    failed, unknown = np.zeros(total, bool), np.zeros(total, bool)
    hard, soft = np.zeros(total, np.int64), np.zeros(total, np.int64)
    attempt = np.zeros(total, np.int64)
    at = 0
    for number, insertion in enumerate(insertions, start=1):
        n = len(insertion.devices)
        if n == 0:
            continue
        rows = slice(at, at + n)
        where = np.asarray([features[name] for name in insertion.features], dtype=np.int64)
        values[rows, where] = insertion.values
        devices[rows], step[rows] = insertion.devices, number
        failed[rows], unknown[rows] = insertion.failed, insertion.unknown
        hard[rows], soft[rows] = insertion.hard_bin, insertion.soft_bin
        attempt[rows] = insertion.attempt
        at += n
    if attempt.any():  # retests as steps: number the (insertion, test) pairs 1, 2, ... in order
        step = np.unique(step * (int(attempt.max()) + 1) + attempt, return_inverse=True)[1].ravel() + 1
    order = np.lexsort((step, devices.astype(str)))
    devices, step, values = devices[order], step[order], values[order]
    failed, unknown, hard, soft = failed[order], unknown[order], hard[order], soft[order]
    codes = pd.factorize(devices)[0] if total else np.zeros(0, np.int64)
    last = np.r_[codes[1:] != codes[:-1], True] if total else np.zeros(0, bool)
    final = np.flatnonzero(last)[codes]  # codes ascend: devices are sorted
    outcome = np.where(unknown[final], "unknown", np.where(failed[final], "fail", "pass"))
    names = list(features)
    columns: dict[str, Any] = {ID_COL: pd.array(devices.astype(str), dtype="string"), TIME_COL: step}
    columns.update({name: values[:, i] for i, name in enumerate(names)})
    columns["final_outcome"] = pd.array(outcome, dtype="string")
    columns["final_hard_bin"] = pd.array(hard[final].astype(str), dtype="string")
    columns["final_soft_bin"] = pd.array(soft[final].astype(str), dtype="string")
    return pd.DataFrame(columns), names
