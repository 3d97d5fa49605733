"""Replication into Qdrant (issue #17), against qdrant-client's local mode:
after a random workload (upserts, deletes, rollbacks, a dropped partition,
compaction) and random kills of the replicator (SIGKILL between a write to
Qdrant and the mark that records it), the collection holds exactly the
store's live records, and a filtered Qdrant query returns what ours does."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecstore import Config, VecStore

qdrant_client = pytest.importorskip("qdrant_client")
from qdrant_client import QdrantClient, models

from vecstore.migration.replicate import (
    ID_KEY,
    PART_KEY,
    QdrantReplicator,
    point_id,
)

DIM = 8
PARTS = ["default", "t1", "t2"]


def workload(store: VecStore, rng: random.Random, steps: int) -> None:
    for _ in range(steps):
        part = rng.choice(PARTS)
        view = store if part == "default" else store.partition(part)
        r = rng.random()
        if r < 0.55:
            items = [(f"r{rng.randrange(60)}",
                      np.asarray([rng.gauss(0, 1) for _ in range(DIM)], np.float32) + 0.01,
                      {"cat": rng.choice("abc"), "n": rng.randrange(100),
                       "tags": [rng.choice("xyz")]})
                     for _ in range(rng.randrange(1, 40))]
            view.upsert_many(items)
        elif r < 0.8:
            view.delete_many([f"r{rng.randrange(60)}" for _ in range(rng.randrange(1, 10))])
        elif r < 0.9 and store.version > 2:
            floor = store.versions()[0].version
            view.rollback(rng.randrange(max(floor, 1), store.version))
        elif r < 0.95:
            store.drop_partition(rng.choice(["t1", "t2"]))
        else:
            store.compact()


def target_points(client: QdrantClient, name: str) -> dict[tuple[str, str], tuple[Any, dict]]:
    out = {}
    offset = None
    while True:
        pts, offset = client.scroll(name, limit=500, offset=offset, with_payload=True,
                                    with_vectors=True)
        for p in pts:
            payload = dict(p.payload)
            key = (payload.pop(PART_KEY), payload.pop(ID_KEY))
            assert str(p.id) == point_id(*key)
            out[key] = (np.asarray(p.vector, np.float32), payload)
        if offset is None:
            return out


def live_records(store: VecStore, parts: list[str]) -> dict[tuple[str, str], tuple[Any, dict]]:
    snap = store.snapshot()
    return {(p, r.id): (r.vector, r.metadata) for p in parts
            for r in snap.partition(p).scan()}


def assert_same(store: VecStore, client: QdrantClient, name: str, parts: list[str],
                cosine: bool) -> None:
    got = target_points(client, name)
    want = live_records(store, parts)
    assert set(got) == set(want)
    for key, (vec, meta) in want.items():
        if cosine and not np.allclose(got[key][0], vec, rtol=1e-5, atol=1e-6):
            vec = vec / np.linalg.norm(vec)  # a Qdrant server normalises cosine vectors
        np.testing.assert_allclose(got[key][0], vec, rtol=1e-5, atol=1e-6)
        assert got[key][1] == meta, key


def run_cli(store: Path, qpath: Path, *extra: str, kill_after: int | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("VECSTORE_TEST_KILL_AFTER_WRITES", None)
    if kill_after is not None:
        env["VECSTORE_TEST_KILL_AFTER_WRITES"] = str(kill_after)
    return subprocess.run(
        [sys.executable, "-m", "vecstore.cli", "replicate", str(store), "qdrant", str(qpath),
         "--collection", "docs", "--batch-size", "16", "-q", *extra],
        capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("layout", ["payload", "collections"])
def test_kills_and_resumes_exactly(tmp_path: Path, layout: str) -> None:
    rng = random.Random(17 if layout == "payload" else 71)
    path, qpath = tmp_path / "s.db", tmp_path / "q"
    distance = "cosine" if layout == "payload" else "euclidean"
    kills = 0
    with VecStore.open(path, Config(dim=DIM, distance=distance)) as store:
        store.set_retention(versions=200)
        for _round in range(3):
            workload(store, rng, 25)
            for _attempt in range(10):  # killed at a random write, then left to finish
                res = run_cli(path, qpath, "--layout", layout,
                              kill_after=rng.randrange(1, 8) if _attempt < 2 else None)
                if res.returncode == 0:
                    break
                assert res.returncode == -9, res.stderr
                kills += 1
            else:
                pytest.fail("the replicator never finished")
    assert kills >= 4
    client = QdrantClient(path=str(qpath))
    try:
        with VecStore.open(path, read_only=True) as store:
            if layout == "payload":
                assert_same(store, client, "docs", PARTS, cosine=True)
                meta = client.get_collection("docs").config.metadata
                assert meta["vecstore"]["version"] == store.version
                q = np.ones(DIM, np.float32)
                for part in ("default", "t1"):
                    view = store if part == "default" else store.partition(part)
                    ours = [r.id for r in view.query(q, k=5, filter={"cat": "a"})]
                    flt = models.Filter(must=[
                        models.FieldCondition(key="cat", match=models.MatchValue(value="a")),
                        models.FieldCondition(key=PART_KEY, match=models.MatchValue(value=part))])
                    theirs = client.query_points("docs", query=q.tolist(), query_filter=flt,
                                                 limit=5, with_payload=True).points
                    assert [p.payload[ID_KEY] for p in theirs] == ours
            else:
                for part in store.partitions():
                    assert_same(store, client, f"docs_{part}", [part], cosine=False)
    finally:
        client.close()


class Flaky:
    """A client whose every third call fails once (a network hiccup)."""

    def __init__(self, inner: QdrantClient) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)

        def call(*a: Any, **k: Any) -> Any:
            self.calls += 1
            if self.calls % 3 == 0:
                raise ConnectionError("hiccup")
            return fn(*a, **k)

        return call


def test_retries_resync_after_retention_and_partition_filter(tmp_path: Path) -> None:
    rng = random.Random(5)
    client = QdrantClient(path=str(tmp_path / "q"))
    with VecStore.open(tmp_path / "s.db", Config(dim=DIM)) as store:
        workload(store, rng, 30)
        rep = QdrantReplicator(Flaky(client), "docs", batch_size=8, backoff=0.001)
        rep.run(store)
        assert rep.stats.retries > 0
        assert_same(store, client, "docs", PARTS, cosine=True)
        # the store moves on and compacts past the collection's mark: a resync
        store.set_retention(versions=2)
        workload(store, rng, 30)
        store.compact()
        rep = QdrantReplicator(client, "docs", batch_size=8)
        rep.run(store)
        assert rep.stats.resyncs == 1
        assert_same(store, client, "docs", PARTS, cosine=True)
        # one partition only, into its own collection
        rep = QdrantReplicator(client, "only", partitions=["t1"])
        rep.run(store)
        assert_same(store, client, "only", ["t1"], cosine=True)
    client.close()


def test_follow_tails_a_writer(tmp_path: Path) -> None:
    rng = random.Random(9)
    path = tmp_path / "s.db"
    client = QdrantClient(path=str(tmp_path / "q"))
    with VecStore.open(path, Config(dim=DIM)) as writer:
        workload(writer, rng, 5)
        reader = VecStore.open(path, read_only=True)
        rep = QdrantReplicator(client, "docs", batch_size=32)
        stop = threading.Event()
        t = threading.Thread(target=rep.run, args=(reader,),
                             kwargs={"follow": True, "poll": 0.05, "stop": stop.is_set})
        t.start()
        try:
            for _ in range(5):
                workload(writer, rng, 8)
                time.sleep(0.05)
            deadline = time.monotonic() + 120
            while rep.stats.version != writer.version and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            t.join()
        assert rep.stats.version == writer.version
        reader.refresh()
        assert_same(reader, client, "docs", PARTS, cosine=True)
        reader.close()
    client.close()
