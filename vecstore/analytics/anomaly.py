"""Anomaly detection over a snapshot.

Scores are "higher = more anomalous"; labels are ``1`` for an outlier and
``0`` for an inlier.

* ``IsolationForest``: ``sklearn.ensemble.IsolationForest``; score =
  ``-score_samples(X)``, outlier = ``predict(X) == -1``.
* ``LOF``: ``sklearn.neighbors.LocalOutlierFactor``; score =
  ``-negative_outlier_factor_`` (the LOF, ~1 for inliers), outlier =
  ``fit_predict(X) == -1``.  From ``LOF_FAISS_FROM`` rows on the k-NN graph
  comes from faiss (exact search) and is handed to scikit-learn precomputed.
* ``ZScoreDetector``: each record's distance to the mean vector, as a
  z-score over the records (``(d - mean(d)) / std(d)``); outlier = score >
  ``threshold``.  numpy only.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .._analysis.source import Progress, Source, have, need, read
from .._errors import InvalidArgumentError
from ._result import AnalysisResult
from .clustering import _check_backend, _pos_int

LOF_FAISS_FROM = 20_000  # rows; faiss k-NN graph 1.4x faster at 20,000, slower at 5,000


def _result(kind: str, src: Source, scores: np.ndarray, outlier: np.ndarray, backend: str,
            params: dict[str, Any], t0: float) -> AnalysisResult:
    return AnalysisResult(
        kind, src.version, src.partition, src.ids,
        labels=dict(zip(src.ids, outlier.astype(int).tolist())),
        scores=dict(zip(src.ids, scores.astype(float).tolist())), backend=backend,
        params=params, info={"seconds": time.perf_counter() - t0,
                             "n_outliers": int(outlier.sum())},
        _snapshot=src.snapshot)


class IsolationForest:
    """Isolation forest (``n_estimators`` trees, ``contamination`` as in
    scikit-learn: ``"auto"`` or the expected share of outliers)."""

    def __init__(self, seed: int | None = 0, *, n_estimators: int = 100,
                 contamination: float | str = "auto", max_samples: int | str = "auto") -> None:
        self.seed = seed
        self.n_estimators = _pos_int("n_estimators", n_estimators)
        self.contamination = contamination
        self.max_samples = max_samples

    def _est(self) -> Any:
        return need("sklearn.ensemble").IsolationForest(
            n_estimators=self.n_estimators, contamination=self.contamination,
            max_samples=self.max_samples, random_state=self.seed)

    def fit(self, source: Any, filter: Any = None, *,
            progress: Progress | None = None) -> AnalysisResult:
        src = read(source, filter, progress, min_rows=2)
        t0 = time.perf_counter()
        scores, outlier = self.fit_matrix(src.prepared)
        return _result("isolation_forest", src, scores, outlier, "sklearn",
                       {"seed": self.seed, "n_estimators": self.n_estimators,
                        "contamination": self.contamination}, t0)

    def fit_matrix(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        est = self._est().fit(x)
        return -est.score_samples(x), est.predict(x) == -1


class LOF:
    """Local outlier factor over each record's ``n_neighbors`` nearest
    (Euclidean on the prepared vectors)."""

    def __init__(self, n_neighbors: int = 20, *, contamination: float | str = "auto",
                 backend: str = "auto") -> None:
        self.n_neighbors = _pos_int("n_neighbors", n_neighbors)
        self.contamination = contamination
        self.backend = _check_backend(backend)

    def pick_backend(self, n: int) -> str:
        if self.backend != "auto":
            return self.backend
        return "faiss" if n >= LOF_FAISS_FROM and have("faiss") else "sklearn"

    def fit(self, source: Any, filter: Any = None, *,
            progress: Progress | None = None) -> AnalysisResult:
        src = read(source, filter, progress, min_rows=2)
        t0 = time.perf_counter()
        scores, outlier, backend = self.fit_matrix(src.prepared)
        return _result("lof", src, scores, outlier, backend,
                       {"n_neighbors": self.n_neighbors, "contamination": self.contamination},
                       t0)

    def fit_matrix(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        neighbors = need("sklearn.neighbors")
        k = min(self.n_neighbors, x.shape[0] - 1)
        backend = self.pick_backend(x.shape[0])
        if backend == "faiss":
            from ._graph import knn_graph

            est = neighbors.LocalOutlierFactor(n_neighbors=k, metric="precomputed",
                                               contamination=self.contamination)
            pred = est.fit_predict(knn_graph(x, k))
        else:
            est = neighbors.LocalOutlierFactor(n_neighbors=k, contamination=self.contamination)
            pred = est.fit_predict(x)
        return -est.negative_outlier_factor_, pred == -1, backend


class ZScoreDetector:
    """Distance to the mean vector, standardised over the records; a record
    more than ``threshold`` standard deviations farther than average is an
    outlier."""

    def __init__(self, threshold: float = 3.0) -> None:
        if not threshold > 0:
            raise InvalidArgumentError(f"threshold must be > 0, got {threshold!r}")
        self.threshold = float(threshold)

    def fit(self, source: Any, filter: Any = None, *,
            progress: Progress | None = None) -> AnalysisResult:
        src = read(source, filter, progress, min_rows=2)
        t0 = time.perf_counter()
        scores, outlier = self.fit_matrix(src.prepared)
        return _result("zscore", src, scores, outlier, "numpy",
                       {"threshold": self.threshold}, t0)

    def fit_matrix(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = x.sum(0, dtype=np.float64) / x.shape[0]
        d = np.empty(x.shape[0])
        for s in range(0, x.shape[0], 65536):  # bounded float64 scratch
            diff = x[s:s + 65536].astype(np.float64) - mean
            d[s:s + 65536] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        sd = d.std()
        z = (d - d.mean()) / sd if sd > 0 else np.zeros_like(d)
        return z, z > self.threshold
