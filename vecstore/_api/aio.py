"""The trio store: ``AsyncVecStore``, its partition views and snapshots.

``async with AsyncVecStore.open(path, config) as store:`` runs recovery in a
worker thread, starts the writer actor in a nursery of its own (``ready``
only after recovery), and on exit closes the mailbox and waits for the
writer to answer everything already sent.  Reads run in worker threads
(hnswlib releases the GIL, so queries proceed in parallel).
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Callable, TypeVar

import sniffio
import trio

from .._engine import requests as rq
from .._engine.engine import Engine
from .._errors import ReadOnlyError, StoreClosedError, UnsupportedEventLoopError
from .._metaindex.indexing import DropIndex, make_create_index
from .maint import backup_store, make_stats, partition_names
from .._metrics.recorder import Metrics
from .._engine.ops import WriteRequest
from .._query.plan import QueryPlan
from .._query.snapshot import DEFAULT, QueryLike, Snapshot
from .sync import FilterLike
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
from .._engine.writer import Writer

T = TypeVar("T")


async def _run(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kw))


class AsyncSnapshot:
    """Async twin of :class:`~vecstore.Snapshot` (same methods, awaited)."""

    def __init__(self, snap: Snapshot) -> None:
        self.sync = snap

    @property
    def version(self) -> int:
        return self.sync.version

    @property
    def partition_name(self) -> str:
        return self.sync.partition_name

    def partition(self, name: str) -> AsyncSnapshot:
        return AsyncSnapshot(self.sync.partition(name))

    async def get(self, id: Any) -> Record | None:
        return await _run(self.sync.get, id)

    async def get_many(self, ids: Iterable[Any]) -> list[Record | None]:
        return await _run(self.sync.get_many, ids)

    async def query(self, query: QueryLike, k: int | None = None, filter: FilterLike = None,
                    ef: int | None = None, include_vectors: bool | None = None,
                    partitions: Sequence[str] | None = None) -> list[Result]:
        return await _run(self.sync.query, query, k, filter, ef, include_vectors, partitions)

    async def count(self, filter: FilterLike = None) -> int:
        return await _run(self.sync.count, filter)

    async def explain(self, query: QueryLike, k: int | None = None, filter: FilterLike = None,
                      partitions: Sequence[str] | None = None) -> QueryPlan:
        return await _run(self.sync.explain, query, k, filter, partitions)

    async def scan(self, filter: FilterLike = None, batch_size: int = 1000
                   ) -> AsyncIterator[Record]:
        it = self.sync.scan(filter, batch_size)
        sentinel = object()
        while True:
            batch = await _run(lambda: [r for r, _ in zip(it, range(batch_size))] or sentinel)
            if batch is sentinel:
                return
            for rec in batch:  # type: ignore[union-attr]
                yield rec


class _AsyncPartitionAPI:
    _store: AsyncVecStore
    _pname: str

    @property
    def name(self) -> str:
        return self._pname

    @property
    def version(self) -> int:
        return self._store._eng().state.version

    async def snapshot(self, version: int | None = None, *,
                       tag: str | None = None) -> AsyncSnapshot:
        snap = await _run(open_snapshot, self._store._eng(), version, tag, self._pname)
        return AsyncSnapshot(snap)

    async def history(self, id: Any) -> list[RecordVersion]:
        return await _run(record_history, self._store._eng(), self._pname, id)

    async def rollback(self, version: int, message: str | None = None) -> int:
        part = None if self._store is self else check_partition(self._pname)
        return await self._store._submit(make_rollback(part, version, message))  # type: ignore[no-any-return]

    def _snap(self) -> AsyncSnapshot:
        eng = self._store._eng()
        return AsyncSnapshot(Snapshot(eng, eng.state, None, self._pname))

    async def upsert(self, id: Any, vector: Any, metadata: Mapping[str, Any] | None = None, *,
                     message: str | None = None) -> int:
        eng = self._store._writable()
        return await self._store._submit(  # type: ignore[no-any-return]
            rq.upsert_one(eng, self._pname, id, vector, metadata, message))

    async def upsert_many(self, items: Iterable[Any] | None = None, *,
                          ids: Sequence[Any] | None = None, vectors: Any = None,
                          metadata: Sequence[Any] | None = None,
                          message: str | None = None) -> int:
        eng = self._store._writable()
        return await self._store._submit(  # type: ignore[no-any-return]
            rq.upsert_many(eng, self._pname, items, ids, vectors, metadata, message))

    async def delete(self, id: Any, *, message: str | None = None) -> bool:
        self._store._writable()
        return await self._store._submit(  # type: ignore[no-any-return]
            rq.delete(self._pname, [id], message, single=True))

    async def delete_many(self, ids: Iterable[Any] | None = None, *, filter: FilterLike = None,
                          message: str | None = None) -> int:
        self._store._writable()
        return await self._store._submit(  # type: ignore[no-any-return]
            rq.delete_many(self._pname, ids, filter, message))

    async def get(self, id: Any) -> Record | None:
        return await self._snap().get(id)

    async def get_many(self, ids: Iterable[Any]) -> list[Record | None]:
        """Records for ``ids`` in the order asked (``None`` where absent), from one snapshot."""
        return await self._snap().get_many(ids)

    async def query(self, query: QueryLike, k: int | None = None, filter: FilterLike = None,
                    ef: int | None = None, include_vectors: bool | None = None,
                    partitions: Sequence[str] | None = None) -> list[Result]:
        return await self._snap().query(query, k, filter, ef, include_vectors, partitions)

    async def count(self, filter: FilterLike = None) -> int:
        return await self._snap().count(filter)

    def scan(self, filter: FilterLike = None, batch_size: int = 1000) -> AsyncIterator[Record]:
        return self._snap().scan(filter, batch_size)

    async def explain(self, query: QueryLike, k: int | None = None, filter: FilterLike = None,
                      partitions: Sequence[str] | None = None) -> QueryPlan:
        return await self._snap().explain(query, k, filter, partitions)


class AsyncPartitionView(_AsyncPartitionAPI):
    def __init__(self, store: AsyncVecStore, name: str) -> None:
        self._store = store
        self._pname = check_partition(name)


class AsyncVecStore(_AsyncPartitionAPI):
    """The trio twin of :class:`~vecstore.VecStore`."""

    def __init__(self, engine: Engine, writer: Writer | None) -> None:
        self._engine: Engine | None = engine
        self._writer = writer
        self._store = self
        self._pname = DEFAULT
        self.path = engine.storage.path
        self.read_only = engine.read_only

    @staticmethod
    def open(path: str | os.PathLike[str], config: Config | None = None, *,
             read_only: bool = False) -> _Opener:
        return _Opener(os.fspath(path), config, read_only)

    def _eng(self) -> Engine:
        if self._engine is None:
            raise StoreClosedError(f"store {self.path!r} is closed")
        return self._engine

    def _writable(self) -> Engine:
        eng = self._eng()
        if self._writer is None:
            raise ReadOnlyError(f"store {self.path!r} was opened read_only=True")
        return eng

    async def _submit(self, req: WriteRequest) -> Any:
        self._writable()
        assert self._writer is not None
        return await self._writer.submit(req)

    def partition(self, name: str) -> AsyncPartitionView:
        return AsyncPartitionView(self, name)

    async def partitions(self) -> list[str]:
        return partition_names(self._eng().state)

    async def drop_partition(self, name: str, *, message: str | None = None) -> bool:
        return await self._submit(rq.drop_partition(name, message))  # type: ignore[no-any-return]

    async def stats(self) -> Stats:
        return await _run(make_stats, self._eng())

    async def metrics(self) -> Metrics:
        """Counters and latency histograms since the store was opened."""
        return self._eng().metrics.snapshot()  # a few microseconds: no thread

    async def create_index(self, field: str, kind: str = "btree") -> bool:
        return await self._submit(make_create_index(field, kind))  # type: ignore[no-any-return]

    async def drop_index(self, field: str) -> bool:
        return await self._submit(DropIndex(field))  # type: ignore[no-any-return]

    async def indexes(self) -> dict[str, str]:
        return {ix.field: ix.kind for ix in self._eng().state.indexes.values()}

    async def versions(self) -> list[VersionInfo]:
        eng = self._eng()

        def run() -> list[VersionInfo]:
            with eng.storage.read() as txn:
                return list_versions(eng.storage, txn)

        return await _run(run)

    async def tag(self, name: str) -> int:
        return await self._submit(make_tag(name))  # type: ignore[no-any-return]

    async def set_retention(self, versions: int | None = None,
                            seconds: float | None = None) -> None:
        await self._submit(make_retention(versions, seconds))

    async def compact(self) -> dict[str, int]:
        self._writable()
        assert self._writer is not None
        return await self._writer.compact()

    async def optimize(self) -> None:
        self._writable()
        assert self._writer is not None
        await self._writer.optimize()

    async def refresh(self) -> None:
        eng = self._eng()
        if self._writer is None:
            await _run(eng.refresh)

    async def backup(self, dest: str | os.PathLike[str]) -> None:
        await _run(backup_store, self._eng(), os.fspath(dest))

    @property
    def commits(self) -> int:
        """Write transactions committed so far (group commit makes this smaller
        than the number of write calls)."""
        return self._eng().commits


def _require_trio() -> None:
    """AsyncVecStore runs on trio today; say so plainly anywhere else."""
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = None
    if library != "trio":
        where = f"under {library}" if library else "outside an async function"
        raise UnsupportedEventLoopError(
            f"AsyncVecStore needs trio (it was opened {where}); run it under trio.run(...), "
            "or use the synchronous VecStore, which works anywhere (from asyncio, call it "
            "through asyncio.to_thread)")


class _Opener:
    """``async with AsyncVecStore.open(...) as store``."""

    def __init__(self, path: str, config: Config | None, read_only: bool) -> None:
        self._args = (path, config, read_only)
        self._store: AsyncVecStore | None = None
        self._nursery_cm: Any = None
        self.store_class: type[AsyncVecStore] = AsyncVecStore

    async def __aenter__(self) -> AsyncVecStore:
        _require_trio()
        path, config, read_only = self._args
        engine = await _run(Engine, path, config, read_only=read_only)
        if read_only:
            self._store = self.store_class(engine, None)
            return self._store
        writer = Writer(engine)
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        try:
            await nursery.start(writer.run)
        except BaseException:
            await self._nursery_cm.__aexit__(None, None, None)
            engine.close()
            raise
        self._store = self.store_class(engine, writer)
        return self._store

    async def __aexit__(self, *exc: Any) -> bool | None:
        store = self._store
        assert store is not None
        try:
            if store._writer is not None:
                with trio.CancelScope(shield=True):
                    await store._writer.aclose()
                return await self._nursery_cm.__aexit__(*exc)  # type: ignore[no-any-return]
            return None
        finally:
            eng, store._engine = store._engine, None
            if eng is not None:
                eng.close()
