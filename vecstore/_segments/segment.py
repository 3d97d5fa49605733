"""Segments: the in-memory search structures of one partition.

A *growing* segment holds the newest rows in plain numpy arrays and is
searched exactly.  A *sealed* segment is an immutable ANN index (of a kind
registered in :mod:`vecstore._index`) built in a worker thread and saved to
its own file.  Both carry three int64 columns
aligned with their positions: ``rowids`` (ascending), ``born`` and ``died``
(versions).  A row is visible at version ``s`` iff ``born <= s < died``.

Only the writer mutates ``died`` (from INF to a version newer than every
published snapshot) and appends past a growing segment's published length,
so readers need no locks: whatever they read is right for their version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._index import AnnIndex
from .._metaindex.columns import Column, ColumnBuilder
from .._types import Distance
from .costs import EXACT_BELOW, OVERFETCH_LIMIT, OVERFETCH_MIN, plan  # noqa: F401 (re-exported)

INF = np.iinfo(np.int64).max
Hits = tuple[np.ndarray, np.ndarray]  # (distances float32, rowids int64), best first
Fetch = Callable[[np.ndarray], np.ndarray]  # rowids -> prepared vectors (from LMDB)


def prepare(mat: np.ndarray, distance: Distance) -> np.ndarray:
    """Rows in the form searched: unit length under cosine, as-is otherwise.

    Computed in float64, so a row prepares to the same float32 bits alone
    or in any batch (segment files rely on it)."""
    if distance is Distance.COSINE:
        out = np.empty(mat.shape, np.float32)
        for s in range(0, mat.shape[0], 4096):  # bounded float64 scratch
            wide = mat[s : s + 4096].astype(np.float64)
            norms = np.sqrt(np.einsum("ij,ij->i", wide, wide))
            norms[norms == 0] = 1.0
            wide /= norms[:, None]
            out[s : s + 4096] = wide
        return out
    return mat


def to_scores(dist: np.ndarray, distance: Distance) -> np.ndarray:
    """hnswlib distances -> API scores (similarity, dot, or L2 not squared)."""
    if distance is Distance.EUCLIDEAN:
        return np.sqrt(np.maximum(dist, 0.0))
    return 1.0 - dist


def exact_distances(vecs: np.ndarray, q: np.ndarray, distance: Distance,
                    sqn: np.ndarray | None = None) -> np.ndarray:
    """Distances in hnswlib's convention (lower is better)."""
    dots = vecs @ q
    if distance is Distance.EUCLIDEAN:
        if sqn is None:
            sqn = np.einsum("ij,ij->i", vecs, vecs)
        return np.maximum(sqn - 2.0 * dots + float(q @ q), 0.0).astype(np.float32)
    return (1.0 - dots).astype(np.float32)


