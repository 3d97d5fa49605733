"""Replication into Qdrant: keep Qdrant collections in step with a store.

``QdrantReplicator(client, "docs").run(store)`` applies the store's change
feed (``store.changes``) to Qdrant through ``qdrant-client`` (the extra
``vecstore[qdrant]``).  Layouts:

- ``"payload"`` (default): one collection; each point's payload names its
  partition under ``vecstore_partition`` (all partitions, or the ones given);
- ``"collections"``: one collection per partition, ``<collection>_<partition>``.

Points: id ``uuid5(NAMESPACE, partition + "\\0" + id)`` (Qdrant ids are
unsigned ints or UUIDs), the vector as stored (Qdrant normalises vectors of a
cosine collection), payload = the metadata plus ``vecstore_id`` and
``vecstore_partition``.

Each collection's metadata records ``vecstore.version``: every change up to
that version is applied.  It is written after the batch it covers, so a
replicator killed at any point resumes from there and re-applies at most the
batch in flight -- upserts and deletes of whole points are idempotent, and
the changes are applied in version order, so the collection ends exactly as
if each had been applied once.  A collection without a mark, or one whose
mark is older than the store's retention, is brought up to date from a
snapshot instead (every live record upserted, every point the snapshot does
not hold deleted) and marked with that snapshot's version.  The target holds
a prefix of the store's versions at every moment a batch ends.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._errors import (
    CorruptionError,
    InvalidArgumentError,
    MigrationError,
    VersionNotRetainedError,
)

NAMESPACE = uuid.UUID("6f2b7f1e-52a4-5b8e-9c39-1d7a0c3e5e17")  # vecstore's uuid5 namespace
ID_KEY, PART_KEY, MARK_KEY = "vecstore_id", "vecstore_partition", "vecstore"
LAYOUTS = ("payload", "collections")


def point_id(partition: str, rid: str) -> str:
    """The Qdrant point id of record ``rid`` of ``partition`` (a UUID)."""
    return str(uuid.uuid5(NAMESPACE, f"{partition}\x00{rid}"))


@dataclass
class ReplicationStats:
    upserted: int = 0  # points written (a retried batch counts again)
    deleted: int = 0
    batches: int = 0
    resyncs: int = 0  # collections brought up to date from a snapshot
    retries: int = 0
    version: int = 0  # the version every target has reached
    seconds: float = 0.0
    collections: dict[str, int] = field(default_factory=dict)  # name -> version reached

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Target:
    collection: str
    partitions: list[str] | None  # None: every partition


class QdrantReplicator:
    """Applies a store's changes to Qdrant.  ``client`` is a ``QdrantClient``
    (a server's URL, or ``QdrantClient(path=...)``'s local mode)."""

    def __init__(self, client: Any, collection: str, *, layout: str = "payload",
                 partitions: Iterable[str] | None = None, batch_size: int = 512,
                 retries: int = 6, backoff: float = 0.2,
                 on_batch: Callable[[ReplicationStats], Any] | None = None) -> None:
        if layout not in LAYOUTS:
            raise InvalidArgumentError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if not isinstance(collection, str) or not collection:
            raise InvalidArgumentError("collection must be a non-empty str")
        if batch_size < 1:
            raise InvalidArgumentError("batch_size must be positive")
        self.client = client
        self.collection = collection
        self.layout = layout
        self.partitions = None if partitions is None else sorted(set(partitions))
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = backoff
        self.on_batch = on_batch
        self.stats = ReplicationStats()
        self._models: Any = None

    # -- qdrant plumbing ---------------------------------------------------------------------

    @property
    def models(self) -> Any:
        if self._models is None:
            from qdrant_client import models

            self._models = models
        return self._models

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(...)``, retried with exponential back-off on any error."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except (TypeError, ValueError):
                raise  # a mistake of ours: retrying will not help
            except Exception as exc:
                if attempt == self.retries:
                    raise MigrationError(f"qdrant: {type(exc).__name__}: {exc} "
                                         f"(after {self.retries} retries)") from exc
                self.stats.retries += 1
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")

    def _ensure(self, name: str, dim: int, distance: str) -> int | None:
        """Create the collection if needed; its mark (None: none yet)."""
        m = self.models
        dist = {"cosine": m.Distance.COSINE, "euclidean": m.Distance.EUCLID,
                "dot": m.Distance.DOT}[distance]
        if not self._call(self.client.collection_exists, name):
            self._call(self.client.create_collection, name,
                       vectors_config=m.VectorParams(size=dim, distance=dist))
            return None
        info = self._call(self.client.get_collection, name)
        vec = info.config.params.vectors
        if not hasattr(vec, "size") or vec.size != dim or vec.distance != dist:
            raise MigrationError(f"qdrant collection {name!r} holds {vec}, not one unnamed "
                                 f"{dim}-d {distance} vector: replicate into another collection")
        mark = (info.config.metadata or {}).get(MARK_KEY)
        return None if not mark else int(mark["version"])

    def _mark(self, name: str, version: int) -> None:
        self._call(self.client.update_collection, name,
                   metadata={MARK_KEY: {"version": int(version), "layout": self.layout}})
        self.stats.collections[name] = int(version)

    def _write(self, name: str, ups: list[Any], dels: list[str]) -> None:
        if ups:
            self._call(self.client.upsert, name, points=ups, wait=True)
            self.stats.upserted += len(ups)
        if dels:
            self._call(self.client.delete, name,
                       points_selector=self.models.PointIdsList(points=dels), wait=True)
            self.stats.deleted += len(dels)
        if ups or dels:
            self.stats.batches += 1
        _test_hook()

    def _point(self, part: str, rid: str, vector: np.ndarray, meta: dict[str, Any]) -> Any:
        payload = dict(meta)
        payload[ID_KEY] = rid
        payload[PART_KEY] = part
        return self.models.PointStruct(id=point_id(part, rid), vector=vector.tolist(),
                                       payload=payload)

    # -- replication ------------------------------------------------------------------------

    def _targets(self, store: Any) -> list[_Target]:
        if self.layout == "payload":
            return [_Target(self.collection, self.partitions)]
        parts = self.partitions if self.partitions is not None else store.partitions()
        return [_Target(f"{self.collection}_{p}", [p]) for p in parts]

    def run_once(self, store: Any) -> ReplicationStats:
        """Bring every target up to the store's current version (a read-only
        store: call ``store.refresh()`` first to see the writer's commits)."""
        t0 = time.monotonic()
        cfg = store._engine_checked().config
        dim = store._engine_checked().dim
        reached = store.version
        if dim is not None:
            for target in self._targets(store):
                reached = min(reached, self._one(store, target, dim, str(cfg.distance.value
                              if hasattr(cfg.distance, "value") else cfg.distance)))
        self.stats.version = reached
        self.stats.seconds += time.monotonic() - t0
        return self.stats

    def run(self, store: Any, *, follow: bool = False, poll: float = 0.5,
            stop: Callable[[], bool] | None = None) -> ReplicationStats:
        """:meth:`run_once`; with ``follow``, then keep tailing new versions
        (``store.refresh()`` every ``poll`` seconds) until ``stop()`` is true."""
        self.run_once(store)
        while follow and not (stop is not None and stop()):
            time.sleep(poll)
            store.refresh()
            if store.version != self.stats.version:
                self.run_once(store)
        return self.stats

    def _one(self, store: Any, target: _Target, dim: int, distance: str) -> int:
        name = target.collection
        mark = self._ensure(name, dim, distance)
        for _attempt in range(3):
            if mark is None:
                mark = self._resync(store, target)
                continue
            try:
                return self._apply(store, target, mark)
            except VersionNotRetainedError:
                mark = None  # the store no longer has that history: start from a snapshot
            except CorruptionError:
                # a read-only replicator beside a writer that compacted the rows it
                # was about to read: go again from the mark
                store.refresh()
        raise MigrationError(f"could not bring {name!r} up to date (the store kept compacting "
                             "what it was reading)")

    def _apply(self, store: Any, target: _Target, mark: int) -> int:
        until = store.version
        if mark > until:
            raise MigrationError(
                f"qdrant collection {target.collection!r} is marked with version {mark}, "
                f"newer than the store's {until}: it was replicated from another store "
                f"(or this one was restored from an older backup)")
        if mark == until:
            self.stats.collections[target.collection] = mark
            return mark
        feed = store.changes(since=mark, until=until, partitions=target.partitions)
        pending: dict[str, Any] = {}  # point id -> PointStruct, or None = delete
        last = mark
        for change in _with_ends(feed):
            c, next_version = change
            pid = point_id(c.partition, c.id)
            pending[pid] = None if c.op == "delete" else \
                self._point(c.partition, c.id, c.vector, c.metadata)
            if len(pending) >= self.batch_size:
                done = c.version if next_version is None or next_version > c.version \
                    else c.version - 1
                self._flush(target.collection, pending)
                if done > last:
                    self._mark(target.collection, done)
                    last = done
        if pending:
            self._flush(target.collection, pending)
        self._mark(target.collection, until)
        return until

    def _flush(self, name: str, pending: dict[str, Any]) -> None:
        ups = [p for p in pending.values() if p is not None]
        dels = [k for k, p in pending.items() if p is None]
        self._write(name, ups, dels)
        pending.clear()
        if self.on_batch is not None:
            self.on_batch(self.stats)

    def _resync(self, store: Any, target: _Target) -> int:
        """Upsert every live record of a snapshot, delete every point it does
        not hold, and mark the collection with its version."""
        name = target.collection
        snap = store.snapshot()
        parts = target.partitions if target.partitions is not None else \
            store.partitions()
        live: set[str] = set()
        for part in parts:
            batch: list[Any] = []
            for rec in snap.partition(part).scan(batch_size=self.batch_size):
                batch.append(self._point(part, rec.id, rec.vector, rec.metadata))
                live.add(batch[-1].id)
                if len(batch) >= self.batch_size:
                    self._write(name, batch, [])
                    batch = []
            self._write(name, batch, [])
        stale: list[str] = []
        offset = None
        m = self.models
        only = None if target.partitions is None or self.layout != "payload" else m.Filter(
            must=[m.FieldCondition(key=PART_KEY, match=m.MatchAny(any=target.partitions))])
        while True:
            points, offset = self._call(self.client.scroll, name, scroll_filter=only,
                                        limit=1024, offset=offset, with_payload=False,
                                        with_vectors=False)
            stale.extend(str(p.id) for p in points if str(p.id) not in live)
            if offset is None:
                break
        for i in range(0, len(stale), self.batch_size):
            self._write(name, [], stale[i:i + self.batch_size])
        self.stats.resyncs += 1
        self._mark(name, snap.version)
        return snap.version


