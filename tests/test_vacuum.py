"""data.mdb is rewritten compactly at a lone writer's open once compaction
has freed most of it -- never while another process has the store open."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vecstore import Config, VecStore
from vecstore._storage import vacuum as _vacuum

DIM = 64
N = 1500


@pytest.fixture(autouse=True)
def small_files(monkeypatch):
    monkeypatch.setattr(_vacuum, "MIN_BYTES", 0)


def _churned_store(path: str) -> np.ndarray:
    rng = np.random.default_rng(5)
    with VecStore.open(path, Config(dim=DIM, seal_threshold=500)) as s:
        for r in range(6):
            x = rng.standard_normal((N, DIM)).astype(np.float32)
            s.upsert_many(ids=[f"r{i}" for i in range(N)], vectors=x,
                          metadata=[{"i": i, "round": r} for i in range(N)])
        s.optimize()
        s.set_retention(versions=1)
        s.compact()
        assert s.count() == N
    return x


def _size(path: str) -> int:
    return os.path.getsize(os.path.join(path, "data.mdb"))


def _check_clean(path: str) -> None:
    out = subprocess.run([sys.executable, "-m", "vecstore.cli", "check", path],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_lone_writer_open_shrinks_the_file(tmp_path):
    path = str(tmp_path / "s")
    x = _churned_store(path)
    before = _size(path)
    os.makedirs(os.path.join(path, _vacuum.TMP_DIR))  # as a kill mid-vacuum leaves it
    with open(os.path.join(path, _vacuum.TMP_DIR, "data.mdb"), "wb") as f:
        f.write(b"half a copy")
    with VecStore.open(path) as s:
        after = _size(path)
        assert after < 0.6 * before, (before, after)
        assert not os.path.exists(os.path.join(path, _vacuum.TMP_DIR))
        assert s.count() == N
        assert all(np.array_equal(s.get(f"r{i}").vector, x[i]) for i in range(0, N, 7))
        assert s.query(x[3], k=1)[0].id == "r3"
        v = s.upsert("new", x[0], {"i": -1})  # and it takes writes
        assert s.get("new") is not None and v == s.version
    closed = _size(path)
    with VecStore.open(path) as s:  # nothing left to reclaim: not rewritten again
        assert s.count() == N + 1 and _size(path) == closed
    _check_clean(path)


def test_no_vacuum_while_a_reader_process_has_the_store(tmp_path):
    path = str(tmp_path / "s")
    _churned_store(path)
    before = _size(path)
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from vecstore import VecStore
            s = VecStore.open({path!r}, read_only=True)
            print(s.count(), flush=True)
            sys.stdin.readline()
            s.refresh()
            print(s.count(), s.get("late") is not None, flush=True)
            s.close()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        assert reader.stdout.readline().strip() == str(N)
        with VecStore.open(path) as s:
            assert _size(path) == before  # the reader holds it: left alone
            s.upsert("late", np.ones(DIM, np.float32))
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().split() == [str(N + 1), "True"]
    finally:
        reader.kill()
        reader.wait()
    with VecStore.open(path) as s:  # alone now
        assert _size(path) < 0.6 * before and s.count() == N + 1


def test_kill_during_the_rewrite_loses_nothing(tmp_path):
    import random
    import shutil
    import signal
    import time

    src = str(tmp_path / "src")
    x = _churned_store(src)
    rng = random.Random(11)
    child = textwrap.dedent("""
        import sys
        from vecstore import VecStore
        from vecstore._storage import vacuum as _vacuum
        _vacuum.MIN_BYTES = 0
        print("go", flush=True)
        VecStore.open(sys.argv[1]).close()
        print("done", flush=True)
    """)
    for i in range(6):
        path = str(tmp_path / f"s{i}")
        shutil.copytree(src, path)
        proc = subprocess.Popen([sys.executable, "-c", child, path], stdout=subprocess.PIPE,
                                text=True, env=dict(os.environ,
                                                    PYTHONPATH=os.pathsep.join(sys.path)))
        assert proc.stdout.readline().strip() == "go"
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with VecStore.open(path) as s:
            assert s.count() == N
            assert all(np.array_equal(s.get(f"r{j}").vector, x[j]) for j in range(0, N, 11))
        assert not os.path.exists(os.path.join(path, _vacuum.TMP_DIR))
        _check_clean(path)
