"""Imports of files made by the real clients: ``qdrant-client`` in local
mode and ``chromadb``; and exports that those clients load back.  Skipped
where the clients are not installed."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecstore import Config, VecStore
from vecstore.migration import ChromaMigration, QdrantMigration

DIM = 16


def vec(i: int) -> list[float]:
    return np.random.default_rng(i).standard_normal(DIM).astype(np.float32).tolist()


def payload(i: int) -> dict[str, Any]:
    return {"name": f"pkg-{i}", "year": 2000 + i % 25, "rank": i / 3, "stable": i % 2 == 0,
            "tags": ["x", f"t{i % 4}"], "author": {"name": "Zoë", "id": i}, "none": None}


# -- Qdrant ------------------------------------------------------------------------------


def _qdrant_export(points: list[Any], path: Path) -> None:
    """What a user writes from ``client.scroll``: one point per line."""
    with open(path, "w") as f:
        for p in points:
            f.write(json.dumps({"id": p.id, "vector": p.vector, "payload": p.payload}) + "\n")


def _scroll_all(client: Any, name: str) -> list[Any]:
    out, offset = [], None
    while True:
        pts, offset = client.scroll(name, limit=64, offset=offset, with_vectors=True,
                                    with_payload=True)
        out += pts
        if offset is None:
            return out


def test_qdrant_client_export_imports_intact(tmp_path: Path) -> None:
    qc = pytest.importorskip("qdrant_client")
    from qdrant_client import models

    client = qc.QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection("pkgs", vectors_config=models.VectorParams(
        size=DIM, distance=models.Distance.COSINE))
    ids: list[Any] = list(range(150)) + [str(uuid.UUID(int=i + 1)) for i in range(50)]
    client.upsert("pkgs", points=[models.PointStruct(id=pid, vector=vec(i), payload=payload(i))
                                  for i, pid in enumerate(ids)])
    points = _scroll_all(client, "pkgs")
    assert len(points) == 200
    src = tmp_path / "pkgs.jsonl"
    _qdrant_export(points, src)
    with VecStore.open(tmp_path / "s.db") as s:
        st = QdrantMigration(batch_size=64).import_from_file(src, s)
        assert st.total_vectors == 200 and st.errors == 0 and len(s) == 200
        for p in points:
            rec = s.get(str(p.id))
            assert rec is not None, p.id
            assert rec.metadata == p.payload
            assert np.array_equal(rec.vector, np.asarray(p.vector, np.float32))
        # and back: the export loads into Qdrant with the same ids and payloads
        out = tmp_path / "back.jsonl"
        assert QdrantMigration().export_to_file(s, out) == 200
    client.create_collection("back", vectors_config=models.VectorParams(
        size=DIM, distance=models.Distance.COSINE))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    client.upsert("back", points=[models.PointStruct(**r) for r in rows])
    again = {p.id: p for p in _scroll_all(client, "back")}
    assert set(again) == {p.id for p in points}
    for p in points:
        assert again[p.id].payload == p.payload
        assert np.allclose(again[p.id].vector, p.vector, atol=1e-6)
    client.close()


def test_qdrant_client_named_vectors(tmp_path: Path) -> None:
    qc = pytest.importorskip("qdrant_client")
    from qdrant_client import models

    client = qc.QdrantClient(":memory:")
    client.create_collection("multi", vectors_config={
        "text": models.VectorParams(size=DIM, distance=models.Distance.DOT),
        "image": models.VectorParams(size=4, distance=models.Distance.DOT)})
    client.upsert("multi", points=[models.PointStruct(
        id=i, vector={"text": vec(i), "image": vec(i)[:4]}, payload={"i": i}) for i in range(20)])
    points = _scroll_all(client, "multi")
    src = tmp_path / "multi.jsonl"
    _qdrant_export(points, src)
    with VecStore.open(tmp_path / "s.db", Config(distance="dot")) as s:
        st = QdrantMigration().import_from_file(src, s)  # ambiguous: every record rejected
        assert st.errors == 20 and "vector_name" in st.failures[0].reason
        st = QdrantMigration(vector_name="text", restart=True).import_from_file(src, s)
        assert st.total_vectors == 20 and st.errors == 0
        for p in points:
            assert np.array_equal(s.get(str(p.id)).vector,
                                  np.asarray(p.vector["text"], np.float32))


# -- Chroma ------------------------------------------------------------------------------


def _chroma_client(tmp_path: Path) -> Any:
    chromadb = pytest.importorskip("chromadb")
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(tmp_path / "chroma"),
                                     settings=Settings(anonymized_telemetry=False))


def _get_all(col: Any) -> dict[str, Any]:
    got = col.get(include=["embeddings", "metadatas", "documents"])
    return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in got.items()}


def _chroma_meta(i: int) -> dict[str, Any] | None:
    if i % 10 == 0:
        return None
    return {"name": f"pkg-{i}", "year": 2000 + i % 25, "rank": i / 3, "stable": i % 2 == 0}


@pytest.mark.parametrize("text_field", [None, "content"])
def test_chroma_client_export_imports_intact(tmp_path: Path, text_field: str | None) -> None:
    client = _chroma_client(tmp_path)
    col = client.create_collection("pkgs", embedding_function=None)
    n = 120
    col.add(ids=[f"id-{i}" for i in range(n)], embeddings=[vec(i) for i in range(n)],
            metadatas=[_chroma_meta(i) for i in range(n)],
            documents=[None if i % 7 == 0 else f"summary of package {i} ✓" for i in range(n)])
    got = _get_all(col)
    assert len(got["ids"]) == n
    src = tmp_path / "chroma.json"
    src.write_text(json.dumps(got))
    field = text_field or "document"
    with VecStore.open(tmp_path / "s.db", Config(text_field=text_field)) as s:
        st = ChromaMigration(batch_size=50).import_from_file(src, s)
        assert st.total_vectors == n and st.errors == 0
        for rid, emb, meta, doc in zip(got["ids"], got["embeddings"], got["metadatas"],
                                       got["documents"]):
            rec = s.get(rid)
            expect = dict(meta or {})
            if doc is not None:
                expect[field] = doc
            assert rec.metadata == expect
            assert np.array_equal(rec.vector, np.asarray(emb, np.float32))
        out = tmp_path / "back.json"
        assert ChromaMigration().export_to_file(s, out) == n
    # the export loads into Chroma as it is, with documents back in their column
    back = json.loads(out.read_text())
    col2 = client.create_collection("back", embedding_function=None)
    col2.add(ids=back["ids"], embeddings=back["embeddings"], metadatas=back["metadatas"],
             documents=back["documents"])
    again = _get_all(col2)
    before = {i: (d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])}
    after = {i: (d, m) for i, d, m in zip(again["ids"], again["documents"], again["metadatas"])}
    assert after == before
