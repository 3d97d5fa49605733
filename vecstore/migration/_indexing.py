"""Indexing a store at the end of an import (``MigrationConfig.index``) and
in ``vecstore optimize``: ``store.optimize()`` with progress.

``optimize()`` seals every growing segment and merges each partition's
segments into one HNSW index.  It reports nothing while it runs, so the
progress is read from the outside: before the call, the vectors of every
partition with work to do (growing rows, or more than one sealed segment)
are the total; while it runs, a partition counts the rows its segment job
has put into its index so far (``SegmentJob.indexed``, updated every few
thousand rows), and all of its rows once it is done.  The figure shown
never goes backwards and ends at ``done == total``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

Progress = Callable[[int, int], Any]
T = TypeVar("T")

#: How often the progress callback is called while indexing (seconds).
INTERVAL = 0.25


@dataclass
class IndexResult:
    """What an indexing run did: ``vectors`` it had to index (0: the store
    was already fully indexed) and how long it took (``seconds``)."""

    vectors: int
    seconds: float


def _rows(pm: Any) -> tuple[int, int]:
    """(growing rows, sealed rows) of a partition's writer bookkeeping."""
    g = pm.growing
    return (g.n if g is not None else 0), sum(int(s.n) for s in list(pm.sealed))


class Watch:
    """Progress of an ``optimize()`` of ``engine`` that is about to start."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.work: dict[int, int] = {}
        for pm in list(engine.parts.values()):
            grow, sealed = _rows(pm)
            if grow or len(pm.sealed) > 1 or pm.job is not None:
                self.work[pm.pid] = grow + sealed
        self.total = sum(self.work.values())
        self._best = 0

    def done(self) -> int:
        """Vectors indexed so far (monotonic, at most ``total``)."""
        n = 0
        try:
            parts = list(self._engine.parts.values())
        except RuntimeError:  # changed size while being copied: try next time
            return self._best
        for pm in parts:
            want = self.work.get(pm.pid)
            if want is None:
                continue
            job = pm.job
            if job is not None:
                n += min(want, int(getattr(job, "indexed", 0)))
            elif len(pm.sealed) <= 1 and _rows(pm)[0] == 0:
                n += want
        self._best = max(self._best, min(n, self.total))
        return self._best


def run_watched(call: Callable[[], T], poll: Callable[[], tuple[int, int]],
                progress: Progress, interval: float = INTERVAL) -> T:
    """``call()`` in a helper thread while this one calls
    ``progress(*poll())`` every ``interval`` seconds, so that Ctrl-C and an
    exception from the callback stop the waiting at once (the work itself
    goes on until the store is closed, which cancels it)."""
    result: list[T] = []
    error: list[BaseException] = []
    finished = threading.Event()

    def target() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # raised in the calling thread
            error.append(exc)
        finally:
            finished.set()

    threading.Thread(target=target, name="vecstore-maintenance", daemon=True).start()
    while not finished.wait(interval):
        progress(*poll())
    if error:
        raise error[0]
    return result[0]


def index_store(store: Any, progress: Progress | None = None,
                interval: float = INTERVAL) -> IndexResult:
    """``store.optimize()`` on a sync store (root, writable), calling
    ``progress(done, total)`` (vectors) meanwhile: ``(0, N)`` first and
    ``(N, N)`` last, nothing when there was nothing to index."""
    watch = Watch(store._engine_checked())
    t0 = time.perf_counter()
    if progress is None or not watch.total:
        store.optimize()
        return IndexResult(watch.total, time.perf_counter() - t0)
    progress(0, watch.total)
    run_watched(store.optimize, lambda: (watch.done(), watch.total), progress, interval)
    progress(watch.total, watch.total)
    return IndexResult(watch.total, time.perf_counter() - t0)


async def index_store_async(store: Any, progress: Progress | None = None,
                            interval: float = INTERVAL) -> IndexResult:
    """:func:`index_store` for an :class:`~vecstore.AsyncVecStore`."""
    import anyio

    watch = Watch(store._engine_checked())
    t0 = time.perf_counter()
    if progress is None or not watch.total:
        await store.optimize()
        return IndexResult(watch.total, time.perf_counter() - t0)
    error: list[BaseException] = []

    async def report(cancel: anyio.CancelScope) -> None:
        try:
            while True:
                await anyio.sleep(interval)
                progress(watch.done(), watch.total)
        except Exception as exc:  # the callback's: stop indexing, raise it outside
            error.append(exc)
            cancel.cancel()

    progress(0, watch.total)
    # Nothing is raised inside the task group (it would wrap it in an ExceptionGroup).
    async with anyio.create_task_group() as nursery:
        nursery.start_soon(report, nursery.cancel_scope)
        try:
            await store.optimize()
        except Exception as exc:
            error.append(exc)
        nursery.cancel_scope.cancel()
    if error:
        raise error[0]
    progress(watch.total, watch.total)
    return IndexResult(watch.total, time.perf_counter() - t0)


class JobWatch:
    """Progress of the segment jobs that run meanwhile (``compact()``'s
    rebuilds): the rows of every job seen so far, and how many of them are
    in their new index (all of them once the job is gone)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._seen: dict[int, tuple[Any, int]] = {}

    def poll(self) -> tuple[int, int]:
        """``(done, total)`` rows."""
        running: set[int] = set()
        try:
            parts = list(self._engine.parts.values())
        except RuntimeError:
            parts = []
        for pm in parts:
            job = pm.job
            if job is not None:
                running.add(job.seg_id)
                self._seen.setdefault(job.seg_id, (job, len(job.rowids)))
        done = sum(min(int(getattr(job, "indexed", 0)), n) if seg in running else n
                   for seg, (job, n) in self._seen.items())
        return done, sum(n for _job, n in self._seen.values())
