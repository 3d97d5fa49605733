"""Incremental exports (issue #17): ``export --since V`` writes what changed
after V (deletes as tombstones) and the versions it covers; importing it into
a copy of the store at V gives the store's state, exactly once, also when the
import is interrupted and run again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vecstore import Config, VecStore
from vecstore.migration import MigrationConfig, migration_for

FORMATS = ["qdrant", "pinecone", "weaviate", "chroma"]


def image(path: Path, partition: str = "default") -> dict[str, tuple[list[float], dict]]:
    with VecStore.open(path, read_only=True) as s:
        view = s.partition(partition)
        return {r.id: (r.vector.tolist(), r.metadata) for r in view.scan()}


def history(path: Path, rng: np.random.Generator) -> tuple[int, int]:
    """A store with a first state (version a) and changes after it: upserts
    of new and old ids, deletes, an id deleted and re-created, one created
    and deleted, a rollback; returns (a, latest)."""
    with VecStore.open(path, Config(dim=5)) as s:
        s.upsert_many([(str(j), rng.normal(size=5), {"c": j % 3, "document": f"d{j}"})
                       for j in range(60)])
        s.partition("other").upsert("x", rng.normal(size=5))
        a = s.version
        s.upsert_many([(str(j), rng.normal(size=5), {"c": 9}) for j in range(50, 75)])
        s.delete_many([str(j) for j in range(0, 60, 4)])
        s.upsert("4", rng.normal(size=5), {"back": True})
        s.upsert("tmp", rng.normal(size=5))
        s.delete("tmp")
        mid = s.version
        s.upsert_many([(str(j), rng.normal(size=5)) for j in range(5)])
        s.rollback(mid)
        s.partition("other").upsert("y", rng.normal(size=5))
        return a, s.version


@pytest.mark.parametrize("fmt", FORMATS)
def test_since_round_trip_with_deletes(tmp_path: Path, fmt: str) -> None:
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    a, latest = history(src, np.random.default_rng(3))
    mig = migration_for(fmt)
    with VecStore.open(src, read_only=True) as s:
        mig().export_to_file(s, tmp_path / "full", version=a)
        n = mig().export_to_file(s, tmp_path / "delta", since=a)
    text = (tmp_path / "delta").read_text()
    assert '"deleted":true' in text
    assert f'"vecstore":{{"since":{a},"version":{latest}' in text
    with VecStore.open(src, read_only=True) as s:
        assert n == len({c.id for c in s.changes(since=a, partitions=["default"])})
    with VecStore.open(dst, Config(dim=5)) as d:
        mig(MigrationConfig(index=False)).import_from_file(tmp_path / "full", d)
        assert image(dst) != image(src)
        # interrupted after the first batch, then run again: exactly once
        calls = []

        def stop(done: int, total: int) -> None:
            calls.append(done)
            if len(calls) == 2:  # (the first call is (0, total))
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            mig(MigrationConfig(batch_size=7, index=False)).with_progress(stop)\
                .import_from_file(tmp_path / "delta", d)
        stats = mig(MigrationConfig(batch_size=7, index=False)).import_from_file(
            tmp_path / "delta", d)
        assert stats.resumed and stats.errors == 0
        again = mig(MigrationConfig(index=False)).import_from_file(tmp_path / "delta", d)
        assert again.already_complete
    assert image(dst) == image(src)


def test_each_record_once_and_cli_json(tmp_path: Path) -> None:
    src = tmp_path / "a.db"
    a, latest = history(src, np.random.default_rng(4))
    out = subprocess.run(
        [sys.executable, "-m", "vecstore.cli", "export", "qdrant", str(src),
         str(tmp_path / "d.jsonl"), "--since", str(a), "--json"],
        capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    assert doc["since"] == a and doc["version"] == latest
    lines = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert lines[0] == {"vecstore": {"since": a, "version": latest, "partition": "default"}}
    ids = [str(x["id"]) for x in lines[1:]]
    assert len(ids) == len(set(ids)) == doc["records"]
    gone = {str(x["id"]) for x in lines[1:] if x.get("deleted")}
    live = image(src)
    assert "tmp" in gone and not gone & set(live)
    assert {i for i in ids if i not in gone} <= set(live)
    with VecStore.open(src, read_only=True) as s:
        changed = {c.id for c in s.changes(since=a, partitions=["default"])}
    assert set(ids) == changed
