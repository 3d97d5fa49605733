"""Every script in examples/ runs to completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
#: Lines an example must print (checked in the same run, so each runs once).
EXPECTED_LINES: dict[str, list[str]] = {
    "asyncio_service.py": [
        "serving on 127.0.0.1 (a free port)",
        "20 concurrent upserts -> 20 records at version 20, in ",
        "query blue, price < 15: ['item-2', 'item-6', 'item-10']",
        "get item-6: 200 {'color': 'blue', 'price': 6}",
        "delete item-6: True; get again: 404",
        "upsert of a 2-d vector into a 4-d store: 400 DimensionMismatchError",
        "server stopped; store closed on leaving 'async with'",
    ],
    "langchain_retriever.py": [
        "added 6 documents (one store version)",
        "'python vector database': ['vecstore', 'vecstore-async']",
        "same, year >= 2023: ['vecstore', 'vecstore-async', 'tutorial']",
        "'async web', lang != python: ['axum', 'sqlite']",
        "'python vector database', MMR (diverse): ['vecstore', ",
        "'crash safe database', relevance >= 0.8: ['sqlite']",
        "async: 'rust': ['axum']",
        ("reopened: 'vecstore' -> 'vecstore is an embedded vector database for Python.' "
         "{'lang': 'python', 'year': 2024}"),
    ],
}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "store.db")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "an example should show what it did"
    lines = proc.stdout.splitlines()
    for want in EXPECTED_LINES.get(script.name, []):
        assert any(line.startswith(want) for line in lines), (want, proc.stdout)


def test_quickstart_output_is_truthful(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"),
                          str(tmp_path / "q.db")], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert "wrote 2000 records at version 1" in out
    assert "doc-42  score=1.000" in out
    assert "after delete: None | snapshot still has: doc-42" in out
    assert "stats: 1999 vectors, 1 HNSW segment(s), version 2" in out
