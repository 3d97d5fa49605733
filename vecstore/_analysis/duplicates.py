"""Near-duplicate records: groups whose vectors have cosine >= threshold.

Pairs are found without comparing every record with every other:

* ``method="cells"`` (the default from ``CELLS_FROM`` rows on, with faiss):
  k-means cells (faiss, in a 64-dimensional PCA projection of a sample),
  each row placed in its 2 nearest cells, each cell self-joined exactly by
  one matrix product; a pair is found when its rows share a cell.  Like
  ``ivf`` it is approximate: a pair split across cells is missed.
* ``method="ivf"``: the snapshot's
  unit vectors go into a faiss inverted-file index (k-means coarse cells,
  trained on a sample), and each record runs one range search over the
  ``nprobe`` cells nearest to it.  Near-duplicates lie a tiny angle apart,
  so they share a cell or sit in neighbouring ones; the candidates' cosines
  are exact.  This is an ANN method: a pair split across cells that are not
  among each other's ``nprobe`` nearest would be missed (the benchmark
  checks the groups against an exact self-join).
* ``method="exact"`` (below ``CELLS_FROM`` rows, or without faiss): a blocked
  matrix-product self-join, exact.

A group is a connected component of the pair graph (so two members of a
group may be linked through a third), sorted; groups are ordered by their
first id.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError
from .source import Progress, have, need, read

CELLS_FROM = 10_000  # rows; see benchmarks/bench_analytics.py
BLOCK = 2048


def exact_pairs(x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j with ``x[i] @ x[j] >= threshold`` (blocked self-join)."""
    rows, cols = [], []
    n = x.shape[0]
    for s in range(0, n, BLOCK):
        sims = x[s:s + BLOCK] @ x[s:].T
        r, c = np.nonzero(sims >= threshold)
        c = c + s
        r = r + s
        keep = c > r
        rows.append(r[keep])
        cols.append(c[keep])
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def ivf_pairs(x: np.ndarray, threshold: float, nlist: int | None = None, nprobe: int = 4,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs i < j with cosine >= threshold found by faiss IVF range search."""
    faiss = need("faiss")
    n, d = x.shape
    nlist = nlist or max(1, min(int(math.sqrt(n)), n // 39))  # faiss wants 39 rows a cell
    quant = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quant, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    index.cp.seed = seed
    train_n = min(n, 32 * nlist)
    rng = np.random.default_rng(seed)
    index.train(x if train_n == n else x[np.sort(rng.choice(n, train_n, replace=False))])
    index.add(x)
    index.nprobe = min(nprobe, nlist)
    radius = float(threshold) - 1e-4  # faiss keeps sim > radius; exact check below
    rows, cols = [], []
    for s in range(0, n, 8192):
        lims, _sims, idx = index.range_search(x[s:s + 8192], radius)
        r = np.repeat(np.arange(s, s + lims.size - 1, dtype=np.int64),
                      np.diff(lims).astype(np.int64))
        c = idx.astype(np.int64)
        keep = c > r
        r, c = r[keep], c[keep]
        if r.size:
            exact = np.einsum("ij,ij->i", x[r], x[c])
            ok = exact >= threshold
            rows.append(r[ok])
            cols.append(c[ok])
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols)


def cell_pairs(x: np.ndarray, threshold: float, nlist: int | None = None, assign: int = 2,
               seed: int = 0, pca_dims: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Pairs i < j with cosine >= threshold, compared only within cells.

    The rows are partitioned by k-means (faiss) into ``nlist`` cells in a
    ``pca_dims``-dimensional PCA projection (a projection never moves two
    rows apart, so near-duplicates stay near); each row joins its ``assign``
    nearest cells; each cell is self-joined exactly (one matrix product in
    the full dimension).  A pair is found when the two rows share a cell."""
    with _one_thread():  # small products: BLAS thread wake-ups would dominate
        return _cell_pairs(x, threshold, nlist, assign, seed, pca_dims)


def _cell_pairs(x: np.ndarray, threshold: float, nlist: int | None, assign: int, seed: int,
                pca_dims: int) -> tuple[np.ndarray, np.ndarray]:
    faiss = need("faiss")
    n, d = x.shape
    rng = np.random.default_rng(seed)
    nlist = max(1, min(nlist or n // 100, n // 16))
    sample = x[rng.choice(n, min(n, 8192), replace=False)].astype(np.float64)
    if pca_dims and pca_dims < d:
        mean = sample.mean(0)
        _w, vecs = np.linalg.eigh(np.cov(sample - mean, rowvar=False))
        proj = np.ascontiguousarray(vecs[:, ::-1][:, :pca_dims], np.float32)
        z = np.ascontiguousarray(x @ proj)
    else:
        z = x
    km = faiss.Kmeans(z.shape[1], nlist, niter=8, seed=seed, max_points_per_centroid=16,
                      verbose=False)
    km.train(z[rng.choice(n, min(n, 16 * nlist), replace=False)])
    quant = faiss.IndexFlatL2(z.shape[1])
    quant.add(km.centroids)
    _d, cells = quant.search(z, min(assign, nlist))
    cell = cells.ravel()
    pts = np.repeat(np.arange(n, dtype=np.int64), cells.shape[1])
    order = np.argsort(cell, kind="stable")
    cell, pts = cell[order], pts[order]
    bounds = np.searchsorted(cell, np.arange(nlist + 1))
    codes = []
    for c in range(nlist):
        m = pts[bounds[c]:bounds[c + 1]]
        if m.size < 2:
            continue
        xm = x[m]
        r, cc = np.nonzero(xm @ xm.T >= threshold)
        a, b = m[r], m[cc]
        keep = a < b
        codes.append(a[keep] * n + b[keep])
    if not codes:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    u = np.unique(np.concatenate(codes))
    return u // n, u % n


def _one_thread() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def groups_of(ids: list[str], rows: np.ndarray, cols: np.ndarray) -> list[list[str]]:
    """Connected components of the pair graph, as sorted id lists."""
    if rows.size == 0:
        return []
    sparse = need("scipy.sparse")
    csgraph = need("scipy.sparse.csgraph")
    n = len(ids)
    g = sparse.csr_matrix((np.ones(rows.size, np.int8), (rows, cols)), shape=(n, n))
    _n, comp = csgraph.connected_components(g, directed=False)
    members = np.unique(np.concatenate([rows, cols]))
    by: dict[int, list[str]] = {}
    for m in members.tolist():
        by.setdefault(int(comp[m]), []).append(ids[m])
    return sorted((sorted(g) for g in by.values()), key=lambda g: g[0])


def find_duplicates(source: Any, threshold: float = 0.98, filter: Any = None, *,
                    method: str = "auto", nprobe: int = 4, nlist: int | None = None,
                    progress: Progress | None = None) -> list[list[str]]:
    """Groups of near-identical records of ``source``'s snapshot (cosine >=
    ``threshold``, whatever the store's distance); see the module docstring."""
    if not -1.0 <= threshold <= 1.0:
        raise InvalidArgumentError(f"threshold must be a cosine in [-1, 1], got {threshold!r}")
    if method not in ("auto", "exact", "cells", "ivf"):
        raise InvalidArgumentError("method must be 'auto', 'exact', 'cells' or 'ivf'")
    src = read(source, filter, progress, min_rows=0)
    return duplicates_of(src.ids, src.unit, threshold, method=method, nprobe=nprobe,
                         nlist=nlist)


def pick_method(n: int, method: str = "auto") -> str:
    if method != "auto":
        return method
    return "cells" if n >= CELLS_FROM and have("faiss") else "exact"


def duplicates_of(ids: list[str], unit: np.ndarray, threshold: float, *, method: str = "auto",
                  nprobe: int = 4, nlist: int | None = None) -> list[list[str]]:
    """:func:`find_duplicates` on a matrix of unit rows."""
    if len(ids) < 2:
        return []
    method = pick_method(len(ids), method)
    if method == "cells":
        rows, cols = cell_pairs(unit, threshold, nlist)
    elif method == "ivf":
        rows, cols = ivf_pairs(unit, threshold, nlist, nprobe)
    else:
        rows, cols = exact_pairs(unit, threshold)
    return groups_of(ids, rows, cols)
