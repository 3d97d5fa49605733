"""Several processes on one store: one writer at a time (a second one gets
StoreLockedError at once), any number of read_only readers that see new
commits after refresh(), and read_only opening of a missing store."""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import random
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vecstore
from vecstore import Config, ReadOnlyError, StoreLockedError, VecStore, VecStoreError

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "_crash_child.py"
_spec = importlib.util.spec_from_file_location("_crash_child", CHILD)
assert _spec is not None and _spec.loader is not None
child_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child_mod)

DIM = 8
SEAL = 200
TIMEOUT = 60  # generous: a hung child fails the test instead of the run


def _config() -> Config:
    return Config(dim=DIM, seal_threshold=SEAL)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _try_open(path: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(CHILD), "try-open", str(path)], env=_env(),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _optimize(store: VecStore) -> None:
    # Twice, so that no segment job is left running when the store is closed
    # even if optimize() did not wait for a seal a racing write started.
    store.optimize()
    store.optimize()


def _write(store: VecStore, op: int, ids: list[str]) -> int:
    return store.upsert_many([(rid, child_mod.vector_for(rid, op, DIM), {"op": op})
                              for rid in ids])


def _state(store: VecStore) -> dict[str, list[int]]:
    return {r.id: [r.metadata["op"], r.version] for r in store.scan()}


