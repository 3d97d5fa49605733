"""Tests for vecstore.migration._formats: streaming readers/writers of the
Pinecone, Qdrant, Weaviate and Chroma export formats."""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import tracemalloc
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vecstore._errors import MigrationError
from vecstore.migration import _formats
from vecstore.migration._formats import (
    FORMATS,
    SourceInfo,
    SourceRecord,
    estimate_total,
    open_reader,
    source_info,
    write_export,
)

R = SourceRecord
U1 = "3f0e9c2a-6f4b-4c7e-9a51-0d5a1c2b3e4f"
U2 = "a1b2c3d4-0000-4000-8000-123456789abc"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def read(fmt: str, path: Path, **kw: object) -> list[SourceRecord]:
    return list(open_reader(fmt, path, **kw))


# --------------------------------------------------------------------------- Pinecone

PINECONE = """{"namespace": "ns1",
 "vectors": [
  {"id": "a", "values": [0.5, -1.25, 3], "metadata": {"genre": "drama", "year": 2020,
                                                     "tags": ["x", {"y": null}]}},
  {"id": "b", "values": [1e-3, 2.5E2, 0], "sparse_values": {"indices": [1], "values": [0.5]}},
  {"id": "c", "metadata": {"k": 1}},
  7,
  {"values": [1.0], "metadata": null},
  {"id": null, "values": null}
 ],
 "usage": {"read_units": 5}}"""

PINECONE_EXPECTED = [
    R(0, "a", [0.5, -1.25, 3], {"genre": "drama", "year": 2020, "tags": ["x", {"y": None}]},
      None),
    R(1, "b", [0.001, 250.0, 0], None, None,
      sparse={"indices": [1], "values": [0.5]}),  # sparse_values kept (issue #13)
    R(2, "c", None, {"k": 1}, None, "missing 'values'"),
    R(3, None, None, None, None, "record is not an object (got int)"),
    R(4, None, [1.0], None, None, "missing 'id'"),
    R(5, None, None, None, None, "'id' is null; 'values' is null"),
]


def test_pinecone_reads_exact_records(tmp_path: Path) -> None:
    p = write(tmp_path, "pc.json", PINECONE)
    recs = read("pinecone", p)
    assert recs == PINECONE_EXPECTED
    assert type(recs[0].vector[0]) is float and type(recs[0].vector[2]) is int
    assert type(recs[1].vector[0]) is float  # not Decimal


@pytest.mark.parametrize("start", [0, 1, 3, 5, 6, 100])
def test_pinecone_start_skips_exactly(tmp_path: Path, start: int) -> None:
    p = write(tmp_path, "pc.json", PINECONE)
    assert read("pinecone", p, start=start) == PINECONE_EXPECTED[start:]


def test_pinecone_empty_vectors_and_vectors_last(tmp_path: Path) -> None:
    assert read("pinecone", write(tmp_path, "e.json", '{"vectors": [], "namespace": ""}')) == []
    p = write(tmp_path, "l.json", '{"namespace": "x", "dimension": 2, "vectors": [{"id": "z", '
                                  '"values": [1, 2]}]}')
    assert read("pinecone", p) == [R(0, "z", [1, 2], None, None)]


