"""The seed's multi-tenant spelling: ``PartitionedStore`` (and its async twin).

The same store, the same engine: a ``PartitionedStore`` *is* a
:class:`~vecstore.VecStore` (every store method works on it) with the
partition named in each call rather than bound in a view::

    with PartitionedStore.open("data") as ps:
        ps.insert("tenant_a", "doc1", vec, {"kind": "note"})
        ps.query_partition("tenant_a", Query(vec).with_limit(5))
        ps.query_all(vec, k=5)        # every partition, merged by score
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .aio import AsyncVecStore, _Opener, _run
from .maint import partition_names
from .._query.snapshot import QueryLike, Snapshot, make_query
from .sync import FilterLike, VecStore
from .._types import Result


def _query_all(snap: Snapshot, query: QueryLike, k: int | None, filter: FilterLike,
               ef: int | None, include_vectors: bool | None) -> list[Result]:
    """``query`` over every partition live in ``snap`` (one snapshot)."""
    q = make_query(query, k, filter, ef, include_vectors, None)
    return snap.query(q, partitions=partition_names(snap._state))


class PartitionedStore(VecStore):
    """A :class:`~vecstore.VecStore` addressed partition by partition."""

    def insert(self, partition: str, id: Any, vector: Any,
               metadata: Mapping[str, Any] | None = None, *, message: str | None = None) -> int:
        """Insert or replace ``id`` in ``partition``; returns the new version."""
        return self.partition(partition).upsert(id, vector, metadata, message=message)

    def query_partition(self, partition: str, query: QueryLike, k: int | None = None,
                        filter: FilterLike = None, ef: int | None = None,
                        include_vectors: bool | None = None) -> list[Result]:
        """k-NN within ``partition`` only."""
        return self.partition(partition).query(query, k, filter, ef, include_vectors)

    def query_all(self, query: QueryLike, k: int | None = None, filter: FilterLike = None,
                  ef: int | None = None, include_vectors: bool | None = None) -> list[Result]:
        """k-NN across every partition, merged by score; each result names
        its ``partition``."""
        return _query_all(self._snapshot(None, "default"), query, k, filter, ef,
                          include_vectors)

    def __repr__(self) -> str:
        return "<Partitioned" + super().__repr__()[1:]


class AsyncPartitionedStore(AsyncVecStore):
    """Async twin of :class:`PartitionedStore`."""

    @staticmethod
    def open(path: Any, config: Any = None, *, read_only: bool = False) -> _Opener:
        opener = AsyncVecStore.open(path, config, read_only=read_only)
        opener.store_class = AsyncPartitionedStore
        return opener

    async def insert(self, partition: str, id: Any, vector: Any,
                     metadata: Mapping[str, Any] | None = None, *,
                     message: str | None = None) -> int:
        return await self.partition(partition).upsert(id, vector, metadata, message=message)

    async def query_partition(self, partition: str, query: QueryLike, k: int | None = None,
                              filter: FilterLike = None, ef: int | None = None,
                              include_vectors: bool | None = None) -> list[Result]:
        return await self.partition(partition).query(query, k, filter, ef, include_vectors)

    async def query_all(self, query: QueryLike, k: int | None = None,
                        filter: FilterLike = None, ef: int | None = None,
                        include_vectors: bool | None = None) -> list[Result]:
        return await _run(_query_all, self._snap().sync, query, k, filter, ef, include_vectors)


__all__: Sequence[str] = ("AsyncPartitionedStore", "PartitionedStore")
