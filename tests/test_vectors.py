"""Vector storage: packed blocks for sealed rows, graph-only segment files."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vecstore import Config, VecStore
from vecstore._segments.segment import prepare
from vecstore._storage.env import Storage
from vecstore._storage.vectors import VectorTable, decode_block, rows_per_block
from vecstore._types import Distance

DIM = 16


def _storage(tmp_path) -> Storage:
    return Storage(str(tmp_path / "s"), read_only=False, sync=False)


def test_pack_get_many_remove(tmp_path):
    DIM = 384  # large enough for blocks to pay off
    st = _storage(tmp_path)
    rng = np.random.default_rng(1)
    # two partitions with interleaved rowids
    rows = {r: rng.standard_normal(DIM).astype(np.float32) for r in range(300)}
    pid_of = {r: 1 + (r % 3 == 0) for r in rows}

    def body(txn):
        vecs = st.db("vecs")
        for r, v in rows.items():
            txn.put(r.to_bytes(8, "big"), v.tobytes(), db=vecs)
        t = VectorTable(st, txn, DIM)
        for pid in (1, 2):
            mine = np.array([r for r in rows if pid_of[r] == pid and r < 250], np.int64)
            t.pack(pid, mine)

    st.write(body)
    with st.read() as txn:
        t = VectorTable(st, txn, DIM)
        assert txn.stat(st.db("vecs"))["entries"] == 50  # rows 250.. stay per row
        for r, v in rows.items():
            assert np.array_equal(t.get(pid_of[r], r), v)
            if r < 250:  # packed: found through its own partition only
                assert t.get(3 - pid_of[r], r) is None
        want = np.array([299, 3, 150, 0, 249, 42], np.int64)  # any order, mixed places
        found, mat = t.many(1, want)
        assert found.tolist() == [pid_of[r] == 1 for r in want.tolist()]
        assert np.array_equal(mat, np.stack([rows[r] for r in want.tolist() if pid_of[r] == 1]))
    gone = [r for r in rows if r % 7 == 0]

    def drop(txn):
        t = VectorTable(st, txn, DIM)
        for pid in (1, 2):
            t.remove(pid, [r for r in gone if pid_of[r] == pid])

    st.write(drop)
    with st.read() as txn:
        t = VectorTable(st, txn, DIM)
        for r, v in rows.items():
            got = t.get(pid_of[r], r)
            assert (got is None) if r in gone else np.array_equal(got, v)
        for pid in (1, 2):
            seen = np.concatenate([b[1] for b in t.blocks_of(pid)])
            assert (np.diff(seen) > 0).all()
            assert set(seen.tolist()) == {r for r in rows if pid_of[r] == pid and r < 250
                                          and r not in gone}
    st.close()


def test_blocks_only_where_they_beat_one_value_per_row():
    from vecstore._storage.vectors import worth_a_block

    assert worth_a_block(rows_per_block(384), 384)  # 2 per page: 24% lost
    assert not worth_a_block(1, 384)


def test_blocks_fill_their_pages():
    for dim in (2, 8, 100, 384, 768, 1536):
        n = rows_per_block(dim)
        raw = 4 + n * (8 + 4 * dim) + 16
        pages = -(-raw // 4096)
        assert (pages >= 8 and raw / (pages * 4096) > 0.97) or dim > 1024


def test_block_size_mismatch_is_corruption():
    from vecstore import CorruptionError
    from vecstore._storage.vectors import encode_block

    raw = encode_block(np.arange(3, dtype=np.int64), np.zeros((3, 4), np.float32))
    assert decode_block(raw)[1].shape == (3, 4)
    with pytest.raises(CorruptionError):
        decode_block(raw, 5)
    with pytest.raises(CorruptionError):
        decode_block(raw[:-1], 4)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 70)),
              elements=st.floats(-1e6, 1e6, width=32)),
       st.integers(0, 39))
def test_prepare_is_the_same_alone_or_in_a_batch(mat, i):
    i %= mat.shape[0]
    whole = prepare(mat, Distance.COSINE)
    alone = prepare(np.ascontiguousarray(mat[i : i + 1]), Distance.COSINE)
    assert whole[i].tobytes() == alone[0].tobytes()
    offset = prepare(np.ascontiguousarray(mat[i:]), Distance.COSINE)
    assert whole[i].tobytes() == offset[0].tobytes()


def _fill(path, distance="cosine", n=3000, seal=500, dim=DIM):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    s = VecStore.open(path, Config(dim=dim, distance=distance, seal_threshold=seal))
    s.upsert_many(ids=[f"r{i}" for i in range(n)], vectors=x,
                  metadata=[{"i": i} for i in range(n)])
    return s, x


@pytest.mark.parametrize("distance", ["cosine", "dot", "euclidean"])
def test_sealed_rows_live_once_and_read_back_exactly(tmp_path, distance):
    path = str(tmp_path / "s")
    s, x = _fill(path, distance, dim=128)
    v1 = s.version
    s.optimize()
    seg_dir = os.path.join(path, "segments")
    seg_bytes = sum(os.path.getsize(os.path.join(seg_dir, f)) for f in os.listdir(seg_dir))
    assert seg_bytes < x.nbytes / 2  # the files hold the graph, not the vectors
    queries = x[:20] + 0.01
    assert np.array_equal(s.get("r17").vector, x[17])
    s.upsert_many(ids=["r17", "r18"], vectors=x[:2] * 2, metadata=[{}, {}])
    s.rollback(v1)
    assert np.array_equal(s.get("r17").vector, x[17])
    hist = s.history("r18")
    assert np.array_equal(hist[0].vector, x[18])
    s.optimize()
    before = [[(r.id, r.score) for r in s.query(q, k=5)] for q in queries]
    s.close()
    s = VecStore.open(path)
    after = [[(r.id, r.score) for r in s.query(q, k=5)] for q in queries]
    assert after == before  # reassembled graphs answer exactly as built
    got = {r.id: r.vector for r in s.scan()}
    assert all(np.array_equal(got[f"r{i}"], x[i]) for i in range(len(x)))
    s.close()
    out = subprocess.run([sys.executable, "-m", "vecstore.cli", "check", path],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compaction_takes_purged_rows_out_of_blocks(tmp_path):
    path = str(tmp_path / "s")
    s, x = _fill(path, n=2000, seal=400, dim=128)
    s.optimize()
    s.delete_many([f"r{i}" for i in range(0, 2000, 2)])
    s.set_retention(versions=1)
    s.compact()
    s.close()
    st = Storage(path, read_only=True, sync=False)
    with st.read() as txn:
        t = VectorTable(st, txn, 128)
        kept = np.concatenate([b[1] for pid in (1,) for b in t.blocks_of(pid)])
        singles = txn.stat(st.db("vecs"))["entries"]  # a batch's tail too short for a block
        assert kept.size + singles == 1000 and singles < rows_per_block(128)
        assert set(kept.tolist()) <= set(range(1, 2000, 2))
    st.close()
    s = VecStore.open(path)
    assert s.count() == 1000
    hits = s.query(x[1], k=1)
    assert hits[0].id == "r1" and np.array_equal(s.get("r1").vector, x[1])
    s.close()


def _check(path):
    import json

    out = subprocess.run([sys.executable, "-m", "vecstore.cli", "check", path, "--json"],
                         capture_output=True, text=True)
    return out.returncode, json.loads(out.stdout)


def test_check_reports_damaged_vector_blocks(tmp_path):
    import lmdb

    path = str(tmp_path / "s")
    s, _x = _fill(path, n=1000, seal=400, dim=128)
    s.optimize()
    s.close()
    rc, doc = _check(path)
    assert rc == 0 and doc["checked"]["vector_blocks"] >= 10, doc
    env = lmdb.open(path, max_dbs=16)
    with env.begin(write=True) as txn:
        db = env.open_db(b"vblocks", txn=txn, create=False)
        keys = [bytes(k) for k, _v in txn.cursor(db=db)]
        raw = txn.get(keys[3], db=db)
        txn.put(keys[3], raw[:-4], db=db)  # truncated
        raw = bytearray(txn.get(keys[5], db=db))
        raw[-4:] = np.float32(np.nan).tobytes()
        txn.put(keys[5], bytes(raw), db=db)  # a NaN
        txn.delete(keys[7], db=db)  # rows without vectors
    env.close()
    rc, doc = _check(path)
    probs = " | ".join(doc["problems"])
    assert rc == 4, doc
    assert "expected" in probs and "NaN" in probs and "has no vector" in probs


def test_graph_files_load_without_memfd(tmp_path, monkeypatch):
    import vecstore._index.hnswfile as hf

    path = str(tmp_path / "s")
    s, x = _fill(path, n=1200, seal=400, dim=32)
    s.optimize()
    before = [r.id for r in s.query(x[5], k=5)]
    s.close()
    seg_dir = os.path.join(path, "segments")
    stamps = {f: os.stat(os.path.join(seg_dir, f)).st_mtime_ns for f in os.listdir(seg_dir)}
    monkeypatch.delattr(hf.os, "memfd_create", raising=False)
    with VecStore.open(path) as s:
        assert [r.id for r in s.query(x[5], k=5)] == before
    # loaded as they were, not rebuilt and rewritten
    assert stamps == {f: os.stat(os.path.join(seg_dir, f)).st_mtime_ns
                      for f in os.listdir(seg_dir)}
    assert not [f for f in os.listdir(tempfile.gettempdir()) if f.startswith("vecstore-segment-")]


def test_every_element_gets_its_own_vector_back(tmp_path):
    """A multi-threaded hnswlib build stores elements out of label order;
    reassembly must place each vector by the element's label."""
    path = str(tmp_path / "s")
    s, x = _fill(path, n=6000, seal=10**9, dim=16)
    s.optimize()  # one segment, built with every core
    s.close()
    s = VecStore.open(path)
    (seg,) = s._engine.parts["default"].sealed
    stored = seg.index.raw.get_items(np.arange(seg.n), return_type="numpy")
    want = prepare(x[seg.rowids], Distance.COSINE)  # rowid i holds x[i] here
    assert np.array_equal(stored, want)
    s.close()
