"""Child programs for the crash and multi-process tests (not a test module).

Run as ``python tests/_crash_child.py MODE ...`` with PYTHONPATH set to the
repository root.  Modes:

``writer STORE LOG DURABILITY SEED OPBASE SEAL DIM``
    Open STORE for writing and loop forever doing random upsert / upsert_many
    / delete / delete_many calls on ids ``k0..k{POOL-1}``.  Before each call
    it appends ``{"b": n, "op": ..., "ids": [...]}`` to LOG, after the call
    returns ``{"a": n, "r": result}`` (each line flushed and fsynced).  The
    vector of id ``i`` written by op ``n`` is :func:`vector_for` ``(i, n, dim)``
    and its metadata is ``{"op": n}``, so the parent can check both exactly.
    Prints ``ready`` once the store is open.  Meant to be killed with SIGKILL.

``try-open STORE``
    Try to open STORE for writing; print one JSON line
    ``{"error": <exception class name or null>, "elapsed": seconds}``.

``close-mid-seal STORE``
    Write enough rows to start a background seal, ``close()`` at once, then
    wait for any thread still busy to finish; print one JSON line
    ``{"saw_build": bool, "lingering": [busy thread names right after close],
    "before": [...], "after": [...]}`` with the segment files right after
    close and later.

``reader STORE``
    Open STORE with ``read_only=True`` and answer commands read from stdin,
    one JSON line per command on stdout:
    ``state`` -> {"version", "count", "ids": {id: [op, version]}}
    ``check`` -> {"bad": [...]} (vectors and self-queries that are wrong)
    ``refresh`` -> {"ok": true}
    ``write`` -> {"errors": [class names of the errors each write call raised]}
    ``quit`` -> exits.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any

import numpy as np

POOL = 300  # ids k0 .. k299


def vector_for(rid: str, op: int, dim: int) -> np.ndarray:
    """The vector the writer stores for ``rid`` in op number ``op``."""
    rng = np.random.default_rng([op, int(rid[1:])])
    return rng.standard_normal(dim).astype(np.float32) + np.float32(0.01)


def _log(f: Any, obj: dict[str, Any]) -> None:
    f.write(json.dumps(obj) + "\n")
    f.flush()
    os.fsync(f.fileno())


def writer(store_path: str, log_path: str, durability: str, seed: int, opbase: int,
           seal: int, dim: int) -> None:
    from vecstore import Config, VecStore

    rng = random.Random(seed)
    store = VecStore.open(store_path, Config(dim=dim, seal_threshold=seal,
                                             durability=durability))  # type: ignore[arg-type]
    print("ready", flush=True)
    n = opbase
    with open(log_path, "a") as f:
        while True:
            n += 1
            roll = rng.random()
            if roll < 0.3:
                op, ids = "upsert", [f"k{rng.randrange(POOL)}"]
            elif roll < 0.7:
                op, ids = "upsert_many", [f"k{i}" for i in rng.sample(range(POOL),
                                                                       rng.randint(1, 50))]
            elif roll < 0.85:
                op, ids = "delete", [f"k{rng.randrange(POOL)}"]
            else:
                op, ids = "delete_many", [f"k{i}" for i in rng.sample(range(POOL),
                                                                       rng.randint(1, 20))]
            _log(f, {"b": n, "op": op, "ids": ids})
            if op == "upsert":
                r: Any = store.upsert(ids[0], vector_for(ids[0], n, dim), {"op": n})
            elif op == "upsert_many":
                if rng.random() < 0.5:
                    r = store.upsert_many([(i, vector_for(i, n, dim), {"op": n}) for i in ids])
                else:
                    r = store.upsert_many(ids=ids,
                                          vectors=np.stack([vector_for(i, n, dim) for i in ids]),
                                          metadata=[{"op": n} for _ in ids])
            elif op == "delete":
                r = store.delete(ids[0])
            else:
                r = store.delete_many(ids)
            _log(f, {"a": n, "r": r})


def try_open(store_path: str) -> None:
    import vecstore

    t0 = time.monotonic()
    error = None
    try:
        store = vecstore.VecStore.open(store_path)
    except Exception as exc:  # report whatever it is
        error = type(exc).__name__
    else:
        store.close()
    print(json.dumps({"error": error, "elapsed": time.monotonic() - t0}), flush=True)


def close_mid_seal(store_path: str) -> None:
    import threading

    from vecstore import Config, VecStore

    def busy() -> list[str]:
        # Idle trio worker threads are named "Trio thread N"; a busy one is
        # renamed after the function it runs.
        return [t.name for t in threading.enumerate()
                if t is not threading.main_thread() and t.is_alive()
                and not t.name.startswith("Trio thread")]

    rng = np.random.default_rng(5)
    store = VecStore.open(store_path, Config(dim=16, seal_threshold=200))
    store.upsert_many(ids=[f"k{i}" for i in range(2000)],
                      vectors=rng.standard_normal((2000, 16)).astype(np.float32))
    # Close while the background seal is being built (trio names a busy
    # worker thread after its function, here SegmentJob.build).
    deadline = time.monotonic() + 5
    saw_build = False
    while time.monotonic() < deadline and not saw_build:
        saw_build = any(t.name.startswith("build") for t in threading.enumerate())
        time.sleep(0.002)
    store.close()
    lingering = busy()
    seg_dir = os.path.join(store_path, "segments")
    before = sorted(os.listdir(seg_dir))
    deadline = time.monotonic() + 60
    while busy() and time.monotonic() < deadline:
        time.sleep(0.02)
    after = sorted(os.listdir(seg_dir))
    print(json.dumps({"saw_build": saw_build, "lingering": lingering, "before": before,
                      "after": after}), flush=True)


def reader(store_path: str) -> None:
    import vecstore

    store = vecstore.VecStore.open(store_path, read_only=True)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "state":
            ids = {r.id: [r.metadata.get("op"), r.version] for r in store.scan()}
            out: dict[str, Any] = {"version": store.version, "count": len(store), "ids": ids}
        elif cmd == "check":
            bad = []
            dim = store.stats().dimension
            for r in store.scan():
                if not np.array_equal(r.vector, vector_for(r.id, r.metadata["op"], dim)):
                    bad.append(["vector", r.id])
                hits = store.query(r.vector, k=1)
                if not hits or hits[0].id != r.id:
                    bad.append(["query", r.id, hits[0].id if hits else None])
            out = {"bad": bad}
        elif cmd == "refresh":
            store.refresh()
            out = {"ok": True}
        elif cmd == "write":
            errors = []
            for call in (lambda: store.upsert("k0", [1.0] * 8),
                         lambda: store.upsert_many([("k1", [1.0] * 8)]),
                         lambda: store.delete("k0"),
                         lambda: store.delete_many(["k0", "k1"]),
                         lambda: store.optimize()):
                try:
                    call()
                except Exception as exc:
                    errors.append(type(exc).__name__)
                else:
                    errors.append(None)
            out = {"errors": errors}
        elif cmd == "quit":
            break
        else:
            out = {"unknown": cmd}
        print(json.dumps(out), flush=True)
    store.close()


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "writer":
        path, log, durability, seed, opbase, seal, dim = args
        writer(path, log, durability, int(seed), int(opbase), int(seal), int(dim))
    elif mode == "try-open":
        try_open(args[0])
    elif mode == "close-mid-seal":
        close_mid_seal(args[0])
    elif mode == "reader":
        reader(args[0])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
