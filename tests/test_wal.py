"""Tests for the generic LMDB write-ahead log in :mod:`wal`."""

from __future__ import annotations

import pickle
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import lmdb
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import wal
from wal import CorruptEntryError, WalError, WriteAheadLog


@pytest.fixture
def log(tmp_path: Path) -> Iterator[WriteAheadLog]:
    wlog = WriteAheadLog.open(str(tmp_path / "wal"), map_size=1 << 24)
    yield wlog
    wlog.close()


def _raw_put(wlog: WriteAheadLog, key: bytes, value: bytes) -> None:
    """Write a raw record straight into the log's sub-database, bypassing the WAL."""
    db = wlog.env.open_db(b"wal")
    with wlog.env.begin(write=True) as txn:
        txn.put(key, value, db=db)


def _raw_get(wlog: WriteAheadLog, seq: int) -> bytes:
    db = wlog.env.open_db(b"wal")
    with wlog.env.begin() as txn:
        value = txn.get(seq.to_bytes(8, "big"), db=db)
    assert value is not None
    return bytes(value)


def _record(payload: bytes, fmt: int = 1) -> bytes:
    return bytes((fmt,)) + zlib.crc32(payload).to_bytes(4, "big") + payload


# --- basics -----------------------------------------------------------------------------------


def test_package_exports() -> None:
    assert set(wal.__all__) == {"WriteAheadLog", "WalError", "CorruptEntryError"}
    assert issubclass(CorruptEntryError, WalError)
    assert wal.__doc__


def test_empty_log(log: WriteAheadLog) -> None:
    assert len(log) == 0
    assert log.first_seq() is None
    assert log.last_seq() == 0
    assert list(log.read()) == []
    assert log.verify() == []
    assert log.truncate(10) == 0
    with pytest.raises(KeyError):
        log.get(1)


def test_append_read_get(log: WriteAheadLog) -> None:
    values: list[Any] = [{"op": "put", "id": 7}, "text", b"\x00\xff", [1, [2, None]], -(2**70)]
    seqs = [log.append(v) for v in values]
    assert seqs == [1, 2, 3, 4, 5]
    assert list(log.read()) == list(zip(seqs, values))
    assert list(log.read(4)) == [(4, values[3]), (5, values[4])]
    assert list(log.read(0)) == list(log.read(-5)) == list(log.read(1))
    assert list(log.read(6)) == []
    assert list(log.read(2**70)) == []
    assert log.get(3) == b"\x00\xff"
    for missing in (0, 6, -1, 2**70):
        with pytest.raises(KeyError):
            log.get(missing)
    assert (len(log), log.first_seq(), log.last_seq()) == (5, 1, 5)
    assert _raw_get(log, 1)[0] == 1  # format byte


def test_append_many(log: WriteAheadLog) -> None:
    assert log.append_many([]) == []
    assert log.append_many(iter(["a", "b", "c"])) == [1, 2, 3]
    assert log.append("d") == 4
    assert log.append_many(["e"]) == [5]
    assert [e for _, e in log.read()] == list("abcde")


def test_unencodable_entry_writes_nothing(log: WriteAheadLog) -> None:
    log.append(1)
    with log.env.begin(write=True) as txn:
        with pytest.raises(cbor2.CBOREncodeError):
            log.append_many([2, object(), 3], txn)
        assert log.last_seq(txn) == 1
    assert list(log.read()) == [(1, 1)]


def test_truncate(log: WriteAheadLog) -> None:
    log.append_many(range(10))
    assert log.truncate(1) == 0
    assert log.truncate(4) == 3
    assert log.first_seq() == 4
    assert log.truncate(4) == 0
    assert next(iter(log.read(1))) == (4, 3)
    assert log.truncate(8) == 4
    assert [s for s, _ in log.read()] == [8, 9, 10]
    assert log.last_seq() == 10
    assert log.truncate(2**70) == 3
    assert (len(log), log.first_seq(), log.last_seq()) == (0, None, 10)
    assert log.append("next") == 11


def test_read_iterator_can_be_closed_early(log: WriteAheadLog) -> None:
    log.append_many(range(5))
    it = log.read()
    assert next(it) == (1, 0)
    it.close()  # releases its read transaction
    assert log.append(5) == 6  # a write transaction still works afterwards


# --- transactions ------------------------------------------------------------------------------


def test_several_appends_in_one_txn(log: WriteAheadLog) -> None:
    log.append("before")
    with log.env.begin(write=True) as txn:
        assert log.append("a", txn) == 2
        assert log.append("b", txn) == 3
        assert log.append_many(["c", "d"], txn) == [4, 5]
        assert log.last_seq(txn) == 5
        assert [e for _, e in log.read(2, txn)] == ["a", "b", "c", "d"]
        assert log.get(3, txn) == "b"
        assert log.first_seq(txn) == 1
        assert log.truncate(3, txn) == 2
        assert log.verify(txn) == []
    assert [s for s, _ in log.read()] == [3, 4, 5]
    assert log.last_seq() == 5