@pytest.mark.parametrize("text, needle", [
    ('{"namespace": "x"}', "'vectors' is missing"),
    ('{"vectors": {"a": {"id": "a", "values": [1]}}}', "'vectors' is object"),
    ('{"vectors": null}', "'vectors' is null"),
    ('[{"id": "a", "values": [1]}]', "not a JSON object"),
])
def test_pinecone_wrong_shape_raises(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(MigrationError, match=needle):
        read("pinecone", write(tmp_path, "bad.json", text))


def test_truncated_document_raises_with_position(tmp_path: Path) -> None:
    p = write(tmp_path, "t.json", PINECONE[: PINECONE.index('"id": "c"') + 5])
    it = open_reader("pinecone", p)
    assert next(it).id == "a" and next(it).id == "b"
    with pytest.raises(MigrationError) as ei:
        next(it)
    msg = str(ei.value)
    assert "premature EOF" in msg and "record position 2" in msg and "t.json" in msg
    assert f"read {p.stat().st_size} bytes" in msg


@pytest.mark.parametrize("fmt", ["pinecone", "weaviate", "chroma"])
@pytest.mark.parametrize("text, needle", [
    ('{"vectors": [{"id": "a", "values": [1, NaN]}]}', "invalid char"),
    ('{"vectors": []} trailing', "trailing garbage"),
    ('', "premature EOF"),
    ('\x00\x01garbage', "error"),
    (b'{"ids": ["\xff"], "vectors": [{"id": "\xff"}]}', "UTF8"),
])
def test_malformed_documents_raise(tmp_path: Path, fmt: str, text: str | bytes,
                                   needle: str) -> None:
    with pytest.raises(MigrationError, match="malformed") as ei:
        read(fmt, write(tmp_path, "m.json", text))
    assert needle in str(ei.value)


# --------------------------------------------------------------------------- Qdrant

QDRANT = "\n".join([
    '{"id": 1, "vector": [0.1, 0.2], "payload": {"city": "Zürich", "n": [1, 2.5]}}',
    f'{{"id": "{U1}", "vector": {{"dense": [1.5, 2]}}, "payload": null}}',
    "",
    "   \t",
    f'{{"id": "{U2}", "vector": {{"a": [1], "b": [2]}}, "payload": {{"x": true}}}}',
    '{"id": 4, "payload": {}}',
    '["not", "an", "object"]',
    '{"id": 6, "vector": [3, 4]}',
    '{"vector": {}, "payload": {"p": 1}}',
]) + "\n\n"

QDRANT_EXPECTED = [
    R(0, 1, [0.1, 0.2], {"city": "Zürich", "n": [1, 2.5]}, None),
    R(1, U1, [1.5, 2], None, None),
    R(2, U2, {"a": [1], "b": [2]}, {"x": True}, None,
      "record has several named vectors ('a', 'b'); pass vector_name to choose one"),
    R(3, 4, None, {}, None, "missing 'vector'"),
    R(4, None, None, None, None, "record is not an object (got list)"),
    R(5, 6, [3, 4], None, None),
    R(6, None, {}, {"p": 1}, None, "missing 'id'; named vectors object is empty"),
]


def test_qdrant_reads_exact_records(tmp_path: Path) -> None:
    assert read("qdrant", write(tmp_path, "q.jsonl", QDRANT)) == QDRANT_EXPECTED


@pytest.mark.parametrize("start", [0, 1, 2, 4, 7, 9])
def test_qdrant_start_skips_exactly(tmp_path: Path, start: int) -> None:
    assert read("qdrant", write(tmp_path, "q.jsonl", QDRANT), start=start) == \
        QDRANT_EXPECTED[start:]


def test_qdrant_vector_name(tmp_path: Path) -> None:
    p = write(tmp_path, "q.jsonl", QDRANT)
    recs = read("qdrant", p, vector_name="b")
    assert recs[2] == R(2, U2, [2], {"x": True}, None)
    assert recs[1].error == "no vector named 'b' (record has 'dense')"
    assert recs[0] == QDRANT_EXPECTED[0]  # unnamed vectors are used as they are


def test_qdrant_long_lines_and_crlf(tmp_path: Path) -> None:
    # Long lines take the ijson path; NaN falls back to json.loads.
    vec = [float(i) / 7 for i in range(400)]
    lines = [json.dumps({"id": i, "vector": vec, "payload": {"i": i}}) for i in range(3)]
    lines.append('{"id": 3, "vector": [NaN, ' + ", ".join(["1.0"] * 400) + "]}")
    p = write(tmp_path, "q.jsonl", "\r\n".join(lines) + "\r\n")
    recs = read("qdrant", p)
    assert [r.id for r in recs] == [0, 1, 2, 3]
    assert recs[1].vector == vec and recs[2].metadata == {"i": 2}
    assert np.isnan(recs[3].vector[0]) and recs[3].error is None


def test_qdrant_garbage_line_raises_with_line_number(tmp_path: Path) -> None:
    text = QDRANT.replace('{"id": 6, "vector": [3, 4]}', '{"id": 6, "vector": [3, 4')
    it = open_reader("qdrant", write(tmp_path, "q.jsonl", text))
    assert len([next(it) for _ in range(5)]) == 5
    with pytest.raises(MigrationError, match=r"line 8 \(record position 5\)"):
        next(it)
    long_bad = "{" + '"id": 1, "vector": [' + "1.5, " * 1000 + "]}"
    with pytest.raises(MigrationError, match=r"line 1 .*not valid JSON"):
        read("qdrant", write(tmp_path, "q2.jsonl", long_bad + "\n"))


# --------------------------------------------------------------------------- Weaviate

WEAVIATE = f"""{{"vectors": [
  {{"id": "{U1}", "class": "Article", "vector": [0.25, 1], "properties": {{"title": "Ünï",
    "wordCount": 12}}}},
  {{"id": "{U2}", "class": "Article", "properties": {{"title": "no vector"}}}},
  {{"id": "x", "vectors": {{"title_vec": [1.5], "body_vec": [2.5]}}, "properties": null}},
  {{"id": "y", "vector": [], "vectors": {{"only": [9]}}}},
  "str"
 ], "exported_at": "2024-01-01"}}"""

WEAVIATE_EXPECTED = [
    R(0, U1, [0.25, 1], {"title": "Ünï", "wordCount": 12}, None),
    R(1, U2, None, {"title": "no vector"}, None, "missing 'vector'"),
    R(2, "x", {"title_vec": [1.5], "body_vec": [2.5]}, None, None,
      "record has several named vectors ('title_vec', 'body_vec'); pass vector_name to choose one"),
    R(3, "y", [9], None, None),
    R(4, None, None, None, None, "record is not an object (got str)"),
]


def test_weaviate_reads_exact_records(tmp_path: Path) -> None:
    p = write(tmp_path, "w.json", WEAVIATE)
    assert read("weaviate", p) == WEAVIATE_EXPECTED
    assert read("weaviate", p, start=2) == WEAVIATE_EXPECTED[2:]
    assert read("weaviate", p, vector_name="body_vec")[2] == R(2, "x", [2.5], None, None)


# --------------------------------------------------------------------------- Chroma

CHROMA = """{"ids": ["id1", "id2", "id3"],
 "embeddings": [[1.0, 2.0], [3.5, -4], [0.0, 1e-7]],
 "documents": ["first doc", null, "third"],
 "uris": null, "data": null,
 "metadatas": [{"source": "a", "nested": {"l": [1, 2]}}, null, {"source": "c"}],
 "included": ["embeddings", "metadatas", "documents"]}"""

CHROMA_EXPECTED = [
    R(0, "id1", [1.0, 2.0], {"source": "a", "nested": {"l": [1, 2]}}, "first doc"),
    R(1, "id2", [3.5, -4], None, None),
    R(2, "id3", [0.0, 1e-7], {"source": "c"}, "third"),
]


def test_chroma_reads_exact_records(tmp_path: Path) -> None:
    p = write(tmp_path, "c.json", CHROMA)
    assert read("chroma", p) == CHROMA_EXPECTED
    for start in range(5):
        assert read("chroma", p, start=start) == CHROMA_EXPECTED[start:]


@pytest.mark.parametrize("variant", ["null", "missing"])
def test_chroma_optional_columns_null_or_missing(tmp_path: Path, variant: str) -> None:
    base = {"ids": ["a", "b"], "embeddings": [[1], [2]], "metadatas": None, "documents": None}
    if variant == "missing":
        del base["metadatas"], base["documents"]
    p = write(tmp_path, "c.json", json.dumps(base))
    assert read("chroma", p) == [R(0, "a", [1], None, None), R(1, "b", [2], None, None)]
    assert read("chroma", p, start=1) == [R(1, "b", [2], None, None)]


def test_chroma_null_entries_are_error_records(tmp_path: Path) -> None:
    p = write(tmp_path, "c.json", '{"ids": ["a", null], "embeddings": [null, [1]], '
                                  '"metadatas": [{}, {}], "documents": [5, "d"]}')
    assert read("chroma", p) == [
        R(0, "a", None, {}, 5, "'embeddings' entry is null; 'documents' entry is not a string"),
        R(1, None, [1], {}, "d", "'ids' entry is null"),
    ]


@pytest.mark.parametrize("doc, needle", [
    ({"ids": ["a", "b", "c"], "embeddings": [[1], [2]], "metadatas": None},
     "ids=3, embeddings=2, metadatas=absent, documents=absent"),
    ({"ids": ["a"], "embeddings": [[1], [2], [3]], "documents": ["x"]},
     "ids=1, embeddings=3, metadatas=absent, documents=1"),
    ({"ids": ["a", "b"], "embeddings": [[1], [2]], "metadatas": [], "documents": None},
     "ids=2, embeddings=2, metadatas=0, documents=absent"),
    ({"ids": ["a", "b"], "embeddings": [[1], [2]], "metadatas": [{}, {}],
      "documents": ["x", "y", "z"]}, "ids=2, embeddings=2, metadatas=2, documents=3"),
])
def test_chroma_length_mismatch_raises(tmp_path: Path, doc: dict, needle: str) -> None:
    p = write(tmp_path, "c.json", json.dumps(doc))
    with pytest.raises(MigrationError, match="different lengths") as ei:
        read("chroma", p)
    assert needle in str(ei.value)


@pytest.mark.parametrize("doc, needle", [
    ({"ids": ["a"], "embeddings": None}, "no 'embeddings' column (null)"),
    ({"ids": ["a"], "metadatas": [{}]}, "no 'embeddings' column (missing)"),
    ({"embeddings": [[1.0]]}, "no 'ids' column (missing)"),
    ({"ids": "a", "embeddings": [[1.0]]}, "'ids' is str, not an array"),
    ({"vectors": []}, "expected a top-level 'ids' array, but 'ids' is missing"),
])
def test_chroma_missing_columns_raise(tmp_path: Path, doc: dict, needle: str) -> None:
    with pytest.raises(MigrationError) as ei:
        read("chroma", write(tmp_path, "c.json", json.dumps(doc)))
    assert needle in str(ei.value)


def test_chroma_empty_and_truncated(tmp_path: Path) -> None:
    assert read("chroma", write(tmp_path, "e.json", '{"ids": [], "embeddings": []}')) == []
    with pytest.raises(MigrationError, match="premature EOF"):
        read("chroma", write(tmp_path, "t.json", CHROMA[:-40]))


# --------------------------------------------------------------------------- common


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="not found"):
        open_reader("pinecone", tmp_path / "nope.json")
    with pytest.raises(MigrationError, match="not a regular file"):
        open_reader("qdrant", tmp_path)
    p = write(tmp_path, "x.json", "{}")
    for bad in ("milvus", "Pinecone", None):
        with pytest.raises(MigrationError, match="pinecone, qdrant, weaviate, chroma"):
            open_reader(bad, p)  # type: ignore[arg-type]
        with pytest.raises(MigrationError):
            estimate_total(bad, p)  # type: ignore[arg-type]
        with pytest.raises(MigrationError):
            write_export(bad, tmp_path / "o", [])  # type: ignore[arg-type]
    with pytest.raises(MigrationError, match="start"):
        open_reader("pinecone", p, start=-1)
    with pytest.raises(MigrationError, match="not found"):
        estimate_total("qdrant", tmp_path / "nope")
    with pytest.raises(MigrationError, match="not found"):
        source_info(tmp_path / "nope")
    assert FORMATS == ("pinecone", "qdrant", "weaviate", "chroma")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("fmt, text", [("pinecone", PINECONE), ("qdrant", QDRANT),
                                       ("weaviate", WEAVIATE), ("chroma", CHROMA)])
