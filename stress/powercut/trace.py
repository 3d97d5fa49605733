"""Recording: run a program under ``strace`` and turn its log into events.

Why strace and not the LD_PRELOAD shim: the shim sees only calls that go
through the PLT, and glibc's own ``fopen``/``fwrite`` (faiss writes its
index files that way) call ``write`` internally, out of a shim's reach.
strace sees every system call, whichever library makes it, with the data
(``-xx -s 4M``: every byte as ``\\xHH``, so nothing in a line needs
unquoting rules) and the path behind every descriptor (``-y``).
``--seccomp-bpf`` stops the tracee only on the traced calls.

What LMDB calls here (``writemap=False``, py-lmdb 1.x, recorded with
strace): data pages with ``pwrite64`` and ``lseek`` + ``writev``, then
``fdatasync`` on the main descriptor, then the 120-byte meta page with
``pwrite64`` on a second descriptor opened ``O_DSYNC`` (durable when the
call returns); no ``msync`` (no write through the map).  ``sync=False``
(relaxed) drops the ``fdatasync`` and opens the meta descriptor without
``O_DSYNC``.

Events (paths absolute, already filtered to the modelled root and the ack
file), in the order strace printed the calls' completion:

``("open", fd, path, flags)``  ``("write", fd, off|None, data)`` (None: at
end, O_APPEND)  ``("trunc", fd, size)``  ``("alloc", fd, off, len)``
``("sync", fd)`` (fsync/fdatasync; ``sync_file_range`` is not a barrier and
is only counted)  ``("close", fd)``  ``("dup", old, new)``
``("rename", src, dst)``  ``("unlink", path)``  ``("mkdir", path)``
``("rmdir", path)``  ``("ack", data)`` (a write to the ack file).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

TRACED = ("write,pwrite64,pwritev,pwritev2,writev,lseek,ftruncate,fallocate,fsync,fdatasync,"
          "msync,sync_file_range,openat,open,creat,rename,renameat,renameat2,unlink,unlinkat,"
          "mkdir,mkdirat,rmdir,close,dup,dup2,dup3,fcntl,sync,syncfs,copy_file_range,sendfile")

O_CREAT, O_TRUNC, O_APPEND, O_DSYNC, O_SYNC, O_DIRECTORY = (
    os.O_CREAT, os.O_TRUNC, os.O_APPEND, os.O_DSYNC, os.O_SYNC, os.O_DIRECTORY)
FLAG_BITS = {name: getattr(os, name) for name in dir(os)
             if name.startswith("O_") and isinstance(getattr(os, name), int)}

_LINE = re.compile(r"^(\d+) +(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)\) += (-?\d+|\?)(.*)$", re.S)
_STR = re.compile(r'"((?:\\x[0-9a-f]{2})*)"(\.\.\.)?')
_FD = re.compile(r"(-?\d+|AT_FDCWD)(?:<((?:\\x[0-9a-f]{2})*)>)?")


def strace_path() -> str | None:
    return shutil.which("strace")


def command(argv: list[str], log: str) -> list[str]:
    exe = strace_path()
    if exe is None:
        raise RuntimeError("strace is not installed (apt-get install strace)")
    return [exe, "-f", "--seccomp-bpf", "-qq", "-o", log, "-y", "-xx", "-s", str(1 << 22),
            "-e", f"trace={TRACED}", "-e", "signal=none", *argv]


def hexpath(path: str) -> str:
    return "".join(f"\\x{b:02x}" for b in os.fsencode(path))


def _unhex(s: str) -> bytes:
    return bytes.fromhex(s.replace("\\x", ""))


def _path(s: str) -> str:
    p = os.fsdecode(_unhex(s))
    return p[:-10] if p.endswith(" (deleted)") else p


def _flags(text: str) -> int:
    v = 0
    for part in text.strip().split("|"):
        part = part.strip()
        if part in FLAG_BITS:
            v |= FLAG_BITS[part]
        elif part.startswith("0"):
            try:
                v |= int(part, 0)
            except ValueError:
                pass
    return v


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """(pid, complete call text), joining ``<unfinished ...>`` with its
    ``<... resumed>`` half (threads interleave)."""
    pending: dict[int, str] = {}
    with open(path, errors="replace") as f:
        for raw in f:
            m = _LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, text = int(m.group(1)), m.group(2)
            if text.endswith("<unfinished ...>"):
                pending[pid] = text[: -len("<unfinished ...>")].rstrip()
                continue
            if text.startswith("<... "):
                head = pending.pop(pid, None)
                if head is None:
                    continue
                text = head + text[text.index(">") + 1:]
            yield pid, text


class Parser:
    """Turns strace lines into events about ``root`` (a directory) and the
    ack file; keeps the file offset of every descriptor (``write``/``writev``
    write at it; ``lseek`` results and open flags set it)."""

    def __init__(self, root: str, ack: str) -> None:
        self.root = os.path.abspath(root)
        self.ack = os.path.abspath(ack)
        self.keys = (hexpath(self.root), hexpath(self.ack))
        self.pos: dict[int, int] = {}
        self.append: set[int] = set()
        self.unsupported: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def mine(self, p: str) -> bool:
        return p == self.root or p.startswith(self.root + os.sep) or p == self.ack

    def _abs(self, dirfd_text: str | None, p: str) -> str:
        if os.path.isabs(p) or dirfd_text is None:
            return os.path.normpath(p)
        return os.path.normpath(os.path.join(dirfd_text, p))

    def parse(self, log: str) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for _pid, text in _lines(log):
            if self.keys[0] not in text and self.keys[1] not in text:
                continue
            m = _CALL.match(text)
            if not m or m.group(3) == "?":
                continue
            name, args, ret = m.group(1), m.group(2), m.group(3)
            r = int(ret)
            if r < 0:
                continue
            ev = self._event(name, args, r, m.group(4))
            if ev is not None:
                self.counts[name] = self.counts.get(name, 0) + 1
                out.extend(ev)
        return out

    def _fd(self, args: str) -> tuple[int, str | None, str]:
        m = _FD.match(args)
        assert m, args
        fd = -100 if m.group(1) == "AT_FDCWD" else int(m.group(1))
        p = _path(m.group(2)) if m.group(2) is not None else None
        return fd, p, args[m.end():]

    def _data(self, args: str) -> bytes:
        parts = []
        for m in _STR.finditer(args):
            if m.group(2):
                raise RuntimeError("strace truncated a write (raise -s)")
            parts.append(_unhex(m.group(1)))
        return b"".join(parts)

    def _event(self, name: str, args: str, r: int, tail: str) -> list[tuple[Any, ...]] | None:
        if name in ("openat", "open", "creat"):
            if name == "openat":
                _dfd, dpath, rest = self._fd(args)
                rest = rest.lstrip(", ")
            else:
                dpath, rest = None, args
            sm = _STR.match(rest)
            assert sm, args
            p = self._abs(dpath, _path(sm.group(1)))
            flagtext = rest[sm.end():].lstrip(", ").split(",")[0]
            flags = _flags(flagtext) if name != "creat" else (O_CREAT | O_TRUNC | os.O_WRONLY)
            if not self.mine(p) or p == self.ack:
                return None
            self.pos[r] = 0
            if flags & O_APPEND:
                self.append.add(r)
            else:
                self.append.discard(r)
            return [("open", r, p, flags)]
        if name in ("rename", "renameat", "renameat2"):
            if name == "rename":
                a, b = [_path(m.group(1)) for m in _STR.finditer(args)][:2]
            else:
                _fd1, d1, rest = self._fd(args)
                sm = _STR.search(rest)
                assert sm
                a = self._abs(d1, _path(sm.group(1)))
                _fd2, d2, rest2 = self._fd(rest[sm.end():].lstrip(", "))
                sm2 = _STR.search(rest2)
                assert sm2
                b = self._abs(d2, _path(sm2.group(1)))
            if not (self.mine(a) or self.mine(b)):
                return None
            return [("rename", a, b)]
        if name in ("unlink", "unlinkat", "mkdir", "mkdirat", "rmdir"):
            if name.endswith("at"):
                _fd1, d1, rest = self._fd(args)
                sm = _STR.search(rest)
                assert sm
                p = self._abs(d1, _path(sm.group(1)))
                if name == "unlinkat" and "AT_REMOVEDIR" in rest[sm.end():]:
                    name = "rmdir"
            else:
                sm = _STR.search(args)
                assert sm
                p = os.path.normpath(_path(sm.group(1)))
            if not self.mine(p):
                return None
            return [({"unlinkat": "unlink", "mkdirat": "mkdir"}.get(name, name), p)]
        if name in ("sync", "syncfs", "copy_file_range", "sendfile", "msync"):
            self.unsupported[name] = self.unsupported.get(name, 0) + 1
            return None
        fd, p, rest = self._fd(args)
        if p is None or not self.mine(p):
            return None
        if p == self.ack:
            if name in ("write", "pwrite64"):
                return [("ack", self._data(rest))]
            return None
        if name == "lseek":
            self.pos[fd] = r
            return None
        if name in ("write", "writev"):
            data = self._data(rest)
            assert len(data) >= r, (name, len(data), r)
            data = data[:r]
            if fd in self.append:
                return [("write", fd, None, data)]
            off = self.pos.get(fd, 0)
            self.pos[fd] = off + r
            return [("write", fd, off, data)]
        if name in ("pwrite64", "pwritev", "pwritev2"):
            data = self._data(rest)
            if name == "pwrite64":
                off = int(rest.rsplit(",", 1)[1])
            else:
                off = int(re.split(r"\], *", rest, maxsplit=1)[1].split(",")[1])
            return [("write", fd, off, data[:r])]
        if name == "ftruncate":
            return [("trunc", fd, int(rest.lstrip(", ").split(",")[0]))]
        if name == "fallocate":
            vals = [x.strip() for x in rest.lstrip(", ").split(",")]
            mode = vals[0]
            if mode not in ("0",):
                self.unsupported[f"fallocate({mode})"] = \
                    self.unsupported.get(f"fallocate({mode})", 0) + 1
                return None
            return [("alloc", fd, int(vals[1]), int(vals[2]))]
        if name in ("fsync", "fdatasync"):
            return [("sync", fd)]
        if name == "sync_file_range":
            self.unsupported[name] = self.unsupported.get(name, 0) + 1
            return None
        if name == "close":
            self.pos.pop(fd, None)
            return [("close", fd)]
        if name in ("dup", "dup2", "dup3") or (name == "fcntl" and "F_DUPFD" in rest):
            self.pos[r] = self.pos.get(fd, 0)
            if fd in self.append:
                self.append.add(r)
            return [("dup", fd, r)]
        return None


def run_traced(argv: list[str], log: str, *, env: dict[str, str], kill_after: float,
               err: str, cwd: str | None = None) -> tuple[int, bool]:
    """Run ``argv`` under strace; SIGKILL the traced program (not strace)
    after ``kill_after`` seconds.  Returns (strace's exit code, killed)."""
    import signal
    import time

    with open(err, "ab") as errf:
        proc = subprocess.Popen(command(argv, log), env=env, cwd=cwd,
                                stdout=errf, stderr=errf)
    deadline = time.monotonic() + kill_after
    killed = False
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            # the tracee is strace's child: kill it, strace then exits and flushes its log
            for child in _children(proc.pid):
                try:
                    os.kill(child, signal.SIGKILL)
                    killed = True
                except ProcessLookupError:
                    pass
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            break
        time.sleep(0.01)
    proc.wait()
    return proc.returncode, killed


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []
