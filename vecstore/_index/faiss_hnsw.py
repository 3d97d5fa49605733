"""The faiss HNSW index kind (``"faiss"``).

One faiss ``IndexHNSW`` per segment: ``IndexHNSWFlat`` for float32, or
``IndexHNSWSQ`` (int8 scalar codes) / ``IndexHNSWPQ`` (product codes) when
the store is quantized (``Config.quantization``, trained at seal from the
segment's own rows).  Cosine rows arrive unit length (``prepare``) and are
searched by inner product; distances are mapped to the seam's convention
(lower is better: ``1 - dot`` for ip, squared L2).

Vectors are stored once: a float32 segment's file holds the graph only
(``IO_FLAG_SKIP_STORAGE``: faiss writes a ``null`` storage), and loading
gives it a storage filled from LMDB's vectors (``vectors(labels)``, a chunk
at a time, straight into the flat index's buffer).  A quantized segment's
file holds the graph and the codes (``n * code_size`` bytes, what lives in
RAM); its float32 vectors stay in LMDB and re-rank the candidates
(``exact = False``: the segment does it, see ``SealedSegment``), so scores
are always exact.

A published index is never mutated: each search passes its own
``SearchParametersHNSW`` (efSearch, and an ``IDSelectorBitmap`` over the
eligible labels), and faiss searches are read-only.  One query's HNSW
search starts no OpenMP threads (faiss parallelises over queries); scans of
a subset and code decoding would, so they run with one (``_one_thread``);
builds use the threads given, set for the building thread only (OpenMP's
setting is per thread).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import faiss as _faiss
import numpy as np

from .._errors import CorruptionError
from .._storage.files import disk_nearly_full
from .._types import Distance
from .base import BuildCancelled, Cancelled, Costs, Progress, Vectors, entry_params, graph_params

CHUNK = 4096  # rows added between two cancel checks
FMT = 1  # manifest "fmt" of this kind's files
faiss: Any = _faiss  # (its stubs know little of the SWIG classes used here)
RERANK = {"sq8": 2, "pq": 20}  # quantized: candidates re-ranked exactly per result
# Measured on 2 shared cores, 30,000 x 384 (benchmarks/bench_engine.py --costs): an
# exact scan of eligible rows in RAM (C++ for float32, numpy over decoded codes),
# HNSW per beam slot, a bitmap-filtered walk ~8x a plain search of the same ef
# (and recall 0.88 at 10% with ef 64), over-fetch 3 candidates per result / share.
COSTS = {"float32": Costs(row_us=0.15, cand_us=4.0, walk_mult=8.0, overfetch=3.0),
         "sq8": Costs(row_us=0.5, cand_us=3.0, walk_mult=8.0, overfetch=3.0),
         "pq": Costs(row_us=1.0, cand_us=3.0, walk_mult=8.0, overfetch=3.0)}
_sp = faiss.swig_ptr
_METRIC = {Distance.COSINE: faiss.METRIC_INNER_PRODUCT, Distance.DOT: faiss.METRIC_INNER_PRODUCT,
           Distance.EUCLIDEAN: faiss.METRIC_L2}


def quantization_param(q: Any) -> Any:
    """``Config.quantization`` as recorded in the manifest (CBOR-friendly):
    None, ``"sq8"``, or ``{"pq": [num_subvectors, num_centroids, iterations]}``."""
    if q is None or q == "sq8":
        return q
    if isinstance(q, Mapping):
        return {"pq": [int(v) for v in q["pq"]]}
    return {"pq": [int(q.num_subvectors), int(q.num_centroids), int(q.training_iterations)]}


def quantization_name(q: Any) -> str:
    if q is None:
        return "float32"
    if q == "sq8":
        return "sq8"
    return f"pq{q['pq'][0]}x{q['pq'][1]}"


class FaissIndex:
    """A faiss IndexHNSW behind the seam."""

    kind = "faiss"

    def __init__(self, raw: Any, params: Mapping[str, Any], keep: Any = None) -> None:
        self.raw = raw
        self.params = dict(params)
        self.n = int(raw.ntotal)
        self.dim = int(raw.d)
        self._ip = raw.metric_type == faiss.METRIC_INNER_PRODUCT
        self._keep = keep  # a storage faiss does not own (kept alive here)
        storage = faiss.downcast_index(raw.storage)
        self._storage = storage
        self.exact = isinstance(storage, faiss.IndexFlat)  # False: approximate distances
        self.rerank = int(self.params.get("rerank", 1))
        self._codes = faiss.rev_swig_ptr(storage.codes.data(), self.n * storage.code_size) \
            .reshape(self.n, storage.code_size) if self.n else np.empty((0, 1), np.uint8)
        self._plain: dict[int, Any] = {}  # ef -> SearchParametersHNSW (read-only, shared)
        self.costs = COSTS["float32" if self.exact else
                           "sq8" if isinstance(raw, faiss.IndexHNSWSQ) else "pq"]

    def _params(self, ef: int) -> Any:
        p = self._plain.get(ef)
        if p is None:
            p = faiss.SearchParametersHNSW()
            p.efSearch = ef
            self._plain[ef] = p
        return p

    def search(self, q: np.ndarray, k: int, ef: int, allow: np.ndarray | None = None,
               cap: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        limit = self.n if cap is None else min(cap, self.n)
        kk = min(max(k if self.exact else k * self.rerank, ef), limit)
        if kk <= 0:
            return None
        q = np.ascontiguousarray(q, np.float32)
        dist = np.empty(kk, np.float32)
        labels = np.empty(kk, np.int64)
        if allow is None:
            self.raw.search_c(1, _sp(q), kk, _sp(dist), _sp(labels), self._params(ef))
        else:
            bits = np.packbits(allow[: self.n], bitorder="little")
            sel = faiss.IDSelectorBitmap(self.n, _sp(bits))
            p = faiss.SearchParametersHNSW()
            p.efSearch = ef
            p.sel = sel
            self.raw.search_c(1, _sp(q), kk, _sp(dist), _sp(labels), p)
            del sel, bits  # (alive until faiss returned)
        if labels[kk - 1] < 0:  # fewer found than asked
            got = int(np.count_nonzero(labels >= 0))
            if got < min(k, limit):
                return None
            labels, dist = labels[:got], dist[:got]
        if self._ip:
            dist = 1.0 - dist
        return labels, dist

    def scan(self, q: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Distances of ``q`` to labels ``pos`` by a scan in RAM (exact for a
        float32 index, from decoded codes otherwise), one thread."""
        if self.exact:
            pos = np.ascontiguousarray(pos, np.int64)
            q = np.ascontiguousarray(q, np.float32)
            out = np.empty(pos.size, np.float32)
            with _one_thread():
                self._storage.compute_distance_subset(1, _sp(q), pos.size, _sp(out), _sp(pos))
        else:
            vecs = self.rows(pos)
            if not self._ip:
                diff = vecs - q
                return np.einsum("ij,ij->i", diff, diff)  # type: ignore[no-any-return]
            out = vecs @ q
        return 1.0 - out if self._ip else out

    def rows(self, pos: np.ndarray) -> np.ndarray:
        """Vectors of labels ``pos`` as the index holds them (exact for a
        float32 index, decoded codes otherwise): a scan in RAM."""
        if self.exact:
            return self._codes[pos].view(np.float32)
        with _one_thread():
            return self._storage.sa_decode(np.ascontiguousarray(self._codes[pos]))

    def write(self, path: str) -> None:
        flags = faiss.IO_FLAG_SKIP_STORAGE if self.exact else 0
        data = faiss.serialize_index(self.raw, flags)
        with open(path, "wb") as f:
            f.write(memoryview(data))
        size = os.path.getsize(path)
        if size != data.size:
            raise OSError(errno.ENOSPC if disk_nearly_full(path) else errno.EIO,
                          f"segment file {path} is {size} bytes, expected {data.size}")

    def memory_bytes(self) -> int:
        h = self.raw.hnsw
        links = 4 * int(h.neighbors.size()) + 4 * int(h.levels.size()) + \
            8 * int(h.offsets.size())
        return links + self.n * int(self._storage.code_size)

    def manifest(self) -> dict[str, Any]:
        return {"fmt": FMT}


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run a faiss call on the calling thread alone.  An OpenMP team on a
    busy machine turns a 4 us scan of 30 rows into milliseconds now and
    then (measured: mean 352 us, p99 8 ms with 2 threads on a loaded 2-core
    box; 3 us with 1), and a query is one thread's work anyway."""
    prev = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(prev)