def test_readers_close_their_files(tmp_path: Path, fmt: str, text: str) -> None:
    p = write(tmp_path, "f", text)
    before = _open_fds()
    it = open_reader(fmt, p)
    next(it)
    assert _open_fds() > before
    it.close()
    assert _open_fds() == before
    list(open_reader(fmt, p))
    assert _open_fds() == before


def test_source_info(tmp_path: Path) -> None:
    p = write(tmp_path, "s.json", b"x" * ((1 << 20) + 10))
    info = source_info(p)
    assert isinstance(info, SourceInfo) and info.size == (1 << 20) + 10
    import hashlib
    assert info.head_sha256 == hashlib.sha256(b"x" * (1 << 20)).hexdigest()
    assert info.path == str(p.resolve()) and info.mtime_ns == p.stat().st_mtime_ns
    assert info.identity() == {"path": info.path, "size": info.size,
                               "head_sha256": info.head_sha256}
    small = write(tmp_path, "t.json", b"abc")
    assert source_info(small).head_sha256 == hashlib.sha256(b"abc").hexdigest()


# --------------------------------------------------------------------------- writers

json_leaf = (st.none() | st.booleans() | st.integers(1 - 2**63, 2**63 - 1)
             | st.floats(allow_nan=False, allow_infinity=False)
             | st.text(st.characters(exclude_categories=("Cs",)), max_size=8))
