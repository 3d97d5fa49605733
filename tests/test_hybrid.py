"""Hybrid search (issue #13): the API around the BM25 model test --
analysis, index management, fusion against a brute-force reference, filters
and partitions on both sides, explain, async, the CLI, vecstore check."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_hybrid_model import bm25

from vecstore import AsyncVecStore, Config, HybridQuery, TextIndex, VecStore
from vecstore._errors import InvalidArgumentError
from vecstore._metaindex.analysis import Analyzer
from vecstore.cli.check import check_store

DOCS = {
    "a": "Rust embedded database, crash safe",
    "b": "Python vector database for embeddings",
    "c": "A fast JSON parser written in Rust",
    "d": "Résumé builder: café-style templates",
    "e": "Kernel modules and drivers",
    "f": "Vector search with HNSW graphs in Python",
}


def _vec(i: int) -> np.ndarray:
    return np.random.default_rng(i).normal(size=8).astype(np.float32) + 0.01


def _store(path: Path, **cfg: object) -> VecStore:
    s = VecStore.open(str(path), Config(dim=8, text_field="content", **cfg))  # type: ignore[arg-type]
    s.upsert_many(ids=list(DOCS), vectors=[_vec(i) for i in range(len(DOCS))],
                  metadata=[{"content": t, "lang": "rust" if "Rust" in t else "other"}
                            for t in DOCS.values()])
    return s


def test_analyzer() -> None:
    an = Analyzer()
    assert an.terms("Café-style RÉSUMÉ, naïve_user ﬁle x2") == [
        "cafe", "style", "resume", "naive", "user", "file", "x2"]
    en = Analyzer("english")
    assert en.terms("The running databases of the kernel") == ["run", "databas", "kernel"]
    assert Analyzer("english", stem=False).terms("the runs") == ["runs"]
    assert Analyzer(None, stopwords=["foo"]).terms("foo bar") == ["bar"]
    with pytest.raises(InvalidArgumentError):
        Analyzer("klingon")
    assert Analyzer.from_dict(en.to_dict()) == en


def test_pure_bm25_matches_reference(tmp_path: Path) -> None:
    with _store(tmp_path / "s") as s:
        model = {rid: (t, None) for rid, t in DOCS.items()}
        for query in ("rust database", "vector python", "cafe resume", "nothing here"):
            got = {r.id: r.score for r in s.query(HybridQuery(None, query, k=10))}
            want = bm25(model, query, tok=Analyzer().terms)
            assert got.keys() == want.keys()
            assert all(math.isclose(got[i], want[i], rel_tol=1e-6) for i in want)
        r = s.query(HybridQuery(None, "rust", k=1))[0]
        assert r.text_score == r.score and r.vector_score is None


def test_fusion_scores_every_candidate_on_both_sides(tmp_path: Path) -> None:
    """Fewer rows than the fusion depth: every row is a candidate, so the
    fused scores can be recomputed here from brute-force cosine and BM25."""
    with _store(tmp_path / "s") as s:
        q = _vec(99)
        mat = np.stack([_vec(i) for i in range(len(DOCS))]).astype(np.float64)
        cos = mat @ q / np.linalg.norm(mat, axis=1) / np.linalg.norm(q)
        text = bm25({rid: (t, None) for rid, t in DOCS.items()}, "rust database",
                    tok=Analyzer().terms)
        t = np.array([text.get(rid, 0.0) for rid in DOCS])

        def mm(x: np.ndarray) -> np.ndarray:
            return (x - x.min()) / (x.max() - x.min())

        def dbsf(x: np.ndarray) -> np.ndarray:
            return (x - x.mean()) / (3 * x.std())

        def rrf(x: np.ndarray) -> np.ndarray:  # ties share the better rank
            return 1 / (61 + np.array([(x > v).sum() for v in x]))

        for fusion, norm in (("weighted", mm), ("dbsf", dbsf), ("rrf", rrf)):
            for alpha in (0.0, 0.3, 1.0):
                want = alpha * norm(cos) + (1 - alpha) * norm(t)
                got = s.query(HybridQuery(q, "rust database", k=6, alpha=alpha, fusion=fusion))
                assert [r.id for r in got] == [list(DOCS)[i] for i in
                                               np.lexsort((np.arange(6), -want))]
                for r in got:
                    i = list(DOCS).index(r.id)
                    assert math.isclose(r.score, want[i], rel_tol=1e-5, abs_tol=1e-9)
                    assert math.isclose(r.vector_score, cos[i], rel_tol=1e-5)
                    assert math.isclose(r.text_score, t[i], rel_tol=1e-5, abs_tol=1e-9)


def test_filter_partitions_snapshot_and_explain(tmp_path: Path) -> None:
    with _store(tmp_path / "s") as s:
        v0 = s.snapshot()
        got = s.query(HybridQuery(_vec(5), "database rust", filter={"lang": "rust"}))
        assert {r.id for r in got} == {"a", "c"}
        got = s.query(HybridQuery(None, "database", filter="lang = 'other'"))
        assert [r.id for r in got] == ["b"]
        s.partition("p2").upsert("x", _vec(7), {"content": "rust rust rust"})
        assert [r.id for r in s.query(HybridQuery(None, "rust"), partitions=["p2"])] == ["x"]
        both = s.query(HybridQuery(None, "rust", partitions=["default", "p2"]))
        assert {(r.id, r.partition) for r in both} == {("a", "default"), ("c", "default"),
                                                       ("x", "p2")}
        s.delete("a")
        assert {r.id for r in s.query(HybridQuery(None, "rust"))} == {"c"}
        assert {r.id for r in v0.query(HybridQuery(None, "rust"))} == {"a", "c"}
        plan = s.explain(HybridQuery(_vec(1), "rust database"))
        assert plan.strategy.startswith("hybrid(") and "bm25" in plan.strategy
        assert any("text side" in h for h in plan.hints)
        assert any("vector side" in h for h in plan.hints)


def test_create_drop_and_reanalyze_text_index(tmp_path: Path) -> None:
    with VecStore.open(str(tmp_path / "s"), Config(dim=8)) as s:
        s.upsert_many(ids=list(DOCS), vectors=[_vec(i) for i in range(6)],
                      metadata=[{"title": t} for t in DOCS.values()])
        with pytest.raises(InvalidArgumentError, match="no text index"):
            s.query(HybridQuery(None, "rust"))
        assert s.create_index("title", "text") is True
        assert {r.id for r in s.query(HybridQuery(None, "databases"))} == set()
        s.create_index("title", TextIndex(language="english"))  # another analyzer
        assert {r.id for r in s.query(HybridQuery(None, "databases"))} == {"a", "b"}
        assert s.indexes() == {"title": "text"}
        with pytest.raises(InvalidArgumentError):
            s.create_index("title", "btree")
    with VecStore.open(str(tmp_path / "s")) as s:  # recorded with the index
        assert {r.id for r in s.query(HybridQuery(None, "database"))} == {"a", "b"}
        assert s.drop_index("title") is True
    assert check_store(str(tmp_path / "s"))["ok"]


def test_sparse_vectors(tmp_path: Path) -> None:
    with VecStore.open(str(tmp_path / "s"), Config(dim=8)) as s:
        s.upsert("a", _vec(0), sparse={3: 1.0, 7: 0.5})
        s.upsert_many(ids=["b", "c"], vectors=[_vec(1), _vec(2)],
                      sparse=[{"indices": [7], "values": [2.0]}, None])
        got = s.query(HybridQuery(None, sparse={7: 1.0, 3: 1.0}))
        assert [(r.id, r.score) for r in got] == [("b", 2.0), ("a", 1.5)]
        hyb = s.query(HybridQuery(_vec(2), sparse={7: 1.0}, k=3))
        assert {r.id for r in hyb} == {"a", "b", "c"}
        assert {r.id: r.text_score for r in hyb}["c"] == 0.0
        with pytest.raises(InvalidArgumentError):
            s.upsert("d", _vec(3), sparse={-1: 1.0})
        assert s.indexes() == {}
    assert check_store(str(tmp_path / "s"))["ok"]


def test_hybrid_query_arguments() -> None:
    with pytest.raises(InvalidArgumentError):
        HybridQuery(None)
    with pytest.raises(InvalidArgumentError):
        HybridQuery([1.0], "x", alpha=1.5)
    with pytest.raises(InvalidArgumentError):
        HybridQuery([1.0], "x", fusion="max")
    with pytest.raises(InvalidArgumentError):
        HybridQuery([1.0], "x", sparse={1: 1.0})


async def test_async(tmp_path: Path) -> None:
    _store(tmp_path / "s").close()
    async with AsyncVecStore.open(str(tmp_path / "s")) as s:
        got = await s.query(HybridQuery(_vec(1), "python vector", k=2))
        assert {r.id for r in got} == {"b", "f"}


def test_cli_query_text(tmp_path: Path) -> None:
    _store(tmp_path / "s").close()
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "vecstore.cli", "query", str(tmp_path / "s"),
                          "--text", "rust", "--json"], capture_output=True, text=True,
                         cwd=root, check=True).stdout
    assert {r["id"] for r in json.loads(out)["results"]} == {"a", "c"}
    out = subprocess.run([sys.executable, "-m", "vecstore.cli", "query", str(tmp_path / "s"),
                          "--text", "python", "--vector", json.dumps(_vec(1).tolist()),
                          "-k", "2", "--fusion", "rrf", "--json"], capture_output=True,
                         text=True, cwd=root, check=True).stdout
    res = json.loads(out)["results"]
    assert len(res) == 2 and all("vector_score" in r and "text_score" in r for r in res)


@pytest.mark.parametrize("kind", ["hnswlib", "faiss"])
def test_sealed_segments_score_both_sides(tmp_path: Path, kind: str) -> None:
    """Sealed segments (vectors from the index's RAM or from LMDB): every
    result's vector score is the store's own score for that record."""
    with _store(tmp_path / "s", index_kind=kind) as s:
        s.optimize()
        q = _vec(42)
        exact = {r.id: r.score for r in s.query(q, k=6)}
        for r in s.query(HybridQuery(q, "rust python kernel", k=6)):
            assert math.isclose(r.vector_score, exact[r.id], rel_tol=1e-5, abs_tol=1e-6)


@pytest.mark.parametrize("fmt", ["pinecone", "qdrant"])
def test_sparse_vectors_survive_export_and_import(tmp_path: Path, fmt: str) -> None:
    from vecstore.migration import MigrationConfig, PineconeMigration, QdrantMigration
    from vecstore.migration._export import export_snapshot

    with VecStore.open(str(tmp_path / "a"), Config(dim=8)) as s:
        s.upsert("x", _vec(0), {"k": 1}, sparse={5: 0.5, 2: 1.5})
        s.upsert("y", _vec(1), {"k": 2})
        export_snapshot(s.snapshot(), fmt, str(tmp_path / "out"), "document")
    doc = (tmp_path / "out").read_text()
    assert ("sparse_values" if fmt == "pinecone" else '"sparse":{"indices":[2,5]') in doc
    mig = (PineconeMigration if fmt == "pinecone" else QdrantMigration)(MigrationConfig())
    with VecStore.open(str(tmp_path / "b"), Config(dim=8)) as s:
        stats = mig.import_from_file(str(tmp_path / "out"), s)
        assert stats.total_vectors == 2 and stats.errors == 0
        got = s.query(HybridQuery(None, sparse={2: 1.0, 5: 1.0}))
        assert [(r.id, r.score) for r in got] == [("x", 2.0)]
