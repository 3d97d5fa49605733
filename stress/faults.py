"""Fault injection: disk full, I/O errors, crashes around segment files,
damaged segment files, a damaged WAL entry.

Every scenario runs in a child interpreter (``python -m stress.faults child
SCENARIO DIR SEED``) so that a crash is caught, faults stay contained, and
``LD_PRELOAD`` can be set.  The child writes batches (new ids plus
overwrites of acknowledged ones) and records which were acknowledged and
which raised; it then injects the fault and reports what happened.  The
parent reopens the store in a clean process state and checks that every
acknowledged write is there (vector bytes and metadata), that no failed
write is visible, and that the consistency check is clean.

What each fault must end in: a clear typed error (a ``VecStoreError``:
``StorageFullError`` for a full disk, ``StorageError`` for EIO,
``CorruptionError`` for damage that cannot be repaired), or an automatic
repair from LMDB (the source of truth) — never a silently wrong answer and
never a lost acknowledged write.

How faults are made:

- disk full: a small tmpfs mounted for the scenario (needs root; else
  skipped) and ``RLIMIT_FSIZE`` (EFBIG, SIGXFSZ ignored; works anywhere);
- EIO / ENOSPC on LMDB's ``pwrite``/``fdatasync`` and on the segment
  files' ``write``/``fsync``: the LD_PRELOAD shim (stress/_faultshim.c);
- crash between writing a segment file and recording it: the child
  SIGKILLs itself from a wrapped ``os.replace`` (before / after the rename
  of ``seg-*.hnsw.tmp``) or right after the manifest records a new segment;
- damaged segment files (truncated, bit-flipped, emptied, deleted) and a
  damaged WAL entry: bytes changed by the parent while the store is closed.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import _shim
from ._check import check_store, cli_check
from ._common import PY, child_env, fmt_exc, vecstore_warnings, vectors_for, workdir
from ._report import Report

DIM = 32
BIG = 100_000  # a seal threshold that is never reached

# -- child side -------------------------------------------------------------------------------


class Tracker:
    """Writes batches and remembers what was acknowledged and what raised."""

    def __init__(self, store: Any, seed: int, pad: int = 0, prefix: str = "r") -> None:
        self.store = store
        self.acked: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.n = 0
        self.rng = random.Random(seed)
        self.pad = pad
        self.prefix = prefix
        self.errors: list[BaseException] = []

    def batch(self, size: int = 200, overwrite: int = 10, view: Any = None) -> BaseException | None:
        self.n += 1
        n = self.n
        ids = [f"{self.prefix}{n}_{j}" for j in range(size)]
        if self.acked and overwrite:
            ids += self.rng.sample(sorted(self.acked), min(overwrite, len(self.acked)))
        vecs = vectors_for(ids, n, DIM)
        meta = [{"op": n, "pad": "x" * self.pad}] * len(ids)
        try:
            (view if view is not None else self.store).upsert_many(ids=ids, vectors=vecs,
                                                                   metadata=meta)
        except Exception as exc:
            for i in ids:
                self.failed[i] = n
            self.errors.append(exc)
            return exc
        for i in ids:
            self.acked[i] = n
        return None

    def readable(self) -> list[str]:
        """The store answers reads correctly (after a failed write)."""
        problems: list[str] = []
        s = self.store
        try:
            sample = self.rng.sample(sorted(self.acked), min(40, len(self.acked)))
            for rid in sample:
                rec = s.get(rid)
                if rec is None or rec.metadata.get("op") != self.acked[rid]:
                    problems.append(f"get({rid}) = {rec and rec.metadata.get('op')}, "
                                    f"acknowledged op {self.acked[rid]}")
            for rid in [r for r in self.failed if r not in self.acked][:40]:
                if s.get(rid) is not None:
                    problems.append(f"failed write of {rid} is visible")
            if len(s) != len(self.acked):
                problems.append(f"len(store) {len(s)} != acknowledged records {len(self.acked)}")
            for rid in sample[:10]:
                vec = vectors_for([rid], self.acked[rid], DIM)[0]
                hits = s.query(vec, k=1)
                if not hits or hits[0].id != rid:
                    problems.append(f"query for {rid}'s own vector found "
                                    f"{hits[0].id if hits else None}")
        except Exception as exc:
            problems.append(f"read raised {fmt_exc(exc)}")
        return problems

    def dump(self) -> dict[str, Any]:
        return {"acked": self.acked, "failed": self.failed}


def _typed(exc: BaseException | None) -> bool:
    import vecstore

    return isinstance(exc, vecstore.VecStoreError)


def _name(exc: BaseException | None) -> str:
    return "no error" if exc is None else type(exc).__name__


def _open(path: str, **cfg: Any) -> Any:
    from vecstore import Config, VecStore

    base = {"dim": DIM, "seal_threshold": BIG, "ef_construction": 100}
    base.update(cfg)
    return VecStore.open(path, Config(**base))


def _segments_loadable(store: Any) -> list[str]:
    """Every file the manifest names loads in hnswlib and holds the right
    vectors (checked in this process, independent of the engine's cache)."""
    import hnswlib

    from ._check import manifest

    problems = []
    st = store._engine.storage
    space = {"cosine": "cosine", "euclidean": "l2", "dot": "ip"}[store.stats().distance]
    for fname, entry in manifest(store).items():
        path = os.path.join(st.path, "segments", fname)
        try:
            idx = hnswlib.Index(space=space, dim=entry["dim"])
            idx.load_index(path, max_elements=max(entry["n"], 1))
            got = np.asarray(idx.get_items(list(range(min(entry["n"], 50)))), np.float32)
            if got.shape[0] != min(entry["n"], 50) or not np.isfinite(got).all():
                problems.append(f"{fname}: vectors unreadable")
        except Exception as exc:
            problems.append(f"{fname} (recorded in the manifest, {os.path.getsize(path)} bytes) "
                            f"does not load: {fmt_exc(exc)}")
    return problems


def _fill_disk(folder: str) -> int:
    """Fill the file system holding ``folder``; return bytes written."""
    total = 0
    with open(os.path.join(folder, "filler"), "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 16, 1 << 12, 512):
            while True:
                try:
                    total += f.write(b"\0" * size)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EFBIG):
                        raise
                    break
    return total


def child_main(argv: list[str]) -> None:
    scen, folder, seed = argv[0], argv[1], int(argv[2])
    out: dict[str, Any] = {"checks": [], "outcome": ""}

    def check(name: str, ok: bool, detail: str = "") -> None:
        out["checks"].append([name, bool(ok), detail])

    fn = CHILD_SCENARIOS[scen]
    try:
        fn(folder, seed, out, check)
    except Exception as exc:
        import traceback

        check("scenario ran without an unexpected exception", False,
              "".join(traceback.format_exception(exc))[-1200:])
    t = out.pop("tracker", None)
    if t is not None:
        out.update(t.dump())
    print("RESULT " + json.dumps(out, default=str), flush=True)


def _c_disk_full(folder: str, seed: int, out: dict[str, Any], check: Any,
                 limit: str = "tmpfs") -> None:
    path = os.path.join(folder, "store")
    if limit == "rlimit":
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    store = _open(path)
    t = Tracker(store, seed, pad=600)
    out["tracker"] = t
    for _ in range(5):
        assert t.batch() is None
    if limit == "rlimit":
        size = os.path.getsize(os.path.join(path, "data.mdb"))
        cap = size + (3 << 20)
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, hard))
    err = None
    for _ in range(3000):
        err = t.batch()
        if err is not None:
            break
    out["figures"] = {"acked_batches": t.n - 1, "acked_records": len(t.acked)}
    check("disk full ends in a typed error", _typed(err), f"raised {err!r}")
    check("disk full raises StorageFullError", type(err).__name__ == "StorageFullError",
          f"raised {err!r}")
    problems = t.readable()
    check("store readable after disk full", not problems, "; ".join(problems[:3]))
    err2 = t.batch(size=50)
    check("a second write on the full disk fails typed or succeeds",
          err2 is None or _typed(err2), f"raised {err2!r}")
    # free space, and writes resume without reopening
    if limit == "rlimit":
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    else:
        os.remove(os.path.join(folder, "filler"))
    err3 = t.batch(size=50)
    check("writes resume once space is freed", err3 is None, f"raised {err3!r}")
    problems = t.readable()
    check("store readable after space is freed", not problems, "; ".join(problems[:3]))
    out["outcome"] = (f"{_name(err)} after {len(t.acked)} records; reads ok: "
                      f"{not problems}; writes resume: {err3 is None}")
    store.close()