json_value = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=3)
    | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=6), kids,
                      max_size=3),
    max_leaves=8,
)
metadata_st = st.none() | st.dictionaries(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=6), json_value, max_size=4)
text_st = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


@st.composite
def datasets(draw: st.DrawFn, fmt: str) -> list[tuple]:
    dim = draw(st.integers(1, 6))
    n = draw(st.integers(0, 6))
    id_st = (st.integers(0, 2**64 - 1) | st.uuids().map(str)) if fmt == "qdrant" else text_st
    ids = draw(st.lists(id_st, min_size=n, max_size=n, unique=True))
    vec_st = hnp.arrays(np.float32, dim, elements=st.floats(
        width=32, allow_nan=False, allow_infinity=False))
    rows = []
    for i in ids:
        doc = draw(st.none() | text_st) if fmt == "chroma" else None
        rows.append((i, draw(vec_st), draw(metadata_st), doc))
    return rows


def _check_round_trip(fmt: str, rows: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "out")
        assert write_export(fmt, p, rows) == len(rows)
        assert os.listdir(d) == ["out"]
        recs = list(open_reader(fmt, p))
        assert estimate_total(fmt, p) == len(rows)
    assert [r.position for r in recs] == list(range(len(rows)))
    for rec, (id_, vec, meta, doc) in zip(recs, rows, strict=True):
        assert rec.error is None
        assert rec.id == id_ and rec.metadata == meta and rec.document == doc
        got = np.asarray(rec.vector, dtype=np.float64)
        assert np.array_equal(got, vec.astype(np.float64))  # exact, no float32 rounding


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(fmt: str, data: st.DataObject) -> None:
    _check_round_trip(fmt, data.draw(datasets(fmt)))


