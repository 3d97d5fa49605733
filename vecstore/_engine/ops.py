"""Write requests: what each write call does inside the writer's
transaction (:class:`.txn.TxnCtx`).  They are built and validated in the
caller's thread (:mod:`.requests`); ``apply`` returns what the caller gets
back.  (Rollback, tags and retention are in :mod:`.versions`.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cbor2
import numpy as np

from .._metaindex.indexing import create_index, drop_index
from .._segments.matching import matching_rows
from .._storage.keys import k64
from .._storage.records import Reader, decode_row
from .txn import Effects, TxnCtx, WriteRequest

__all__ = ["CreateIndex", "Delete", "DeleteWhere", "DropIndex", "DropPartition", "Effects",
           "PutMeta", "TxnCtx", "Upsert", "WriteRequest"]


@dataclass
class Upsert(WriteRequest):
    partition: str
    ids: list[str]
    vectors: np.ndarray  # float32 (n, dim), validated
    metas: list[bytes]  # CBOR, validated
    message: str | None = None
    # meta keys written in the same transaction (e.g. an import's progress)
    meta_puts: dict[str, Any] | None = None
    dicts: list[dict[str, Any]] | None = None  # the metadata, decoded
    # per record: (indices, weights) of its sparse vector, or None (validated)
    sparse: list[tuple[np.ndarray, np.ndarray] | None] | None = None

    def apply(self, ctx: TxnCtx) -> Any:
        pid = ctx.pid_for(self.partition, create=True)
        assert pid is not None
        ctx.upsert_rows(pid, self.ids, self.vectors, self.metas, self.dicts, self.sparse)
        for key, value in (self.meta_puts or {}).items():
            ctx.storage.put_meta(ctx.txn, key, value)
        return ctx.version


@dataclass
class PutMeta(WriteRequest):
    """Write meta keys only (no version), e.g. progress of a batch whose
    records were all rejected."""

    puts: dict[str, Any]
    message: str | None = None
    partition: str = "default"

    def apply(self, ctx: TxnCtx) -> Any:
        ctx.abandon()
        for key, value in self.puts.items():
            ctx.storage.put_meta(ctx.txn, key, value)
        return ctx.version


@dataclass
class Delete(WriteRequest):
    partition: str
    ids: list[str]
    message: str | None = None
    single: bool = False  # delete(id) answers "existed?" rather than a version

    def apply(self, ctx: TxnCtx) -> Any:
        pid = ctx.pid_for(self.partition, create=False)
        n = 0 if pid is None else ctx.delete_ids(pid, self.ids)
        if n == 0:
            ctx.abandon()
        return n > 0 if self.single else ctx.version


@dataclass
class DropPartition(WriteRequest):
    partition: str
    message: str | None = None

    def apply(self, ctx: TxnCtx) -> Any:
        pid = ctx.pid_for(self.partition, create=False)
        if pid is None:
            return False
        ids = [rid for rid, _v, _r in Reader(ctx.storage, ctx.txn).live_ids(pid, 2**63 - 1)]
        ctx.delete_ids(pid, ids)
        ctx.txn.put(self.partition.encode(), cbor2.dumps({"pid": pid, "live": False}),
                    db=ctx.db_parts)
        ctx.dropped.add(self.partition)
        ctx.ops += 1
        return True


@dataclass
class DeleteWhere(WriteRequest):
    """Delete every record of a partition matching a filter, evaluated
    inside the writer's transaction (so it sees every earlier write)."""

    partition: str
    filter: Any  # a parsed Filter
    message: str | None = None
    ids: list[str] = field(default_factory=list)  # deleted too, in the same version

    def apply(self, ctx: TxnCtx) -> Any:
        pid = ctx.pid_for(self.partition, create=False)
        if pid is None:
            ctx.abandon()
            return ctx.version
        flt = self.filter
        doomed: list[str] = list(self.ids)
        seen: set[str] = set(self.ids)
        for rid, rowid in self._published_matches(ctx):
            if rid in seen:
                continue
            seen.add(rid)
            cur = ctx.find(pid, rid)
            if cur == rowid or (cur is not None and flt.matches(
                    decode_row(ctx.txn.get(k64(cur), db=ctx.db_rows))[2], id=rid)):
                doomed.append(rid)
        by_id = flt.uses_ids  # HAS_ID: the id is needed before the metadata test
        for eff in [*ctx.done, ctx.cur]:  # rows this batch added
            for apid, r0, _mat, dicts in (eff.adds if eff is not None else []):
                if apid != pid:
                    continue
                for j, d in enumerate(dicts or []):
                    rid = decode_row(ctx.txn.get(k64(r0 + j), db=ctx.db_rows))[1] \
                        if by_id else None
                    if flt.matches(d, id=rid):
                        if rid is None:
                            rid = decode_row(ctx.txn.get(k64(r0 + j), db=ctx.db_rows))[1]
                        if rid not in seen and ctx.find(pid, rid) == r0 + j:
                            seen.add(rid)
                            doomed.append(rid)
        n = ctx.delete_ids(pid, doomed)
        if n == 0:
            ctx.abandon()
        return ctx.version

    def _published_matches(self, ctx: TxnCtx) -> list[tuple[str, int]]:
        """(id, rowid) of the partition's rows matching the filter in the
        latest published state (read in a transaction of their own)."""
        state = ctx.state
        ps = state.parts.get(self.partition)
        if ps is None:
            return []
        with ctx.storage.read() as txn:
            return matching_rows(ps.segments(), self.filter, state.version, state.indexes,
                                 Reader(ctx.storage, txn))


@dataclass
class CreateIndex(WriteRequest):
    field: str
    kind: Any  # a metadata kind's name, "text" or a TextIndex
    message: str | None = None
    partition: str = "default"

    def apply(self, ctx: TxnCtx) -> Any:
        ctx.abandon()  # an index is not data: no version
        change = create_index(ctx.storage, ctx.txn, self.field, self.kind)
        if change is not None:
            ctx.index_changes.append((change, self.field))
        return change == "create"


@dataclass
class DropIndex(WriteRequest):
    field: str
    message: str | None = None
    partition: str = "default"

    def apply(self, ctx: TxnCtx) -> Any:
        ctx.abandon()
        if not drop_index(ctx.storage, ctx.txn, self.field):
            return False
        ctx.index_changes.append(("drop", self.field))
        return True
