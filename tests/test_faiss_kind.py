"""The faiss index kind (vecstore/_index/faiss_hnsw.py): recall against
exact search, bitmap-filtered search, graph-only files (vectors stored
once, in LMDB), save/load round trips, quantization (sq8, PQ) with exact
scores, and the store end to end through it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cbor2
import numpy as np
import pytest

from vecstore import Config, PQConfig, VecStore
from vecstore._errors import ConfigMismatchError, CorruptionError
from vecstore._index import KINDS
from vecstore._index.faiss_hnsw import FaissIndex, FaissKind
from vecstore._index.stats import index_stats
from vecstore._segments.segment import prepare
from vecstore._types import Distance

KIND = FaissKind()
PARAMS = {"m": 16, "ef_construction": 100}


def _data(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Clustered rows (like real embeddings, unlike uniform noise)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, dim)).astype(np.float32)
    return (centers[rng.integers(0, 20, n)] +
            0.5 * rng.standard_normal((n, dim))).astype(np.float32)


def _exact(vecs: np.ndarray, q: np.ndarray, distance: Distance) -> np.ndarray:
    if distance is Distance.EUCLIDEAN:
        return ((vecs - q) ** 2).sum(1)
    return 1.0 - vecs @ q


def _recall(index: FaissIndex, vecs: np.ndarray, queries: np.ndarray, distance: Distance,
            ef: int = 64, allow: np.ndarray | None = None) -> float:
    hits = 0
    pos = np.arange(len(vecs)) if allow is None else np.flatnonzero(allow)
    for q in queries:
        got = index.search(q, 10, ef, allow)
        assert got is not None
        labels, dist = got
        if allow is not None:
            assert allow[labels].all()
        truth = pos[np.argsort(_exact(vecs[pos], q, distance), kind="stable")[:10]]
        hits += len(set(labels[:10].tolist()) & set(truth.tolist()))
        np.testing.assert_allclose(dist, _exact(vecs[labels], q, distance), rtol=1e-4,
                                   atol=1e-4)  # the seam's convention, exact for float32
    return hits / (10 * len(queries))


def test_registered() -> None:
    assert isinstance(KINDS["faiss"], FaissKind)


@pytest.mark.parametrize("distance", list(Distance))
def test_recall_against_exact(distance: Distance) -> None:
    vecs = prepare(_data(3000, 32), distance)
    index = KIND.build(vecs, distance, PARAMS, threads=2, seed=1)
    assert index.n == 3000 and index.dim == 32 and index.exact
    assert _recall(index, vecs, vecs[:50] + 0.01, distance) >= 0.95


def test_bitmap_filtered_search() -> None:
    vecs = prepare(_data(4000, 32, 1), Distance.COSINE)
    index = KIND.build(vecs, Distance.COSINE, PARAMS, threads=1, seed=1)
    rng = np.random.default_rng(2)
    for share in (0.5, 0.1):
        allow = rng.random(4000) < share
        assert _recall(index, vecs, vecs[:30], Distance.COSINE, 128, allow) >= 0.9
    allow = np.zeros(4000, bool)
    allow[[7, 70, 700]] = True  # fewer eligible than k: at most cap, or None
    got = index.search(vecs[0], 10, 64, allow, cap=3)
    assert got is None or set(got[0].tolist()) <= {7, 70, 700}


def test_round_trip_is_bit_identical_and_graph_only(tmp_path: Path) -> None:
    vecs = prepare(_data(3000, 128, 3), Distance.COSINE)
    index = KIND.build(vecs, Distance.COSINE, PARAMS, threads=2, seed=1)
    path = str(tmp_path / "seg")
    index.write(path)
    assert os.path.getsize(path) < 0.5 * vecs.nbytes  # the vectors are not in the file
    asked: list[int] = []

    def vectors(labels: np.ndarray) -> np.ndarray:
        asked.extend(labels.tolist())
        return vecs[labels]

    back = KIND.load(path, Distance.COSINE, 128, 3000, {"fmt": 1, "params": PARAMS}, vectors)
    assert sorted(asked) == list(range(3000))
    for q in vecs[:20]:
        a, b = index.search(q, 10, 48), back.search(q, 10, 48)
        assert a is not None and b is not None
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(CorruptionError):  # another row count than the file's
        KIND.load(path, Distance.COSINE, 128, 2999, {"fmt": 1, "params": PARAMS}, vectors)


@pytest.mark.parametrize("quant", [None, "sq8"])
def test_scans_run_on_the_calling_thread_alone(quant: object) -> None:
    """A subset scan / code decode runs with one OpenMP thread (a team on a
    busy box costs milliseconds now and then) and leaves the caller's
    setting as it was."""
    import faiss

    vecs = prepare(_data(500, 16), Distance.COSINE)
    params = KIND.params(Config(quantization=quant))  # type: ignore[arg-type]
    index = KIND.build(vecs, Distance.COSINE, params, threads=1, seed=0)
    faiss.omp_set_num_threads(2)
    try:
        pos = np.arange(0, 500, 7)
        got = index.scan(vecs[3], pos)
        if quant is None:
            np.testing.assert_allclose(got, 1.0 - vecs[pos] @ vecs[3], rtol=1e-5, atol=1e-5)
        assert index.rows(pos).shape == (pos.size, 16)
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(os.cpu_count() or 1)


def test_extend_keeps_the_base() -> None:
    vecs = prepare(_data(3000, 16, 4), Distance.EUCLIDEAN)
    base = KIND.build(vecs[:2000], Distance.EUCLIDEAN, PARAMS, threads=1, seed=1)
    grown = KIND.extend(base, vecs[2000:], 1, "unused")
    assert grown is not None and grown.n == 3000 and base.n == 2000
    assert _recall(grown, vecs, vecs[2000:2030] + 0.01, Distance.EUCLIDEAN) >= 0.95


def test_concurrent_searches_agree() -> None:
    vecs = prepare(_data(3000, 32, 5), Distance.COSINE)
    index = KIND.build(vecs, Distance.COSINE, PARAMS, threads=2, seed=1)
    want = [index.search(q, 10, 64) for q in vecs[:40]]
    bad: list[int] = []

    def run() -> None:
        for _ in range(5):
            for i, q in enumerate(vecs[:40]):
                got = index.search(q, 10, 64, None if i % 2 else np.ones(3000, bool))
                w = want[i]
                if got is None or w is None or not np.array_equal(got[0], w[0]):
                    bad.append(i)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


@pytest.mark.parametrize("quant", ["sq8", PQConfig(8, 256, 10)])
def test_quantized_codes_in_ram_and_exact_scores(quant: object) -> None:
    vecs = prepare(_data(4000, 128, 6), Distance.COSINE)
    flat = KIND.build(vecs, Distance.COSINE, PARAMS, threads=2, seed=1)
    params = KIND.params(Config(quantization=quant))  # type: ignore[arg-type]
    assert params["quantization"] == ("sq8" if quant == "sq8" else {"pq": [8, 256, 10]})
    index = KIND.build(vecs, Distance.COSINE, params, threads=2, seed=1)
    assert not index.exact
    assert index.memory_bytes() < 0.6 * flat.memory_bytes()
    dec = index.rows(np.arange(10))
    assert dec.shape == (10, 128) and np.abs(dec - vecs[:10]).max() < 0.5


@pytest.mark.parametrize("quant", [None, "sq8", PQConfig(24, 256, 10)])
def test_store_end_to_end(tmp_path: Path, quant: object) -> None:
    dim = 96
    raw = _data(6000, dim, 7)
    cfg = Config(dim=dim, seal_threshold=2000, index_kind="faiss",
                 quantization=quant)  # type: ignore[arg-type]
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    queries = raw[:40] + 0.05

    def check(s: VecStore, k: int = 10) -> list[list[str]]:
        out, hits = [], 0
        for q in queries:
            res = s.query(q, k=k)
            qq = q / np.linalg.norm(q)
            sims = unit @ qq
            truth = set(np.argsort(-sims, kind="stable")[:k].tolist())
            hits += len(truth & {int(r.id) for r in res})
            for r in res:  # scores are exact, quantized or not
                assert abs(r.score - float(sims[int(r.id)])) < 1e-5
            out.append([r.id for r in res])
        # (PQ's coarse codes steer the walk: on this noisy synthetic data its
        # recall is lower; benchmarks/bench_engine.py measures real rows)
        assert hits / (k * len(queries)) >= (0.85 if isinstance(quant, PQConfig) else 0.95)
        return out

    with VecStore.open(tmp_path / "s", cfg) as s:
        for i in range(0, 6000, 1000):
            s.upsert_many([(str(j), raw[j], {"g": j % 10}) for j in range(i, i + 1000)])
        s.optimize()
        st = s._engine_checked().storage
        with st.read() as txn:
            entries = [cbor2.loads(v) for _k, v in txn.cursor(db=st.db("segs"))]
        assert {e["kind"] for e in entries} == {"faiss"}
        assert all(e["params"].get("quantization") == KIND.params(cfg)
                   .get("quantization") for e in entries)
        before = check(s)
        for q in queries[:10]:
            res = s.query(q, k=10, filter="g = 3")
            assert len(res) == 10 and all(int(r.id) % 10 == 3 for r in res)
        files = list(os.listdir(tmp_path / "s" / "segments"))
        size = sum(os.path.getsize(tmp_path / "s" / "segments" / f) for f in files)
        if quant is None:
            assert size < 0.5 * 6000 * dim * 4  # vectors stored once
    with VecStore.open(tmp_path / "s") as s:  # reopen: same answers
        assert check(s) == before
        info = index_stats(s._engine_checked().state.parts)  # (what stats() would pass)
        part = info["partitions"]["default"]
        assert part["kinds"] == ["faiss"] and part["indexed_rows"] == 6000
        assert part["quantization"] == [{None: "float32", "sq8": "sq8"}.get(
            quant, "pq24x256")]  # type: ignore[call-overload]
        assert part["resident_bytes"] > 0 and info["engines"]["faiss"].startswith("faiss-cpu")
    if quant is not None:
        with pytest.raises(ConfigMismatchError):
            Config(dim=30, quantization=PQConfig(8))
        assert Config(quantization=quant).index_kind == "faiss"  # type: ignore[arg-type]
        with pytest.raises(ConfigMismatchError, match="not quantized"):
            Config(quantization=quant, index_kind="hnswlib")  # type: ignore[arg-type]
        assert Config.from_dict(Config(quantization=quant).to_dict()) == \
            Config(quantization=quant)  # type: ignore[arg-type]


def test_planner_uses_the_kinds_measured_costs(tmp_path: Path) -> None:
    from vecstore._segments.costs import plan

    vecs = prepare(_data(3000, 16, 8), Distance.COSINE)
    index = KIND.build(vecs, Distance.COSINE, PARAMS, threads=1, seed=1)
    n = 30_000  # (the plan only reads the index's costs)
    assert plan(index, 300, n, 10, 64)[0] == "exact"  # 1%: a scan in RAM is cheapest
    assert plan(index, 15_000, n, 10, 64)[0] == "overfetch"  # 50%
    with VecStore.open(tmp_path / "s", Config(dim=16, index_kind="faiss",
                                              seal_threshold=3000)) as s:
        s.upsert_many([(str(i), vecs[i], {"b": i % 100}) for i in range(3000)])
        s.create_index("b", "btree")
        s.optimize()
        p = s.explain(vecs[0], k=10, filter="b < 50")
        seg = s._engine_checked().parts["default"].sealed[0].index
        want = plan(seg, 1500, 3000, 10, 64)[0]  # (1,500 rows: exact or over-fetch by cost)
        assert p.strategy == {"exact": "exact_scan", "overfetch": "hnsw_overfetch"}[want]
        assert any(h.startswith("measured costs") for h in p.hints)
        assert s.explain(vecs[0], k=10, filter="b < 2").strategy == "exact_scan"
        res = s.query(vecs[0], k=10, filter="b < 2")
        assert len(res) == 10 and all(int(r.id) % 100 < 2 for r in res)
