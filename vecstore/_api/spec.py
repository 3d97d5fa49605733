"""The store API, written once.

Each public method of the stores and partition views is written here, once,
as a function that checks its arguments and returns an :class:`Op` saying
what to run: a read (:class:`Read`), a write request for the writer
(:class:`Write`), a writer maintenance call (:class:`Call`), a value at hand
(:class:`Now`) or a record iterator (:class:`Scan`).  The facades are thin
executors of those ops: :mod:`.sync` runs them in the calling thread (and
blocks on the writer), :mod:`.aio` awaits them (reads in worker threads).
:func:`sync_method` / :func:`async_method` turn a spec function into a
method with the same signature and docstring, so the two APIs cannot drift
(``tests/test_api_parity.py`` checks every name).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, cast

from .._analysis.duplicates import find_duplicates
from .._analysis.recommend import recommend
from .._engine import requests as rq
from .._engine.engine import Engine
from .._engine.ops import DropIndex, WriteRequest
from .._engine.requests import make_create_index
from .._engine.settings import UNCHANGED, reindex_changes
from .._engine.versions import (
    list_versions,
    make_retention,
    make_rollback,
    make_tag,
)
from .._errors import StoreClosedError
from .._filter.core import Filter
from .._metrics.recorder import Metrics
from .._query.changes import open_changes
from .._query.plan import QueryPlan
from .._query.snapshot import DEFAULT, QueryLike, Snapshot, make_query
from .._query.views import open_snapshot, record_history
from .._types import Change, Record, RecordVersion, Result, Stats, VersionInfo
from .._validate import check_partition
from .handle import Handle
from .maint import backup_store, make_stats, partition_names

T = TypeVar("T")
P = ParamSpec("P")
FilterLike = str | Mapping[str, Any] | Filter | None


# -- ops -----------------------------------------------------------------------------


class Op(Generic[T]):
    """What a spec method asks its facade to run."""


@dataclass
class Now(Op[T]):
    value: T


@dataclass
class Read(Op[T]):
    fn: Callable[..., T]
    args: tuple[Any, ...] = ()


@dataclass
class Write(Op[T]):
    req: WriteRequest


@dataclass
class Call(Op[T]):
    """A coroutine method of the writer (``optimize``, ``compact``, ``reindex``)."""

    method: str
    args: tuple[Any, ...] = ()


@dataclass
class Scan(Op[T]):
    records: Callable[[], T]  # an iterator (of records, changes, ...)
    batch_size: int = field(default=1000)


class Facade:
    """What every store facade (sync or async, store or partition view) has
    besides the spec's methods: its handle, its partition, the plumbing
    migrations and tools use, and the read-only properties."""

    _h: Handle
    _pname: str
    _root: bool

    def _engine_checked(self) -> Engine:
        return self._h.engine()

    @property
    def _engine(self) -> Engine | None:
        """The engine, or None once closed (for tests and tools that look inside)."""
        return self._h._engine

    def _writable(self) -> Engine:
        return self._h.writable()

    @property
    def name(self) -> str:
        return self._pname

    @property
    def version(self) -> int:
        """The latest committed version."""
        return self._h.engine().state.version


class StoreFacade(Facade):
    """What a whole store (sync or async) adds: its path and state."""

    path: str

    @property
    def commits(self) -> int:
        """Write transactions committed since open (group commit makes this
        smaller than the number of write calls)."""
        return self._h.engine().commits

    @property
    def closed(self) -> bool:
        return self._h.closed

    def __repr__(self) -> str:
        try:
            state = f"version {self._h.engine().state.version}"
        except StoreClosedError:
            state = "closed"
        return f"<{type(self).__name__} {self.path!r} {state}>"


class Scoped(Protocol):
    """What a spec method needs of its facade object."""

    _h: Handle
    _pname: str
    _root: bool


# -- the partition-scoped API (stores act as their default partition) ----------------


def _latest(self: Scoped) -> Snapshot:
    eng = self._h.engine()
    return Snapshot(eng, eng.state, None, self._pname)


class PartitionSpec:
    """Reads, writes and versions of one partition."""

    def snapshot(self: Scoped, version: int | None = None, *,
                 tag: str | None = None) -> Op[Snapshot]:
        """An immutable view at ``version`` / ``tag`` (default: the latest)."""
        return Read(open_snapshot, (self._h.engine(), version, tag, self._pname))

    def history(self: Scoped, id: Any) -> Op[list[RecordVersion]]:
        """Every retained version that changed the record, oldest first."""
        return Read(record_history, (self._h.engine(), self._pname, id))

    def rollback(self: Scoped, version: int, message: str | None = None) -> Op[int]:
        """A new version whose state equals ``version``'s: of every partition
        (on a store) or of this partition alone (on a partition view)."""
        self._h.writable()
        part = None if self._root else check_partition(self._pname)
        return Write(make_rollback(part, version, message))

    def upsert(self: Scoped, id: Any, vector: Any, metadata: Mapping[str, Any] | None = None,
               *, message: str | None = None,
               sparse: Mapping[int, float] | None = None) -> Op[int]:
        """Insert or replace one record; returns the new version.  ``sparse``:
        an optional sparse vector ``{index: weight}`` (hybrid search)."""
        eng = self._h.writable()
        return Write(rq.upsert_one(eng, self._pname, id, vector, metadata, message, sparse))

    def upsert_many(self: Scoped, items: Iterable[Any] | None = None, *,
                    ids: Sequence[Any] | None = None, vectors: Any = None,
                    metadata: Sequence[Any] | None = None,
                    message: str | None = None,
                    sparse: Sequence[Mapping[int, float] | None] | None = None) -> Op[int]:
        """Insert or replace many records as one atomic version: ``items`` of
        ``(id, vector[, metadata])``, or the columns ``ids``/``vectors``/``metadata``;
        ``sparse``: one sparse vector (or None) per record, in the same order."""
        eng = self._h.writable()
        return Write(rq.upsert_many(eng, self._pname, items, ids, vectors, metadata, message,
                                    sparse))

    def delete(self: Scoped, id: Any, *, message: str | None = None) -> Op[bool]:
        """Delete one record; returns whether it existed."""
        self._h.writable()
        return Write(rq.delete(self._pname, [id], message, single=True))

    def delete_many(self: Scoped, ids: Iterable[Any] | None = None, *,
                    filter: FilterLike = None, message: str | None = None) -> Op[int]:
        """Delete records by id and/or filter as one atomic version; returns
        how many existed."""
        self._h.writable()
        return Write(rq.delete_many(self._pname, ids, filter, message))

    def get(self: Scoped, id: Any) -> Op[Record | None]:
        """The record with ``id`` at the latest version, or None."""
        return Read(_latest(self).get, (id,))

    def get_many(self: Scoped, ids: Iterable[Any]) -> Op[list[Record | None]]:
        """Records for ``ids`` in the order asked (``None`` where absent), read
        from one snapshot in one transaction (Pinecone ``fetch``, Qdrant ``retrieve``)."""
        return Read(_latest(self).get_many, (ids,))

    def query(self: Scoped, query: QueryLike, k: int | None = None, filter: FilterLike = None,
              ef: int | None = None, include_vectors: bool | None = None,
              partitions: Sequence[str] | None = None) -> Op[list[Result]]:
        """The ``k`` nearest records (a :class:`Query`, or a vector and keywords)."""
        return Read(_latest(self).query, (query, k, filter, ef, include_vectors, partitions))

    def count(self: Scoped, filter: FilterLike = None) -> Op[int]:
        """How many live records (matching ``filter``)."""
        return Read(_latest(self).count, (filter,))

    def scan(self: Scoped, filter: FilterLike = None, batch_size: int = 1000
             ) -> Op[Iterator[Record]]:
        """Every live record (matching ``filter``), ordered by id, read in
        batches of ``batch_size`` from one snapshot."""
        snap = _latest(self)
        return Scan(lambda: snap.scan(filter, batch_size), batch_size)

    def changes(self: Scoped, since: int, until: int | None = None,
                partitions: Sequence[str] | None = None) -> Op[Iterator[Change]]:
        """Every change after version ``since`` up to ``until`` (default: the
        latest), in version order, as :class:`Change` (``op`` "upsert" or
        "delete"); of every partition on a store, of this one on a partition
        view, or of ``partitions``.  Read in batches from one snapshot;
        ``VersionNotRetainedError`` if ``since`` is older than retention."""
        eng = self._h.engine()
        parts = partitions if partitions is not None or self._root else [self._pname]
        return Scan(lambda: open_changes(eng, since, until, parts), 1000)

    def explain(self: Scoped, query: QueryLike, k: int | None = None,
                filter: FilterLike = None,
                partitions: Sequence[str] | None = None) -> Op[QueryPlan]:
        """How ``query`` would run (strategy, estimated matches and cost, hints)."""
        return Read(_latest(self).explain, (query, k, filter, partitions))

    def recommend(self: Scoped, positive: Sequence[Any] = (), negative: Sequence[Any] = (),
                  k: int = 10, filter: FilterLike = None, strategy: str = "average", *,
                  ef: int | None = None, include_vectors: bool = False) -> Op[list[Result]]:
        """The ``k`` records most like ``positive`` and unlike ``negative`` (ids
        or vectors), excluding the example ids (Qdrant's recommend API):
        ``strategy`` "average" (average vector), "best_score" or "sum_scores"."""
        return Read(functools.partial(recommend, ef=ef, include_vectors=include_vectors),
                    (_latest(self), positive, negative, k, filter, strategy))

    def find_duplicates(self: Scoped, threshold: float = 0.98, filter: FilterLike = None, *,
                        method: str = "auto") -> Op[list[list[str]]]:
        """Groups of near-identical live records (cosine >= ``threshold``),
        found by partitioning the vectors, not by an all-pairs scan."""
        return Read(functools.partial(find_duplicates, method=method),
                    (_latest(self), threshold, filter))


# -- the store-level API ----------------------------------------------------------------


def _versions(self: Scoped) -> list[VersionInfo]:
    st = self._h.engine().storage
    with st.read() as txn:
        return list_versions(st, txn)


def _refresh(h: Handle) -> None:
    if h.loop is None:
        h.engine().refresh()


class StoreSpec(PartitionSpec):
    """What a whole store adds to its default partition's API."""

    def partitions(self: Scoped) -> Op[list[str]]:
        """Partition names, sorted (``"default"`` always among them)."""
        return Now(partition_names(self._h.engine().state))

    def drop_partition(self: Scoped, name: str, *, message: str | None = None) -> Op[bool]:
        """Delete every record of a partition (one version) and unlist it."""
        self._h.writable()
        return Write(rq.drop_partition(name, message))

    def stats(self: Scoped) -> Op[Stats]:
        """Totals, per-partition counts, version, disk use, indexing state."""
        return Read(make_stats, (self._h.engine(),))

    def metrics(self: Scoped) -> Op[Metrics]:
        """Counters and latency histograms since the store was opened."""
        return Now(self._h.engine().metrics.snapshot())

    def create_index(self: Scoped, field: str, kind: Any = "btree") -> Op[bool]:
        """Index a metadata field ("hash" | "btree" | "inverted", or "text" /
        a ``TextIndex`` for BM25); backfills existing records in the same
        transaction.  False if it existed."""
        self._h.writable()
        return Write(make_create_index(field, kind))

    def drop_index(self: Scoped, field: str) -> Op[bool]:
        """Drop a metadata index; False if there was none."""
        self._h.writable()
        return Write(DropIndex(field))

    def indexes(self: Scoped) -> Op[dict[str, str]]:
        """Indexed fields and their kinds."""
        return Now({ix.field: ix.kind for ix in self._h.engine().state.indexes.values()
                    if ix.kind != "sparse"})  # (records' sparse vectors: not a field)

    def versions(self: Scoped) -> Op[list[VersionInfo]]:
        """Retained versions, oldest first."""
        self._h.engine()
        return Read(_versions, (self,))

    def tag(self: Scoped, name: str) -> Op[int]:
        """Name the current version; ``snapshot(tag=name)`` reads it."""
        self._h.writable()
        return Write(make_tag(name))

    def set_retention(self: Scoped, versions: int | None = None,
                      seconds: float | None = None) -> Op[None]:
        """Keep the last ``versions`` versions and/or those younger than
        ``seconds`` (a version must satisfy every limit given); older ones
        become unreadable at once and are reclaimed by :meth:`compact`."""
        self._h.writable()
        return Write(make_retention(versions, seconds))

    def compact(self: Scoped) -> Op[dict[str, int]]:
        """Reclaim rows no retained version or open snapshot can see."""
        self._h.writable()
        return Call("compact")

    def optimize(self: Scoped) -> Op[None]:
        """Seal and index everything pending; returns when queries use only
        ANN segments (one per partition)."""
        self._h.writable()
        return Call("optimize")

    def reindex(self: Scoped, *, quantization: Any = UNCHANGED, hnsw_m: int | None = None,
                ef_construction: int | None = None,
                index_kind: str | None = None) -> Op[None]:
        """Rebuild every sealed segment with other index settings
        (``quantization``: None for float32, ``"sq8"`` or a ``PQConfig``;
        arguments left out keep the store's) in the background; readers
        never wait, the old segments serve until the new ones and the new
        settings are published together.  Returns once they are."""
        eng = self._h.writable()
        return Call("reindex", (reindex_changes(eng.storage.path, eng.stored_config,
                                                quantization, hnsw_m, ef_construction,
                                                index_kind),))

    def refresh(self: Scoped) -> Op[None]:
        """Pick up commits made by the writer (read_only stores; a no-op on
        the writer itself)."""
        return Read(_refresh, (self._h,))

    def backup(self: Scoped, dest: str | os.PathLike[str]) -> Op[None]:
        """Write a consistent copy of the store to the new directory ``dest``."""
        return Read(backup_store, (self._h.engine(), os.fspath(dest)))


def _query_all(snap: Snapshot, query: QueryLike, k: int | None, filter: FilterLike,
               ef: int | None, include_vectors: bool | None) -> list[Result]:
    q = make_query(query, k, filter, ef, include_vectors, None)
    return snap.query(q, partitions=partition_names(snap._state))


class PartitionedSpec(StoreSpec):
    """The seed's spelling: the partition named in each call."""

    def insert(self: Scoped, partition: str, id: Any, vector: Any,
               metadata: Mapping[str, Any] | None = None, *,
               message: str | None = None) -> Op[int]:
        """Insert or replace ``id`` in ``partition``; returns the new version."""
        eng = self._h.writable()
        return Write(rq.upsert_one(eng, check_partition(partition), id, vector, metadata,
                                   message))

    def query_partition(self: Scoped, partition: str, query: QueryLike, k: int | None = None,
                        filter: FilterLike = None, ef: int | None = None,
                        include_vectors: bool | None = None) -> Op[list[Result]]:
        """k-NN within ``partition`` only."""
        eng = self._h.engine()
        snap = Snapshot(eng, eng.state, None, check_partition(partition))
        return Read(snap.query, (query, k, filter, ef, include_vectors))

    def query_all(self: Scoped, query: QueryLike, k: int | None = None,
                  filter: FilterLike = None, ef: int | None = None,
                  include_vectors: bool | None = None) -> Op[list[Result]]:
        """k-NN across every partition, merged by score; each result names
        its ``partition``."""
        return Read(_query_all, (_latest(self), query, k, filter, ef, include_vectors))


class VersionedSpec(StoreSpec):
    """The seed's ``VersionedStore`` spelling."""

    def update(self: Scoped, id: Any, vector: Any, metadata: Mapping[str, Any] | None = None,
               message: str | None = None) -> Op[int]:
        """``upsert`` with the seed's argument order (``message`` positional)."""
        return PartitionSpec.upsert(self, id, vector, metadata, message=message)


# -- turning spec functions into methods ------------------------------------------------


def _unwrapped_return(fn: Callable[..., Any]) -> str:
    ann = inspect.signature(fn).return_annotation
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
    return text[3:-1] if text.startswith("Op[") and text.endswith("]") else text


def _as_method(fn: Callable[..., Any], method: Callable[..., Any]) -> None:
    functools.update_wrapper(method, fn)
    ret = _unwrapped_return(fn)
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    params[0] = params[0].replace(annotation=inspect.Parameter.empty)  # self
    method.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=ret)
    method.__annotations__ = {**fn.__annotations__, "return": ret}
    del method.__wrapped__  # type: ignore[attr-defined]