def _add_in_chunks(raw: Any, vecs: np.ndarray, threads: int, cancelled: Cancelled | None,
                   progress: Progress | None) -> None:
    faiss.omp_set_num_threads(max(1, threads))  # this thread's setting only
    for start in range(0, vecs.shape[0], CHUNK):
        if cancelled is not None and cancelled():
            raise BuildCancelled()
        stop = min(vecs.shape[0], start + CHUNK)
        raw.add(np.ascontiguousarray(vecs[start:stop], np.float32))
        if progress is not None:
            progress(stop)


def _build_raw(vecs: np.ndarray, distance: Distance, params: Mapping[str, Any], threads: int,
               cancelled: Cancelled | None, progress: Progress | None) -> Any:
    """The graph is always built on the float32 rows (exact distances make a
    better graph); a quantized index then takes it over with codes trained
    on the same rows as its storage."""
    n, dim = vecs.shape
    metric = _METRIC[distance]
    m = int(params["m"])
    flat = faiss.IndexHNSWFlat(dim, m, metric)
    flat.hnsw.efConstruction = int(params["ef_construction"])
    _add_in_chunks(flat, vecs, threads, cancelled, progress)
    q = params.get("quantization")
    if q == "sq8":
        raw = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, m, metric)
    elif q is not None and n >= 4 * q["pq"][1]:  # (too few rows to train: float32)
        sub, cents, iters = q["pq"]
        raw = faiss.IndexHNSWPQ(dim, sub, m, int(cents).bit_length() - 1, metric)
        pq = faiss.downcast_index(raw.storage).pq
        pq.cp.niter = iters
        pq.cp.min_points_per_centroid = 1  # (small segments: no warning on stderr)
        pq.cp.seed = 1234
    else:
        return flat
    codes = faiss.downcast_index(raw.storage)
    codes.train(vecs)
    for s in range(0, n, CHUNK):
        codes.add(np.ascontiguousarray(vecs[s : s + CHUNK], np.float32))
    raw.hnsw = flat.hnsw  # (a copy of the graph)
    raw.ntotal = n
    raw.is_trained = True
    return raw


