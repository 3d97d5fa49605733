"""vecstore.langchain: LangChain's own standard suite (sync and async) and our
additions (partitions, filters in every form, scores, MMR, retriever, ownership)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from vecstore import Config, VecStore
from vecstore.langchain import VecStoreVectorStore

# Marked at collection (not only by conftest's hook) so that anyio sees the
# module's anyio_backend fixture below and runs each async test once, on asyncio.
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # LangChain's async API (and its embeddings) are asyncio's


class TestStandardSuite(VectorStoreIntegrationTests):
    """LangChain's ``VectorStoreIntegrationTests``, unchanged, on a store per test."""

    @pytest.fixture()
    def vectorstore(  # type: ignore[override]
            self, tmp_path: Path) -> Generator[VectorStore, None, None]:
        vs = VecStoreVectorStore(tmp_path / "lc.db", embedding=self.get_embeddings())
        try:
            yield vs
        finally:
            vs.close()


class TestStandardSuiteOnAPartition(VectorStoreIntegrationTests):
    """The same suite over one partition of a store another partition shares."""

    @pytest.fixture()
    def vectorstore(  # type: ignore[override]
            self, tmp_path: Path) -> Generator[VectorStore, None, None]:
        with VecStore.open(tmp_path / "shared.db") as store:
            emb = self.get_embeddings()
            other = VecStoreVectorStore(store, embedding=emb, partition="tenant_b")
            other.add_texts(["foo", "bar", "baz"], ids=["1", "2", "3"])
            yield VecStoreVectorStore(store, embedding=emb, partition="tenant_a")
            assert len(store.partition("tenant_b")) == 3  # never touched by tenant_a's tests


# -- our own ---------------------------------------------------------------------------


class Words(Embeddings):
    """Bag of words over a small vocabulary: texts sharing words are close."""

    VOCAB = ("cat", "dog", "fish", "bird", "red", "blue", "fast", "slow")

    def _one(self, text: str) -> list[float]:
        words = text.lower().split()
        v = [float(sum(w.startswith(t) for w in words)) for t in self.VOCAB]
        return v if any(v) else [0.01] * len(self.VOCAB)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


DOCS = [
    Document(page_content="red cat", metadata={"color": "red", "year": 2019}, id="d1"),
    Document(page_content="red cat fast", metadata={"color": "red", "year": 2021}, id="d2"),
    Document(page_content="blue fish slow", metadata={"color": "blue", "year": 2022}, id="d3"),
    Document(page_content="blue bird", metadata={"color": "blue", "year": 2023}, id="d4"),
]


@pytest.fixture
def vs(tmp_path: Path) -> Generator[VecStoreVectorStore, None, None]:
    with VecStoreVectorStore(tmp_path / "w.db", embedding=Words()) as v:
        v.add_documents(DOCS)
        yield v


def test_filters_in_every_form(vs: VecStoreVectorStore) -> None:
    forms = ["year >= 2021 AND color = 'red'",
             {"color": "red", "year": {"$gte": 2021}},
             {"must": [{"key": "color", "match": {"value": "red"}},
                       {"key": "year", "range": {"gte": 2021}}]},
             {"operator": "And", "operands": [
                 {"path": ["color"], "operator": "Equal", "valueText": "red"},
                 {"path": ["year"], "operator": "GreaterThanEqual", "valueInt": 2021}]}]
    for f in forms:
        assert [d.id for d in vs.similarity_search("cat", k=4, filter=f)] == ["d2"], f
    # the page content is searchable under text_key
    assert [d.id for d in vs.similarity_search("x", k=4, filter="text = 'blue bird'")] == ["d4"]


def test_documents_round_trip_and_text_key(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "s.db") as store:
        vs = VecStoreVectorStore(store, embedding=Words(), text_key="body")
        vs.add_documents([Document(page_content="red cat", metadata={"n": [1, 2]}, id="a")])
        assert vs.get_by_ids(["zz", "a"]) == [
            Document(page_content="red cat", metadata={"n": [1, 2]}, id="a")]
        assert store.get("a").metadata == {"n": [1, 2], "body": "red cat"}
        with pytest.raises(ValueError, match="body"):
            vs.add_texts(["x"], [{"body": "clash"}])
        vs.close()
        assert not store.closed  # a store passed in is its owner's to close
    with VecStore.open(tmp_path / "t.db", Config(text_field="document")) as store:
        assert VecStoreVectorStore(store, embedding=Words()).text_key == "document"


def test_scores_and_relevance_per_distance(tmp_path: Path) -> None:
    for distance, expect_raw in [("cosine", 1.0), ("dot", 2.0), ("euclidean", 0.0)]:
        vs = VecStoreVectorStore(tmp_path / f"{distance}.db", embedding=Words(),
                                 config=Config(distance=distance))
        vs.add_texts(["red cat", "blue fish"], ids=["a", "b"])
        (doc, raw), _ = vs.similarity_search_with_score("red cat", k=2)
        assert doc.id == "a" and math.isclose(raw, expect_raw, abs_tol=1e-5)
        rel = vs.similarity_search_with_relevance_scores("red cat", k=2)
        assert [d.id for d, _ in rel] == ["a", "b"]
        assert math.isclose(rel[0][1], 1.0, abs_tol=1e-5) and 0.0 <= rel[1][1] < rel[0][1]
        kept = vs.similarity_search_with_relevance_scores("red cat", k=2, score_threshold=0.9)
        assert [d.id for d, _ in kept] == ["a"]
        vs.close()


