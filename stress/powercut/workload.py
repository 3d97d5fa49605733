"""The traced writer: ``python -m stress.powercut.workload SPEC.json``.

Runs every write path of vecstore at random until it is killed: upsert,
upsert_many (both forms), delete, delete_many (ids and filter), rollback
(a partition or the whole store), compact (with a short retention, so it
purges), optimize (seal + merge), seals and merges in the background
(small ``seal_threshold``), create_index (backfill), an import with its
progress record, and reopening the store (recovery, garbage collection,
vacuum when the spec lowers its thresholds).  Segment files are written by
the kind the spec names (hnswlib, or faiss with sq8 quantization).

Every call is logged to the ack file before it starts (``{"b": n, ...}``)
and after it returns (``{"a": n, "r": result, "v": store.version}``), one
``write`` per line.  The ack file is traced too, so a power cut at any
point of the log knows exactly which calls had been acknowledged.
"""

from __future__ import annotations

import json
import os
import random
import sys
from typing import Any

import numpy as np

DIM = 8
POOLS = {"default": 500, "t1": 120}
IMPORT_PART = "imp"
IMPORT_OP = 7
IMPORT_N = 240
IMPORT_BATCH = 40


def vec(rid: str, n: int) -> np.ndarray:
    from stress._common import vector_for

    return vector_for(rid, n, DIM)


def meta(n: int) -> dict[str, int]:
    return {"op": n, "g": n % 5}


def write_import_source(path: str) -> None:
    with open(path, "w") as f:
        for i in range(IMPORT_N):
            f.write(json.dumps({"id": f"m{i}", "vector": vec(f"m{i}", IMPORT_OP).tolist(),
                                "payload": {"i": i}}) + "\n")


def config(spec: dict[str, Any]) -> Any:
    from vecstore import Config

    kw: dict[str, Any] = {"dim": DIM, "seal_threshold": spec["seal"], "durability":
                          spec["durability"], "ef_construction": 40}
    if spec.get("faiss"):
        kw.update(index_kind="faiss", quantization="sq8")
    return Config(**kw)


