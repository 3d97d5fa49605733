"""Crash states: what a disk may hold after a power cut, from a recorded log.

The model (documented in docs/reliability.md, "Power loss"):

**Weak (POSIX) model** -- what POSIX and the Linux page cache promise and
nothing more:

- File contents are tracked per 4 KiB block.  Every write makes a new
  *version* of each block it touches (the page-cache content after it).  A
  block's *durable* version is its content at the file's last
  ``fsync``/``fdatasync`` (or the write itself, for a descriptor opened
  ``O_DSYNC``/``O_SYNC``).  After a cut each block independently holds its
  durable version or **any** later one (later writes persist in any order,
  an older one may land last); the file size is its durable size or any
  size it had since (a grown file may end in zeros: blocks never written
  back).  Writes smaller than a block are atomic (one sector each in
  practice: LMDB's 120-byte meta page).
- Names: ``creat``/``mkdir``/``rename``/``unlink``/``rmdir`` change a
  directory.  A change persists for sure only if that directory was
  fsynced after it (a rename across directories: if either was); any
  subset of the other changes persists, applied in order.  ``fsync`` of a
  file does **not** persist its name.  A rename is atomic (the new name
  points at the whole inode or the old state stands).

**ext4-like model** (``data=ordered``, kinder, as a second opinion): file
data as above; directory changes persist as a *prefix* in log order that
includes everything up to the last fsync of any file or directory (ext4
commits its whole journal at every fsync).

Not modelled: a disk that lies about flushes (then nothing holds), torn
sectors, and reads after a crash seeing data that was never written
(ext4 ``data=writeback``).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

BLOCK = 4096


class File:
    __slots__ = ("blocks", "cur", "ino", "sizes")

    def __init__(self, ino: int, base: bytes) -> None:
        self.ino = ino
        self.cur = bytearray(base)
        # block -> versions; versions[0] is the durable one.  A block absent
        # here holds its durable content, i.e. what ``cur`` holds.
        self.blocks: dict[int, list[bytes]] = {}
        self.sizes: list[int] = [len(base)]  # sizes[0] durable, then every later size

    def _block(self, b: int) -> bytes:
        return bytes(self.cur[b * BLOCK:(b + 1) * BLOCK])

    def write(self, off: int, data: bytes, durable: bool) -> None:
        if not data:
            return
        end = off + len(data)
        first, last = off // BLOCK, (end - 1) // BLOCK
        for b in range(first, last + 1):
            if b not in self.blocks:
                self.blocks[b] = [self._block(b)]
        if len(self.cur) < off:
            self.cur.extend(bytes(off - len(self.cur)))
        self.cur[off:end] = data
        for b in range(first, last + 1):
            if durable:
                self.blocks[b] = [self._block(b)]
            else:
                self.blocks[b].append(self._block(b))
        if len(self.cur) != self.sizes[-1]:
            self.sizes.append(len(self.cur))
        if durable and self.sizes[0] < end:
            self.sizes = [max(s, end) for s in self.sizes]

    def truncate(self, size: int) -> None:
        old = len(self.cur)
        if size < old:
            for b in range(size // BLOCK, (old - 1) // BLOCK + 1):
                if b not in self.blocks:
                    self.blocks[b] = [self._block(b)]
            del self.cur[size:]
            for b in range(size // BLOCK, (old - 1) // BLOCK + 1):
                blk = self._block(b)
                self.blocks[b].append(blk + bytes(BLOCK - len(blk)) if blk else bytes(BLOCK))
        elif size > old:
            self.cur.extend(bytes(size - old))
        if size != self.sizes[-1]:
            self.sizes.append(size)

    def sync(self) -> None:
        self.blocks.clear()
        self.sizes = [len(self.cur)]

    def pending(self) -> int:
        return sum(len(v) - 1 for v in self.blocks.values()) + len(self.sizes) - 1

    def crash(self, rng: random.Random | None, p: float) -> bytes:
        """Content after a cut: rng None = durable only; else each pending
        block takes a later version with probability p."""
        if rng is None:
            size = self.sizes[0]
        else:
            size = rng.choice(self.sizes) if rng.random() < p else self.sizes[0]
        out = bytearray(self.cur)
        for b, vers in self.blocks.items():
            v = vers[0]
            if rng is not None and len(vers) > 1 and rng.random() < p:
                v = vers[rng.randrange(1, len(vers))]
            if len(v) < BLOCK:
                v = v + bytes(BLOCK - len(v))
            start = b * BLOCK
            if start >= len(out):
                out.extend(bytes(start - len(out)))
            out[start:start + len(v)] = v
        if len(out) < size:
            out.extend(bytes(size - len(out)))
        del out[size:]
        return bytes(out)


class Dir:
    __slots__ = ("entries", "ino")

    def __init__(self, ino: int) -> None:
        self.ino = ino
        self.entries: dict[str, int] = {}


@dataclass
class Op:
    seq: int
    changes: list[tuple[int, str, int | None]]  # (dir ino, name, ino or None = removed)
    dirs: tuple[int, ...]
    forced: bool = False
    what: str = ""


@dataclass
class FS:
    """The file system under ``root`` as the log goes: the page-cache view
    (``cur``) and what may persist.  ``root`` itself is durable."""

    root: str
    inodes: dict[int, Any] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    fds: dict[int, tuple[int, int]] = field(default_factory=dict)
    initial: dict[int, dict[str, int]] = field(default_factory=dict)  # durable dir entries at start
    seq: int = 0
    last_barrier: int = 0  # seq of the last fsync of anything (ext4 model)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        self._next = 1
        root = self._new_dir()
        self.root_ino = root.ino
        self._load(self.root, root)
        self.initial = {i: dict(n.entries) for i, n in self.inodes.items() if isinstance(n, Dir)}

    # -- building --------------------------------------------------------------------

    def _new_dir(self) -> Dir:
        d = Dir(self._next)
        self._next += 1
        self.inodes[d.ino] = d
        return d

    def _new_file(self, base: bytes) -> File:
        f = File(self._next, base)
        self._next += 1
        self.inodes[f.ino] = f
        return f

    def _load(self, path: str, d: Dir) -> None:
        for name in sorted(os.listdir(path)):
            p = os.path.join(path, name)
            if os.path.isdir(p) and not os.path.islink(p):
                sub = self._new_dir()
                d.entries[name] = sub.ino
                self._load(p, sub)
            elif os.path.isfile(p):
                with open(p, "rb") as fh:
                    d.entries[name] = self._new_file(fh.read()).ino

    def _split(self, path: str) -> tuple[Dir, str]:
        rel = os.path.relpath(os.path.abspath(path), self.root)
        parts = [] if rel == "." else rel.split(os.sep)
        if not parts or parts[0] == "..":
            raise KeyError(path)
        d = self.inodes[self.root_ino]
        for name in parts[:-1]:
            d = self.inodes[d.entries[name]]
            if not isinstance(d, Dir):
                raise KeyError(path)
        return d, parts[-1]

    def lookup(self, path: str) -> int | None:
        if os.path.abspath(path) == self.root:
            return self.root_ino
        try:
            d, name = self._split(path)
        except KeyError:
            return None
        return d.entries.get(name)

    def _op(self, changes: list[tuple[int, str, int | None]], what: str) -> None:
        for dino, name, ino in changes:
            d = self.inodes[dino]
            if ino is None:
                d.entries.pop(name, None)
            else:
                d.entries[name] = ino
        self.ops.append(Op(self.seq, changes, tuple({c[0] for c in changes}), what=what))

    def apply(self, ev: tuple[Any, ...]) -> None:
        self.seq += 1
        kind = ev[0]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "open":
            _k, fd, path, flags = ev
            ino = self.lookup(path)
            if ino is None:
                if not flags & os.O_CREAT:
                    return  # outside the model (e.g. a name lost track of)
                d, name = self._split(path)
                f = self._new_file(b"")
                self._op([(d.ino, name, f.ino)], f"create {name}")
                ino = f.ino
            elif flags & os.O_TRUNC and isinstance(self.inodes[ino], File):
                self.inodes[ino].truncate(0)
            self.fds[fd] = (ino, flags)
        elif kind == "write":
            _k, fd, off, data = ev
            if fd not in self.fds:
                return
            ino, flags = self.fds[fd]
            f = self.inodes[ino]
            f.write(len(f.cur) if off is None else off, data,
                    durable=bool(flags & (os.O_DSYNC | os.O_SYNC)))
        elif kind == "trunc":
            if ev[1] in self.fds:
                self.inodes[self.fds[ev[1]][0]].truncate(ev[2])
        elif kind == "alloc":
            if ev[1] in self.fds:
                f = self.inodes[self.fds[ev[1]][0]]
                if ev[2] + ev[3] > len(f.cur):
                    f.truncate(ev[2] + ev[3])
        elif kind == "sync":
            if ev[1] not in self.fds:
                return
            node = self.inodes[self.fds[ev[1]][0]]
            self.last_barrier = self.seq
            if isinstance(node, File):
                node.sync()
            else:
                for op in self.ops:
                    if node.ino in op.dirs:
                        op.forced = True
        elif kind == "close":
            self.fds.pop(ev[1], None)
        elif kind == "dup":
            if ev[1] in self.fds:
                self.fds[ev[2]] = self.fds[ev[1]]
        elif kind == "rename":
            _k, a, b = ev
            ino = self.lookup(a)
            if ino is None:
                return
            da, na = self._split(a)
            db, nb = self._split(b)
            self._op([(da.ino, na, None), (db.ino, nb, ino)], f"rename {na} -> {nb}")
        elif kind in ("unlink", "rmdir"):
            if self.lookup(ev[1]) is None:
                return
            d, name = self._split(ev[1])
            self._op([(d.ino, name, None)], f"{kind} {name}")
        elif kind == "mkdir":
            d, name = self._split(ev[1])
            sub = self._new_dir()
            self._op([(d.ino, name, sub.ino)], f"mkdir {name}")

    # -- crash states ---------------------------------------------------------------------

    def crash(self, rng: random.Random, how: str) -> dict[str, Any]:
        """A crash state: ``how`` is ``"durable"`` (only what was synced),
        ``"weak"`` (weak model, random) or ``"ext4"``.  Returns a tree
        ``{name: bytes | subtree}`` of the root's contents."""
        entries = {i: dict(e) for i, e in self.initial.items()}
        p = rng.choice((0.15, 0.5, 0.85))
        if how == "ext4":
            cut = rng.randint(self.last_barrier, self.seq)
            chosen = [op for op in self.ops if op.forced or op.seq <= cut]
        elif how == "durable":
            chosen = [op for op in self.ops if op.forced]
        else:
            chosen = [op for op in self.ops if op.forced or rng.random() < p]
        for op in chosen:
            for dino, name, ino in op.changes:
                e = entries.setdefault(dino, {})
                if ino is None:
                    e.pop(name, None)
                else:
                    e[name] = ino
        frng = None if how == "durable" else rng
        contents: dict[int, bytes] = {}

        def tree(dino: int, depth: int) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, ino in entries.get(dino, {}).items():
                node = self.inodes[ino]
                if isinstance(node, Dir):
                    if depth < 16:
                        out[name] = tree(ino, depth + 1)
                else:
                    if ino not in contents:
                        contents[ino] = node.crash(frng, p)
                    out[name] = contents[ino]
            return out

        return tree(self.root_ino, 0)

    def pending(self) -> tuple[int, int]:
        """(unsynced block versions and sizes, unforced name changes)."""
        blocks = sum(n.pending() for n in self.inodes.values() if isinstance(n, File))
        return blocks, sum(1 for op in self.ops if not op.forced)


def materialize(tree: dict[str, Any], dest: str) -> None:
    os.makedirs(dest, exist_ok=True)
    for name, node in tree.items():
        p = os.path.join(dest, name)
        if isinstance(node, dict):
            materialize(node, p)
        else:
            with open(p, "wb") as f:
                f.write(node)


def digest(tree: dict[str, Any]) -> str:
    import hashlib

    h = hashlib.blake2b(digest_size=16)

    def walk(t: dict[str, Any], prefix: str) -> None:
        for name in sorted(t):
            node = t[name]
            h.update(f"{prefix}/{name}\0".encode())
            if isinstance(node, dict):
                walk(node, f"{prefix}/{name}")
            else:
                h.update(hashlib.blake2b(node, digest_size=16).digest())

    walk(tree, "")
    return h.hexdigest()
