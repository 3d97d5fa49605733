"""The console script, through subprocess (what users run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vecstore import Config, VecStore

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "vecstore.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_stats_json(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "s.db", Config(dim=3)) as s:
        s.upsert_many([("a", [1, 2, 3]), ("b", [3, 2, 1])])
        s.partition("t").upsert("c", [1, 1, 1])
    out = run("stats", "--json", str(tmp_path / "s.db"))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["total_vectors"] == 3 and doc["partitions"] == {"default": 2, "t": 1}


def test_bad_path_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    out = run("stats", str(tmp_path / "nope"))
    assert out.returncode != 0 and "Traceback" not in out.stderr and "nope" in out.stderr


def test_unbuilt_commands_say_so() -> None:
    out = run("import", "qdrant", "x", "y")
    assert out.returncode == 2 and "not built yet" in out.stderr
