"""Regression tests for what the power-cut harness (stress/powercut) found.

Each test records a tiny writer under strace (skipped without strace),
rebuilds the one crash state that broke vecstore, and opens it.  The model
and the recorder are the harness's own (docs/reliability.md, "Power loss").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from stress.powercut import crash, trace

pytestmark = pytest.mark.skipif(trace.strace_path() is None, reason="needs strace")

ROOT = Path(__file__).resolve().parent.parent


def record(tmp: Path, body: str) -> tuple[crash.FS, list[tuple]]:
    """Run ``body`` (with ``STORE``, ``ack(obj)``, ``np``, ``VecStore``,
    ``Config`` in scope) under strace; return the model of ``tmp/fs`` as it
    was before the program ran, and the program's events."""
    fs_root = tmp / "fs"
    fs_root.mkdir(exist_ok=True)
    ack = tmp / "acks.jsonl"
    prog = tmp / "prog.py"
    prog.write_text(textwrap.dedent("""
        import json, os, sys
        import numpy as np
        from vecstore import Config, VecStore
        STORE = sys.argv[1]
        _fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        def ack(obj):
            os.write(_fd, (json.dumps(obj) + "\\n").encode())
    """) + textwrap.dedent(body))
    fsm = crash.FS(str(fs_root))
    log = tmp / "trace.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = trace.command([sys.executable, str(prog), str(fs_root / "store"), str(ack)], str(log))
    subprocess.run(cmd, env=env, check=True, timeout=120, capture_output=True)
    return fsm, trace.Parser(str(fs_root), str(ack)).parse(str(log))


def acked_ids(events: list[tuple]) -> list[str]:
    text = b"".join(e[1] for e in events if e[0] == "ack")
    return [json.loads(line)["id"] for line in text.splitlines() if line]


def open_state(tree: dict, dest: Path) -> dict[str, int]:
    """Open a crash state in a fresh interpreter: {id: op} it holds."""
    crash.materialize(tree, str(dest))
    code = textwrap.dedent("""
        import json, os, sys
        from vecstore import VecStore
        p = sys.argv[1]
        if not os.path.isdir(p):
            print(json.dumps({}))
        else:
            with VecStore.open(p) as s:
                print(json.dumps({r.id: r.metadata["op"] for r in s.scan()}))
    """)
    out = subprocess.run([sys.executable, "-c", code, str(dest / "store")], check=True,
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_new_store_survives_a_power_cut(tmp_path: Path) -> None:
    """Bug P1: a store created in a new directory never synced a directory:
    LMDB creates data.mdb without fsyncing the store's directory, and
    nothing fsynced the parent for the store's own name.  The crash state
    "only what was synced" lost the whole store, acknowledged writes and
    all.  Fixed: creating a store makes its names durable (files.sync_names)."""
    fsm, events = record(tmp_path, """
        with VecStore.open(STORE, Config(dim=4)) as s:
            for i in range(3):
                s.upsert(f"a{i}", np.full(4, i + 1, np.float32), {"op": i})
                ack({"id": f"a{i}"})
    """)
    for ev in events:
        if ev[0] != "ack":
            fsm.apply(ev)
    assert acked_ids(events) == ["a0", "a1", "a2"]
    import random

    got = open_state(fsm.crash(random.Random(0), "durable"), tmp_path / "state")
    assert got == {"a0": 0, "a1": 1, "a2": 2}


def test_relaxed_store_is_a_prefix_when_the_meta_page_lands_first(tmp_path: Path) -> None:
    """Bug P2: durability="relaxed" opened LMDB with MDB_NOSYNC, so nothing
    ordered LMDB's meta page after the pages it points to.  The crash state
    "the meta pages were written back, the tree pages of the same commits
    were not" then failed to open (MDB_CORRUPTED / MDB_INVALID / SIGBUS) or
    showed garbage.  Fixed: relaxed is MDB_NOMETASYNC (a commit's pages are
    fsynced before its meta page is written; only the meta sync is dropped),
    so that state is one of the committed versions."""
    with_store = tmp_path / "fs" / "store"
    from vecstore import Config, VecStore

    with VecStore.open(with_store, Config(dim=4, durability="relaxed")) as s:
        s.upsert("base", np.ones(4, np.float32), {"op": -1})
    fsm, events = record(tmp_path, """
        with VecStore.open(STORE, Config(dim=4, durability="relaxed")) as s:
            for i in range(20):
                s.upsert_many([(f"b{i}-{j}", np.full(4, j + 1, np.float32), {"op": i})
                               for j in range(30)])
                ack({"id": f"b{i}"})
    """)
    for ev in events:
        if ev[0] != "ack":
            fsm.apply(ev)
    data = fsm.inodes[fsm.lookup(str(with_store / "data.mdb"))]
    assert isinstance(data, crash.File) and data.pending()
    # the crash state: only what was synced, except LMDB's two meta pages
    # (blocks 0 and 1 of data.mdb), which hold their last version
    import random

    for b in (0, 1):
        if b in data.blocks:
            data.blocks[b] = [data.blocks[b][-1]]
    got = open_state(fsm.crash(random.Random(0), "durable"), tmp_path / "state")
    assert got.get("base") == -1
    ops = sorted({op for rid, op in got.items() if rid != "base"})
    assert ops == list(range(len(ops))), ops  # whole batches, a prefix of them
    for i in ops:
        assert sum(1 for rid in got if rid.startswith(f"b{i}-")) == 30
