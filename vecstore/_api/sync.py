"""The synchronous store: ``VecStore`` and its partition views.

A thin shell over the engine: writes go to the writer actor (hosted on a
private trio loop thread) and wait for its answer; reads go straight to an
immutable snapshot in the calling thread.  Safe to call from many threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .._engine import requests as rq
from .._engine.engine import Engine
from .._errors import ReadOnlyError, StoreClosedError
from .._filter.core import Filter
from .._metaindex.indexing import DropIndex, make_create_index
from .maint import backup_store, make_stats, partition_names
from .._metrics.recorder import Metrics
from .._engine.ops import WriteRequest
from .._query.plan import QueryPlan
from .._query.snapshot import DEFAULT, QueryLike, Snapshot
from .._types import Config, Record, RecordVersion, Result, Stats, VersionInfo
from .._validate import check_partition
from .._engine.versions import (
    list_versions,
    make_retention,
    make_rollback,
    make_tag,
    open_snapshot,
    record_history,
)
from .._engine.writer import LoopThread

FilterLike = str | Mapping[str, Any] | Filter | None


class _PartitionAPI:
    """Read and write calls scoped to one partition."""

    _store: VecStore
    _pname: str

    def _submit(self, req: WriteRequest) -> Any:
        return self._store._submit(req)

    @property
    def name(self) -> str:
        return self._pname

    @property
    def version(self) -> int:
        return self._store._engine_checked().state.version

    def snapshot(self, version: int | None = None, *, tag: str | None = None) -> Snapshot:
        """An immutable view at ``version`` / ``tag`` (default: the latest)."""
        return open_snapshot(self._store._engine_checked(), version, tag,  # type: ignore[no-any-return]
                             self._pname)

    def history(self, id: Any) -> list[RecordVersion]:
        """Every retained version that changed the record, oldest first."""
        eng = self._store._engine_checked()
        return record_history(eng, self._pname, id)

    def rollback(self, version: int, message: str | None = None) -> int:
        """A new version whose state (of this partition) equals ``version``'s."""
        self._store._writable()
        return self._submit(make_rollback(check_partition(self._pname), version, message))  # type: ignore[no-any-return]

    # writes
    def upsert(self, id: Any, vector: Any, metadata: Mapping[str, Any] | None = None, *,
               message: str | None = None) -> int:
        """Insert or replace one record; returns the new version."""
        eng = self._store._writable()
        return self._submit(rq.upsert_one(eng, self._pname, id, vector, metadata, message))  # type: ignore[no-any-return]

    def upsert_many(self, items: Iterable[Any] | None = None, *, ids: Sequence[Any] | None = None,
                    vectors: Any = None, metadata: Sequence[Any] | None = None,
                    message: str | None = None) -> int:
        """Insert or replace many records as one atomic version."""
        eng = self._store._writable()
        return self._submit(rq.upsert_many(eng, self._pname, items, ids, vectors, metadata,  # type: ignore[no-any-return]
                                           message))

    def delete(self, id: Any, *, message: str | None = None) -> bool:
        """Delete one record; returns whether it existed."""
        self._store._writable()
        return self._submit(rq.delete(self._pname, [id], message, single=True))  # type: ignore[no-any-return]

    def delete_many(self, ids: Iterable[Any] | None = None, *, filter: FilterLike = None,
                    message: str | None = None) -> int:
        """Delete records by id and/or filter as one atomic version."""
        self._store._writable()
        return self._submit(rq.delete_many(self._pname, ids, filter, message))  # type: ignore[no-any-return]

    # reads (at the latest version)
    def _latest(self) -> Snapshot:
        return self._store._snapshot(None, self._pname)

    def get(self, id: Any) -> Record | None:
        return self._latest().get(id)

    def get_many(self, ids: Iterable[Any]) -> list[Record | None]:
        """Records for ``ids`` in the order asked (``None`` where absent), read
        from one snapshot in one transaction (Pinecone ``fetch``, Qdrant ``retrieve``)."""
        return self._latest().get_many(ids)

    def query(self, query: QueryLike, k: int | None = None, filter: FilterLike = None,
              ef: int | None = None, include_vectors: bool | None = None,
              partitions: Sequence[str] | None = None) -> list[Result]:
        return self._latest().query(query, k, filter, ef, include_vectors, partitions)

    def count(self, filter: FilterLike = None) -> int:
        return self._latest().count(filter)

    def scan(self, filter: FilterLike = None, batch_size: int = 1000) -> Iterator[Record]:
        return self._latest().scan(filter, batch_size)

    def __len__(self) -> int:
        return self._latest().count()

    def explain(self, query: QueryLike, k: int | None = None, filter: FilterLike = None,
                partitions: Sequence[str] | None = None) -> QueryPlan:
        """How ``query`` would run (strategy, estimated matches and cost, hints)."""
        return self._latest().explain(query, k, filter, partitions)

    def __contains__(self, id: Any) -> bool:
        return self.get(id) is not None


class PartitionView(_PartitionAPI):
    """The store's read, write and version API scoped to one partition."""

    def __init__(self, store: VecStore, name: str) -> None:
        self._store = store
        self._pname = check_partition(name)

    def __repr__(self) -> str:
        return f"<PartitionView {self._pname!r} of {self._store.path!r}>"


