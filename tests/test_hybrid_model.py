"""Model test of BM25 and sparse search (issue #13): the store against a
dict of live records and a brute-force reference computed here.

Random upserts (text or none, sparse vector or none), deletes, rollbacks,
retention + compaction, optimize (seal/merge), reopen and snapshots.  At
the latest version and at every snapshot held, for random queries:

* ``HybridQuery(None, text, k=all)`` returns exactly the records holding a
  query term, with the BM25 score of the reference (Lucene's idf, k1=1.2,
  b=0.75, N/avgdl/df over the records live at that version);
* ``HybridQuery(None, sparse=q, k=all)`` returns exactly the records whose
  sparse vector shares an index with ``q``, scored by the dot product.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vecstore import Config, HybridQuery, VecStore
from vecstore._metaindex import text as text_columns

DIM = 4
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
IDS = st.integers(0, 25).map(lambda i: f"id{i}")
TEXT = st.one_of(st.none(), st.lists(st.sampled_from(WORDS), min_size=0, max_size=7)
                 .map(" ".join))
SPARSE = st.one_of(st.none(), st.dictionaries(st.integers(0, 12),
                                              st.floats(-2, 2, width=32).filter(bool),
                                              min_size=1, max_size=4))
Rec = tuple[str | None, dict[int, float] | None]


def terms(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


def bm25(model: dict[str, Rec], query: str, k1: float = 1.2, b: float = 0.75,
         tok=terms) -> dict[str, float]:
    docs = {rid: tok(t) for rid, (t, _s) in model.items() if isinstance(t, str)}
    n = len(docs)
    if not n:
        return {}
    avgdl = sum(len(d) for d in docs.values()) / n
    out: dict[str, float] = {}
    for term in dict.fromkeys(tok(query)):
        df = sum(1 for d in docs.values() if term in d)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for rid, d in docs.items():
            tf = d.count(term)
            if tf:
                out[rid] = out.get(rid, 0.0) + idf * tf * (k1 + 1) / (
                    tf + k1 * (1 - b + b * len(d) / avgdl))
    return out


def dot(model: dict[str, Rec], q: dict[int, float]) -> dict[str, float]:
    out = {}
    for rid, (_t, sv) in model.items():
        if sv and set(sv) & set(q):
            out[rid] = sum(float(np.float32(w)) * q[i] for i, w in sv.items() if i in q)
    return out


def check(view, model: dict[str, Rec], rng: np.random.Generator) -> None:
    n = max(1, len(model))
    for _ in range(3):
        words = rng.choice([*WORDS, "omega"], size=int(rng.integers(1, 4))).tolist()
        query = " ".join(words)
        got = {r.id: r.score for r in view.query(HybridQuery(None, query, k=n))}
        want = bm25(model, query)
        assert set(got) == set(want), (query, got, want)
        for rid, s in want.items():
            assert math.isclose(got[rid], s, rel_tol=1e-5, abs_tol=1e-6), (query, rid, got, want)
    q = {int(i): float(rng.uniform(-1, 2)) for i in rng.choice(13, size=3, replace=False)}
    got = {r.id: r.score for r in view.query(HybridQuery(None, sparse=q, k=n))}
    want = dot(model, q)
    assert set(got) == set(want), (q, got, want)
    for rid, s in want.items():
        assert math.isclose(got[rid], s, rel_tol=1e-4, abs_tol=1e-5), (q, rid, got, want)


class TextMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="vs-hybrid-")
        self.path = f"{self.dir}/h.db"
        self.store = VecStore.open(self.path, Config(dim=DIM, seal_threshold=6,
                                                     text_field="content"))
        self.model: dict[str, Rec] = {}
        self.versions: dict[int, dict[str, Rec]] = {0: {}}
        self.snaps: list[tuple[object, dict[str, Rec]]] = []
        self.rng = np.random.default_rng(0)
        self.floor = 0
        # sealed columns search their inverted copy at any size (as at 4,096+ postings)
        self.invert_min, text_columns.INVERT_MIN = text_columns.INVERT_MIN, 0

    def teardown(self) -> None:
        text_columns.INVERT_MIN = self.invert_min
        self.snaps = []
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _vec(self) -> np.ndarray:
        return self.rng.normal(size=DIM).astype(np.float32) + 0.01

    def _commit(self, v: int) -> None:
        self.versions[v] = dict(self.model)
        kept = [i.version for i in self.store.versions()]  # retention moves the floor
        self.floor = min(kept) if kept else v
        self.versions = {u: m for u, m in self.versions.items() if u >= self.floor}

    @rule(rid=IDS, text=TEXT, sparse=SPARSE)
    def upsert(self, rid: str, text: str | None, sparse: dict[int, float] | None) -> None:
        meta = {} if text is None else {"content": text}
        v = self.store.upsert(rid, self._vec(), meta, sparse=sparse)
        self.model[rid] = (text, sparse)
        self._commit(v)

    @rule(rows=st.lists(st.tuples(IDS, TEXT, SPARSE), min_size=1, max_size=8))
    def upsert_many(self, rows: list) -> None:
        last = {rid: (t, s) for rid, t, s in rows}
        v = self.store.upsert_many(
            ids=list(last), vectors=[self._vec() for _ in last],
            metadata=[{} if t is None else {"content": t} for t, _s in last.values()],
            sparse=[s for _t, s in last.values()])
        self.model.update(last)
        self._commit(v)

    @rule(rid=IDS)
    def delete(self, rid: str) -> None:
        if self.store.delete(rid):
            del self.model[rid]
            self._commit(self.store.snapshot().version)

    @precondition(lambda self: len(self.versions) > 2)
    @rule(data=st.data())
    def rollback(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(sorted(v for v in self.versions if v >= self.floor)))
        latest = max(self.versions)
        if target >= latest:
            return
        v = self.store.rollback(target)
        self.model = dict(self.versions[target])
        self._commit(v)

    @rule()
    def optimize(self) -> None:
        self.store.optimize()

    @rule(keep=st.integers(1, 4))
    def compact(self, keep: int) -> None:
        self.snaps = []  # (a snapshot pins its version until dropped)
        self.store.set_retention(versions=keep)
        self.store.compact()
        self._commit(max(self.versions))

    @rule()
    def reopen(self) -> None:
        self.snaps = []  # (a snapshot pins its version until dropped)
        self.store.close()
        self.store = VecStore.open(self.path)

    @rule()
    def snapshot(self) -> None:
        if len(self.snaps) < 3:
            self.snaps.append((self.store.snapshot(), dict(self.model)))

    @invariant()
    def agrees(self) -> None:
        check(self.store, self.model, self.rng)
        for snap, model in self.snaps:
            check(snap, model, self.rng)
        old = [v for v in self.versions if v >= self.floor]
        if old:
            v = min(old)
            check(self.store.snapshot(version=v), self.versions[v], self.rng)


TextMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestTextModel = TextMachine.TestCase
