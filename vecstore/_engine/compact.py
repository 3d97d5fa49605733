"""Compaction: reclaim what no retained version (and no open snapshot) sees.

Two phases, both run by the writer between ordinary batches:

1. *segments*: sealed segments holding rows that died at or before the
   floor are rebuilt without them (ordinary segment jobs, in worker
   threads); growing segments are filtered in memory;
2. *purge*: in LMDB, in transactions of at most ``limit`` keys each, delete
   those rows (record, vector, died mark) once no segment references them,
   history entries below the floor, change-feed entries at or below it,
   version infos and tags below it, and
   record the floor.  A kill between transactions leaves a consistent store
   that the next ``compact()`` finishes.
"""

from __future__ import annotations

from collections.abc import Callable

import lmdb
import numpy as np

from .._metaindex.columns import ColumnBuilder
from .._metaindex.indexing import row_index_keys
from .._metaindex.textstore import purge_row
from .._segments.segment import GrowingSegment, SealedSegment
from .._storage.env import Storage
from .._storage.keys import k64, split_hist_key, u64
from .._storage.records import decode_row
from .._storage.vectors import VectorTable
from .changelog import purge_step
from .jobs import SegmentJob
from .partitions import Partitions
from .state import PartMem

# (partition, sources, growing rows, threads, floor) -> a job leaving out what died <= floor
JobFor = Callable[[PartMem, list[SealedSegment], int, int, "int | None"], SegmentJob]

REBUILD_SHARE = 0.2


def plan(mem: Partitions, floor: int, threads: int, job_for: JobFor
         ) -> tuple[list[SegmentJob], list[int]]:
    """Phase 1: jobs rebuilding sealed segments without their reclaimable
    rows (``job_for``: :meth:`.sealing.SegmentJobs.job`), and growing
    segments filtered in place; returns the jobs and the partitions whose
    growing segment changed (to publish)."""
    jobs = []
    changed = []
    for pm in mem.parts.values():
        if pm.job is not None:
            continue
        # Rebuild a segment only when enough of it is reclaimable; below that
        # its dead rows stay (invisible) until a later compact() or merge.
        dead = [s for s in pm.sealed
                if s.n_dead and int((s.died <= floor).sum()) >= REBUILD_SHARE * s.n]
        if dead:
            pm.job = job_for(pm, dead, 0, threads, floor)
            jobs.append(pm.job)
        g = pm.growing
        if g is not None and g.n_dead and bool((g.died[: g.n] <= floor).any()):
            keep = np.flatnonzero(g.died[: g.n] > floor)
            fresh = GrowingSegment(pm.pid, g.dim, g.distance, max(1024, len(keep)))
            fresh.append(g.rowids[keep], g.born[keep], g.vecs[keep])
            fresh.died[: len(keep)] = g.died[keep]
            fresh.n_dead = int((fresh.died[: fresh.n] != np.iinfo(np.int64).max).sum())
            fresh.cols = {p: ColumnBuilder.of(c) for p, c in g.columns(keep).items()}
            pm.growing = fresh
            changed.append(pm.pid)
    return jobs, changed


class Purge:
    """Resumable LMDB clean-up below ``floor``; call :meth:`step` until it
    returns False.  Each step is one write transaction (writer only)."""

    def __init__(self, storage: Storage, mem: Partitions, floor: int, limit: int = 5000) -> None:
        self.storage = storage
        self.mem = mem
        self.floor = floor
        self.limit = limit
        self.phase = 0
        self.resume: bytes | None = None
        self.rows_deleted = 0
        self.hist_deleted = 0

    def step(self) -> bool:
        st = self.storage
        if self.phase == 0:
            more = st.write(self._rows)
        elif self.phase == 1:
            more = st.write(self._hist)
        elif self.phase == 2:  # the change feed's entries at or below the floor
            more = st.write(lambda txn: purge_step(st, txn, self.floor, self.limit))
        else:
            st.write(self._versions)
            return False
        if not more:
            self.phase += 1
            self.resume = None
        return True

    def _rows(self, txn: lmdb.Transaction) -> bool:
        st = self.storage
        ref = self.mem.referenced_rowids()
        victims = []
        with txn.cursor(db=st.db("died")) as cur:
            if not (cur.set_range(self.resume) if self.resume else cur.first()):
                return False
            for key, val in cur:
                if len(victims) >= self.limit:
                    self.resume = bytes(key)
                    break
                if u64(val) <= self.floor:
                    victims.append(u64(key))
            else:
                self.resume = None
        arr = np.asarray(victims, np.int64)
        if ref.size and arr.size:
            arr = arr[~np.isin(arr, ref)]
        defs = list(self.mem.indexes.values())
        by_pid: dict[int, list[int]] = {}
        for rowid in arr.tolist():
            key = k64(rowid)
            raw = txn.get(key, db=st.db("rows"))
            if raw is not None:
                pid, _rid, meta = decode_row(raw)
                by_pid.setdefault(pid, []).append(rowid)
                for ik in row_index_keys(defs, meta, rowid) if defs else ():
                    txn.delete(ik, db=st.db("ix"))
                purge_row(st, txn, defs, meta, rowid)  # text postings, sparse vector
            else:
                txn.delete(key, db=st.db("vecs"))
            txn.delete(key, db=st.db("rows"))
            txn.delete(key, db=st.db("died"))
        vectors = VectorTable(st, txn, self.mem.dim)
        for pid, rowids in by_pid.items():
            vectors.remove(pid, rowids)
        self.rows_deleted += int(arr.size)
        return self.resume is not None

    def _hist(self, txn: lmdb.Transaction) -> bool:
        """Per id, drop entries below the floor except the state at the
        floor (and that too when it is a deletion)."""
        st = self.storage
        doomed: list[bytes] = []
        seen = 0
        group: list[tuple[bytes, int, bool]] = []
        current: tuple[int, str] | None = None
        stop_key: bytes | None = None

        def settle() -> None:
            old = [g for g in group if g[1] <= self.floor]
            if not old:
                return
            doomed.extend(k for k, _v, _t in old[:-1])
            if old[-1][2]:  # deleted at the floor: nothing to remember
                doomed.append(old[-1][0])

        with txn.cursor(db=st.db("hist")) as cur:
            if not (cur.set_range(self.resume) if self.resume else cur.first()):
                return False
            for key, val in cur:
                pid, rid, ver = split_hist_key(key)
                if (pid, rid) != current:
                    settle()
                    group = []
                    current = (pid, rid)
                    if seen >= self.limit:
                        stop_key = bytes(key)
                        break
                group.append((bytes(key), ver, not val))
                seen += 1
            else:
                settle()
        for key in doomed:
            txn.delete(key, db=st.db("hist"))
        self.hist_deleted += len(doomed)
        self.resume = stop_key
        return stop_key is not None

    def _versions(self, txn: lmdb.Transaction) -> None:
        st = self.storage
        with txn.cursor(db=st.db("versions")) as cur:
            while cur.first() and u64(cur.key()) < self.floor:
                cur.delete()
        with txn.cursor(db=st.db("tags")) as cur:
            for key, val in list(cur):
                if u64(val) < self.floor:
                    txn.delete(key, db=st.db("tags"))
        if self.floor > st.get_meta(txn, "floor", 0):
            st.put_meta(txn, "floor", self.floor)