def sync_method(fn: Callable[Concatenate[Any, P], Op[T]]) -> Callable[Concatenate[Any, P], T]:
    """A blocking method running ``fn``'s op (see :mod:`.sync`)."""

    def method(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return cast(T, self._run(fn(self, *args, **kwargs)))

    _as_method(fn, method)
    return method


def async_method(fn: Callable[Concatenate[Any, P], Op[T]]
                 ) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """An awaitable method running ``fn``'s op (see :mod:`.aio`)."""

    async def method(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return cast(T, await self._arun(fn(self, *args, **kwargs)))

    _as_method(fn, method)
    return method


def async_iter_method(fn: Callable[Concatenate[Any, P], Op[Iterator[Any]]]
                      ) -> Callable[Concatenate[Any, P], AsyncIterator[Any]]:
    """``scan``, ``changes``: a method returning an async iterator (``async for``)."""

    def method(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[Any]:
        return cast(AsyncIterator[Any], self._aiter(fn(self, *args, **kwargs)))

    _as_method(fn, method)
    ret = f"Async{_unwrapped_return(fn)}"  # Iterator[X] -> AsyncIterator[X]
    method.__annotations__["return"] = ret
    method.__signature__ = method.__signature__.replace(  # type: ignore[attr-defined]
        return_annotation=ret)
    return method


__all__ = [
    "DEFAULT",
    "Call",
    "Facade",
    "FilterLike",
    "Now",
    "Op",
    "PartitionSpec",
    "PartitionedSpec",
    "Read",
    "Scan",
    "Scoped",
    "StoreFacade",
    "StoreSpec",
    "VersionedSpec",
    "Write",
    "async_iter_method",
    "async_method",
    "sync_method",
]
