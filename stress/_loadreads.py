"""The reads of the load harness, shared by its in-process reader tasks
(``load.py``) and its reader processes (``_children.py``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

DIM = 32
GROUPS = 8


def query_vector(reader: int, i: int) -> np.ndarray:
    return np.random.default_rng([reader, i, 3]).standard_normal(DIM).astype(np.float32)


def reader_step(snap: Any, reader: int, i: int, dim: int, k: int, sample_every: int,
                lat: list[Any], samples: list[Any]) -> None:
    """One read on a sync snapshot: a count, a filtered or a plain query."""
    v = snap.version
    if i % 10 == 0:
        t0 = time.perf_counter()
        n = snap.count()
        lat.append(("count", time.perf_counter() - t0))
        samples.append({"v": v, "count": n})
        return
    q = query_vector(reader, i)
    g = (i // 10) % GROUPS if i % 10 in (1, 2) else None
    field = "g" if i % 10 == 1 else "h"  # "g" has a hash index, "h" none
    t0 = time.perf_counter()
    res = snap.query(q, k=k, filter=None if g is None else {field: g})
    lat.append(("knn" if g is None else f"filtered-{field}", time.perf_counter() - t0))
    if i % sample_every == 0 or (g is not None and i % (sample_every * 2) == 1):
        samples.append({"v": v, "r": reader, "i": i, "g": g, "f": field,
                        "ids": [r.id for r in res], "scores": [r.score for r in res],
                        "b": [r.metadata.get("b") for r in res],
                        "mg": [r.metadata.get(field) for r in res]})
