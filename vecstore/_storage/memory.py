"""Give back memory a bulk load used and no longer needs (Linux; a no-op
elsewhere).

Opening a store reads every sealed row's vector from LMDB's memory map to
put it back into its HNSW index.  Afterwards the process still maps those
file pages (clean page cache, counted in its resident size though nothing
needs them) and glibc keeps the freed scratch buffers of the load.  Both
are released here: ``madvise(MADV_DONTNEED)`` on the map of ``data.mdb``
(pages of a shared, read-only file map are simply dropped from this
process; the next read faults them back from the page cache) and
``malloc_trim(0)``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger("vecstore")
MADV_DONTNEED = 4
_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        except (OSError, AttributeError):
            return None
    return _libc


def release_after_load(data_file: str) -> None:
    libc = _lib()
    if libc is None:
        return
    target = os.path.realpath(data_file)
    try:
        with open("/proc/self/maps") as f:
            maps = [line.split() for line in f]
    except OSError:
        return
    for parts in maps:
        # only read-only shared maps: LMDB maps data.mdb that way unless WRITEMAP
        if len(parts) >= 6 and parts[-1] == target and parts[1].startswith("r--s"):
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if libc.madvise(lo, hi - lo, MADV_DONTNEED) != 0:
                log.debug("madvise on %s failed: errno %d", target, ctypes.get_errno())
    try:
        libc.malloc_trim(0)
    except AttributeError:  # not glibc
        pass
