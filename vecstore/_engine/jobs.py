"""Seal and merge jobs: build a segment's ANN index (whatever its kind,
see :mod:`vecstore._index`) off the writer's thread and write it to an
immutable file (temp -> fsync -> rename -> fsync dir).

A job is created by the writer (``SegmentJobs.plan``), built in a worker
thread (``SegmentJob.build``, touches no LMDB state), and published by the
writer (``SegmentJobs.finish``), which records it in the manifest.  A file
that was written but never recorded is garbage and is removed at open
(:meth:`SegmentFiles.collect_garbage`); a file a merge or compaction
replaced is removed once no backup holds the files (:meth:`SegmentFiles.hold`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._index import AnnIndex, AnnKind
from .._segments.segment import SealedSegment
from .._storage.files import remove_quietly, write_durably
from .._types import Distance


def write_index_file(index: AnnIndex, path: str) -> int:
    """Write ``index`` durably at ``path``; return the file's CRC32."""
    return write_durably(path, index.write)


def segment_file_name(seg_id: int) -> str:
    return f"seg-{seg_id:016x}.hnsw"


class SegmentFiles:
    """Removal of segment files, deferred while a backup holds them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds = 0  # backups in progress: segment files must stay
        self._deferred: list[str] = []

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep segment files on disk (e.g. while a backup copies them)."""
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1
                todo = self._deferred if self._holds == 0 else []
                if self._holds == 0:
                    self._deferred = []
            self.remove(todo)

    def remove(self, paths: list[str]) -> None:
        with self._lock:
            if self._holds:
                self._deferred.extend(paths)
                return
        for path in paths:
            remove_quietly(path)

    @staticmethod
    def collect_garbage(folder: str, keep: Iterable[str]) -> None:
        """Remove the files of ``folder`` not in ``keep`` (at open)."""
        keep = set(keep)
        for name in os.listdir(folder):
            if name not in keep:
                try:
                    os.remove(os.path.join(folder, name))
                except OSError:
                    pass


@dataclass
class SegmentJob:
    """Build one sealed segment from ``sources`` (sealed segments to merge)
    plus the first ``count`` rows of the partition's growing segment."""

    pid: int
    seg_id: int
    sources: list[SealedSegment]
    count: int
    growing_vecs: np.ndarray  # reference to the growing arrays at plan time
    rowids: np.ndarray  # ascending
    born: np.ndarray
    order: np.ndarray | None  # positions in the concatenated inputs, in rowid order (None: all)
    path: str
    distance: Distance
    kind: AnnKind
    params: dict[str, Any]
    threads: int
    fetch: Any = None  # (pid, rowids) -> prepared vectors from LMDB (merged sources)
    cutoff: int = -1  # highest growing rowid this job seals (-1 if none)
    cancelled: bool = False  # set when the store closes: the build stops early
    indexed: int = 0  # rows in the index being built so far (read by progress displays)
    index: AnnIndex | None = None
    crc: int = 0
    seconds: float = 0.0  # build + durable file write (metrics)
    error: BaseException | None = None
    done: Any = field(default=None)  # an event the runner sets when finished

    @property
    def incremental(self) -> bool:
        """Extend a copy of the first source's index instead of rebuilding:
        possible when its rows keep their positions (they come first, none
        is left out) and it is the bulk of the work."""
        if not self.sources or self.order is not None:
            return False
        base = self.sources[0].index
        if base.kind != self.kind.name or base.params != self.params:
            return False  # (a reindex to other settings rebuilds)
        first = self.sources[0].n
        return first * 2 >= len(self.rowids)

    def build(self) -> None:
        if len(self.rowids) == 0:  # every row was left out: nothing to write
            return
        t0 = time.perf_counter()
        if self.incremental:
            self._extend()
        else:
            self._rebuild()
        assert self.index is not None
        self.crc = write_index_file(self.index, self.path)
        self.seconds = time.perf_counter() - t0

    def _extend(self) -> None:
        base = self.sources[0]
        self.indexed = base.n
        mats = [self.fetch(self.pid, seg.rowids) for seg in self.sources[1:]]
        if self.count:
            mats.append(self.growing_vecs[: self.count])
        rest = np.ascontiguousarray(np.concatenate(mats), dtype=np.float32) if mats else \
            np.empty((0, base.index.dim), np.float32)
        scratch = self.path + ".base.tmp"
        try:
            self.index = self.kind.extend(base.index, rest, self.threads, scratch,
                                          lambda: self.cancelled,
                                          lambda k: setattr(self, "indexed", base.n + k))
        finally:
            remove_quietly(scratch)
        if self.index is None:  # the kind cannot extend: build from scratch
            self._rebuild()

    def _rebuild(self) -> None:
        mats = [self.fetch(self.pid, seg.rowids) for seg in self.sources]
        if self.count:
            mats.append(self.growing_vecs[: self.count])
        vecs = np.concatenate(mats) if len(mats) > 1 else mats[0]
        if self.order is not None:
            vecs = vecs[self.order]
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        self.index = self.kind.build(vecs, self.distance, self.params, self.threads,
                                     seed=self.seg_id & 0x7FFFFFFF,
                                     cancelled=lambda: self.cancelled,
                                     progress=lambda k: setattr(self, "indexed", k))