def test_mmr_prefers_diversity(vs: VecStoreVectorStore) -> None:
    plain = [d.id for d in vs.similarity_search("red cat blue", k=2)]
    assert plain == ["d1", "d2"]  # two near duplicates
    mmr = vs.max_marginal_relevance_search("red cat blue", k=2, fetch_k=4, lambda_mult=0.3)
    assert mmr[0].id == "d1" and mmr[1].id in ("d3", "d4")
    assert vs.max_marginal_relevance_search("cat", k=2, filter={"color": "blue"})[0].id in (
        "d3", "d4")


def test_delete_by_filter_and_all(vs: VecStoreVectorStore) -> None:
    vs.delete(filter={"color": "red"})
    assert sorted(d.id for d in vs.get_by_ids(["d1", "d2", "d3", "d4"])) == ["d3", "d4"]
    vs.delete(["d3", "d4"], filter="year > 2022")  # both: ids that match
    assert [d.id for d in vs.get_by_ids(["d3", "d4"])] == ["d3"]
    vs.delete()  # LangChain's delete(None): everything here
    assert vs.similarity_search("cat", k=4) == []


def test_retriever_and_unknown_kwargs(vs: VecStoreVectorStore) -> None:
    r = vs.as_retriever(search_kwargs={"k": 1, "filter": {"color": "blue"}})
    assert [d.id for d in r.invoke("fish")] == ["d3"]
    r = vs.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4})
    assert len(r.invoke("cat")) == 2
    with pytest.raises(TypeError, match="where"):
        vs.similarity_search("cat", where={"color": "red"})


def test_from_texts_and_batches(tmp_path: Path) -> None:
    vs = VecStoreVectorStore.from_texts(["red cat", "blue fish", "slow bird"], Words(),
                                        [{"i": 0}, {"i": 1}, {"i": 2}],
                                        path=tmp_path / "f.db", partition="p",
                                        batch_size=2)
    assert vs.partition == "p" and vs.store.partitions() == ["default", "p"]
    assert [v.version for v in vs.store.versions()][-1] == 2  # two batches, two versions
    assert vs.similarity_search("fish", k=1)[0].metadata == {"i": 1}
    vs.close()
    with pytest.raises(TypeError, match="path"):
        VecStoreVectorStore.from_texts(["a"], Words())


async def test_async_methods(vs: VecStoreVectorStore) -> None:
    ids = await vs.aadd_texts(["fast dog"], [{"color": "none"}])
    assert len(ids) == 1 and len(ids[0]) == 36
    assert (await vs.asimilarity_search("dog", k=1))[0].id == ids[0]
    hits = await vs.asimilarity_search_with_relevance_scores("blue", k=2,
                                                            filter={"color": "blue"})
    assert {d.id for d, _ in hits} == {"d3", "d4"}
    got = await vs.amax_marginal_relevance_search("red cat blue", k=2, fetch_k=4,
                                                  lambda_mult=0.3)
    assert got[0].id == "d1"
    assert [d.id for d in await vs.as_retriever(search_kwargs={"k": 1}).ainvoke("bird")] == \
        ["d4"]
    await vs.adelete(ids)
    assert await vs.aget_by_ids(ids) == []


async def test_afrom_texts(tmp_path: Path) -> None:
    vs = await VecStoreVectorStore.afrom_texts(["red cat"], Words(), ids=["x"],
                                               path=tmp_path / "af.db")
    assert [d.id for d in await vs.asimilarity_search("cat", k=3)] == ["x"]
    vs.close()


CORE_ALONE = """
import sys
class Block:  # the frameworks are not installed, as far as this process can tell
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("langchain_core", "langchain", "llama_index"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import vecstore, vecstore.migration, vecstore.cli
loaded = sorted(m for m in sys.modules
                if m.split(".")[0] in ("langchain_core", "langchain", "llama_index")
                or m in ("vecstore.langchain", "vecstore.llama_index"))
assert loaded == [], loaded
with vecstore.VecStore.open(sys.argv[1]) as s:
    s.upsert("a", [1.0, 0.0])
try:
    import vecstore.langchain
except ImportError as e:
    print("extra missing:", e)
"""


def test_core_imports_neither_framework(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", CORE_ALONE, str(tmp_path / "c.db")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "extra missing: blocked: langchain_core" in out.stdout
    # and each adapter loads its own framework only
    for mod, other in [("vecstore.langchain", "llama_index"),
                       ("vecstore.llama_index", "langchain_core")]:
        code = (f"import sys, {mod}; "
                f"assert not any(m.split('.')[0] == {other!r} for m in sys.modules)")
        assert subprocess.run([sys.executable, "-c", code], timeout=120,
                              check=False).returncode == 0, mod


def test_fake_embedding_dimension_checked(tmp_path: Path) -> None:
    with VecStoreVectorStore(tmp_path / "d.db", DeterministicFakeEmbedding(size=6),
                             config=Config(dim=7)) as vs, pytest.raises(Exception, match="dim"):
        vs.add_texts(["x"])
