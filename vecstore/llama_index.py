"""LlamaIndex vector store over vecstore (``pip install 'vecstore[llama-index]'``).

>>> from llama_index.core import StorageContext, VectorStoreIndex   # doctest: +SKIP
>>> from vecstore.llama_index import VecStoreVectorStore            # doctest: +SKIP
>>> vs = VecStoreVectorStore("my.db", partition="tenant_a")          # doctest: +SKIP
>>> index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(
...     vector_store=vs), embed_model=embed_model)                   # doctest: +SKIP
>>> index.as_retriever(similarity_top_k=3, filters=filters).retrieve("question")  # doctest: +SKIP

A ``BasePydanticVectorStore`` (``stores_text=True``) over a store path
(opened, and closed by :meth:`VecStoreVectorStore.close`) or an open
:class:`~vecstore.VecStore` (left open), optionally scoped to one partition.

* Each node is one record (id = node id): its embedding, its metadata at the
  top level (so filters see it), the node's text under ``text_key``
  (default: the store's ``Config.text_field``, else ``"text"``) and
  LlamaIndex's bookkeeping keys (``_node_content``, ``_node_type``,
  ``ref_doc_id``/``doc_id``/``document_id``).  Records not written through
  LlamaIndex (plain upserts, :mod:`vecstore.langchain`) read back as
  ``TextNode`` with the text from ``text_key`` and the rest as metadata.
* ``MetadataFilters`` are translated to vecstore's dict filter form: ``== !=
  > >= < <= in nin`` as their ``$``-operators (``!=``/``nin`` also hold where
  the key is missing, as in LlamaIndex), ``contains`` and ``text_match`` as
  ``$contains`` (a list element, or a substring of a str), ``any``/``all``
  through ``$any`` over a list field, ``is_empty`` as missing, null, ``""``
  or ``[]``; conditions ``and``/``or``/``not`` (none of), nested filters
  too.  ``text_match_insensitive`` has no counterpart and is refused with a
  :class:`~vecstore.FilterError`.  A vecstore filter in any of its forms can
  be given too: ``query(q, filter="year > 2020")`` /
  ``as_retriever(vector_store_kwargs={"filter": ...})`` (ANDed).
* Query modes: ``DEFAULT``, ``MMR`` (``mmr_threshold``; candidates:
  ``mmr_prefetch_k`` or ``mmr_prefetch_factor`` x top k, default 4),
  ``TEXT_SEARCH`` (BM25 over the node text) and ``HYBRID`` (dense + BM25
  fused by vecstore's ``HybridQuery``, ``query.alpha`` weighing the vector
  side, default 0.5; scores are the fused ones).  The first text query of a
  writable store without a text index on ``text_key`` creates one.
  Similarities are the store's cosine similarity or dot product, or
  ``1 / (1 + distance)`` for Euclidean stores (higher is closer in all).
  Sparse and semantic-hybrid modes raise ``NotImplementedError``
  (:class:`~vecstore.UnsupportedOperationError`).
* The async twins run the store calls in worker threads (anyio).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio.to_thread
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from . import (
    Config,
    Distance,
    FilterError,
    HybridQuery,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    PartitionView,
    Record,
    Result,
    UnsupportedOperationError,
    VecStore,
)
from ._filter.core import Filter, parse_filter

__all__ = ["DEFAULT_TEXT_KEY", "VecStoreVectorStore", "to_vecstore_filter"]

DEFAULT_TEXT_KEY = "text"
T = TypeVar("T")
_MODES = {VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR,
          VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.TEXT_SEARCH}
_CMP = {FilterOperator.EQ: "$eq", FilterOperator.GT: "$gt", FilterOperator.GTE: "$gte",
        FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte"}


async def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


# -- filters -----------------------------------------------------------------------------


def _key(name: str) -> str:
    """A dict-form field key naming the top-level field ``name`` as is."""
    if "." in name or "`" in name or name.startswith("$"):
        return "`" + name.replace("`", "``") + "`"
    return name


def _values(f: MetadataFilter) -> list[Any]:
    if not isinstance(f.value, list) or not f.value:
        raise FilterError(f"filter on {f.key!r}: operator {f.operator.value!r} needs a "
                          f"non-empty list of values, got {f.value!r}")
    return list(f.value)


def _leaf(f: MetadataFilter) -> dict[str, Any]:
    k, op = _key(f.key), FilterOperator(f.operator)
    if op in _CMP:
        return {k: {_CMP[op]: f.value}}
    if op == FilterOperator.NE:
        return {"$not": {k: {"$eq": f.value}}}
    if op == FilterOperator.IN:
        return {k: {"$in": _values(f)}}
    if op == FilterOperator.NIN:
        return {"$not": {k: {"$in": _values(f)}}}
    if op in (FilterOperator.CONTAINS, FilterOperator.TEXT_MATCH):
        return {k: {"$contains": f.value}}
    if op == FilterOperator.ANY:
        return {"$any": {k: {"$in": _values(f)}}}
    if op == FilterOperator.ALL:
        return {"$and": [{"$any": {k: {"$eq": v}}} for v in _values(f)]}
    if op == FilterOperator.IS_EMPTY:
        return {"$or": [{k: {"$isnull": True}}, {k: ""},
                        {"$not": {"$any": {k: {"$exists": True}}}}]}
    raise FilterError(f"filter on {f.key!r}: LlamaIndex operator {op.value!r} has no vecstore "
                      f"counterpart (case-insensitive text match is not supported); use "
                      f"{FilterOperator.TEXT_MATCH.value!r} or a vecstore filter "
                      f"(query(..., filter=...))")


def to_vecstore_filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """LlamaIndex ``MetadataFilters`` as a vecstore filter dict (None: no condition)."""
    if filters is None or not filters.filters:
        return None
    parts = [to_vecstore_filter(f) if isinstance(f, MetadataFilters) else _leaf(f)
             for f in filters.filters]
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    cond = FilterCondition(filters.condition or FilterCondition.AND)
    if cond == FilterCondition.NOT:
        return {"$not": parts[0] if len(parts) == 1 else {"$or": parts}}
    if len(parts) == 1:
        return parts[0]
    return {"$and" if cond == FilterCondition.AND else "$or": parts}


def _all_of(*parts: Any) -> Filter | None:
    out: Filter | None = None
    for p in parts:
        f = parse_filter(p) if p is not None else None
        if f is not None:
            out = f if out is None else out & f
    return out


# -- the store ---------------------------------------------------------------------------


class VecStoreVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store backed by a vecstore store (or one partition).

    ``store`` is a path (the store is opened with ``config`` and owned: close
    it with :meth:`close`) or an open :class:`~vecstore.VecStore` (used as is).
    """

    stores_text: bool = True
    flat_metadata: bool = False
    partition: str = "default"
    text_key: str = DEFAULT_TEXT_KEY

    _store: VecStore = PrivateAttr()
    _view: Any = PrivateAttr()
    _owns: bool = PrivateAttr(default=False)
    _distance: Distance = PrivateAttr(default=Distance.COSINE)

    def __init__(self, store: VecStore | str | os.PathLike[str], *,
                 partition: str | None = None, text_key: str | None = None,
                 config: Config | None = None, **kwargs: Any) -> None:
        if isinstance(store, PartitionView):
            raise InvalidArgumentTypeError(
                "pass the store and partition=name, not a partition view")
        if isinstance(store, VecStore):
            if config is not None:
                raise InvalidArgumentTypeError(
                    "config= applies when opening a path, not to an open store")
            vstore, owns = store, False
        elif isinstance(store, (str, os.PathLike)):
            vstore, owns = VecStore.open(store, config), True
        else:
            raise InvalidArgumentTypeError(
                f"store must be a path or an open VecStore, not "
                f"{type(store).__name__}")
        try:
            eng_cfg = getattr(vstore._engine, "config", None)
            key = text_key or getattr(eng_cfg, "text_field", None) or DEFAULT_TEXT_KEY
            view = vstore if partition is None else vstore.partition(partition)
            super().__init__(partition=view.name, text_key=key,  # type: ignore[call-arg]
                             **kwargs)
            self._distance = Distance.parse(vstore.stats().distance)
        except BaseException:
            if owns:
                vstore.close()
            raise
        self._store, self._view, self._owns = vstore, view, owns

    @classmethod
    def class_name(cls) -> str:
        return "VecStoreVectorStore"

    @property
    def client(self) -> VecStore:
        """The underlying :class:`~vecstore.VecStore`."""
        return self._store

    def close(self) -> None:
        """Close the store if this object opened it (from a path); idempotent."""
        if self._owns:
            self._store.close()

    # -- writing -------------------------------------------------------------------------

    def _record(self, node: BaseNode) -> tuple[str, list[float], dict[str, Any]]:
        emb = node.get_embedding()  # raises if the node was not embedded
        if self.text_key in (node.metadata or {}):
            raise InvalidArgumentError(
                f"node {node.node_id!r} has a metadata key {self.text_key!r}, where this "
                f"vector store keeps the node text; pass text_key='...' to use another")
        meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=self.flat_metadata)
        meta[self.text_key] = node.get_content(metadata_mode=MetadataMode.NONE)
        return node.node_id, emb, meta

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert embedded nodes as one version; returns their ids."""
        if not nodes:
            return []
        ids, vectors, metas = zip(*(self._record(n) for n in nodes))
        self._view.upsert_many(ids=list(ids), vectors=list(vectors), metadata=list(metas))
        return list(ids)

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await _in_thread(self.add, nodes, **kwargs)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id`` (one version)."""
        self._view.delete_many(filter={"ref_doc_id": ref_doc_id})

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await _in_thread(self.delete, ref_doc_id)

    def delete_nodes(self, node_ids: list[str] | None = None,
                     filters: MetadataFilters | None = None, **delete_kwargs: Any) -> None:
        """Delete nodes by id and/or filters (those matching both when both
        are given) as one version; with neither, nothing."""
        flt = to_vecstore_filter(filters)
        if node_ids is not None and not node_ids:
            return
        if flt is None and node_ids is None:
            return
        if flt is None:
            self._view.delete_many(list(node_ids or []))
        else:
            self._view.delete_many(filter=_all_of(
                {"$hasid": list(node_ids)} if node_ids is not None else None, flt))

    async def adelete_nodes(self, node_ids: list[str] | None = None,
                            filters: MetadataFilters | None = None,
                            **delete_kwargs: Any) -> None:
        await _in_thread(self.delete_nodes, node_ids, filters)

    def clear(self) -> None:
        """Delete every node of this vector store's partition (one version)."""
        self._store.drop_partition(self.partition)

    async def aclear(self) -> None:
        await _in_thread(self.clear)

    # -- reading -------------------------------------------------------------------------

    def _node(self, rec: Record | Result, with_embedding: bool = False) -> BaseNode:
        meta = dict(rec.metadata)
        text = meta.get(self.text_key)
        text = text if isinstance(text, str) else None
        if "_node_content" in meta:
            node = metadata_dict_to_node(meta, text=text)
        else:  # a record not written through LlamaIndex
            if text is not None:
                del meta[self.text_key]
            node = TextNode(id_=rec.id, text=text or "", metadata=meta)
        if with_embedding and rec.vector is not None:
            node.embedding = [float(x) for x in rec.vector]
        return node

    def get_nodes(self, node_ids: list[str] | None = None,
                  filters: MetadataFilters | None = None) -> list[BaseNode]:
        """Nodes by id (in that order, missing ids skipped) and/or matching
        ``filters``; with neither, every node of the partition (by id)."""
        flt = to_vecstore_filter(filters)
        if node_ids is not None and flt is None:
            return [self._node(r, True) for r in self._view.get_many(node_ids) if r is not None]
        if node_ids is not None and not node_ids:
            return []
        recs = list(self._view.scan(filter=_all_of(
            {"$hasid": list(node_ids)} if node_ids is not None else None, flt)))
        if node_ids is not None:
            order = {nid: i for i, nid in enumerate(node_ids)}
            recs.sort(key=lambda r: order[r.id])
        return [self._node(r, True) for r in recs]

    async def aget_nodes(self, node_ids: list[str] | None = None,
                         filters: MetadataFilters | None = None) -> list[BaseNode]:
        return await _in_thread(self.get_nodes, node_ids, filters)

    def _similarity(self, score: float) -> float:
        return 1.0 / (1.0 + score) if self._distance is Distance.EUCLIDEAN else float(score)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` best nodes that pass ``query.filters``,
        ``doc_ids``, ``node_ids`` and ``filter=``: nearest (DEFAULT), diverse
        (MMR), BM25 on the node text (TEXT_SEARCH) or both fused (HYBRID,
        ``query.alpha`` weighing the vector side; vecstore's ``HybridQuery``)."""
        mode = VectorStoreQueryMode(query.mode)
        if mode not in _MODES:
            raise UnsupportedOperationError(
                f"query mode {mode.value!r} is not supported by VecStoreVectorStore; use "
                f"default, mmr, hybrid or text_search")
        flt = _all_of(to_vecstore_filter(query.filters),
                      {"ref_doc_id": {"$in": list(query.doc_ids)}} if query.doc_ids else None,
                      {"$hasid": list(query.node_ids)} if query.node_ids else None,
                      kwargs.get("filter"))
        if mode in (VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.TEXT_SEARCH):
            return self._text_query(query, mode, flt)
        if query.query_embedding is None:
            raise InvalidArgumentError(
                "VecStoreVectorStore needs query.query_embedding (an embedding "
                "model on the index or retriever)")
        k = query.similarity_top_k
        if mode == VectorStoreQueryMode.DEFAULT:
            hits = self._view.query(query.query_embedding, k=k, filter=flt, ef=kwargs.get("ef"))
        else:
            prefetch = kwargs.get("mmr_prefetch_k") or k * kwargs.get("mmr_prefetch_factor", 4)
            pool = self._view.query(query.query_embedding, k=max(prefetch, k), filter=flt,
                                    ef=kwargs.get("ef"), include_vectors=True)
            threshold = query.mmr_threshold if query.mmr_threshold is not None \
                else kwargs.get("mmr_threshold")
            _scores, picked = get_top_k_mmr_embeddings(
                query.query_embedding, [h.vector.tolist() for h in pool],
                similarity_top_k=k, embedding_ids=list(range(len(pool))),
                mmr_threshold=threshold)
            hits = [pool[i] for i in picked]
        return VectorStoreQueryResult(nodes=[self._node(h) for h in hits],
                                      similarities=[self._similarity(h.score) for h in hits],
                                      ids=[h.id for h in hits])

    def _text_query(self, query: VectorStoreQuery, mode: VectorStoreQueryMode,
                    flt: Any) -> VectorStoreQueryResult:
        if not query.query_str:
            raise InvalidArgumentError(f"query mode {mode.value!r} needs query.query_str")
        vec = query.query_embedding if mode == VectorStoreQueryMode.HYBRID else None
        if mode == VectorStoreQueryMode.HYBRID and vec is None:
            raise InvalidArgumentError(
                "hybrid mode needs query.query_embedding as well (an embedding model)")
        self._ensure_text_index()
        alpha = 0.5 if query.alpha is None else float(query.alpha)
        hits = self._view.query(HybridQuery(vec, query.query_str, k=query.similarity_top_k,
                                            alpha=alpha, filter=flt, text_field=self.text_key))
        return VectorStoreQueryResult(nodes=[self._node(h) for h in hits],
                                      similarities=[float(h.score) for h in hits],
                                      ids=[h.id for h in hits])

    def _ensure_text_index(self) -> None:
        """A BM25 index on the node text: the store's, or created (one backfill
        transaction) by the first text query of a writable store."""
        if self._store.indexes().get(self.text_key) == "text":
            return
        if self._store.read_only:
            raise InvalidArgumentError(
                f"text search needs a text index on {self.text_key!r}; create it with "
                f"store.create_index({self.text_key!r}, 'text') from the writer")
        self._store.create_index(self.text_key, "text")

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await _in_thread(self.query, query, **kwargs)
