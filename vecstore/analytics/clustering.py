"""Clustering over a snapshot: k-means, DBSCAN, agglomerative.

Every estimator reads the snapshot's vectors *as the store compares them*
(unit length under cosine, as stored for euclidean/dot) and runs the same
algorithm scikit-learn runs, so on the same matrix with the same
parameters and seed it gives the same labels:

* ``KMeansClustering``: ``sklearn.cluster.KMeans``; from ``FAISS_KMEANS_FROM``
  rows on (``backend="auto"``) faiss's k-means instead -- seeded with
  scikit-learn's k-means++ on a sample, Lloyd iterations on at most
  ``max_points_per_centroid * n_clusters`` sampled rows, then every row
  assigned to its nearest centroid (see docs/analytics.md for the measured
  speed and inertia); k-means++ runs on 32 sampled rows per centroid.
* ``DBSCAN``: ``sklearn.cluster.DBSCAN``; from ``FAISS_GRAPH_FROM`` rows on
  the eps-neighbourhoods are found by faiss (exact range search) and handed
  to scikit-learn as a precomputed sparse graph -- the same labels.
* ``Hierarchical``: ``sklearn.cluster.AgglomerativeClustering`` (quadratic
  memory: refused above ``max_rows``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .._analysis.source import Progress, Source, have, need, read
from .._errors import InvalidArgumentError
from ._result import AnalysisResult

FAISS_KMEANS_FROM = 50_000  # rows; faiss already 1.8x faster at 20,000 (bench_analytics.py)
FAISS_GRAPH_FROM = 5_000  # DBSCAN: faiss range search 1.9x faster at 5,000 rows


def _check_backend(backend: str) -> str:
    if backend not in ("auto", "sklearn", "faiss"):
        raise InvalidArgumentError("backend must be 'auto', 'sklearn' or 'faiss'")
    return backend


def _pos_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise InvalidArgumentError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def _result(kind: str, src: Source, labels: np.ndarray, backend: str, params: dict[str, Any],
            info: dict[str, Any]) -> AnalysisResult:
    return AnalysisResult(kind, src.version, src.partition, src.ids,
                          labels=dict(zip(src.ids, labels.astype(int).tolist())),
                          backend=backend, params=params, info=info, _snapshot=src.snapshot)


class KMeansClustering:
    """k-means with ``n_clusters`` centroids; ``seed`` makes it repeatable.

    ``n_init``, ``max_iter``, ``tol`` are scikit-learn's (its defaults).  The
    result's ``info`` holds ``inertia``, ``n_iter`` and ``centroids``.
    """

    def __init__(self, n_clusters: int = 8, seed: int | None = 0, *, n_init: int | str = "auto",
                 max_iter: int = 300, tol: float = 1e-4, backend: str = "auto",
                 max_points_per_centroid: int = 256) -> None:
        self.n_clusters = _pos_int("n_clusters", n_clusters)
        self.seed = seed
        self.n_init = n_init
        self.max_iter = _pos_int("max_iter", max_iter)
        self.tol = float(tol)
        self.backend = _check_backend(backend)
        self.max_points_per_centroid = _pos_int("max_points_per_centroid",
                                                max_points_per_centroid)
        self.centroids_: np.ndarray | None = None

    def _params(self) -> dict[str, Any]:
        return {"n_clusters": self.n_clusters, "seed": self.seed, "n_init": self.n_init,
                "max_iter": self.max_iter, "tol": self.tol}

    def pick_backend(self, n: int) -> str:
        if self.backend != "auto":
            return self.backend
        return "faiss" if n >= FAISS_KMEANS_FROM and have("faiss") else "sklearn"

    def fit(self, source: Any, filter: Any = None, *,
            progress: Progress | None = None) -> AnalysisResult:
        src = read(source, filter, progress, min_rows=self.n_clusters)
        t0 = time.perf_counter()
        labels, info, backend = self.fit_matrix(src.prepared)
        info["seconds"] = time.perf_counter() - t0
        return _result("kmeans", src, labels, backend, self._params(), info)

    def fit_matrix(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, Any], str]:
        """(labels, info, backend) for a float32 matrix (rows = records)."""
        backend = self.pick_backend(x.shape[0])
        if backend == "faiss":
            labels, info = self._faiss(x)
        else:
            km = need("sklearn.cluster").KMeans(
                n_clusters=self.n_clusters, random_state=self.seed, n_init=self.n_init,
                max_iter=self.max_iter, tol=self.tol).fit(x)
            labels = km.labels_
            info = {"inertia": float(km.inertia_), "n_iter": int(km.n_iter_),
                    "centroids": km.cluster_centers_.astype(np.float32)}
        self.centroids_ = info["centroids"]
        return labels, info, backend

    def _faiss(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        faiss = need("faiss")
        kpp = need("sklearn.cluster").kmeans_plusplus
        n, d = x.shape
        k = self.n_clusters
        rng = np.random.default_rng(self.seed)
        cap = self.max_points_per_centroid * k
        sample = x if n <= cap else x[np.sort(rng.choice(n, cap, replace=False))]
        n_init = 1 if self.n_init == "auto" else int(self.n_init)
        best: tuple[float, np.ndarray] | None = None
        for run in range(n_init):
            seed = int(rng.integers(2**31 - 1)) if self.seed is None or run else self.seed
            seeds = sample if sample.shape[0] <= 32 * k else \
                sample[rng.choice(sample.shape[0], 32 * k, replace=False)]
            init, _ = kpp(seeds, k, random_state=seed)  # k-means++ on 32 rows a centroid
            km = faiss.Kmeans(d, k, niter=self.max_iter, seed=seed,
                              max_points_per_centroid=self.max_points_per_centroid,
                              verbose=False)
            km.train(sample, init_centroids=np.ascontiguousarray(init, np.float32))
            obj = float(km.obj[-1]) if len(km.obj) else float("inf")
            if best is None or obj < best[0]:
                best = (obj, km.centroids.copy())
        assert best is not None
        centroids = best[1]
        index = faiss.IndexFlatL2(d)
        index.add(centroids)
        labels = np.empty(n, np.int64)
        inertia = 0.0
        for s in range(0, n, 65536):
            dist, idx = index.search(x[s:s + 65536], 1)
            labels[s:s + 65536] = idx[:, 0]
            inertia += float(dist.astype(np.float64).sum())
        return labels, {"inertia": inertia, "n_iter": self.max_iter, "centroids": centroids,
                        "trained_on": int(sample.shape[0])}

    def predict(self, vectors: Any) -> np.ndarray:
        """Nearest centroid of each row of ``vectors`` (prepared as the store
        would: pass unit-length rows for a cosine store)."""
        if self.centroids_ is None:
            raise InvalidArgumentError("fit() first")
        x = np.atleast_2d(np.asarray(vectors, np.float32))
        d = (x * x).sum(1)[:, None] - 2 * x @ self.centroids_.T + \
            (self.centroids_ * self.centroids_).sum(1)[None, :]
        return d.argmin(1)


class DBSCAN:
    """Density clusters: ``eps`` (Euclidean radius on the prepared vectors --
    for a cosine store ``eps = sqrt(2 - 2 * min_cosine)``) and
    ``min_samples`` (self included, as in scikit-learn).  Label ``-1`` is noise."""

    def __init__(self, eps: float = 0.5, min_samples: int = 5, *, backend: str = "auto") -> None:
        if not eps > 0:
            raise InvalidArgumentError(f"eps must be > 0, got {eps!r}")
        self.eps = float(eps)
        self.min_samples = _pos_int("min_samples", min_samples)
        self.backend = _check_backend(backend)

    def pick_backend(self, n: int) -> str:
        if self.backend != "auto":
            return self.backend
        return "faiss" if n >= FAISS_GRAPH_FROM and have("faiss") else "sklearn"

    def fit(self, source: Any, filter: Any = None, *,
            progress: Progress | None = None) -> AnalysisResult:
        src = read(source, filter, progress)
        t0 = time.perf_counter()
        labels, backend = self.fit_matrix(src.prepared)
        info = {"seconds": time.perf_counter() - t0,
                "n_noise": int((labels == -1).sum())}
        return _result("dbscan", src, labels, backend,
                       {"eps": self.eps, "min_samples": self.min_samples}, info)

    def fit_matrix(self, x: np.ndarray) -> tuple[np.ndarray, str]:
        cluster = need("sklearn.cluster")
        backend = self.pick_backend(x.shape[0])
        if backend == "faiss":
            from ._graph import radius_graph

            g = radius_graph(x, self.eps)
            est = cluster.DBSCAN(eps=self.eps, min_samples=self.min_samples,
                                 metric="precomputed")
            return est.fit_predict(g), backend
        est = cluster.DBSCAN(eps=self.eps, min_samples=self.min_samples)
        return est.fit_predict(x), backend


class Hierarchical:
    """Agglomerative clustering into ``n_clusters`` with ``linkage`` ("ward",
    "complete", "average", "single").  It needs memory quadratic in the rows,
    so more than ``max_rows`` rows are refused (use a filter, or k-means)."""

    def __init__(self, n_clusters: int = 8, linkage: str = "ward", *,
                 max_rows: int = 20_000) -> None:
        if linkage not in ("ward", "complete", "average", "single"):
            raise InvalidArgumentError(
                "linkage must be 'ward', 'complete', 'average' or 'single'")
        self.n_clusters = _pos_int("n_clusters", n_clusters)
        self.linkage = linkage
        self.max_rows = _pos_int("max_rows", max_rows)

    def fit(self, source: Any, filter: Any = None, *,
            progress: Progress | None = None) -> AnalysisResult:
        src = read(source, filter, progress, min_rows=self.n_clusters)
        if len(src.ids) > self.max_rows:
            raise InvalidArgumentError(
                f"{len(src.ids)} records: agglomerative clustering needs memory quadratic in "
                f"the rows; above max_rows={self.max_rows} use a filter or KMeansClustering")
        t0 = time.perf_counter()
        labels = self.fit_matrix(src.prepared)
        return _result("hierarchical", src, labels, "sklearn",
                       {"n_clusters": self.n_clusters, "linkage": self.linkage},
                       {"seconds": time.perf_counter() - t0})

    def fit_matrix(self, x: np.ndarray) -> np.ndarray:
        est = need("sklearn.cluster").AgglomerativeClustering(n_clusters=self.n_clusters,
                                                              linkage=self.linkage)
        return est.fit_predict(x)