def _c_seal_disk_full(folder: str, seed: int, out: dict[str, Any], check: Any) -> None:
    """The disk fills up just before a seal writes its segment file."""
    path = os.path.join(folder, "store")
    store = _open(path)
    t = Tracker(store, seed)
    out["tracker"] = t
    for _ in range(8):
        assert t.batch() is None
    written = _fill_disk(folder)
    err = None
    try:
        store.optimize()
    except Exception as exc:
        err = exc
    loadable = _segments_loadable(store)
    check("a seal on a full disk fails typed or writes a valid segment",
          (err is None and not loadable) or _typed(err),
          f"optimize() raised {err!r}; recorded segments: {loadable or 'ok'}")
    check("no broken segment file is ever recorded in the manifest", not loadable,
          "; ".join(loadable[:2]))
    problems = t.readable()
    check("store readable after the failed seal", not problems, "; ".join(problems[:3]))
    os.remove(os.path.join(folder, "filler"))
    err2 = None
    try:
        store.optimize()
        store.optimize()
    except Exception as exc:
        err2 = exc
    check("optimize() works once space is freed", err2 is None, f"raised {err2!r}")
    out["outcome"] = (f"disk filled ({written >> 10} KiB); optimize(): {_name(err)}; "
                      f"recorded segments loadable: {not loadable}")
    store.close()


