"""The async facade: ``AsyncVecStore``, its partition views and snapshots,
under asyncio or trio (detected when called; nothing to configure).

Every method is the same spec function as its sync twin (:mod:`.spec`),
awaited: reads run in worker threads (LMDB reads and index searches release
the GIL, so queries proceed in parallel and the event loop never blocks);
writes are posted to the writer thread and awaited without a thread of
their own, so concurrent tasks' writes share group commits.  A task
cancelled while awaiting a write stops waiting, but the write it sent is
not withdrawn: the writer commits or rejects it as a whole (never half), so
after a cancellation read the store to learn whether it happened.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any, Generic, TypeVar, cast

from .._query.snapshot import DEFAULT, Snapshot
from .._types import Config, Record
from .._validate import check_partition
from . import bridge
from .handle import Handle
from .spec import (
    Call,
    Facade,
    Now,
    Op,
    PartitionedSpec,
    PartitionSpec,
    Read,
    Scan,
    StoreFacade,
    StoreSpec,
    VersionedSpec,
    Write,
    async_iter_method,
    async_method,
)

T = TypeVar("T")
S = TypeVar("S", bound="AsyncVecStore")

__all__ = ["AsyncPartitionView", "AsyncPartitionedStore", "AsyncSnapshot", "AsyncVecStore",
           "AsyncVersionedStore"]


async def _batches(records: Iterator[Record], batch_size: int) -> AsyncIterator[Record]:
    """An iterator's records, each batch pulled in a worker thread."""
    while True:
        batch = await bridge.to_thread(lambda: list(itertools.islice(records, batch_size)))
        if not batch:
            return
        for rec in batch:
            yield rec


def _snapshot_reader(name: str) -> Any:
    """An awaitable twin of ``Snapshot.<name>`` (same signature and doc)."""
    fn = getattr(Snapshot, name)

    def spec(self: AsyncSnapshot, *args: Any, **kwargs: Any) -> Op[Any]:
        return Read(getattr(self.sync, name), args) if not kwargs else \
            Read(lambda: getattr(self.sync, name)(*args, **kwargs))

    spec.__name__, spec.__qualname__, spec.__doc__ = name, fn.__qualname__, fn.__doc__
    spec.__signature__ = __import__("inspect").signature(fn)  # type: ignore[attr-defined]
    spec.__annotations__ = dict(fn.__annotations__)
    return spec


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

    async def _arun(self, op: Op[T]) -> T:
        assert isinstance(op, Read)
        return await bridge.to_thread(op.fn, *op.args)

    get = async_method(_snapshot_reader("get"))
    get_many = async_method(_snapshot_reader("get_many"))
    query = async_method(_snapshot_reader("query"))
    count = async_method(_snapshot_reader("count"))
    explain = async_method(_snapshot_reader("explain"))
    vectors = async_method(_snapshot_reader("vectors"))

    def scan(self, filter: Any = None, batch_size: int = 1000) -> AsyncIterator[Record]:
        return _batches(self.sync.scan(filter, batch_size), batch_size)

    scan.__doc__ = Snapshot.scan.__doc__  # (each batch is read in a worker thread)

    def __repr__(self) -> str:
        return f"<Async{repr(self.sync)[1:]}"


class _Async(Facade):
    """Awaits ops: reads in worker threads, writes through the writer thread."""

    _h: Handle
    _pname: str
    _root: bool

    async def _arun(self, op: Op[T]) -> T:
        bridge.backend()  # a clear error outside asyncio/trio
        if isinstance(op, Now):
            return cast(T, op.value)
        if isinstance(op, Read):
            out = await bridge.to_thread(op.fn, *op.args)
            return AsyncSnapshot(out) if isinstance(out, Snapshot) else out  # type: ignore[return-value]
        if isinstance(op, Write):
            return cast(T, await bridge.wait(self._h.writer().write(op.req)))
        if isinstance(op, Call):
            loop = self._h.writer()
            return await bridge.wait(loop.submit(getattr(loop.writer, op.method), *op.args))
        raise TypeError(f"unknown op {op!r}")

    def _aiter(self, op: Op[Iterator[Any]]) -> AsyncIterator[Any]:
        assert isinstance(op, Scan)
        return _batches(op.records(), op.batch_size)

    # -- plumbing used by migrations -------------------------------------------------




    async def _submit(self, req: Any) -> Any:
        return await self._arun(Write(req))

    # -- the partition-scoped API ---------------------------------------------------



    snapshot = async_method(PartitionSpec.snapshot)
    history = async_method(PartitionSpec.history)
    rollback = async_method(PartitionSpec.rollback)
    upsert = async_method(PartitionSpec.upsert)
    upsert_many = async_method(PartitionSpec.upsert_many)
    delete = async_method(PartitionSpec.delete)
    delete_many = async_method(PartitionSpec.delete_many)
    get = async_method(PartitionSpec.get)
    get_many = async_method(PartitionSpec.get_many)
    query = async_method(PartitionSpec.query)
    count = async_method(PartitionSpec.count)
    scan = async_iter_method(PartitionSpec.scan)
    changes = async_iter_method(PartitionSpec.changes)
    explain = async_method(PartitionSpec.explain)
    recommend = async_method(PartitionSpec.recommend)
    find_duplicates = async_method(PartitionSpec.find_duplicates)


