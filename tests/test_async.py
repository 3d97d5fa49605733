"""The async store under concurrent writers and readers, on asyncio and on trio."""

from __future__ import annotations

from pathlib import Path

import anyio
import numpy as np
import pytest

from vecstore import AsyncVecStore, Config, DimensionMismatchError, ReadOnlyError, VecStore

DIM = 8


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def vec(i: int) -> np.ndarray:
    return np.random.default_rng(i).normal(size=DIM).astype(np.float32)


async def test_basic_async_roundtrip(tmp_path: Path) -> None:
    async with AsyncVecStore.open(tmp_path / "a.db", Config(dim=DIM)) as store:
        v = await store.upsert("a", vec(1), {"x": 1})
        assert v == store.version
        rec = await store.get("a")
        assert rec is not None and rec.metadata == {"x": 1}
        res = await store.query(vec(1), k=1)
        assert res[0].id == "a"
        with pytest.raises(DimensionMismatchError):
            await store.upsert("b", [1, 2])
        p = store.partition("t")
        await p.upsert_many([("x", vec(2)), ("y", vec(3))])
        assert await p.count() == 2 and await store.count() == 1
        assert await store.partitions() == ["default", "t"]
        assert [r.id async for r in p.scan()] == ["x", "y"]
        await store.optimize()
        assert (await store.stats()).growing_vectors == 0
    with VecStore.open(tmp_path / "a.db") as s:  # and it is all on disk
        assert len(s) == 1 and len(s.partition("t")) == 2


