"""The LMDB environment: sub-databases, the writer lock, map
growth, and the gate that keeps readers out while the map is resized or the
environment closed.

LMDB is the source of truth.  Sub-databases (key codecs: ``keys.py``):

========== ============================= =====================================
name       key                           value
========== ============================= =====================================
meta       ascii name                    CBOR (config, version, counters)
parts      partition name (utf-8)        CBOR {"pid": int, "live": bool}
rows       rowid (u64 BE)                pid, id, CBOR metadata (records.py)
vecs       rowid (u64 BE)                raw float32 vector bytes (unsealed rows)
vblocks    pid (u32) last rowid (u64)    sealed rows' vectors, packed (_vectors.py)
hist       pid(u32) id 0x00 version(u64) rowid (u64 BE), or b"" = deleted
died       rowid (u64 BE)                version (u64 BE) that ended the row
versions   version (u64 BE)              CBOR {"t", "m", "tag", "ops"}
chg        version (u64) pid (u32) id    as ``hist`` (the change feed by version)
tags       tag (utf-8)                   version (u64 BE)
segs       segment id (u64 BE)           CBOR manifest entry
segrows    segment id (u64 BE)           rowids (i64 LE) then born (i64 LE)
ix         field id · value · rowid      b"" (metadata indexes, _metaindex/)
tdocs      field id · rowid              the row's BM25 postings: length, terms, tfs
sparse     rowid (u64 BE)                the row's sparse vector (keys.py)
wal        (owned by the ``wal`` package)
========== ============================= =====================================
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cbor2
import lmdb

from .._errors import (
    StorageError,
    StorageFullError,
    StoreClosedError,
    StoreLockedError,
    StoreNotFoundError,
)
from .vacuum import hold_presence, maybe_vacuum, release_presence, share_presence

log = logging.getLogger("vecstore")
DB_NAMES = (
    b"meta", b"parts", b"rows", b"vecs", b"hist", b"died",
    b"versions", b"tags", b"segs", b"segrows", b"ix", b"vblocks",
    b"tdocs", b"sparse", b"chg",
)
INITIAL_MAP_SIZE = 64 << 20
MAX_DBS = 32


class ReadGate:
    """Many readers, or one exclusive holder (map resize, close)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._exclusive = False
        self.closed = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            if self.closed:
                raise StoreClosedError("the store is closed")
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


# One lmdb.Environment per directory per process: LMDB forbids opening the
# same environment twice in one process.
_ENVS: dict[str, tuple[lmdb.Environment, int]] = {}
_ENVS_LOCK = threading.Lock()


def _acquire_env(path: str, sync: bool, create: bool) -> lmdb.Environment:
    with _ENVS_LOCK:
        if path in _ENVS:
            env, refs = _ENVS[path]
            _ENVS[path] = (env, refs + 1)
            return env
        writable = os.access(path, os.W_OK)
        size = max(INITIAL_MAP_SIZE, _file_size(os.path.join(path, "data.mdb")) * 2)
        # durability="relaxed" is MDB_NOMETASYNC, not MDB_NOSYNC (power-cut
        # harness, bug P2): with no fsync at all the kernel may write LMDB's
        # meta page back before the pages it points to, and a power cut then
        # leaves a corrupt file.  NOMETASYNC fsyncs a commit's pages before
        # its meta page is written (the next commit's fsync carries that):
        # a cut loses the last commits, never the file.
        env = lmdb.open(
            path, map_size=size, max_dbs=MAX_DBS, subdir=True, create=create,
            readonly=not writable, sync=True, metasync=sync, lock=True,
            max_readers=1024, readahead=False,
        )
        _ENVS[path] = (env, 1)
        return env


def _release_env(path: str) -> None:
    with _ENVS_LOCK:
        env, refs = _ENVS[path]
        if refs > 1:
            _ENVS[path] = (env, refs - 1)
            return
        del _ENVS[path]
    env.close()


def _file_size(p: str) -> int:
    try:
        return os.path.getsize(p)
    except OSError:
        return 0


