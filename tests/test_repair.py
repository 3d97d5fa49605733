"""Damaged or stray files around segments, and a damaged WAL entry.

LMDB is the source of truth: a segment file that is bit-flipped, truncated,
emptied or missing is rebuilt from it at open (with a warning) and written
back, so the next open is clean.  Files a crash left behind (an unrecorded
segment, a temp file) are removed.  A damaged WAL entry cannot be rebuilt
from anything: opening raises a typed error.
"""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path
from typing import Any

import cbor2
import lmdb
import numpy as np
import pytest

import vecstore
from vecstore import Config, CorruptionError, VecStore, VecStoreError

DIM = 12
SEAL = 200
OTHER = "t2"  # a second partition whose segment is never damaged


def _config() -> Config:
    return Config(dim=DIM, seal_threshold=SEAL)


def _optimize(store: VecStore) -> None:
    # Twice, so that no segment job is left running when the store is closed
    # even if optimize() did not wait for a seal a racing write started.
    store.optimize()
    store.optimize()


# -- looking at the files directly (store closed) ----------------------------------------


def _lmdb(path: Path) -> lmdb.Environment:
    return lmdb.open(str(path), max_dbs=16, subdir=True)


def _manifest(path: Path) -> dict[str, dict[str, Any]]:
    """Segment file name -> manifest entry (+ "partition")."""
    env = _lmdb(path)
    try:
        with env.begin() as txn:
            parts_db = env.open_db(b"parts", txn=txn, create=False)
            names = {cbor2.loads(v)["pid"]: bytes(k).decode() for k, v in txn.cursor(db=parts_db)}
            segs = env.open_db(b"segs", txn=txn, create=False)
            out = {}
            for _k, v in txn.cursor(db=segs):
                entry = dict(cbor2.loads(v))
                entry["partition"] = names[entry["pid"]]
                out[entry["file"]] = entry
            return out
    finally:
        env.close()


def _meta(path: Path, key: str) -> Any:
    env = _lmdb(path)
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            raw = txn.get(key.encode(), db=meta)
            return None if raw is None else cbor2.loads(raw)
    finally:
        env.close()


def _crc(p: Path) -> int:
    return zlib.crc32(p.read_bytes())


def _segment_of(path: Path, partition: str) -> Path:
    files = [f for f, e in _manifest(path).items() if e["partition"] == partition]
    assert len(files) == 1, files
    return path / "segments" / files[0]


def _assert_files_match_manifest(path: Path) -> None:
    manifest = _manifest(path)
    assert sorted(os.listdir(path / "segments")) == sorted(manifest)
    for name, entry in manifest.items():
        assert _crc(path / "segments" / name) == entry["crc"], f"{name}: checksum mismatch"


# -- the store under test -------------------------------------------------------------------