class Reader:
    """A read_only store in a child process, driven line by line."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), "reader", str(path)], env=_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        assert self._next() == {"ready": True}

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=TIMEOUT)
        except queue.Empty:
            self.proc.kill()
            pytest.fail("reader child did not answer in time")
        if line is None:
            self.proc.wait(timeout=TIMEOUT)
            assert self.proc.stderr is not None
            pytest.fail(f"reader child died (rc {self.proc.returncode}): "
                        f"{self.proc.stderr.read()}")
        return json.loads(line)  # type: ignore[no-any-return]

    def ask(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._next()

    def quit(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=TIMEOUT)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        assert rc == 0, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)


# -- (a) one writer at a time ----------------------------------------------------------


def test_second_writer_process_gets_store_locked_error_at_once(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with VecStore.open(path, _config()) as store:
        v = _write(store, 1, ["k1", "k2"])
        out = _try_open(path)
        assert out["error"] == "StoreLockedError", out
        # The holder is unaffected and keeps writing.
        assert _write(store, 2, ["k3"]) > v
        assert len(store) == 3
    # Once the writer has closed, another process may open it.
    out = _try_open(path)
    assert out["error"] is None, out
    with VecStore.open(path) as store:
        assert sorted(_state(store)) == ["k1", "k2", "k3"]


def test_second_writer_in_process_gets_store_locked_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = VecStore.open(path, _config())
    try:
        _write(first, 1, ["k1"])
        with pytest.raises(StoreLockedError) as info:
            VecStore.open(path)
        assert isinstance(info.value, VecStoreError)
        with pytest.raises(StoreLockedError):
            VecStore.open(path, _config())
        # The failed attempts released nothing: the lock still holds against
        # other processes, and the first store still works.
        assert _try_open(path)["error"] == "StoreLockedError"
        _write(first, 2, ["k2"])
        assert _state(first).keys() == {"k1", "k2"}
        # A read_only opener in the same process may sit beside the writer.
        with VecStore.open(path, read_only=True) as ro:
            assert _state(ro) == _state(first)
    finally:
        first.close()
    with VecStore.open(path) as second:
        assert _state(second).keys() == {"k1", "k2"}
        _write(second, 3, ["k3"])
    with VecStore.open(path) as third:
        assert len(third) == 3


async def test_second_async_writer_in_process_gets_store_locked_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with vecstore.AsyncVecStore.open(path, _config()) as store:
        await store.upsert("k1", child_mod.vector_for("k1", 1, DIM), {"op": 1})
        with pytest.raises(StoreLockedError):
            async with vecstore.AsyncVecStore.open(path):
                pass  # pragma: no cover
        with pytest.raises(StoreLockedError):
            VecStore.open(path)
        assert await store.count() == 1
    with VecStore.open(path) as again:
        assert len(again) == 1


# -- (b) read_only readers in other processes ---------------------------------------------


def test_read_only_readers_in_other_processes_see_commits_after_refresh(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    rng = random.Random(7)
    readers: list[Reader] = []
    with VecStore.open(path, _config()) as store:
        # Enough rows to seal segments, then some still in the growing segment.
        for op in range(1, 4):
            _write(store, op, [f"k{i}" for i in rng.sample(range(child_mod.POOL), 150)])
        _optimize(store)
        _write(store, 4, [f"k{i}" for i in range(20)])
        store.delete_many(["k21", "k22", "k23"])
        assert store.stats().sealed_segments >= 1
        v1, state1 = store.version, _state(store)
        try:
            readers = [Reader(path) for _ in range(3)]
            for r in readers:
                got = r.ask("state")
                assert got["version"] == v1
                assert got["ids"] == state1 and got["count"] == len(state1)
                assert r.ask("check") == {"bad": []}
            # The writer carries on: updates, deletes, new ids, another seal.
            _write(store, 5, [f"k{i}" for i in range(0, child_mod.POOL, 2)])
            store.delete("k1")
            store.delete_many([f"k{i}" for i in range(100, 130)])
            _write(store, 6, [f"k{i}" for i in range(child_mod.POOL)])
            store.delete_many([f"k{i}" for i in range(250, 260)])
            _optimize(store)
            _write(store, 7, ["k3", "k5"])
            v2, state2 = store.version, _state(store)
            assert v2 > v1 and state2 != state1
            for r in readers:
                # Before refresh() a reader still sees what it saw.
                got = r.ask("state")
                assert got["version"] == v1 and got["ids"] == state1
                assert r.ask("refresh") == {"ok": True}
                got = r.ask("state")
                assert got["version"] == v2
                assert got["ids"] == state2 and got["count"] == len(state2)
                assert r.ask("check") == {"bad": []}
                # A read_only store refuses every write.
                assert r.ask("write") == {"errors": ["ReadOnlyError"] * 5}
            # Nothing the readers tried reached the store.
            assert store.version == v2 and _state(store) == state2
            for r in readers:
                r.quit()
        finally:
            for r in readers:
                r.kill()


def test_read_only_reader_beside_a_busy_writer_process(tmp_path: Path) -> None:
    """A writer process writes (and seals, and merges) as fast as it can
    while this process reads read_only and refreshes: every refresh shows a
    consistent store, the version never goes back, and queries work."""
    path = tmp_path / "store.db"
    with VecStore.open(path, _config()) as store:  # create it, so a reader can open
        _write(store, 1, [f"k{i}" for i in range(50)])
    log = tmp_path / "writer.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), "writer", str(path), str(log), "relaxed", "11",
         "1000", str(SEAL), str(DIM)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _w, _x = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready and proc.stdout.readline().strip() == "ready", "writer child did not start"
        with VecStore.open(path, read_only=True) as ro:
            assert ro.read_only
            with pytest.raises(ReadOnlyError):
                ro.upsert("k0", child_mod.vector_for("k0", 0, DIM))
            last = ro.version
            refreshes = 0
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline or refreshes < 3:
                ro.refresh()
                refreshes += 1
                snap = ro.snapshot()
                assert snap.version >= last
                last = snap.version
                recs = list(snap.scan())
                assert len(recs) == snap.count()
                for rec in recs:
                    op = rec.metadata["op"]
                    assert rec.version <= snap.version
                    assert np.array_equal(rec.vector, child_mod.vector_for(rec.id, op, DIM))
                for rec in recs[::10]:
                    hits = snap.query(rec.vector, k=1)
                    assert hits and hits[0].id == rec.id
            assert last > 1, "the writer process committed nothing while we read"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, "writer child stopped by itself"


def test_read_only_store_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with VecStore.open(path, _config()) as store:
        _write(store, 1, ["k1", "k2"])
        v = store.version
    with VecStore.open(path, read_only=True) as ro:
        vec = child_mod.vector_for("k9", 1, DIM)
        calls = [
            lambda: ro.upsert("k9", vec),
            lambda: ro.upsert_many([("k9", vec)]),
            lambda: ro.upsert_many(ids=["k9"], vectors=np.stack([vec])),
            lambda: ro.delete("k1"),
            lambda: ro.delete_many(["k1", "k2"]),
            lambda: ro.optimize(),
            lambda: ro.partition("other").upsert("k9", vec),
        ]
        for call in calls:
            with pytest.raises(ReadOnlyError):
                call()
        assert ro.version == v
        assert _state(ro) == {"k1": [1, v], "k2": [1, v]}
        ro.refresh()  # a no-op without a writer, and harmless
        assert ro.version == v
    # ... and it changed nothing on disk.
    with VecStore.open(path) as store:
        assert store.version == v and len(store) == 2


def test_read_only_open_of_a_closed_store_in_a_fresh_process(tmp_path: Path) -> None:
    """No writer anywhere: a reader process opens the store on its own."""
    path = tmp_path / "store.db"
    with VecStore.open(path, _config()) as store:
        _write(store, 1, [f"k{i}" for i in range(SEAL + 30)])
        _optimize(store)
        _write(store, 2, ["k1", "k2"])
        v, state = store.version, _state(store)
    r = Reader(path)
    try:
        got = r.ask("state")
        assert got["version"] == v and got["ids"] == state
        assert r.ask("check") == {"bad": []}
        # A reader does not hold the writer's lock: a writer may open now.
        with VecStore.open(path) as store:
            _write(store, 3, [f"k{i}" for i in range(0, SEAL + 30, 3)])
            store.delete("k2")
            _optimize(store)
            v2, state2 = store.version, _state(store)
            assert r.ask("state")["version"] == v
            assert r.ask("refresh") == {"ok": True}
            got = r.ask("state")
            assert got["version"] == v2 and got["ids"] == state2
            assert r.ask("check") == {"bad": []}
        r.quit()
    finally:
        r.kill()


def test_read_only_open_of_a_store_in_a_read_only_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.db"
    with VecStore.open(path, _config()) as store:
        _write(store, 1, [f"k{i}" for i in range(20)])
        v, state = store.version, _state(store)
    # Tests run as root, for whom chmod does not deny writes: make the
    # directory look read-only to the access check instead.
    real_access = os.access

    def access(p: Any, mode: int, *args: Any, **kw: Any) -> bool:
        if mode & os.W_OK and str(p).startswith(str(path)):
            return False
        return real_access(p, mode, *args, **kw)

    monkeypatch.setattr(os, "access", access)
    with VecStore.open(path, read_only=True) as ro:
        assert ro.version == v
        assert _state(ro) == state
        assert ro.stats().total_vectors == len(state)


# -- (c) read_only opening of a missing store ----------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "empty-dir"])
def test_read_only_open_of_a_missing_store_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "nothing.db"
    if kind == "empty-dir":
        path.mkdir()
    # A StoreNotFoundError: a VecStoreError that is still a FileNotFoundError.
    with pytest.raises(FileNotFoundError) as info:
        VecStore.open(path, read_only=True)
    assert isinstance(info.value, VecStoreError)
    assert "nothing.db" in str(info.value)
    # A read_only open never creates anything.
    if kind == "missing":
        assert not path.exists()
    else:
        assert list(path.iterdir()) == []
