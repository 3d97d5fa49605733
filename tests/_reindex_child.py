"""Child program for tests/test_reindex.py (not a test module).

``python tests/_reindex_child.py STORE LOG FIRST``: open STORE for writing
and loop over reindexes ``FIRST, FIRST+1, ...`` to the settings
``CYCLE[i % len(CYCLE)]``, logging ``{"b": i}`` before each call and
``{"a": i}`` after it returns; meanwhile a thread upserts ``w<n>`` rows
(``{"w": n}`` after each is acknowledged), so threshold seals come due
while a reindex runs.  Prints ``ready`` once the store is open.  Meant to be
killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import numpy as np

from vecstore import Config, PQConfig, VecStore

DIM = 8
SEAL = 300
CYCLE: list[dict[str, Any]] = [
    {"quantization": "sq8"},
    {"quantization": None, "hnsw_m": 8},
    {"index_kind": "hnswlib", "hnsw_m": 16, "ef_construction": 64},
    {"quantization": PQConfig(num_subvectors=4, num_centroids=16, training_iterations=4)},
]


def config() -> Config:
    return Config(dim=DIM, seal_threshold=SEAL)


def vector(n: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal(DIM).astype(np.float32)


def main() -> None:
    store_path, log_path, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lock = threading.Lock()
    log = open(log_path, "a")  # noqa: SIM115 (open until killed)

    def note(obj: dict[str, Any]) -> None:
        with lock:
            log.write(json.dumps(obj) + "\n")
            log.flush()
            os.fsync(log.fileno())

    store = VecStore.open(store_path, config())
    print("ready", flush=True)

    def writes() -> None:
        n = first * 1000
        while True:
            store.upsert(f"w{n}", vector(n))
            note({"w": n})
            n += 1

    threading.Thread(target=writes, daemon=True).start()
    i = first
    while True:
        note({"b": i})
        store.reindex(**CYCLE[i % len(CYCLE)])
        note({"a": i})
        i += 1


if __name__ == "__main__":
    main()
