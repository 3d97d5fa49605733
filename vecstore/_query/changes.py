"""The change feed: ``store.changes(since, until, partitions)``.

Reads the ``chg`` table (version · pid · id → rowid or b"" for a deletion,
written with every write: :mod:`vecstore._engine.changelog`) from
``since + 1`` to ``until``, a batch at a time, each batch in one short read
transaction, so memory stays bounded and no read transaction is held while
the caller works.  The result is the same as reading one snapshot: entries
are immutable once committed, ``until`` is fixed when the call is made, and
``since`` is pinned (like an open snapshot) for as long as the iterator
lives, so compaction removes neither the entries nor the rows they name.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import cbor2
import lmdb
import numpy as np

from .._engine.changelog import ready
from .._engine.engine import Engine
from .._engine.versions import check_retained
from .._errors import InvalidArgumentError, InvalidArgumentTypeError, VersionNotRetainedError
from .._storage.env import Storage
from .._storage.keys import hist_prefix, k64, split_chg_key, split_hist_key, u64
from .._storage.records import Reader
from .._types import Change
from .._validate import check_partition

Entry = tuple[int, int, str, bytes]  # version, pid, id, rowid key or b""


class _Pin:
    """``since`` pinned against compaction until released (once)."""

    def __init__(self, engine: Engine, version: int) -> None:
        self._engine = engine
        self._version = version
        self._lock = threading.Lock()
        self._held = True
        engine.pins.pin(version)

    def release(self) -> None:
        with self._lock:
            if self._held:
                self._held = False
                self._engine.pins.unpin(self._version)


def _check_version(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidArgumentTypeError(f"{name} must be an int, got {type(v).__name__}")
    return v


def open_changes(engine: Engine, since: Any, until: Any = None,
                 partitions: Iterable[str] | None = None,
                 batch_size: int = 1000, last_only: bool = False) -> Iterator[Change]:
    """Every change after version ``since`` up to ``until`` (default: the
    latest), oldest first; ``partitions``: only those (None: all).
    ``last_only``: only each record's last change up to ``until`` (its state
    then: an incremental export names each record once).

    Raises at once (not at the first ``next``): ``VersionNotRetainedError``
    when ``since`` is older than retention or ``until`` does not exist yet."""
    since = _check_version("since", since)
    latest = engine.state.version
    until = latest if until is None else _check_version("until", until)
    if isinstance(partitions, str):
        partitions = [partitions]
    names = None if partitions is None else {check_partition(p) for p in partitions}
    for v in (since, until):
        if v > latest or v < 0:
            raise VersionNotRetainedError(f"version {v} does not exist (latest is {latest})")
    if until < since:
        raise InvalidArgumentError(f"until ({until}) is older than since ({since})")
    st = engine.storage
    pin = _Pin(engine, since)
    try:
        with st.read() as txn:
            check_retained(st, txn, since)
            indexed = ready(st, txn)
    except BaseException:
        pin.release()
        raise
    gen = _feed(st, engine.state.dim, since, until, names, batch_size, indexed, pin,
                last_only)
    weakref.finalize(gen, pin.release)  # also when never iterated
    return gen


def _feed(st: Storage, dim: int | None, since: int, until: int, names: set[str] | None,
          batch_size: int, indexed: bool, pin: _Pin, last_only: bool = False
          ) -> Iterator[Change]:
    try:
        if since == until:
            return
        batches = _indexed(st, since, until, names, batch_size) if indexed else \
            _from_history(st, since, until, names, batch_size)
        for batch in batches:
            with st.read() as txn:
                if last_only:
                    batch = _last_changes(st, txn, until, batch)
                out = _decode(st, txn, dim, batch)
            yield from out
    finally:
        pin.release()


def _pids(st: Storage, txn: lmdb.Transaction) -> dict[int, str]:
    db = st.db("parts")
    if db is None:
        return {}
    return {cbor2.loads(v)["pid"]: bytes(k).decode("utf-8") for k, v in txn.cursor(db=db)}


def _indexed(st: Storage, since: int, until: int, names: set[str] | None,
             batch_size: int) -> Iterator[list[Entry]]:
    """Batches of ``chg`` entries in (since, until], one read txn each."""
    resume = k64(since + 1)
    end = k64(until + 1)
    scan_limit = max(batch_size * 8, 1024)  # entries of other partitions skipped per txn
    while True:
        batch: list[Entry] = []
        finished = True
        with st.read() as txn:
            pids = None if names is None else {p for p, n in _pids(st, txn).items() if n in names}
            with txn.cursor(db=st.db("chg")) as cur:
                ok = cur.set_range(resume)
                scanned = 0
                while ok:
                    key = bytes(cur.key())
                    if key[:8] >= end:
                        break
                    if len(batch) >= batch_size or scanned >= scan_limit:
                        resume, finished = key, False
                        break
                    scanned += 1
                    ver, pid, rid = split_chg_key(key)
                    if pids is None or pid in pids:
                        batch.append((ver, pid, rid, bytes(cur.value())))
                    ok = cur.next()
        if batch:
            yield batch
        if finished:
            return


def _from_history(st: Storage, since: int, until: int, names: set[str] | None,
                  batch_size: int) -> Iterator[list[Entry]]:
    """A store whose ``chg`` table is not filled yet (written before it
    existed, opened read-only before a writer backfilled it): the entries
    from ``hist``, sorted -- memory in proportion to the changes read."""
    found: list[Entry] = []
    with st.read() as txn:
        pids = _pids(st, txn)
        db = st.db("hist")
        if db is not None:
            for key, val in txn.cursor(db=db):
                pid, rid, ver = split_hist_key(key)
                if since < ver <= until and (names is None or pids.get(pid) in names):
                    found.append((ver, pid, rid, bytes(val)))
    found.sort(key=lambda e: (e[0], e[1], e[2].encode("utf-8")))
    for i in range(0, len(found), batch_size):
        yield found[i:i + batch_size]


def _last_changes(st: Storage, txn: lmdb.Transaction[bytes], until: int,
                  batch: list[Entry]) -> list[Entry]:
    """The entries that are their record's newest history entry <= until."""
    out = []
    with txn.cursor(db=st.db("hist")) as cur:
        for e in batch:
            prefix = hist_prefix(e[1], e[2])
            ok = cur.prev() if cur.set_range(prefix + k64(until + 1)) else cur.last()
            if ok and bytes(cur.key()) == prefix + k64(e[0]):
                out.append(e)
    return out


def _decode(st: Storage, txn: lmdb.Transaction[bytes], dim: int | None,
            batch: list[Entry]) -> list[Change]:
    pids = _pids(st, txn)
    reader = Reader(st, txn)
    ups = [i for i, e in enumerate(batch) if e[3]]
    metas: dict[int, dict[str, Any]] = {}
    vecs: dict[int, np.ndarray] = {}
    if ups:
        rowids = [u64(batch[i][3]) for i in ups]
        for i, row in zip(ups, reader.rows(rowids)):
            metas[i] = row[2]
        by_pid: dict[int, list[int]] = {}
        for i in ups:
            by_pid.setdefault(batch[i][1], []).append(i)
        for pid, idx in by_pid.items():
            mat = reader.vectors(pid, np.fromiter((u64(batch[i][3]) for i in idx), np.int64,
                                                  len(idx)), dim or 0)
            for j, i in enumerate(idx):
                vecs[i] = mat[j]
    out = []
    for i, (ver, pid, rid, val) in enumerate(batch):
        part = pids.get(pid, f"#{pid}")
        if val:
            out.append(Change(ver, "upsert", part, rid, vecs[i], metas[i]))
        else:
            out.append(Change(ver, "delete", part, rid, None, None))
    return out