def _c_lmdb_io(folder: str, seed: int, out: dict[str, Any], check: Any, kinds: int,
               nth: bool) -> None:
    shim = _shim.Shim()
    path = os.path.join(folder, "store")
    store = _open(path)
    t = Tracker(store, seed)
    out["tracker"] = t
    for _ in range(6):
        assert t.batch() is None
    rng = random.Random(seed)
    skip = rng.randint(0, 4) if nth else 0
    shim.arm(kinds, "data.mdb", errno.EIO, skip=skip, once=nth)
    errs = [t.batch() for _ in range(3)]
    hits = shim.hits
    shim.disarm()
    failed = [e for e in errs if e is not None]
    check("the injected I/O error was hit", hits > 0, "no write/fsync of data.mdb was failed")
    check("EIO ends in a typed error", all(_typed(e) for e in failed),
          f"raised {[repr(e) for e in failed]}")
    check("EIO raises StorageError", all(type(e).__name__ == "StorageError" for e in failed),
          f"raised {[repr(e) for e in failed]}")
    problems = t.readable()
    check("store readable after EIO", not problems, "; ".join(problems[:3]))
    err3 = t.batch(size=50)
    check("writes resume after a transient EIO (or fail typed)", err3 is None or _typed(err3),
          f"raised {err3!r}")
    out["resumed"] = err3 is None
    kinds = ", ".join(sorted({_name(e) for e in failed})) or "-"
    out["outcome"] = (f"{len(failed)}/3 writes failed ({kinds}"
                      f"; fault after {skip} good calls); reads ok: {not problems}; "
                      f"writes resume: {err3 is None if err3 is None else _name(err3)}")
    try:
        store.close()
    except Exception as exc:
        check("close() after EIO works", False, fmt_exc(exc))


