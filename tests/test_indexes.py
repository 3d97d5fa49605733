"""Metadata indexes and the planner: filtered answers never change with
indexes, filtered k-NN keeps its recall at every selectivity."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecstore import Config, Query, VecStore
from vecstore._filter.core import parse_filter

ROOT = Path(__file__).resolve().parent.parent
DIM = 16

# -- random metadata and filters over a small vocabulary ---------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3),
                    st.sampled_from([0.5, -1.5, 2.0]), st.sampled_from(["a", "b", "ab", "ba", ""]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.fixed_dictionaries({"x": SCALARS}))
METAS = st.dictionaries(st.sampled_from(["f", "g", "h"]), VALUES, max_size=3)
FIELDS = st.sampled_from(["f", "g", "h", "h.x"])


def leaf_strings() -> st.SearchStrategy[str]:
    lit = SCALARS.map(lambda v: parse_filter({"z": v}).to_string().split("=", 1)[1].strip()
                      if v is not None else "null")
    return st.one_of(
        st.builds(lambda f, op, v: f"{f} {op} {v}", FIELDS,
                  st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), lit),
        st.builds(lambda f, vs: f"{f} IN ({', '.join(vs)})", FIELDS,
                  st.lists(lit, min_size=1, max_size=3)),
        st.builds(lambda f, vs: f"{f} NOT IN [{', '.join(vs)}]", FIELDS,
                  st.lists(lit, min_size=1, max_size=3)),
        st.builds(lambda f, v: f"{f} CONTAINS {v}", FIELDS, lit),
        st.builds(lambda f, v: f"{f} STARTSWITH '{v}'", FIELDS, st.sampled_from(["a", "b", ""])),
        st.builds(lambda f: f"{f} EXISTS", FIELDS),
        st.builds(lambda f: f"{f} IS NULL", FIELDS),
        st.builds(lambda f: f"{f} IS NOT NULL", FIELDS),
    )


FILTERS = st.recursive(
    leaf_strings(),
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) AND ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) OR ({b})", inner, inner),
        st.builds(lambda a: f"NOT ({a})", inner)),
    max_leaves=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(metas=st.lists(METAS, min_size=1, max_size=40), filters=st.lists(FILTERS, min_size=1,
                                                                          max_size=6),
       kinds=st.fixed_dictionaries({"f": st.sampled_from(["hash", "btree", "inverted", None]),
                                    "g": st.sampled_from(["btree", None]),
                                    "h.x": st.sampled_from(["hash", None])}))
def test_indexed_filters_equal_reference(tmp_path_factory, metas, filters, kinds) -> None:
    path = tmp_path_factory.mktemp("ix") / "s.db"
    with VecStore.open(path, Config(dim=4, seal_threshold=15)) as s:
        half = len(metas) // 2
        s.upsert_many([(str(i), [1, i, 2, 3], m) for i, m in enumerate(metas[:half])] or
                      [("x", [1, 1, 1, 1], {})])
        for f, kind in kinds.items():
            if kind:
                s.create_index(f, kind)  # backfill of the first half
        rest = [(str(i), [1, i, 2, 3], m) for i, m in enumerate(metas) if i >= half]
        if rest:
            s.upsert_many(rest)
        s.delete_many([str(i) for i in range(0, len(metas), 5)])
        live = {r.id: r.metadata for r in s.scan()}
        for text in filters:
            flt = parse_filter(text)
            assert flt is not None
            want = sorted(i for i, m in live.items() if flt.matches(m))
            assert s.count(filter=text) == len(want), text
            got = sorted(r.id for r in s.query([1, 1, 2, 3], k=100, filter=text))
            assert got == want, text


def _data(n: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    n = 8000
    data = _data(n)
    path = tmp_path_factory.mktemp("big") / "b.db"
    s = VecStore.open(path, Config(dim=DIM, seal_threshold=3000))
    metas = [{"bucket": i % 1000, "tag": ["x", "y"] if i % 2 else ["z"], "name": f"n{i}"}
             for i in range(n)]
    for i in range(0, n, 2000):
        s.upsert_many(ids=[str(j) for j in range(i, i + 2000)], vectors=data[i : i + 2000],
                      metadata=metas[i : i + 2000])
    s.create_index("bucket", "btree")
    s.create_index("tag", "inverted")
    s.optimize()
    yield s, data, metas
    s.close()


@pytest.mark.parametrize("share", [0.5, 0.2, 0.1, 0.01, 0.001])
def test_filtered_knn_recall(big, share: float) -> None:
    s, data, metas = big
    limit = int(1000 * share)
    flt = f"bucket < {limit}"
    ids = np.array([i for i, m in enumerate(metas) if m["bucket"] < limit])
    norm = data / np.linalg.norm(data, axis=1, keepdims=True)
    rng = np.random.default_rng(1)
    recalls = []
    for qi in rng.choice(len(data), 30, replace=False):
        want = set(ids[np.argsort(-(norm[ids] @ norm[qi]))[:10]].astype(str))
        got = [r.id for r in s.query(data[qi], k=10, filter=flt)]
        assert len(got) == min(10, len(ids))
        assert all(metas[int(g)]["bucket"] < limit for g in got)
        recalls.append(len(want & set(got)) / len(want))
    assert np.mean(recalls) >= 0.95, (share, np.mean(recalls))


def test_fewer_matches_than_k_returns_exactly_them(big) -> None:
    s, data, _metas = big
    got = s.query(data[0], k=10, filter="bucket = 7 AND tag CONTAINS 'x'")
    want = {str(i) for i in range(8000) if i % 1000 == 7 and i % 2}
    assert {r.id for r in got} == want and len(got) == len(want) < 10


def test_explain_picks_by_selectivity(big) -> None:
    s, data, _ = big
    plans = {share: s.explain(Query(data[0]).with_filter(f"bucket < {int(1000 * share)}"))
             for share in (0.5, 0.2, 0.01)}
    assert plans[0.5].strategy == "hnsw_overfetch"
    assert plans[0.2].strategy == "hnsw_overfetch"
    assert plans[0.01].strategy == "exact_scan"
    assert plans[0.01].estimated_matches == 80
    unindexed = s.explain(Query(data[0]).with_filter("name = 'n5'"))
    assert any("create_index('name'" in h for h in unindexed.hints)
    assert unindexed.unindexed_fields == ["name"]
    assert s.explain(Query(data[0])).strategy == "hnsw"


def test_filters_do_not_change_unfiltered_answers(big) -> None:
    s, data, _ = big
    before = [r.id for r in s.query(data[3], k=10)]
    s.query(data[3], k=10, filter="bucket < 5")
    assert [r.id for r in s.query(data[3], k=10)] == before


def test_index_lifecycle_and_reopen(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    with VecStore.open(p, Config(dim=4, seal_threshold=50)) as s:
        s.create_index("price", "btree")  # before data
        s.upsert_many([(str(i), [1, i, 0, 1], {"price": i, "cat": "ab"[i % 2]})
                       for i in range(120)])
        s.create_index("cat", "hash")  # after data
        assert s.indexes() == {"price": "btree", "cat": "hash"}
        assert s.count(filter="price < 10 AND cat = 'a'") == 5
        s.delete_many(filter={"price": {"$gte": 100}})
        assert len(s) == 100
    with VecStore.open(p) as s:
        assert s.indexes() == {"price": "btree", "cat": "hash"}
        assert s.count(filter="price < 10 AND cat = 'a'") == 5
        assert s.count(filter="price >= 100") == 0
        assert s.drop_index("cat") is True and s.indexes() == {"price": "btree"}
        assert s.count(filter="cat = 'a'") == 50  # still right, by a scan


def test_kill_during_backfill_leaves_index_all_or_nothing(tmp_path: Path) -> None:
    p = tmp_path / "k.db"
    with VecStore.open(p, Config(dim=4, seal_threshold=5000)) as s:
        for i in range(0, 20000, 5000):
            s.upsert_many([(str(j), [1, j, 0, 1], {"v": j % 97}) for j in range(i, i + 5000)])
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            f"from vecstore import VecStore\n"
            f"s = VecStore.open({str(p)!r})\nprint('ready', flush=True)\n"
            f"s.create_index('v', 'btree')\nprint('done', flush=True)\n")
    for delay in (0.05, 0.2):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with VecStore.open(p) as s:
            expected = sum(1 for j in range(20000) if j % 97 < 10)
            assert s.count(filter="v < 10") == expected
            if s.indexes():
                s.drop_index("v")


def test_filtered_walk_between_exact_and_overfetch(tmp_path: Path) -> None:
    """1,000 < matches < 5% of a segment: hnswlib's filtered walk."""
    n = 25000
    data = _data(n, seed=9)
    with VecStore.open(tmp_path / "w.db", Config(dim=DIM, seal_threshold=n)) as s:
        s.upsert_many(ids=[str(j) for j in range(n)], vectors=data,
                      metadata=[{"b": j % 1000} for j in range(n)])
        s.create_index("b", "btree")
        s.optimize()
        flt = "b < 46"  # 1,150 rows = 4.6%
        assert s.explain(Query(data[0]).with_filter(flt)).strategy == "filtered_hnsw"
        ids = np.array([j for j in range(n) if j % 1000 < 46])
        norm = data / np.linalg.norm(data, axis=1, keepdims=True)
        recalls = []
        for qi in np.random.default_rng(2).choice(n, 20, replace=False):
            want = set(ids[np.argsort(-(norm[ids] @ norm[qi]))[:10]].astype(str))
            got = [r.id for r in s.query(data[qi], k=10, filter=flt)]
            assert all(int(g) % 1000 < 46 for g in got) and len(got) == 10
            recalls.append(len(want & set(got)) / 10)
        assert np.mean(recalls) >= 0.95