def top_k(dist: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest distances, best first (ties by position)."""
    if k >= dist.shape[0]:
        return np.argsort(dist, kind="stable")
    part = np.argpartition(dist, k - 1)[:k]
    return part[np.lexsort((part, dist[part]))]


def visible(born: np.ndarray, died: np.ndarray, version: int) -> np.ndarray:
    return (born <= version) & (died > version)


@dataclass(frozen=True, slots=True)
class GrowingView:
    """What a snapshot sees of a growing segment: arrays and a length."""

    pid: int
    vecs: np.ndarray
    sqn: np.ndarray | None
    rowids: np.ndarray
    born: np.ndarray
    died: np.ndarray
    n: int
    n_dead: int
    cols: dict[tuple[str, ...], Column]

    def count_visible(self, version: int) -> int:
        if self.n == 0:
            return 0
        if self.n_dead == 0 and self.born[self.n - 1] <= version:
            return self.n
        return int(visible(self.born[: self.n], self.died[: self.n], version).sum())

    def all_visible(self, version: int) -> bool:
        n = self.n
        return self.n_dead == 0 and (n == 0 or self.born[n - 1] <= version)

    def eligible(self, version: int, mask: np.ndarray | None) -> np.ndarray | None:
        """Boolean mask of rows to consider, or None for all n rows
        (``mask``: rows visible and matching, as ``segment_mask`` gives)."""
        n = self.n
        if mask is not None:
            return mask[:n]
        if self.all_visible(version):
            return None
        return visible(self.born[:n], self.died[:n], version)

    def search(self, q: np.ndarray, k: int, ef: int, version: int, distance: Distance,
               mask: np.ndarray | None = None) -> Hits:
        n = self.n
        if n == 0:
            return _EMPTY
        elig = self.eligible(version, mask)
        if elig is None:
            dist = exact_distances(self.vecs[:n], q, distance,
                                   None if self.sqn is None else self.sqn[:n])
            pos = top_k(dist, k)
            return dist[pos], self.rowids[pos]
        idx = np.flatnonzero(elig)
        if idx.size == 0:
            return _EMPTY
        dist = exact_distances(self.vecs[idx], q, distance,
                               None if self.sqn is None else self.sqn[idx])
        pos = top_k(dist, k)
        return dist[pos], self.rowids[idx[pos]]


_EMPTY: Hits = (np.empty(0, np.float32), np.empty(0, np.int64))


class GrowingSegment:
    """The writer's mutable growing segment of one partition."""

    def __init__(self, pid: int, dim: int, distance: Distance, capacity: int = 1024) -> None:
        self.pid = pid
        self.dim = dim
        self.distance = distance
        self.n = 0
        self.n_dead = 0
        self.cols: dict[tuple[str, ...], ColumnBuilder] = {}
        self._alloc(max(capacity, 16))

    def _alloc(self, cap: int) -> None:
        old = getattr(self, "vecs", None)
        vecs = np.empty((cap, self.dim), np.float32)
        rowids = np.empty(cap, np.int64)
        born = np.empty(cap, np.int64)
        died = np.full(cap, INF, np.int64)
        sqn = np.empty(cap, np.float32) if self.distance is Distance.EUCLIDEAN else None
        if old is not None:
            n = self.n
            vecs[:n] = self.vecs[:n]
            rowids[:n] = self.rowids[:n]
            born[:n] = self.born[:n]
            died[:n] = self.died[:n]
            if sqn is not None:
                sqn[:n] = self.sqn[:n]  # type: ignore[index]
        self.vecs, self.rowids, self.born, self.died, self.sqn = vecs, rowids, born, died, sqn
        self.cap = cap

    def append(self, rowids: np.ndarray, born: np.ndarray, mat: np.ndarray) -> None:
        """Append rows (already prepared for search).  Writer only."""
        m = len(rowids)
        if self.n + m > self.cap:
            self._alloc(max(self.cap * 2, self.n + m))
        s = slice(self.n, self.n + m)
        self.vecs[s] = mat
        self.rowids[s] = rowids
        self.born[s] = born
        self.died[s] = INF
        if self.sqn is not None:
            self.sqn[s] = np.einsum("ij,ij->i", mat, mat)
        self.n += m

    def view(self) -> GrowingView:
        return GrowingView(self.pid, self.vecs, self.sqn, self.rowids, self.born,
                           self.died, self.n, self.n_dead,
                           {p: b.view() for p, b in self.cols.items()})

    def columns(self, positions: np.ndarray) -> dict[tuple[str, ...], Column]:
        return {p: b.view().take(positions) for p, b in self.cols.items()}

    def kill(self, positions: np.ndarray, version: int) -> None:
        self.died[positions] = version
        self.n_dead += len(positions)

    def tail_after(self, count: int) -> GrowingSegment:
        """A new growing segment with the rows after the first ``count``."""
        rest = GrowingSegment(self.pid, self.dim, self.distance, max(1024, self.n - count))
        m = self.n - count
        if m:
            s = slice(count, self.n)
            rest.vecs[:m] = self.vecs[s]
            rest.rowids[:m] = self.rowids[s]
            rest.born[:m] = self.born[s]
            rest.died[:m] = self.died[s]
            if rest.sqn is not None:
                rest.sqn[:m] = self.sqn[s]  # type: ignore[index]
            rest.n = m
            rest.n_dead = int((rest.died[:m] != INF).sum())
        tail = np.arange(count, self.n)
        rest.cols = {p: ColumnBuilder.of(c) for p, c in self.columns(tail).items()}
        return rest


class SealedSegment:
    """An immutable ANN index plus its row columns (``died`` aside)."""

    __slots__ = (
        "born",
        "cols",
        "died",
        "file",
        "index",
        "n",
        "n_dead",
        "pid",
        "rowids",
        "seg_id",
    )

    def __init__(self, seg_id: int, pid: int, index: AnnIndex, rowids: np.ndarray,
                 born: np.ndarray, died: np.ndarray, file: str) -> None:
        self.seg_id = seg_id
        self.pid = pid
        self.index = index
        self.rowids = rowids
        self.born = born
        self.died = died
        self.n = len(rowids)
        self.n_dead = int((died != INF).sum())
        self.file = file
        self.cols: dict[tuple[str, ...], Column] = {}

    def kill(self, positions: np.ndarray, version: int) -> None:
        self.died[positions] = version
        self.n_dead += len(positions)

    def invisible_upper(self, version: int) -> int:
        unborn = self.n - int(np.searchsorted(self.born, version, side="right"))
        return self.n_dead + unborn

    def count_visible(self, version: int) -> int:
        if self.invisible_upper(version) == 0:
            return self.n
        return int(np.count_nonzero(visible(self.born, self.died, version)))

    def all_visible(self, version: int) -> bool:
        return self.invisible_upper(version) == 0

    def exact(self, q: np.ndarray, k: int, distance: Distance, elig: np.ndarray,
              fetch: Fetch) -> Hits:
        """Best ``k`` of the eligible rows by a scan: of the index's own rows
        in RAM when it offers them (``scan``), else of LMDB's vectors."""
        pos = np.flatnonzero(elig)
        if pos.size == 0:
            return _EMPTY
        scan = getattr(self.index, "scan", None)
        if scan is None:
            dist = exact_distances(fetch(self.rowids[pos]), q, distance)
        else:
            dist = scan(q, pos)
            if not getattr(self.index, "exact", True):  # from codes: re-rank the best exactly
                cand = pos[top_k(dist, min(pos.size, k * getattr(self.index, "rerank", 1)))]
                return self._rerank(cand, q, k, distance, fetch)
        best = top_k(dist, k)
        return dist[best], self.rowids[pos[best]]

    def _rerank(self, labels: np.ndarray, q: np.ndarray, k: int, distance: Distance,
                fetch: Fetch) -> Hits:
        """Exact distances of candidate ``labels`` (from LMDB's vectors), best ``k``."""
        rows = self.rowids[labels]
        dist = exact_distances(fetch(rows), q, distance)
        best = top_k(dist, k)
        return dist[best], rows[best]

    def _take(self, labels: np.ndarray, dist: np.ndarray, k: int, q: np.ndarray,
              distance: Distance, fetch: Fetch) -> Hits:
        """The best ``k`` of an index's answer (labels best first): as they
        are from an exact index, re-ranked from LMDB's vectors otherwise."""
        if getattr(self.index, "exact", True):
            return dist[:k], self.rowids[labels[:k]]
        return self._rerank(labels[: k * getattr(self.index, "rerank", 1)], q, k, distance, fetch)

    def _knn(self, q: np.ndarray, k: int, ef: int, allow: np.ndarray | None = None,
             cap: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        return self.index.search(q, k, ef, allow, cap)

    def search(self, q: np.ndarray, k: int, ef: int, version: int, distance: Distance,
               fetch: Fetch, mask: np.ndarray | None = None, force_exact: bool = False) -> Hits:
        """Best ``k`` rows visible at ``version`` (or in ``mask``: rows
        visible and matching, as ``segment_mask`` gives)."""
        n = self.n
        if mask is None:
            if not force_exact and self.all_visible(version):
                got = self._knn(q, k, ef)
                if got is not None:
                    return self._take(got[0], got[1], k, q, distance, fetch)
            elig = visible(self.born, self.died, version)
        else:
            elig = mask
        m = int(np.count_nonzero(elig))
        how, width, _us = ("exact", m, 0.0) if force_exact or m <= k else \
            plan(self.index, m, n, k, ef)
        if how == "exact":
            return self.exact(q, k, distance, elig, fetch)
        if how == "overfetch":
            kk = width
            while kk <= max(n * OVERFETCH_LIMIT, 2 * ef):
                got = self._knn(q, kk, ef)
                if got is None:
                    break
                labels, dist = got
                ok = elig[labels]
                if int(ok.sum()) >= min(k, m):
                    keep = np.flatnonzero(ok)
                    return self._take(labels[keep], dist[keep], k, q, distance, fetch)
                if kk >= n:
                    break
                kk *= 4
            width = ef
        # A filtered walk: the index skips ineligible labels as it goes.
        got = self._knn(q, k, width, allow=elig, cap=m)
        if got is not None:
            return self._take(got[0], got[1], k, q, distance, fetch)
        return self.exact(q, k, distance, elig, fetch)


def merge_hits(parts: list[Hits], k: int) -> Hits:
    parts = [p for p in parts if p[0].size]
    if not parts:
        return _EMPTY
    if len(parts) == 1:
        return parts[0][0][:k], parts[0][1][:k]
    dist = np.concatenate([p[0] for p in parts])
    rowids = np.concatenate([p[1] for p in parts])
    pos = top_k(dist, k)
    return dist[pos], rowids[pos]
