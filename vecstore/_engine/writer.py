"""The writer actor: one trio task that owns every mutation.

Callers put requests in its mailbox (a memory channel) and wait for the
answer.  The actor drains whatever has arrived into one batch and commits
it in a single LMDB transaction (group commit), then starts any segment
jobs the batch made due.  LMDB transactions and engine mutations run in a
worker thread through a ``CapacityLimiter(1)``, so they never overlap.

The facades host it on a thread of its own (``vecstore._api.handle``).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from .._errors import StoreClosedError
from .._index import BuildCancelled
from .compact import Purge
from .engine import Engine
from .jobs import SegmentJob
from .reindex import Reindex
from .txn import WriteRequest

log = logging.getLogger("vecstore")
T = TypeVar("T")
MAX_BATCH = 4096
BACKGROUND_NICE = 10  # added to a background build thread's nice value (Linux)


class _Pending:
    """A request in the mailbox, answered through its event (``submit``) or
    its callback (``post``, called on the writer's loop)."""

    __slots__ = ("done", "event", "req", "result")

    def __init__(self, req: WriteRequest, done: Callable[[Any], None] | None = None) -> None:
        self.req = req
        self.done = done
        self.event = trio.Event() if done is None else None
        self.result: Any = None

    def answer(self, result: Any) -> None:
        if self.done is not None:
            self.done(result)
        else:
            self.result = result
            assert self.event is not None
            self.event.set()


def _run_background(fn: Callable[[], None]) -> None:
    """Run ``fn`` on a fresh, niced thread and wait for it, so background
    seals take only the CPU the writer and importer leave.  Linux nice is
    per thread and cannot be undone without privileges, hence a thread of
    its own rather than a pooled worker.  Elsewhere ``fn`` runs un-niced."""
    failure: list[BaseException] = []

    def target() -> None:
        if sys.platform.startswith("linux"):  # elsewhere the native id is no pid
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
            except (OSError, AttributeError):
                pass
        try:
            fn()
        except BaseException as exc:
            failure.append(exc)

    name = f"{getattr(fn, '__name__', 'job')} (niced)"  # like trio's "build from ..."
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


class Writer:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._send, self._recv = trio.open_memory_channel[_Pending](math.inf)
        self._limiter = trio.CapacityLimiter(1)
        self._jobs: dict[int, SegmentJob] = {}
        self._plan_lock = trio.Lock()
        self._optimizing = 0
        self._maint = trio.Lock()  # optimize, compact, reindex: one at a time
        self._nursery: trio.Nursery | None = None
        self.closed = False

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await self._serve()
            finally:
                for job in self._jobs.values():
                    job.cancelled = True
                nursery.cancel_scope.cancel()

    async def _serve(self) -> None:
        async with self._recv:
            async for first in self._recv:
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._recv.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                try:
                    results = await self._locked(self.engine.commit, [p.req for p in batch])
                except Exception as exc:  # answer the batch; keep serving
                    log.exception("commit failed")
                    results = [exc] * len(batch)
                self.engine.metrics.answered(results)
                for p, r in zip(batch, results):
                    p.answer(r)
                await self._start_jobs(force=False)

    async def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    # -- API ---------------------------------------------------------------------

    def post(self, req: WriteRequest, done: Callable[[Any], None]) -> None:
        """Put ``req`` in the mailbox; ``done(result or exception)`` is called
        on the writer's loop once it is answered.  Call on the writer's loop."""
        if self.closed:
            raise StoreClosedError("the store is closed")
        try:
            self._send.send_nowait(_Pending(req, done))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosedError("the store is closed") from None

    async def submit(self, req: WriteRequest) -> Any:
        if self.closed:
            raise StoreClosedError("the store is closed")
        p = _Pending(req)
        try:
            self._send.send_nowait(p)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosedError("the store is closed") from None
        assert p.event is not None
        await p.event.wait()
        if isinstance(p.result, BaseException):
            raise p.result
        return p.result

    async def optimize(self) -> None:
        """Seal every growing segment and merge each partition's segments
        into one; return once the rows written before the call are indexed."""
        target = self.engine.next_rowid
        async with self._maint:
            self._optimizing += 1  # no threshold seals meanwhile: the merge takes those rows
            try:
                for _round in range(8):  # writes racing in may need another round
                    await self._drain_jobs()
                    await self._wait(await self._start_jobs(force=True))
                    if self.engine.mem.optimized(target):
                        return
            finally:
                self._optimizing -= 1

    async def compact(self) -> dict[str, int]:
        """Rebuild segments without rows no retained version sees, then purge
        them from LMDB in small transactions that interleave with writes."""
        async with self._maint:
            return await self._compact()

    async def _compact(self) -> dict[str, int]:
        await self._drain_jobs()
        floor = await self._locked(self.engine.compaction_floor)
        threads = os.cpu_count() or 1
        await self._wait(await self._start_jobs(force=False, compact_floor=floor,
                                                threads=threads))
        purge = Purge(self.engine.storage, self.engine.mem, floor)
        while await self._locked(purge.step):
            pass
        return {"floor": floor, "rows": purge.rows_deleted, "history": purge.hist_deleted}

    async def reindex(self, changes: dict[str, Any]) -> None:
        """Rebuild every sealed segment with the index settings ``changes``
        and publish them and the settings at once (:mod:`.reindex`)."""
        async with self._maint:
            self._optimizing += 1  # no threshold seals or merges meanwhile
            try:
                await self._drain_jobs()
                rx = await self._locked(Reindex, self.engine, changes)
                try:
                    await self._build_all(rx)
                    await self._locked(rx.publish)
                except BaseException:
                    with trio.CancelScope(shield=True):
                        await self._locked(rx.abandon)
                    raise
            finally:
                self._optimizing -= 1
        await self._start_jobs(force=False)  # seals that came due meanwhile

    async def _build_all(self, rx: Reindex) -> None:
        threads = os.cpu_count() or 1
        for job in await self._locked(rx.plan, threads):
            job.done = trio.Event()
            self._jobs[job.seg_id] = job  # (cancelled if the store closes)
            try:
                await trio.to_thread.run_sync(job.build)
            finally:
                self._jobs.pop(job.seg_id, None)
                job.done.set()

    async def _drain_jobs(self) -> None:
        while True:
            async with self._plan_lock:
                pending = list(self._jobs.values())
            if not pending:
                return
            for job in pending:
                await job.done.wait()

    @staticmethod
    async def _wait(jobs: list[SegmentJob]) -> None:
        for job in jobs:
            await job.done.wait()
            if job.error is not None:
                raise job.error

    async def aclose(self) -> None:
        self.closed = True
        await self._send.aclose()

    # -- segment jobs ----------------------------------------------------------------

    async def _start_jobs(self, force: bool, compact_floor: int | None = None,
                          threads: int | None = None) -> list[SegmentJob]:
        if threads is None:
            threads = (os.cpu_count() or 1) if force else 1
        if self._optimizing and not force and compact_floor is None:
            return []
        async with self._plan_lock:  # planned jobs are registered before anyone looks
            if compact_floor is not None:
                jobs = await self._locked(self.engine.plan_compaction, compact_floor, threads)
            else:
                jobs = await self._locked(self.engine.jobs.plan, force, threads)
            assert self._nursery is not None
            background = not force and compact_floor is None  # a threshold seal
            for job in jobs:
                job.done = trio.Event()
                self._jobs[job.seg_id] = job
                self._nursery.start_soon(self._run_job, job, background)
        return jobs

    async def _run_job(self, job: SegmentJob, background: bool) -> None:
        try:
            # Not abandoned on cancel: closing waits for the thread, which
            # stops at its next chunk (job.cancelled), so nothing outlives close().
            if background:
                await trio.to_thread.run_sync(_run_background, job.build)
            else:
                await trio.to_thread.run_sync(job.build)
            await self._locked(self.engine.finish_job, job)
            self._jobs.pop(job.seg_id, None)
            await self._start_jobs(force=False)  # rows that arrived meanwhile may be due
        except BaseException as exc:
            job.error = exc
            if not isinstance(exc, (trio.Cancelled, BuildCancelled)):
                log.exception("building segment %d failed; its rows stay searchable "
                              "exactly and will be sealed again", job.seg_id)
            with trio.CancelScope(shield=True):
                await self._locked(self.engine.jobs.abandon, job)
            if isinstance(exc, trio.Cancelled):
                raise
        finally:
            self._jobs.pop(job.seg_id, None)
            job.done.set()
