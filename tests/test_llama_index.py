"""vecstore.llama_index end to end: a VectorStoreIndex over the store, retrievers
with MetadataFilters and MMR, deletes, partitions, async twins.  Fake
embeddings, no network, no LLM."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Settings, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import BaseEmbedding, MockEmbedding
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from vecstore import Config, FilterError, VecStore
from vecstore.llama_index import VecStoreVectorStore, to_vecstore_filter

# Marked at collection (not only by conftest's hook) so that anyio sees the
# module's anyio_backend fixture below and runs each async test once, on asyncio.
pytestmark = pytest.mark.anyio

VOCAB = ["cat", "dog", "fish", "bird", "red", "blue", "fast", "slow"]


class Words(BaseEmbedding):
    """Bag of words over a small vocabulary: texts sharing words are close."""

    @classmethod
    def class_name(cls) -> str:
        return "Words"

    def _one(self, text: str) -> list[float]:
        words = text.lower().split()
        v = [float(sum(w.startswith(t) for w in words)) for t in VOCAB]
        return v if any(v) else [0.01] * len(VOCAB)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._one(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._one(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._one(text)


def node(i: str, text: str, doc: str, **meta: Any) -> TextNode:
    n = TextNode(id_=i, text=text, metadata=meta)
    n.relationships = {}
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo
    n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
    return n


NODES = [
    node("n1", "red cat", "docA", color="red", year=2019, tags=["pet", "small"]),
    node("n2", "red cat fast", "docA", color="red", year=2021, tags=["pet"]),
    node("n3", "blue fish slow", "docB", color="blue", year=2022, tags=[]),
    node("n4", "blue bird", "docC", color="blue", year=2023, **{"a.b": 1}),
]


@pytest.fixture(autouse=True)
def _no_llm() -> None:
    Settings.llm = None  # retrieval only: nothing may reach for a model


@pytest.fixture
def index(tmp_path: Path) -> Generator[VectorStoreIndex, None, None]:
    vs = VecStoreVectorStore(tmp_path / "li.db")
    idx = VectorStoreIndex([n.model_copy() for n in NODES],
                           storage_context=StorageContext.from_defaults(vector_store=vs),
                           embed_model=Words())
    yield idx
    vs.close()


def ids(nodes: list[Any]) -> list[str]:
    return [n.node.node_id for n in nodes]


def test_index_with_mock_embedding(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "m.db") as store:
        vs = VecStoreVectorStore(store)
        idx = VectorStoreIndex([n.model_copy() for n in NODES],
                               storage_context=StorageContext.from_defaults(vector_store=vs),
                               embed_model=MockEmbedding(embed_dim=8))
        got = idx.as_retriever(similarity_top_k=10).retrieve("anything")
        assert sorted(ids(got)) == ["n1", "n2", "n3", "n4"]
        assert {n.node.get_content() for n in got} == {n.text for n in NODES}
        assert len(store) == 4 and store.get("n3").metadata["text"] == "blue fish slow"


def test_retrieve_round_trips_nodes(index: VectorStoreIndex) -> None:
    got = index.as_retriever(similarity_top_k=2).retrieve("red cat")
    assert ids(got) == ["n1", "n2"]
    assert 1.0 >= got[0].score >= got[1].score > 0.5  # cosine (the node text embeds metadata)
    n = got[0].node
    assert n.get_content() == "red cat" and n.metadata == NODES[0].metadata
    assert n.ref_doc_id == "docA"


def F(key: str, value: Any, op: str = "==") -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=FilterOperator(op))


@pytest.mark.parametrize("filters,expect", [
    ([F("color", "red")], ["n1", "n2"]),
    ([F("color", "red", "!=")], ["n3", "n4"]),
    ([F("year", 2021, ">")], ["n3", "n4"]),
    ([F("year", 2021, ">="), F("year", 2022, "<=")], ["n2", "n3"]),
    ([F("year", 2021, "<")], ["n1"]),
    ([F("color", ["blue", "green"], "in")], ["n3", "n4"]),
    ([F("year", [2019, 2023], "nin")], ["n2", "n3"]),
    ([F("tags", "small", "contains")], ["n1"]),
    ([F("tags", ["small", "big"], "any")], ["n1"]),
    ([F("tags", ["pet", "small"], "all")], ["n1"]),
    ([F("tags", None, "is_empty")], ["n3", "n4"]),
    ([F("color", "lu", "text_match")], ["n3", "n4"]),
    ([F("a.b", 1)], ["n4"]),
    ([F("tags", "pet", "contains")], ["n1", "n2"]),
])
def test_metadata_filters(index: VectorStoreIndex, filters: list[MetadataFilter],
                          expect: list[str]) -> None:
    got = index.as_retriever(similarity_top_k=10,
                             filters=MetadataFilters(filters=filters)).retrieve("cat")
    assert sorted(ids(got)) == expect


def test_filter_conditions_nesting_and_refusal(index: VectorStoreIndex) -> None:
    def run(mf: MetadataFilters, **kw: Any) -> list[str]:
        return sorted(ids(index.as_retriever(similarity_top_k=10, filters=mf,
                                             **kw).retrieve("cat")))
    red_or_late = MetadataFilters(filters=[F("color", "red"), F("year", 2023)],
                                  condition=FilterCondition.OR)
    assert run(red_or_late) == ["n1", "n2", "n4"]
    assert run(MetadataFilters(filters=[F("color", "red"), F("year", 2023)],
                               condition=FilterCondition.NOT)) == ["n3"]
    assert run(MetadataFilters(filters=[red_or_late, F("year", 2020, ">")])) == ["n2", "n4"]
    # our own filter forms beside LlamaIndex's, ANDed
    assert run(red_or_late, vector_store_kwargs={"filter": "year < 2020"}) == ["n1"]
    assert to_vecstore_filter(MetadataFilters(filters=[])) is None
    with pytest.raises(FilterError, match="text_match_insensitive"):
        run(MetadataFilters(filters=[F("color", "RED", "text_match_insensitive")]))


def test_mmr_and_unsupported_modes(index: VectorStoreIndex) -> None:
    plain = index.as_retriever(similarity_top_k=2).retrieve("red cat blue")
    assert ids(plain) == ["n1", "n2"]
    mmr = index.as_retriever(similarity_top_k=2, vector_store_query_mode="mmr",
                             vector_store_kwargs={"mmr_threshold": 0.3}).retrieve("red cat blue")
    assert ids(mmr)[0] == "n1" and ids(mmr)[1] in ("n3", "n4")
    vs = index.vector_store
    for mode in ("sparse", "semantic_hybrid"):
        with pytest.raises(NotImplementedError, match="hybrid or text_search"):
            vs.query(VectorStoreQuery(query_embedding=[1.0] * 8, mode=mode))
    with pytest.raises(NotImplementedError, match="svm"):
        vs.query(VectorStoreQuery(query_embedding=[1.0] * 8, mode=VectorStoreQueryMode.SVM))


def test_deletes_get_nodes_clear(index: VectorStoreIndex) -> None:
    vs: VecStoreVectorStore = index.vector_store  # type: ignore[assignment]
    index.delete_ref_doc("docA")
    assert sorted(n.node_id for n in vs.get_nodes()) == ["n3", "n4"]
    got = vs.get_nodes(["n4", "zz", "n3"])
    assert [n.node_id for n in got] == ["n4", "n3"] and got[0].embedding is not None
    assert [n.node_id for n in vs.get_nodes(filters=MetadataFilters(
        filters=[F("color", "blue")]))] == ["n3", "n4"]
    assert [n.node_id for n in vs.get_nodes(["n4", "n3"], MetadataFilters(
        filters=[F("year", 2023)]))] == ["n4"]
    vs.delete_nodes(["n3", "n4"], filters=MetadataFilters(filters=[F("year", 2022)]))
    assert [n.node_id for n in vs.get_nodes()] == ["n4"]
    vs.delete_nodes(["n4"])
    assert vs.get_nodes() == []
    vs.add([TextNode(id_="x", text="cat", embedding=[1.0] * 8)])
    vs.clear()
    assert vs.get_nodes() == [] and vs.client.version > 0


def test_partitions_and_foreign_records(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "p.db", Config(text_field="body")) as store:
        store.upsert("plain", [1.0] * 8, {"body": "written without LlamaIndex", "k": 1})
        a = VecStoreVectorStore(store, partition="tenant_a")
        assert a.text_key == "body" and a.partition == "tenant_a"
        idx = VectorStoreIndex([n.model_copy() for n in NODES[:2]],
                               storage_context=StorageContext.from_defaults(vector_store=a),
                               embed_model=Words())
        assert sorted(ids(idx.as_retriever(similarity_top_k=5).retrieve("cat"))) == \
            ["n1", "n2"]
        assert len(store) == 1 and len(store.partition("tenant_a")) == 2
        a.clear()
        assert len(store) == 1 and len(store.partition("tenant_a")) == 0
        plain = VecStoreVectorStore(store).get_nodes(["plain"])[0]
        assert plain.get_content() == "written without LlamaIndex"
        assert plain.metadata == {"k": 1}
        with pytest.raises(ValueError, match="body"):
            a.add([TextNode(id_="c", text="t", metadata={"body": 1}, embedding=[1.0] * 8)])
        a.close()
        assert not store.closed


def test_euclidean_similarities_rank_closest_first(tmp_path: Path) -> None:
    vs = VecStoreVectorStore(tmp_path / "e.db", config=Config(distance="euclidean"))
    vs.add([TextNode(id_="near", text="a", embedding=[1.0, 0.0]),
            TextNode(id_="far", text="b", embedding=[5.0, 0.0])])
    res = vs.query(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=2))
    assert res.ids == ["near", "far"]
    assert res.similarities[0] == pytest.approx(1.0) and res.similarities[1] == \
        pytest.approx(0.2)
    vs.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # LlamaIndex's async API is asyncio's


async def test_async_twins(index: VectorStoreIndex) -> None:
    vs: VecStoreVectorStore = index.vector_store  # type: ignore[assignment]
    got = await index.as_retriever(similarity_top_k=1).aretrieve("blue bird")
    assert ids(got) == ["n4"]
    await vs.async_add([TextNode(id_="n5", text="slow dog", embedding=Words()._one("slow dog"),
                                 metadata={"color": "green"})])
    res = await vs.aquery(VectorStoreQuery(query_embedding=Words()._one("dog"),
                                           similarity_top_k=1))
    assert res.ids == ["n5"]
    assert [n.node_id for n in await vs.aget_nodes(["n5"])] == ["n5"]
    await vs.adelete("docB")
    await vs.adelete_nodes(filters=MetadataFilters(filters=[F("color", "green")]))
    assert sorted(n.node_id for n in await vs.aget_nodes()) == ["n1", "n2", "n4"]
    await vs.aclear()
    assert await vs.aget_nodes() == []


def test_text_search_and_hybrid_modes(index: VectorStoreIndex) -> None:
    """TEXT_SEARCH is BM25 over the node text; HYBRID fuses it with the vector
    side through vecstore's HybridQuery (the same results as calling it)."""
    from vecstore import HybridQuery

    vs: VecStoreVectorStore = index.vector_store  # type: ignore[assignment]
    text = index.as_retriever(similarity_top_k=4, vector_store_query_mode="text_search")
    got = text.retrieve("fish")
    assert ids(got) and set(ids(got)) <= {n.node_id for n in NODES if "fish" in n.text}
    assert vs.client.indexes().get(vs.text_key) == "text"  # created by the first text query
    emb = Words().get_query_embedding("red cat")
    res = vs.query(VectorStoreQuery(query_embedding=emb, query_str="slow", similarity_top_k=3,
                                    mode="hybrid", alpha=0.3))
    want = vs.client.query(HybridQuery(emb, "slow", k=3, alpha=0.3, text_field=vs.text_key))
    assert res.ids == [r.id for r in want]
    assert res.similarities == [r.score for r in want]
    with pytest.raises(ValueError, match="query_str"):
        vs.query(VectorStoreQuery(query_embedding=emb, mode="hybrid"))
