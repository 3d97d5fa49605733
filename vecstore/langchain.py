"""LangChain vector store over vecstore (``pip install 'vecstore[langchain]'``).

>>> from vecstore.langchain import VecStoreVectorStore          # doctest: +SKIP
>>> vs = VecStoreVectorStore("my.db", embedding=embeddings)      # doctest: +SKIP
>>> vs.add_texts(["a cat", "a dog"], [{"kind": "pet"}, {"kind": "pet"}])  # doctest: +SKIP
>>> vs.similarity_search("kitten", k=1, filter={"kind": "pet"})  # doctest: +SKIP
>>> retriever = vs.as_retriever(search_type="mmr", search_kwargs={"k": 4})  # doctest: +SKIP

A :class:`langchain_core.vectorstores.VectorStore` over a store path (opened,
and closed by :meth:`VecStoreVectorStore.close`) or an open
:class:`~vecstore.VecStore` (left open), optionally scoped to one partition.

* Each document is one record: its id (a uuid4 string when none is given),
  its embedding, and its metadata with the page content added under
  ``text_key`` (default: the store's ``Config.text_field``, else ``"text"``).
  A document whose own metadata already has that key is rejected: pass
  another ``text_key``.
* ``filter=`` takes any vecstore filter: a string (``"year >= 2020"``), a
  Pinecone/Chroma-style dict (``{"kind": "pet", "year": {"$gte": 2020}}``),
  or a Qdrant/Weaviate dict.  Filters see the document metadata (and the
  text, under ``text_key``).
* ``similarity_search_with_score`` returns the store's own score: cosine
  similarity or dot product (higher is closer) or Euclidean distance (lower
  is closer).  ``similarity_search_with_relevance_scores`` maps it to
  ``[0, 1]`` (higher is closer): cosine similarity clipped at 0 (the usual
  ``1 - cosine distance``), ``1 / (1 + distance)`` for Euclidean, and for dot
  the product clipped to ``[0, 1]`` (meaningful for normalised embeddings);
  pass ``relevance_score_fn=`` to choose another.
* Writes of one ``add_texts``/``add_documents`` call are one atomic version
  (``batch_size=n``: one version per ``n`` documents).
* The async methods run the store calls in worker threads (anyio) and use
  the embeddings' own async methods, so the event loop never blocks.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self, TypeVar

import anyio.to_thread
import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from . import (
    Config,
    Distance,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    PartitionView,
    Result,
    VecStore,
)
from ._filter.core import parse_filter

__all__ = ["DEFAULT_TEXT_KEY", "VecStoreVectorStore"]

DEFAULT_TEXT_KEY = "text"
T = TypeVar("T")


async def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def _no_extra(method: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        names = ", ".join(sorted(kwargs))
        raise InvalidArgumentTypeError(
            f"VecStoreVectorStore.{method}() got unexpected keyword argument(s) "
            f"{names}; metadata conditions go in filter=")


def _both_ids_and(ids: list[Any], flt: Any) -> Any:
    """Records whose id is in ``ids`` and that match ``flt`` (any filter form)."""
    by_id = parse_filter({"$hasid": ids})
    other = parse_filter(flt)
    return by_id if other is None else by_id & other  # type: ignore[operator]


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def _inverse_distance(d: float) -> float:
    return 1.0 / (1.0 + float(d))


class VecStoreVectorStore(VectorStore):
    """A LangChain ``VectorStore`` backed by a vecstore store (or one partition).

    ``store`` is a path (the store is opened with ``config`` and owned: close
    it with :meth:`close` or ``with``) or an open :class:`~vecstore.VecStore`
    (used as is; its owner closes it).
    """

    def __init__(self, store: VecStore | str | os.PathLike[str], embedding: Embeddings, *,
                 partition: str | None = None, text_key: str | None = None,
                 config: Config | None = None,
                 relevance_score_fn: Callable[[float], float] | None = None) -> None:
        if isinstance(store, PartitionView):
            raise InvalidArgumentTypeError(
                "pass the store and partition=name, not a partition view")
        if isinstance(store, VecStore):
            if config is not None:
                raise InvalidArgumentTypeError(
                    "config= applies when opening a path, not to an open store")
            self._store, self._owns = store, False
        elif isinstance(store, (str, os.PathLike)):
            self._store, self._owns = VecStore.open(store, config), True
        else:
            raise InvalidArgumentTypeError(
                f"store must be a path or an open VecStore, not "
                f"{type(store).__name__} (the a* methods give async access)")
        self._embedding = embedding
        self._view: VecStore | PartitionView = (
            self._store if partition is None else self._store.partition(partition))
        stats = self._store.stats()
        self._distance = Distance.parse(stats.distance)
        self.text_key = text_key or self._store_text_field() or DEFAULT_TEXT_KEY
        self._relevance_score_fn = relevance_score_fn

    def _store_text_field(self) -> str | None:
        eng = self._store._engine
        return getattr(getattr(eng, "config", None), "text_field", None)

    # -- properties and lifecycle ------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def store(self) -> VecStore:
        """The underlying :class:`~vecstore.VecStore`."""
        return self._store

    @property
    def partition(self) -> str:
        """The partition this vector store reads and writes."""
        return self._view.name

    def close(self) -> None:
        """Close the store if this object opened it (from a path); idempotent."""
        if self._owns:
            self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<VecStoreVectorStore {self._store.path!r} partition={self.partition!r}>"

    # -- writing -------------------------------------------------------------------------

    def _prepare(self, texts: Iterable[str], metadatas: Sequence[dict[str, Any]] | None,
                 ids: Sequence[str | None] | None
                 ) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        texts = list(texts)
        n = len(texts)
        if metadatas is not None and len(metadatas) != n:
            raise InvalidArgumentError(f"got {len(metadatas)} metadatas for {n} texts")
        if ids is not None and len(ids) != n:
            raise InvalidArgumentError(f"got {len(ids)} ids for {n} texts")
        out_ids = [str(i) if i is not None and i != "" else str(uuid.uuid4())
                   for i in (ids if ids is not None else [None] * n)]
        metas = []
        for i, text in enumerate(texts):
            meta = dict(metadatas[i]) if metadatas is not None and metadatas[i] else {}
            if self.text_key in meta:
                raise InvalidArgumentError(
                    f"document {out_ids[i]!r} has a metadata key {self.text_key!r}, where this "
                    f"vector store keeps the page content; pass text_key='...' to use another")
            if not isinstance(text, str):
                raise InvalidArgumentTypeError(f"texts must be str, got {type(text).__name__}")
            meta[self.text_key] = text
            metas.append(meta)
        return texts, out_ids, metas

    def _write(self, ids: list[str], vectors: Any, metas: list[dict[str, Any]],
               batch_size: int | None) -> None:
        matrix = np.asarray(vectors, dtype=np.float32)
        step = batch_size if batch_size and batch_size > 0 else max(len(ids), 1)
        for s in range(0, len(ids), step):
            self._view.upsert_many(ids=ids[s:s + step], vectors=matrix[s:s + step],
                                   metadata=metas[s:s + step])

    def add_texts(self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None,
                  *, ids: list[str] | None = None, batch_size: int | None = None,
                  **kwargs: Any) -> list[str]:
        """Embed and upsert ``texts`` (one version; ``batch_size=n``: one per n);
        returns their ids (uuid4 strings where none was given)."""
        _no_extra("add_texts", kwargs)
        texts, ids_, metas = self._prepare(texts, metadatas, ids)
        if not texts:
            return []
        self._write(ids_, self._embedding.embed_documents(texts), metas, batch_size)
        return ids_

    async def aadd_texts(self, texts: Iterable[str],
                         metadatas: list[dict[str, Any]] | None = None, *,
                         ids: list[str] | None = None, batch_size: int | None = None,
                         **kwargs: Any) -> list[str]:
        _no_extra("aadd_texts", kwargs)
        texts, ids_, metas = self._prepare(texts, metadatas, ids)
        if not texts:
            return []
        vectors = await self._embedding.aembed_documents(texts)
        await _in_thread(self._write, ids_, vectors, metas, batch_size)
        return ids_

    def delete(self, ids: list[str] | None = None, *, filter: Any = None,
               **kwargs: Any) -> bool:
        """Delete by ``ids`` and/or ``filter`` (records matching both when both
        are given) as one version.  With neither, delete every document of
        this vector store's partition (LangChain's ``delete(None)``)."""
        _no_extra("delete", kwargs)
        if ids is None and filter is None:
            self._store.drop_partition(self.partition)
        elif ids is None:
            self._view.delete_many(filter=filter)
        elif not ids:
            pass  # nothing named: nothing to delete
        elif filter is None:
            self._view.delete_many(list(ids))
        else:
            self._view.delete_many(filter=_both_ids_and(list(ids), filter))
        return True

    async def adelete(self, ids: list[str] | None = None, *, filter: Any = None,
                      **kwargs: Any) -> bool:
        _no_extra("adelete", kwargs)
        return await _in_thread(self.delete, ids, filter=filter)

    # -- reading -------------------------------------------------------------------------

    def _doc(self, r: Result | Any) -> Document:
        meta = dict(r.metadata)
        text = meta.pop(self.text_key, "")
        if not isinstance(text, str):
            meta[self.text_key], text = text, ""
        return Document(id=r.id, page_content=text, metadata=meta)

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in that order; missing ids are skipped."""
        return [self._doc(r) for r in self._view.get_many(list(ids)) if r is not None]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await _in_thread(self.get_by_ids, ids)

    def _query(self, embedding: Sequence[float], k: int, filter: Any, ef: int | None,
               vectors: bool = False) -> list[Result]:
        return self._view.query(list(embedding) if not isinstance(embedding, np.ndarray)
                                else embedding, k=k, filter=filter, ef=ef,
                                include_vectors=vectors)

    def similarity_search_with_score_by_vector(
            self, embedding: list[float], k: int = 4, filter: Any = None, *,
            ef: int | None = None, **kwargs: Any) -> list[tuple[Document, float]]:
        """The ``k`` nearest documents to ``embedding`` with the store's scores."""
        _no_extra("similarity_search_with_score_by_vector", kwargs)
        return [(self._doc(r), float(r.score)) for r in self._query(embedding, k, filter, ef)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Any = None, *,
                                     ef: int | None = None, **kwargs: Any
                                     ) -> list[tuple[Document, float]]:
        """The ``k`` nearest documents to ``query`` with the store's scores
        (cosine/dot: similarity, higher is closer; Euclidean: distance)."""
        _no_extra("similarity_search_with_score", kwargs)
        return self.similarity_search_with_score_by_vector(
            self._embedding.embed_query(query), k, filter, ef=ef)

    def similarity_search(self, query: str, k: int = 4, filter: Any = None, *,
                          ef: int | None = None, **kwargs: Any) -> list[Document]:
        _no_extra("similarity_search", kwargs)
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, ef=ef)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    filter: Any = None, *, ef: int | None = None,
                                    **kwargs: Any) -> list[Document]:
        _no_extra("similarity_search_by_vector", kwargs)
        return [d for d, _ in
                self.similarity_search_with_score_by_vector(embedding, k, filter, ef=ef)]

    async def asimilarity_search_with_score(self, query: str, k: int = 4,
                                            filter: Any = None, *, ef: int | None = None,
                                            **kwargs: Any) -> list[tuple[Document, float]]:
        _no_extra("asimilarity_search_with_score", kwargs)
        vec = await self._embedding.aembed_query(query)
        return await _in_thread(self.similarity_search_with_score_by_vector, vec, k, filter,
                                ef=ef)

    async def asimilarity_search(self, query: str, k: int = 4, filter: Any = None, *,
                                 ef: int | None = None, **kwargs: Any) -> list[Document]:
        _no_extra("asimilarity_search", kwargs)
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, filter, ef=ef)]

    async def asimilarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                           filter: Any = None, *, ef: int | None = None,
                                           **kwargs: Any) -> list[Document]:
        _no_extra("asimilarity_search_by_vector", kwargs)
        return await _in_thread(self.similarity_search_by_vector, embedding, k, filter, ef=ef)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self._relevance_score_fn is not None:
            return self._relevance_score_fn
        if self._distance is Distance.EUCLIDEAN:
            return _inverse_distance
        return _clip01  # cosine similarity (1 - cosine distance), or dot on unit vectors

    # -- maximal marginal relevance ----------------------------------------------------

    def max_marginal_relevance_search_by_vector(
            self, embedding: list[float], k: int = 4, fetch_k: int = 20,
            lambda_mult: float = 0.5, filter: Any = None, *, ef: int | None = None,
            **kwargs: Any) -> list[Document]:
        """``k`` documents chosen by maximal marginal relevance among the
        ``fetch_k`` nearest (``lambda_mult``: 1 = similarity only, 0 = diversity only)."""
        _no_extra("max_marginal_relevance_search_by_vector", kwargs)
        hits = self._query(embedding, max(fetch_k, k), filter, ef, vectors=True)
        if not hits:
            return []
        picked = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float32), [h.vector for h in hits],  # type: ignore[misc]
            lambda_mult=lambda_mult, k=min(k, len(hits)))
        return [self._doc(hits[i]) for i in picked]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, filter: Any = None, *,
                                      ef: int | None = None, **kwargs: Any) -> list[Document]:
        _no_extra("max_marginal_relevance_search", kwargs)
        return self.max_marginal_relevance_search_by_vector(
            self._embedding.embed_query(query), k, fetch_k, lambda_mult, filter, ef=ef)

    async def amax_marginal_relevance_search_by_vector(
            self, embedding: list[float], k: int = 4, fetch_k: int = 20,
            lambda_mult: float = 0.5, filter: Any = None, *, ef: int | None = None,
            **kwargs: Any) -> list[Document]:
        _no_extra("amax_marginal_relevance_search_by_vector", kwargs)
        return await _in_thread(self.max_marginal_relevance_search_by_vector, embedding, k,
                                fetch_k, lambda_mult, filter, ef=ef)

    async def amax_marginal_relevance_search(
            self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
            filter: Any = None, *, ef: int | None = None, **kwargs: Any) -> list[Document]:
        _no_extra("amax_marginal_relevance_search", kwargs)
        vec = await self._embedding.aembed_query(query)
        return await self.amax_marginal_relevance_search_by_vector(
            vec, k, fetch_k, lambda_mult, filter, ef=ef)

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def _for_from(cls, embedding: Embeddings, kwargs: dict[str, Any]) -> VecStoreVectorStore:
        store, path = kwargs.pop("store", None), kwargs.pop("path", None)
        if (store is None) == (path is None):
            raise InvalidArgumentTypeError(
                "from_texts/from_documents need store= (an open VecStore or a "
                "path) or path=, one of them")
        opts = {k: kwargs.pop(k) for k in ("partition", "text_key", "config",
                                           "relevance_score_fn") if k in kwargs}
        return cls(store if store is not None else path, embedding, **opts)

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings,
                   metadatas: list[dict[str, Any]] | None = None, *,
                   ids: list[str] | None = None, **kwargs: Any) -> VecStoreVectorStore:
        """A vector store at ``store=``/``path=`` (plus ``partition``,
        ``text_key``, ``config``, ``relevance_score_fn``) holding ``texts``."""
        vs = cls._for_from(embedding, kwargs)
        vs.add_texts(texts, metadatas, ids=ids, **kwargs)
        return vs

    @classmethod
    async def afrom_texts(cls, texts: list[str], embedding: Embeddings,
                          metadatas: list[dict[str, Any]] | None = None, *,
                          ids: list[str] | None = None, **kwargs: Any) -> VecStoreVectorStore:
        vs = await _in_thread(cls._for_from, embedding, kwargs)
        await vs.aadd_texts(texts, metadatas, ids=ids, **kwargs)
        return vs