class FaissKind:
    name = "faiss"

    def params(self, config: Any) -> dict[str, Any]:
        out: dict[str, Any] = graph_params(config)
        q = quantization_param(getattr(config, "quantization", None))
        if q is not None:
            out["quantization"] = q
            out["rerank"] = RERANK["sq8" if q == "sq8" else "pq"]
        return out

    def build(self, vecs: np.ndarray, distance: Distance, params: Mapping[str, Any],
              threads: int, seed: int, cancelled: Cancelled | None = None,
              progress: Progress | None = None) -> FaissIndex:
        return FaissIndex(_build_raw(vecs, distance, params, threads, cancelled, progress),
                          params)

    def extend(self, base: Any, vecs: np.ndarray, threads: int, scratch: str,
               cancelled: Cancelled | None = None,
               progress: Progress | None = None) -> FaissIndex | None:
        if not isinstance(base, FaissIndex) or isinstance(base.raw, faiss.IndexHNSWPQ):
            return None  # (PQ: a graph built on codes would be poor; rebuild)
        raw = faiss.clone_index(base.raw)  # reading a published index is safe
        if vecs.shape[0]:
            _add_in_chunks(raw, vecs, threads, cancelled, progress)
        return FaissIndex(raw, base.params)

    def load(self, path: str, distance: Distance, dim: int, n: int,
             entry: Mapping[str, Any], vectors: Vectors) -> FaissIndex:
        params = entry_params(entry)
        if entry.get("fmt") != FMT:
            raise CorruptionError(f"segment file {path}: unknown faiss format {entry.get('fmt')}")
        raw = faiss.read_index(path)  # (already downcast; a second wrapper would free it)
        if not isinstance(raw, faiss.IndexHNSW) or raw.d != dim or raw.ntotal != n:
            raise CorruptionError(f"segment file {path} is not a faiss HNSW index of {n} "
                                  f"{dim}-d rows")
        if raw.metric_type != _METRIC[distance]:
            raise CorruptionError(f"segment file {path} has the wrong metric")
        keep = None
        if raw.storage is None:  # graph only: the vectors come from LMDB
            keep = faiss.IndexFlat(dim, _METRIC[distance])
            keep.codes.resize(n * 4 * dim)
            keep.ntotal = n
            view = faiss.rev_swig_ptr(keep.codes.data(), n * 4 * dim).view(np.float32) \
                .reshape(n, dim) if n else np.empty((0, dim), np.float32)
            for s in range(0, n, 8192):
                e = min(n, s + 8192)
                got = vectors(np.arange(s, e, dtype=np.int64))
                if got.shape != (e - s, dim):
                    raise CorruptionError(f"vectors for segment file {path} have the wrong shape")
                view[s:e] = got
            raw.storage = keep
            raw.own_fields = False  # (``keep`` is ours: FaissIndex holds it)
        elif raw.storage.ntotal != n:
            raise CorruptionError(f"segment file {path} holds {raw.storage.ntotal} codes, "
                                  f"expected {n}")
        return FaissIndex(raw, params, keep)
