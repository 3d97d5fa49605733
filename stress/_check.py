"""Consistency checks of a whole store.

``vecstore check STORE`` is the contract's integrity check (it reads LMDB
and the segment files without going through recovery); :func:`cli_check`
runs it.  (If the CLI answers "not built yet", exit 2, it is skipped and
said so.)  Beside it, :func:`check_store` checks an *opened* store, i.e.
what recovery built in memory against LMDB:

- the WAL verifies (every entry's CRC and CBOR);
- per partition, the rowids of the records live at the latest version (the
  ``hist`` table, LMDB = source of truth) are exactly the rowids visible in
  the in-memory segments (sealed + growing): none missing (a record that no
  query can reach), none extra (a deleted or superseded record that queries
  would still return), none visible twice;
- every rowid a segment references has its record and vector in LMDB;
- ``count()`` == the segment-visible count == a full ``scan()``, and
  ``stats().total_vectors`` is their sum;
- the ``segments/`` folder holds exactly the files the manifest names, each
  matching its CRC32 (only when no writer is running).

This looks at engine internals (``store._engine``); if those move, the
check fails loudly rather than passing quietly.
"""

from __future__ import annotations

import json
import os
import zlib
from typing import Any

import numpy as np

from ._common import fmt_exc, run_cli

_CLI: dict[str, bool] = {}


def _run_check(path: str) -> tuple[int, str, str]:
    """``vecstore check --json PATH``: the first time in a child interpreter
    (the real command line), then in process through ``vecstore.cli.main``
    (the same code, without an interpreter start per check)."""
    if not _CLI.get("subprocess_done"):
        _CLI["subprocess_done"] = True
        proc = run_cli(["check", "--json", str(path)], timeout=600)
        return proc.returncode, proc.stdout, proc.stderr
    import contextlib
    import io

    from vecstore import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(["check", "--json", str(path)])
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        except Exception:  # a crash of the check is reported as such
            import traceback

            traceback.print_exc(file=err)
            code = 1
    return int(code or 0), out.getvalue(), err.getvalue()


def cli_check(path: str) -> tuple[bool, bool, str]:
    """Run ``vecstore check --json STORE``: (available, clean, what it said).

    Exit 0 = clean, 4 = problems found; anything else (or a traceback) is
    a failure of the check itself.  Warnings (e.g. unrecorded segment files
    a writable open will delete) do not make a store unclean."""
    if _CLI.get("missing"):
        return False, True, ""
    try:
        code, stdout, stderr = _run_check(path)
    except Exception as exc:  # a hang or a failure to start is a finding
        return True, False, f"vecstore check did not finish: {fmt_exc(exc)}"
    out = (stdout + stderr).strip()
    if code == 2 and "not built" in out:
        _CLI["missing"] = True
        return False, True, out
    if "Traceback (most recent call last)" in out:
        return True, False, f"vecstore check crashed: {out[-400:]}"
    try:
        doc = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return True, False, f"vecstore check exit {code}: {out[-400:]}"
    if code == 0 and doc.get("ok"):
        return True, True, ""
    return True, False, (f"vecstore check exit {code}: "
                         f"{doc.get('problem_count', '?')} problems: "
                         f"{doc.get('problems', doc.get('error'))!s:.400}")


def _crc(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def manifest(store: Any) -> dict[str, dict[str, Any]]:
    import cbor2

    st = store._engine.storage
    out: dict[str, dict[str, Any]] = {}
    db = st.db("segs")
    if db is None:
        return out
    with st.read() as txn:
        for _k, v in txn.cursor(db=db):
            entry = cbor2.loads(v)
            out[entry["file"]] = entry
    return out


def check_store(store: Any, *, files: bool = True) -> list[str]:
    """Problems found in an open, idle store (empty list = consistent)."""
    try:
        return _check(store, files)
    except Exception as exc:
        return [f"consistency check itself failed: {fmt_exc(exc)}"]


def _check(store: Any, files: bool) -> list[str]:
    from vecstore._segments.segment import visible
    from vecstore._storage.records import Reader

    problems: list[str] = []
    eng = store._engine
    st = eng.storage
    state = eng.state
    v = state.version
    for exc in eng.wal.verify():
        problems.append(f"WAL: {exc}")
    snap = store.snapshot()
    if snap.version != v:
        problems.append(f"snapshot version {snap.version} != engine state version {v} "
                        "(store not idle?)")
    total = 0
    with st.read() as txn:
        reader = Reader(st, txn)
        rows_db = st.db("rows")
        for name, ps in state.parts.items():
            live: dict[int, str] = {rowid: rid for rid, _b, rowid in reader.live_ids(ps.pid, v)}
            vis_parts, refs = [], []
            for seg in ps.sealed:
                vis_parts.append(seg.rowids[visible(seg.born, seg.died, v)])
                refs.append(seg.rowids)
            g = ps.growing
            if g is not None and g.n:
                n = g.n
                vis_parts.append(g.rowids[:n][visible(g.born[:n], g.died[:n], v)])
                refs.append(g.rowids[:n])
            vis = np.concatenate(vis_parts) if vis_parts else np.empty(0, np.int64)
            uniq = set(vis.tolist())
            if len(uniq) != vis.size:
                problems.append(f"partition {name!r}: {vis.size - len(uniq)} rows visible in "
                                "two segments at once")
            missing = sorted(live[r] for r in live if r not in uniq)
            extra = sorted(r for r in uniq if r not in live)
            if missing:
                problems.append(f"partition {name!r}: {len(missing)} live records in no "
                                f"segment (unreachable by queries), e.g. {missing[:5]}")
            if extra:
                problems.append(f"partition {name!r}: {len(extra)} rows visible in segments but "
                                f"not live in LMDB (deleted/superseded yet searchable), "
                                f"e.g. rowids {extra[:5]}")
            ref = np.concatenate(refs) if refs else np.empty(0, np.int64)
            # vectors: one value per row or packed blocks (vecstore/_vectors.py)
            has_vec = reader.table(state.dim).many(ps.pid, ref)[0] if ref.size and \
                state.dim else np.ones(ref.size, bool)
            absent = int((~has_vec).sum())
            for r in ref[has_vec].tolist():
                if txn.get(int(r).to_bytes(8, "big"), db=rows_db) is None:
                    absent += 1
            if absent:
                problems.append(f"partition {name!r}: {absent} rowids referenced by segments "
                                "have no record/vector in LMDB")
            counted = ps.count_visible(v)
            view = snap.partition(name)
            scanned = sum(1 for _ in view.scan())
            cnt = view.count()
            if not counted == scanned == cnt == len(live):
                problems.append(f"partition {name!r}: counts disagree: segments {counted}, "
                                f"count() {cnt}, scan() {scanned}, live in LMDB {len(live)}")
            if ps.live:
                total += len(live)
    n_default = len(store)
    scan_default = sum(1 for _ in store.scan())
    if n_default != scan_default:
        problems.append(f"len(store) {n_default} != scan count {scan_default}")
    stats = store.stats()
    if stats.total_vectors != total:
        problems.append(f"stats().total_vectors {stats.total_vectors} != live records {total}")
    if files:
        man = manifest(store)
        folder = os.path.join(st.path, "segments")
        on_disk = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        if on_disk != sorted(man):
            problems.append(f"segments/ holds {on_disk} but the manifest names {sorted(man)}")
        for fname, entry in man.items():
            p = os.path.join(folder, fname)
            if os.path.exists(p) and _crc(p) != entry["crc"]:
                problems.append(f"segment file {fname} does not match its manifest CRC")
    return problems