class AsyncPartitionView(_Async):
    """Async twin of :class:`~vecstore.PartitionView`."""

    def __init__(self, store: AsyncVecStore, name: str) -> None:
        self._h = store._h
        self._pname = check_partition(name)
        self._root = False
        self._store = store

    def __repr__(self) -> str:
        return f"<AsyncPartitionView {self._pname!r} of {self._h.path!r}>"


class AsyncVecStore(_Async, StoreFacade):
    """Async twin of :class:`~vecstore.VecStore`, for asyncio and trio.

    ``async with AsyncVecStore.open(path, config) as store: ...`` (or
    ``store = await AsyncVecStore.open(...)`` and ``await store.close()``).
    """

    def __init__(self, handle: Handle) -> None:
        self._h = handle
        self._pname = DEFAULT
        self._root = True
        self._store = self
        self.path = handle.path
        self.read_only = handle.read_only

    @classmethod
    def open(cls: type[S], path: str | os.PathLike[str], config: Config | None = None, *,
             read_only: bool = False) -> _Opener[S]:
        """Create or open the store at ``path``: ``async with`` it, or await it."""
        return _Opener(cls, os.fspath(path), config, read_only)

    def partition(self, name: str) -> AsyncPartitionView:
        """A view of partition ``name`` (created by its first write)."""
        return AsyncPartitionView(self, name)

    partitions = async_method(StoreSpec.partitions)
    drop_partition = async_method(StoreSpec.drop_partition)
    stats = async_method(StoreSpec.stats)
    metrics = async_method(StoreSpec.metrics)
    create_index = async_method(StoreSpec.create_index)
    drop_index = async_method(StoreSpec.drop_index)
    indexes = async_method(StoreSpec.indexes)
    versions = async_method(StoreSpec.versions)
    tag = async_method(StoreSpec.tag)
    set_retention = async_method(StoreSpec.set_retention)
    compact = async_method(StoreSpec.compact)
    optimize = async_method(StoreSpec.optimize)
    reindex = async_method(StoreSpec.reindex)
    refresh = async_method(StoreSpec.refresh)
    backup = async_method(StoreSpec.backup)


    async def close(self) -> None:
        """Finish the writes already sent, then close (idempotent)."""
        await bridge.to_thread(self._h.close)


    async def __aenter__(self: S) -> S:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()



class AsyncVersionedStore(AsyncVecStore):
    """Async twin of :class:`~vecstore.VersionedStore`."""

    update = async_method(VersionedSpec.update)


class AsyncPartitionedStore(AsyncVecStore):
    """Async twin of :class:`~vecstore.PartitionedStore`."""

    insert = async_method(PartitionedSpec.insert)
    query_partition = async_method(PartitionedSpec.query_partition)
    query_all = async_method(PartitionedSpec.query_all)


class _Opener(Generic[S]):
    """``async with AsyncVecStore.open(...) as store`` or ``await AsyncVecStore.open(...)``.

    Recovery runs in a worker thread; the store is closed on leaving the
    ``async with`` block (also when the block raises or is cancelled)."""

    def __init__(self, cls: type[S], path: str, config: Config | None, read_only: bool
                 ) -> None:
        self._cls = cls
        self._args = (path, config, read_only)
        self._store: S | None = None

    async def _open(self) -> S:
        bridge.backend()  # a clear error outside asyncio/trio, before touching the disk
        handle = await bridge.to_thread(Handle, *self._args)
        return self._cls(handle)

    def __await__(self) -> Generator[Any, None, S]:
        return self._open().__await__()

    async def __aenter__(self) -> S:
        self._store = await self._open()
        return self._store

    async def __aexit__(self, *exc: object) -> None:
        store, self._store = self._store, None
        if store is not None:
            await _close_shielded(store)


async def _close_shielded(store: AsyncVecStore) -> None:
    """Close even when the surrounding task is being cancelled."""
    import anyio

    with anyio.CancelScope(shield=True):
        await store.close()
