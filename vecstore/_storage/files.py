"""File-system helpers: durable writes (temp -> fsync -> rename -> fsync
dir), CRCs, quiet removal, and the mapping of OS errors to vecstore's."""

from __future__ import annotations

import errno
import os
import shutil
import zlib
from collections.abc import Callable

from .._errors import StorageError, StorageFullError

FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def file_crc(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def fsync_path(path: str) -> None:
    """fsync a file or a directory by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def disk_nearly_full(path: str) -> bool:
    try:
        return shutil.disk_usage(os.path.dirname(path) or ".").free < (16 << 20)
    except OSError:
        return False


def write_durably(path: str, write: Callable[[str], None], what: str = "a segment") -> int:
    """Have ``write(tmp)`` create a new file, then fsync it, rename it to
    ``path`` and fsync the directory; return the file's CRC32.  A failure
    leaves nothing at ``path`` and raises StorageFullError / StorageError."""
    tmp = path + ".tmp"
    try:
        write(tmp)
        fsync_path(tmp)
        crc = file_crc(tmp)
    except OSError as exc:
        remove_quietly(tmp)
        if exc.errno in FULL_ERRNOS:
            raise StorageFullError(exc.errno, f"disk full writing {what}: {exc}") from exc
        raise StorageError(exc.errno or errno.EIO, f"I/O error writing {what}: {exc}") from exc
    os.replace(tmp, path)
    fsync_path(os.path.dirname(path))
    return crc


DURABILITY_FILE = "durability"


def stored_durability(path: str) -> str:
    """The durability the store was created with.  Kept in a one-word file
    beside LMDB because LMDB's sync flag must be chosen before it opens."""
    try:
        with open(os.path.join(path, DURABILITY_FILE)) as f:
            word = f.read().strip()
    except OSError:
        return "sync"
    return word if word in ("sync", "relaxed") else "sync"


def write_durability(path: str, word: str) -> None:
    """Write the ``durability`` file of a store being created, then make the
    store's names durable (power-cut harness, bug P1): LMDB creates
    ``data.mdb`` and vecstore ``segments/`` and the store directory itself
    without ever syncing a directory, so on a power cut a new store could
    vanish with every write it had acknowledged.  Called once, right after
    the store's first commit and before any write is acknowledged."""
    tmp = os.path.join(path, DURABILITY_FILE + ".tmp")
    with open(tmp, "w") as f:
        f.write(word + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(path, DURABILITY_FILE))
    sync_names(path)


def sync_names(path: str) -> None:
    """fsync ``path`` (a directory: its entries) and every directory above it
    up to its file system's mount point (each one's entry for the next), so
    a directory tree just created by ``makedirs`` survives a power cut."""
    path = os.path.abspath(path)
    fsync_path(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        try:
            fsync_path(parent)
        except OSError:  # an ancestor we may not open: it existed before us
            break
        path = parent
