"""Async plumbing that works under asyncio and trio alike.

Worker threads come from anyio (LMDB reads and index searches release the
event loop).  Waiting for the writer is an await on a
``concurrent.futures.Future`` completed on the writer's thread: the event
loop is woken through its own thread-safe hook (asyncio's
``call_soon_threadsafe``, trio's ``TrioToken.run_sync_soon``), so no thread
is tied up per waiting write and 10,000 concurrent writers cost 10,000 small
futures, not threads.

A task cancelled while it waits stops waiting; the request it sent is not
withdrawn: the writer commits it (or rejects it) exactly as if the task were
still there.  A cancelled write may therefore have happened: read to find out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
import sniffio

from .._errors import UnsupportedEventLoopError

T = TypeVar("T")


def backend() -> str:
    """The running async library ("asyncio" or "trio")."""
    try:
        name = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise UnsupportedEventLoopError(
            "the async API must be called from an async function running under asyncio "
            "or trio; use the synchronous VecStore elsewhere") from None
    if name not in ("asyncio", "trio"):
        raise UnsupportedEventLoopError(
            f"AsyncVecStore runs under asyncio or trio, not {name}; the synchronous "
            f"VecStore works anywhere")
    return name


async def to_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a worker thread; the loop keeps running."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


async def wait(fut: concurrent.futures.Future[T]) -> T:
    """Await a future completed by another thread, without a thread of our own."""
    if fut.done():
        return fut.result()
    if backend() == "trio":
        return await _wait_trio(fut)
    return await _wait_asyncio(fut)


async def _wait_asyncio(fut: concurrent.futures.Future[T]) -> T:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    def done(_f: concurrent.futures.Future[T]) -> None:
        try:
            loop.call_soon_threadsafe(wake)
        except RuntimeError:  # the loop was closed meanwhile: nobody to wake
            pass

    fut.add_done_callback(done)
    await waiter
    return fut.result()


async def _wait_trio(fut: concurrent.futures.Future[T]) -> T:
    import trio

    token = trio.lowlevel.current_trio_token()
    event = trio.Event()

    def done(_f: concurrent.futures.Future[T]) -> None:
        try:
            token.run_sync_soon(event.set)
        except trio.RunFinishedError:  # the run ended meanwhile: nobody to wake
            pass

    fut.add_done_callback(done)
    await event.wait()
    return fut.result()
