"""Every script in examples/ runs to completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "store.db")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "an example should show what it did"


def test_quickstart_output_is_truthful(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"),
                          str(tmp_path / "q.db")], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert "wrote 2000 records at version 1" in out
    assert "doc-42  score=1.000" in out
    assert "after delete: None | snapshot still has: doc-42" in out
    assert "stats: 1999 vectors, 1 HNSW segment(s), version 2" in out
