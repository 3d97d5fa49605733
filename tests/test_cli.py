"""The console script, through subprocess (what users run): every command,
--json output, exit codes, and clear messages (never a traceback) for bad
paths, corrupt input, corrupt stores and locked stores."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vecstore import Config, VecStore
from vecstore.cli.progress import PhaseBar, Progress

ROOT = Path(__file__).resolve().parent.parent
DIM = 8


def env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), **extra)


def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "vecstore.cli", *args], env=env(**extra),
                         capture_output=True, text=True, timeout=300)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    return out


def vec(i: int, dim: int = DIM) -> list[float]:
    return np.random.default_rng(i).standard_normal(dim).astype(np.float32).tolist()


def qdrant_file(path: Path, n: int, dim: int = DIM, bad: tuple[int, ...] = ()) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            v = vec(i, dim)[:-1] if i in bad else vec(i, dim)
            f.write(json.dumps({"id": i, "vector": v, "payload": {"i": i, "t": f"r{i}"}}) + "\n")
    return path


def tree_hash(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.name != "lock.mdb":
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_stats_json(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "s.db", Config(dim=3)) as s:
        s.upsert_many([("a", [1, 2, 3]), ("b", [3, 2, 1])])
        s.partition("t").upsert("c", [1, 1, 1])
    out = run("stats", "--json", str(tmp_path / "s.db"))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["total_vectors"] == 3 and doc["partitions"] == {"default": 2, "t": 1}
    assert doc["imports"] == []


def test_bad_path_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    out = run("stats", str(tmp_path / "nope"))
    assert out.returncode == 1 and "nope" in out.stderr
    for cmd in (["versions"], ["check"], ["query", "--vector", "[1]"], ["rollback"],
                ["export", "qdrant"]):
        args = [*cmd, str(tmp_path / "nope")]
        if cmd[0] == "rollback":
            args.append("1")
        if cmd[0] == "export":
            args.append(str(tmp_path / "o.jsonl"))
        out = run(*args)
        assert out.returncode == 1 and "no vecstore" in out.stderr, (cmd, out.stderr)
    assert not (tmp_path / "nope").exists()
    out = run("import", "qdrant", str(tmp_path / "missing.jsonl"), str(tmp_path / "s.db"))
    assert out.returncode == 1 and "missing.jsonl" in out.stderr
    assert not (tmp_path / "s.db").exists()  # nothing created for a missing source
    (tmp_path / "file").write_text("x")
    src = qdrant_file(tmp_path / "q.jsonl", 3)
    out = run("import", "qdrant", str(src), str(tmp_path / "file"))
    assert out.returncode == 1 and "file" in out.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("import", "milvus", "a", "b").returncode == 2
    assert run("query", str(tmp_path)).returncode == 2  # needs --vector or --id
    assert run("rollback", str(tmp_path), "-3").returncode == 2
    assert run().returncode == 2


def test_import_export_query_versions_rollback(tmp_path: Path) -> None:
    src = qdrant_file(tmp_path / "q.jsonl", 250)
    store = str(tmp_path / "s.db")
    out = run("import", "qdrant", str(src), store, "--batch-size", "100", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["total_vectors"] == 250 and doc["complete"] and doc["errors"] == 0
    assert "250/250 records (100.0%)" in out.stderr  # plain progress lines off a terminal
    again = run("import", "qdrant", str(src), store)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    stats = json.loads(run("stats", "--json", store).stdout)
    assert stats["total_vectors"] == 250 and stats["dimension"] == DIM
    assert stats["imports"][0]["done"] and stats["imports"][0]["imported"] == 250

    res = json.loads(run("query", store, "--id", "7", "-k", "3", "--json").stdout)["results"]
    assert res[0]["id"] == "7" and res[0]["metadata"] == {"i": 7, "t": "r7"} and len(res) == 3
    res = run("query", store, "--vector", json.dumps(vec(9)), "--filter", "i < 5", "-k", "2")
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 2
    res = run("query", store, "--vector", "[1, 2]")
    assert res.returncode == 1 and "dimension" in res.stderr

    vers = json.loads(run("versions", store, "--json").stdout)["versions"]
    assert [v["ops"] for v in vers] == [100, 100, 50]
    assert vers[0]["message"] == "import qdrant q.jsonl"
    rb = run("rollback", store, str(vers[0]["version"]), "--json")
    assert rb.returncode == 0, rb.stderr
    assert json.loads(run("stats", "--json", store).stdout)["total_vectors"] == 100

    out = run("export", "pinecone", store, str(tmp_path / "out.json"), "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["records"] == 100
    out = run("import", "pinecone", str(tmp_path / "out.json"), str(tmp_path / "b.db"))
    assert out.returncode == 0, out.stderr
    with VecStore.open(tmp_path / "s.db") as a, VecStore.open(tmp_path / "b.db") as b:
        assert {r.id: (r.vector.tobytes(), r.metadata) for r in a.scan()} == \
            {r.id: (r.vector.tobytes(), r.metadata) for r in b.scan()}


def test_rejects_exit_4_and_are_listed(tmp_path: Path) -> None:
    src = qdrant_file(tmp_path / "q.jsonl", 30, bad=(4, 17))
    out = run("import", "qdrant", str(src), str(tmp_path / "s.db"), "--json", "-q")
    assert out.returncode == 4 and out.stderr == ""
    doc = json.loads(out.stdout)
    assert doc["errors"] == 2 and [f["position"] for f in doc["failures"]] == [4, 17]
    lines = Path(doc["reject_file"]).read_text().splitlines()
    assert [json.loads(x)["position"] for x in lines] == [4, 17]
    out = run("import", "qdrant", str(src), str(tmp_path / "s2.db"))
    assert out.returncode == 4 and "rejected record 4" in out.stdout


def test_corrupt_source_file(tmp_path: Path) -> None:
    src = qdrant_file(tmp_path / "q.jsonl", 40)
    text = src.read_text().splitlines()
    text[25] = text[25][:30]
    src.write_text("\n".join(text) + "\n")
    # validated (the default): the broken line is one rejected record, exit 4
    store = str(tmp_path / "v.db")
    out = run("import", "qdrant", str(src), store, "--batch-size", "10", "--json", "-q")
    assert out.returncode == 4, out.stderr
    doc = json.loads(out.stdout)
    assert doc["complete"] and doc["total_vectors"] == 39 and doc["errors"] == 1
    (f,) = doc["failures"]
    assert f["position"] == 25 and f["code"] == "record" and f["excerpt"] == text[25]
    assert "line 26 is not valid JSON" in f["reason"]
    assert json.loads(run("stats", "--json", store).stdout)["total_vectors"] == 39
    out = run("import", "qdrant", str(src), str(tmp_path / "v2.db"))
    assert out.returncode == 4 and "rejected record 25 (id None): line 26" in out.stdout
    # --no-validate: the first problem stops the import, the readable prefix is committed
    store = str(tmp_path / "s.db")
    out = run("import", "qdrant", str(src), store, "--batch-size", "10", "--json",
              "--no-validate")
    assert out.returncode == 1
    assert "record position 25" in out.stderr and "malformed" in out.stderr
    assert json.loads(out.stdout)["error"]["type"] == "MigrationError"
    assert json.loads(run("stats", "--json", store).stdout)["total_vectors"] == 25
    pc = tmp_path / "p.json"
    pc.write_text('{"vectors": [{"id": "a", "values": [1, 2')
    out = run("import", "pinecone", str(pc), str(tmp_path / "p.db"))
    assert out.returncode == 1 and "premature EOF" in out.stderr


def test_changed_source_needs_restart(tmp_path: Path) -> None:
    src = qdrant_file(tmp_path / "q.jsonl", 20)
    store = str(tmp_path / "s.db")
    assert run("import", "qdrant", str(src), store).returncode == 0
    qdrant_file(src, 21)
    out = run("import", "qdrant", str(src), store)
    assert out.returncode == 1 and "--restart" in out.stderr
    out = run("import", "qdrant", str(src), store, "--restart", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["total_vectors"] == 21


def test_locked_store(tmp_path: Path) -> None:
    src = qdrant_file(tmp_path / "q.jsonl", 10)
    with VecStore.open(tmp_path / "s.db", Config(dim=DIM)) as s:
        s.upsert("x", vec(1))
        out = run("import", "qdrant", str(src), str(tmp_path / "s.db"), "--json")
        assert out.returncode == 3 and "open for writing elsewhere" in out.stderr
        assert json.loads(out.stdout)["error"]["type"] == "StoreLockedError"
        assert run("rollback", str(tmp_path / "s.db"), "0").returncode == 3
        # readers work beside the writer
        assert run("stats", str(tmp_path / "s.db")).returncode == 0
        assert run("check", str(tmp_path / "s.db")).returncode == 0


def test_check_clean_and_damaged_stores(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with VecStore.open(path, Config(dim=DIM, seal_threshold=50)) as s:
        for i in range(0, 200, 40):
            s.upsert_many([(str(j), vec(j)) for j in range(i, i + 40)])
        s.optimize()
        s.upsert_many([(str(j), vec(j)) for j in range(200, 220)])
        s.delete("3")
    out = run("check", str(path), "--json")
    assert out.returncode == 0, out.stdout
    doc = json.loads(out.stdout)
    assert doc["ok"] and doc["checked"]["records"] == 219 and doc["checked"]["segments"] >= 1

    # a damaged WAL entry: reported, nothing changed; the store no longer opens
    import lmdb

    env_ = lmdb.open(str(path), max_dbs=16)
    with env_.begin(write=True) as txn:
        wal = env_.open_db(b"wal", txn=txn, create=False)
        key, val = next(iter(txn.cursor(db=wal)))
        txn.put(key, val[:-3] + b"\x00\x01\x02", db=wal)
    env_.close()
    before = tree_hash(path)
    out = run("check", str(path))
    assert out.returncode == 4 and "write-ahead log entry" in out.stdout and "damaged" in out.stdout
    assert tree_hash(path) == before
    out = run("stats", str(path))
    assert out.returncode == 1 and "damaged" in out.stderr


def test_check_reports_missing_segment_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with VecStore.open(path, Config(dim=DIM, seal_threshold=50)) as s:
        s.upsert_many([(str(j), vec(j)) for j in range(120)])
        s.optimize()
    seg = next((path / "segments").iterdir())
    seg.unlink()
    (path / "segments" / "seg-999.hnsw").write_bytes(b"junk")
    out = run("check", str(path), "--json")
    doc = json.loads(out.stdout)
    assert out.returncode == 4 and any("file is missing" in p for p in doc["problems"])
    assert any("not named by the manifest" in w for w in doc["warnings"])


def test_ctrl_c_then_resume(tmp_path: Path) -> None:
    src = qdrant_file(tmp_path / "q.jsonl", 30_000, dim=32)
    store = str(tmp_path / "s.db")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vecstore.cli", "import", "qdrant", str(src), store,
         "--batch-size", "500", "--json"],
        env=env(VECSTORE_PROGRESS_INTERVAL="0"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = 0
    for line in proc.stderr:
        if "records (" in line and not line.startswith("import q.jsonl: 0/"):
            seen += 1
            if seen == 3:
                proc.send_signal(signal.SIGINT)
                break
    out, err = proc.communicate(timeout=120)
    err = "".join(proc.stderr.readlines()) if not proc.stderr.closed else err
    if proc.returncode == 0:  # finished before the signal landed: nothing to check
        return
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "run the same command again" in err.lower()
    doc = json.loads(out)
    assert doc["interrupted"] and 0 < doc["committed_offset"] < 30_000
    assert doc["end_offset"] == doc["committed_offset"]  # the batch in flight was waited for
    done = run("import", "qdrant", str(src), store, "--batch-size", "500", "--json",
               "--no-index")
    assert done.returncode == 0, done.stderr
    doc2 = json.loads(done.stdout)
    assert doc2["resumed"] and doc2["start_offset"] == doc["committed_offset"]
    assert doc2["complete"]
    with VecStore.open(store, read_only=True) as s:
        assert len(s) == 30_000
        assert s.get("29999").metadata == {"i": 29999, "t": "r29999"}


def test_progress_bar_on_a_terminal() -> None:
    buf = io.StringIO()
    p = Progress("import x", stream=buf, tty=True, interval=0)
    p(0, 100)
    time.sleep(0.01)
    p(40, 100)
    p(100, 100)
    p.close()
    text = buf.getvalue()
    assert "\r" in text and "ETA" in text and "/s" in text and "100.0%" in text
    assert text.endswith("\n") and text.count("\n") == 1
    plain = io.StringIO()
    q = Progress("import x", stream=plain, tty=False, interval=3600)
    for i in range(0, 101, 10):
        q(i, 100)
    assert len(plain.getvalue().splitlines()) == 2  # the first and the last




def test_phase_bar_names_its_total() -> None:
    buf = io.StringIO()
    bar = PhaseBar("indexing", "vectors", stream=buf, tty=True)
    bar(0, 0)  # an empty phase shows nothing
    assert buf.getvalue() == ""
    bar(0, 5000)
    bar(5000, 5000)
    bar.close()
    text = buf.getvalue()
    assert "\rindexing 5,000 vectors [" in text and "5,000/5,000 vectors" in text
    assert text.endswith("\n") and text.count("\n") == 1


def stats_of(store: str) -> dict[str, Any]:
    out = run("stats", "--json", store)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_import_ends_indexed_unless_no_index_then_optimize(tmp_path: Path) -> None:
    src = qdrant_file(tmp_path / "q.jsonl", 300)
    store = str(tmp_path / "s.db")
    out = run("import", "qdrant", str(src), store, "--batch-size", "100", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["complete"] and doc["indexed"] and doc["indexed_vectors"] == 300
    assert doc["index_duration"] >= 0 and doc["duration"] >= 0  # each phase's own time
    # its own progress phase, after the records' (plain lines off a terminal)
    err = out.stderr.splitlines()
    assert err[-1].startswith("indexing 300 vectors: 300/300 vectors (100.0%)")
    assert any(x.startswith("import q.jsonl: 300/300 records") for x in err[:-1])
    st = stats_of(store)
    assert st["sealed_segments"] == 1 and st["growing_vectors"] == 0
    assert st["indexing_pending"] is False

    bare = str(tmp_path / "bare.db")
    out = run("import", "qdrant", str(src), bare, "--no-index")
    assert out.returncode == 0 and "indexing" not in out.stderr
    assert "not indexed (--no-index)" in out.stdout and "vecstore optimize" in out.stdout
    st = stats_of(bare)
    assert st["sealed_segments"] == 0 and st["growing_vectors"] == 300
    assert st["indexing_pending"] is True

    out = run("optimize", bare, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["indexed_vectors"] == 300 and doc["sealed_segments"] == 1
    assert doc["indexing_pending"] is False and doc["total_vectors"] == 300
    assert "indexing 300 vectors: 300/300 vectors (100.0%)" in out.stderr
    assert stats_of(bare)["indexing_pending"] is False
    out = run("optimize", bare, "-q")
    assert out.returncode == 0 and out.stderr == "" and "nothing to do" in out.stdout


def test_compact_and_optimize_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with VecStore.open(path, Config(dim=DIM)) as s:
        s.upsert_many([(str(i), vec(i)) for i in range(200)])
        s.delete_many([str(i) for i in range(0, 200, 4)])
        s.set_retention(versions=1)
    out = run("compact", str(path), "--json", "-q")
    assert out.returncode == 0 and out.stderr == ""
    doc = json.loads(out.stdout)
    assert doc["rows_removed"] == 50 and doc["total_vectors"] == 150
    assert "removed 0 rows" not in run("compact", str(path)).stdout  # nothing left: says so
    assert "nothing to do" in run("compact", str(path)).stdout
    with VecStore.open(path) as s:
        assert len(s) == 150 and s.get("1") is not None and s.get("4") is None
    for cmd in ("optimize", "compact"):
        out = run(cmd, str(tmp_path / "nope"), "--json")
        assert out.returncode == 1 and "no vecstore" in out.stderr
        assert json.loads(out.stdout)["exit_code"] == 1
        assert run(cmd).returncode == 2
        with VecStore.open(path) as s:
            out = run(cmd, str(path))
            assert out.returncode == 3 and "open for writing elsewhere" in out.stderr
    assert not (tmp_path / "nope").exists()


def test_ctrl_c_while_indexing(tmp_path: Path) -> None:
    src = qdrant_file(tmp_path / "q.jsonl", 8000, dim=16)
    store = str(tmp_path / "s.db")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vecstore.cli", "import", "qdrant", str(src), store, "--json"],
        env=env(VECSTORE_PROGRESS_INTERVAL="0"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("indexing 8,000 vectors: 0/"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # indexed before the signal landed: nothing to check
        return
    assert proc.returncode == 130, err
    assert "interrupted while indexing" in err and "vecstore optimize" in err
    doc = json.loads(out)
    assert doc["interrupted"] and doc["complete"] and not doc["indexed"]
    assert doc["committed_offset"] == 8000 == doc["total_vectors"]
    st = stats_of(store)
    assert st["total_vectors"] == 8000 and st["indexing_pending"] is True
    again = run("import", "qdrant", str(src), store, "--json")  # nothing to import; indexes
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["already_complete"] and doc["indexed"] and doc["indexed_vectors"] == 8000
    st = stats_of(store)
    assert st["indexing_pending"] is False and st["sealed_segments"] == 1
