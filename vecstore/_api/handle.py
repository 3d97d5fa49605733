"""What a facade holds: the engine, and the writer hosted on a thread.

Every store object (sync or async) owns one :class:`Handle`: the engine,
plus, for a writable store, a :class:`WriterThread`: a private trio loop on
a daemon thread running the one :class:`~vecstore._engine.writer.Writer`.
Callers of any kind post to it and wait for a ``concurrent.futures.Future``
(a thread blocks on it; an async task awaits it through :mod:`.bridge`), so
group commit spans sync threads and async tasks alike, and the async API
runs on any event loop.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from .._engine.engine import Engine
from .._engine.ops import WriteRequest
from .._engine.writer import Writer
from .._errors import ReadOnlyError, StoreClosedError
from .._types import Config

log = logging.getLogger("vecstore")
T = TypeVar("T")


class WriterThread:
    """A private trio loop on a daemon thread running one :class:`Writer`."""

    def __init__(self, engine: Engine) -> None:
        self.writer = Writer(engine)
        self._token: trio.lowlevel.TrioToken | None = None
        self._lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._nursery: trio.Nursery | None = None
        self._error: BaseException | None = None
        ready = threading.Event()

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.writer.run)
                ready.set()

        def target() -> None:
            try:
                trio.run(main)
            except BaseException as exc:  # pragma: no cover - reported to callers
                self._error = exc
                log.exception("vecstore writer loop died")
            finally:
                ready.set()
                with self._lock:  # nobody is left to answer these
                    pending, self._pending = self._pending, set()
                for fut in pending:
                    _fail(fut, StoreClosedError("the store is closed"))

        self._thread = threading.Thread(target=target, name="vecstore-writer", daemon=True)
        self._thread.start()
        ready.wait()
        if self._error is not None:
            raise self._error

    def submit(self, afn: Callable[..., Awaitable[T]], *args: Any
               ) -> concurrent.futures.Future[T]:
        """Start ``afn(*args)`` on the writer's loop; its future answers.

        Once this returns, the call runs to its end whatever the caller does
        (a caller that stops waiting only loses the answer)."""
        if self._token is None or not self._thread.is_alive():
            raise StoreClosedError("the store is closed")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        fut.set_running_or_notify_cancel()  # nobody can cancel it now

        async def runner() -> None:
            try:
                result = await afn(*args)
            except BaseException as exc:
                _fail(fut, exc)
            else:
                if not fut.done():
                    fut.set_result(result)

        def post() -> None:
            try:
                assert self._nursery is not None
                self._nursery.start_soon(runner)
            except BaseException:  # the loop is shutting down
                _fail(fut, StoreClosedError("the store is closed"))

        with self._lock:
            self._pending.add(fut)
        fut.add_done_callback(self._forget)
        try:
            self._token.run_sync_soon(post)
        except trio.RunFinishedError:
            _fail(fut, StoreClosedError("the store is closed"))
        return fut

    def write(self, req: WriteRequest) -> concurrent.futures.Future[Any]:
        """Put a write request in the writer's mailbox; its future answers (the
        version, or the request's error).  No task per request: the writer
        completes the future itself when it answers the group."""
        if self._token is None or not self._thread.is_alive():
            raise StoreClosedError("the store is closed")
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        fut.set_running_or_notify_cancel()

        def done(result: Any) -> None:
            if fut.done():
                return
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

        def post() -> None:
            try:
                self.writer.post(req, done)
            except BaseException as exc:  # closed meanwhile
                _fail(fut, exc)

        with self._lock:
            self._pending.add(fut)
        fut.add_done_callback(self._forget)
        try:
            self._token.run_sync_soon(post)
        except trio.RunFinishedError:
            _fail(fut, StoreClosedError("the store is closed"))
        return fut

    def _forget(self, fut: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._pending.discard(fut)

    def call(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``afn(*args)`` on the loop and block until it answers (from any
        thread, including one running an event loop of its own)."""
        return self.submit(afn, *args).result()

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                self.call(self.writer.aclose)
            except StoreClosedError:
                pass
            self._thread.join()


def _fail(fut: concurrent.futures.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class Handle:
    """An open store: its engine and (writable stores) its writer thread."""

    def __init__(self, path: str | os.PathLike[str], config: Config | None,
                 read_only: bool) -> None:
        engine = Engine(os.fspath(path), config, read_only=read_only)
        try:
            self.loop = None if read_only else WriterThread(engine)
        except BaseException:
            engine.close()
            raise
        self._engine: Engine | None = engine
        self.path = engine.storage.path
        self.read_only = read_only
        _OPEN.add(self)

    @property
    def closed(self) -> bool:
        return self._engine is None

    def engine(self) -> Engine:
        if self._engine is None:
            raise StoreClosedError(f"store {self.path!r} is closed")
        return self._engine

    def writable(self) -> Engine:
        eng = self.engine()
        if self.loop is None:
            raise ReadOnlyError(f"store {self.path!r} was opened read_only=True")
        return eng

    def writer(self) -> WriterThread:
        self.writable()
        assert self.loop is not None
        return self.loop

    def close(self) -> None:
        eng, self._engine = self._engine, None
        if eng is None:
            return
        _OPEN.discard(self)
        if self.loop is not None:
            self.loop.close()
        eng.close()


# Stores still open when the interpreter exits (an async store whose event loop
# ended without ``async with`` or ``close()``, a script that forgot ``close()``)
# are closed then: their writers answer what was sent and stop, and LMDB is
# closed, rather than daemon threads being cut off mid-call.
_OPEN: weakref.WeakSet[Handle] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    for handle in list(_OPEN):
        try:
            handle.close()
        except Exception:  # pragma: no cover - best effort at exit
            log.exception("closing %s at exit failed", handle.path)
