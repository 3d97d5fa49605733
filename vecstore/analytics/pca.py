"""PCA over a snapshot, and PCA-reduced copies of a store.

``PCA`` is ``sklearn.decomposition.PCA`` fitted on the snapshot's vectors
as the store compares them (unit length under cosine).  ``reduce_store``
writes a copy whose vectors are the projections (``n_components`` floats
instead of ``dim``) and measures the recall@10 the copy keeps.

Distances in the copy: for a cosine or euclidean store the copy is
euclidean over the centred projections (for unit vectors, Euclidean ranking
is cosine ranking, and PCA keeps Euclidean distances best); for a dot store
it is dot over the uncentred projections ``x @ components.T``.  Queries to
the copy go through ``ReducedStore.map_query``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._analysis.source import Progress, need, read
from .._errors import InvalidArgumentError
from .._segments.segment import prepare
from .._types import Config, Distance
from .clustering import _pos_int


class PCA:
    """Principal components: ``fit`` (a store/snapshot/view, or
    ``fit_matrix``), ``transform``, ``inverse_transform``,
    ``explained_variance_ratio``."""

    def __init__(self, n_components: int, *, seed: int | None = 0) -> None:
        self.n_components = _pos_int("n_components", n_components)
        self.seed = seed
        self._pca: Any = None
        self.distance: Distance | None = None  # set by fit(): inputs prepared like the store's
        self.version: int | None = None
        self.partition: str | None = None

    def fit(self, source: Any, filter: Any = None, *, progress: Progress | None = None) -> PCA:
        src = read(source, filter, progress, min_rows=self.n_components)
        self.fit_matrix(src.prepared)
        self.distance = src.distance
        self.version, self.partition = src.version, src.partition
        return self

    def fit_matrix(self, x: np.ndarray) -> PCA:
        self._pca = need("sklearn.decomposition").PCA(n_components=self.n_components,
                                                      random_state=self.seed).fit(x)
        return self

    def _fitted(self) -> Any:
        if self._pca is None:
            raise InvalidArgumentError("fit() first")
        return self._pca

    def _prep(self, vectors: Any) -> np.ndarray:
        x = np.atleast_2d(np.asarray(vectors, np.float32))
        return prepare(x, self.distance) if self.distance is Distance.COSINE else x

    def transform(self, vectors: Any) -> np.ndarray:
        """Projections (centred) of ``vectors`` (prepared as the fitted store's)."""
        return self._fitted().transform(self._prep(vectors)).astype(np.float32)

    def inverse_transform(self, z: Any) -> np.ndarray:
        return self._fitted().inverse_transform(np.atleast_2d(np.asarray(z))).astype(np.float32)

    def project(self, vectors: Any) -> np.ndarray:
        """Uncentred projections ``x @ components.T`` (dot products are kept)."""
        return (self._prep(vectors) @ self.components.T).astype(np.float32)

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        return self._fitted().explained_variance_ratio_

    @property
    def components(self) -> np.ndarray:
        return self._fitted().components_.astype(np.float32)

    @property
    def mean(self) -> np.ndarray:
        return self._fitted().mean_.astype(np.float32)


def _topk(queries: np.ndarray, base: np.ndarray, k: int, metric: str,
          exclude: np.ndarray) -> np.ndarray:
    """Exact top-``k`` rows of ``base`` per query (excluding row ``exclude[i]``)."""
    sims = queries @ base.T
    if metric == "l2":
        sims = 2 * sims - (base * base).sum(1)[None, :]
    sims[np.arange(len(queries)), exclude] = -np.inf
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return part


def pca_recall(full: np.ndarray, reduced: np.ndarray, queries: np.ndarray, full_metric: str,
               reduced_metric: str, k: int = 10, rerank: int = 0) -> float:
    """Recall@k of exact search in ``reduced`` against exact search in
    ``full`` for the rows ``queries`` (positions; each query's own row
    excluded).  ``rerank > 0``: take that many candidates from ``reduced``,
    re-rank them by ``full``."""
    hit = want = 0
    step = max(1, min(256, (1 << 25) // max(1, full.shape[0])))  # bounded score matrix
    for s in range(0, len(queries), step):
        qpos = queries[s:s + step]
        truth = _topk(full[qpos], full, k, full_metric, qpos)
        got = _topk(reduced[qpos], reduced, max(k, rerank), reduced_metric, qpos)
        if rerank:
            rows = []
            for i, cand in enumerate(got):
                sc = full[cand] @ full[qpos[i]]
                if full_metric == "l2":
                    sc = 2 * sc - (full[cand] * full[cand]).sum(1)
                rows.append(cand[np.argsort(-sc)[:k]])
            got = np.stack(rows)
        for a, b in zip(got, truth):
            hit += len(set(a.tolist()) & set(b.tolist()))
            want += len(b)
    return hit / want if want else 1.0


@dataclass
class ReducedStore:
    """What :func:`reduce_store` built."""

    path: str
    n_components: int
    dim: int
    distance: str  # of the copy
    records: int
    version: int  # the source snapshot's
    recall_at_10: float  # exact search in the copy vs exact search in the source
    recall_at_10_rerank: dict[int, float]  # candidates re-ranked by the original vectors
    explained_variance: float
    seconds: float
    pca: PCA = field(repr=False)

    @property
    def compression(self) -> float:
        return self.dim / self.n_components

    def map_query(self, vector: Any) -> np.ndarray:
        """A query vector of the source store, as the copy takes it."""
        if self.distance == "dot":
            return self.pca.project(vector)[0]
        return self.pca.transform(vector)[0]


def reduce_store(source: Any, dest: str | os.PathLike[str], n_components: int, *,
                 filter: Any = None, sample: int = 500, seed: int = 0,
                 rerank: tuple[int, ...] = (100, 200), config: Config | None = None,
                 batch: int = 10_000, progress: Progress | None = None) -> ReducedStore:
    """Write a PCA-reduced copy of ``source``'s snapshot (same ids, metadata
    and partition) into a new store at ``dest``, index it, and measure the
    recall@10 it keeps on ``sample`` of its own records used as queries."""
    from .._api.sync import VecStore

    t0 = time.perf_counter()
    src = read(source, filter, progress, min_rows=n_components + 11)
    pca = PCA(n_components, seed=seed).fit_matrix(src.prepared)
    pca.distance, pca.version, pca.partition = src.distance, src.version, src.partition
    dot = src.distance is Distance.DOT
    reduced = pca.project(src.vectors) if dot else pca.transform(src.vectors)
    metric_full = "ip" if src.distance is not Distance.EUCLIDEAN else "l2"
    metric_red = "ip" if dot else "l2"
    qpos = np.random.default_rng(seed).choice(len(src.ids), min(sample, len(src.ids)),
                                              replace=False)
    full = src.prepared
    recall = pca_recall(full, reduced, qpos, metric_full, metric_red)
    rr = {r: pca_recall(full, reduced, qpos, metric_full, metric_red, rerank=r)
          for r in rerank if r < len(src.ids)}
    cfg = config or Config(dim=n_components, distance="dot" if dot else "euclidean")
    with VecStore.open(dest, cfg) as out:
        view = out if src.partition == "default" else out.partition(src.partition)
        recs = src.snapshot.scan(src.filter, batch_size=batch)
        pos = 0
        while pos < len(src.ids):
            chunk = [next(recs) for _ in range(min(batch, len(src.ids) - pos))]
            if [r.id for r in chunk] != src.ids[pos:pos + len(chunk)]:  # same snapshot, same order
                raise AssertionError("scan() and vectors() disagree on the snapshot's records")
            view.upsert_many(ids=[r.id for r in chunk], vectors=reduced[pos:pos + len(chunk)],
                             metadata=[r.metadata for r in chunk],
                             message=f"PCA({n_components}) of version {src.version}")
            pos += len(chunk)
        out.optimize()
    return ReducedStore(os.fspath(dest), n_components, int(src.vectors.shape[1]),
                        "dot" if dot else "euclidean", len(src.ids), src.version, recall, rr,
                        float(pca.explained_variance_ratio.sum()), time.perf_counter() - t0,
                        pca)

