"""The public API of the durable core, call by call."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import vecstore
from vecstore import (
    Config,
    ConfigMismatchError,
    DimensionMismatchError,
    Distance,
    InvalidMetadataError,
    InvalidVectorError,
    Query,
    StoreClosedError,
    VecStore,
)


@pytest.fixture
def store(tmp_path: Path):
    s = VecStore.open(tmp_path / "s.db", Config(dim=4))
    yield s
    s.close()


def test_upsert_get_returns_versions(store: VecStore) -> None:
    v1 = store.upsert("a", [1, 0, 0, 0], {"k": "v"})
    v2 = store.upsert("b", np.array([0, 1, 0, 0], dtype=np.float64))
    assert v2 > v1 and store.version == v2
    rec = store.get("a")
    assert rec is not None and rec.id == "a" and rec.metadata == {"k": "v"}
    assert rec.vector.dtype == np.float32 and rec.vector.tolist() == [1, 0, 0, 0]
    assert rec.version == v1
    assert store.get("missing") is None
    assert store.upsert(7, [0, 0, 1, 0]) > v2 and store.get("7") is not None


def test_upsert_replaces(store: VecStore) -> None:
    store.upsert("a", [1, 0, 0, 0], {"n": 1})
    store.upsert("a", [0, 1, 0, 0], {"n": 2})
    assert len(store) == 1
    rec = store.get("a")
    assert rec is not None and rec.metadata == {"n": 2} and rec.vector[1] == 1
    assert [r.id for r in store.query([0, 1, 0, 0], k=5)] == ["a"]


def test_upsert_many_forms_and_atomic_version(store: VecStore) -> None:
    v = store.upsert_many([("a", [1, 0, 0, 0], {"i": 1}), ("b", [0, 1, 0, 0])])
    assert store.get("a").version == v == store.get("b").version  # type: ignore[union-attr]
    v2 = store.upsert_many(ids=["c", "d"], vectors=np.eye(4, dtype=np.float32)[:2],
                           metadata=[{"x": 1}, None])
    assert v2 > v and len(store) == 4
    assert store.get("d").metadata == {}  # type: ignore[union-attr]
    # duplicate ids in one batch: the last one wins
    store.upsert_many([("e", [1, 1, 0, 0], {"n": 1}), ("e", [0, 0, 1, 1], {"n": 2})])
    assert store.get("e").metadata == {"n": 2}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda s: s.upsert("a", [1, 2, 3]), DimensionMismatchError),
        (lambda s: s.upsert("a", [1, 2, math.nan, 4]), InvalidVectorError),
        (lambda s: s.upsert("a", [1, 2, math.inf, 4]), InvalidVectorError),
        (lambda s: s.upsert("a", [0, 0, 0, 0]), InvalidVectorError),
        (lambda s: s.upsert("a", ["x", 1, 2, 3]), InvalidVectorError),
        (lambda s: s.upsert("a", [[1, 2], [3, 4]]), InvalidVectorError),
        (lambda s: s.upsert("", [1, 2, 3, 4]), vecstore.InvalidIdError),
        (lambda s: s.upsert("x" * 1000, [1, 2, 3, 4]), vecstore.InvalidIdError),
        (lambda s: s.upsert(None, [1, 2, 3, 4]), vecstore.InvalidIdError),
        (lambda s: s.upsert("a", [1, 2, 3, 4], {"d": object()}), InvalidMetadataError),
        (lambda s: s.upsert("a", [1, 2, 3, 4], {1: "x"}), InvalidMetadataError),
        (lambda s: s.upsert("a", [1, 2, 3, 4], {"f": math.nan}), InvalidMetadataError),
        (lambda s: s.upsert("a", [1, 2, 3, 4], ["not", "a", "dict"]), InvalidMetadataError),
        (lambda s: s.upsert_many([("ok", [1, 2, 3, 4]), ("bad", [1, 2, 3])]),
         DimensionMismatchError),
        (lambda s: s.upsert_many([("ok", [1, 2, 3, 4]), ("bad", [0, 0, 0, 0])]),
         InvalidVectorError),
        (lambda s: s.upsert_many([("ok", [1, 2, 3, 4], {}), ("bad", [1, 2, 3, 4], {"x": {1}})]),
         InvalidMetadataError),
    ],
)
def test_bad_input_is_typed_and_writes_nothing(store: VecStore, call, exc) -> None:
    store.upsert("keep", [1, 1, 1, 1])
    before = store.version
    with pytest.raises(exc) as info:
        call(store)
    assert isinstance(info.value, vecstore.VecStoreError)
    assert isinstance(info.value, (ValueError, TypeError))
    assert store.version == before
    assert [r.id for r in store.scan()] == ["keep"]


def test_delete(store: VecStore) -> None:
    store.upsert_many([(str(i), [i + 1, 1, 0, 0]) for i in range(5)])
    assert store.delete("2") is True
    assert store.delete("2") is False
    assert store.get("2") is None and len(store) == 4
    v = store.delete_many(["0", "1", "nope"])
    assert v == store.version and len(store) == 2
    assert sorted(r.id for r in store.scan()) == ["3", "4"]
    assert all(r.id in {"3", "4"} for r in store.query([1, 1, 0, 0], k=10))


def test_scores_per_distance(tmp_path: Path) -> None:
    vecs = {"a": [1.0, 0.0], "b": [3.0, 4.0], "c": [-1.0, -1.0]}
    q = np.array([1.0, 1.0])
    for dist in Distance:
        with VecStore.open(tmp_path / dist.value, Config(distance=dist.value)) as s:
            s.upsert_many(list(vecs.items()))
            got = {r.id: r.score for r in s.query(q, k=3)}
            for k, v in vecs.items():
                v_ = np.array(v)
                if dist is Distance.COSINE:
                    want = v_ @ q / np.linalg.norm(v_) / np.linalg.norm(q)
                elif dist is Distance.DOT:
                    want = v_ @ q
                else:
                    want = np.linalg.norm(v_ - q)
                assert got[k] == pytest.approx(want, rel=1e-5, abs=1e-5)
            order = [r.id for r in s.query(q, k=3)]
            assert order == (["b", "a", "c"] if dist is not Distance.EUCLIDEAN else ["a", "c", "b"])


def test_dim_inferred_and_config_stored(tmp_path: Path) -> None:
    p = tmp_path / "x.db"
    with VecStore.open(p) as s:
        s.upsert("a", [1, 2, 3])
        with pytest.raises(DimensionMismatchError):
            s.upsert("b", [1, 2])
    with VecStore.open(p) as s:
        assert s.stats().dimension == 3 and s.stats().distance == "cosine"
    with pytest.raises(ConfigMismatchError):
        VecStore.open(p, Config(dim=5))
    with pytest.raises(ConfigMismatchError):
        VecStore.open(p, Config(distance="euclidean"))
    with VecStore.open(p, Config(dim=3, ef_search=99)) as s:  # runtime knobs may change
        assert len(s) == 1


def test_config_validation() -> None:
    with pytest.raises(ConfigMismatchError):
        Config(distance="manhattan")
    with pytest.raises(ValueError):
        Config(dim=0)
    with pytest.raises(ValueError):
        Config(durability="maybe")  # type: ignore[arg-type]
    assert Config(distance="DOT").distance is Distance.DOT


def test_query_forms_and_k(store: VecStore) -> None:
    store.upsert_many([(f"r{i}", [1, i, 0, 1], {"i": i}) for i in range(20)])
    a = store.query(Query([1, 3, 0, 1]).with_limit(4).with_filter("i >= 10"))
    b = store.query([1, 3, 0, 1], k=4, filter={"i": {"$gte": 10}})
    assert [r.id for r in a] == [r.id for r in b]
    assert len(a) == 4 and all(r.metadata["i"] >= 10 for r in a)
    assert len(store.query([1, 3, 0, 1], k=100)) == 20
    res = store.query([1, 3, 0, 1], k=1, include_vectors=True)
    assert res[0].vector is not None and res[0].vector.shape == (4,)
    assert store.query([1, 3, 0, 1], k=1)[0].vector is None
    with pytest.raises(vecstore.FilterError):
        store.query([1, 3, 0, 1], filter="i >>> 3")
    with pytest.raises(DimensionMismatchError):
        store.query([1, 2], k=1)
    scores = [r.score for r in store.query([1, 3, 0, 1], k=20)]
    assert scores == sorted(scores, reverse=True)


def test_snapshot_is_immutable(store: VecStore) -> None:
    store.upsert_many([(str(i), [1, i, 1, 0]) for i in range(10)])
    snap = store.snapshot()
    ids_before = [r.id for r in snap.scan()]
    store.delete("3")
    store.upsert("3", [5, 5, 5, 5], {"new": True})
    store.upsert("new", [1, 1, 1, 1])
    assert [r.id for r in snap.scan()] == ids_before
    assert snap.get("3").metadata == {}  # type: ignore[union-attr]
    assert snap.get("new") is None and len(snap) == 10 and snap.count() == 10
    assert "new" not in {r.id for r in snap.query([1, 1, 1, 1], k=20)}
    assert len(store) == 11


def test_partitions_are_isolated(store: VecStore) -> None:
    a, b = store.partition("tenant_a"), store.partition("tenant_b")
    a.upsert("doc", [1, 0, 0, 0], {"t": "a"})
    b.upsert("doc", [1, 0, 0, 0], {"t": "b"})
    store.upsert("doc", [1, 0, 0, 0], {"t": "default"})
    assert a.get("doc").metadata == {"t": "a"}  # type: ignore[union-attr]
    assert [r.metadata["t"] for r in a.query([1, 0, 0, 0], k=10)] == ["a"]
    assert [r.metadata["t"] for r in store.query([1, 0, 0, 0], k=10)] == ["default"]
    both = store.query(Query([1, 0, 0, 0]).with_partitions(["tenant_a", "tenant_b"]))
    assert sorted(r.partition for r in both) == ["tenant_a", "tenant_b"]
    assert store.partitions() == ["default", "tenant_a", "tenant_b"]
    assert store.stats().total_vectors == 3
    assert store.drop_partition("tenant_b") is True
    assert store.partitions() == ["default", "tenant_a"]
    assert b.get("doc") is None and len(b) == 0 and len(a) == 1


def test_sealing_and_optimize_keep_answers(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(size=(1500, 8)).astype(np.float32)
    with VecStore.open(tmp_path / "o.db", Config(dim=8, seal_threshold=300)) as s:
        for i in range(0, 1500, 100):
            s.upsert_many(ids=[str(j) for j in range(i, i + 100)], vectors=data[i : i + 100])
        s.delete_many([str(j) for j in range(0, 1500, 7)])
        s.optimize()
        st = s.stats()
        assert st.growing_vectors == 0 and st.sealed_segments == 1
        live = [j for j in range(1500) if j % 7]
        norm = data / np.linalg.norm(data, axis=1, keepdims=True)
        hits = 0
        for qi in range(0, 1500, 50):
            want = set(np.array(live)[np.argsort(-(norm[live] @ norm[qi]))[:10]].astype(str))
            got = {r.id for r in s.query(data[qi], k=10)}
            assert not {str(j) for j in range(0, 1500, 7)} & got
            hits += len(want & got)
        assert hits / (30 * 10) >= 0.95


def test_closed_store_raises(tmp_path: Path) -> None:
    s = VecStore.open(tmp_path / "c.db")
    s.upsert("a", [1, 2])
    snap = s.snapshot()
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreClosedError):
        s.upsert("b", [1, 2])
    with pytest.raises(StoreClosedError):
        s.get("a")
    with pytest.raises(StoreClosedError):
        snap.get("a")


def test_backup_is_a_working_copy(tmp_path: Path) -> None:
    cfg = Config(dim=4, seal_threshold=100, distance="euclidean")
    with VecStore.open(tmp_path / "src.db", cfg) as s:
        s.upsert_many([(str(i), [1, i, 2, 3], {"i": i}) for i in range(250)])
        s.optimize()
        s.upsert("late", [9, 9, 9, 9])
        s.backup(tmp_path / "copy.db")
    with VecStore.open(tmp_path / "copy.db") as c:
        assert len(c) == 251 and c.get("late") is not None
        assert c.query([1, 100, 2, 3], k=1)[0].id == "100"


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    p = tmp_path / "r.db"
    rng = np.random.default_rng(3)
    data = rng.normal(size=(700, 6)).astype(np.float32)
    with VecStore.open(p, Config(dim=6, seal_threshold=200)) as s:
        s.upsert_many(ids=[str(i) for i in range(700)], vectors=data)
        s.partition("p2").upsert("x", data[0], {"a": [1, 2]})
        s.delete("5")
    with VecStore.open(p) as s:
        assert len(s) == 699 and s.get("5") is None
        assert np.array_equal(s.get("6").vector, data[6])  # type: ignore[union-attr]
        assert s.partition("p2").get("x").metadata == {"a": [1, 2]}  # type: ignore[union-attr]
        assert s.query(data[10], k=1)[0].id == "10"


def test_lmdb_map_grows_by_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vecstore._storage.env as storage

    monkeypatch.setattr(storage, "INITIAL_MAP_SIZE", 1 << 20)  # 1 MiB to start with
    rng = np.random.default_rng(0)
    with VecStore.open(tmp_path / "g.db", Config(dim=64, seal_threshold=100_000)) as s:
        start = s._engine.storage.env.info()["map_size"]
        for i in range(0, 8000, 1000):  # ~3 MiB of vectors
            s.upsert_many(ids=[str(j) for j in range(i, i + 1000)],
                          vectors=rng.normal(size=(1000, 64)),
                          metadata=[{"i": j} for j in range(1000)])
            assert len(s) == i + 1000
        assert s._engine.storage.env.info()["map_size"] > start
        assert s.get("7999").metadata == {"i": 999}  # type: ignore[union-attr]