def test_aborted_txn_discards_entries_and_seq_is_handed_out_again(log: WriteAheadLog) -> None:
    log.append("kept")
    txn = log.env.begin(write=True)
    assert log.append("lost-1", txn) == 2
    assert log.append("lost-2", txn) == 3
    txn.abort()
    assert list(log.read()) == [(1, "kept")]
    assert log.last_seq() == 1
    # Nothing of the aborted txn was committed, so its numbers were never really assigned.
    assert log.append("new") == 2


def test_aborted_truncate_keeps_entries(log: WriteAheadLog) -> None:
    log.append_many([1, 2, 3])
    txn = log.env.begin(write=True)
    assert log.truncate(10, txn) == 3
    txn.abort()
    assert len(log) == 3


def test_atomic_with_callers_own_state(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "db"), max_dbs=4, map_size=1 << 24)
    try:
        state = env.open_db(b"state")
        wlog = WriteAheadLog(env)
        with pytest.raises(RuntimeError):
            with env.begin(write=True) as txn:
                txn.put(b"k", b"v1", db=state)
                wlog.append({"set": "k"}, txn)
                raise RuntimeError("caller fails before commit")
        with env.begin() as txn:
            assert txn.get(b"k", db=state) is None
        assert len(wlog) == 0 and wlog.last_seq() == 0

        with env.begin(write=True) as txn:
            txn.put(b"k", b"v2", db=state)
            seq = wlog.append({"set": "k"}, txn)
        with env.begin() as txn:
            assert txn.get(b"k", db=state) == b"v2"
        assert list(wlog.read()) == [(seq, {"set": "k"})]
    finally:
        env.close()


def test_logs_with_different_names_are_independent(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "db"), max_dbs=4, map_size=1 << 24)
    try:
        a, b = WriteAheadLog(env, b"a"), WriteAheadLog(env, name=b"b")
        a.append_many([1, 2, 3])
        assert b.append("x") == 1
        assert list(b.read()) == [(1, "x")]
        assert len(a) == 3
    finally:
        env.close()


def test_seqs_never_reused_after_truncate_all_and_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "wal")
    with WriteAheadLog.open(path, map_size=1 << 24) as wlog:
        assert wlog.append_many(["a", "b", "c"]) == [1, 2, 3]
        assert wlog.truncate(4) == 3
    with WriteAheadLog.open(path, map_size=1 << 24) as wlog:
        assert (len(wlog), wlog.first_seq(), wlog.last_seq()) == (0, None, 3)
        assert wlog.append("d") == 4
        assert list(wlog.read()) == [(4, "d")]


# --- corruption --------------------------------------------------------------------------------


def test_bit_flip_is_detected(log: WriteAheadLog) -> None:
    log.append_many([{"n": i} for i in range(1, 6)])
    raw = bytearray(_raw_get(log, 3))
    raw[-1] ^= 0x01
    _raw_put(log, (3).to_bytes(8, "big"), bytes(raw))

    it = log.read()
    assert next(it) == (1, {"n": 1})
    assert next(it) == (2, {"n": 2})
    with pytest.raises(CorruptEntryError) as info:
        next(it)
    assert info.value.seq == 3
    assert "3" in str(info.value) and "CRC" in info.value.reason

    seen: list[int] = []
    with pytest.raises(CorruptEntryError):
        for seq, _ in log.read():
            seen.append(seq)
    assert seen == [1, 2]

    assert [e.seq for e in log.verify()] == [3]
    assert list(log.read(4)) == [(4, {"n": 4}), (5, {"n": 5})]
    with pytest.raises(CorruptEntryError):
        log.get(3)
    assert log.get(2) == {"n": 2}
    assert log.truncate(4) == 3  # truncating past the damage removes it
    assert log.verify() == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "short"),
        (b"\x01\x00\x00", "short"),
        (_record(cbor2.dumps(1), fmt=2), "format"),
        (_record(b"\xff\xff"), "CBOR"),  # valid CRC, undecodable payload
        (_record(b"\x5f"), "CBOR"),  # truncated indefinite byte string
        (_record(cbor2.dumps(1) + b"\x00"), "trailing"),
    ],
)
def test_damaged_values(log: WriteAheadLog, value: bytes, reason: str) -> None:
    log.append("ok")
    _raw_put(log, (2).to_bytes(8, "big"), value)
    with pytest.raises(CorruptEntryError) as info:
        list(log.read())
    assert info.value.seq == 2 and reason in info.value.reason
    assert [(e.seq, reason in e.reason) for e in log.verify()] == [(2, True)]


