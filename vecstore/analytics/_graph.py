"""Exact Euclidean neighbour graphs with faiss, in the form scikit-learn
takes as ``metric="precomputed"`` (a sparse CSR distance graph).

faiss finds the candidates (BLAS, many threads); the distances kept are
recomputed in float64 from the differences, so they are what scikit-learn's
own brute-force search computes, and a neighbour is in or out exactly as
scikit-learn would decide (up to ties within float rounding).
"""

from __future__ import annotations

import numpy as np

from .._analysis.source import need

BATCH = 4096  # query rows per faiss call (bounds the result buffers)


def _exact(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """float64 distances between x[rows] and x[cols], pair by pair."""
    out = np.empty(rows.size, np.float64)
    for s in range(0, rows.size, 65536):
        a = x[rows[s:s + 65536]].astype(np.float64)
        a -= x[cols[s:s + 65536]]
        out[s:s + 65536] = np.sqrt(np.einsum("ij,ij->i", a, a))
    return out


def flat_index(x: np.ndarray) -> object:
    faiss = need("faiss")
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    return index


def knn_graph(x: np.ndarray, k: int) -> object:
    """CSR graph: each row's k nearest other rows plus itself (distance 0,
    stored), as ``KNeighborsTransformer(mode="distance")`` builds it."""
    sparse = need("scipy.sparse")
    n = x.shape[0]
    kk = min(k + 1, n)
    index = flat_index(x)
    cols = np.empty((n, kk), np.int64)
    for s in range(0, n, BATCH):
        _d, idx = index.search(x[s:s + BATCH], kk)  # type: ignore[attr-defined]
        cols[s:s + BATCH] = idx
    rows = np.repeat(np.arange(n, dtype=np.int64), kk)
    flat = cols.ravel()
    dist = _exact(x, rows, flat)
    # each row in distance order (faiss's order can differ in the last bits)
    dist2 = dist.reshape(n, kk)
    order = np.argsort(dist2, axis=1, kind="stable")
    dist2 = np.take_along_axis(dist2, order, 1)
    cols = np.take_along_axis(cols, order, 1)
    return sparse.csr_matrix((dist2.ravel(), cols.ravel(), np.arange(0, n * kk + 1, kk)),
                             shape=(n, n))


def radius_graph(x: np.ndarray, eps: float) -> object:
    """CSR graph of every pair within ``eps`` (Euclidean, inclusive), self
    included at distance 0 (stored)."""
    sparse = need("scipy.sparse")
    n = x.shape[0]
    index = flat_index(x)
    radius = float(eps) ** 2 * (1 + 1e-4) + 1e-9  # faiss: squared, strict; widened, then exact
    rows_l, cols_l, data_l = [], [], []
    for s in range(0, n, BATCH):
        lims, _d, idx = index.range_search(x[s:s + BATCH], radius)  # type: ignore[attr-defined]
        r = np.repeat(np.arange(s, s + lims.size - 1, dtype=np.int64),
                      np.diff(lims).astype(np.int64))
        c = idx.astype(np.int64)
        d = _exact(x, r, c)
        keep = d <= eps
        rows_l.append(r[keep])
        cols_l.append(c[keep])
        data_l.append(d[keep])
    rows = np.concatenate(rows_l)
    cols = np.concatenate(cols_l)
    data = np.concatenate(data_l)
    self_missing = np.ones(n, bool)
    self_missing[rows[rows == cols]] = False
    if self_missing.any():
        extra = np.flatnonzero(self_missing)
        rows = np.concatenate([rows, extra])
        cols = np.concatenate([cols, extra])
        data = np.concatenate([data, np.zeros(extra.size)])
    g = sparse.csr_matrix((data, (rows, cols)), shape=(n, n))
    g.sort_indices()
    return g
