"""Versions: time travel, history, tags, rollback, retention and compaction,
checked against a model that keeps the full state at every version."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vecstore import (
    AsyncVecStore,
    Config,
    VecStore,
    VersionedStore,
    VersionNotRetainedError,
)

DIM = 6
IDS = st.integers(0, 40).map(lambda i: f"r{i}")
PARTS = st.sampled_from(["default", "t1"])
State = dict[str, dict[str, tuple[np.ndarray, dict]]]


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=DIM).astype(np.float32) + 0.01


class VersionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="vs-ver-")
        self.path = f"{self.dir}/v.db"
        self.store = VecStore.open(self.path, Config(dim=DIM, seal_threshold=30))
        self.states: dict[int, State] = {0: {"default": {}, "t1": {}}}
        self.floor = 0
        self.keep: int | None = None
        self.seed = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def latest(self) -> State:
        return self.states[max(self.states)]

    def _commit(self, version: int, state: State) -> None:
        assert version > max(self.states)
        self.states[version] = state
        if self.keep is not None:
            retained = sorted(self.states)[-self.keep:]
            self.floor = max(self.floor, retained[0])

    def _view(self, part: str):
        return self.store if part == "default" else self.store.partition(part)

    @rule(part=PARTS, rids=st.lists(IDS, min_size=1, max_size=15))
    def upsert_many(self, part: str, rids: list[str]) -> None:
        new = {p: dict(m) for p, m in self.latest.items()}
        items = []
        for r in rids:
            self.seed += 1
            items.append((r, vec(self.seed), {"s": self.seed}))
        v = self._view(part).upsert_many(items)
        for r, x, m in items:
            new[part][r] = (x, m)
        self._commit(v, new)

    @rule(part=PARTS, rids=st.lists(IDS, min_size=1, max_size=5))
    def delete_many(self, part: str, rids: list[str]) -> None:
        if not set(rids) & set(self.latest[part]):
            return  # deleting nothing makes no version
        new = {p: dict(m) for p, m in self.latest.items()}
        v = self._view(part).delete_many(rids)
        for r in rids:
            new[part].pop(r, None)
        self._commit(v, new)

    @rule(data=st.data(), part=st.sampled_from([None, "default", "t1"]))
    def rollback(self, data: st.DataObject, part: str | None) -> None:
        retained = [v for v in self.states if v >= self.floor]
        target = data.draw(st.sampled_from(sorted(retained)))
        if part is None:
            v = self.store.rollback(target)
            new = {p: dict(m) for p, m in self.states[target].items()}
        else:
            v = self.store.partition(part).rollback(target)  # that partition alone
            new = {p: dict(m) for p, m in self.latest.items()}
            new[part] = dict(self.states[target][part])
        self._commit(v, new)

    @rule(data=st.data())
    def rollback_dropped_version_fails(self, data: st.DataObject) -> None:
        if self.floor == 0:
            return
        target = data.draw(st.integers(0, self.floor - 1))
        before = self.store.version
        with pytest.raises(VersionNotRetainedError):
            self.store.rollback(target)
        assert self.store.version == before

    @rule(keep=st.integers(2, 8))
    def set_retention(self, keep: int) -> None:
        self.store.set_retention(versions=keep)
        self.keep = keep
        retained = sorted(self.states)[-keep:]
        self.floor = max(self.floor, retained[0])

    @rule()
    def compact(self) -> None:
        self.store.compact()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = VecStore.open(self.path)

    @precondition(lambda self: len(self.states) > 1)
    @rule()
    def optimize(self) -> None:
        self.store.optimize()

    def _check(self, snap, model: dict[str, tuple[np.ndarray, dict]]) -> None:
        assert len(snap) == len(model)
        assert [(r.id, r.metadata) for r in snap.scan()] == \
            [(i, model[i][1]) for i in sorted(model)]
        for rid in sorted(model)[:3]:
            rec = snap.get(rid)
            assert rec is not None and np.array_equal(rec.vector, model[rid][0])
        if model:
            q = model[sorted(model)[0]][0]
            got = snap.query(q, k=3)
            assert got[0].score == pytest.approx(1.0, abs=1e-5)

    @invariant()
    def every_retained_version_reads_right(self) -> None:
        assert self.store.version == max(self.states)
        listed = [v.version for v in self.store.versions()]
        want = [v for v in sorted(self.states) if v >= self.floor and v > 0]
        assert listed == want
        for v in sorted(self.states):
            if v < self.floor:
                with pytest.raises(VersionNotRetainedError):
                    self.store.snapshot(version=v)
                continue
            snap = self.store.snapshot(version=v)
            for part in ("default", "t1"):
                self._check(snap.partition(part), self.states[v][part])


VersionMachine.TestCase.settings = settings(
    max_examples=20, stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestVersionModel = VersionMachine.TestCase


def test_history_tags_and_versioned_store(tmp_path: Path) -> None:
    with VersionedStore.open(tmp_path / "h.db", Config(dim=DIM)) as s:
        v1 = s.update("a", vec(1), {"n": 1}, "first")
        s.tag("before-migration")
        v2 = s.update("a", vec(2), {"n": 2}, "Updated from Pinecone")
        v3 = s.delete("a", message="gone") and s.version
        v4 = s.rollback(v2, message="undo delete")
        hist = s.history("a")
        assert [(h.version, h.op) for h in hist] == [
            (v1, "upsert"), (v2, "upsert"), (v3, "delete"), (v4, "rollback")]
        assert hist[1].metadata == {"n": 2} and hist[2].vector is None
        assert s.snapshot(tag="before-migration").get("a").metadata == {"n": 1}  # type: ignore[union-attr]
        infos = {v.version: v for v in s.versions()}
        assert infos[v1].tag == "before-migration" and infos[v2].message == "Updated from Pinecone"
        with pytest.raises(VersionNotRetainedError):
            s.snapshot(tag="nope")
        with pytest.raises(VersionNotRetainedError):
            s.snapshot(version=v4 + 10)


def test_open_snapshot_survives_retention_and_compaction(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "p.db", Config(dim=DIM, seal_threshold=20)) as s:
        s.upsert_many([(f"x{i}", vec(i), {"i": i}) for i in range(60)])
        old = s.snapshot()
        for round_ in range(5):
            s.upsert_many([(f"x{i}", vec(1000 * round_ + i), {"r": round_}) for i in range(60)])
        s.set_retention(versions=2)
        s.compact()
        assert old.count() == 60 and old.get("x5").metadata == {"i": 5}  # type: ignore[union-attr]
        del old
        import gc

        gc.collect()
        res = s.compact()
        assert res["rows"] > 0  # the pin is gone: its rows are reclaimed now


async def test_pinned_readers_stay_fixed_while_writer_ingests_and_compacts(tmp_path: Path) -> None:
    async with AsyncVecStore.open(tmp_path / "a.db", Config(dim=DIM, seal_threshold=40)) as s:
        await s.upsert_many([(f"k{i}", vec(i), {"g": 0}) for i in range(80)])
        problems: list[str] = []
        done = trio.Event()

        async def reader(snap) -> None:
            first = [(r.id, r.metadata) async for r in snap.scan()]
            n = await snap.count()
            while not done.is_set():
                again = [(r.id, r.metadata) async for r in snap.scan()]
                if again != first or await snap.count() != n:
                    problems.append(f"snapshot {snap.version} changed")
                await trio.sleep(0.001)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(reader, await s.snapshot())
                await s.upsert_many([(f"k{i}", vec(500 + i), {"g": 1}) for i in range(0, 80, 3)])
            await s.set_retention(versions=1)
            for round_ in range(4):
                await s.upsert_many([(f"n{round_}-{i}", vec(9000 + i), {}) for i in range(30)])
                await s.delete_many([f"k{i}" for i in range(round_, 80, 7)])
                await s.compact()
            done.set()
        assert not problems, problems[:3]
