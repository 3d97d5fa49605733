#!/usr/bin/env python
"""Change-feed targets (issue #17): reading recent changes, replication into Qdrant.

Run (from the repository root)::

    PYTHONPATH=. python benchmarks/bench_changes.py [--records 50000] [--dim 384] [--json OUT]

1. *Recent changes vs a full export.*  A store of ``--records`` records
   (``--dim``-d random vectors, small metadata) written one upsert per version
   (``durability="relaxed"``, retention widened to keep them all).  Reading
   ``store.changes(since=v)`` for the last 1% of its versions is timed against
   a full export of the store (``QdrantMigration().export_to_file``, JSON
   Lines), interleaved, median of ``--rounds``: target >= 50x.
2. *Replication throughput.*  The first ``--repl-records`` records replicated
   into qdrant-client's local mode (``QdrantClient(path=...)``) by
   ``QdrantReplicator`` from a collection marked at version 0 (so it runs the
   change feed), against a plain loop of ``client.upsert`` of the same batches
   (the same PointStructs: uuid5 ids, metadata payloads, vectors as lists,
   built inside the loop as a user's loop would) into a fresh collection;
   interleaved, median of ``--rounds``: target >= 0.8x.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vecstore import Config, VecStore
from vecstore.migration import QdrantMigration
from vecstore.migration.replicate import (
    ID_KEY,
    MARK_KEY,
    PART_KEY,
    QdrantReplicator,
    point_id,
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build(path: str, n: int, dim: int) -> tuple[VecStore, np.ndarray]:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    store = VecStore.open(path, Config(dim=dim, durability="relaxed"))
    store.set_retention(versions=n + 10)
    t0 = time.perf_counter()
    for i in range(n):
        store.upsert(f"doc{i}", vecs[i], {"i": i, "cat": "abc"[i % 3]})
        if i and i % 10000 == 0:
            log(f"  {i:,} versions ({time.perf_counter() - t0:.0f} s)")
    return store, vecs


def bench_feed(store: VecStore, rounds: int, tmp: str) -> dict[str, Any]:
    n_versions = store.version
    since = store.version - max(1, n_versions // 100)
    out = os.path.join(tmp, "full.jsonl")
    feed_s, export_s = [], []
    count = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        count = sum(1 for _c in store.changes(since=since))
        feed_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        QdrantMigration().export_to_file(store, out)
        export_s.append(time.perf_counter() - t0)
    f, e = statistics.median(feed_s), statistics.median(export_s)
    return {"versions": n_versions, "since": since, "changes_read": count,
            "changes_s": f, "export_s": e, "ratio": e / f, "target": 50.0,
            "pass": e / f >= 50.0}


def bench_replication(path: str, n: int, vecs: np.ndarray, rounds: int, batch: int,
                      tmp: str) -> dict[str, Any]:
    from qdrant_client import QdrantClient, models

    with VecStore.open(path, read_only=True) as store:
        dim = vecs.shape[1]
        qdir = os.path.join(tmp, "q")
        client = QdrantClient(path=qdir)
        params = models.VectorParams(size=dim, distance=models.Distance.COSINE)
        plain_s, repl_s = [], []
        for r in range(rounds):
            # the plain loop: same batches, same points
            name = f"plain{r}"
            client.create_collection(name, vectors_config=params)
            t0 = time.perf_counter()
            for lo in range(0, n, batch):
                pts = [models.PointStruct(
                    id=point_id("default", f"doc{i}"), vector=vecs[i].tolist(),
                    payload={"i": i, "cat": "abc"[i % 3], ID_KEY: f"doc{i}",
                             PART_KEY: "default"}) for i in range(lo, min(n, lo + batch))]
                client.upsert(name, points=pts, wait=True)
            plain_s.append(time.perf_counter() - t0)
            # the replicator, from version 0 through the change feed
            name = f"repl{r}"
            client.create_collection(name, vectors_config=params,
                                     metadata={MARK_KEY: {"version": 0}})
            rep = QdrantReplicator(client, name, batch_size=batch)
            t0 = time.perf_counter()
            _replicate_first(rep, store, n)
            repl_s.append(time.perf_counter() - t0)
            assert client.count(name).count == n, client.count(name)
            log(f"  round {r}: plain {plain_s[-1]:.2f} s, replicator {repl_s[-1]:.2f} s")
        client.close()
    p, q = statistics.median(plain_s), statistics.median(repl_s)
    return {"records": n, "batch": batch, "plain_s": p, "replicate_s": q,
            "plain_per_s": n / p, "replicate_per_s": n / q, "ratio": p / q,
            "target": 0.8, "pass": p / q >= 0.8}


def _replicate_first(rep: QdrantReplicator, store: VecStore, n: int) -> None:
    """Replicate versions 1..n (the first n records) through the change feed."""
    from vecstore.migration.replicate import _Target

    rep._apply(_Until(store, n), _Target(rep.collection, None), 0)


class _Until:
    """The store as of version n (the replicator reads up to ``version``)."""

    def __init__(self, store: VecStore, n: int) -> None:
        self._s, self.version = store, n

    def changes(self, **kw: Any) -> Any:
        return self._s.changes(**kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--repl-records", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--json")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-changes-")
    try:
        path = os.path.join(tmp, "s.db")
        log(f"building {args.records:,} records x {args.dim}, one version each")
        store, vecs = build(path, args.records, args.dim)
        log("changes() of the last 1% of versions vs a full export")
        feed = bench_feed(store, args.rounds, tmp)
        store.close()
        log(json.dumps(feed))
        log(f"replication of {args.repl_records:,} records into Qdrant local mode")
        repl = bench_replication(path, min(args.repl_records, args.records), vecs,
                                 args.rounds, args.batch, tmp)
        log(json.dumps(repl))
        print(f"changes(last 1%): {feed['changes_read']:,} changes in "
              f"{feed['changes_s'] * 1e3:.1f} ms; full export {feed['export_s']:.2f} s; "
              f"{feed['ratio']:.0f}x (target >= 50x) {'PASS' if feed['pass'] else 'FAIL'}")
        print(f"replication: {repl['replicate_per_s']:,.0f} points/s vs plain upsert loop "
              f"{repl['plain_per_s']:,.0f} points/s: {repl['ratio']:.2f}x (target >= 0.8x) "
              f"{'PASS' if repl['pass'] else 'FAIL'}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"changes": feed, "replication": repl, "args": vars(args)}, f,
                          indent=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
