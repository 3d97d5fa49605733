"""Segment jobs, the writer's half: planning seals and merges, and
publishing a built segment (manifest entry, packed vectors, WAL
truncation).  Building one is :class:`.jobs.SegmentJob`, in a worker thread.

Owned by the engine; every method but ``fetch_vectors`` runs on the writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import cbor2
import lmdb
import numpy as np

from .._index import kind_named
from .._metaindex.columns import concat_columns
from .._segments.segment import SealedSegment, prepare
from .._storage.files import remove_quietly
from .._storage.keys import k64
from .._storage.records import Reader
from .._storage.vectors import VectorTable
from .jobs import SegmentFiles, SegmentJob, segment_file_name
from .partitions import Partitions
from .state import PartMem

if TYPE_CHECKING:
    from wal import WriteAheadLog

    from .._metrics.recorder import Recorder
    from .._storage.env import Storage
    from .._types import Config

MAX_SEGMENTS = 8  # more sealed segments than this in a partition triggers a merge


class SegmentJobs:
    """Plans jobs over ``mem``'s partitions and publishes their results:
    records them in ``storage`` (truncating ``wal``), swaps them into
    ``mem``, then calls ``publish`` with the partitions changed.  Files of
    replaced segments go to ``files``."""

    def __init__(self, storage: Storage, wal: WriteAheadLog, config: Config, mem: Partitions,
                 files: SegmentFiles, metrics: Recorder,
                 publish: Callable[[list[int]], None]) -> None:
        self.storage = storage
        self.wal = wal
        self.config = config
        self.mem = mem
        self.files = files
        self.metrics = metrics
        self.publish = publish
        self.next_seg = 1  # set from the store at load

    def plan(self, force: bool = False, threads: int = 1) -> list[SegmentJob]:
        """Jobs to start now: seals of full growing segments and merges of
        partitions with too many segments (``force``: seal and merge all)."""
        jobs = []
        for pm in self.mem.parts.values():
            if pm.job is not None:
                continue
            grow = pm.growing.n if pm.growing is not None else 0
            if force:
                if grow == 0 and len(pm.sealed) <= 1:
                    continue
                job = self.job(pm, pm.sealed, grow, threads)
            elif grow >= self.config.seal_threshold:
                job = self.job(pm, [], grow, threads)
            elif len(pm.sealed) > MAX_SEGMENTS:
                small = sorted(pm.sealed, key=lambda s: s.n)[: MAX_SEGMENTS // 2]
                job = self.job(pm, small, 0, threads)
            else:
                continue
            pm.job = job
            jobs.append(job)
        return jobs

    def job(self, pm: PartMem, sources: list[SealedSegment], count: int,
             threads: int, floor: int | None = None) -> SegmentJob:
        """A job over ``sources`` plus the growing prefix of ``count`` rows;
        with ``floor``, rows no retained version can see (died <= floor)
        are left out."""
        seg_id = self.next_seg
        self.next_seg += 1
        g = pm.growing
        parts_r = [s.rowids for s in sources]
        parts_b = [s.born for s in sources]
        if count:
            assert g is not None
            parts_r.append(g.rowids[:count].copy())
            parts_b.append(g.born[:count].copy())
        rowids = np.concatenate(parts_r)
        born = np.concatenate(parts_b)
        order = None
        if len(parts_r) > 1 and (np.diff(rowids) < 0).any():
            order = np.argsort(rowids, kind="stable")
        if floor is not None:
            died = np.concatenate([s.died for s in sources] +
                                  ([g.died[:count]] if count and g is not None else []))
            keep = np.flatnonzero(died > floor)
            order = keep if order is None else order[np.isin(order, keep)]
        if order is not None:
            rowids, born = rowids[order], born[order]
        assert self.config.index_kind is not None  # the engine fills it in (engine.py)
        kind = kind_named(self.config.index_kind)
        return SegmentJob(
            pm.pid, seg_id, list(sources), count,
            g.vecs if (g is not None and count) else np.empty((0, self.mem.dim or 1), np.float32),
            rowids, born, order, self.storage.segment_path(segment_file_name(seg_id)),
            self.mem.distance, kind, kind.params(self.config), threads, self.fetch_vectors,
            cutoff=int(g.rowids[count - 1]) if (count and g is not None) else -1)

    def fetch_vectors(self, pid: int, rowids: np.ndarray) -> np.ndarray:
        """Rows' vectors as searched (any thread)."""
        dim = self.mem.dim
        assert dim is not None
        with self.storage.read() as txn:
            return prepare(Reader(self.storage, txn).vectors(pid, rowids, dim),
                           self.mem.distance)

    def finish(self, job: SegmentJob) -> None:
        """Record a built segment in the manifest and publish it."""
        mem = self.mem
        pm = mem.by_pid[job.pid]
        g = pm.growing
        died_parts = [s.died for s in job.sources]
        if job.count:
            assert g is not None
            died_parts.append(g.died[: job.count].copy())
        died = np.concatenate(died_parts)
        if job.order is not None:
            died = died[job.order]
        # TODO(issue #11 types): job.index is None for a segment left with no rows;
        # SealedSegment (_segments/segment.py, busy) should say AnnIndex | None.
        seg = SealedSegment(job.seg_id, pm.pid, job.index,  # type: ignore[arg-type]
                            job.rowids, job.born,
                            died.copy(), os.path.basename(job.path))
        for path in mem.indexes:
            cols = [s.cols[path] for s in job.sources]
            if job.count:
                assert g is not None
                cols.append(g.cols[path].view().take(np.arange(job.count)))
            col = concat_columns(cols)
            seg.cols[path] = col if job.order is None else col.take(job.order)
        entry = {"pid": pm.pid, "file": seg.file, "n": seg.n, "crc": job.crc,
                 "upto": max(pm.upto, job.cutoff), "dim": mem.dim, "kind": job.kind.name,
                 "params": job.params,
                 **(job.index.manifest() if job.index is not None else {})}
        cutoff = job.cutoff
        new_adds = [a for a in pm.adds if a[1] > cutoff] if job.count else list(pm.adds)
        old_first = {p.pid: p.first_growing_seq() for p in mem.parts.values()}
        old_first[pm.pid] = min((s for _a, _b, s in new_adds), default=None)
        firsts = [s for s in old_first.values() if s is not None]
        trunc = min(firsts) if firsts else mem.last_seq + 1
        st = self.storage

        def body(txn: lmdb.Transaction[bytes]) -> None:
            key = k64(seg.seg_id)
            if seg.n:
                txn.put(key, cbor2.dumps(entry), db=st.db("segs"))
                txn.put(key, seg.rowids.astype("<i8").tobytes() +
                        seg.born.astype("<i8").tobytes(), db=st.db("segrows"))
            if job.count:  # the sealed rows' vectors move into packed blocks
                assert g is not None
                VectorTable(st, txn, mem.dim).pack(pm.pid, g.rowids[: job.count])
            for src in job.sources:
                txn.delete(k64(src.seg_id), db=st.db("segs"))
                txn.delete(k64(src.seg_id), db=st.db("segrows"))
            st.put_meta(txn, "next_seg", max(self.next_seg, seg.seg_id + 1))
            st.put_meta(txn, f"upto:{pm.pid}", entry["upto"])
            self.wal.truncate(trunc, txn=txn)

        st.write(body)
        ids = {s.seg_id for s in job.sources}
        pm.sealed = [s for s in pm.sealed if s.seg_id not in ids] + ([seg] if seg.n else [])
        pm.sealed.sort(key=lambda s: int(s.rowids[0]))
        if job.count:
            assert g is not None
            pm.growing = g.tail_after(job.count)
            pm.upto = max(pm.upto, cutoff)
            pm.adds = new_adds
        pm.job = None
        self.publish([pm.pid])
        if seg.n:
            self.metrics.segment_built("merge" if job.sources else "seal", seg.n, job.seconds)
        self.files.remove([st.segment_path(src.file) for src in job.sources])

    def abandon(self, job: SegmentJob) -> None:
        self.mem.by_pid[job.pid].job = None
        remove_quietly(job.path)
