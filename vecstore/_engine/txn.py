"""The transaction context the writer applies write requests in.

The writer applies a whole group of requests (:mod:`.ops`) in one LMDB
transaction (group commit); each request becomes its own version.  The
memory-side effects (rows appended, rows ended) are collected and applied
(:class:`.partitions.Partitions`) only after the commit.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import cbor2
import lmdb
import numpy as np

from .._errors import DimensionMismatchError
from .._metaindex.indexing import IndexDef, ensure_sparse, load_defs, row_index_keys
from .._metaindex.text import SPARSE_FIELD, SPARSE_PATH
from .._metaindex.textstore import Sparse, as_items, index_text_rows, write_sparse
from .._storage.keys import chg_key, hist_key, k64
from .._storage.records import encode_row, lookup
from .._storage.vectors import VectorTable
from .partitions import Partitions
from .state import Effects, State

if TYPE_CHECKING:
    from wal import WriteAheadLog

    from .._storage.env import Storage


class TxnCtx:
    """State of one write transaction: counters advance tentatively and are
    adopted by the engine only once the transaction has committed.

    Given what the requests read: the storage and the log, the writer's
    partitions (``mem``: names, pids, index definitions, the dimension as
    committed), the published ``state`` (delete by filter evaluates against
    it), the stored config and the committed counters."""

    def __init__(self, txn: lmdb.Transaction, storage: Storage, wal: WriteAheadLog,
                 mem: Partitions, state: State, stored_config: dict[str, Any], *,
                 version: int, next_rowid: int, next_pid: int) -> None:
        self.txn = txn
        self.storage = st = storage
        self.wal = wal
        self.mem = mem
        self.state = state
        self.stored_config = stored_config
        self.db_rows = st.db("rows")
        self.db_hist, self.db_died = st.db("hist"), st.db("died")
        self.db_chg = st.db("chg")  # the change feed: hist's entries by version
        self.db_versions, self.db_parts = st.db("versions"), st.db("parts")
        self.hist_cur = txn.cursor(db=self.db_hist)
        self.version = version
        self.next_rowid = next_rowid
        self.next_pid = next_pid
        self.dim = mem.dim
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
        pm = self.mem.parts.get(name)
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

    def _index_defs(self) -> list[IndexDef]:
        defs = dict(self.mem.indexes)
        if self.index_changes:  # created or dropped earlier in this transaction
            defs = load_defs(self.storage, self.txn, defs)
        return list(defs.values())

    def upsert_rows(self, pid: int, ids: list[str], mat: np.ndarray, metas: list[bytes],
                    dicts: list[dict[str, Any]] | None = None,
                    sparse: list[Sparse | None] | None = None) -> None:
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
            txn.put(chg_key(v, pid, rid), key, db=self.db_chg)
        with txn.cursor(db=self.db_rows) as c:
            c.putmulti(rows, append=True)
        VectorTable(self.storage, txn, self.dim).write(pid, r0, mat)
        if sparse is not None and any(sv is not None for sv in sparse):
            if ensure_sparse(self.storage, txn):
                self.index_changes.append(("create", SPARSE_FIELD))
            write_sparse(self.storage, txn, r0, sparse)
            self.cur.terms[(r0, SPARSE_PATH)] = [as_items(sv) for sv in sparse]
        defs = self._index_defs()
        if dicts is None:
            dicts = [cbor2.loads(m) for m in metas] if defs else []
        if defs:
            keys = sorted(k for j, d in enumerate(dicts) for k in row_index_keys(defs, d, r0 + j))
            with txn.cursor(db=self.db_ix) as c:
                c.putmulti([(k, b"") for k in keys])
            for path, items in index_text_rows(self.storage, txn, defs, dicts, r0).items():
                self.cur.terms[(r0, path)] = items
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
            self.txn.put(chg_key(self.version, pid, rid), b"", db=self.db_chg)
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
            seqs = self.wal.append_many(self._entries, txn=self.txn)
            for eff, seq in zip(self.done, seqs):
                eff.seq = seq
        st = self.storage
        st.put_meta(self.txn, "version", self.version)
        st.put_meta(self.txn, "next_rowid", self.next_rowid)
        st.put_meta(self.txn, "next_pid", self.next_pid)
        if self.dim != self.mem.dim:
            cfg = dict(self.stored_config)
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
