"""Seal and merge jobs: build an hnswlib index off the writer's thread and
write it to an immutable file (temp -> fsync -> rename -> fsync dir).

A job is created by the writer (``Engine.plan_job``), built in a worker
thread (``SegmentJob.build``, touches no LMDB state), and published by the
writer (``Engine.finish_job``), which records it in the manifest.  A file
that was written but never recorded is garbage and is removed at open.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import StorageError, StorageFullError
from .._index.hnswfile import graph_file_size, strip
from .._segments.segment import SealedSegment, add_in_chunks, build_index, load_index
from .._types import Distance


def file_crc(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def fsync_path(path: str) -> None:
    """fsync a file or a directory by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_size(path: str, expected: int) -> None:
    size = os.path.getsize(path)
    if size != expected:
        raise OSError(errno.ENOSPC if _disk_nearly_full(path) else errno.EIO,
                      f"segment file {path} is {size} bytes, expected {expected}")


def write_index_file(index: Any, path: str) -> int:
    """Save ``index``'s graph (not its vectors, see ``_hnswfile``) durably
    at ``path``; return the file's CRC32."""
    full, tmp = path + ".full.tmp", path + ".tmp"
    try:
        try:
            index.save_index(full)  # (hnswlib does not report a failed write...)
            _check_size(full, index.index_file_size())  # (...so check what reached the file)
            with open(tmp, "wb") as out:
                crc = strip(full, out, index.dim)
                out.flush()
                os.fsync(out.fileno())
            _check_size(tmp, graph_file_size(index))
        finally:
            remove_quietly(full)
    except OSError as exc:
        remove_quietly(tmp)
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise StorageFullError(exc.errno, f"disk full writing a segment: {exc}") from exc
        raise StorageError(exc.errno or errno.EIO, f"I/O error writing a segment: {exc}") from exc
    os.replace(tmp, path)
    fsync_path(os.path.dirname(path))
    return crc


def remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _disk_nearly_full(path: str) -> bool:
    try:
        return shutil.disk_usage(os.path.dirname(path)).free < (16 << 20)
    except OSError:
        return False


def segment_file_name(seg_id: int) -> str:
    return f"seg-{seg_id:016x}.hnsw"


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
    m: int
    ef_construction: int
    threads: int
    fetch: Any = None  # (pid, rowids) -> prepared vectors from LMDB (merged sources)
    cutoff: int = -1  # highest growing rowid this job seals (-1 if none)
    cancelled: bool = False  # set when the store closes: the build stops early
    indexed: int = 0  # rows in the index being built so far (read by progress displays)
    index: Any = None
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
        self.crc = write_index_file(self.index, self.path)
        self.seconds = time.perf_counter() - t0

    def _extend(self) -> None:
        base = self.sources[0]
        tmp = self.path + ".base.tmp"
        try:
            base.index.save_index(tmp)  # reading a published index is safe
            index = load_index(tmp, self.distance, base.index.dim, len(self.rowids))
        finally:
            try:
                os.remove(tmp)
            except OSError:
                pass
        index.set_num_threads(self.threads)
        self.indexed = base.n
        mats = [self.fetch(self.pid, seg.rowids) for seg in self.sources[1:]]
        if self.count:
            mats.append(self.growing_vecs[: self.count])
        if mats:
            rest = np.ascontiguousarray(np.concatenate(mats), dtype=np.float32)
            add_in_chunks(index, rest, base.n, self.threads, lambda: self.cancelled,
                          progress=lambda k: setattr(self, "indexed", base.n + k))
        self.index = index

    def _rebuild(self) -> None:
        mats = [self.fetch(self.pid, seg.rowids) for seg in self.sources]
        if self.count:
            mats.append(self.growing_vecs[: self.count])
        vecs = np.concatenate(mats) if len(mats) > 1 else mats[0]
        if self.order is not None:
            vecs = vecs[self.order]
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        self.index = build_index(vecs, self.distance, self.m, self.ef_construction,
                                 self.threads, seed=self.seg_id & 0x7FFFFFFF,
                                 cancelled=lambda: self.cancelled,
                                 progress=lambda k: setattr(self, "indexed", k))
