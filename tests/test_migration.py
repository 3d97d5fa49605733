"""Imports into a store: every format, validation and rejects, exactly-once
resume after interruptions, forced offsets, changed sources, export round
trips, partitions/prefixes, and the trio variant."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from vecstore import AsyncVecStore, Config, MigrationError, VecStore
from vecstore.migration import (
    ChromaMigration,
    Failure,
    MigrationConfig,
    PineconeMigration,
    QdrantMigration,
    WeaviateMigration,
    migration_for,
)

DIM = 8


def vec(i: int, dim: int = DIM) -> list[float]:
    rng = np.random.default_rng(i)
    return rng.standard_normal(dim).astype(np.float32).tolist()


def meta(i: int) -> dict[str, Any]:
    return {"i": i, "cat": f"c{i % 5}", "nested": {"tags": ["a", str(i)], "ok": i % 2 == 0},
            "score": i / 7, "none": None}


def qdrant_lines(n: int, bad: bool = True) -> list[str]:
    """Qdrant points 0..n-1; with ``bad``, a known set of bad records."""
    out = []
    for i in range(n):
        rec: dict[str, Any] = {"id": i, "vector": vec(i), "payload": meta(i)}
        if bad:
            if i % 17 == 3:
                rec["vector"] = vec(i)[:-1]  # wrong dim
            elif i % 17 == 5:
                rec["id"] = i - 3  # duplicate of an earlier id
            elif i % 17 == 7:
                rec["payload"] = ["not", "a", "dict"]
            elif i % 17 == 9:
                del rec["id"]
            elif i % 17 == 11:
                rec["vector"] = [0.0] * DIM
        out.append(json.dumps(rec))
        if bad and i % 17 == 13:
            out.append(f'{{"id": "nan-{i}", "vector": [NaN{", 1.0" * (DIM - 1)}]}}')
    return out


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def dump(store: Any) -> dict[str, tuple[bytes, dict[str, Any]]]:
    return {r.id: (r.vector.tobytes(), r.metadata) for r in store.scan()}


def reference(tmp_path: Path, src: Path, fmt: str = "qdrant", **cfg: Any
              ) -> tuple[dict[str, Any], list[str]]:
    """Records and reject lines of one uninterrupted import."""
    d = tmp_path / f"ref-{len(list(tmp_path.iterdir()))}"
    with VecStore.open(d / "s.db", Config(dim=DIM)) as s:
        st = migration_for(fmt)(MigrationConfig(**cfg)).import_from_file(src, s)
        assert st.complete
        rejects = Path(st.reject_file).read_text().splitlines() if st.errors else []
        return dump(s), rejects


# -- the four formats ------------------------------------------------------------------------


def test_qdrant_validation_rejects_bad_records_alone(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "q.jsonl", qdrant_lines(60))
    calls: list[tuple[int, int]] = []
    with VecStore.open(tmp_path / "s.db", Config(dim=DIM)) as s:
        m = QdrantMigration(MigrationConfig(batch_size=7)).with_progress(
            lambda d, t: calls.append((d, t)))
        st = m.import_from_file(src, s)
        codes = {f.position: f.code for f in st.failures}
        reasons = {f.code for f in st.failures}
        assert reasons == {"dimension", "duplicate", "metadata", "record", "vector"}
        assert st.records_read == 63 and st.total_vectors + st.errors == 63
        assert st.complete and not st.resumed and st.skipped == 0
        assert len(s) == st.total_vectors
        # every good record landed intact; ints became strings
        for pos, line in enumerate(qdrant_lines(60)):
            if pos in codes:
                continue
            rec = json.loads(line)
            got = s.get(str(rec["id"]))
            assert got is not None and got.metadata == rec["payload"]
            assert np.array_equal(got.vector, np.asarray(rec["vector"], np.float32))
        assert s.get("2").metadata == meta(2)  # the first of the duplicates is kept
        assert codes[5] == "duplicate" and codes[3] == "dimension"
        lines = [json.loads(x) for x in Path(st.reject_file).read_text().splitlines()]
        assert [x["position"] for x in lines] == sorted(codes)
        # structural rejects carry an excerpt of the offending text, the others do not
        assert all(set(x) == {"position", "id", "reason", "code"} | (
            {"excerpt"} if x["code"] == "record" else set()) for x in lines)
        missing_id = next(x for x in lines if x["position"] == 9)
        assert missing_id["reason"] == "missing 'id'" and missing_id["excerpt"].startswith(
            '{"vector": [')
        assert Path(st.reject_file).parent == tmp_path
    assert calls[0][0] == 0 and calls[-1] == (63, 63)
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(calls))


def test_pinecone_seed_shape(tmp_path: Path) -> None:
    doc = {"namespace": "ns", "vectors": [
        {"id": f"p{i}", "values": vec(i), "metadata": meta(i)} for i in range(25)]}
    doc["vectors"].append({"id": "nometa", "values": vec(99)})
    deep: Any = 1
    for _ in range(40):
        deep = {"d": deep}
    doc["vectors"].append({"id": "bad", "values": vec(1), "metadata": deep})
    src = tmp_path / "pc.json"
    src.write_text(json.dumps(doc))
    with VecStore.open(tmp_path / "s.db") as s:
        st = PineconeMigration(batch_size=10).import_from_file(src, s)
        assert (st.total_vectors, st.errors) == (26, 1)
        assert st.failures[0].id == "bad" and st.failures[0].code == "metadata"
        assert s.get("p3").metadata == meta(3) and s.get("nometa").metadata == {}
        assert np.array_equal(s.get("p7").vector, np.asarray(vec(7), np.float32))


def test_weaviate_properties_become_metadata(tmp_path: Path) -> None:
    doc = {"vectors": [{"id": f"0000000{i}-aaaa-4bbb-8ccc-dddddddddddd", "class": "Article",
                        "vector": vec(i), "properties": {"title": f"t{i}", "n": i}}
                       for i in range(5)]}
    src = tmp_path / "w.json"
    src.write_text(json.dumps(doc))
    with VecStore.open(tmp_path / "s.db") as s:
        st = WeaviateMigration().import_from_file(src, s)
        assert st.total_vectors == 5 and st.errors == 0
        rec = s.get("00000003-aaaa-4bbb-8ccc-dddddddddddd")
        assert rec.metadata == {"title": "t3", "n": 3}


@pytest.mark.parametrize("text_field", [None, "content"])
def test_chroma_documents_go_to_the_text_field(tmp_path: Path, text_field: str | None) -> None:
    doc = {"ids": ["a", "b", "c", "d"], "embeddings": [vec(i) for i in range(4)],
           "metadatas": [{"k": 1}, None, {"document": "other"}, {"k": 4}],
           "documents": ["doc a", "doc b", "doc c", None],
           "uris": None, "data": None, "included": ["embeddings", "metadatas", "documents"]}
    src = tmp_path / "c.json"
    src.write_text(json.dumps(doc))
    with VecStore.open(tmp_path / "s.db", Config(text_field=text_field)) as s:
        st = ChromaMigration().import_from_file(src, s)
        field = text_field or "document"
        assert s.get("a").metadata == {"k": 1, field: "doc a"}
        assert s.get("b").metadata == {field: "doc b"}
        assert s.get("d").metadata == {"k": 4}
        if text_field is None:  # "document" already holds something else: rejected, not lost
            assert st.errors == 1 and st.failures[0].id == "c" and "document" in \
                st.failures[0].reason
        else:
            assert st.errors == 0 and s.get("c").metadata == {"document": "other",
                                                              "content": "doc c"}


# -- exactly-once resume -------------------------------------------------------------------


class Boom(Exception):
    pass


def interrupt_after(n_calls: int, exc: type[BaseException] = Boom) -> Any:
    count = {"n": 0}

    def cb(done: int, total: int) -> None:
        count["n"] += 1
        if count["n"] == n_calls:
            raise exc("stop")

    return cb


@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
def test_interrupted_import_resumes_exactly_once(tmp_path: Path,
                                                 exc: type[BaseException]) -> None:
    src = write_lines(tmp_path / "q.jsonl", qdrant_lines(120))
    ref, ref_rejects = reference(tmp_path, src, batch_size=9)
    store = tmp_path / "s.db"
    reads = 0
    for stop in (2, 3, 5):  # interrupted three times, after a few committed batches
        with VecStore.open(store, Config(dim=DIM)) as s:
            m = QdrantMigration(batch_size=9).with_progress(interrupt_after(stop, exc))
            with pytest.raises(exc):
                m.import_from_file(src, s)
            assert not m.stats.complete
            reads += m.stats.records_read
    with VecStore.open(store) as s:
        st = QdrantMigration(batch_size=9).import_from_file(src, s)
        assert st.resumed and st.complete and st.skipped == reads
        assert st.start_offset == reads and st.records_read == 127 - reads
        assert dump(s) == ref
        st2 = QdrantMigration(batch_size=9).import_from_file(src, s)
        assert st2.already_complete and st2.records_read == 0 and st2.total_vectors == 0
        assert "nothing to do" in st2.summary()
        assert dump(s) == ref
    assert Path(st.reject_file).read_text().splitlines() == ref_rejects
    assert st.imported_total == len(ref) and st.errors_total == len(ref_rejects)


def test_failed_commit_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_lines(tmp_path / "q.jsonl", qdrant_lines(50))
    ref, ref_rejects = reference(tmp_path, src, batch_size=4)
    with VecStore.open(tmp_path / "s.db", Config(dim=DIM)) as s:
        real = s._submit
        calls = {"n": 0}

        def flaky(req: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 4:
                raise OSError("disk on fire")
            return real(req)

        monkeypatch.setattr(s, "_submit", flaky)
        with pytest.raises(OSError, match="disk on fire"):
            QdrantMigration(batch_size=4).import_from_file(src, s)
        monkeypatch.undo()
        st = QdrantMigration(batch_size=4).import_from_file(src, s)
        assert st.resumed and st.start_offset == 12 and dump(s) == ref
    assert Path(st.reject_file).read_text().splitlines() == ref_rejects


def test_resume_from_forces_an_offset(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "q.jsonl", qdrant_lines(30, bad=False))
    with VecStore.open(tmp_path / "s.db") as s:
        st = QdrantMigration(resume_from=20, batch_size=4).import_from_file(src, s)
        assert st.skipped == 20 and st.total_vectors == 10 and len(s) == 10
        assert s.get("19") is None and s.get("20") is not None
        # going back re-imports [5, 30) without calling them duplicates
        st = QdrantMigration(resume_from=5).import_from_file(src, s)
        assert st.total_vectors == 25 and st.errors == 0 and len(s) == 25
        assert QdrantMigration().import_from_file(src, s).already_complete
        st = QdrantMigration(restart=True).import_from_file(src, s)
        assert st.total_vectors == 30 and st.errors == 0 and len(s) == 30


def test_changed_source_is_refused_unless_restarted(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "q.jsonl", qdrant_lines(20, bad=False))
    with VecStore.open(tmp_path / "s.db") as s:
        m = QdrantMigration(batch_size=5).with_progress(interrupt_after(2))
        with pytest.raises(Boom):
            m.import_from_file(src, s)
        write_lines(src, qdrant_lines(21, bad=False))
        with pytest.raises(MigrationError, match=r"size changed.*restart"):
            QdrantMigration().import_from_file(src, s)
        lines = qdrant_lines(20, bad=False)
        lines[0] = lines[0].replace('"i": 0', '"i": 9')
        write_lines(src, lines)
        with pytest.raises(MigrationError, match="content changed"):
            QdrantMigration().import_from_file(src, s)
        st = QdrantMigration(restart=True).import_from_file(src, s)
        assert st.complete and st.total_vectors == 20 and s.get("0").metadata["i"] == 9


def test_all_rejected_batch_still_records_progress(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "vector": vec(i)[:3] if 4 <= i < 12 else vec(i)})
             for i in range(16)]
    src = write_lines(tmp_path / "q.jsonl", lines)
    with VecStore.open(tmp_path / "s.db") as s:
        v0 = s.version
        st = QdrantMigration(batch_size=4).import_from_file(src, s)
        assert st.errors == 8 and st.total_vectors == 8 and st.complete
        assert s.version == v0 + 2  # the two all-rejected batches made no version
        assert QdrantMigration(batch_size=4).import_from_file(src, s).already_complete


def test_validate_false_stops_at_a_bad_batch(tmp_path: Path) -> None:
    lines = qdrant_lines(30, bad=False)
    lines[13] = json.dumps({"id": 13, "vector": vec(13)[:2]})
    src = write_lines(tmp_path / "q.jsonl", lines)
    with VecStore.open(tmp_path / "s.db") as s:
        with pytest.raises(MigrationError, match=r"position 13 \(id 13\).*before position 10 "
                                                 r"are committed.*validate=True"):
            QdrantMigration(batch_size=5, validate=False).import_from_file(src, s)
        assert len(s) == 10  # the batches before it are committed, nothing after
        lines[13] = json.dumps({"id": 13, "vector": vec(13)})
        write_lines(src, lines)
        st = QdrantMigration(batch_size=5, validate=False, restart=True).import_from_file(src, s)
        assert st.total_vectors == 30 and len(s) == 30
    # without validation a later duplicate replaces the earlier record, like upserts
    lines.append(json.dumps({"id": 3, "vector": vec(3), "payload": {"last": True}}))
    lines.insert(4, json.dumps({"id": 3, "vector": vec(3), "payload": {"mid": True}}))
    write_lines(src, lines)
    with VecStore.open(tmp_path / "t.db") as s:
        st = QdrantMigration(batch_size=5, validate=False).import_from_file(src, s)
        assert st.errors == 0 and len(s) == 30 and s.get("3").metadata == {"last": True}


def test_malformed_file_commits_what_precedes_the_damage(tmp_path: Path) -> None:
    # validate=False: a line that does not parse stops the import (with
    # validate=True it is one rejected record: test_migration_rejects.py)
    lines = qdrant_lines(20, bad=False)
    lines[12] = lines[12][:40]
    src = write_lines(tmp_path / "q.jsonl", lines)
    with VecStore.open(tmp_path / "s.db") as s:
        with pytest.raises(MigrationError, match="record position 12"):
            QdrantMigration(batch_size=5, validate=False).import_from_file(src, s)
        assert len(s) == 12
        with pytest.raises(MigrationError, match="record position 12"):
            QdrantMigration(batch_size=5, validate=False).import_from_file(src, s)
        assert len(s) == 12


def test_partition_and_id_prefix(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "q.jsonl", qdrant_lines(10, bad=False))
    with VecStore.open(tmp_path / "s.db") as s:
        st = QdrantMigration(partition="t1", id_prefix="q:").import_from_file(src, s)
        assert st.partition == "t1" and len(s.partition("t1")) == 10 and len(s) == 0
        assert s.partition("t1").get("q:3").metadata == meta(3)
        # same file, another partition view: a separate import
        st = QdrantMigration().import_from_file(src, s.partition("t2"))
        assert st.total_vectors == 10 and s.partition("t2").get("3") is not None
        with pytest.raises(ValueError, match="conflicts"):
            QdrantMigration(partition="t1").import_from_file(src, s.partition("t2"))


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        MigrationConfig(batch_size=0)
    with pytest.raises(TypeError):
        MigrationConfig(resume_from="3")  # type: ignore[arg-type]
    with pytest.raises(MigrationError, match="not found"):
        with VecStore.open(tmp_path / "s.db") as s:
            QdrantMigration().import_from_file(tmp_path / "missing.jsonl", s)
    with pytest.raises(MigrationError, match="unknown export format"):
        migration_for("milvus")
    with VecStore.open(tmp_path / "s.db", read_only=True) as s:
        with pytest.raises(Exception, match="read_only"):
            QdrantMigration().import_from_file(tmp_path / "missing.jsonl", s)
    assert Failure(1, "a", "r").to_dict() == {"position": 1, "id": "a", "reason": "r",
                                              "code": "record"}


# -- export round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pinecone", "qdrant", "weaviate", "chroma"])
def test_export_import_round_trip(tmp_path: Path, fmt: str) -> None:
    with VecStore.open(tmp_path / "a.db", Config(dim=DIM)) as a:
        a.upsert_many([(str(i), vec(i), meta(i)) for i in range(40)])
        a.upsert_many([("0042", vec(42), {}), ("x y", vec(43), {"document": "some text"}),
                       (str(2**64), vec(44), {"big": -(2**62)})])
        a.delete("5")
        cls = migration_for(fmt)
        out = tmp_path / f"out.{fmt}"
        calls: list[tuple[int, int]] = []
        assert cls().with_progress(lambda d, t: calls.append((d, t))).export_to_file(a, out) == 42
        assert calls[-1] == (42, 42)
        before = dump(a)
    with VecStore.open(tmp_path / "b.db") as b:
        st = cls().import_from_file(out, b)
        assert st.errors == 0 and st.total_vectors == 42
        assert dump(b) == before


def test_export_of_a_partition_and_version(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "a.db", Config(dim=DIM)) as a:
        t = a.partition("t")
        v1 = t.upsert_many([(str(i), vec(i), meta(i)) for i in range(5)])
        t.upsert("9", vec(9))
        n = QdrantMigration(partition="t").export_to_file(a, tmp_path / "o.jsonl", version=v1)
        assert n == 5
        assert QdrantMigration().export_to_file(a, tmp_path / "d.jsonl") == 0


# -- trio ----------------------------------------------------------------------------------


async def test_async_import_while_other_tasks_query(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "q.jsonl", qdrant_lines(300))
    ref, ref_rejects = reference(tmp_path, src, batch_size=25)
    queries = 0
    async with AsyncVecStore.open(tmp_path / "s.db", Config(dim=DIM)) as s:
        await s.upsert("seed", vec(1000))
        done = trio.Event()

        async def reader() -> None:
            nonlocal queries
            while not done.is_set():
                res = await s.query(vec(1000), k=3)
                assert res[0].id == "seed"
                queries += 1
                await trio.sleep(0)

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            m = QdrantMigration(batch_size=25).with_progress(interrupt_after(3))
            with pytest.raises(Boom):
                await m.import_from_file_async(src, s)
            st = await QdrantMigration(batch_size=25).import_from_file_async(src, s)
            done.set()
        assert st.resumed and st.complete
        await s.delete("seed")
        got = {r.id: (r.vector.tobytes(), r.metadata) async for r in s.scan()}
        assert got == ref
        with pytest.raises(TypeError, match="AsyncVecStore"):
            QdrantMigration().import_from_file(src, s)
        out = tmp_path / "o.json"
        assert await PineconeMigration().export_to_file_async(s, out) == len(ref)
    assert queries > 0
    assert Path(st.reject_file).read_text().splitlines() == ref_rejects


# -- property: any interruption schedule, any batch sizes, same result ------------------------

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_interruption_schedule_gives_the_uninterrupted_result(tmp_path_factory: Any,
                                                                 data: st.DataObject) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    n = data.draw(st.integers(0, 60), label="records")
    rows = []
    for i in range(n):
        kind = data.draw(st.sampled_from(["ok"] * 6 + ["dup", "dim", "meta", "noid"]))
        rid: Any = data.draw(st.integers(0, max(i - 1, 0))) if kind == "dup" else i
        v = vec(i)[:-1] if kind == "dim" else vec(i)
        rec: dict[str, Any] = {"id": rid, "vector": v, "payload": meta(i)}
        if kind == "meta":
            rec["payload"] = [i]
        if kind == "noid":
            del rec["id"]
        rows.append(json.dumps(rec))
    src = write_lines(tmp / "q.jsonl", rows)
    ref, ref_rejects = reference(tmp, src, batch_size=5)
    store = tmp / "s.db"
    runs = data.draw(st.lists(st.tuples(st.integers(1, 12), st.integers(1, 4)), max_size=4))
    for batch, stop in runs:
        with VecStore.open(store, Config(dim=DIM)) as s:
            m = QdrantMigration(batch_size=batch).with_progress(interrupt_after(stop))
            try:
                m.import_from_file(src, s)
            except Boom:
                pass
    with VecStore.open(store, Config(dim=DIM)) as s:
        st_ = QdrantMigration(batch_size=data.draw(st.integers(1, 12))).import_from_file(src, s)
        assert st_.complete
        assert dump(s) == ref
    rejects = Path(st_.reject_file).read_text().splitlines() if os.path.exists(
        st_.reject_file) else []
    assert rejects == ref_rejects


# -- parsing in a child process ------------------------------------------------------------


def parsing_children() -> list[int]:
    """Live child processes of this one that run the parser."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"_subreader" in cmd and " Z " not in stat:
            out.append(int(d))
    return out


