"""Near-duplicate records: groups whose vectors have cosine >= threshold.

Pairs are found without comparing every record with every other:

* ``method="ivf"`` (from ``IVF_FROM`` rows on, with faiss): the snapshot's
  unit vectors go into a faiss inverted-file index (k-means coarse cells,
  trained on a sample), and each record runs one range search over the
  ``nprobe`` cells nearest to it.  Near-duplicates lie a tiny angle apart,
  so they share a cell or sit in neighbouring ones; the candidates' cosines
  are exact.  This is an ANN method: a pair split across cells that are not
  among each other's ``nprobe`` nearest would be missed (the benchmark
  checks the groups against an exact self-join).
* ``method="exact"`` (below ``IVF_FROM`` rows, or without faiss): a blocked
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
from ._source import Progress, have, need, read

IVF_FROM = 10_000  # rows; see benchmarks/bench_analytics.py
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
        r = np.repeat(np.arange(s, s + lims.size - 1, dtype=np.int64), np.diff(lims).astype(np.int64))
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
    if method not in ("auto", "exact", "ivf"):
        raise InvalidArgumentError("method must be 'auto', 'exact' or 'ivf'")
    src = read(source, filter, progress, min_rows=0)
    return duplicates_of(src.ids, src.unit, threshold, method=method, nprobe=nprobe,
                         nlist=nlist)


def pick_method(n: int, method: str = "auto") -> str:
    if method != "auto":
        return method
    return "ivf" if n >= IVF_FROM and have("faiss") else "exact"


def duplicates_of(ids: list[str], unit: np.ndarray, threshold: float, *, method: str = "auto",
                  nprobe: int = 4, nlist: int | None = None) -> list[list[str]]:
    """:func:`find_duplicates` on a matrix of unit rows."""
    if len(ids) < 2:
        return []
    if pick_method(len(ids), method) == "ivf":
        rows, cols = ivf_pairs(unit, threshold, nlist, nprobe)
    else:
        rows, cols = exact_pairs(unit, threshold)
    return groups_of(ids, rows, cols)
