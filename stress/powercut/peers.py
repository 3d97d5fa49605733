"""The same power cuts against two embedded peers: Chroma (``PersistentClient``)
and LanceDB.  Benchmark-only dependencies (``pip install chromadb lancedb``):
a peer that is not installed is skipped and said so.

Workload (traced exactly like vecstore's): upserts of 1-40 ids and deletes
of 1-10 ids over a pool of 300, 8-d vectors, metadata ``{"op": n}``, each
call acknowledged in the ack file once it returns.  Judgement, counted the
same way as for vecstore: every call acknowledged before the cut must be
there (a record that differs from the acknowledged state is a lost write);
the call in flight must be all-or-nothing; the store must open.

``python -m stress.powercut.peers write KIND SPEC`` is the traced writer;
``python -m stress.powercut.peers observe KIND PATH OUT`` reads a crash state.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from typing import Any

from .._common import PY, child_env, workdir
from .._report import Report
from . import crash, trace

DIM = 8
POOL = 300
PEERS = ("chroma", "lancedb")


def available(kind: str) -> bool:
    import importlib.util

    return importlib.util.find_spec("chromadb" if kind == "chroma" else "lancedb") is not None


def _tables(db: Any) -> list[str]:
    try:
        got = db.list_tables()
        return list(getattr(got, "tables", got))
    except AttributeError:
        return list(db.table_names())


def _vec(rid: str, n: int) -> list[float]:
    r = random.Random(f"{rid}/{n}")
    return [r.uniform(-1, 1) + 0.01 for _ in range(DIM)]


# -- the traced writers ------------------------------------------------------------------------


def write(kind: str, spec: dict[str, Any]) -> None:
    rng = random.Random(spec["seed"])
    fd = os.open(spec["ack"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def log(obj: dict[str, Any]) -> None:
        os.write(fd, (json.dumps(obj) + "\n").encode())

    path = spec["store"]
    if kind == "chroma":
        import chromadb

        client = chromadb.PersistentClient(path=path)
        col = client.get_or_create_collection("col", metadata={"hnsw:space": "l2"})

        def upsert(ids: list[str], n: int) -> None:
            col.upsert(ids=ids, embeddings=[_vec(i, n) for i in ids],
                       metadatas=[{"op": n} for _ in ids])

        def delete(ids: list[str]) -> None:
            col.delete(ids=ids)
    else:
        import lancedb
        import pyarrow as pa

        db = lancedb.connect(path)
        schema = pa.schema([pa.field("id", pa.string()), pa.field("op", pa.int64()),
                            pa.field("vector", pa.list_(pa.float32(), DIM))])
        tbl = db.open_table("t") if "t" in _tables(db) else db.create_table("t", schema=schema)

        def upsert(ids: list[str], n: int) -> None:
            rows = [{"id": i, "op": n, "vector": _vec(i, n)} for i in ids]
            tbl.merge_insert("id").when_matched_update_all().when_not_matched_insert_all() \
                .execute(rows)

        def delete(ids: list[str]) -> None:
            tbl.delete("id IN (" + ",".join(f"'{i}'" for i in ids) + ")")

    log({"a": 0, "r": None, "ready": True})
    n = spec["opbase"]
    while True:
        n += 1
        if rng.random() < 0.7:
            ids = [f"k{i}" for i in rng.sample(range(POOL), rng.randint(1, 40))]
            log({"b": n, "op": "upsert", "ids": ids})
            upsert(ids, n)
        else:
            ids = [f"k{i}" for i in rng.sample(range(POOL), rng.randint(1, 10))]
            log({"b": n, "op": "delete", "ids": ids})
            delete(ids)
        log({"a": n})


def observe(kind: str, path: str, out: str) -> None:
    res: dict[str, Any] = {}
    try:
        if not os.path.isdir(path):
            res = {"records": {}, "missing": True}
        elif kind == "chroma":
            import chromadb

            client = chromadb.PersistentClient(path=path)
            names = [getattr(c, "name", c) for c in client.list_collections()]
            if "col" not in names:
                res = {"records": {}, "missing": True}
            else:
                col = client.get_collection("col")
                got = col.get(include=["metadatas"])
                recs = {rid: (m or {}).get("op") for rid, m in zip(got["ids"], got["metadatas"])}
                bad = [rid for rid, op in recs.items() if op is None]
                res = {"records": recs, "bad": bad[:5]}
                q = col.query(query_embeddings=[_vec("q", 1)], n_results=min(5, max(1, len(recs))))
                res["query_ok"] = True if recs else q is not None
        else:
            import lancedb

            db = lancedb.connect(path)
            if "t" not in _tables(db):
                res = {"records": {}, "missing": True}
            else:
                tbl = db.open_table("t")
                rows = tbl.to_arrow().to_pylist()
                recs = {r["id"]: r["op"] for r in rows}
                dup = len(rows) - len(recs)
                res = {"records": recs, "bad": [f"{dup} duplicate ids"] if dup else []}
                if recs:
                    tbl.search(_vec("q", 1)).limit(5).to_list()
                res["query_ok"] = True
    except BaseException as exc:
        res = {"open_error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    with open(out, "w") as f:
        json.dump(res, f)


# -- the harness -------------------------------------------------------------------------------


class _Acks:
    def __init__(self, text: bytes) -> None:
        self.state: dict[str, int] = {}
        self.pending: dict[str, Any] | None = None
        self.records = 0
        for line in text.split(b"\n")[:-1]:
            e = json.loads(line)
            if "b" in e:
                self.pending = e
            elif self.pending is not None and e.get("a") == self.pending["b"]:
                self._apply(self.pending, self.state)
                self.records += len(self.pending["ids"])
                self.pending = None

    @staticmethod
    def _apply(e: dict[str, Any], st: dict[str, int]) -> None:
        for i in e["ids"]:
            if e["op"] == "upsert":
                st[i] = e["b"]
            else:
                st.pop(i, None)


def _judge(kind: str, obs: dict[str, Any], m: _Acks, st: dict[str, Any], where: str,
           report: Report) -> None:
    name = f"{kind}: "
    st["states"] += 1
    if "open_error" in obs:
        st["failed_open"] += 1
        report.note(f"{kind} crash state does not open ({where}): {obs['open_error'][:160]}")
        return
    seen = {k: int(v) for k, v in obs.get("records", {}).items() if v is not None}
    st["acked_checked"] += m.records
    lost = [k for k in set(m.state) | set(seen) if seen.get(k) != m.state.get(k)]
    if lost and m.pending is not None:
        after = dict(m.state)
        _Acks._apply(m.pending, after)
        if not [k for k in set(after) | set(seen) if seen.get(k) != after.get(k)]:
            lost = []
        else:
            keys = set(m.pending["ids"])
            partial = [k for k in keys if seen.get(k) == after.get(k) != m.state.get(k)]
            outside = [k for k in lost if k not in keys]
            if partial and not outside:
                st["partial_batches"] += 1
                lost = []
    if lost:
        st["writes_lost"] += len(lost)
        st["states_losing"] += 1
        if st["states_losing"] <= 3:
            report.note(f"{name}{len(lost)} acknowledged writes lost ({where}), e.g. "
                        f"{[(k, seen.get(k), m.state.get(k)) for k in sorted(lost)[:3]]}")
    if obs.get("bad"):
        st["damaged"] += 1


def run_peer(kind: str, report: Report, seed: int, cuts: int, keep: bool, states: int,
             per_run: int = 10) -> dict[str, Any]:
    rng = random.Random(seed)
    st: dict[str, Any] = dict.fromkeys((
        "runs", "cuts", "states", "acked_checked", "writes_lost", "states_losing", "failed_open",
        "partial_batches", "damaged", "events",), 0)
    t0 = time.monotonic()
    with workdir(keep, f"powercut-{kind}") as wd:
        i = 0
        while st["cuts"] < cuts:
            rd = wd / f"run-{i}"
            fs_root = rd / "fs"
            fs_root.mkdir(parents=True)
            spec = {"store": str(fs_root / "store"), "ack": str(rd / "acks.jsonl"),
                    "seed": rng.randrange(2**31), "opbase": 1000 * (i + 1)}
            (rd / "spec.json").write_text(json.dumps(spec))
            fsm = crash.FS(str(fs_root))
            log = str(rd / "trace.log")
            trace.run_traced([PY, "-m", "stress.powercut.peers", "write", kind,
                              str(rd / "spec.json")], log, env=child_env(),
                             kill_after=rng.uniform(4.0, 8.0), err=str(rd / "writer.err"))
            events = trace.Parser(str(fs_root), spec["ack"]).parse(log)
            st["events"] += len(events)
            st["runs"] += 1
            if len(events) < 2:
                st["empty_runs"] = st.get("empty_runs", 0) + 1
                if st["empty_runs"] >= 3:
                    report.note(f"{kind}: the traced writer recorded nothing 3 times: "
                                f"{(rd / 'writer.err').read_text(errors='replace')[-300:]}")
                    break
                continue
            n_cuts = min(per_run, cuts - st["cuts"])
            points = sorted(rng.sample(range(1, len(events)), min(n_cuts - 1,
                                                                     max(0, len(events) - 1))))
            points.append(len(events))
            acks = bytearray()
            pi = 0
            for idx, ev in enumerate(events, 1):
                if ev[0] == "ack":
                    acks += ev[1]
                else:
                    fsm.apply(ev)
                while pi < len(points) and points[pi] == idx:
                    pi += 1
                    st["cuts"] += 1
                    m = _Acks(bytes(acks))
                    for s_i, how in enumerate((["durable", "weak", "ext4"] +
                                               ["weak"] * max(0, states - 3))[:max(3, states)]):
                        tree = fsm.crash(random.Random(rng.randrange(2**31)), how)
                        d = rd / f"state-{idx}-{s_i}"
                        crash.materialize(tree, str(d))
                        out = str(d) + ".json"
                        subprocess.run([PY, "-m", "stress.powercut.peers", "observe", kind,
                                        str(d / "store"), out], env=child_env(), timeout=300,
                                       capture_output=True)
                        try:
                            with open(out) as f:
                                obs = json.load(f)
                        except (OSError, ValueError):
                            obs = {"open_error": "the reader crashed"}
                        _judge(kind, obs, m, st, f"run {i} cut {idx}/{len(events)} {how}",
                               report)
                        shutil.rmtree(d, ignore_errors=True)
            if not keep:
                shutil.rmtree(rd, ignore_errors=True)
            i += 1
    st["seconds"] = round(time.monotonic() - t0, 1)
    return st


def run_all(report: Report, seed: int, cuts: int, keep: bool, states: int) -> None:
    rng = random.Random(seed)
    for kind in PEERS:
        if not available(kind):
            report.note(f"{kind} is not installed (pip install chromadb lancedb): peer not cut")
            continue
        st = run_peer(kind, report, rng.randrange(2**31), cuts, keep, states)
        report.figures[f"peer_{kind}"] = st
        report.line(f"peer {kind}: {st['cuts']} cuts, {st['states']} crash states, "
                    f"{st['acked_checked']} acknowledged record writes checked; writes lost: "
                    f"{st['writes_lost']} (in {st['states_losing']} states); failed to open: "
                    f"{st['failed_open']}; partial batches: {st['partial_batches']} "
                    f"({st['seconds']:.0f} s)")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        with open(sys.argv[3]) as f:
            write(sys.argv[2], json.load(f))
    else:
        observe(sys.argv[2], sys.argv[3], sys.argv[4])