@pytest.mark.parametrize("fmt", ["qdrant", "pinecone", "weaviate", "chroma"])
def test_parallel_parse_gives_the_same_result(tmp_path: Path, fmt: str) -> None:
    lines = qdrant_lines(80)
    src = write_lines(tmp_path / "q.jsonl", lines)
    if fmt != "qdrant":  # the same records in the other format (bad ones included)
        recs = [json.loads(x) for x in lines]
        for r in recs:  # JSON documents cannot hold NaN: overflow float32 instead
            if any(v != v for v in r["vector"]):
                r["vector"] = [1e39] * len(r["vector"])
        out = tmp_path / f"src.{fmt}"
        if fmt == "chroma":
            good = [r for r in recs if "id" in r and isinstance(r.get("payload"), dict)]
            out.write_text(json.dumps({"ids": [str(r["id"]) for r in good],
                                       "embeddings": [r["vector"] for r in good],
                                       "metadatas": [r["payload"] for r in good],
                                       "documents": [f"doc {r['id']}" for r in good]}))
        else:
            key, mkey = ("values", "metadata") if fmt == "pinecone" else ("vector", "properties")
            out.write_text(json.dumps({"vectors": [
                {**({"id": str(r["id"])} if "id" in r else {}), key: r["vector"],
                 mkey: r.get("payload")} for r in recs]}))
        src = out
    ref, ref_rejects = reference(tmp_path, src, fmt, batch_size=7, parallel_parse=False)
    with VecStore.open(tmp_path / "s.db", Config(dim=DIM)) as s:
        m = migration_for(fmt)(batch_size=7, parallel_parse=True).with_progress(
            interrupt_after(3))
        with pytest.raises(Boom):
            m.import_from_file(src, s)
        assert parsing_children() == []  # the interrupted run ended its child
        st = migration_for(fmt)(batch_size=11, parallel_parse=True).import_from_file(src, s)
        assert st.resumed and st.complete and dump(s) == ref
    assert Path(st.reject_file).read_text().splitlines() == ref_rejects


