"""vecstore: an embedded, crash-safe vector database for Python.

>>> from vecstore import VecStore, Config              # doctest: +SKIP
>>> with VecStore.open("my_vectors.db") as store:       # doctest: +SKIP
...     store.upsert("id1", [0.1, 0.2, 0.3], {"category": "tech"})
...     store.query([0.1, 0.2, 0.3], k=5)
"""

from ._api.aio import (
    AsyncPartitionedStore,
    AsyncPartitionView,
    AsyncSnapshot,
    AsyncVecStore,
    AsyncVersionedStore,
)
from ._api.sync import PartitionedStore, PartitionView, VecStore, VersionedStore
from ._errors import *  # noqa: F403
from ._errors import __all__ as _error_names
from ._metrics.recorder import Histogram, Metrics
from ._query.plan import QueryPlan
from ._query.snapshot import Snapshot
from ._types import (
    Change,
    Config,
    Distance,
    HybridQuery,
    PQConfig,
    Query,
    Record,
    RecordVersion,
    Result,
    Stats,
    TextIndex,
    VersionInfo,
)

__version__ = "0.1.0"

__all__ = [
    *_error_names,
    "AsyncPartitionView",
    "AsyncPartitionedStore",
    "AsyncSnapshot",
    "AsyncVecStore",
    "AsyncVersionedStore",
    "Change",
    "Config",
    "Distance",
    "Histogram",
    "HybridQuery",
    "Metrics",
    "PartitionView",
    "PartitionedStore",
    "PQConfig",
    "Query",
    "QueryPlan",
    "Record",
    "RecordVersion",
    "Result",
    "Snapshot",
    "Stats",
    "TextIndex",
    "VecStore",
    "VersionedStore",
    "VersionInfo",
]
