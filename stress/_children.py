"""Programs that run in child processes (started through the forkserver of
:func:`stress._common.fork_context`, which preloads this module).

Each child sends its stdout/stderr to a file of its own, so a dying child's
last words can be shown by the parent.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

import numpy as np

import vecstore
from vecstore import Config, VecStore

from ._common import vector_for
from ._loadreads import reader_step  # shared with load.py's in-process reader tasks


def _redirect(err_path: str) -> None:
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


# -- kill loop: the writer --------------------------------------------------------------------

PARTS = ("default", "t1")


def kill_writer(store_path: str, log_path: str, err_path: str, seed: int, opbase: int,
                cfg: dict[str, Any], pools: dict[str, int], retention: int,
                targets: list[int]) -> None:
    """Write forever; log ``{"b": n, ...}`` before each call and ``{"a": n,
    "r": result}`` (or ``"e"``: the error) after it returns.  The log is an
    O_APPEND file written with one ``write`` per line: it survives SIGKILL
    (the page cache outlives the process)."""
    _redirect(err_path)
    rng = random.Random(seed)
    logfd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def log(obj: dict[str, Any]) -> None:
        os.write(logfd, (json.dumps(obj) + "\n").encode())

    store = VecStore.open(store_path, Config(**cfg))
    store.set_retention(versions=retention)
    log({"ready": store.version})
    known = list(targets)  # versions whose state the parent knows
    dim = cfg["dim"]
    n = opbase
    while True:
        n += 1
        part = "default" if rng.random() < 0.8 else "t1"
        view: Any = store if part == "default" else store.partition(part)
        pool = pools[part]
        roll = rng.random()
        entry: dict[str, Any] = {"b": n, "p": part}
        if roll < 0.25:
            entry.update(op="upsert", ids=[f"k{rng.randrange(pool)}"])
        elif roll < 0.60:
            entry.update(op="upsert_many",
                         ids=[f"k{i}" for i in rng.sample(range(pool), rng.randint(1, 60))])
        elif roll < 0.72:
            entry.update(op="delete", ids=[f"k{rng.randrange(pool)}"])
        elif roll < 0.80:
            entry.update(op="delete_many",
                         ids=[f"k{i}" for i in rng.sample(range(pool), rng.randint(1, 20))])
        elif roll < 0.82:
            entry.update(op="upsert_many",
                         ids=[f"k{i}" for i in rng.sample(range(pool), rng.randint(1, 60))])
        elif roll < 0.90 and known:
            entry.update(op="rollback", ids=[], t=rng.choice(known[-40:]),
                         scope=rng.choice(["store", "part"]))
        elif roll < 0.915:
            entry.update(op="compact", ids=[])
        elif roll < 0.925:
            entry.update(op="optimize", ids=[])
        else:
            entry.update(op="upsert", ids=[f"k{rng.randrange(pool)}"])
        log(entry)
        op, ids = entry["op"], entry["ids"]
        try:
            if op == "upsert":
                r: Any = view.upsert(ids[0], vector_for(ids[0], n, dim), {"op": n})
            elif op == "upsert_many":
                if rng.random() < 0.5:
                    r = view.upsert_many([(i, vector_for(i, n, dim), {"op": n}) for i in ids])
                else:
                    r = view.upsert_many(ids=ids, vectors=np.stack([vector_for(i, n, dim)
                                                                    for i in ids]),
                                         metadata=[{"op": n} for _ in ids])
            elif op == "delete":
                r = view.delete(ids[0])
            elif op == "delete_many":
                r = view.delete_many(ids)
            elif op == "rollback":
                r = store.rollback(entry["t"]) if entry["scope"] == "store" else \
                    store.partition(part).rollback(entry["t"])
            elif op == "compact":
                r = store.compact()
            else:
                store.optimize()
                r = None
        except Exception as exc:
            log({"a": n, "e": type(exc).__name__, "m": str(exc)[:300]})
            continue
        if isinstance(r, int) and not isinstance(r, bool):
            known.append(r)
        log({"a": n, "r": r})


# -- load: a reader process ---------------------------------------------------------------------


def load_reader(store_path: str, out_path: str, err_path: str, reader_id: int,
                deadline: float, dim: int, k: int, sample_every: int) -> None:
    """Query a ``read_only=True`` store until ``deadline`` (time.time()),
    refreshing every 0.2 s; write latencies, samples and errors to out_path."""
    _redirect(err_path)

    lat: list[Any] = []
    samples: list[Any] = []
    errors: list[str] = []
    refreshes = 0
    try:
        store = VecStore.open(store_path, read_only=True)
    except Exception as exc:
        errors.append(f"open: {type(exc).__name__}: {exc}")
        store = None
    i = 0
    last_refresh = 0.0
    while store is not None and time.time() < deadline:
        try:
            now = time.monotonic()
            if now - last_refresh > 0.2:
                store.refresh()
                refreshes += 1
                last_refresh = now
            snap = store.snapshot()
            i += 1
            reader_step(snap, reader_id + 1000, i, dim, k, sample_every, lat, samples)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            if len(errors) > 20:
                break
    if store is not None:
        store.close()
    with open(out_path, "w") as f:
        json.dump({"lat": lat, "samples": samples, "errors": errors, "refreshes": refreshes}, f)


__all__ = ["kill_writer", "load_reader", "vecstore"]