class VecStore(_PartitionAPI):
    """An embedded vector store.  Open with :meth:`VecStore.open`."""

    def __init__(self, engine: Engine, loop: LoopThread | None) -> None:
        self._engine: Engine | None = engine
        self._loop = loop
        self._store = self
        self._pname = DEFAULT
        self.path = engine.storage.path
        self.read_only = engine.read_only

    @classmethod
    def open(cls, path: str | os.PathLike[str], config: Config | None = None, *,
             read_only: bool = False) -> VecStore:
        """Create or open the store at ``path`` (a directory)."""
        engine = Engine(os.fspath(path), config, read_only=read_only)
        try:
            loop = None if read_only else LoopThread(engine)
        except BaseException:
            engine.close()
            raise
        return cls(engine, loop)

    # -- plumbing --------------------------------------------------------------

    def _engine_checked(self) -> Engine:
        if self._engine is None:
            raise StoreClosedError(f"store {self.path!r} is closed")
        return self._engine

    def _writable(self) -> Engine:
        eng = self._engine_checked()
        if self._loop is None:
            raise ReadOnlyError(f"store {self.path!r} was opened read_only=True")
        return eng

    def _submit(self, req: WriteRequest) -> Any:
        self._writable()
        assert self._loop is not None
        return self._loop.call(self._loop.writer.submit, req)

    def _snapshot(self, version: int | None, partition: str) -> Snapshot:
        eng = self._engine_checked()
        return Snapshot(eng, eng.state, version, partition)

    # -- store-level API -----------------------------------------------------------

    def partition(self, name: str) -> PartitionView:
        return PartitionView(self, name)

    def partitions(self) -> list[str]:
        return partition_names(self._engine_checked().state)

    def drop_partition(self, name: str, *, message: str | None = None) -> bool:
        """Delete every record of a partition (one version) and unlist it."""
        self._writable()
        return self._submit(rq.drop_partition(name, message))  # type: ignore[no-any-return]

    def stats(self) -> Stats:
        return make_stats(self._engine_checked())

    def metrics(self) -> Metrics:
        """Counters and latency histograms since the store was opened
        (``.to_dict()``, ``.to_prometheus()``); see :class:`vecstore.Metrics`."""
        return self._engine_checked().metrics.snapshot()

    # -- indexes -------------------------------------------------------------------

    def create_index(self, field: str, kind: str = "btree") -> bool:
        """Index a metadata field ("hash" | "btree" | "inverted"); backfills
        existing records in the same transaction.  False if it existed."""
        self._writable()
        return self._submit(make_create_index(field, kind))  # type: ignore[no-any-return]

    def drop_index(self, field: str) -> bool:
        self._writable()
        return self._submit(DropIndex(field))  # type: ignore[no-any-return]

    def indexes(self) -> dict[str, str]:
        """Indexed fields and their kinds."""
        return {ix.field: ix.kind for ix in self._engine_checked().state.indexes.values()}

    # -- versions ------------------------------------------------------------------

    def versions(self) -> list[VersionInfo]:
        """Retained versions, oldest first."""
        eng = self._engine_checked()
        with eng.storage.read() as txn:
            return list_versions(eng.storage, txn)

    def tag(self, name: str) -> int:
        """Name the current version; ``snapshot(tag=name)`` reads it."""
        self._writable()
        return self._submit(make_tag(name))  # type: ignore[no-any-return]

    def rollback(self, version: int, message: str | None = None) -> int:
        """A new version whose state (every partition) equals ``version``'s."""
        self._writable()
        return self._submit(make_rollback(None, version, message))  # type: ignore[no-any-return]

    def set_retention(self, versions: int | None = None, seconds: float | None = None) -> None:
        """Keep the last ``versions`` versions and/or those younger than
        ``seconds`` (a version must satisfy every limit given); older ones
        become unreadable at once and are reclaimed by :meth:`compact`."""
        self._writable()
        self._submit(make_retention(versions, seconds))

    def compact(self) -> dict[str, int]:
        """Reclaim rows no retained version or open snapshot can see."""
        self._writable()
        assert self._loop is not None
        return self._loop.call(self._loop.writer.compact)

    def optimize(self) -> None:
        """Seal and index everything pending; returns when queries use only
        HNSW segments (one per partition)."""
        self._writable()
        assert self._loop is not None
        self._loop.call(self._loop.writer.optimize)

    def refresh(self) -> None:
        """Pick up commits made by the writer (another process)."""
        eng = self._engine_checked()
        if self._loop is None:
            eng.refresh()

    def backup(self, dest: str | os.PathLike[str]) -> None:
        """Write a consistent copy of the store to the new directory ``dest``."""
        backup_store(self._engine_checked(), os.fspath(dest))

    def close(self) -> None:
        eng, self._engine = self._engine, None
        if eng is None:
            return
        if self._loop is not None:
            self._loop.close()
        eng.close()

    @property
    def closed(self) -> bool:
        return self._engine is None

    def __enter__(self) -> VecStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._engine is None else f"version {self._engine.state.version}"
        return f"<VecStore {self.path!r} {state}>"


class VersionedStore(VecStore):
    """The seed's spelling of the same store, with ``update``."""

    def update(self, id: Any, vector: Any, metadata: Mapping[str, Any] | None = None,
               message: str | None = None) -> int:
        return self.upsert(id, vector, metadata, message=message)
