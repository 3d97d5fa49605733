"""Child program for tests/test_hybrid_crash.py (not a test module): open
STORE with a text field and write records with text and sparse vectors in a
loop (upserts, batches, deletes) until killed.

    python tests/_hybrid_crash_child.py STORE SEED SEAL
"""

from __future__ import annotations

import random
import sys

import numpy as np

WORDS = [
    "vector", "database", "embedded", "crash", "safe", "rust", "python", "search", "index",
    "text", "query", "fusion", "sparse", "dense", "sqlite", "lmdb", "kernel"
]
POOL = 200


def text_for(rng: random.Random) -> str | None:
    if rng.random() < 0.1:
        return None
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))


def main(path: str, seed: int, seal: int) -> None:
    from vecstore import Config, VecStore

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    store = VecStore.open(path, Config(dim=8, seal_threshold=seal, text_field="content"))
    print("ready", flush=True)
    while True:
        roll = rng.random()
        if roll < 0.7:
            n = rng.randint(1, 40)
            ids = list(dict.fromkeys(f"k{rng.randrange(POOL)}" for _ in range(n)))
            texts = [text_for(rng) for _ in ids]
            store.upsert_many(
                ids=ids, vectors=nrng.normal(size=(len(ids), 8)).astype(np.float32) + 0.01,
                metadata=[{} if t is None else {"content": t} for t in texts],
                sparse=[{rng.randrange(50): 1.0 + rng.random()} if rng.random() < 0.5 else None
                        for _ in ids])
        elif roll < 0.9:
            store.delete(f"k{rng.randrange(POOL)}")
        else:
            store.delete_many([f"k{rng.randrange(POOL)}" for _ in range(5)])


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
