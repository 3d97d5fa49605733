"""The index-kind seam: the registry, a second kind (tests/_flat_kind.py),
the manifest recording kinds, and stores written before kinds existed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cbor2
import numpy as np
import pytest

import _flat_kind  # noqa: F401  (registers the "flat" kind)
from vecstore import Config, ConfigMismatchError, VecStore
from vecstore._errors import CorruptionError
from vecstore._index import KINDS, entry_kind, entry_params, kind_named
from vecstore._index.hnsw import HnswlibKind

FIXTURES = Path(__file__).parent / "fixtures"


def _manifest(store: VecStore) -> list[dict]:
    st = store._engine_checked().storage
    with st.read() as txn:
        return [cbor2.loads(v) for _k, v in txn.cursor(db=st.db("segs"))]


def _manifest_at(path: Path) -> list[dict]:
    with VecStore.open(path, read_only=True) as s:
        return _manifest(s)


def test_registry() -> None:
    assert isinstance(KINDS["hnswlib"], HnswlibKind) and "flat" in KINDS
    with pytest.raises(CorruptionError, match="not available"):
        kind_named("nope")
    assert entry_kind({"m": 16, "efc": 200}) == "hnswlib"  # entries from before kinds
    assert entry_params({"m": 16, "efc": 200}) == {"m": 16, "ef_construction": 200}


@pytest.mark.parametrize("distance", ["cosine", "euclidean", "dot"])
def test_flat_kind_end_to_end(tmp_path: Path, distance: str) -> None:
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((2600, 8)).astype(np.float32)
    cfg = Config(dim=8, distance=distance, seal_threshold=1000, index_kind="flat")
    with VecStore.open(tmp_path / "s", cfg) as s:
        s.upsert_many([(f"r{i}", vecs[i], {"g": i % 4}) for i in range(2600)])
        s.optimize()
        s.delete("r5")
        entries = _manifest(s)
        assert entries and {e["kind"] for e in entries} == {"flat"}
        q = vecs[5] + 0.001
        got = [r.id for r in s.query(q, k=10)]
        got_f = [r.id for r in s.query(q, k=10, filter={"g": 1})]
    if distance == "euclidean":
        d = ((vecs - q) ** 2).sum(1)
    elif distance == "cosine":
        d = -(vecs / np.linalg.norm(vecs, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    else:
        d = -(vecs @ q)
    d[5] = np.inf
    order = np.argsort(d, kind="stable")
    assert got == [f"r{i}" for i in order[:10]]  # exact kind: exact answers
    assert got_f == [f"r{i}" for i in order if i % 4 == 1][:10]
    with VecStore.open(tmp_path / "s") as s:  # reopened: loaded through the kind
        assert [r.id for r in s.query(q, k=10)] == got
    with pytest.raises(ConfigMismatchError, match="index_kind"):
        VecStore.open(tmp_path / "s", Config(dim=8, distance=distance, index_kind="hnswlib"))


def test_unknown_kind_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigMismatchError, match="index kind"):
        VecStore.open(tmp_path / "s", Config(dim=8, index_kind="annoy"))
    assert not (tmp_path / "s" / "data.mdb").exists()


def test_store_written_before_kinds_opens_and_answers_the_same(tmp_path: Path) -> None:
    """tests/fixtures/v1_store was written by vecstore before the seam existed
    (make_v1_store.py; hnswlib graph-only files, no kind in the manifest)."""
    answers = json.loads((FIXTURES / "v1_answers.json").read_text())
    path = tmp_path / "store"
    shutil.copytree(FIXTURES / "v1_store", path)
    assert all("kind" not in e for e in _manifest_at(path))
    queries = np.asarray(answers["queries"], np.float32)

    def same(s: VecStore) -> None:
        assert s.version == answers["version"]
        assert len(s) == answers["count"] and len(s.partition("t")) == answers["count_t"]
        assert [[r.id for r in s.query(q, k=10)] for q in queries] == answers["plain"]
        assert [[r.id for r in s.query(q, k=10, filter="group = 3")]
                for q in queries] == answers["filtered"]
        assert [[r.id for r in s.partition("t").query(q, k=5)] for q in queries] == \
            answers["part_t"]

    with VecStore.open(path, read_only=True) as s:
        same(s)
    with VecStore.open(path) as s:
        same(s)
        assert s.snapshot(tag="fixture").version == answers["version"]
        s.upsert("new", queries[0], {"group": 3})
        s.optimize()  # new segments of the current kind beside the old entry's rows
        assert s.query(queries[0], k=1)[0].id == "new"
        hits = [[r.id for r in s.query(q, k=10)] for q in queries[1:]]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hits, answers["plain"][1:])])
        assert recall >= 0.9
    assert {entry_kind(e) for e in _manifest_at(path)} == {"hnswlib"}
    assert all("kind" in e for e in _manifest_at(path))
