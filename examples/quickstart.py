"""Quickstart: open an embedded store, write, query, filter, snapshot.

Run:  python examples/quickstart.py [STORE_DIR]
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np

from vecstore import Config, Query, VecStore


def main(path: str) -> None:
    rng = np.random.default_rng(7)
    with VecStore.open(path, Config(dim=64, distance="cosine")) as store:
        docs = [(f"doc-{i}", rng.normal(size=64),
                 {"category": ["tech", "food", "travel"][i % 3], "price": i % 100})
                for i in range(2_000)]
        v = store.upsert_many(docs, message="initial load")
        print(f"wrote {len(store)} records at version {v}")

        query = docs[42][1]
        for r in store.query(query, k=3):
            print(f"  {r.id:>10}  score={r.score:.3f}  {r.metadata}")

        cheap_tech = store.query(Query(query).with_limit(3).with_filter(
            "category = 'tech' AND price < 50"))
        print("tech under 50:", [r.id for r in cheap_tech])

        snap = store.snapshot()
        store.delete("doc-42")
        print("after delete:", store.get("doc-42"), "| snapshot still has:",
              snap.get("doc-42").id)  # type: ignore[union-attr]

        store.optimize()
        s = store.stats()
        print(f"stats: {s.total_vectors} vectors, {s.sealed_segments} HNSW segment(s), "
              f"version {s.version}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(f"{tmp}/quickstart.db")
