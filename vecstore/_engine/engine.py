"""The engine: owns the storage and the in-memory segments.

Every mutating method (``commit``, ``finish_job``) is called by the writer
only, one at a time, on a worker thread (LMDB write transactions must begin
and end on one thread).  Readers only ever touch ``self.state``, an
immutable :class:`State` swapped atomically after each change.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import cbor2
import lmdb
import numpy as np

from wal import CorruptEntryError, WriteAheadLog

from .compact import plan as compact_plan
from .._errors import ConfigMismatchError, CorruptionError, VecStoreError
from .._metaindex.columns import ColumnBuilder, encode_values, lookup_path
from .._metaindex.indexing import IndexDef, attach_columns, load_defs
from .._index import DEFAULT_KIND, entry_params, kind_named
from .jobs import SegmentJob, write_index_file
from .recovery import load
from .._storage.memory import release_after_load
from .._metrics.recorder import new_recorder, rows_by_partition, timed_write
from .ops import Effects, TxnCtx, WriteRequest
from .._storage.records import Reader
from .sealing import SegmentJobs
from .._segments.segment import GrowingSegment, prepare
from .state import PartMem, State
from .._storage.env import Storage
from .._storage.keys import k64
from .._types import Config, Distance
from .versions import floor_version

log = logging.getLogger("vecstore")


class Engine(SegmentJobs):
    def __init__(self, path: str, config: Config | None, *, read_only: bool) -> None:
        if config is not None and config.index_kind is not None:
            try:
                kind_named(config.index_kind)
            except CorruptionError:
                raise ConfigMismatchError(
                    f"unknown index kind {config.index_kind!r} in Config.index_kind") from None
        durability = config.durability if config is not None else stored_durability(path)
        self.storage = Storage(path, read_only=read_only, sync=durability == "sync")
        try:
            self.read_only = read_only
            self.wal = WriteAheadLog(self.storage.env, b"wal")
            self._init_config(config)
            self._holds = 0  # backups in progress: segment files must stay
            self._deferred: list[str] = []
            self._files_lock = threading.Lock()
            self._pins: dict[int, int] = {}  # version -> open snapshots pinned there
            self.commits = 0  # write transactions committed
            self.write_calls = 0  # write requests answered
            self.metrics = new_recorder(read_only)  # since open: store.metrics()
            self.parts: dict[str, PartMem] = {}
            self.by_pid: dict[int, PartMem] = {}
            self.indexes: dict[tuple[str, ...], IndexDef] = {}
            self._reload()
            if not read_only:
                self._collect_garbage()
        except BaseException:
            self.storage.close()
            raise

    # -- configuration --------------------------------------------------------

    def _init_config(self, given: Config | None) -> None:
        st = self.storage
        with st.read() as txn:
            stored = st.get_meta(txn, "config")
        if stored is None:
            if self.read_only:
                stored = Config().to_dict()
            else:
                stored = (given or Config()).to_dict()
                stored["index_kind"] = stored.get("index_kind") or DEFAULT_KIND

                def init(txn: lmdb.Transaction) -> None:
                    st.put_meta(txn, "config", stored)
                    st.put_meta(txn, "format", 1)

                st.write(init)
                write_durability(st.path, stored["durability"])
        base = Config.from_dict(stored)
        if given is not None:
            if given.dim is not None and base.dim is not None and given.dim != base.dim:
                raise ConfigMismatchError(
                    f"store {st.path!r} holds {base.dim}-d vectors; opened with dim={given.dim}")
            if Distance.parse(given.distance) is not Distance.parse(base.distance):
                raise ConfigMismatchError(
                    f"store {st.path!r} uses distance {Distance.parse(base.distance).value!r}; "
                    f"opened with {Distance.parse(given.distance).value!r}")
            stored_kind = stored.get("index_kind") or DEFAULT_KIND
            if given.index_kind is not None and given.index_kind != stored_kind:
                raise ConfigMismatchError(
                    f"store {st.path!r} builds {stored_kind!r} indexes; opened with "
                    f"index_kind={given.index_kind!r} (open it with index_kind=None to use "
                    f"the stored kind)")
            runtime = given.to_dict()
            runtime["dim"] = base.dim if base.dim is not None else given.dim
            runtime["index_kind"] = stored_kind
            base = Config.from_dict(runtime)
        self.stored_config = dict(stored)
        if base.index_kind is None:  # stores from before index kinds
            base = dataclasses.replace(base, index_kind=DEFAULT_KIND)
        self.config = base
        self.distance = Distance.parse(base.distance)
        self.dim: int | None = base.dim if stored.get("dim") is not None else None
        if self.dim is None and given is not None and given.dim is not None and not self.read_only:
            self.dim = given.dim
            self.stored_config["dim"] = given.dim
            st.write(lambda txn: st.put_meta(txn, "config", self.stored_config))

    # -- loading ----------------------------------------------------------------

    def _reload(self) -> None:
        st = self.storage
        reuse = {seg.seg_id: seg.index for pm in self.parts.values() for seg in pm.sealed}
        with st.read() as txn:
            self.version = st.get_meta(txn, "version", 0)
            self.next_rowid = st.get_meta(txn, "next_rowid", 0)
            self.next_pid = st.get_meta(txn, "next_pid", 1)
            self.next_seg = st.get_meta(txn, "next_seg", 1)
            cfg = st.get_meta(txn, "config")
            if cfg and cfg.get("dim") is not None:
                self.dim = cfg["dim"]
            self.indexes = load_defs(st, txn, {})
            try:
                loaded = load(self, txn, reuse)
            except CorruptEntryError as exc:
                raise CorruptionError(
                    f"write-ahead log of {st.path!r} is damaged at entry {exc.seq}: "
                    f"{exc.reason}; `vecstore check` reports the extent") from exc
        self.last_seq = loaded.last_seq
        self.parts = loaded.parts
        self.by_pid = {pm.pid: pm for pm in self.parts.values()}
        if self.indexes:
            with st.read() as txn:
                attach_columns(self, txn, list(self.indexes))
        if loaded.repaired and not self.read_only:
            self._save_repairs(loaded.repaired)
        self.state = self._make_state()
        if loaded.vectors_read:
            release_after_load(os.path.join(st.path, "data.mdb"))

    def _save_repairs(self, repaired: list[tuple[int, dict[str, Any], Any]]) -> None:
        st = self.storage
        for seg_id, entry, index in repaired:
            entry = dict(entry, kind=index.kind, params=entry_params(entry), **index.manifest())
            entry["crc"] = write_index_file(index, st.segment_path(entry["file"]))
            st.write(lambda txn, e=entry, s=seg_id: txn.put(k64(s), cbor2.dumps(e),
                                                             db=st.db("segs")))

    def _collect_garbage(self) -> None:
        keep = {seg.file for pm in self.parts.values() for seg in pm.sealed}
        folder = os.path.join(self.storage.path, "segments")
        for name in os.listdir(folder):
            if name not in keep:
                try:
                    os.remove(os.path.join(folder, name))
                except OSError:
                    pass

    def refresh(self) -> None:
        """Pick up what another process committed (read-only stores)."""
        with self.storage.read() as txn:
            if self.storage.get_meta(txn, "version", 0) == self.version and \
                    self.wal.last_seq(txn=txn) == self.last_seq:
                return
        if self.storage.db("parts") is None:
            self.storage.open_handles(create=False)
        self._reload()

    # -- publishing ---------------------------------------------------------------

    def _make_state(self, changed: Sequence[int] | None = None) -> State:
        old = getattr(self, "state", None)
        if old is None or changed is None:
            parts = {pm.name: pm.state() for pm in self.parts.values()}
        else:
            parts = dict(old.parts)
            for pid in changed:
                pm = self.by_pid[pid]
                parts[pm.name] = pm.state()
        return State(self.version, parts, self.dim, self.distance, dict(self.indexes))

    # -- writing --------------------------------------------------------------------

    def commit(self, reqs: list[WriteRequest]) -> list[Any]:
        """Apply ``reqs`` in one transaction; one result (or exception) each."""
        results: list[Any] = [None] * len(reqs)
        todo = list(range(len(reqs)))
        while todo:
            failed: list[int] = []

            def body(txn: lmdb.Transaction) -> TxnCtx:
                ctx = TxnCtx(self, txn)
                for i in todo:
                    ctx.begin()
                    try:
                        results[i] = reqs[i].apply(ctx)
                    except (lmdb.Error, OSError):
                        raise  # storage-level: map growth, disk full... (Storage.write)
                    except Exception as exc:  # this request alone fails; never the writer
                        if not isinstance(exc, VecStoreError):
                            log.exception("write request %r failed unexpectedly", type(reqs[i]))
                        results[i] = exc
                        failed.append(i)
                        raise _Retry() from exc
                    if ctx.cur is not None:
                        if ctx.ops or reqs[i].always_version:
                            ctx.end(reqs[i].message)
                        else:
                            ctx.abandon()
                ctx.finish()
                return ctx

            try:
                ctx, t_txn, t_commit = timed_write(self.storage.write, body)
            except _Retry:
                todo = [i for i in todo if i not in failed]
                continue
            except VecStoreError as exc:
                for i in todo:
                    results[i] = exc
                return results
            self._adopt(ctx)
            self.metrics.committed(len(todo), rows_by_partition(ctx.done, self.by_pid),
                                   t_txn, t_commit)
            break
        self.write_calls += len(reqs)
        return results

    def _adopt(self, ctx: TxnCtx) -> None:
        """The transaction committed: bring memory in line with it."""
        self.commits += 1
        self.version = ctx.version
        self.next_rowid = ctx.next_rowid
        self.next_pid = ctx.next_pid
        if ctx.dim != self.dim:
            self.dim = ctx.dim
            self.stored_config["dim"] = ctx.dim
        for name, pid in ctx.new_parts.items():
            pm = PartMem(pid, name, True)
            self.parts[name] = self.by_pid[pid] = pm
        for name in ctx.revived:
            self.parts[name].live = True
        for name in ctx.dropped:
            self.parts[name].live = False
        touched: set[int] = {self.parts[n].pid for n in (*ctx.new_parts, *ctx.revived, *ctx.dropped)}
        self._apply(ctx.done, touched)
        if ctx.done:
            self.last_seq = ctx.done[-1].seq
        if ctx.index_changes:
            self._adopt_indexes()
            touched = set(self.by_pid)
        self.state = self._make_state(sorted(touched))

    def _adopt_indexes(self) -> None:
        """Indexes were created or dropped: rebuild the affected columns."""
        with self.storage.read() as txn:
            new = load_defs(self.storage, txn, self.indexes)
            gone = set(self.indexes) - set(new)
            fresh = [p for p, ix in new.items()
                     if p not in self.indexes or self.indexes[p].fid != ix.fid]
            self.indexes = new
            for pm in self.parts.values():
                for seg in pm.sealed:
                    for p in gone:
                        seg.cols.pop(p, None)
                if pm.growing is not None:
                    for p in gone:
                        pm.growing.cols.pop(p, None)
            attach_columns(self, txn, fresh)

    def _apply(self, effs: list[Effects], touched: set[int]) -> None:
        """Memory side of a committed batch: every add (one append per
        partition), then every kill (a kill may hit a row the batch added)."""
        adds: dict[int, list[tuple[int, int, np.ndarray, list[dict[str, Any]], int]]] = {}
        for eff in effs:
            for pid, r0, mat, dicts in eff.adds:
                adds.setdefault(pid, []).append((eff.version, r0, mat, dicts, eff.seq))
        for pid, items in adds.items():
            pm = self.by_pid[pid]
            if pm.growing is None:
                assert self.dim is not None
                pm.growing = GrowingSegment(pid, self.dim, self.distance)
                pm.growing.cols = {p: ColumnBuilder() for p in self.indexes}
            mat = items[0][2] if len(items) == 1 else np.concatenate([it[2] for it in items])
            rowids = np.concatenate([np.arange(r0, r0 + m.shape[0], dtype=np.int64)
                                     for _v, r0, m, _d, _s in items])
            born = np.concatenate([np.full(m.shape[0], v, np.int64)
                                   for v, _r, m, _d, _s in items])
            if self.indexes:
                dicts = [d for it in items for d in it[3]]
                for path, ix in self.indexes.items():
                    col = encode_values((lookup_path(d, path) for d in dicts), ix.fd)
                    pm.growing.cols[path].append(col)
            pm.growing.append(rowids, born, prepare(mat, self.distance))
            for _v, r0, m, _d, seq in items:
                pm.adds.append((r0, r0 + m.shape[0] - 1, seq))
            touched.add(pid)
        for eff in effs:
            kills: dict[int, list[int]] = {}
            for pid, rowid in eff.kills:
                kills.setdefault(pid, []).append(rowid)
            for pid, rowids_ in kills.items():
                self._kill(self.by_pid[pid], np.asarray(rowids_, np.int64), eff.version)
                touched.add(pid)

    def _kill(self, pm: PartMem, rowids: np.ndarray, version: int) -> None:
        g = pm.growing
        if g is not None and g.n:
            sel = rowids > pm.upto
            if sel.any():
                pos = np.searchsorted(g.rowids[: g.n], rowids[sel])
                g.kill(pos, version)
                rowids = rowids[~sel]
        for seg in pm.sealed:
            if not rowids.size:
                break
            pos = np.minimum(np.searchsorted(seg.rowids, rowids), seg.n - 1)
            hit = seg.rowids[pos] == rowids
            if hit.any():
                seg.kill(pos[hit], version)
                rowids = rowids[~hit]
        if rowids.size:
            log.error("rows %s of partition %r not found in memory", rowids[:5], pm.name)

    def live_ids_in(self, txn: lmdb.Transaction, pid: int) -> Iterator[tuple[str, int, int]]:
        return Reader(self.storage, txn).live_ids(pid, 2**63 - 1)

    # -- info ------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A value from the ``meta`` table (as last committed)."""
        with self.storage.read() as txn:
            return self.storage.get_meta(txn, key, default)

    # -- versions ----------------------------------------------------------------

    def pin(self, version: int) -> None:
        with self._files_lock:
            self._pins[version] = self._pins.get(version, 0) + 1

    def unpin(self, version: int) -> None:
        with self._files_lock:
            n = self._pins.get(version, 0) - 1
            if n > 0:
                self._pins[version] = n
            else:
                self._pins.pop(version, None)

    def compaction_floor(self) -> int:
        """Rows that died at or before this version are invisible to every
        retained version and to every open snapshot."""
        with self.storage.read() as txn:
            floor = floor_version(self.storage, txn)
        with self._files_lock:
            pinned = min(self._pins, default=floor)
        return min(floor, pinned)

    def plan_compaction(self, floor: int, threads: int) -> list[SegmentJob]:
        return compact_plan(self, floor, threads)

    def optimized(self, below_rowid: int) -> bool:
        """Are all rows older than ``below_rowid`` in one segment per partition?"""
        for pm in self.parts.values():
            g = pm.growing
            if g is not None and g.n and int(g.rowids[0]) < below_rowid:
                return False
            if len(pm.sealed) > 1:
                return False
        return True

    def close(self) -> None:
        self.storage.close()


DURABILITY_FILE = "durability"


def stored_durability(path: str) -> str:
    """The durability the store was created with.  Kept in a one-word file
    beside LMDB because LMDB's sync flag must be chosen before it opens."""
    try:
        with open(os.path.join(path, DURABILITY_FILE)) as f:
            word = f.read().strip()
    except OSError:
        return "sync"
    return word if word in ("sync", "relaxed") else "sync"


def write_durability(path: str, word: str) -> None:
    tmp = os.path.join(path, DURABILITY_FILE + ".tmp")
    with open(tmp, "w") as f:
        f.write(word + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(path, DURABILITY_FILE))


class _Retry(Exception):
    """Abort the transaction and run the batch again without a failed request."""

