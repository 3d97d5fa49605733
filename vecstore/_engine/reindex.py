"""``store.reindex(...)``: every sealed segment built anew with other index
settings (kind, quantization, M, ef_construction), published at once.

The writer (``Writer.reindex``) pauses threshold seals and merges, plans
one job per sealed segment whose kind or parameters differ (:meth:`Reindex.plan`),
builds them in worker threads while writes and reads go on (old segments
serve meanwhile), then calls :meth:`Reindex.publish`: ONE LMDB transaction
replaces every rebuilt segment's manifest entry and stores the new settings
in the config, so new seals use them from then on.  A kill before that
transaction leaves the old index and the old settings (the new files are
garbage, removed at open); after it, the new index and the new settings.
Old files go once no backup holds them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import cbor2
import lmdb

from .._index import kind_named
from .._metaindex.columns import concat_columns
from .._segments.segment import SealedSegment
from .._storage.keys import k64
from . import settings
from .jobs import SegmentJob

if TYPE_CHECKING:
    from .engine import Engine


class Reindex:
    """One reindex to ``changes`` (a subset of ``settings.FIELDS``)."""

    def __init__(self, engine: Engine, changes: Mapping[str, Any]) -> None:
        self.engine = engine
        self.target = settings.resolve(engine.storage.path, engine.stored_config, changes)
        self.config = dataclasses.replace(engine.config, **self.target)
        self.kind = kind_named(self.config.index_kind or "")
        self.params = self.kind.params(self.config)
        self.jobs: list[SegmentJob] = []
        self.published = False  # the swap committed: its files are the store's now

    def plan(self, threads: int) -> list[SegmentJob]:
        """Jobs for the sealed segments not yet built with the target
        settings (writer; threshold seals and merges are paused)."""
        planned = {id(j.sources[0]) for j in self.jobs}
        jobs = []
        for pm in self.engine.mem.parts.values():
            for seg in pm.sealed:
                if id(seg) in planned or (seg.index.kind == self.kind.name
                                          and seg.index.params == self.params):
                    continue
                job = self.engine.jobs.job(pm, [seg], 0, threads)
                job.kind, job.params = self.kind, self.params
                jobs.append(job)
        self.jobs.extend(jobs)
        return jobs

    def publish(self) -> None:
        """Swap every rebuilt segment in and store the settings, in one
        transaction; publish the new state (writer)."""
        eng = self.engine
        st, mem = eng.storage, eng.mem
        swaps = []  # (partition, old segment, new segment, manifest entry)
        for job in self.jobs:
            assert job.index is not None
            src = job.sources[0]
            pm = mem.by_pid[job.pid]
            assert any(s is src for s in pm.sealed), "a reindexed segment was replaced"
            seg = SealedSegment(job.seg_id, pm.pid, job.index, src.rowids, src.born,
                                src.died.copy(), os.path.basename(job.path))
            for path, col in src.cols.items():
                seg.cols[path] = concat_columns([col])
            entry = {"pid": pm.pid, "file": seg.file, "n": seg.n, "crc": job.crc,
                     "dim": mem.dim, "kind": job.kind.name, "params": job.params,
                     **job.index.manifest()}
            swaps.append((pm, src, seg, entry))
        stored = dict(eng.stored_config)
        stored.update(settings.to_stored(self.target))

        def body(txn: lmdb.Transaction) -> None:
            segs, segrows = st.db("segs"), st.db("segrows")
            for _pm, src, seg, entry in swaps:
                old_key, key = k64(src.seg_id), k64(seg.seg_id)
                old = txn.get(old_key, db=segs)
                rows = txn.get(old_key, db=segrows)
                assert old is not None and rows is not None
                entry["upto"] = cbor2.loads(old)["upto"]
                txn.put(key, cbor2.dumps(entry), db=segs)
                txn.put(key, rows, db=segrows)
                txn.delete(old_key, db=segs)
                txn.delete(old_key, db=segrows)
            st.put_meta(txn, "next_seg", eng.jobs.next_seg)
            st.put_meta(txn, "config", stored)

        st.write(body)
        self.published = True
        eng.stored_config.clear()
        eng.stored_config.update(stored)
        eng.config = eng.jobs.config = dataclasses.replace(eng.config, **self.target)
        changed = set()
        for pm, src, seg, _entry in swaps:
            pm.sealed = [seg if s is src else s for s in pm.sealed]
            changed.add(pm.pid)
        eng._publish(sorted(changed))
        eng.files.remove([st.segment_path(src.file) for _pm, src, _s, _e in swaps])

    def abandon(self) -> None:
        """Remove the files built so far (the reindex failed or the store closes)."""
        if self.published:
            return
        for job in self.jobs:
            self.engine.jobs.abandon(job)