def _c_segment_io(folder: str, seed: int, out: dict[str, Any], check: Any, kinds: int,
                  err_code: int) -> None:
    shim = _shim.Shim()
    path = os.path.join(folder, "store")
    store = _open(path)
    t = Tracker(store, seed)
    out["tracker"] = t
    for _ in range(8):
        assert t.batch() is None
    shim.arm(kinds, "/segments/", err_code)
    err = None
    try:
        store.optimize()
    except Exception as exc:
        err = exc
    hits = shim.hits
    shim.disarm()
    loadable = _segments_loadable(store)
    check("the injected segment-file error was hit", hits > 0, "nothing was failed")
    check("a failed segment write surfaces as a typed error (or is retried)",
          (err is None and not loadable) or _typed(err),
          f"optimize() raised {err!r}")
    check("no broken segment file is ever recorded in the manifest", not loadable,
          "; ".join(loadable[:2]))
    problems = t.readable()
    check("store readable after the failed seal", not problems, "; ".join(problems[:3]))
    err2 = None
    try:
        store.optimize()
        store.optimize()
    except Exception as exc:
        err2 = exc
    check("optimize() works once the fault is gone", err2 is None, f"raised {err2!r}")
    out["outcome"] = (f"optimize(): {_name(err)}"
                      f"{' (' + str(err)[:60] + ')' if err else ''}; recorded segments "
                      f"loadable: {not loadable}; retry ok: {err2 is None}")
    store.close()


def _c_seal_kill(folder: str, seed: int, out: dict[str, Any], check: Any, when: str) -> None:
    """SIGKILL this process at one step of writing a segment."""
    path = os.path.join(folder, "store")
    store = _open(path)
    t = Tracker(store, seed)
    out["tracker"] = t
    for _ in range(8):
        assert t.batch() is None
    with open(os.path.join(folder, "acked.json"), "w") as f:
        json.dump(t.dump(), f)
    real_replace = os.replace

    def replace(src: Any, dst: Any, *a: Any, **kw: Any) -> Any:
        if str(dst).endswith(".hnsw") and str(src).endswith(".tmp"):
            if when == "before-rename":
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst, *a, **kw)
            if when == "after-rename":
                os.kill(os.getpid(), signal.SIGKILL)
            return None
        return real_replace(src, dst, *a, **kw)

    if when == "after-manifest":
        # Deterministic: die right after the writer's transaction that records
        # the segment in the manifest commits (a polling watcher could miss it).
        eng = store._engine
        real_finish = eng.finish_job

        def finish_then_die(job: Any) -> None:
            real_finish(job)
            os.kill(os.getpid(), signal.SIGKILL)

        eng.finish_job = finish_then_die  # type: ignore[method-assign]
    else:
        os.replace = replace  # type: ignore[assignment]
    try:
        store.optimize()
    finally:
        os.replace = real_replace  # type: ignore[assignment]
    check("the child was killed during the seal", False, "optimize() returned")


def _c_build(folder: str, seed: int, out: dict[str, Any], check: Any) -> None:
    """Two partitions with a sealed segment each, changes on top, then
    reference answers; the parent damages files afterwards."""
    path = os.path.join(folder, "store")
    store = _open(path, seal_threshold=600)
    t = Tracker(store, seed)
    out["tracker"] = t
    for _ in range(7):
        assert t.batch() is None
    other = store.partition("t2")
    t2 = Tracker(store, seed + 1, prefix="o")
    for _ in range(2):
        assert t2.batch(view=other) is None
    store.optimize()
    store.optimize()
    check("segments sealed", store.stats().sealed_segments >= 2, str(store.stats()))
    for _ in range(2):  # rows in the growing segment + the WAL, over sealed ones
        assert t.batch(size=30, overwrite=20) is None
    rng = np.random.default_rng(seed)
    answers = []
    for name in ("default", "t2"):
        for q in rng.standard_normal((15, DIM)).astype(np.float32):
            hits = store.partition(name).query(q, k=10)
            answers.append([name, q.tolist(), [h.id for h in hits], [h.score for h in hits]])
    out["answers"] = answers
    out["acked_t2"] = t2.acked
    store.close()