def main(spec: dict[str, Any]) -> None:
    from vecstore import VecStore
    from vecstore.migration import MigrationConfig, QdrantMigration

    if spec.get("vacuum"):
        import vecstore._storage.vacuum as vacuum

        vacuum.MIN_BYTES = 1  # rewrite whenever half of data.mdb is free (normally 64 MB+)
        vacuum.FREE_SHARE = spec["vacuum"]
    rng = random.Random(spec["seed"])
    fd = os.open(spec["ack"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def log(obj: dict[str, Any]) -> None:
        os.write(fd, (json.dumps(obj) + "\n").encode())

    path = spec["store"]
    n = spec["opbase"]
    log({"b": n, "op": "open"})
    store = VecStore.open(path, config(spec))
    log({"a": n, "r": None, "v": store.version})
    n += 1
    log({"b": n, "op": "set_retention"})
    store.set_retention(versions=spec["retention"])
    log({"a": n, "r": None, "v": store.version})
    known = list(spec["targets"])
    imported = False
    indexed: set[str] = set(store.indexes())
    while True:
        n += 1
        part = "default" if rng.random() < 0.8 else "t1"
        view: Any = store if part == "default" else store.partition(part)
        pool = POOLS[part]
        roll = rng.random()
        e: dict[str, Any] = {"b": n, "p": part}
        if roll < 0.22:
            e.update(op="upsert", ids=[f"k{rng.randrange(pool)}"])
        elif roll < 0.52:
            e.update(op="upsert_many",
                     ids=[f"k{i}" for i in rng.sample(range(pool), rng.randint(2, 50))],
                     form=rng.choice(["items", "columns"]))
        elif roll < 0.62:
            e.update(op="delete", ids=[f"k{rng.randrange(pool)}"])
        elif roll < 0.70:
            e.update(op="delete_many",
                     ids=[f"k{i}" for i in rng.sample(range(pool), rng.randint(2, 20))])
        elif roll < 0.72:
            e.update(op="delete_filter", g=rng.randrange(5))
        elif roll < 0.78 and known:
            e.update(op="rollback", t=rng.choice(known[-15:]),
                     scope="part" if imported or rng.random() < 0.5 else "store")
        elif roll < 0.81:
            e.update(op="compact")
        elif roll < 0.83:
            e.update(op="optimize")
        elif roll < 0.845 and len(indexed) < 2:
            field = "g" if "g" not in indexed else "op"
            e.update(op="create_index", field=field, kind="btree" if field == "g" else "hash")
        elif roll < 0.86 and not imported and spec.get("import_src"):
            e.update(op="import")
        elif roll < 0.87:
            e.update(op="reopen")
        else:
            e.update(op="upsert", ids=[f"k{rng.randrange(pool)}"])
        log(e)
        op = e["op"]
        r: Any = None
        if op == "upsert":
            rid = e["ids"][0]
            r = view.upsert(rid, vec(rid, n), meta(n))
        elif op == "upsert_many":
            ids = e["ids"]
            if e["form"] == "items":
                r = view.upsert_many([(i, vec(i, n), meta(n)) for i in ids])
            else:
                r = view.upsert_many(ids=ids, vectors=np.stack([vec(i, n) for i in ids]),
                                     metadata=[meta(n) for _ in ids])
        elif op == "delete":
            r = view.delete(e["ids"][0])
        elif op == "delete_many":
            r = view.delete_many(e["ids"])
        elif op == "delete_filter":
            r = view.delete_many(filter={"g": e["g"]})
        elif op == "rollback":
            r = store.rollback(e["t"]) if e["scope"] == "store" else \
                store.partition(part).rollback(e["t"])
        elif op == "compact":
            r = store.compact()
        elif op == "optimize":
            store.optimize()
        elif op == "create_index":
            r = store.create_index(e["field"], e["kind"])
            indexed.add(e["field"])
        elif op == "import":
            imported = True
            cfg = MigrationConfig(batch_size=IMPORT_BATCH, partition=IMPORT_PART, index=False)
            st = QdrantMigration(cfg).import_from_file(spec["import_src"], store)
            r = {"done": st is not None}
        elif op == "reopen":
            store.close()
            store = VecStore.open(path, config(spec))
            view = store
        v = store.version
        if op in ("upsert", "upsert_many", "delete", "delete_many", "delete_filter",
                  "rollback"):
            known.append(v)
        log({"a": n, "r": r, "v": v})


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        main(json.load(f))


def setup(spec: dict[str, Any], out: str) -> None:
    """Build the starting store of a run (not traced): records in both
    partitions, sealed segments, and -- for a vacuum run -- a data.mdb whose
    pages are mostly free.  Writes the state it left (records, version,
    versions a rollback may target) to ``out``."""
    from vecstore import VecStore

    n = spec["opbase"] - 100
    with VecStore.open(spec["store"], config(spec)) as store:
        if spec.get("vacuum"):
            junk = [f"j{i}" for i in range(6000)]
            for i in range(0, len(junk), 1000):
                store.upsert_many(ids=junk[i:i + 1000],
                                  vectors=np.stack([vec(j, n) for j in junk[i:i + 1000]]),
                                  metadata=[meta(n)] * 1000)
            store.optimize()
            store.delete_many(junk)
            store.set_retention(versions=1)
            store.compact()
        store.set_retention(versions=spec["retention"])
        for part, count in (("default", POOLS["default"] * 4 // 5), ("t1", POOLS["t1"] // 2)):
            n += 1
            ids = [f"k{i}" for i in range(count)]
            view = store.partition(part)
            view.upsert_many(ids=ids, vectors=np.stack([vec(i, n) for i in ids]),
                             metadata=[meta(n)] * count)
        store.optimize()
        recs = {p: {r.id: [r.metadata["op"], r.version] for r in store.partition(p).scan()}
                for p in store.partitions()}
        version = store.version
    with open(out, "w") as f:
        json.dump({"records": recs, "version": version, "targets": [version]}, f)
