"""The synchronous facade: ``VecStore``, its partition views, and the seed's
``VersionedStore`` / ``PartitionedStore`` spellings.

Every method is a spec function (:mod:`.spec`) run here: reads go straight
to an immutable snapshot in the calling thread; writes are posted to the
writer thread and wait for its answer.  Safe to call from many threads.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar, cast

from .._query.snapshot import DEFAULT, Snapshot
from .._types import Config
from .._validate import check_partition
from .handle import Handle
from .spec import (
    Call,
    Facade,
    FilterLike,
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
    sync_method,
)

T = TypeVar("T")
S = TypeVar("S", bound="VecStore")

__all__ = ["FilterLike", "PartitionView", "PartitionedStore", "VecStore", "VersionedStore"]


class _Sync(Facade):
    """Runs ops in the calling thread."""

    _h: Handle
    _pname: str
    _root: bool

    def _run(self, op: Op[T]) -> T:
        if isinstance(op, Read):
            return cast(T, op.fn(*op.args))
        if isinstance(op, Now):
            return cast(T, op.value)
        if isinstance(op, Write):
            return cast(T, self._h.writer().write(op.req).result())
        if isinstance(op, Call):
            writer = self._h.writer()
            method = getattr(writer.writer, op.method)
            return cast(T, writer.call(method, *op.args))
        if isinstance(op, Scan):
            return cast(T, op.records())
        raise TypeError(f"unknown op {op!r}")

    # -- plumbing used by migrations and the CLI --------------------------------




    def _submit(self, req: Any) -> Any:
        return self._run(Write(req))

    # -- the partition-scoped API ---------------------------------------------



    snapshot = sync_method(PartitionSpec.snapshot)
    history = sync_method(PartitionSpec.history)
    rollback = sync_method(PartitionSpec.rollback)
    upsert = sync_method(PartitionSpec.upsert)
    upsert_many = sync_method(PartitionSpec.upsert_many)
    delete = sync_method(PartitionSpec.delete)
    delete_many = sync_method(PartitionSpec.delete_many)
    get = sync_method(PartitionSpec.get)
    get_many = sync_method(PartitionSpec.get_many)
    query = sync_method(PartitionSpec.query)
    count = sync_method(PartitionSpec.count)
    scan = sync_method(PartitionSpec.scan)
    changes = sync_method(PartitionSpec.changes)
    explain = sync_method(PartitionSpec.explain)
    recommend = sync_method(PartitionSpec.recommend)
    find_duplicates = sync_method(PartitionSpec.find_duplicates)

    def __len__(self) -> int:
        return self.count()

    def __contains__(self, id: Any) -> bool:
        return self.get(id) is not None


class PartitionView(_Sync):
    """The store's read, write and version API scoped to one partition."""

    def __init__(self, store: VecStore, name: str) -> None:
        self._h = store._h
        self._pname = check_partition(name)
        self._root = False
        self._store = store

    def __repr__(self) -> str:
        return f"<PartitionView {self._pname!r} of {self._h.path!r}>"


class VecStore(_Sync, StoreFacade):
    """An embedded vector store.  Open with :meth:`VecStore.open`."""

    def __init__(self, handle: Handle) -> None:
        self._h = handle
        self._pname = DEFAULT
        self._root = True
        self._store = self
        self.path = handle.path
        self.read_only = handle.read_only

    @classmethod
    def open(cls: type[S], path: str | os.PathLike[str], config: Config | None = None, *,
             read_only: bool = False) -> S:
        """Create or open the store at ``path`` (a directory)."""
        return cls(Handle(path, config, read_only))

    def _snapshot(self, version: int | None, partition: str) -> Snapshot:
        eng = self._h.engine()
        return Snapshot(eng, eng.state, version, partition)

    def partition(self, name: str) -> PartitionView:
        """A view of partition ``name`` (created by its first write)."""
        return PartitionView(self, name)

    partitions = sync_method(StoreSpec.partitions)
    drop_partition = sync_method(StoreSpec.drop_partition)
    stats = sync_method(StoreSpec.stats)
    metrics = sync_method(StoreSpec.metrics)
    create_index = sync_method(StoreSpec.create_index)
    drop_index = sync_method(StoreSpec.drop_index)
    indexes = sync_method(StoreSpec.indexes)
    versions = sync_method(StoreSpec.versions)
    tag = sync_method(StoreSpec.tag)
    set_retention = sync_method(StoreSpec.set_retention)
    compact = sync_method(StoreSpec.compact)
    optimize = sync_method(StoreSpec.optimize)
    reindex = sync_method(StoreSpec.reindex)
    refresh = sync_method(StoreSpec.refresh)
    backup = sync_method(StoreSpec.backup)


    def close(self) -> None:
        """Finish the writes already sent, then close (idempotent)."""
        self._h.close()


    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



class VersionedStore(VecStore):
    """The seed's spelling of the same store, with ``update``."""

    update = sync_method(VersionedSpec.update)


class PartitionedStore(VecStore):
    """A :class:`VecStore` addressed partition by partition (the seed's
    spelling): ``insert(partition, id, ...)``, ``query_partition``, ``query_all``."""

    insert = sync_method(PartitionedSpec.insert)
    query_partition = sync_method(PartitionedSpec.query_partition)
    query_all = sync_method(PartitionedSpec.query_all)

