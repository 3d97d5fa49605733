"""The seed's multi-tenant spelling, re-exported: ``PartitionedStore`` is a
:class:`~vecstore.VecStore` with the partition named in each call::

    with PartitionedStore.open("data") as ps:
        ps.insert("tenant_a", "doc1", vec, {"kind": "note"})
        ps.query_partition("tenant_a", Query(vec).with_limit(5))
        ps.query_all(vec, k=5)        # every partition, merged by score
"""

from .aio import AsyncPartitionedStore
from .sync import PartitionedStore

__all__ = ["AsyncPartitionedStore", "PartitionedStore"]
