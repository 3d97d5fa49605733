"""Helpers shared by the harnesses."""

from __future__ import annotations

import functools
import logging
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def child_env(**extra: str) -> dict[str, str]:
    """Environment for child interpreters: the repository on the path, one
    BLAS thread (the machine has few cores and the harness runs many
    processes)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


@functools.lru_cache(maxsize=65536)
def vector_for(rid: str, op: int, dim: int) -> np.ndarray:
    """The vector a harness writes for ``rid`` in operation ``op`` (so the
    checker can recompute every stored vector exactly).  Cached: callers
    must not modify it."""
    h = int.from_bytes(rid.encode("utf-8")[-8:].rjust(8, b"\0"), "big") ^ len(rid)
    rng = np.random.default_rng([op & 0xFFFFFFFF, op >> 32, h & 0xFFFFFFFF, h >> 32])
    v = rng.standard_normal(dim).astype(np.float32) + np.float32(0.01)
    v.flags.writeable = False
    return v


def vectors_for(ids: list[str], op: int, dim: int) -> np.ndarray:
    return np.stack([vector_for(i, op, dim) for i in ids]) if ids else \
        np.empty((0, dim), np.float32)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def vecstore_warnings() -> Iterator[list[str]]:
    """Collect what vecstore logs at WARNING or above (repairs, job failures)."""
    log = logging.getLogger("vecstore")
    h = _Collect()
    old = log.propagate
    log.addHandler(h)
    log.propagate = False  # the harness reports these itself
    try:
        yield h.messages
    finally:
        log.removeHandler(h)
        log.propagate = old


@contextmanager
def workdir(keep: bool, prefix: str) -> Iterator[Path]:
    if keep:
        d = Path(tempfile.mkdtemp(prefix=f"vecstore-stress-{prefix}-"))
        print(f"[{prefix}] working directory kept: {d}", flush=True)
        yield d
    else:
        with tempfile.TemporaryDirectory(prefix=f"vecstore-stress-{prefix}-") as d:
            yield Path(d)


_CTX: Any = None


def fork_context() -> Any:
    """A forkserver context with vecstore preloaded: children start in a few
    milliseconds, and never inherit threads, trio or LMDB state."""
    global _CTX
    if _CTX is None:
        for k, v in child_env().items():
            if k in ("PYTHONPATH", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
                os.environ[k] = v
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["numpy", "hnswlib", "lmdb", "trio", "cbor2", "vecstore",
                                    "stress._children"])
        _CTX = ctx
    return _CTX


def run_cli(args: list[str], timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "vecstore.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=child_env(), **kw)


def fmt_exc(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}: {text}"