def test_parallel_parse_reports_a_damaged_file_in_place(tmp_path: Path) -> None:
    lines = qdrant_lines(40, bad=False)
    lines[23] = lines[23][:25]
    src = write_lines(tmp_path / "q.jsonl", lines)
    with VecStore.open(tmp_path / "s.db") as s:
        with pytest.raises(MigrationError, match="record position 23"):
            QdrantMigration(batch_size=10, parallel_parse=True,
                            validate=False).import_from_file(src, s)
        assert len(s) == 23
    assert parsing_children() == []


# -- indexing at the end (MigrationConfig.index) ------------------------------------------------


def test_import_ends_with_an_indexed_store_unless_index_false(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "q.jsonl", qdrant_lines(350, bad=False))
    calls: list[tuple[int, int]] = []
    with VecStore.open(tmp_path / "s.db", Config(dim=DIM, seal_threshold=100)) as s:
        st = QdrantMigration(batch_size=50).with_progress(
            None, indexing=lambda d, t: calls.append((d, t))).import_from_file(src, s)
        assert st.complete and st.indexed and st.indexed_vectors == 350
        assert st.index_duration > 0 and "indexed 350 vectors" in st.summary()
        info = s.stats()
        assert info.sealed_segments == 1 and info.growing_vectors == 0
        assert not info.indexing_pending and len(s) == 350
    assert calls[0] == (0, 350) and calls[-1] == (350, 350)
    assert all(b[0] >= a[0] and b[1] == 350 for a, b in itertools.pairwise(calls))

    with VecStore.open(tmp_path / "t.db", Config(dim=DIM)) as s:
        calls.clear()
        st = QdrantMigration(batch_size=50, index=False).with_progress(
            None, indexing=lambda d, t: calls.append((d, t))).import_from_file(src, s)
        assert st.complete and not st.indexed and st.indexed_vectors == 0 and calls == []
        info = s.stats()
        assert info.indexing_pending and info.growing_vectors == 350
        # running it again with index=True: nothing to import, but the store gets indexed
        st = QdrantMigration().import_from_file(src, s)
        assert st.already_complete and st.indexed and st.indexed_vectors == 350
        assert not s.stats().indexing_pending and s.stats().sealed_segments == 1
    with pytest.raises(TypeError, match="index must be a bool"):
        MigrationConfig(index=1)  # type: ignore[arg-type]