class Expected:
    """Live records per partition and reference query answers."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, np.ndarray]] = {}
        self.answers: list[tuple[str, np.ndarray, list[str], list[float]]] = []


def _build(path: Path) -> Expected:
    """Two partitions, one sealed segment each, then deletes, updates and
    new rows on top (some rows of the sealed segment are dead)."""
    rng = np.random.default_rng(1234)
    with VecStore.open(path, _config()) as store:
        ids = [f"d{i}" for i in range(3 * SEAL)]
        mat = rng.standard_normal((len(ids), DIM)).astype(np.float32)
        for j in range(0, len(ids), SEAL):
            store.upsert_many(ids=ids[j:j + SEAL], vectors=mat[j:j + SEAL],
                              metadata=[{"i": i} for i in range(j, j + SEAL)])
        other = store.partition(OTHER)
        other.upsert_many([(f"t{i}", rng.standard_normal(DIM), {"t": i})
                           for i in range(SEAL + 50)])
        _optimize(store)
        stats = store.stats()
        assert stats.sealed_segments == 2 and stats.growing_vectors == 0
        # On top of the sealed segments: deletes, updates, new rows.
        store.delete_many(ids[:10])
        store.delete("d11")
        store.upsert_many(ids=ids[20:25], vectors=rng.standard_normal((5, DIM)))
        store.upsert_many([(f"g{i}", rng.standard_normal(DIM)) for i in range(30)])
        other.delete("t3")
        other.upsert("t4", rng.standard_normal(DIM), {"t": "new"})
        exp = Expected()
        for name in ("default", OTHER):
            view = store.partition(name)
            exp.records[name] = {r.id: r.vector for r in view.scan()}
            for q in rng.standard_normal((15, DIM)):
                hits = view.query(q, k=5)
                exp.answers.append((name, q, [h.id for h in hits], [h.score for h in hits]))
        assert len(exp.records["default"]) == 3 * SEAL - 11 + 30
    return exp


def _check(store: VecStore, exp: Expected) -> None:
    """Exact answers: every stored vector finds itself first, and reference
    queries give the same ids and scores as before the damage."""
    for name, records in exp.records.items():
        view = store.partition(name)
        got = {r.id: r.vector for r in view.scan()}
        assert got.keys() == records.keys()
        for rid, vec in records.items():
            assert np.array_equal(got[rid], vec)
        # Self-queries on a sample (each exact query costs a full scan).
        for rid in sorted(records)[::5]:
            hits = view.query(records[rid], k=1)
            assert hits and hits[0].id == rid, (name, rid, [(h.id, h.score) for h in hits])
    for name, q, ids, scores in exp.answers:
        hits = store.partition(name).query(q, k=5)
        assert [h.id for h in hits] == ids
        assert [h.score for h in hits] == pytest.approx(scores, abs=1e-5)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("vecstore") and r.levelno >= logging.WARNING]


def _open_logged(path: Path, caplog: pytest.LogCaptureFixture, **kw: Any
                 ) -> tuple[VecStore, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vecstore"):
        store = VecStore.open(path, **kw)
    return store, _warnings(caplog)


def _damage(seg: Path, fault: str) -> None:
    data = bytearray(seg.read_bytes())
    assert len(data) > 100
    if fault == "bitflip-middle":
        data[len(data) // 2] ^= 0x10
        seg.write_bytes(bytes(data))
    elif fault == "bitflip-head":
        data[3] ^= 0x01
        seg.write_bytes(bytes(data))
    elif fault == "truncated":
        seg.write_bytes(bytes(data[: len(data) // 2]))
    elif fault == "emptied":
        seg.write_bytes(b"")
    elif fault == "deleted":
        seg.unlink()
    else:  # pragma: no cover
        raise AssertionError(fault)


FAULTS = ["bitflip-middle", "bitflip-head", "truncated", "emptied", "deleted"]


# -- (a) (b) (d) damaged or missing segment files ---------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_damaged_segment_is_rebuilt_and_rewritten(tmp_path: Path, fault: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "store.db"
    exp = _build(path)
    _assert_files_match_manifest(path)
    seg = _segment_of(path, "default")
    other = _segment_of(path, OTHER)
    other_bytes = other.read_bytes()
    _damage(seg, fault)

    store, warned = _open_logged(path, caplog)
    try:
        assert warned, "a damaged segment was loaded without a warning"
        assert any(seg.name in w for w in warned), warned
        assert not any(other.name in w for w in warned), warned
        _check(store, exp)
        stats = store.stats()
        assert stats.sealed_segments == 2
        assert stats.total_vectors == sum(len(r) for r in exp.records.values())
    finally:
        store.close()
    # The file was written back: it matches the manifest again; the intact
    # segment of the other partition was left alone.
    _assert_files_match_manifest(path)
    assert seg.exists()
    assert other.read_bytes() == other_bytes

    store, warned = _open_logged(path, caplog)
    try:
        assert warned == [], f"second open still repairing: {warned}"
        _check(store, exp)
        # And the store carries on: new rows seal and merge with the repaired segment.
        rng = np.random.default_rng(99)
        new = {f"n{i}": rng.standard_normal(DIM).astype(np.float32) for i in range(SEAL + 10)}
        store.upsert_many(list(new.items()))
        _optimize(store)
        exp.records["default"].update(new)
        exp.answers = []
        _check(store, exp)
    finally:
        store.close()
    _assert_files_match_manifest(path)


@pytest.mark.parametrize("fault", ["bitflip-middle", "deleted"])
def test_read_only_open_rebuilds_in_memory_and_writes_nothing(
        tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "store.db"
    exp = _build(path)
    seg = _segment_of(path, "default")
    _damage(seg, fault)
    damaged = seg.read_bytes() if seg.exists() else None
    listing = sorted(os.listdir(path / "segments"))

    store, warned = _open_logged(path, caplog, read_only=True)
    try:
        assert any(seg.name in w for w in warned), warned
        _check(store, exp)
    finally:
        store.close()
    # read_only never writes: the damage is still there for the writer to fix.
    assert sorted(os.listdir(path / "segments")) == listing
    assert (seg.read_bytes() if seg.exists() else None) == damaged

    store, warned = _open_logged(path, caplog)
    try:
        assert any(seg.name in w for w in warned), warned
        _check(store, exp)
    finally:
        store.close()
    _assert_files_match_manifest(path)


# -- (c) a crash between writing a segment file and recording it -----------------------------


def test_unrecorded_segment_and_temp_files_are_removed(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "store.db"
    exp = _build(path)
    recorded = _manifest(path)
    next_seg = _meta(path, "next_seg")
    assert isinstance(next_seg, int)
    segs = path / "segments"
    garbage = {
        # exactly what a kill after rename but before the manifest commit leaves:
        f"seg-{next_seg:016x}.hnsw": os.urandom(5000),
        "seg-00000000000000ff.hnsw": b"garbage" * 100,
        # kills during a temp write (a new segment, a repair of a recorded one):
        f"seg-{next_seg + 1:016x}.hnsw.tmp": os.urandom(777),
        f"{sorted(recorded)[0]}.tmp": b"half a file",
    }
    for name, data in garbage.items():
        (segs / name).write_bytes(data)

    store, warned = _open_logged(path, caplog)
    try:
        for name in recorded:
            assert not any(name in w for w in warned), warned
        assert sorted(os.listdir(segs)) == sorted(recorded), "stray files were not removed"
        _check(store, exp)
        assert store.stats().sealed_segments == 2
        # The next segment reuses the id of the unrecorded file: it must be the
        # new segment that ends up on disk, not the garbage.
        rng = np.random.default_rng(5)
        new = {f"n{i}": rng.standard_normal(DIM).astype(np.float32) for i in range(SEAL + 10)}
        store.upsert_many(list(new.items()))
        _optimize(store)
        exp.records["default"].update(new)
        exp.answers = []
        _check(store, exp)
    finally:
        store.close()
    _assert_files_match_manifest(path)
    store, warned = _open_logged(path, caplog)
    try:
        assert warned == []
        _check(store, exp)
    finally:
        store.close()


# -- (e) a damaged WAL entry ------------------------------------------------------------------


def _flip_last_wal_entry(path: Path) -> int:
    env = _lmdb(path)
    try:
        with env.begin(write=True) as txn:
            wal = env.open_db(b"wal", txn=txn, create=False)
            cur = txn.cursor(db=wal)
            assert cur.last(), "the WAL is empty: nothing to damage"
            key, value = bytes(cur.key()), bytearray(cur.value())
            value[-1] ^= 0x01  # inside the CBOR payload: the CRC no longer matches
            txn.put(key, bytes(value), db=wal)
            return int.from_bytes(key, "big")
    finally:
        env.close()


def test_damaged_wal_entry_raises_corruption_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    _build(path)
    seq = _flip_last_wal_entry(path)
    with pytest.raises(CorruptionError) as info:
        VecStore.open(path)
    assert isinstance(info.value, VecStoreError)
    assert str(seq) in str(info.value)
    # read_only opening reports the same.
    with pytest.raises(CorruptionError):
        VecStore.open(path, read_only=True)


def test_failed_open_leaves_the_store_unlocked(tmp_path: Path) -> None:
    """Whatever a damaged WAL makes open() raise, the attempt must not leave
    the store locked or half open: the next attempt fails the same way."""
    path = tmp_path / "store.db"
    _build(path)
    _flip_last_wal_entry(path)
    errors = []
    for _ in range(3):
        with pytest.raises(Exception) as info:  # any error, the same each time
            VecStore.open(path)
        errors.append(type(info.value))
        assert not isinstance(info.value, vecstore.StoreLockedError)
    assert len(set(errors)) == 1, errors
