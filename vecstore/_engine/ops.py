"""Write requests and the transaction context the writer applies them in.

A request is validated in the caller's thread when it is built; the writer
applies a whole group of requests in one LMDB transaction (group commit).
Each request becomes its own version.  The memory-side effects (rows
appended, rows ended) are collected and applied only after the commit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cbor2
import lmdb
import numpy as np

from .._errors import DimensionMismatchError
from .._storage.records import encode_row, lookup
from .._storage.keys import hist_key, k64
from .._storage.vectors import VectorTable

if TYPE_CHECKING:
    from .engine import Engine


@dataclass
class Effects:
    """What one committed request does to the in-memory segments."""

    version: int
    seq: int = 0
    kind: str = "write"  # "write" or "rollback": how history() names the change
    kills: list[tuple[int, int]] = field(default_factory=list)  # (pid, rowid)
    # (pid, first rowid, vectors, metadata dicts)
    adds: list[tuple[int, int, np.ndarray, list[dict[str, Any]]]] = field(default_factory=list)


class TxnCtx:
    """State of one write transaction: counters advance tentatively and are
    adopted by the engine only once the transaction has committed."""

    def __init__(self, engine: Engine, txn: lmdb.Transaction) -> None:
        self.engine = engine
        self.txn = txn
        st = engine.storage
        self.db_rows = st.db("rows")
        self.db_hist, self.db_died = st.db("hist"), st.db("died")
        self.db_versions, self.db_parts = st.db("versions"), st.db("parts")
        self.hist_cur = txn.cursor(db=self.db_hist)
        self.version = engine.version
        self.next_rowid = engine.next_rowid
        self.next_pid = engine.next_pid
        self.dim = engine.dim
        self.new_parts: dict[str, int] = {}
        self.revived: set[str] = set()
        self.dropped: set[str] = set()
        self.done: list[Effects] = []
        self._entries: list[dict[str, Any]] = []
        self.index_changes: list[tuple[str, str]] = []  # ("create"|"drop"|"kind", field)
        self.db_ix = st.db("ix")
        self.cur: Effects | None = None
        self.ops = 0

    # -- partitions ---------------------------------------------------------

    def pid_for(self, name: str, create: bool) -> int | None:
        pm = self.engine.parts.get(name)
        if pm is not None:
            if create and not pm.live and name not in self.revived:
                self.revived.add(name)
                self.txn.put(name.encode(), cbor2.dumps({"pid": pm.pid, "live": True}),
                             db=self.db_parts)
            return pm.pid
        if name in self.new_parts:
            return self.new_parts[name]
        if not create:
            return None
        pid = self.next_pid
        self.next_pid += 1
        self.new_parts[name] = pid
        self.txn.put(name.encode(), cbor2.dumps({"pid": pid, "live": True}), db=self.db_parts)
        return pid

    # -- per request -----------------------------------------------------------

    def begin(self) -> Effects:
        self.version += 1
        self.ops = 0
        self.cur = Effects(self.version)
        return self.cur

    def abandon(self) -> None:
        """The current request changed nothing: it creates no version."""
        self.version -= 1
        self.cur = None

    def find(self, pid: int, rid: str) -> int | None:
        hit = lookup(self.hist_cur, pid, rid)
        return None if hit is None else hit[1]

    def kill(self, pid: int, rowid: int) -> None:
        assert self.cur is not None
        self.txn.put(k64(rowid), k64(self.version), db=self.db_died)
        self.cur.kills.append((pid, rowid))

    def _index_defs(self) -> list[Any]:
        defs = dict(self.engine.indexes)
        if self.index_changes:  # created or dropped earlier in this transaction
            from .._metaindex.indexing import load_defs

            defs = load_defs(self.engine.storage, self.txn, defs)
        return list(defs.values())

    def upsert_rows(self, pid: int, ids: list[str], mat: np.ndarray, metas: list[bytes],
                    dicts: list[dict[str, Any]] | None = None) -> None:
        assert self.cur is not None
        if self.dim is None:
            self.dim = int(mat.shape[1])
        elif mat.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"vector has {mat.shape[1]} dimensions; this store has {self.dim}")
        txn, v = self.txn, self.version
        r0 = self.next_rowid
        self.next_rowid += len(ids)
        rows = []
        for j, rid in enumerate(ids):
            old = self.find(pid, rid)
            if old is not None:
                self.kill(pid, old)
            key = k64(r0 + j)
            rows.append((key, encode_row(pid, rid, metas[j])))
            txn.put(hist_key(pid, rid, v), key, db=self.db_hist)
        with txn.cursor(db=self.db_rows) as c:
            c.putmulti(rows, append=True)
        VectorTable(self.engine.storage, txn, self.dim).write(pid, r0, mat)
        defs = self._index_defs()
        if dicts is None:
            dicts = [cbor2.loads(m) for m in metas] if defs else []
        if defs:
            from .._metaindex.indexing import row_index_keys

            keys = sorted(k for j, d in enumerate(dicts) for k in row_index_keys(defs, d, r0 + j))
            with txn.cursor(db=self.db_ix) as c:
                c.putmulti([(k, b"") for k in keys])
        self.cur.adds.append((pid, r0, mat, dicts))
        self.ops += len(ids)

    def delete_ids(self, pid: int, ids: list[str]) -> int:
        n = 0
        for rid in ids:
            old = self.find(pid, rid)
            if old is None:
                continue
            self.kill(pid, old)
            self.txn.put(hist_key(pid, rid, self.version), b"", db=self.db_hist)
            n += 1
        self.ops += n
        return n

    def end(self, message: str | None) -> None:
        """Record the version and its WAL entry."""
        eff = self.cur
        assert eff is not None
        ts = time.time()
        info = {"t": ts, "m": message, "ops": self.ops, "k": eff.kind}
        self.txn.put(k64(eff.version), cbor2.dumps(info), db=self.db_versions)
        entry: dict[str, Any] = {
            "v": eff.version,
            "t": ts,
            "a": [[pid, r0, int(mat.shape[0])] for pid, r0, mat, _d in eff.adds],
            "d": [rowid for _pid, rowid in eff.kills],
        }
        self._entries.append(entry)  # appended to the WAL together in finish()
        self.done.append(eff)
        self.cur = None

    def finish(self) -> None:
        if self._entries:
            seqs = self.engine.wal.append_many(self._entries, txn=self.txn)
            for eff, seq in zip(self.done, seqs):
                eff.seq = seq
        st = self.engine.storage
        st.put_meta(self.txn, "version", self.version)
        st.put_meta(self.txn, "next_rowid", self.next_rowid)
        st.put_meta(self.txn, "next_pid", self.next_pid)
        if self.dim != self.engine.dim:
            cfg = dict(self.engine.stored_config)
            cfg["dim"] = self.dim
            st.put_meta(self.txn, "config", cfg)
        self.hist_cur.close()


class WriteRequest:
    """Base class: ``apply`` runs inside the writer's transaction and returns
    the value the caller gets back."""

    message: str | None
    partition: str
    always_version = False  # a version even when nothing changed (rollback)

    def apply(self, ctx: TxnCtx) -> Any:
        raise NotImplementedError


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

    def apply(self, ctx: TxnCtx) -> Any:
        pid = ctx.pid_for(self.partition, create=True)
        assert pid is not None
        ctx.upsert_rows(pid, self.ids, self.vectors, self.metas, self.dicts)
        for key, value in (self.meta_puts or {}).items():
            ctx.engine.storage.put_meta(ctx.txn, key, value)
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
            ctx.engine.storage.put_meta(ctx.txn, key, value)
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
        ids = [rid for rid, _v, _r in ctx.engine.live_ids_in(ctx.txn, pid)]
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
        from .._storage.records import decode_row
        from .._query.snapshot import Snapshot

        pid = ctx.pid_for(self.partition, create=False)
        if pid is None:
            ctx.abandon()
            return ctx.version
        flt = self.filter
        eng = ctx.engine
        doomed: list[str] = list(self.ids)
        seen: set[str] = set(self.ids)
        for rid, rowid in Snapshot(eng, eng.state, None, self.partition)._matching_rows(flt):
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
