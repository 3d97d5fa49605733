"""validate=True rejects a malformed record alone -- a JSON Lines line that
does not parse, an array element that is not an object, a record without id
or vector, a bad Chroma row -- with its position and an excerpt, while the
records around it land; only a document the parser cannot continue past
stops the import, resumably.  Exactly-once resume holds with rejects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from vecstore import AsyncVecStore, Config, MigrationError, VecStore
from vecstore.migration import (
    ChromaMigration,
    MigrationConfig,
    PineconeMigration,
    QdrantMigration,
    WeaviateMigration,
    _formats,
    migration_for,
)

DIM = 4


def vec(i: int) -> list[float]:
    return np.random.default_rng(i).standard_normal(DIM).astype(np.float32).tolist()


def point(i: int) -> str:
    return json.dumps({"id": i, "vector": vec(i), "payload": {"i": i}})


def dump(store: Any) -> dict[str, tuple[bytes, Any]]:
    return {r.id: (r.vector.tobytes(), r.metadata) for r in store.scan()}


def rejects(path: str | None) -> list[dict[str, Any]]:
    return [json.loads(x) for x in Path(path or "").read_text().splitlines()] if path else []


# JSON Lines with every kind of malformed line; positions count every non-blank line
BAD_LINES = {
    3: "{not json",
    7: "[1, 2, 3]",
    10: '{"vector": [1, 2, 3, 4], "payload": {"no": "id"}}',
    14: '{"id": 14, "payload": {}}',
    18: point(18)[:30],  # cut off mid-line
    21: '"just a string"',
}
N_LINES = 25


def jsonl(path: Path, bad: dict[int, str] = BAD_LINES, n: int = N_LINES) -> Path:
    lines = [bad.get(i, point(i)) for i in range(n)]
    lines.insert(5, "   ")  # blank lines have no position
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl_malformed_lines_are_rejected_alone(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "q.jsonl")
    with VecStore.open(tmp_path / "s.db", Config(dim=DIM)) as s:
        st = QdrantMigration(MigrationConfig(batch_size=4, validate=True)).import_from_file(
            src, s)
        assert st.complete and st.errors == 6 and st.total_vectors == N_LINES - 6
        assert st.records_read == N_LINES and st.errors_total == 6
        assert [f.position for f in st.failures] == sorted(BAD_LINES)
        assert {f.code for f in st.failures} == {"record"}
        good = {str(i) for i in range(N_LINES) if i not in BAD_LINES}
        assert {r.id for r in s.scan()} == good
        assert s.get("19").metadata == {"i": 19}  # right after the cut-off line
    by_pos = {x["position"]: x for x in rejects(st.reject_file)}
    assert sorted(by_pos) == sorted(BAD_LINES)
    assert by_pos[3]["excerpt"] == "{not json" and by_pos[3]["id"] is None
    assert by_pos[3]["reason"].startswith("line 4 is not valid JSON: ")  # 1-based line number
    assert by_pos[7] == {"position": 7, "id": None, "code": "record", "excerpt": "[1, 2, 3]",
                         "reason": "record is not an object (got list)"}
    assert by_pos[10]["reason"] == "missing 'id'" and by_pos[10]["excerpt"] == BAD_LINES[10]
    assert by_pos[14]["reason"] == "missing 'vector'" and by_pos[14]["id"] == 14
    assert by_pos[18]["excerpt"] == BAD_LINES[18] and "line 20 is not valid JSON" in \
        by_pos[18]["reason"]
    assert by_pos[21]["reason"] == "record is not an object (got str)"
    assert st.failures[0].excerpt == "{not json"


def test_long_bad_line_excerpt_is_short(tmp_path: Path) -> None:
    long_bad = '{"id": 1, "vector": [' + "1.5, " * 5000 + "]}"
    src = tmp_path / "q.jsonl"
    src.write_text(point(0) + "\n" + long_bad + "\n" + point(2) + "\n")
    with VecStore.open(tmp_path / "s.db") as s:
        st = QdrantMigration().import_from_file(src, s)
        assert st.errors == 1 and st.total_vectors == 2 and len(s) == 2
    (f,) = rejects(st.reject_file)
    assert f["position"] == 1 and len(f["excerpt"]) == 120 and f["excerpt"].endswith("...")
    assert f["excerpt"].startswith('{"id": 1, "vector": [1.5, 1.5')


def test_validate_false_still_stops_at_the_first_malformed_line(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "q.jsonl")
    with VecStore.open(tmp_path / "s.db") as s:
        with pytest.raises(MigrationError, match=r"line 4 \(record position 3\) is not valid"):
            QdrantMigration(batch_size=2, validate=False).import_from_file(src, s)
        assert sorted(r.id for r in s.scan()) == ["0", "1", "2"]  # the readable prefix
    doc = tmp_path / "p.json"
    doc.write_text(json.dumps({"vectors": [{"id": "a", "values": vec(0)}, 7]}))
    with VecStore.open(tmp_path / "t.db") as s:
        with pytest.raises(MigrationError, match=r"position 1 .*not an object"):
            PineconeMigration(validate=False).import_from_file(doc, s)


@pytest.mark.parametrize("fmt, key, field", [("pinecone", "values", "metadata"),
                                              ("weaviate", "vector", "properties")])
def test_array_elements_that_are_not_objects_are_rejected_alone(tmp_path: Path, fmt: str,
                                                               key: str, field: str) -> None:
    elems: list[Any] = [{"id": f"r{i}", key: vec(i), field: {"i": i}} for i in range(12)]
    elems[2] = 7
    elems[5] = "text"
    elems[6] = None
    elems[8] = [1, 2]
    elems[10] = {key: vec(10)}  # no id
    src = tmp_path / "d.json"
    src.write_text(json.dumps({"vectors": elems}))
    with VecStore.open(tmp_path / "s.db") as s:
        st = migration_for(fmt)(batch_size=3).import_from_file(src, s)
        assert st.complete and st.errors == 5 and st.total_vectors == 7
        assert {r.id for r in s.scan()} == {f"r{i}" for i in (0, 1, 3, 4, 7, 9, 11)}
    got = [(x["position"], x["excerpt"]) for x in rejects(st.reject_file)]
    assert got == [(2, "7"), (5, '"text"'), (6, "null"), (8, "[1, 2]"),
                   (10, json.dumps({key: vec(10)}))]


def test_chroma_bad_rows_are_rejected_alone(tmp_path: Path) -> None:
    doc = {"ids": ["a", None, "c", "d", "e"],
           "embeddings": [vec(0), vec(1), None, vec(3), vec(4)],
           "metadatas": [{"k": 0}, {}, {}, {"k": 3}, {}],
           "documents": ["x", "y", "z", 5, "w"]}
    src = tmp_path / "c.json"
    src.write_text(json.dumps(doc))
    with VecStore.open(tmp_path / "s.db") as s:
        st = ChromaMigration(batch_size=2).import_from_file(src, s)
        assert st.errors == 3 and st.total_vectors == 2
        assert {r.id for r in s.scan()} == {"a", "e"}
        assert s.get("e").metadata == {"document": "w"}
    lines = rejects(st.reject_file)
    assert [(x["position"], x["reason"]) for x in lines] == [
        (1, "'ids' entry is null"), (2, "'embeddings' entry is null"),
        (3, "'documents' entry is not a string")]
    assert lines[0]["excerpt"].startswith('{"id": null, "document": "y", "metadata": {}, '
                                          '"embedding": [')
    assert lines[2]["excerpt"].startswith('{"id": "d", "document": 5, "metadata": {"k": 3}, ')


class Boom(Exception):
    pass


def stop_after(n_calls: int) -> Any:
    count = {"n": 0}

    def cb(done: int, total: int) -> None:
        count["n"] += 1
        if count["n"] == n_calls:
            raise Boom

    return cb


@pytest.mark.parametrize("parallel", [False, True])
def test_resume_with_rejects_is_exactly_once(tmp_path: Path, parallel: bool) -> None:
    bad = {i: ("{broken" if i % 3 else "[0]") for i in range(2, 60, 7)}
    src = jsonl(tmp_path / "q.jsonl", bad, n=60)
    with VecStore.open(tmp_path / "ref.db") as s:
        ref_stats = QdrantMigration(batch_size=5).import_from_file(src, s)
        ref = dump(s)
    ref_rejects = Path(ref_stats.reject_file or "").read_text()
    assert ref_stats.errors == len(bad) and len(ref) == 60 - len(bad)

    store = tmp_path / "s.db"
    read = 0
    for stop in (2, 3):  # two interrupted runs, each after committing a few batches
        with VecStore.open(store) as s:
            m = QdrantMigration(batch_size=5, parallel_parse=parallel).with_progress(
                stop_after(stop))
            with pytest.raises(Boom):
                m.import_from_file(src, s)
            assert m.stats is not None
            read += m.stats.records_read
            assert m.stats.end_offset == read  # positions count the rejected lines too
    with VecStore.open(store) as s:
        st = QdrantMigration(batch_size=7, parallel_parse=parallel).import_from_file(src, s)
        assert st.resumed and st.start_offset == read and st.skipped == read
        assert st.records_read == 60 - read and st.complete
        assert dump(s) == ref
        assert st.errors_total == len(bad) and st.imported_total == len(ref)
    assert Path(st.reject_file or "").read_text() == ref_rejects  # none twice, none missing


def test_broken_document_stops_with_its_position_and_stays_resumable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elems: list[Any] = [{"id": f"r{i}", "values": vec(i)} for i in range(20)]
    elems[4] = "junk"  # one rejected record before the damage
    good_text = json.dumps({"vectors": elems})
    cut = good_text.index('{"id": "r13"')
    broken = good_text[:cut - 2] + ";" + good_text[cut - 1:]  # a syntax error, same size
    assert len(broken) == len(good_text)
    src = tmp_path / "p.json"
    src.write_text(broken)
    monkeypatch.setattr(_formats, "_HEAD_BYTES", 64)  # the identity covers the head only
    with VecStore.open(tmp_path / "s.db") as s:
        with pytest.raises(MigrationError) as ei:
            PineconeMigration(batch_size=5).import_from_file(src, s)
        msg = str(ei.value)
        assert "record position 13" in msg and "parser had read" in msg and "p.json" in msg
        assert {r.id for r in s.scan()} == {f"r{i}" for i in range(13) if i != 4}
        # run again on the same damage: same error, nothing written twice or rejected twice
        m = PineconeMigration(batch_size=5)
        with pytest.raises(MigrationError, match="record position 13"):
            m.import_from_file(src, s)
        assert m.stats is not None and m.stats.resumed and m.stats.start_offset == 13
        assert m.stats.records_read == 0 and len(s) == 12
        # the damage repaired in place: the next run continues from the committed batch
        src.write_text(good_text)
        st = PineconeMigration(batch_size=5).import_from_file(src, s)
        assert st.resumed and st.start_offset == 13 and st.records_read == 7 and st.complete
        assert {r.id for r in s.scan()} == {f"r{i}" for i in range(20) if i != 4}
        assert st.imported_total == 19 and st.errors_total == 1
    assert [x["position"] for x in rejects(st.reject_file)] == [4]


def test_truncated_weaviate_and_chroma_documents_stop(tmp_path: Path) -> None:
    elems = [{"id": f"w{i}", "vector": vec(i)} for i in range(6)]
    text = json.dumps({"vectors": elems})
    src = tmp_path / "w.json"
    src.write_text(text[: text.index('{"id": "w4"') + 9])
    with VecStore.open(tmp_path / "s.db") as s:
        with pytest.raises(MigrationError, match=r"premature EOF.*record position 4"):
            WeaviateMigration(batch_size=2).import_from_file(src, s)
        assert len(s) == 4
    doc = json.dumps({"ids": ["a", "b", "c"], "embeddings": [vec(0), vec(1), vec(2)]})
    src = tmp_path / "c.json"
    src.write_text(doc[:-30])
    with VecStore.open(tmp_path / "c.db") as s:
        with pytest.raises(MigrationError, match="malformed chroma export"):
            ChromaMigration().import_from_file(src, s)


async def test_async_import_rejects_malformed_lines_alone(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "q.jsonl")
    async with AsyncVecStore.open(tmp_path / "s.db") as s:
        st = await QdrantMigration(batch_size=4).import_from_file_async(src, s)
        assert st.errors == 6 and st.total_vectors == N_LINES - 6
        assert await s.count() == N_LINES - 6
        await trio.sleep(0)
    assert [x["position"] for x in rejects(st.reject_file)] == sorted(BAD_LINES)
