"""Model-based test: the store against a dict + brute-force k-NN.

Random upsert / upsert_many / delete / delete_many / snapshot / reopen /
optimize sequences.  get, scan, count and len must match the model exactly
at the latest version and at every snapshot taken; k-NN must be exact while
a partition is small, and reach recall@10 >= 0.95 on sealed segments.
"""

from __future__ import annotations

import shutil
import tempfile
import time

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vecstore import Config, VecStore

DIM = 8
IDS = st.integers(0, 60).map(lambda i: f"id{i}")
PARTS = st.sampled_from(["default", "p1"])


def vec_for(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v if np.any(v) else np.ones(DIM, np.float32)


def brute_force(model: dict[str, tuple[np.ndarray, dict]], q: np.ndarray, k: int) -> list[str]:
    if not model:
        return []
    ids = sorted(model)
    mat = np.stack([model[i][0] for i in ids]).astype(np.float64)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    qq = q.astype(np.float64) / np.linalg.norm(q)
    order = np.argsort(-(mat @ qq), kind="stable")[:k]
    return [ids[i] for i in order]


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="vs-model-")
        self.path = f"{self.dir}/m.db"
        self.store = VecStore.open(self.path, Config(dim=DIM, seal_threshold=40))
        self.model: dict[str, dict[str, tuple[np.ndarray, dict]]] = {"default": {}, "p1": {}}
        self.snaps: list[tuple[object, dict[str, dict[str, tuple[np.ndarray, dict]]]]] = []
        self.seed = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _view(self, part: str):
        return self.store if part == "default" else self.store.partition(part)

    def _next(self) -> np.ndarray:
        self.seed += 1
        return vec_for(self.seed)

    @rule(part=PARTS, rid=IDS, tag=st.integers(0, 3))
    def upsert(self, part: str, rid: str, tag: int) -> None:
        v = self._next()
        meta = {"tag": tag, "name": rid}
        ver = self._view(part).upsert(rid, v, meta)
        assert ver == self.store.version
        self.model[part][rid] = (v, meta)

    @rule(part=PARTS, rids=st.lists(IDS, min_size=1, max_size=30))
    def upsert_many(self, part: str, rids: list[str]) -> None:
        items = [(r, self._next(), {"tag": i % 4}) for i, r in enumerate(rids)]
        self._view(part).upsert_many(items)
        for r, v, m in items:
            self.model[part][r] = (v, m)

    @rule(part=PARTS, rid=IDS)
    def delete(self, part: str, rid: str) -> None:
        existed = self._view(part).delete(rid)
        assert existed == (rid in self.model[part])
        self.model[part].pop(rid, None)

    @rule(part=PARTS, rids=st.lists(IDS, max_size=10))
    def delete_many(self, part: str, rids: list[str]) -> None:
        self._view(part).delete_many(rids)
        for r in rids:
            self.model[part].pop(r, None)

    @rule()
    def snapshot(self) -> None:
        snap = self.store.snapshot()
        frozen = {p: dict(m) for p, m in self.model.items()}
        self.snaps.append((snap, frozen))
        self.snaps = self.snaps[-4:]

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = VecStore.open(self.path)
        self.snaps = []  # snapshots of a closed store are gone

    @precondition(lambda self: sum(len(m) for m in self.model.values()) > 0)
    @rule()
    def optimize(self) -> None:
        self.store.optimize()
        assert self.store.stats().growing_vectors == 0

    def _check(self, view, model: dict[str, tuple[np.ndarray, dict]]) -> None:
        assert len(view) == len(model)
        scanned = [(r.id, r.metadata) for r in view.scan()]
        assert scanned == [(i, model[i][1]) for i in sorted(model)]
        assert view.count(filter="tag = 1") == sum(1 for v in model.values() if v[1]["tag"] == 1)
        for rid in list(model)[:5]:
            rec = view.get(rid)
            assert rec is not None and np.array_equal(rec.vector, model[rid][0])
        if model:
            q = next(iter(model.values()))[0]
            got = [r.id for r in view.query(q, k=10)]
            want = brute_force(model, q, 10)
            # Small partitions (< 1000 rows) are answered exactly.
            assert set(got) == set(want), (got, want)

    @invariant()
    def matches_model(self) -> None:
        for part in ("default", "p1"):
            self._check(self._view(part), self.model[part])
        for snap, frozen in self.snaps:
            self._check(snap, frozen["default"])  # type: ignore[arg-type]
            self._check(snap.partition("p1"), frozen["p1"])  # type: ignore[attr-defined]


StoreMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreModel = StoreMachine.TestCase


def test_recall_on_sealed_segments(tmp_path) -> None:
    """Above the exact-search threshold, HNSW must reach recall@10 >= 0.95."""
    rng = np.random.default_rng(11)
    n, dim = 6000, 32
    data = rng.normal(size=(n, dim)).astype(np.float32)
    with VecStore.open(tmp_path / "big.db", Config(dim=dim, seal_threshold=2000)) as s:
        for i in range(0, n, 1000):
            s.upsert_many(ids=[str(j) for j in range(i, i + 1000)], vectors=data[i : i + 1000])
        dead = set(range(0, n, 13))
        s.delete_many([str(j) for j in dead])
        deadline = time.monotonic() + 120  # background seals: wait for them, don't race
        while s.stats().sealed_segments < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.stats().sealed_segments >= 2  # searched through HNSW, not exactly
        model = {str(j): (data[j], {}) for j in range(n) if j not in dead}
        recall = []
        for qi in rng.choice(n, 100, replace=False):
            want = set(brute_force(model, data[qi], 10))
            got = {r.id for r in s.query(data[qi], k=10)}
            assert len(got) == 10 and not got & {str(j) for j in dead}
            recall.append(len(want & got) / 10)
        assert float(np.mean(recall)) >= 0.95