CHILD_SCENARIOS: dict[str, Any] = {
    "disk-full-tmpfs": lambda f, s, o, c: _c_disk_full(f, s, o, c, "tmpfs"),
    "disk-full-rlimit": lambda f, s, o, c: _c_disk_full(f, s, o, c, "rlimit"),
    "seal-on-full-disk": _c_seal_disk_full,
    "lmdb-fsync-eio": lambda f, s, o, c: _c_lmdb_io(f, s, o, c, _shim.SYNCS, False),
    "lmdb-write-eio": lambda f, s, o, c: _c_lmdb_io(f, s, o, c, _shim.WRITES, False),
    "lmdb-nth-write-eio": lambda f, s, o, c: _c_lmdb_io(f, s, o, c, _shim.WRITES, True),
    "segment-fsync-eio": lambda f, s, o, c: _c_segment_io(f, s, o, c, _shim.SYNCS, errno.EIO),
    "segment-write-eio": lambda f, s, o, c: _c_segment_io(f, s, o, c, _shim.WRITES, errno.EIO),
    "segment-write-enospc": lambda f, s, o, c: _c_segment_io(f, s, o, c, _shim.WRITES,
                                                              errno.ENOSPC),
    "kill-before-rename": lambda f, s, o, c: _c_seal_kill(f, s, o, c, "before-rename"),
    "kill-after-rename": lambda f, s, o, c: _c_seal_kill(f, s, o, c, "after-rename"),
    "kill-after-manifest": lambda f, s, o, c: _c_seal_kill(f, s, o, c, "after-manifest"),
    "build": _c_build,
}

# -- parent side --------------------------------------------------------------------------------


