"""Parsing in a child process, so that parsing (the bulk of an import's CPU
time: JSON floats) runs on one core while the importing process checks and
commits on another.

``open_reader_subprocess`` yields exactly what :func:`open_reader` yields,
in the same order, except that clean chunks arrive with their vectors
already converted: ``SourceRecord.vector`` is then a float32 numpy row.
The child is a plain ``python -c`` process running :func:`_child`
(not ``multiprocessing``, which would re-run an unguarded ``__main__``);
it writes length-prefixed pickle frames to its stdout, blocking when the
parent falls behind (so memory stays bounded by a chunk and the pipe), and
it dies with the parent: when the parent is gone its next write fails.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import Generator
from typing import IO, Any, BinaryIO

import numpy as np

from .._errors import MigrationError
from ._readers import SourceRecord

#: Files at least this big are parsed in a child process when there are at
#: least MIN_CPUS CPUs.  Below that size the child's start-up is not worth
#: it; with fewer CPUs the child competes with the committing process and
#: the background index builds (measured: slower on 2 busy cores).
MIN_BYTES = 16 << 20
MIN_CPUS = 4
CHUNK = 500
_LEN = struct.Struct(">Q")


def parallel_worthwhile(size: int) -> bool:
    return size >= MIN_BYTES and (os.cpu_count() or 1) >= MIN_CPUS and bool(sys.executable)


def _pack(recs: list[SourceRecord]) -> tuple[Any, ...]:
    """A frame for a chunk, as columns (cheap to pickle); when the clean
    records' vectors are well formed they travel as one float32 matrix."""
    vecs: list[Any] = [r.vector for r in recs]
    idx = [i for i, r in enumerate(recs) if r.error is None and type(r.vector) is list]
    mat = None
    if idx:
        try:
            m = np.array([vecs[i] for i in idx])
        except (ValueError, TypeError, OverflowError):
            m = None
        if m is not None and m.ndim == 2 and m.shape[1] and m.dtype.kind in "biuf":
            with np.errstate(over="ignore", invalid="ignore"):
                mat = m.astype(np.float32)
            for i in idx:
                vecs[i] = None
    return ("recs", [r.position for r in recs], [r.id for r in recs], vecs,
            [r.metadata for r in recs], [r.document for r in recs], [r.error for r in recs],
            [r.excerpt for r in recs], idx if mat is not None else None, mat)


def _send(out: BinaryIO, frame: tuple[Any, ...]) -> None:
    data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_LEN.pack(len(data)))
    out.write(data)
    out.flush()


def _child(argv: list[str]) -> int:
    from ._formats import open_reader

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides
    fmt, path, start, vector_name = argv[0], argv[1], int(argv[2]), argv[3] or None
    reject_malformed = argv[4] == "1"
    out = sys.stdout.buffer
    recs: list[SourceRecord] = []
    try:
        try:
            for rec in open_reader(fmt, path, start=start, vector_name=vector_name,
                                   reject_malformed=reject_malformed):
                recs.append(rec)
                if len(recs) >= CHUNK:
                    _send(out, _pack(recs))
                    recs = []
            if recs:
                _send(out, _pack(recs))
            _send(out, ("end",))
        except MigrationError as exc:
            if recs:
                _send(out, _pack(recs))
            _send(out, ("error", str(exc)))
    except (BrokenPipeError, OSError):
        os._exit(0)  # the parent went away
    return 0


def _read_exact(f: IO[bytes], n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def open_reader_subprocess(fmt: str, path: str, start: int, vector_name: str | None,
                           reject_malformed: bool = False) -> ChildReader:
    """Like ``open_reader(fmt, path, start=start, vector_name=...,
    reject_malformed=...)``, parsed in a child process.  Raises OSError if
    the child cannot be started."""
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([pkg_root] + ([env["PYTHONPATH"]]
                                                      if env.get("PYTHONPATH") else []))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    errlog = tempfile.TemporaryFile()  # noqa: SIM115 - the child's stderr; ChildReader closes it
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from vecstore.migration._subreader import "
             "_child; sys.exit(_child(sys.argv[1:]))", fmt, path, str(start), vector_name or "",
             "1" if reject_malformed else "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errlog, env=env,
            bufsize=1 << 20)
    except BaseException:
        errlog.close()
        raise
    return ChildReader(proc, errlog)


class ChildReader:
    """Iterator over the child's records; ``close()`` (also on garbage
    collection) ends the child whether or not iteration started."""

    def __init__(self, proc: subprocess.Popen[bytes], errlog: Any) -> None:
        self._proc = proc
        self._errlog = errlog
        self._gen = self._frames()

    def __iter__(self) -> ChildReader:
        return self

    def __next__(self) -> SourceRecord:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self._errlog.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _frames(self) -> Generator[SourceRecord, None, None]:
        proc = self._proc
        assert proc.stdout is not None
        while True:
            head = _read_exact(proc.stdout, _LEN.size)
            if head is None:
                proc.wait()
                self._errlog.seek(0)
                tail = self._errlog.read()[-2000:].decode("utf-8", "replace").strip()
                raise MigrationError(f"the parsing process ended unexpectedly "
                                     f"(exit status {proc.returncode}): {tail or 'no output'}")
            data = _read_exact(proc.stdout, _LEN.unpack(head)[0])
            if data is None:
                continue  # reported by the next read
            frame = pickle.loads(data)
            kind = frame[0]
            if kind == "end":
                return
            if kind == "error":
                raise MigrationError(frame[1])
            _, pos, ids, vecs, metas, docs, errs, excs, idx, mat = frame
            if idx is not None:
                for j, i in enumerate(idx):
                    vecs[i] = mat[j]
            yield from map(SourceRecord, pos, ids, vecs, metas, docs, errs, excs)