def test_interrupted_import_is_not_indexed(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "q.jsonl", qdrant_lines(60, bad=False))
    with VecStore.open(tmp_path / "s.db") as s:
        m = QdrantMigration(batch_size=10).with_progress(interrupt_after(3))
        with pytest.raises(Boom):
            m.import_from_file(src, s)
        assert m.stats is not None and not m.stats.indexed
        assert s.stats().indexing_pending and len(s) == 20


async def test_async_import_indexes_like_the_sync_one(tmp_path: Path) -> None:
    src = write_lines(tmp_path / "q.jsonl", qdrant_lines(120, bad=False))
    calls: list[tuple[int, int]] = []
    async with AsyncVecStore.open(tmp_path / "s.db") as s:
        st = await QdrantMigration(batch_size=40).with_progress(
            None, indexing=lambda d, t: calls.append((d, t))).import_from_file_async(src, s)
        assert st.indexed and st.indexed_vectors == 120
        info = await s.stats()
        assert info.sealed_segments == 1 and not info.indexing_pending
    assert calls[0] == (0, 120) and calls[-1] == (120, 120)
    async with AsyncVecStore.open(tmp_path / "t.db") as s:
        st = await QdrantMigration(index=False).import_from_file_async(src, s)
        assert not st.indexed and (await s.stats()).indexing_pending


def test_ctrl_c_between_send_and_bookkeeping_is_held(tmp_path: Path) -> None:
    """A SIGINT that lands while a batch is handed to the writer is held until
    the importer has recorded it as in flight, so the stats never lag the store."""
    import signal as _signal

    from vecstore.migration._importer import _interrupts_deferred

    with pytest.raises(KeyboardInterrupt):
        with _interrupts_deferred():
            _signal.raise_signal(_signal.SIGINT)
            reached = True  # the block runs to its end first
    assert reached
    assert _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler
