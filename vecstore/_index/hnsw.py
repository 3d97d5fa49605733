"""The hnswlib index kind.

Cosine rows are normalised by us (``prepare``) and searched in hnswlib's
``ip`` space, so a graph file reassembled with LMDB's vectors is
bit-identical to the index that was built (see ``hnswfile``).  A published
index is never mutated, not even ``set_ef``: a search asks for
``max(k, ef)`` results, which makes hnswlib search with that ef.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from typing import Any

import hnswlib
import numpy as np

from .._storage.files import disk_nearly_full, remove_quietly
from .._types import Distance
from .base import BuildCancelled, Cancelled, Progress, Vectors, entry_params, graph_params
from .hnswfile import GRAPH_FMT, graph_file_size, load_graph, strip

SPACES = {Distance.COSINE: "ip", Distance.DOT: "ip", Distance.EUCLIDEAN: "l2"}
CHUNK = 4096  # rows added between two cancel checks


class HnswlibIndex:
    """An hnswlib index behind the seam."""

    kind = "hnswlib"

    def __init__(self, index: Any, params: Mapping[str, Any]) -> None:
        self.raw = index
        self.params = dict(params)
        self.n = int(index.element_count)
        self.dim = int(index.dim)

    def search(self, q: np.ndarray, k: int, ef: int, allow: np.ndarray | None = None,
               cap: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        kk = min(max(k, ef), self.n if cap is None else min(cap, self.n))
        if kk <= 0:
            return None
        flt = None if allow is None else (lambda label: allow[label])
        try:
            labels, dist = self.raw.knn_query(q, k=kk, num_threads=1, filter=flt)
        except RuntimeError:  # hnswlib could not find kk results
            return None
        return labels[0].astype(np.int64), dist[0]

    def write(self, path: str) -> None:
        full = path + ".full"
        try:
            self.raw.save_index(full)  # (hnswlib does not report a failed write...)
            _check_size(full, self.raw.index_file_size())  # (...so check what reached it)
            with open(path, "wb") as out:
                strip(full, out, self.dim)
                out.flush()
            _check_size(path, graph_file_size(self.raw))
        finally:
            remove_quietly(full)

    def memory_bytes(self) -> int:
        return int(self.raw.index_file_size())

    def manifest(self) -> dict[str, Any]:
        return {"fmt": GRAPH_FMT}


def _check_size(path: str, expected: int) -> None:
    size = os.path.getsize(path)
    if size != expected:
        raise OSError(errno.ENOSPC if disk_nearly_full(path) else errno.EIO,
                      f"segment file {path} is {size} bytes, expected {expected}")


def _add_in_chunks(index: Any, vecs: np.ndarray, first_label: int, threads: int,
                   cancelled: Cancelled | None, progress: Progress | None) -> None:
    """``add_items`` with labels ``first_label...``, checking ``cancelled``
    before each chunk and calling ``progress(rows added)`` after it."""
    for start in range(0, vecs.shape[0], CHUNK):
        if cancelled is not None and cancelled():
            raise BuildCancelled()
        stop = min(vecs.shape[0], start + CHUNK)
        index.add_items(vecs[start:stop],
                        np.arange(first_label + start, first_label + stop, dtype=np.int64),
                        num_threads=threads)
        if progress is not None:
            progress(stop)


class HnswlibKind:
    name = "hnswlib"

    def params(self, config: Any) -> dict[str, Any]:
        return graph_params(config)

    def build(self, vecs: np.ndarray, distance: Distance, params: Mapping[str, Any],
              threads: int, seed: int, cancelled: Cancelled | None = None,
              progress: Progress | None = None) -> HnswlibIndex:
        n, dim = vecs.shape
        index = hnswlib.Index(space=SPACES[distance], dim=dim)
        index.init_index(max_elements=max(n, 1), M=params["m"],
                         ef_construction=params["ef_construction"], random_seed=seed)
        _add_in_chunks(index, vecs, 0, threads, cancelled, progress)
        return HnswlibIndex(index, params)

    def extend(self, base: Any, vecs: np.ndarray, threads: int, scratch: str,
               cancelled: Cancelled | None = None,
               progress: Progress | None = None) -> HnswlibIndex | None:
        if not isinstance(base, HnswlibIndex):
            return None
        tmp = scratch  # hnswlib copies an index only through a file
        try:
            base.raw.save_index(tmp)  # reading a published index is safe
            index = hnswlib.Index(space=base.raw.space, dim=base.dim)
            index.load_index(tmp, max_elements=max(base.n + vecs.shape[0], 1))
        finally:
            remove_quietly(tmp)
        index.set_num_threads(threads)
        if vecs.shape[0]:
            _add_in_chunks(index, vecs, base.n, threads, cancelled, progress)
        return HnswlibIndex(index, base.params)

    def load(self, path: str, distance: Distance, dim: int, n: int,
             entry: Mapping[str, Any], vectors: Vectors) -> HnswlibIndex:
        params = entry_params(entry)
        if entry.get("fmt") == GRAPH_FMT:
            return HnswlibIndex(load_graph(path, SPACES[distance], vectors, n, dim), params)
        index = hnswlib.Index(space=SPACES[distance], dim=dim)  # a whole file (old stores)
        index.load_index(path, max_elements=max(n, 1))
        return HnswlibIndex(index, params)
