"""Build and drive the LD_PRELOAD fault injector (``_faultshim.c``).

The shim wraps ``write``/``pwrite``/``writev``/``fsync``/``fdatasync`` in a
child process started with ``LD_PRELOAD``; Python in that child arms it
through ctypes.  It is how the harness makes LMDB's own writes and fsyncs
(C code, out of Python's reach) and hnswlib's ``save_index`` fail with EIO
or ENOSPC.  Needs a C compiler; without one those scenarios are skipped
and reported as not covered.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SRC = Path(__file__).with_name("_faultshim.c")
WRITES = 1
SYNCS = 2


def build() -> str | None:
    """Compile the shim (cached per source mtime); None if no compiler."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    out_dir = Path(tempfile.gettempdir()) / "vecstore-stress-shim"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"faultshim-{int(SRC.stat().st_mtime)}-{os.getuid()}.so"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(SRC), "-ldl"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return None
        os.replace(tmp, out)
    return str(out)


class Shim:
    """The shim as loaded in this (child) process."""

    def __init__(self) -> None:
        path = os.environ.get("STRESS_SHIM")
        if not path or path not in os.environ.get("LD_PRELOAD", ""):
            raise RuntimeError("the fault shim is not preloaded in this process")
        lib = ctypes.CDLL(path)
        lib.stress_fault_arm.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                         ctypes.c_long, ctypes.c_int]
        lib.stress_fault_hits.restype = ctypes.c_long
        self.lib = lib

    def arm(self, kinds: int, match: str, err: int = errno.EIO, skip: int = 0,
            once: bool = False) -> None:
        self.lib.stress_fault_arm(kinds, match.encode(), err, skip, int(once))

    def disarm(self) -> None:
        self.lib.stress_fault_disarm()

    @property
    def hits(self) -> int:
        return int(self.lib.stress_fault_hits())