class Storage:
    """An open store directory: the env, its sub-dbs, and the writer lock."""

    def __init__(self, path: str, *, read_only: bool, sync: bool) -> None:
        self.path = os.path.abspath(path)
        self.read_only = read_only
        self.gate = ReadGate()
        self._lock_fd: int | None = None
        self._presence_fd: int | None = None
        if read_only:
            if not os.path.exists(os.path.join(self.path, "data.mdb")):
                raise StoreNotFoundError(f"no vecstore at {self.path!r}")
            self._presence_fd = hold_presence(self.path, exclusive=False)[0]
        else:
            os.makedirs(os.path.join(self.path, "segments"), exist_ok=True)
            self._lock_fd = os.open(os.path.join(self.path, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._lock_fd)
                self._lock_fd = None
                raise StoreLockedError(
                    f"{self.path!r} is open for writing elsewhere; "
                    "open it with read_only=True to read beside that writer"
                ) from None
            self._presence_fd, alone = hold_presence(self.path, exclusive=True)
            if alone:
                try:
                    with _ENVS_LOCK:
                        if self.path not in _ENVS:
                            maybe_vacuum(self.path, MAX_DBS)
                except (lmdb.Error, OSError) as exc:
                    log.warning("vecstore: not rewriting %s compactly: %s", self.path, exc)
                finally:
                    share_presence(self._presence_fd)  # type: ignore[arg-type]
        try:
            self.env = _acquire_env(self.path, sync, create=not read_only)
        except BaseException:
            self._unlock()
            raise
        self._env_held = True
        self.dbs: dict[str, Any] = {}
        # Handles are opened in a write transaction whenever the env allows
        # it (a handle opened in a read transaction can be recycled by LMDB
        # once another handle is opened); a read-only store creates nothing.
        self.open_handles(create=not read_only)

    def open_handles(self, create: bool) -> None:
        """Open the sub-database handles not open yet.

        On a writable env, in one write transaction.  On a read-only env,
        each with ``txn=None``: py-lmdb hands out the slot of a handle
        opened inside an explicit read transaction again afterwards, so two
        names would share one handle.
        """
        names = [n for n in DB_NAMES if self.dbs.get(n.decode()) is None]
        if self.env.flags()["readonly"]:
            for name in names:
                try:
                    self.dbs[name.decode()] = self.env.open_db(name, create=False)
                except lmdb.NotFoundError:
                    self.dbs[name.decode()] = None
            return
        with self.env.begin(write=True) as txn:
            for name in names:
                try:
                    self.dbs[name.decode()] = self.env.open_db(name, txn=txn, create=create)
                except lmdb.NotFoundError:
                    self.dbs[name.decode()] = None

    # -- access -----------------------------------------------------------

    def db(self, name: str) -> Any:
        return self.dbs[name]

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction[bytes]]:
        """A read transaction, held under the shared side of the gate."""
        with self.gate.shared():
            try:
                txn = self.env.begin(buffers=False)
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)
                txn = self.env.begin(buffers=False)
            try:
                yield txn
            finally:
                txn.abort()

    @contextmanager
    def begin_buffers(self) -> Iterator[lmdb.Transaction | None]:
        """A read transaction whose values are buffers into the map, for a
        caller already inside :meth:`read` (so under the gate); None when
        another process has grown the map since that transaction began (the
        map cannot be resized while the caller's transaction is open)."""
        try:
            txn = self.env.begin(buffers=True)
        except lmdb.MapResizedError:
            yield None
            return
        try:
            yield txn
        finally:
            txn.abort()

    def write(self, fn: Any) -> Any:
        """Run ``fn(txn)`` in one write transaction and commit it.

        Grows the map and retries on MapFullError (with no transaction
        open); maps disk-full and I/O errors to our own errors.  Must be
        called on one thread per transaction (the writer's).
        """
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    result = fn(txn)
                return result
            except lmdb.MapFullError:
                self.grow()
            except lmdb.Error as exc:
                raise self._map_error(exc) from exc
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                    raise StorageFullError(exc.errno, f"disk full: {exc}") from exc
                raise

    def _out_of_room(self) -> bool:
        """Is the disk (or the process's file-size limit) about full?"""
        import resource
        import shutil

        try:
            if shutil.disk_usage(self.path).free < (16 << 20):
                return True
            soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            size = _file_size(os.path.join(self.path, "data.mdb"))
            return soft != resource.RLIM_INFINITY and size + (16 << 20) > soft
        except OSError:
            return False

    def _map_error(self, exc: lmdb.Error) -> Exception:
        text = str(exc)
        for code, cls in ((errno.ENOSPC, StorageFullError), (errno.EFBIG, StorageFullError),
                          (errno.EDQUOT, StorageFullError)):
            if os.strerror(code) in text or "No space" in text:
                return cls(code, f"disk full while writing: {text}")
        if isinstance(exc, lmdb.DiskError) or "Input/output" in text:
            if self._out_of_room():  # LMDB reports a short write as EIO
                return StorageFullError(errno.ENOSPC, f"disk full while writing: {text}")
            return StorageError(errno.EIO, f"I/O error while writing: {text}")
        return StorageError(0, f"LMDB error while writing: {text}")

    def grow(self) -> None:
        with self.gate.exclusive():
            new = self.env.info()["map_size"] * 2
            self.env.set_mapsize(new)

    def get_meta(self, txn: lmdb.Transaction, key: str, default: Any = None) -> Any:
        db = self.dbs["meta"]
        if db is None:
            return default
        raw = txn.get(key.encode(), db=db)
        return default if raw is None else cbor2.loads(raw)

    def put_meta(self, txn: lmdb.Transaction, key: str, value: Any) -> None:
        txn.put(key.encode(), cbor2.dumps(value), db=self.dbs["meta"])

    def bytes_on_disk(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.path):
            for f in files:
                total += _file_size(os.path.join(root, f))
        return total

    def segment_path(self, name: str) -> str:
        return os.path.join(self.path, "segments", name)

    # -- shutdown -----------------------------------------------------------

    def _unlock(self) -> None:
        release_presence(self._presence_fd)
        self._presence_fd = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        with self.gate.exclusive():
            if self.gate.closed:
                return
            self.gate.closed = True
            if self._env_held:
                self._env_held = False
                _release_env(self.path)
        self._unlock()
