"""Issue #10's contract gaps: PartitionedStore, get_many, AsyncVecStore off trio."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import trio

from vecstore import (
    AsyncPartitionedStore,
    AsyncVecStore,
    Config,
    InvalidArgumentTypeError,
    InvalidIdError,
    PartitionedStore,
    Query,
    UnsupportedEventLoopError,
    VecStore,
    VecStoreError,
)


def _vec(i: int, dim: int = 8) -> list[float]:
    rng = np.random.default_rng(i)
    return rng.standard_normal(dim).astype(np.float32).tolist()


# -- PartitionedStore ------------------------------------------------------------------


def test_partitioned_store_seed_spelling(tmp_path: Path) -> None:
    with PartitionedStore.open(tmp_path / "data", Config(dim=8)) as ps:
        assert isinstance(ps, VecStore)
        for i in range(30):
            ps.insert("tenant_a" if i % 2 else "tenant_b", f"doc{i}", _vec(i), {"i": i})
        v = ps.insert("tenant_a", "shared-id", _vec(100), {"who": "a"})
        assert ps.insert("tenant_b", "shared-id", _vec(101), {"who": "b"}) > v
        assert ps.partitions() == ["default", "tenant_a", "tenant_b"]

        q = Query(_vec(100)).with_limit(5)
        only_a = ps.query_partition("tenant_a", q)
        assert only_a[0].id == "shared-id" and only_a[0].metadata == {"who": "a"}
        assert {r.partition for r in only_a} == {"tenant_a"}
        assert all(r.metadata.get("i", 1) % 2 == 1 for r in only_a)

        every = ps.query_all(_vec(101), k=40)
        assert len(every) == 32  # every record of every partition, merged by score
        assert every[0].id == "shared-id" and every[0].partition == "tenant_b"
        scores = [r.score for r in every]
        assert scores == sorted(scores, reverse=True)
        assert {r.partition for r in every} == {"tenant_a", "tenant_b"}
        # filters and the shorthand form work on both
        assert [r.id for r in ps.query_all(_vec(3), k=3, filter={"i": 3})] == ["doc3"]
        assert ps.query_partition("tenant_b", _vec(3), k=3, filter="i = 3") == []
    assert ps.closed
    with PartitionedStore.open(tmp_path / "data") as ps:  # the same store, reopened
        assert ps.partition("tenant_a").get("shared-id").metadata == {"who": "a"}  # type: ignore[union-attr]
    with VecStore.open(tmp_path / "data") as plain:  # ... which a plain VecStore reads too
        assert len(plain.partition("tenant_b")) == 16


async def test_async_partitioned_store(tmp_path: Path) -> None:
    async with AsyncPartitionedStore.open(tmp_path / "data", Config(dim=8)) as ps:
        assert isinstance(ps, AsyncVecStore)
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(ps.insert, f"t{i % 3}", f"d{i}", _vec(i), {"i": i})
        assert await ps.partitions() == ["default", "t0", "t1", "t2"]
        hits = await ps.query_partition("t1", _vec(4), k=3)
        assert hits[0].id == "d4" and {r.partition for r in hits} == {"t1"}
        every = await ps.query_all(Query(_vec(5)).with_limit(25))
        assert len(every) == 20 and every[0].id == "d5"


# -- get_many ----------------------------------------------------------------------------


def test_get_many_order_absent_and_one_snapshot(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "s", Config(dim=8, seal_threshold=64)) as store:
        store.upsert_many([(f"r{i}", _vec(i), {"i": i}) for i in range(200)])
        store.optimize()  # some rows sealed into an HNSW segment, some growing
        store.upsert_many([(f"g{i}", _vec(1000 + i), {"g": i}) for i in range(5)])
        store.delete("r7")
        asked = ["g3", "nope", "r150", "r7", "r0", "g3", 42]
        got = store.get_many(asked)
        assert [r.id if r else None for r in got] == ["g3", None, "r150", None, "r0", "g3", None]
        assert got[2] is not None and got[2].metadata == {"i": 150}
        assert np.array_equal(got[2].vector, np.asarray(_vec(150), np.float32))
        for r in got:
            one = store.get(r.id) if r else None
            assert r is None or (one is not None and (r.id, r.metadata, r.version) == \
                (one.id, one.metadata, one.version) and np.array_equal(r.vector, one.vector))
        assert store.get_many([]) == []
        assert store.get_many(iter(["r1"]))[0].id == "r1"  # type: ignore[union-attr]

        snap = store.snapshot()
        store.upsert("r0", _vec(5), {"i": "new"})
        store.delete("r1")
        old = snap.get_many(["r0", "r1"])
        assert [r.metadata for r in old] == [{"i": 0}, {"i": 1}]  # type: ignore[union-attr]
        assert store.get_many(["r0", "r1"])[1] is None

        part = store.partition("p")
        part.upsert("r0", _vec(9), {"in": "p"})
        assert [r.metadata for r in part.get_many(["r0", "r2"]) if r] == [{"in": "p"}]

        with pytest.raises(InvalidArgumentTypeError):
            store.get_many("r0")  # a string is not a list of ids
        with pytest.raises(InvalidIdError):
            store.get_many(["ok", ""])


async def test_async_get_many(tmp_path: Path) -> None:
    async with AsyncVecStore.open(tmp_path / "s", Config(dim=8)) as store:
        await store.upsert_many([(f"r{i}", _vec(i)) for i in range(10)])
        got = await store.get_many(["r3", "x", "r1"])
        assert [r.id if r else None for r in got] == ["r3", None, "r1"]
        snap = await store.snapshot()
        assert [r.id for r in await snap.get_many(["r9"]) if r] == ["r9"]
        assert await store.partition("none").get_many(["r1"]) == [None]


# -- AsyncVecStore outside trio ----------------------------------------------------------


def test_async_store_under_asyncio_and_a_clear_error_elsewhere(tmp_path: Path) -> None:
    async def main() -> list[str]:
        async with AsyncVecStore.open(tmp_path / "s", Config(dim=3)) as s:
            await s.upsert("a", [1, 2, 3])
            return [r.id for r in await s.query([1, 2, 3], k=1)]

    assert asyncio.run(main()) == ["a"]
    # driven by no event loop at all (e.g. a hand-rolled runner): a typed error
    coro = AsyncVecStore.open(tmp_path / "t", Config(dim=3)).__aenter__()
    with pytest.raises(UnsupportedEventLoopError) as info:
        coro.send(None)
    assert isinstance(info.value, VecStoreError) and isinstance(info.value, RuntimeError)
    assert "asyncio or trio" in str(info.value) and "VecStore" in str(info.value)
    assert not (tmp_path / "t").exists()  # nothing was created


# -- store.recommend / store.find_duplicates (API.md "Analytics") -----------------------


def _brute_recommend(vecs: np.ndarray, ids: list[str], pos: list[int], neg: list[int],
                     k: int) -> list[str]:
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    avg = unit[pos].mean(0)
    q = avg + (avg - unit[neg].mean(0))
    q /= np.linalg.norm(q)
    order = np.argsort(-(unit @ q), kind="stable")
    skip = {ids[i] for i in pos + neg}
    return [ids[i] for i in order if ids[i] not in skip][:k]


def test_recommend_and_find_duplicates_on_the_store(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((300, 8)).astype(np.float32)
    ids = [f"r{i}" for i in range(300)]
    with VecStore.open(tmp_path / "s", Config(dim=8)) as store:
        store.upsert_many(ids=ids, vectors=vecs, metadata=[{"odd": i % 2} for i in range(300)])
        store.upsert_many([("twin-a", vecs[7] * 1.0001), ("twin-b", vecs[9] + 1e-5)])
        got = [r.id for r in store.recommend(positive=["r1", "r2"], negative=["r3"], k=5)]
        want = _brute_recommend(np.vstack([vecs, vecs[7] * 1.0001, vecs[9] + 1e-5]),
                                [*ids, "twin-a", "twin-b"], [1, 2], [3], 5)
        assert got == want  # (under 1,000 rows a store answers exactly)
        flt = [r.id for r in store.recommend(positive=["r1"], k=5, filter={"odd": 1})]
        assert flt and all(int(i[1:]) % 2 == 1 for i in flt) and "r1" not in flt
        groups = sorted(sorted(g) for g in store.find_duplicates(threshold=0.9999))
        assert groups == [["r7", "twin-a"], ["r9", "twin-b"]]
        assert store.partition("empty").find_duplicates() == []


async def test_async_recommend_and_find_duplicates(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    vecs = rng.standard_normal((100, 8)).astype(np.float32)
    async with AsyncVecStore.open(tmp_path / "s", Config(dim=8)) as store:
        await store.upsert_many(ids=[str(i) for i in range(100)], vectors=vecs)
        await store.upsert("copy", vecs[0])
        hits = await store.recommend(positive=["0"], k=3)
        assert hits[0].id == "copy"
        assert await store.find_duplicates(0.9999) == [["0", "copy"]]