def test_write_export_options(tmp_path: Path) -> None:
    p = tmp_path / "o.json"
    rows = [("a", np.array([1, 2], np.float32), {"k": 1}, "hello"), ("b", [0.5, 0.25], None, None)]
    with pytest.raises(MigrationError, match="text_field"):
        write_export("pinecone", p, rows)
    assert not p.exists() and not (tmp_path / "o.json.tmp").exists()
    assert write_export("pinecone", p, lambda: iter(rows), text_field="text") == 2
    assert read("pinecone", p) == [R(0, "a", [1.0, 2.0], {"k": 1, "text": "hello"}, None),
                                   R(1, "b", [0.5, 0.25], None, None)]
    with pytest.raises(MigrationError, match="different 'k'"):
        write_export("qdrant", p, rows, text_field="k")
    # 2- and 3-tuples, numpy int ids.
    write_export("qdrant", p, [(np.int64(5), [1.0]), ("x", [2.0], {"m": None})])
    assert read("qdrant", p) == [R(0, 5, [1.0], None, None), R(1, "x", [2.0], {"m": None}, None)]


@pytest.mark.parametrize("row, needle", [
    (("a", [1.0, float("nan")], None, None), "NaN"),
    (("a", [[1.0]], None, None), "one-dimensional"),
    (("a", ["x"], None, None), "not numeric"),
    ((1.5, [1.0], None, None), "id must be"),
    (("a", [1.0], {"v": float("inf")}, None), "metadata cannot be written"),
    (("a", [1.0], {"v": object()}, None), "metadata cannot be written"),
    (("a", [1.0], {"v": "\ud800"}, None), "metadata cannot be written"),
    (("a", [1.0], ["not", "a", "dict"], None), "metadata must be a dict"),
    (("a",), "expected an (id, vector"),
])
@pytest.mark.parametrize("fmt", FORMATS)
def test_write_export_rejects_bad_records(tmp_path: Path, fmt: str, row: tuple,
                                          needle: str) -> None:
    p = tmp_path / "o"
    p.write_text("old")
    with pytest.raises(MigrationError) as ei:
        write_export(fmt, p, [("ok", [1.0], None, None), row], text_field="t")
    assert needle in str(ei.value)
    assert p.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["o"]