def _child(scen: str, folder: Path, seed: int, shim: str | None = None,
           timeout: float = 180) -> tuple[dict[str, Any] | None, int | str, str]:
    env = child_env()
    if shim:
        env["LD_PRELOAD"] = shim
        env["STRESS_SHIM"] = shim
    try:
        proc = subprocess.run([PY, "-m", "stress.faults", "child", scen, str(folder), str(seed)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        return None, f"timeout after {timeout:.0f} s", str(exc.stderr or "")[-800:]
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    return result, proc.returncode, proc.stderr[-1500:]


def _verify_after(path: Path, acked: dict[str, int], failed: dict[str, int], scen: str,
                  report: Report, *, repair_ok: bool = False,
                  extra_acked: dict[str, dict[str, int]] | None = None) -> str:
    """Reopen (writable) and check acknowledged/failed writes; returns a
    description of what the reopen did."""
    from vecstore import VecStore

    with vecstore_warnings() as warned:
        try:
            store = VecStore.open(path)
        except Exception as exc:
            report.fail("store reopens after the fault", f"{scen}: {fmt_exc(exc)}")
            return f"reopen failed: {fmt_exc(exc)}"
    report.ok("store reopens after the fault")
    try:
        views = {"default": acked, **(extra_acked or {})}
        lost, wrong = [], []
        for part, ack in views.items():
            view = store.partition(part)
            got = {r.id: r for r in view.scan()}
            for rid, op in ack.items():
                rec = got.get(rid)
                if rec is None or rec.metadata.get("op") != op or \
                        not np.array_equal(rec.vector, vectors_for([rid], op, DIM)[0]):
                    lost.append(f"{part}/{rid}")
            if part == "default":
                for rid, op in failed.items():
                    rec = got.get(rid)
                    if rec is not None and rec.metadata.get("op") == op:
                        wrong.append(rid)
                extra = set(got) - set(ack)
                wrong += sorted(extra)[:5]
            report.add("acked_checked", len(ack))
        report.add("writes_lost", len(lost))
        report.check("no acknowledged write lost", not lost,
                     f"{scen}: {len(lost)} acknowledged records missing/changed, e.g. {lost[:4]}")
        report.check("no failed write visible", not wrong,
                     f"{scen}: records of failed writes visible: {wrong[:4]}")
        sample = sorted(acked)[:: max(1, len(acked) // 15)]
        bad = []
        for rid in sample:
            hits = store.query(vectors_for([rid], acked[rid], DIM)[0], k=1)
            if not hits or hits[0].id != rid:
                bad.append(rid)
        report.check("queries find acknowledged records", not bad, f"{scen}: {bad[:4]}")
        problems = check_store(store)
        report.check("consistency check clean", not problems, f"{scen}: {problems[:3]}")
    finally:
        store.close()
    if not repair_ok:
        report.check("reopen after the fault needs no repair", not warned,
                     f"{scen}: reopen repaired: {warned[:2]}")
    with vecstore_warnings() as warned2:
        VecStore.open(path).close()
    report.check("second reopen is clean (repairs were written back)", not warned2,
                 f"{scen}: {warned2[:2]}")
    avail, clean, said = cli_check(str(path))
    if avail:
        report.check("vecstore check clean", clean, f"{scen}: {said}")
    return f"reopen repaired {len(warned)} file(s)" if warned else "reopen clean"


def _apply_child(report: Report, scen: str, res: dict[str, Any] | None, code: Any,
                 err: str) -> bool:
    if res is None:
        report.fail("fault scenario child finished", f"{scen}: exit {code}: {err[-600:]}")
        return False
    report.check("fault scenario child finished", code == 0, f"{scen}: exit {code}: {err[-600:]}")
    for name, ok, detail in res["checks"]:
        report.check(name, ok, f"{scen}: {detail}")
    return True


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if not shutil.which("mount") or os.geteuid() != 0:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    return proc.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _damage(seg: Path, how: str, rng: random.Random) -> None:
    data = bytearray(seg.read_bytes())
    if how == "truncated":
        seg.write_bytes(bytes(data[: rng.randrange(1, len(data))]))
    elif how == "bit-flipped":
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(data))
            data[pos] ^= 1 << rng.randrange(8)
        seg.write_bytes(bytes(data))
    elif how == "emptied":
        seg.write_bytes(b"")
    elif how == "deleted":
        seg.unlink()


def _default_segment(path: Path) -> Path:
    import cbor2
    import lmdb

    env = lmdb.open(str(path), max_dbs=16, subdir=True, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            parts = env.open_db(b"parts", txn=txn, create=False)
            pid = cbor2.loads(txn.get(b"default", db=parts))["pid"]
            segs = env.open_db(b"segs", txn=txn, create=False)
            files = sorted(cbor2.loads(v)["file"] for _k, v in txn.cursor(db=segs)
                           if cbor2.loads(v)["pid"] == pid)
    finally:
        env.close()
    return path / "segments" / files[0]


def _damage_wal(path: Path, rng: random.Random, where: str) -> int:
    import lmdb

    env = lmdb.open(str(path), max_dbs=16, subdir=True)
    try:
        with env.begin(write=True) as txn:
            wal = env.open_db(b"wal", txn=txn, create=False)
            entries = [(bytes(k), bytearray(v)) for k, v in txn.cursor(db=wal)]
            if not entries:
                return -1
            key, val = entries[-1] if where == "last" else rng.choice(entries)
            if where == "format":
                val[0] ^= 0xFF
            else:
                val[rng.randrange(5, len(val))] ^= 1 << rng.randrange(8)
            txn.put(key, bytes(val), db=wal)
            return int.from_bytes(key, "big")
    finally:
        env.close()


def _answers_match(store: Any, answers: list[Any]) -> list[str]:
    """Answers after a repair against those before the damage.  HNSW is
    approximate and a rebuilt graph is not the same graph, so: the same
    number of hits, the same score wherever the same record comes back,
    and >= 90% of the same records overall (a wrong or missing segment
    would lose far more)."""
    bad = []
    same = total = 0
    for name, q, ids, scores in answers:
        hits = store.partition(name).query(np.asarray(q, np.float32), k=10)
        got = {h.id: h.score for h in hits}
        before = dict(zip(ids, scores))
        if len(hits) != len(ids):
            bad.append(f"{name}: {len(hits)} hits, {len(ids)} before the damage")
        for rid in set(got) & set(before):
            if abs(got[rid] - before[rid]) > 1e-5:
                bad.append(f"{name}: {rid} score {got[rid]} != {before[rid]} before")
        same += len(set(got) & set(before))
        total += len(ids)
    if total and same / total < 0.9:
        bad.append(f"only {same}/{total} of the hits before the damage come back")
    return bad


def run(rounds: int = 1, seed: int | None = None, keep: bool = False,
        report: Report | None = None) -> Report:
    from vecstore import VecStore

    report = report or Report("faults")
    seed = random.randrange(2**31) if seed is None else seed
    rng = random.Random(seed)
    shim = _shim.build()
    outcomes: dict[str, list[str]] = {}
    t0 = time.monotonic()

    def outcome(name: str, text: str) -> None:
        outcomes.setdefault(name, []).append(text)
        report.add("faults_injected")

    if shim is None:
        report.note("no C compiler: EIO/ENOSPC injection into LMDB and segment files skipped")
    with workdir(keep, "faults") as wd:
        for rnd in range(rounds):
            # -- disk full -------------------------------------------------------------------------
            for scen in ("disk-full-tmpfs", "seal-on-full-disk", "disk-full-rlimit"):
                folder = wd / f"{scen}-{rnd}"
                mounted = False
                if scen != "disk-full-rlimit":
                    mounted = _mount_tmpfs(folder, "16m" if scen == "disk-full-tmpfs" else "12m")
                    if not mounted:
                        report.note(f"{scen}: cannot mount a tmpfs (needs root): skipped; "
                                    "disk-full-rlimit covers ENOSPC/EFBIG on LMDB")
                        continue
                    if scen == "disk-full-tmpfs":  # space to free later
                        (folder / "filler").write_bytes(b"\0" * (2 << 20))
                folder.mkdir(exist_ok=True)
                try:
                    res, code, err = _child(scen, folder, rng.randrange(2**31))
                    if _apply_child(report, scen, res, code, err):
                        assert res is not None
                        how = _verify_after(folder / "store", res.get("acked", {}),
                                            res.get("failed", {}), scen, report)
                        outcome(scen, f"{res['outcome']}; {how}")
                finally:
                    if mounted:
                        _umount(folder)
            # -- I/O errors through the shim --------------------------------------------------
            if shim is not None:
                for scen in ("lmdb-fsync-eio", "lmdb-write-eio", "lmdb-nth-write-eio",
                             "segment-fsync-eio", "segment-write-eio", "segment-write-enospc"):
                    folder = wd / f"{scen}-{rnd}"
                    folder.mkdir()
                    res, code, err = _child(scen, folder, rng.randrange(2**31), shim=shim)
                    if _apply_child(report, scen, res, code, err):
                        assert res is not None
                        how = _verify_after(folder / "store", res.get("acked", {}),
                                            res.get("failed", {}), scen, report)
                        outcome(scen, f"{res['outcome']}; {how}")
            # -- crashes around a segment file -----------------------------------------------------
            for scen in ("kill-before-rename", "kill-after-rename", "kill-after-manifest"):
                folder = wd / f"{scen}-{rnd}"
                folder.mkdir()
                res, code, err = _child(scen, folder, rng.randrange(2**31))
                report.check("child killed itself mid-seal", code == -signal.SIGKILL,
                             f"{scen}: exit {code}: {err[-300:]} "
                             f"{[c for c in (res or {}).get('checks', []) if not c[1]]}"[:600])
                acked = json.loads((folder / "acked.json").read_text())
                segs = sorted(os.listdir(folder / "store" / "segments"))
                how = _verify_after(folder / "store", acked["acked"], acked["failed"], scen,
                                    report)
                outcome(scen, f"killed with {segs or 'no files'} in segments/; {how}")
            # -- damaged segment files -------------------------------------------------------------
            for how in ("truncated", "bit-flipped", "emptied", "deleted"):
                scen = f"segment-{how}"
                folder = wd / f"{scen}-{rnd}"
                folder.mkdir()
                res, code, err = _child("build", folder, rng.randrange(2**31))
                if not _apply_child(report, scen, res, code, err):
                    continue
                assert res is not None
                path = folder / "store"
                seg = _default_segment(path)
                _damage(seg, how, rng)
                damaged = seg.read_bytes() if seg.exists() else None
                # read_only: repaired in memory, nothing written
                with vecstore_warnings() as warned:
                    try:
                        ro = VecStore.open(path, read_only=True)
                        bad = _answers_match(ro, res["answers"])
                        ro.close()
                        report.check("read_only open answers as before the damage",
                                     not bad, f"{scen}: {bad[:2]}")
                    except Exception as exc:
                        report.fail("read_only open answers as before the damage",
                                    f"{scen}: {fmt_exc(exc)}")
                report.check("damage is reported (warning) when detected", bool(warned),
                             f"{scen}: no warning")
                report.check("read_only open writes nothing",
                             (seg.read_bytes() if seg.exists() else None) == damaged,
                             f"{scen}: the damaged file changed")
                with vecstore_warnings() as warned:
                    try:
                        st = VecStore.open(path)
                        bad = _answers_match(st, res["answers"])
                        st.close()
                        report.check("answers after repair equal those before the damage",
                                     not bad, f"{scen}: {bad[:2]}")
                    except Exception as exc:
                        report.fail("answers after repair equal those before the damage",
                                    f"{scen}: {fmt_exc(exc)}")
                desc = _verify_after(path, res.get("acked", {}), {}, scen, report, repair_ok=True,
                                     extra_acked={"t2": res.get("acked_t2", {})})
                why = re.sub(r"\S*/segments/", "", warned[0])[:90] if warned else ""
                outcome(scen, f"{'repaired from LMDB' if warned else 'NOT detected'} "
                              f"({why}); then {desc}")
            # -- damaged WAL entry -----------------------------------------------------------------
            for where in ("last", "random", "format"):
                scen = f"wal-{where}-entry-damaged"
                folder = wd / f"{scen}-{rnd}"
                folder.mkdir()
                res, code, err = _child("build", folder, rng.randrange(2**31))
                if not _apply_child(report, scen, res, code, err):
                    continue
                path = folder / "store"
                seq = _damage_wal(path, rng, where)
                if seq < 0:
                    report.note(f"{scen}: the WAL was empty, nothing to damage")
                    continue
                errs = []
                for ro in (False, True, False):
                    try:
                        VecStore.open(path, read_only=ro).close()
                        errs.append(None)
                    except Exception as exc:
                        errs.append(exc)
                names = [_name(e) for e in errs]
                report.check("damaged WAL entry raises CorruptionError at open",
                             all(n == "CorruptionError" for n in names),
                             f"{scen}: open raised {names} ({[str(e)[:80] for e in errs]})")
                report.check("CorruptionError names the damaged entry",
                             all(str(seq) in str(e) for e in errs if e is not None),
                             f"{scen}: seq {seq} not in {[str(e)[:120] for e in errs]}")
                from ._common import run_cli

                cli = run_cli(["stats", str(path)])
                report.check("CLI on a damaged store: error message, no traceback",
                             cli.returncode != 0 and "Traceback" not in cli.stderr,
                             f"{scen}: exit {cli.returncode}: {cli.stderr[-300:]}")
                outcome(scen, f"entry {seq}: open raised {names[0]} (read_only: {names[1]}); "
                              f"CLI exit {cli.returncode}")
    report.figure("seconds", round(time.monotonic() - t0, 1))
    report.figure("outcomes", outcomes)
    report.line(f"{report.figures.get('faults_injected', 0)} faults injected, "
                f"{report.figures.get('acked_checked', 0)} acknowledged writes checked after "
                f"them, writes lost: {report.figures.get('writes_lost', 0)} "
                f"({time.monotonic() - t0:.0f} s, seed {seed})")
    for name, texts in outcomes.items():
        for text in sorted(set(texts))[:2]:
            report.line(f"  {name}: {text}")
    return report


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child_main(sys.argv[2:])
    else:
        raise SystemExit("usage: python -m stress faults  (this module's own entry is for "
                         "child processes)")
