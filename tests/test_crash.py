"""kill -9 at random moments: every acknowledged write survives, an
in-flight write is all-or-nothing, and the store reopens cleanly.

A child process (``_crash_child.py writer``) writes in a loop and logs each
call before ("b") and after ("a") it returns.  The parent SIGKILLs it after a
random delay, reopens the store and checks it against the log, then lets a
new child carry on writing on the same store.  ``seal_threshold`` is small,
so kills also land while segments are being sealed and merged.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import random
import select
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import cbor2
import lmdb
import numpy as np
import pytest

import vecstore
from vecstore import Config, VecStore

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "_crash_child.py"
_spec = importlib.util.spec_from_file_location("_crash_child", CHILD)
assert _spec is not None and _spec.loader is not None
child_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child_mod)

DIM = 8
SEAL = 200
KILLS = 6
OPS_PER_RUN = 1_000_000  # op numbers of run r start at r * OPS_PER_RUN + 1
SEED = int(os.environ.get("VECSTORE_CRASH_SEED", random.randrange(2**31)))


def _config(durability: str) -> Config:
    return Config(dim=DIM, seal_threshold=SEAL, durability=durability)  # type: ignore[arg-type]


def _spawn_writer(store: Path, log: Path, durability: str, seed: int, opbase: int
                  ) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), "writer", str(store), str(log), durability, str(seed),
         str(opbase), str(SEAL), str(DIM)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _w, _x = select.select([proc.stdout], [], [], 60)  # generous; a hang fails
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "ready":
        proc.kill()
        _out, err = proc.communicate(timeout=30)
        pytest.fail(f"writer child did not start: {line!r}\n{err}")
    return proc


def _kill(proc: subprocess.Popen[str]) -> str:
    os.kill(proc.pid, signal.SIGKILL)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"child ended by itself: {err}"
    return err


def _read_log(log: Path) -> list[dict[str, Any]]:
    entries = []
    lines = log.read_text().split("\n") if log.exists() else []
    for i, line in enumerate(lines):
        if not line:
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            # Only the very last line can be torn by the kill.
            assert i == len(lines) - 1, f"torn line in the middle of the log: {line!r}"
    return entries


def _manifest(store: Path) -> dict[str, int]:
    """{segment file name: crc} straight from LMDB (store must be closed)."""
    env = lmdb.open(str(store), readonly=True, max_dbs=16, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            segs = env.open_db(b"segs", txn=txn, create=False)
            out = {}
            for _k, v in txn.cursor(db=segs):
                entry = cbor2.loads(v)
                out[entry["file"]] = entry["crc"]
            return out
    finally:
        env.close()


def _crc(path: Path) -> int:
    return zlib.crc32(path.read_bytes())


def _check_segment_files(store: Path) -> dict[str, int]:
    """The segments folder holds exactly the files the manifest names, each
    matching its checksum: no stray temp or unrecorded segment file."""
    manifest = _manifest(store)
    on_disk = sorted(os.listdir(store / "segments"))
    assert on_disk == sorted(manifest), (on_disk, sorted(manifest))
    for name, crc in manifest.items():
        assert _crc(store / "segments" / name) == crc, f"{name} does not match its checksum"
    return manifest


def _optimize(store: VecStore) -> None:
    """Seal and merge everything, and leave no segment job running.

    Called twice so that these tests do not depend on optimize() waiting for
    a seal that the previous write started in the background (that race is
    tested on its own in test_optimize_right_after_a_sealing_write_waits_for_the_seal).
    """
    store.optimize()
    store.optimize()


class Model:
    """What the store must hold, from the child's acknowledged calls."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[int, int]] = {}  # id -> (op, version)
        self.max_acked = 0  # highest version any acknowledged call returned
        self.floor = 0  # store.version at the last reopen: new versions must exceed it
        self.acked_calls = 0
        self.committed_inflight = 0

    def replay(self, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Apply the acknowledged calls; return the in-flight call, if any."""
        pending: dict[str, Any] | None = None
        for e in entries:
            if "b" in e:
                assert pending is None, f"two calls begun without an answer: {pending} {e}"
                pending = e
                continue
            assert pending is not None and e["a"] == pending["b"], (pending, e)
            op, ids, n, r = pending["op"], pending["ids"], pending["b"], e["r"]
            if op in ("upsert", "upsert_many"):
                assert isinstance(r, int) and not isinstance(r, bool)
                assert r > self.floor and r > self.max_acked, (
                    f"op {n} returned version {r}, not above floor {self.floor} / "
                    f"acked {self.max_acked}: a version was reused")
                for rid in ids:
                    self.state[rid] = (n, r)
                self.max_acked = r
            elif op == "delete":
                assert isinstance(r, bool)
                assert r == (ids[0] in self.state), f"delete({ids[0]}) answered {r}"
                self.state.pop(ids[0], None)
            else:
                assert isinstance(r, int) and not isinstance(r, bool)
                existed = any(rid in self.state for rid in ids)
                assert r >= self.max_acked
                if existed:
                    assert r > self.floor and r > self.max_acked
                for rid in ids:
                    self.state.pop(rid, None)
                self.max_acked = max(self.max_acked, r)
            self.acked_calls += 1
            pending = None
        return pending


def _observe(store: VecStore) -> dict[str, tuple[int, int]]:
    """id -> (op, version) for every live id, checking vectors exactly."""
    seen: dict[str, tuple[int, int]] = {}
    for i in range(child_mod.POOL):
        rid = f"k{i}"
        rec = store.get(rid)
        if rec is None:
            continue
        op = rec.metadata["op"]
        assert rec.metadata == {"op": op}
        expect = child_mod.vector_for(rid, op, DIM)
        assert rec.vector.dtype == np.float32
        assert np.array_equal(rec.vector, expect), f"{rid}: wrong vector for op {op}"
        seen[rid] = (op, rec.version)
    return seen


def _verify(store: VecStore, model: Model, pending: dict[str, Any] | None) -> None:
    seen = _observe(store)
    inflight = set(pending["ids"]) if pending else set()
    for i in range(child_mod.POOL):
        rid = f"k{i}"
        if rid in inflight:
            continue
        assert seen.get(rid) == model.state.get(rid), (
            f"{rid}: store has {seen.get(rid)}, last acknowledged write left "
            f"{model.state.get(rid)} (seed {SEED})")
    version = store.version
    assert version >= model.max_acked, (version, model.max_acked)
    if pending:
        ids, n = pending["ids"], pending["b"]
        before = {rid: model.state.get(rid) for rid in ids}
        now = {rid: seen.get(rid) for rid in ids}
        if pending["op"] in ("upsert", "upsert_many"):
            if now != before:
                # Committed: every id of the batch carries it, at one version.
                ops = {v[0] if v else None for v in now.values()}
                vers = {v[1] if v else None for v in now.values()}
                assert ops == {n} and len(vers) == 1, (
                    f"partial batch for in-flight op {n}: {now} (before {before})")
                v = vers.pop()
                assert v is not None and v > model.max_acked and v > model.floor
                assert version >= v
                model.committed_inflight += 1
        else:
            after = dict.fromkeys(ids)
            assert now in (before, after), (
                f"partial delete for in-flight op {n}: {now} (before {before})")
            if now != before:
                model.committed_inflight += 1
        for rid in ids:
            if seen.get(rid) is None:
                model.state.pop(rid, None)
            else:
                model.state[rid] = seen[rid]
    model.max_acked = max(model.max_acked, max((v for _o, v in seen.values()), default=0))
    model.floor = version
    # Counts agree with what get() sees.
    assert len(store) == len(seen) == store.stats().total_vectors
    # Queries work: a stored vector finds its own record first.
    for rid in sorted(seen)[::3]:
        vec = child_mod.vector_for(rid, seen[rid][0], DIM)
        hits = store.query(vec, k=3)
        assert hits and hits[0].id == rid, (rid, [(h.id, h.score) for h in hits])


def _kill_cycles(tmp_path: Path, durability: str, caplog: pytest.LogCaptureFixture) -> Model:
    print(f"VECSTORE_CRASH_SEED={SEED}")  # shown on failure, to replay the same run
    rng = random.Random(SEED)
    store_path = tmp_path / "store.db"
    model = Model()
    sealed_seen = 0
    for run in range(KILLS):
        log = tmp_path / f"log-{run}.jsonl"
        proc = _spawn_writer(store_path, log, durability, rng.randrange(2**31),
                             run * OPS_PER_RUN)
        time.sleep(rng.uniform(0.3, 1.5))
        _kill(proc)
        pending = model.replay(_read_log(log))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="vecstore"):
            store = VecStore.open(store_path, _config(durability))
        try:
            problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert not problems, f"reopen after a kill had to repair: {problems}"
            _verify(store, model, pending)
            sealed_seen = max(sealed_seen, store.stats().sealed_segments)
        finally:
            store.close()
        _check_segment_files(store_path)
    assert model.acked_calls > KILLS, "the child made too few calls to test anything"
    assert sealed_seen > 0, "no segment was ever sealed: seal_threshold not exercised"
    # After all the kills the store still works: write, seal everything, read back.
    with VecStore.open(store_path, _config(durability)) as store:
        v0 = store.version
        v = store.upsert("k0", child_mod.vector_for("k0", 0, DIM), {"op": 0})
        assert v > v0
        model.state["k0"] = (0, v)
        model.max_acked = v
        _optimize(store)
        assert store.stats().growing_vectors == 0
        _verify(store, model, None)
    _check_segment_files(store_path)
    return model


@pytest.mark.parametrize("durability", ["sync", "relaxed"])
def test_kill9_loses_no_acknowledged_write(tmp_path: Path, durability: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    _kill_cycles(tmp_path, durability, caplog)


def test_open_after_kill_leaves_no_stray_segment_files(tmp_path: Path) -> None:
    """Kill the writer, add the debris a kill mid-seal could leave (a temp
    file and a finished but unrecorded segment), reopen: only the files the
    manifest names remain and the store works."""
    store_path = tmp_path / "store.db"
    rng = random.Random(SEED + 1)
    proc = _spawn_writer(store_path, tmp_path / "log.jsonl", "sync", rng.randrange(2**31), 0)
    time.sleep(rng.uniform(0.3, 1.0))
    _kill(proc)
    segs = store_path / "segments"
    (segs / "seg-00000000000000fe.hnsw.tmp").write_bytes(b"half written")
    (segs / "seg-00000000000000fd.hnsw").write_bytes(os.urandom(4096))
    with VecStore.open(store_path, _config("sync")) as store:
        stats = store.stats()
        assert stats.total_vectors == len(store)
        assert stats.version == store.version
        assert not any(name.endswith(".tmp") for name in os.listdir(segs))
        assert "seg-00000000000000fd.hnsw" not in os.listdir(segs)
        store.upsert_many([(f"k{i}", child_mod.vector_for(f"k{i}", 7, DIM), {"op": 7})
                           for i in range(SEAL + 10)])
        _optimize(store)
        stats = store.stats()
        assert stats.sealed_segments == 1 and stats.growing_vectors == 0
        for i in range(0, SEAL + 10, 7):
            hits = store.query(child_mod.vector_for(f"k{i}", 7, DIM), k=1)
            assert hits[0].id == f"k{i}"
    _check_segment_files(store_path)


async def test_optimize_right_after_a_sealing_write_waits_for_the_seal(tmp_path: Path) -> None:
    """optimize() called just after a write that made a seal due must wait
    for that seal (it used to see no job yet, plan nothing and return)."""
    rng = np.random.default_rng(SEED)
    results = []
    for attempt in range(3):
        async with vecstore.AsyncVecStore.open(tmp_path / f"s{attempt}", _config("sync")) as s:
            await s.upsert_many(ids=[f"a{i}" for i in range(SEAL - 50)],
                                vectors=rng.standard_normal((SEAL - 50, DIM)))
            # Crosses seal_threshold: the writer starts a background seal.
            await s.upsert_many(ids=[f"b{i}" for i in range(100)],
                                vectors=rng.standard_normal((100, DIM)))
            await s.optimize()
            st = await s.stats()
            results.append((st.growing_vectors, st.sealed_segments))
            await s.optimize()  # let the seal finish before closing (see _optimize)
    assert results == [(0, 1)] * 3, f"(growing rows, sealed segments) after optimize: {results}"


def test_close_mid_seal_leaves_nothing_running(tmp_path: Path) -> None:
    """close() while a segment is being built: once close() returns no vecstore
    thread is still busy and nothing more is written into the store (an
    abandoned build thread used to write its segment file after close() and
    could make the interpreter abort at exit)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    store = tmp_path / "store.db"
    proc = subprocess.run([sys.executable, str(CHILD), "close-mid-seal", str(store)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip(), proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["saw_build"], "the child closed before any segment build started"
    assert out["lingering"] == [], f"threads still busy after close(): {out['lingering']}"
    assert out["after"] == out["before"], f"files written after close(): {out}"
    assert proc.returncode == 0, proc.stderr
    with VecStore.open(store) as s:  # and the store itself is fine
        assert len(s) == 2000
        _optimize(s)
