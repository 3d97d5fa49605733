"""The change feed (issue #17): ``store.changes(since, until, partitions)``.

The model test: for random histories (upserts, deletes, rollbacks of the
store and of one partition, dropped partitions, retention, compaction,
reopening), applying ``changes(since=a, until=b)`` to the snapshot at ``a``
gives exactly the snapshot at ``b``, for every pair of retained versions.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import lmdb
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import vecstore
from vecstore import (
    AsyncVecStore,
    Change,
    Config,
    InvalidArgumentError,
    VecStore,
    VersionNotRetainedError,
)

DIM = 4
PARTS = ("default", "t1", "t2")
IDS = st.integers(0, 25).map(lambda i: f"r{i}")
Image = dict[str, dict[str, tuple[bytes, dict]]]  # partition -> id -> (vector bytes, metadata)


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=DIM).astype(np.float32) + 0.01


def image(store: VecStore, version: int) -> Image:
    snap = store.snapshot(version=version)
    return {p: {r.id: (r.vector.tobytes(), r.metadata) for r in snap.partition(p).scan()}
            for p in PARTS}


def apply(img: Image, changes: list[Change]) -> Image:
    out = {p: dict(m) for p, m in img.items()}
    for c in changes:
        if c.op == "upsert":
            assert c.vector is not None and c.metadata is not None
            out.setdefault(c.partition, {})[c.id] = (c.vector.tobytes(), c.metadata)
        else:
            assert c.op == "delete" and c.vector is None and c.metadata is None
            assert c.id in out.get(c.partition, {}), "a delete of a record that was not there"
            del out[c.partition][c.id]
    return out


class ChangeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="vs-chg-")
        self.path = f"{self.dir}/c.db"
        self.store = VecStore.open(self.path, Config(dim=DIM, seal_threshold=20))
        self.versions = [0]
        self.seed = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _view(self, part: str):
        return self.store if part == "default" else self.store.partition(part)

    def _made(self, v: int) -> None:
        if v > self.versions[-1]:
            self.versions.append(v)

    @rule(part=st.sampled_from(PARTS), rids=st.lists(IDS, min_size=1, max_size=12))
    def upsert_many(self, part: str, rids: list[str]) -> None:
        items = []
        for r in rids:  # an id twice in one batch: the last one wins
            self.seed += 1
            items.append((r, vec(self.seed), {"s": self.seed, "p": part}))
        self._made(self._view(part).upsert_many(items))

    @rule(part=st.sampled_from(PARTS), rids=st.lists(IDS, min_size=1, max_size=6))
    def delete_many(self, part: str, rids: list[str]) -> None:
        self._made(self._view(part).delete_many(rids))

    @rule(part=st.sampled_from(PARTS), flt=st.integers(0, 400))
    def delete_where(self, part: str, flt: int) -> None:
        self._made(self._view(part).delete_many(filter=f"s < {flt}"))

    @rule(part=st.sampled_from(["t1", "t2"]))
    def drop_partition(self, part: str) -> None:
        if self.store.drop_partition(part):
            self._made(self.store.version)

    @rule(data=st.data(), part=st.sampled_from([None, *PARTS]))
    def rollback(self, data: st.DataObject, part: str | None) -> None:
        floor = self._floor()
        target = data.draw(st.sampled_from([v for v in self.versions if v >= floor]))
        view = self.store if part is None else self.store.partition(part)
        self._made(view.rollback(target))

    @rule(keep=st.integers(3, 10))
    def set_retention(self, keep: int) -> None:
        self.store.set_retention(versions=keep)

    @rule()
    def compact(self) -> None:
        self.store.compact()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = VecStore.open(self.path)

    def _floor(self) -> int:
        """The oldest version still readable."""
        for v in self.versions:
            try:
                self.store.snapshot(version=v)
                return v
            except VersionNotRetainedError:
                continue
        return self.versions[-1]

    @invariant()
    def changes_turn_one_snapshot_into_another(self) -> None:
        retained = []
        for v in self.versions:
            try:
                retained.append((v, image(self.store, v)))
            except VersionNotRetainedError:
                with pytest.raises(VersionNotRetainedError):
                    self.store.changes(since=v)
        assert retained and retained[-1][0] == self.store.version
        for i, (a, img_a) in enumerate(retained):
            for b, img_b in retained[i:]:
                got = list(self.store.changes(since=a, until=b))
                assert [c.version for c in got] == sorted(c.version for c in got)
                assert all(a < c.version <= b for c in got)
                assert apply(img_a, got) == img_b, (a, b)
        a, img_a = retained[0]
        one = list(self.store.partition("t1").changes(a))
        assert {c.partition for c in one} <= {"t1"}
        assert apply({"t1": img_a["t1"]}, one)["t1"] == retained[-1][1]["t1"]


ChangeMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestChangeModel = ChangeMachine.TestCase


# -- plain behaviour -----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path):
    with VecStore.open(tmp_path / "s.db", Config(dim=3)) as s:
        yield s


def test_changes_in_version_order_with_rollbacks(store: VecStore) -> None:
    v1 = store.upsert("a", [1, 2, 3], {"x": 1})
    v2 = store.upsert_many([("b", [1, 0, 0]), ("c", [0, 1, 0], {"y": 2})])
    v3 = store.delete("a") and store.version
    v4 = store.partition("t").upsert("z", [0, 0, 1])
    v5 = store.rollback(v1)
    got = [(c.version, c.op, c.partition, c.id) for c in store.changes(since=0)]
    assert got == [(v1, "upsert", "default", "a"), (v2, "upsert", "default", "b"),
                   (v2, "upsert", "default", "c"), (v3, "delete", "default", "a"),
                   (v4, "upsert", "t", "z"), (v5, "upsert", "default", "a"),
                   (v5, "delete", "default", "b"), (v5, "delete", "default", "c"),
                   (v5, "delete", "t", "z")]
    last = list(store.changes(since=v4))
    assert last[0].metadata == {"x": 1} and last[0].vector.tolist() == [1, 2, 3]
    assert last[0].sparse is None
    assert [c.id for c in store.changes(since=v2, until=v4, partitions=["t"])] == ["z"]
    assert [c.id for c in store.partition("t").changes(0)] == ["z", "z"]
    assert list(store.changes(since=v5)) == []
    assert isinstance(last[0], vecstore.Change)


def test_changes_arguments(store: VecStore) -> None:
    store.upsert("a", [1, 2, 3])
    with pytest.raises(VersionNotRetainedError):
        store.changes(since=0, until=store.version + 1)
    with pytest.raises(VersionNotRetainedError):
        store.changes(since=store.version + 1)
    with pytest.raises(InvalidArgumentError):
        store.changes(since=1, until=0)
    with pytest.raises(TypeError):
        store.changes(since="1")
    assert list(store.changes(0, partitions=["nowhere"])) == []


def test_retention_raises_and_compaction_purges(store: VecStore) -> None:
    for i in range(10):
        store.upsert(f"r{i % 3}", [1, i, 1])
    store.set_retention(versions=3)
    floor = store.versions()[0].version
    with pytest.raises(VersionNotRetainedError):
        store.changes(since=floor - 1)
    before = list(store.changes(since=floor))
    store.compact()
    assert [(c.version, c.id) for c in store.changes(since=floor)] == \
        [(c.version, c.id) for c in before]
    st_ = store._engine.storage
    with st_.read() as txn:
        keys = [bytes(k) for k, _v in txn.cursor(db=st_.db("chg"))]
    assert min(int.from_bytes(k[:8], "big") for k in keys) > floor


def test_an_open_feed_keeps_its_rows_through_compaction(store: VecStore) -> None:
    for i in range(4):
        store.upsert_many([(f"r{j}", [1, i, j + 1]) for j in range(600)])
    it = store.changes(since=1)  # versions 2..4, read 1,000 changes a batch
    first = next(it)
    store.set_retention(versions=1)
    store.upsert_many([(f"r{j}", [2, 2, j + 1]) for j in range(600)])
    store.compact()  # the feed pins version 1: the rows it has still to read stay
    rest = list(it)
    assert first.version == 2 and len(rest) == 3 * 600 - 1
    assert rest[-1].version == 4 and rest[-1].vector.tolist() == [1, 3, 100]  # r99: by id
    with pytest.raises(VersionNotRetainedError):
        store.changes(since=1)


def test_backfill_of_a_store_from_before_the_feed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with VecStore.open(path, Config(dim=3)) as s:
        for i in range(30):
            s.upsert_many([(f"r{i % 7}", [1, i, 2]), (f"q{i % 5}", [i, 1, 2])])
            if i % 4 == 0:
                s.delete(f"r{i % 7}")
        want = [(c.version, c.op, c.id, c.metadata) for c in s.changes(since=0)]
    env = lmdb.open(str(path), max_dbs=32)  # as a store written before `chg` existed
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(b"chg", txn=txn), delete=True)
        txn.delete(b"chg", db=env.open_db(b"meta", txn=txn))
    env.close()
    with VecStore.open(path, read_only=True) as ro:  # not backfilled yet: read from history
        assert [(c.version, c.op, c.id, c.metadata) for c in ro.changes(since=0)] == want
    with VecStore.open(path) as s:  # a writer backfills at open
        st_ = s._engine.storage
        with st_.read() as txn:
            assert st_.get_meta(txn, "chg") == 1
        assert [(c.version, c.op, c.id, c.metadata) for c in s.changes(since=0)] == want


async def test_async_changes(tmp_path: Path) -> None:
    async with AsyncVecStore.open(tmp_path / "a.db", Config(dim=3)) as s:
        v1 = await s.upsert("a", [1, 2, 3])
        await s.upsert_many([(f"b{i}", [1, i, 3]) for i in range(2500)])
        await s.delete("a")
        got = [c async for c in s.changes(since=0)]
        assert len(got) == 2502 and got[0].id == "a" and got[-1].op == "delete"
        assert [c.id async for c in s.partition("default").changes(v1, until=v1 + 1)][:2] == \
            ["b0", "b1"]
        with pytest.raises(VersionNotRetainedError):
            s.changes(since=99999)
