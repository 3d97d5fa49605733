"""Analytics over snapshots (extra ``vecstore[analytics]``: scikit-learn
and faiss-cpu, imported only when an analysis runs).

Every analysis reads one snapshot -- pass a ``VecStore``, a partition view,
``store.snapshot(version=...)``, a snapshot's ``partition(name)`` or an
``AsyncSnapshot``, plus an optional ``filter`` -- so writes go on meanwhile,
and the result names the version it saw (``result.version``).

>>> from vecstore.analytics import KMeansClustering          # doctest: +SKIP
>>> res = KMeansClustering(n_clusters=8, seed=0).fit(store)  # doctest: +SKIP
>>> res.labels["id1"], res.version                           # doctest: +SKIP
>>> res.write_back(store, field="cluster")                   # doctest: +SKIP

See docs/analytics.md.
"""

from .._analysis.duplicates import find_duplicates
from .._analysis.recommend import recommend, recommend_collaborative, recommend_hybrid
from ._result import AnalysisResult, WriteBack, WriteBackConflictError
from .anomaly import LOF, IsolationForest, ZScoreDetector
from .clustering import DBSCAN, Hierarchical, KMeansClustering
from .pca import PCA, ReducedStore, reduce_store

__all__ = [
    "DBSCAN",
    "LOF",
    "PCA",
    "AnalysisResult",
    "Hierarchical",
    "IsolationForest",
    "KMeansClustering",
    "ReducedStore",
    "WriteBack",
    "WriteBackConflictError",
    "ZScoreDetector",
    "find_duplicates",
    "recommend",
    "recommend_collaborative",
    "recommend_hybrid",
    "reduce_store",
]
