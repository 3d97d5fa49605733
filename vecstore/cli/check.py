"""``vecstore check``: an integrity check that changes nothing.

It opens the LMDB environment read-only (no writer lock: it can run beside
a writer, reading one consistent transaction) without going through
recovery, so it also reports stores that no longer open.  It verifies:

* every write-ahead-log entry (CRC32 and CBOR, ``WriteAheadLog.verify``);
* every segment in the manifest: its file exists and matches its CRC32,
  its row list is well formed, and each row exists in its partition;
* every record row: it decodes, has a vector of the store's dimension with
  finite values, and is reachable -- in a sealed segment of its partition
  or in the WAL tail that recovery turns into the growing segment -- unless
  it is dead;
* history against records: each history entry points at a row of the same
  partition and id; each live row is its id's newest entry (so counts
  agree);
* versions: nothing is newer than the store's version;
* BM25 text indexes: postings and document lengths are exactly what the
  recorded analyzer makes of the records; sparse vectors belong to records
  (``check_text.py``).

Files in ``segments/`` that the manifest does not name are *warnings*
(leftovers of an interrupted seal; the next writable open deletes them).
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import cbor2
import lmdb
import numpy as np

from wal import WriteAheadLog

from .._errors import CorruptionError, StoreNotFoundError
from .._storage.env import Storage
from .._storage.files import file_crc
from .._storage.keys import k64, split_block_key, split_hist_key, u64
from .._storage.records import decode_row, row_pid
from .._storage.vectors import VectorTable, decode_block
from .check_text import check_text

MAX_LISTED = 100


class _Report:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []
        self.n_problems = 0
        self.warnings: list[str] = []
        self.checked: dict[str, int] = {}

    def problem(self, text: str) -> None:
        self.n_problems += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(text)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.n_problems == 0, "path": self.path, "problems": self.problems,
                "problem_count": self.n_problems, "warnings": self.warnings,
                "checked": self.checked}


def check_store(path: str) -> dict[str, Any]:
    """Check the store at ``path``; StoreNotFoundError if there is none."""
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "data.mdb")):
        raise StoreNotFoundError(f"no vecstore at {path!r}")
    rep = _Report(path)
    try:
        storage = Storage(path, read_only=True, sync=False)
    except (lmdb.Error, OSError) as exc:
        rep.problem(f"the LMDB environment cannot be opened: {exc}")
        return rep.to_dict()
    try:
        wal = WriteAheadLog(storage.env, b"wal")
        with storage.read() as txn:
            _check(storage, wal, txn, rep)
    except lmdb.Error as exc:
        rep.problem(f"LMDB error while reading: {exc}")
    finally:
        storage.close()
    return rep.to_dict()


def _check(st: Storage, wal: WriteAheadLog, txn: lmdb.Transaction[bytes], rep: _Report) -> None:
    cfg = st.get_meta(txn, "config") or {}
    dim = cfg.get("dim")
    version = st.get_meta(txn, "version", 0)
    parts: dict[int, str] = {}
    if st.db("parts") is not None:
        for key, val in txn.cursor(db=st.db("parts")):
            try:
                parts[cbor2.loads(val)["pid"]] = bytes(key).decode()
            except Exception as exc:
                rep.problem(f"partition entry {bytes(key)!r} is unreadable: {exc}")
    rep.checked["partitions"] = len(parts)
    tail = _check_wal(wal, txn, rep, parts)
    sealed, upto = _check_segments(st, txn, rep, parts, dim)
    for pid in parts:
        upto[pid] = max(upto.get(pid, -1), st.get_meta(txn, f"upto:{pid}", -1))
    died = _died(st, txn)
    live_rows = _check_rows(st, txn, rep, parts, dim, sealed, upto, tail, died)
    _check_blocks(st, txn, rep, parts, dim)
    _check_hist(st, txn, rep, parts, live_rows, version)
    check_text(st, txn, rep)  # BM25 postings and sparse vectors against the records
    for rowid, v in died.items():
        if v > version:
            rep.problem(f"row {rowid} is marked dead at version {v}, after the store's "
                        f"version {version}")
            break
    if st.db("versions") is not None:
        with txn.cursor(db=st.db("versions")) as cur:
            if cur.last() and u64(cur.key()) > version:
                rep.problem(f"version {u64(cur.key())} is recorded but the store's version "
                            f"is {version}")
    rep.checked["version"] = version


def _check_wal(wal: WriteAheadLog, txn: lmdb.Transaction[bytes], rep: _Report,
               parts: dict[int, str]) -> dict[int, list[tuple[int, int]]]:
    """Verify every entry; return the row ranges the intact ones add, by pid."""
    bad = {e.seq for e in wal.verify(txn=txn)}
    for seq in sorted(bad):
        rep.problem(f"write-ahead log entry {seq} is damaged")
    tail: dict[int, list[tuple[int, int]]] = defaultdict(list)
    n = 0
    first = wal.first_seq(txn=txn)
    last = wal.last_seq(txn=txn)
    seq = first or 1
    while first is not None and seq <= last:
        if seq not in bad:
            try:
                entry = wal.get(seq, txn=txn)
            except KeyError:
                seq += 1
                continue
            n += 1
            for pid, r0, count in entry.get("a", []):
                if pid not in parts:
                    rep.problem(f"write-ahead log entry {seq} adds rows to unknown "
                                f"partition id {pid}")
                tail[pid].append((r0, r0 + count))
        seq += 1
    rep.checked["wal_entries"] = n + len(bad)
    return tail


def _check_segments(st: Storage, txn: lmdb.Transaction[bytes], rep: _Report, parts: dict[int, str],
                    dim: int | None) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    sealed: dict[int, list[np.ndarray]] = defaultdict(list)
    upto: dict[int, int] = {}
    named: set[str] = set()
    n = 0
    rows_db = st.db("rows")
    if st.db("segs") is not None:
        for key, val in txn.cursor(db=st.db("segs")):
            n += 1
            seg_id = u64(key)
            try:
                entry = cbor2.loads(val)
                fname, pid, count = entry["file"], entry["pid"], entry["n"]
            except Exception as exc:
                rep.problem(f"segment {seg_id}: manifest entry is unreadable: {exc}")
                continue
            named.add(fname)
            what = f"segment {seg_id} ({fname}, partition {parts.get(pid, pid)!r})"
            if pid not in parts:
                rep.problem(f"{what}: unknown partition id {pid}")
            upto[pid] = max(upto.get(pid, -1), entry.get("upto", -1))
            fpath = st.segment_path(fname)
            if not os.path.exists(fpath):
                if _still_listed(st, key):  # not merged away by a writer meanwhile
                    rep.problem(f"{what}: file is missing")
            else:
                try:
                    if file_crc(fpath) != entry.get("crc"):
                        rep.problem(f"{what}: file fails its CRC32 check")
                except OSError as exc:
                    rep.problem(f"{what}: file cannot be read: {exc}")
            if dim is not None and entry.get("dim") not in (None, dim):
                rep.problem(f"{what}: built for {entry.get('dim')}-d vectors, store is {dim}-d")
            raw = txn.get(key, db=st.db("segrows"))
            if raw is None or len(raw) != 16 * count:
                rep.problem(f"{what}: row list is missing or has the wrong length")
                continue
            rowids = np.frombuffer(raw, dtype="<i8", count=count).astype(np.int64)
            if count > 1 and (np.diff(rowids) <= 0).any():
                rep.problem(f"{what}: row ids are not strictly ascending")
            for r in rowids.tolist():
                row = txn.get(k64(r), db=rows_db)
                if row is None:
                    rep.problem(f"{what}: row {r} does not exist")
                    break
                if row_pid(row) != pid:
                    rep.problem(f"{what}: row {r} belongs to another partition")
                    break
            sealed[pid].append(rowids)
    rep.checked["segments"] = n
    folder = os.path.join(st.path, "segments")
    stray = sorted(f for f in os.listdir(folder) if f not in named) \
        if os.path.isdir(folder) else []
    if stray:
        rep.warnings.append(f"{len(stray)} file(s) in segments/ not named by the manifest "
                            f"(e.g. {stray[0]}); the next writable open removes them")
    return {pid: np.unique(np.concatenate(a)) for pid, a in sealed.items()}, upto


def _check_blocks(st: Storage, txn: lmdb.Transaction[bytes], rep: _Report, parts: dict[int, str],
                  dim: int | None) -> None:
    """Vector blocks: readable, keyed by their last row, rows ascending, the
    blocks of a partition disjoint, every row recorded in that partition
    and held nowhere else."""
    db, rows_db, vecs_db = st.db("vblocks"), st.db("rows"), st.db("vecs")
    n = 0
    prev: tuple[int, int] = (-1, -1)
    for key, raw in txn.cursor(db=db) if db is not None else ():
        n += 1
        pid, last = split_block_key(bytes(key))
        what = f"vector block ({parts.get(pid, pid)!r}, last row {last})"
        try:
            rowids, mat = decode_block(raw, dim)
        except CorruptionError as exc:
            rep.problem(f"{what}: {exc}")
            continue
        if pid not in parts:
            rep.problem(f"{what}: unknown partition id {pid}")
        if int(rowids[-1]) != last or (rowids.size > 1 and (np.diff(rowids) <= 0).any()):
            rep.problem(f"{what}: rows are not ascending up to the key's row")
        if prev[0] == pid and int(rowids[0]) <= prev[1]:
            rep.problem(f"{what}: overlaps the partition's previous block")
        prev = (pid, last)
        if not np.isfinite(mat).all():
            rep.problem(f"{what}: holds NaN or infinity")
        for r in rowids.tolist():
            row = txn.get(k64(r), db=rows_db) if rows_db is not None else None
            if row is None or row_pid(row) != pid:
                rep.problem(f"{what}: row {r} has no record in that partition")
                break
            if vecs_db is not None and txn.get(k64(r), db=vecs_db) is not None:
                rep.problem(f"{what}: row {r} also has a single vector value")
                break
    rep.checked["vector_blocks"] = n


def _still_listed(st: Storage, key: bytes) -> bool:
    with st.read() as txn:
        return txn.get(key, db=st.db("segs")) is not None


def _died(st: Storage, txn: lmdb.Transaction[bytes]) -> dict[int, int]:
    db = st.db("died")
    if db is None:
        return {}
    return {u64(k): u64(v) for k, v in txn.cursor(db=db)}


def _in_ranges(r: int, ranges: list[tuple[int, int]]) -> bool:
    return any(lo <= r < hi for lo, hi in ranges)


def _check_rows(st: Storage, txn: lmdb.Transaction[bytes], rep: _Report, parts: dict[int, str],
                dim: int | None, sealed: dict[int, np.ndarray], upto: dict[int, int],
                tail: dict[int, list[tuple[int, int]]], died: dict[int, int]
                ) -> dict[int, tuple[int, str]]:
    """Check every row; return the live ones: rowid -> (pid, id)."""
    live: dict[int, tuple[int, str]] = {}
    vectors = VectorTable(st, txn, dim)
    n = 0
    if st.db("rows") is None:
        return live
    empty = np.empty(0, np.int64)
    for key, raw in txn.cursor(db=st.db("rows")):
        n += 1
        rowid = u64(key)
        try:
            pid, rid, _meta = decode_row(raw)
        except Exception as exc:
            rep.problem(f"row {rowid}: cannot be decoded: {exc}")
            continue
        who = f"row {rowid} (id {rid!r}, partition {parts.get(pid, pid)!r})"
        if pid not in parts:
            rep.problem(f"{who}: unknown partition id {pid}")
            continue
        try:
            vec = vectors.get(pid, rowid)
        except CorruptionError as exc:
            rep.problem(f"{who}: {exc}")
            continue
        if vec is None:
            rep.problem(f"{who}: has no vector")
        elif dim is not None and vec.size != dim:
            rep.problem(f"{who}: vector has {vec.size} dimensions, store has {dim}")
        elif not np.isfinite(vec).all():
            rep.problem(f"{who}: vector holds NaN or infinity")
        if rowid in died:
            continue
        live[rowid] = (pid, rid)
        if rowid <= upto.get(pid, -1):
            segs = sealed.get(pid, empty)
            i = int(np.searchsorted(segs, rowid))
            if i >= segs.size or segs[i] != rowid:
                rep.problem(f"{who}: live, but in no sealed segment of its partition "
                            "(queries cannot find it)")
        elif not _in_ranges(rowid, tail.get(pid, [])):
            rep.problem(f"{who}: live, but neither sealed nor in the write-ahead log "
                        "(recovery cannot load it)")
    rep.checked["rows"] = n
    rep.checked["live_rows"] = len(live)
    return live


def _check_hist(st: Storage, txn: lmdb.Transaction[bytes], rep: _Report, parts: dict[int, str],
                live_rows: dict[int, tuple[int, str]], version: int) -> None:
    db = st.db("hist")
    if db is None:
        return
    newest: dict[int, int] = {}  # rowid of each id's newest entry -> pid (live ids only)
    current: tuple[int, str] | None = None
    last_val = b""
    records = 0

    def close_group() -> None:
        nonlocal records
        if current is not None and last_val:
            records += 1
            newest[u64(last_val)] = current[0]

    for key, val in txn.cursor(db=db):
        try:
            pid, rid, ver = split_hist_key(bytes(key))
        except Exception as exc:
            rep.problem(f"history key {bytes(key)!r} is unreadable: {exc}")
            continue
        if (pid, rid) != current:
            close_group()
            current = (pid, rid)
        last_val = bytes(val)
        if ver > version:
            rep.problem(f"history of {rid!r} has version {ver}, after the store's {version}")
        if val:
            row = txn.get(bytes(val), db=st.db("rows"))
            if row is None:
                continue  # compacted away (no retained version sees it)
            if decode_row(row)[:2] != (pid, rid):
                rep.problem(f"history of {rid!r} (partition {parts.get(pid, pid)!r}) points at "
                            f"row {u64(val)}, which holds another record")
    close_group()
    rep.checked["records"] = records
    for rowid, (pid, rid) in live_rows.items():
        if rowid not in newest:
            rep.problem(f"row {rowid} (id {rid!r}, partition {parts.get(pid, pid)!r}) is not "
                        "marked dead but is not its id's current row (the id would count twice)")
    for rowid in newest:
        if rowid not in live_rows:
            rep.problem(f"the current row {rowid} of a record is missing or marked dead")