def test_bad_key_length(log: WriteAheadLog) -> None:
    log.append("ok")
    _raw_put(log, b"\x00" * 7 + b"\x02\x00", _record(cbor2.dumps("x")))
    problems = log.verify()
    assert len(problems) == 1 and "key" in problems[0].reason
    with pytest.raises(CorruptEntryError):
        list(log.read())


def test_corrupt_entry_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(CorruptEntryError(7, "CRC32 mismatch")))
    assert (err.seq, err.reason) == (7, "CRC32 mismatch")
    assert str(err) == str(CorruptEntryError(7, "CRC32 mismatch"))


# --- read-only environments --------------------------------------------------------------------


def test_read_only_env_reads(tmp_path: Path) -> None:
    path = str(tmp_path / "wal")
    with WriteAheadLog.open(path, map_size=1 << 24) as wlog:
        wlog.append_many(["a", "b", "c"])
        wlog.truncate(2)
    env = lmdb.open(path, readonly=True, max_dbs=4)
    try:
        ro = WriteAheadLog(env)
        assert list(ro.read()) == [(2, "b"), (3, "c")]
        assert (len(ro), ro.first_seq(), ro.last_seq(), ro.get(3)) == (2, 2, 3, "c")
        assert ro.verify() == []
        with pytest.raises(WalError):
            ro.append("d")
        with pytest.raises(WalError):
            ro.truncate(5)
    finally:
        env.close()


def test_fresh_read_only_env_is_empty_log(tmp_path: Path) -> None:
    path = str(tmp_path / "empty")
    lmdb.open(path, max_dbs=4, map_size=1 << 24).close()
    env = lmdb.open(path, readonly=True, max_dbs=4)
    try:
        ro = WriteAheadLog(env)
        assert (len(ro), ro.first_seq(), ro.last_seq()) == (0, None, 0)
        assert list(ro.read()) == [] and ro.verify() == []
        with pytest.raises(KeyError):
            ro.get(1)
        with pytest.raises(WalError):
            ro.append("x")
        with env.begin() as txn:  # nothing was created
            assert txn.get(b"wal") is None and txn.get(b"wal.meta") is None
    finally:
        env.close()


# --- property test against a list model ------------------------------------------------------

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)


class WalMachine(RuleBasedStateMachine):
    """Drives a real log and a ``list[(seq, entry)]`` model side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="wal-test-")
        self.log = WriteAheadLog.open(self.dir, map_size=1 << 24, sync=False)
        self.model: list[tuple[int, Any]] = []
        self.hwm = 0

    @initialize()
    def start_empty(self) -> None:
        assert self.log.last_seq() == 0

    @rule(value=cbor_values)
    def append(self, value: Any) -> None:
        seq = self.log.append(value)
        self.hwm += 1
        assert seq == self.hwm
        self.model.append((seq, value))

    @rule(values=st.lists(cbor_values, max_size=4))
    def append_many(self, values: list[Any]) -> None:
        seqs = self.log.append_many(values)
        assert seqs == list(range(self.hwm + 1, self.hwm + 1 + len(values)))
        self.hwm += len(values)
        self.model.extend(zip(seqs, values))

    @rule(values=st.lists(cbor_values, min_size=1, max_size=3))
    def append_then_abort(self, values: list[Any]) -> None:
        txn = self.log.env.begin(write=True)
        assert self.log.append_many(values, txn)[0] == self.hwm + 1
        txn.abort()

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        before = data.draw(st.integers(-1, self.hwm + 2), label="before_seq")
        expected = sum(1 for seq, _ in self.model if seq < before)
        assert self.log.truncate(before) == expected
        self.model = [(seq, v) for seq, v in self.model if seq >= before]

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = WriteAheadLog.open(self.dir, map_size=1 << 24, sync=False)

    @rule(data=st.data())
    def read_from(self, data: st.DataObject) -> None:
        start = data.draw(st.integers(-1, self.hwm + 2), label="from_seq")
        assert list(self.log.read(start)) == [(s, v) for s, v in self.model if s >= start]

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        seq, value = data.draw(st.sampled_from(self.model), label="entry")
        assert self.log.get(seq) == value

    @invariant()
    def matches_model(self) -> None:
        assert len(self.log) == len(self.model)
        assert self.log.last_seq() == self.hwm
        assert self.log.first_seq() == (self.model[0][0] if self.model else None)

    def teardown(self) -> None:
        try:
            assert list(self.log.read()) == self.model
            assert self.log.verify() == []
        finally:
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)


WalMachine.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None, print_blob=True
)
TestWalMachine = WalMachine.TestCase