async def test_50_writers_with_readers_and_group_commit(tmp_path: Path) -> None:
    writers, per_writer = 50, 12
    async with AsyncVecStore.open(tmp_path / "c.db",
                                  Config(dim=DIM, seal_threshold=150)) as store:
        done = anyio.Event()
        problems: list[str] = []

        async def writer(w: int) -> None:
            for j in range(per_writer):
                i = w * 1000 + j
                await store.upsert(f"w{w}-{j}", vec(i), {"w": w, "j": j})
                if j % 4 == 3:
                    await store.delete(f"w{w}-{j - 1}")

        async def reader() -> None:
            while not done.is_set():
                snap = await store.snapshot()
                n1 = await snap.count()
                ids = [r.id async for r in snap.scan()]
                # A snapshot's answers agree with each other and never move.
                if len(ids) != n1:
                    problems.append(f"count {n1} != scan {len(ids)} at {snap.version}")
                if ids:
                    hit = await snap.query(vec(0), k=5)
                    if not {r.id for r in hit} <= set(ids):
                        problems.append(f"query returned ids not in snapshot {snap.version}")
                if await snap.count() != n1:
                    problems.append("snapshot count changed")
                await anyio.sleep(0)

        async with anyio.create_task_group() as nursery:
            for _ in range(3):
                nursery.start_soon(reader)
            async with anyio.create_task_group() as wn:
                for w in range(writers):
                    wn.start_soon(writer, w)
            done.set()

        assert not problems, problems[:5]
        calls = writers * per_writer + writers * (per_writer // 4)
        assert store._engine_checked().write_calls == calls
        # Group commit: concurrent calls shared transactions.
        assert store.commits < calls
        expected = writers * per_writer - writers * (per_writer // 4)
        assert await store.count() == expected


async def test_read_only_async(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "r.db", Config(dim=DIM)) as s:
        s.upsert("a", vec(1))
        async with AsyncVecStore.open(tmp_path / "r.db", read_only=True) as ro:
            assert await ro.count() == 1
            with pytest.raises(ReadOnlyError):
                await ro.upsert("b", vec(2))
            s.upsert("b", vec(2))
            await ro.refresh()
            assert await ro.count() == 2


async def test_writes_sent_before_close_are_answered(tmp_path: Path) -> None:
    results: list[int] = []
    async with AsyncVecStore.open(tmp_path / "x.db", Config(dim=DIM)) as store:
        async with anyio.create_task_group() as nursery:
            async def one(i: int) -> None:
                results.append(await store.upsert(str(i), vec(i)))
            for i in range(20):
                nursery.start_soon(one, i)
    assert len(results) == 20 and len(set(results)) == 20
    with VecStore.open(tmp_path / "x.db") as s:
        assert len(s) == 20 and s.version == max(results)


async def test_a_cancelled_write_is_whole_or_absent(tmp_path: Path) -> None:
    """Cancelling the task that awaits a write stops the wait, never the write
    half-way: the batch it sent is in the store entirely, or not at all."""
    async with AsyncVecStore.open(tmp_path / "k.db", Config(dim=DIM)) as store:
        batches = [[(f"b{b}-{i}", vec(b * 100 + i)) for i in range(200)] for b in range(20)]
        async with anyio.create_task_group() as tg:
            for batch in batches:
                tg.start_soon(store.upsert_many, batch)
            await anyio.sleep(0)
            tg.cancel_scope.cancel()  # every waiter is cancelled, whatever it sent
        await store.upsert("after", vec(9))  # the writer still serves
        ids = {r.id async for r in store.scan()}
        for b, batch in enumerate(batches):
            got = {i for i, _v in batch} & ids
            assert len(got) in (0, len(batch)), f"batch {b} half-applied: {len(got)}"
        assert "after" in ids


async def test_the_event_loop_keeps_running_during_heavy_calls(tmp_path: Path) -> None:
    """Index builds, commits and queries run off the event loop: a heartbeat
    task keeps ticking while they run."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(6000, 32)).astype(np.float32)
    ticks = 0

    async def heartbeat(stop: anyio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await anyio.sleep(0.001)

    async with AsyncVecStore.open(tmp_path / "h.db", Config(dim=32)) as store:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat, stop)
            await store.upsert_many(ids=[str(i) for i in range(6000)], vectors=data)
            before = ticks
            await store.optimize()  # seconds of HNSW building, in other threads
            during_optimize = ticks - before
            for q in data[:20]:
                await store.query(q, k=5)
            stop.set()
        assert during_optimize > 5, during_optimize


async def test_open_without_async_with(tmp_path: Path) -> None:
    store = await AsyncVecStore.open(tmp_path / "o.db", Config(dim=DIM))
    try:
        await store.upsert("a", vec(1))
        assert (await store.get("a")) is not None and not store.closed
    finally:
        await store.close()
    assert store.closed
    await store.close()  # idempotent
    with VecStore.open(tmp_path / "o.db") as s:
        assert len(s) == 1


async def test_async_scan_loses_nothing_at_batch_boundaries(tmp_path: Path) -> None:
    async with AsyncVecStore.open(tmp_path / "s.db", Config(dim=DIM)) as store:
        await store.upsert_many([(f"{i:04d}", vec(i)) for i in range(25)])
        for size in (1, 4, 5, 24, 25, 1000):
            assert [r.id async for r in store.scan(batch_size=size)] == \
                [f"{i:04d}" for i in range(25)], size
            snap = await store.snapshot()
            assert len([r async for r in snap.scan(batch_size=size)]) == 25


def test_a_store_left_open_when_the_loop_ends_is_closed_at_exit(tmp_path: Path) -> None:
    """asyncio.run() ends with the store neither closed nor left by `async with`:
    the process still exits promptly, with every acknowledged write on disk and
    the writer lock released."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import asyncio
        from vecstore import AsyncVecStore, Config

        async def main():
            store = await AsyncVecStore.open({str(tmp_path / "left.db")!r}, Config(dim=3))
            await asyncio.gather(*(store.upsert(str(i), [1, 2, i + 1]) for i in range(50)))
            print("acknowledged", store.version, flush=True)

        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "acknowledged" in out.stdout and "Traceback" not in out.stderr
    with VecStore.open(tmp_path / "left.db") as s:  # the lock was released
        assert len(s) == 50
