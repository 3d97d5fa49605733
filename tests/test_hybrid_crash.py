"""kill -9 during ingest with a text field (issue #13): after each kill the
store reopens, ``vecstore check`` finds the BM25 postings, document lengths
and sparse vectors in agreement with the records, and BM25 search over the
reopened store (its columns rebuilt from LMDB) matches a brute-force BM25
over the records a scan returns."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_hybrid_model import bm25

from vecstore import HybridQuery, VecStore
from vecstore.cli.check import check_store

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "_hybrid_crash_child.py"
SEED = int(os.environ.get("VECSTORE_CRASH_SEED", random.randrange(2**31)))


def _spawn(store: Path, seed: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(CHILD), str(store), str(seed), "60"],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _w, _x = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "ready":
        proc.kill()
        pytest.fail(f"child did not start: {line!r}\n{proc.communicate(timeout=30)[1]}")
    return proc


@pytest.mark.parametrize("cycle_seed", [0, 1])
def test_kill9_postings_agree_with_records(tmp_path: Path, cycle_seed: int) -> None:
    rng = random.Random(SEED + cycle_seed)
    store = tmp_path / "t.db"
    for _ in range(3):
        proc = _spawn(store, rng.randrange(2**31))
        time.sleep(rng.uniform(0.3, 1.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        report = check_store(str(store))
        assert report["ok"], f"seed {SEED}: {report['problems']}"
        assert report["checked"].get("text_postings", 0) > 0
        with VecStore.open(str(store)) as s:
            model = {r.id: (r.metadata.get("content"), None) for r in s.scan()}
            for query in ("vector database", "crash safe rust", "kernel sqlite lmdb"):
                got = {r.id: r.score for r in s.query(HybridQuery(None, query,
                                                                  k=len(model) + 1))}
                want = bm25(model, query)
                assert set(got) == set(want), f"seed {SEED}: {query}"
                for rid, sc in want.items():
                    assert abs(got[rid] - sc) <= 1e-5 * max(1.0, sc), (SEED, query, rid)
