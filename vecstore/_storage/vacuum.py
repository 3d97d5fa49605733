"""Shrinking ``data.mdb`` once compaction has freed most of it.

LMDB reuses the pages compaction frees but never gives them back to the
file system.  When a writer opens a store that nobody else has open and at
least half of ``data.mdb`` (and 64 MB or more) is free pages, the file is
rewritten compactly before the store is used: ``env.copy(compact=True)``
into ``vacuum.tmp/``, fsync, rename over ``data.mdb``, fsync the directory.
A kill at any point leaves either the old file or the complete new one
(and a stray ``vacuum.tmp/`` that the next open removes); LMDB rebuilds its
lock file from the new file because the next opener is alone.

"Nobody else": every process that opens a store holds a shared ``flock`` on
its ``PRESENCE`` file for as long as it has it open; the writer vacuums
only if it can take that lock exclusively (and this process has no other
handle on the store).  A read-only open that arrives meanwhile waits.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil

import lmdb

from .files import fsync_path

log = logging.getLogger("vecstore")

PRESENCE = "PRESENCE"
TMP_DIR = "vacuum.tmp"
MIN_BYTES = 64 << 20  # smaller files are not worth rewriting
FREE_SHARE = 0.5  # rewrite when at least this share of the file is free pages


def hold_presence(path: str, exclusive: bool) -> tuple[int | None, bool]:
    """Open ``PRESENCE`` and lock it: (fd, whether the exclusive lock was
    taken).  Shared locks wait; the exclusive one is only tried."""
    name = os.path.join(path, PRESENCE)
    try:
        fd = os.open(name, os.O_RDONLY)
    except FileNotFoundError:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError:  # a read-only directory: no writer can vacuum it either
            return None, False
    except OSError:
        return None, False
    if exclusive:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd, True
        except BlockingIOError:
            pass
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd, False


def share_presence(fd: int) -> None:
    """Turn the exclusive lock into a shared one."""
    fcntl.flock(fd, fcntl.LOCK_SH)


def release_presence(fd: int | None) -> None:
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def free_share(env: lmdb.Environment) -> float:
    """Share of the file's pages that no database uses."""
    total = env.info()["last_pgno"] + 1
    used = 2  # meta pages
    stats = [env.stat()]
    with env.begin(write=True) as txn:  # (handles are opened in write txns)
        for name in [bytes(k) for k, _v in txn.cursor()]:
            try:
                stats.append(txn.stat(env.open_db(name, txn=txn, create=False)))
            except lmdb.Error:  # a plain key, not a database
                pass
    for st in stats:
        used += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
    return max(0.0, 1.0 - used / total)


def maybe_vacuum(path: str, max_dbs: int) -> bool:
    """Rewrite ``data.mdb`` compactly if it is worth it.  The caller holds
    the writer lock and the exclusive presence lock, and has no
    environment open on ``path``."""
    shutil.rmtree(os.path.join(path, TMP_DIR), ignore_errors=True)
    data = os.path.join(path, "data.mdb")
    try:
        size = os.path.getsize(data)
    except OSError:
        return False
    if size < MIN_BYTES:
        return False
    env = lmdb.open(path, map_size=2 * size, max_dbs=max_dbs, subdir=True, create=False,
                    lock=True, readahead=False)
    try:
        share = free_share(env)
        if share < FREE_SHARE:
            return False
        tmp = os.path.join(path, TMP_DIR)
        os.mkdir(tmp)
        env.copy(tmp, compact=True)
        fsync_path(os.path.join(tmp, "data.mdb"))
    finally:
        env.close()
    new_size = os.path.getsize(os.path.join(path, TMP_DIR, "data.mdb"))
    os.replace(os.path.join(path, TMP_DIR, "data.mdb"), data)
    fsync_path(path)
    shutil.rmtree(os.path.join(path, TMP_DIR), ignore_errors=True)
    log.info("vecstore: %s rewritten compactly, %d -> %d bytes (%.0f%% was free)",
             data, size, new_size, share * 100)
    return True
