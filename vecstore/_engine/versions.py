"""Versions: retention, listing, history, tags and rollback.

Every committed write call is a version.  Retention (by count and/or age)
decides the *floor*: the oldest version still readable.  Versions below the
floor raise ``VersionNotRetainedError`` at once; ``compact()`` then reclaims
the rows only they could see.  Tags name versions; a rollback is itself a
new version whose state equals the target's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cbor2
import lmdb
import numpy as np

from .._errors import InvalidArgumentError, InvalidArgumentTypeError, VersionNotRetainedError
from .._metaindex.textstore import read_sparse
from .._storage.env import Storage
from .._storage.keys import hist_prefix, k64, pid_prefix, split_hist_key, u64
from .._storage.records import decode_row, row_meta_cbor
from .._storage.vectors import VectorTable
from .._types import RecordVersion, VersionInfo
from .txn import TxnCtx, WriteRequest

DEFAULT_RETENTION: dict[str, Any] = {"versions": 1000, "seconds": None}


def retention(st: Storage, txn: lmdb.Transaction) -> dict[str, Any]:
    return st.get_meta(txn, "retention", DEFAULT_RETENTION)  # type: ignore[no-any-return]


def floor_version(st: Storage, txn: lmdb.Transaction, now: float | None = None) -> int:
    """The oldest retained version (0 = the empty start is still readable)."""
    latest = st.get_meta(txn, "version", 0)
    floor = st.get_meta(txn, "floor", 0)
    db = st.db("versions")
    if latest == 0 or db is None:
        return floor  # type: ignore[no-any-return]
    ret = retention(st, txn)
    with txn.cursor(db=db) as cur:
        n = ret.get("versions")
        if n:
            cur.last()
            for _ in range(n - 1):
                if not cur.prev():
                    break
            else:
                floor = max(floor, u64(cur.key()))
        secs = ret.get("seconds")
        if secs is not None:
            cutoff = (time.time() if now is None else now) - secs
            newest_old = None
            for key, val in cur.iternext(keys=True, values=True) if cur.first() else ():
                if cbor2.loads(val)["t"] >= cutoff:
                    break
                newest_old = u64(key)
            if newest_old is not None:
                floor = max(floor, min(newest_old + 1, latest))
    return floor  # type: ignore[no-any-return]


def check_retained(st: Storage, txn: lmdb.Transaction, version: int) -> None:
    latest = st.get_meta(txn, "version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidArgumentTypeError(f"version must be an int, got {type(version).__name__}")
    if version > latest or version < 0:
        raise VersionNotRetainedError(f"version {version} does not exist (latest is {latest})")
    floor = floor_version(st, txn)
    if version < floor:
        raise VersionNotRetainedError(
            f"version {version} is older than the retained history (oldest kept: {floor}); "
            "see set_retention()")


def resolve_tag(st: Storage, txn: lmdb.Transaction, tag: str) -> int:
    db = st.db("tags")
    try:
        key = check_tag(tag).encode("utf-8")
    except (InvalidArgumentError, InvalidArgumentTypeError):
        raise VersionNotRetainedError(f"no version is tagged {tag!r}") from None
    raw = None if db is None else txn.get(key, db=db)
    if raw is None:
        raise VersionNotRetainedError(f"no version is tagged {tag!r}")
    return u64(raw)


def tags_by_version(st: Storage, txn: lmdb.Transaction) -> dict[int, str]:
    db = st.db("tags")
    if db is None:
        return {}
    return {u64(v): bytes(k).decode() for k, v in txn.cursor(db=db)}


def list_versions(st: Storage, txn: lmdb.Transaction) -> list[VersionInfo]:
    floor = floor_version(st, txn)
    tags = tags_by_version(st, txn)
    db = st.db("versions")
    out: list[VersionInfo] = []
    if db is None:
        return out
    with txn.cursor(db=db) as cur:
        if cur.set_range(k64(floor)):
            for key, val in cur:
                v = u64(key)
                d = cbor2.loads(val)
                out.append(VersionInfo(v, d["t"], d.get("m"), tags.get(v), d.get("ops", 0)))
    return out


def history(st: Storage, txn: lmdb.Transaction, pid: int, rid: str) -> list[RecordVersion]:
    floor = floor_version(st, txn)
    prefix = hist_prefix(pid, rid)
    kinds = st.db("versions")
    vectors = VectorTable(st, txn, None)
    out = []
    with txn.cursor(db=st.db("hist")) as cur:
        if not cur.set_range(prefix):
            return out
        for key, val in cur:
            if not key.startswith(prefix) or len(key) != len(prefix) + 8:
                break
            v = split_hist_key(key)[2]
            if v < floor:
                continue
            info = txn.get(k64(v), db=kinds)
            by_rollback = bool(info) and cbor2.loads(info).get("k") == "rollback"
            if not val:
                out.append(RecordVersion(v, "rollback" if by_rollback else "delete", None, None))
                continue
            raw_row = txn.get(val, db=st.db("rows"))
            op = "rollback" if by_rollback else "upsert"
            out.append(RecordVersion(
                v, op, vectors.get(pid, u64(val)),
                None if raw_row is None else decode_row(raw_row)[2]))
    return out


def diff_ids(cur: lmdb.Cursor, pid: int, target: int
             ) -> Iterator[tuple[str, bytes | None, bytes | None]]:
    """For every id ever in partition ``pid``: (id, rowid key at ``target``,
    rowid key now), None where absent or deleted."""
    prefix = pid_prefix(pid)
    if not cur.set_range(prefix):
        return
    current: str | None = None
    at: bytes | None = None
    now: bytes | None = None
    for key, val in cur:
        if not key.startswith(prefix):
            break
        _p, rid, ver = split_hist_key(key)
        if rid != current:
            if current is not None:
                yield current, at, now
            current, at, now = rid, None, None
        now = bytes(val) or None
        if ver <= target:
            at = now
    if current is not None:
        yield current, at, now


@dataclass
class Rollback(WriteRequest):
    partition: str | None  # None: every partition
    target: int
    message: str | None = None
    always_version = True

    def apply(self, ctx: TxnCtx) -> Any:
        assert ctx.cur is not None
        ctx.cur.kind = "rollback"
        txn = ctx.txn
        st = ctx.storage
        # ctx.version is the version being made; the target must be older.
        if self.target >= ctx.version:
            raise VersionNotRetainedError(
                f"cannot roll back to version {self.target}: the latest is {ctx.version - 1}")
        check_retained(st, txn, self.target)
        names = [self.partition] if self.partition is not None else \
            sorted(set(ctx.mem.parts) | set(ctx.new_parts))
        for name in names:
            pid = ctx.pid_for(name, create=False)
            if pid is not None:
                self._one(ctx, pid, name)
        return ctx.version

    def _one(self, ctx: TxnCtx, pid: int, name: str) -> None:
        txn = ctx.txn
        restore: list[tuple[str, bytes]] = []
        delete: list[str] = []
        with txn.cursor(db=ctx.db_hist) as cur:
            for rid, at, now in diff_ids(cur, pid, self.target):
                if at == now:
                    continue
                if at is None:
                    delete.append(rid)
                else:
                    restore.append((rid, at))
        if restore:
            vecs = VectorTable(ctx.storage, txn, ctx.mem.dim).require(
                pid, np.fromiter((u64(key) for _rid, key in restore), np.int64, len(restore)))
            metas = []
            for _rid, key in restore:
                metas.append(row_meta_cbor(txn.get(key, db=ctx.db_rows)))
            ctx.pid_for(name, create=True)  # revives a dropped partition
            sparse = [read_sparse(ctx.storage, txn, u64(key)) for _rid, key in restore]
            ctx.upsert_rows(pid, [rid for rid, _k in restore], vecs, metas, sparse=sparse)
        if delete:
            ctx.delete_ids(pid, delete)


@dataclass
class Tag(WriteRequest):
    name: str
    message: str | None = None
    partition: str = "default"

    def apply(self, ctx: TxnCtx) -> Any:
        ctx.abandon()  # a tag names the current version; it makes none
        v = ctx.version
        ctx.txn.put(self.name.encode(), k64(v), db=ctx.storage.db("tags"))
        return v


@dataclass
class SetRetention(WriteRequest):
    versions: int | None
    seconds: float | None
    message: str | None = None
    partition: str = "default"

    def apply(self, ctx: TxnCtx) -> Any:
        ctx.abandon()
        st = ctx.storage
        # A version that has left retention stays gone, even if retention grows.
        st.put_meta(ctx.txn, "floor", floor_version(st, ctx.txn))
        st.put_meta(ctx.txn, "retention", {"versions": self.versions, "seconds": self.seconds})
        return ctx.version


class Pins:
    """Versions open snapshots are pinned at: compaction keeps what they see."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pins: dict[int, int] = {}  # version -> open snapshots pinned there

    def pin(self, version: int) -> None:
        with self._lock:
            self._pins[version] = self._pins.get(version, 0) + 1

    def unpin(self, version: int) -> None:
        with self._lock:
            n = self._pins.get(version, 0) - 1
            if n > 0:
                self._pins[version] = n
            else:
                self._pins.pop(version, None)

    def floor(self, st: Storage) -> int:
        """Rows that died at or before this version are invisible to every
        retained version and to every open snapshot."""
        with st.read() as txn:
            floor = floor_version(st, txn)
        with self._lock:
            pinned = min(self._pins, default=floor)
        return min(floor, pinned)


def check_tag(name: Any) -> str:
    if not isinstance(name, str):
        raise InvalidArgumentTypeError(f"a tag is a str, got {type(name).__name__}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"tag {name!r} is not valid Unicode") from None
    if not 0 < size <= 400:
        raise InvalidArgumentError(f"a tag is a non-empty str of at most 400 bytes, got {name!r}")
    return name


def make_tag(name: Any) -> Tag:
    return Tag(check_tag(name))


def make_retention(versions: Any, seconds: Any) -> SetRetention:
    if versions is not None and (isinstance(versions, bool) or not isinstance(versions, int)
                                 or versions < 1):
        raise InvalidArgumentError(f"versions must be a positive int or None, got {versions!r}")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not seconds >= 0):
        raise InvalidArgumentError(
            f"seconds must be a non-negative number or None, got {seconds!r}")
    return SetRetention(versions, None if seconds is None else float(seconds))


def make_rollback(partition: str | None, version: Any, message: Any) -> Rollback:
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidArgumentTypeError(f"version must be an int, got {type(version).__name__}")
    if message is not None and not isinstance(message, str):
        raise InvalidArgumentTypeError(
            f"message must be a str or None, got {type(message).__name__}")
    return Rollback(partition, version, message)