def _with_ends(feed: Iterator[Any]) -> Iterator[tuple[Any, int | None]]:
    """Each change with the version of the next one (None after the last)."""
    prev = next(feed, None)
    for cur in feed:
        yield prev, cur.version
        prev = cur
    if prev is not None:
        yield prev, None


def _test_hook() -> None:
    """Tests: ``VECSTORE_TEST_KILL_AFTER_WRITES=n`` SIGKILLs this process
    after its n-th write to Qdrant (between a batch and its mark)."""
    import os

    n = os.environ.get("VECSTORE_TEST_KILL_AFTER_WRITES")
    if n is None:
        return
    global _WRITES
    _WRITES += 1
    if int(n) <= _WRITES:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


_WRITES = 0


def open_client(target: str, api_key: str | None = None) -> Any:
    """A ``QdrantClient`` for a server URL (http/https), ``:memory:``, or a
    local-mode directory."""
    try:
        from qdrant_client import QdrantClient
    except ImportError:
        raise MigrationError("replication into Qdrant needs qdrant-client: "
                             "pip install 'vecstore[qdrant]'") from None
    if target.startswith(("http://", "https://")):
        return QdrantClient(url=target, api_key=api_key)
    if target == ":memory:":
        return QdrantClient(location=":memory:")
    return QdrantClient(path=target)