def test_write_export_integer_range(tmp_path: Path) -> None:
    p = tmp_path / "o"
    for fmt in ("pinecone", "weaviate", "chroma"):
        with pytest.raises(MigrationError, match="outside the signed 64-bit range"):
            write_export(fmt, p, [("a", [1.0], {"n": [2**63]}, None)])
        with pytest.raises(MigrationError, match="outside the signed 64-bit range"):
            write_export(fmt, p, [(-(2**63), [1.0], None, None)])
    # JSON Lines are read with json.loads as a fallback: big ints round-trip.
    rows = [(2**64 - 1, [1.0] * 600, {"big": -(2**70)}, None), (2**63, [2.0], {"b": 2**65}, None)]
    write_export("qdrant", p, rows)
    assert read("qdrant", p) == [R(0, 2**64 - 1, [1.0] * 600, {"big": -(2**70)}, None),
                                 R(1, 2**63, [2.0], {"b": 2**65}, None)]


def test_write_export_bad_directory(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="cannot write"):
        write_export("qdrant", tmp_path / "no" / "such" / "dir.jsonl", [("a", [1.0])])


# --------------------------------------------------------------------------- memory, estimates


def _pinecone_file(path: Path, n: int, dim: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write('{"namespace": "bench", "vectors": [')
        for i in range(n):
            vec = rng.standard_normal(dim).astype(np.float32).tolist()
            rec = {"id": f"doc-{i}", "values": vec, "metadata": {"i": i, "t": "x" * (i % 50)}}
            f.write(("," if i else "") + json.dumps(rec))
        f.write("]}")


def _peak_reading(path: Path) -> tuple[int, int]:
    gc.collect()
    tracemalloc.start()
    try:
        n = sum(1 for _ in open_reader("pinecone", path))
        return n, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_pinecone_reading_memory_is_bounded(tmp_path: Path) -> None:
    small, big = tmp_path / "small.json", tmp_path / "big.json"
    _pinecone_file(small, 2_500, 64)
    _pinecone_file(big, 10_000, 64)
    assert big.stat().st_size > 12_000_000
    n_small, peak_small = _peak_reading(small)
    n_big, peak_big = _peak_reading(big)
    assert (n_small, n_big) == (2_500, 10_000)
    # json.load of the big file would hold ~10,000 x 64 floats (> 20 MB).
    assert peak_big < 2_000_000, peak_big
    assert peak_big < 1.5 * peak_small, (peak_small, peak_big)


def test_estimate_total_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "pc.json"
    _pinecone_file(p, 1_000, 32)
    assert p.stat().st_size < 1 << 20
    assert estimate_total("pinecone", p) == 1_000  # sample reaches the end: exact
    _pinecone_file(p, 3_000, 32)
    assert estimate_total("pinecone", p) != 3_000  # extrapolated from 1 MiB
    assert 0.8 * 3_000 <= estimate_total("pinecone", p) <= 1.2 * 3_000
    monkeypatch.setattr(_formats, "_DOC_SAMPLE_BYTES", 64 << 10)
    est = estimate_total("pinecone", p)
    assert 0.8 * 3_000 <= est <= 1.2 * 3_000 and est != 3_000
    w = tmp_path / "w.json"
    rows = [(str(uuid.UUID(int=i)), np.full(48, i / 3, np.float32), {"n": i}, None)
            for i in range(2_000)]
    write_export("weaviate", w, rows)
    assert 0.8 * 2_000 <= estimate_total("weaviate", w) <= 1.2 * 2_000


def test_estimate_total_jsonl_and_chroma(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    q = write(tmp_path, "q.jsonl", QDRANT)
    assert estimate_total("qdrant", q) == len(QDRANT_EXPECTED)
    rows = [(i, np.full(16 + i % 7, 0.1, np.float32), {"i": i}, None) for i in range(5_000)]
    big = tmp_path / "big.jsonl"
    write_export("qdrant", big, rows)
    assert estimate_total("qdrant", big) == 5_000
    monkeypatch.setattr(_formats, "_JSONL_EXACT_LIMIT", 1 << 10)
    monkeypatch.setattr(_formats, "_JSONL_SAMPLE_BYTES", 32 << 10)
    est = estimate_total("qdrant", big)
    assert 0.8 * 5_000 <= est <= 1.2 * 5_000 and est != 5_000
    c = write(tmp_path, "c.json", CHROMA)
    assert estimate_total("chroma", c) == 3
    late_ids = json.dumps({"embeddings": [[1.0]] * 4, "ids": list("abcd")})
    assert estimate_total("chroma", write(tmp_path, "c2.json", late_ids)) == 4
    assert estimate_total("chroma", write(tmp_path, "c3.json", '{"ids": null}')) == 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
