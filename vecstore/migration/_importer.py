"""Running an import: the state shared by the sync and async drivers, and
the two drivers.

Each batch is one write request -- an ``Upsert`` of its good records, or a
``PutMeta`` when all were rejected -- carrying the import's progress in
``meta_puts``, so records and progress commit in one transaction.  Both
drivers overlap parsing the next batch with committing the current one,
keeping at most one batch in flight: when batch *j* is being prepared,
every batch before *j - 1* has committed (duplicate detection relies on it).
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from .._engine.ops import PutMeta, WriteRequest
from ._batch import Batch, BatchMaker
from ._config import MigrationConfig, MigrationStats
from ._formats import estimate_total, open_reader, source_info
from ._progress import (
    RejectLog,
    default_reject_file,
    make_plan,
    progress_key,
    progress_value,
)
from ._subreader import open_reader_subprocess, parallel_worthwhile

if TYPE_CHECKING:
    from .._engine.engine import Engine

Progress = Callable[[int, int], Any]


class ImportRun:
    """One run of one import (not thread-safe: one producer, one committer)."""

    def __init__(self, fmt: str, path: str | os.PathLike[str], engine: Engine, store_path: str,
                 partition: str, cfg: MigrationConfig, progress: Progress | None) -> None:
        self.fmt = fmt
        self.engine = engine
        self.cfg = cfg
        self.partition = partition
        self.progress = progress
        self.t0 = time.perf_counter()
        info = source_info(path)
        self.identity = info.identity()
        src = info.path
        key = progress_key(partition, src, cfg.id_prefix)
        message = cfg.message or f"import {fmt} {os.path.basename(src)}"
        self.plan = make_plan(engine.get_meta(key), key=key, fmt=fmt, identity=self.identity,
                              cfg=cfg, version=engine.version, message=message,
                              reject_file=default_reject_file(store_path, src, key))
        p = self.plan
        self.stats = MigrationStats(
            format=fmt, source=src, store=store_path, partition=partition,
            skipped=p.start, start_offset=p.start, end_offset=p.start, resumed=p.resumed,
            already_complete=p.already_complete, complete=p.already_complete,
            imported_total=p.imported, errors_total=p.errors, version=engine.version,
            reject_file=p.reject_file, progress_key=p.key)
        self.rejects: RejectLog | None = None
        self.maker: BatchMaker | None = None
        self.total = 0
        # what the progress record says once every batch handed out so far commits
        self._imported, self._errors, self._rejects_bytes = p.imported, p.errors, 0
        if p.already_complete:
            self.stats.end_offset = int((p.previous or {}).get("offset", p.start))
            self.stats.skipped = self.stats.end_offset
            return
        self.rejects = RejectLog(p.reject_file, p.keep_reject_bytes, p.keep_below)
        self._rejects_bytes = self.rejects.size
        text_field = cfg.text_field or engine.config.text_field or "document"
        if progress is not None:
            self.total = max(0, estimate_total(fmt, src) - p.start)
        reader = _reader(fmt, src, info.size, p.start, cfg)
        self.maker = BatchMaker(reader, engine, partition=partition, start=p.start,
                                batch_size=cfg.batch_size, validate=cfg.validate,
                                id_prefix=cfg.id_prefix, text_field=text_field,
                                message=p.message, base_version=p.base_version)

    # -- producer side -------------------------------------------------------------

    def next_request(self) -> tuple[Batch, WriteRequest] | None:
        """Parse and check the next batch, list its rejects, and build the
        request that commits it with the progress (None when done)."""
        if self.maker is None:
            return None
        batch = self.maker.next_batch()
        if batch is None:
            return None
        assert self.rejects is not None
        self._rejects_bytes = self.rejects.write(batch.failures)
        self._imported += batch.written
        self._errors += len(batch.failures)
        p = self.plan
        value = progress_value(p, fmt=self.fmt, identity=self.identity, partition=self.partition,
                               id_prefix=self.cfg.id_prefix, offset=batch.end, done=batch.last,
                               rejects_bytes=self._rejects_bytes, imported=self._imported,
                               errors=self._errors)
        req: WriteRequest
        if batch.request is not None:
            req = batch.request
            req.meta_puts = {p.key: value}
        else:
            req = PutMeta({p.key: value}, partition=self.partition)
        return batch, req

    # -- committer side --------------------------------------------------------------

    def start(self) -> None:
        if self.progress is not None:
            self.progress(0, self.total)

    def committed(self, batch: Batch, result: Any) -> None:
        s = self.stats
        s.total_vectors += batch.written
        for f in batch.failures:
            s.add_failure(f)
        s.records_read += batch.read
        s.end_offset = batch.end
        s.imported_total += batch.written
        s.errors_total += len(batch.failures)
        if isinstance(result, int) and not isinstance(result, bool):
            s.version = max(s.version, result)
        if batch.last:
            s.complete = True
        self._timing()
        self.engine.metrics.import_batch(self, self.t0, batch.written, len(batch.failures))
        if self.progress is not None:
            if batch.last:
                self.total = s.records_read
            self.total = max(self.total, s.records_read)
            self.progress(s.records_read, self.total)

    def _timing(self) -> None:
        s = self.stats
        s.duration = time.perf_counter() - self.t0
        s.throughput = s.total_vectors / s.duration if s.duration > 0 else 0.0

    def finish(self) -> MigrationStats:
        self._timing()
        if self.stats.already_complete and self.progress is not None:
            self.progress(0, 0)
        return self.stats

    def close(self) -> None:
        if self.maker is not None:
            self.maker.close()
        if self.rejects is not None:
            self.rejects.close()


def _reader(fmt: str, src: str, size: int, start: int, cfg: MigrationConfig) -> Any:
    """The record stream; with ``validate`` a JSON Lines line that does not
    parse is one rejected record, without it the import stops there."""
    opts: dict[str, Any] = {"vector_name": cfg.vector_name, "reject_malformed": cfg.validate}
    check = open_reader(fmt, src, start=start, **opts)  # checks arguments
    want = cfg.parallel_parse
    if want is False or (want is None and not parallel_worthwhile(size)):
        return check
    check.close()
    try:
        return open_reader_subprocess(fmt, src, start, **opts)
    except OSError:  # no usable interpreter to start: parse here
        return open_reader(fmt, src, start=start, **opts)


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until its end, so
    a few statements that must happen together are not split by it.  Only the
    main thread receives Python's signals; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[FrameType | None] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda _sig, frame: caught.append(frame))
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:  # now deliver it as it would have been
            if callable(previous):
                previous(signal.SIGINT, caught[0])
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


class _Committer:
    """A daemon thread that submits one request at a time to a sync store."""

    def __init__(self, submit: Callable[[WriteRequest], Any]) -> None:
        self._submit = submit
        self._q: queue.SimpleQueue[tuple[WriteRequest, Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="vecstore-import", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (item := self._q.get()) is not None:
            req, fut = item
            try:
                fut.set_result(self._submit(req))
            except BaseException as exc:  # handed to the importing thread
                fut.set_exception(exc)

    def submit(self, req: WriteRequest) -> Future[Any]:
        fut: Future[Any] = Future()
        self._q.put((req, fut))
        return fut

    def close(self) -> None:
        self._q.put(None)


def run_sync(run: ImportRun, submit: Callable[[WriteRequest], Any]) -> MigrationStats:
    try:
        if run.maker is None:
            return run.finish()
        run.start()
        committer = _Committer(submit)
        pending: tuple[Batch, Future[Any]] | None = None

        def settle() -> None:
            """Wait for the batch in flight and account for it."""
            nonlocal pending
            if pending is not None:
                batch, fut = pending
                result = fut.result()  # a (second) Ctrl-C may stop this wait...
                with _interrupts_deferred():  # ...but not the accounting half-way
                    pending = None
                    run.committed(batch, result)

        try:
            while True:
                try:
                    item = run.next_request()  # overlaps with the pending commit
                finally:
                    settle()  # even if preparing failed
                if item is None:
                    break
                batch, req = item
                with _interrupts_deferred():  # sent <=> pending: the stats never lag the store
                    pending = (batch, committer.submit(req))
                if batch.error is not None or batch.last:
                    settle()
                    if batch.error is not None:
                        raise batch.error
                    break
        except BaseException:
            # Interrupted (Ctrl-C, an error, the progress callback): the batch in
            # flight commits or fails on its own; wait for it so that the stats
            # say what is in the store.  A second Ctrl-C stops waiting.
            if pending is not None:
                run.progress = None
                try:
                    settle()
                except BaseException:
                    pass
            raise
        finally:
            committer.close()
        return run.finish()
    finally:
        run.close()


async def run_async(run: ImportRun, submit: Callable[[WriteRequest], Any]) -> MigrationStats:
    import anyio

    try:
        if run.maker is None:
            return run.finish()
        run.start()
        send, recv = anyio.create_memory_object_stream[Any](0)

        async def produce() -> None:
            async with send:
                while True:
                    item: tuple[Batch, WriteRequest] | tuple[None, Exception] | None
                    try:
                        item = await anyio.to_thread.run_sync(run.next_request)
                    except Exception as exc:  # the consumer raises it, in order
                        item = (None, exc)
                    if item is None:
                        return
                    try:
                        await send.send(item)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        return
                    if item[0] is None or item[0].error is not None or item[0].last:
                        return

        # Nothing is raised inside the task group (it would wrap it in an
        # ExceptionGroup): the first error is kept and raised afterwards.
        error: BaseException | None = None
        async with anyio.create_task_group() as nursery:
            nursery.start_soon(produce)
            async with recv:
                async for batch, req in recv:
                    if batch is None:
                        error = req
                        break
                    try:
                        run.committed(batch, await submit(req))
                    except Exception as exc:  # incl. the progress callback's
                        error = exc
                        break
                    if batch.error is not None:
                        error = batch.error
                        break
            nursery.cancel_scope.cancel()
        if error is not None:
            raise error
        return run.finish()
    finally:
        run.close()
