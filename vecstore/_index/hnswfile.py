"""Segment files hold the HNSW graph only; the vectors stay in LMDB.

hnswlib saves an index as one file: a 96-byte header, then ``n`` level-0
elements of ``size_per_element`` bytes (links, the vector, the label),
then the upper-level link lists.  The vector is most of each element
(1,536 of 1,676 bytes at 384-d, M=16) and LMDB already holds it, so a
segment file is that file with each element's vector cut out
(:func:`strip`), and loading puts the vectors back (:func:`load_graph`):
from LMDB, prepared exactly as they were when the index was built
(:func:`vecstore._segment.prepare` is deterministic per row), into an
in-memory file (``memfd``; a temporary file where there is none) that
hnswlib loads.  A damaged graph file is still rebuilt from LMDB.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

import hnswlib
import numpy as np

from .._errors import CorruptionError

# offsetLevel0, max_elements, cur_element_count, size_data_per_element,
# label_offset, offsetData, maxlevel, enterpoint_node, maxM, maxM0, M,
# mult, ef_construction (hnswlib 0.8 hnswalg.h saveIndex, native layout)
HEADER = struct.Struct("<QQQQQQiIQQQdQ")
GRAPH_FMT = 2  # manifest "fmt" of a stripped file (absent: a whole hnswlib file)
CHUNK_ROWS = 8192


class Layout:
    """Where the vector sits in each level-0 element."""

    def __init__(self, head: bytes, dim: int) -> None:
        f = HEADER.unpack(head)
        self.n: int = f[2]
        self.size: int = f[3]
        self.label_off: int = f[4]
        self.data_off: int = f[5]
        self.vec = 4 * dim
        if f[0] != 0 or self.data_off + self.vec != self.label_off or \
                self.label_off + 8 != self.size:
            raise CorruptionError("not an hnswlib index file of this dimension")

    @property
    def stripped(self) -> int:
        return self.size - self.vec


def strip(full: str, out: BinaryIO, dim: int) -> int:
    """Copy hnswlib file ``full`` to ``out`` without the vectors; return
    the CRC32 of what was written."""
    with open(full, "rb") as f:
        head = f.read(HEADER.size)
        lay = Layout(head, dim)
        crc = zlib.crc32(head)
        out.write(head)
        left = lay.n
        while left:
            rows = min(left, CHUNK_ROWS)
            buf = f.read(rows * lay.size)
            if len(buf) != rows * lay.size:
                raise OSError(f"{full} is shorter than its header says")
            el = np.frombuffer(buf, np.uint8).reshape(rows, lay.size)
            part = np.concatenate([el[:, : lay.data_off], el[:, lay.label_off :]], axis=1)
            data = part.tobytes()
            crc = zlib.crc32(data, crc)
            out.write(data)
            left -= rows
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
            out.write(chunk)
    return crc


def graph_file_size(index: Any) -> int:
    """What :func:`strip` writes for ``index``."""
    return int(index.index_file_size() - 4 * index.dim * index.element_count)


def _scratch() -> tuple[int, str, bool]:
    """A file descriptor, a path that opens it, and whether that path must
    be removed afterwards (no memfd or no /proc: a named temporary file)."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        try:
            fd = os.memfd_create("vecstore-segment")
            return fd, f"/proc/self/fd/{fd}", False
        except OSError:
            pass
    fd, path = tempfile.mkstemp(prefix="vecstore-segment-")
    return fd, path, True


def load_graph(path: str, space: str, vectors: Callable[[np.ndarray], np.ndarray], n: int,
               dim: int) -> Any:
    """Load a stripped segment file of ``n`` rows, putting the vectors back:
    ``vectors(labels)`` gives those of the given labels, prepared (fetched a
    chunk at a time, so loading needs little memory beyond the index).
    Elements are stored in hnswlib's insertion order, which a multi-threaded
    build does not keep in label order: each element's label says whose
    vector goes into it."""
    fd, name, named = _scratch()
    try:
        with open(path, "rb") as f, os.fdopen(os.dup(fd), "wb") as out:
            head = f.read(HEADER.size)
            if len(head) != HEADER.size:
                raise CorruptionError(f"segment file {path} is truncated")
            lay = Layout(head, dim)
            if lay.n != n:
                raise CorruptionError(f"segment file {path} has {lay.n} rows, expected {n}")
            out.write(head)
            seen = np.zeros(n, bool)
            for start in range(0, n, CHUNK_ROWS):
                rows = min(n - start, CHUNK_ROWS)
                buf = f.read(rows * lay.stripped)
                if len(buf) != rows * lay.stripped:
                    raise CorruptionError(f"segment file {path} is truncated")
                el = np.frombuffer(buf, np.uint8).reshape(rows, lay.stripped)
                labels = np.ascontiguousarray(el[:, lay.data_off : lay.data_off + 8]) \
                    .view("<u8").ravel().astype(np.int64)
                if labels.size and (labels.min() < 0 or labels.max() >= n or seen[labels].any()):
                    raise CorruptionError(f"segment file {path} has labels that are not a "
                                          f"permutation of its {n} rows")
                seen[labels] = True
                vec8 = np.ascontiguousarray(vectors(labels), np.float32).view(np.uint8)
                if vec8.shape != (rows, 4 * dim):
                    raise CorruptionError(f"vectors for segment file {path} have the wrong shape")
                full = np.empty((rows, lay.size), np.uint8)
                full[:, : lay.data_off] = el[:, : lay.data_off]
                full[:, lay.data_off : lay.label_off] = vec8
                full[:, lay.label_off :] = el[:, lay.data_off :]
                out.write(full.tobytes())
            while chunk := f.read(1 << 22):
                out.write(chunk)
        index = hnswlib.Index(space=space, dim=dim)
        index.load_index(name, max_elements=max(n, 1))
        return index
    finally:
        os.close(fd)
        if named:
            os.remove(name)
