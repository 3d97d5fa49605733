"""Other engines as benchmark anchors (benchmark-only dependencies, never
vecstore's): Qdrant Edge (``qdrant-edge-py``, Qdrant's engine in-process)
and zvec; and raw faiss.  Imported by ``bench_engine.py`` as ``_anchors``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np

M = 16
EF_CONSTRUCTION = 200


# -- raw faiss ----------------------------------------------------------------------


class RawFaiss:
    """faiss IndexHNSWFlat (or HNSW-SQ8) by inner product, one query at a time."""

    def __init__(self, base: np.ndarray, sq8: bool = False) -> None:
        import faiss

        self.faiss = faiss
        d = base.shape[1]
        if sq8:
            self.index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, M,
                                           faiss.METRIC_INNER_PRODUCT)
            self.index.train(base)
        else:
            self.index = faiss.IndexHNSWFlat(d, M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION
        self.index.add(base)
        faiss.omp_set_num_threads(1)
        self._p: dict[int, Any] = {}

    def search(self, q: np.ndarray, k: int, ef: int) -> np.ndarray:
        p = self._p.get(ef)
        if p is None:
            p = self._p[ef] = self.faiss.SearchParametersHNSW(efSearch=ef)
        _d, i = self.index.search(q[None], k, params=p)
        return i[0]


# -- Qdrant Edge --------------------------------------------------------------------


class Qdrant:
    """A Qdrant Edge shard (qdrant-edge-py): HNSW m=16/ef_construct=200, payload
    ``bucket`` (integer index) and ``ubucket`` (no index), optionally int8
    scalar quantization with rescoring (Qdrant's default)."""

    def __init__(self, path: str, base: np.ndarray, buckets: np.ndarray, sq8: bool = False,
                 batch: int = 1000) -> None:
        import qdrant_edge as qe

        self.qe = qe
        quant = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99,
                                            always_ram=True) if sq8 else None
        cfg = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=base.shape[1], distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(m=M, ef_construct=EF_CONSTRUCTION,
                                           full_scan_threshold=10_000),
            quantization_config=quant, max_search_threads=1)
        self.shard = qe.EdgeShard.create(path, cfg)
        self.shard.update(qe.UpdateOperation.create_field_index(
            "bucket", qe.PayloadSchemaType.Integer))
        for s in range(0, base.shape[0], batch):
            pts = [qe.Point(id=i, vector=base[i].tolist(),
                            payload={"bucket": int(buckets[i]), "ubucket": int(buckets[i])})
                   for i in range(s, min(base.shape[0], s + batch))]
            self.shard.update(qe.UpdateOperation.upsert_points(pts))
        self.shard.flush()
        self.shard.optimize()
        self._params: dict[int, Any] = {}
        self._filters: dict[tuple[str, int], Any] = {}

    def flt(self, field: str, below: int) -> Any:
        key = (field, below)
        f = self._filters.get(key)
        if f is None:
            qe = self.qe
            f = self._filters[key] = qe.Filter(must=[qe.FieldCondition(
                key=field, range=qe.RangeFloat(lt=float(below)))])
        return f

    def search(self, qlist: list[float], k: int, ef: int, flt: Any = None) -> np.ndarray:
        qe = self.qe
        p = self._params.get(ef)
        if p is None:
            p = self._params[ef] = qe.SearchParams(hnsw_ef=ef)
        res = self.shard.query(qe.QueryRequest(limit=k, query=qe.Query.Nearest(qlist),
                                               filter=flt, params=p, with_payload=False))
        return np.fromiter((int(r.id) for r in res), np.int64, len(res))

    def close(self) -> None:
        self.shard.close()


# -- zvec (reopen anchor) -------------------------------------------------------------


def zvec_build(path: str, base: np.ndarray, batch: int = 1000) -> None:
    import zvec

    schema = zvec.CollectionSchema(
        name="bench", vectors=zvec.VectorSchema(
            "emb", zvec.DataType.VECTOR_FP32, dimension=base.shape[1],
            index_param=zvec.HnswIndexParam(metric_type=zvec.MetricType.IP, m=M,
                                            ef_construction=EF_CONSTRUCTION)))
    col = zvec.create_and_open(path=path, schema=schema)
    for s in range(0, base.shape[0], batch):
        col.insert([zvec.Doc(id=str(i), vectors={"emb": base[i].tolist()})
                    for i in range(s, min(base.shape[0], s + batch))])
    col.optimize()
    col.flush()
    del col


_ZVEC_OPEN = """
import sys, time, numpy as np
t0 = time.perf_counter()
import zvec
t1 = time.perf_counter()
col = zvec.open(sys.argv[1])
q = np.load(sys.argv[2])
res = col.query(zvec.VectorQuery("emb", vector=q.tolist(), param=zvec.HnswQueryParam(ef=64)),
                topk=10)
assert len(res) == 10
print(time.perf_counter() - t1)
"""

_STORE_OPEN = """
import sys, time, numpy as np
import vecstore
t1 = time.perf_counter()
s = vecstore.VecStore.open(sys.argv[1])
q = np.load(sys.argv[2])
res = s.query(q, k=10)
assert len(res) == 10
print(time.perf_counter() - t1)
"""


def reopen_seconds(which: str, path: str, qfile: str) -> float:
    """Seconds a fresh process takes to open ``path`` and answer one query
    (imports excluded: both engines' modules are loaded before the clock)."""
    code = _ZVEC_OPEN if which == "zvec" else _STORE_OPEN
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code, path, qfile], capture_output=True,
                         text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def rss_after_open(path: str, qfile: str) -> int:
    """VmRSS growth of a fresh process that opens the store and runs one query."""
    code = """
import sys, numpy as np, vecstore
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
q = np.load(sys.argv[2]); r0 = rss()
s = vecstore.VecStore.open(sys.argv[1], read_only=True); s.query(q, k=10)
print(rss() - r0)
"""
    out = subprocess.run([sys.executable, "-c", code, path, qfile], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])
