"""A second index kind, used only by tests: exact search over the segment's
vectors (no graph).  It shows what adding a kind takes: this module, and
one ``register`` line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from vecstore._index import register
from vecstore._index.base import BuildCancelled, Cancelled, Progress, Vectors
from vecstore._types import Distance

MAGIC = b"FLAT0001"


class FlatIndex:
    kind = "flat"
    params: ClassVar[dict[str, Any]] = {}

    def __init__(self, vecs: np.ndarray, distance: Distance) -> None:
        self.vecs = np.ascontiguousarray(vecs, np.float32)
        self.n, self.dim = self.vecs.shape
        self.l2 = distance is Distance.EUCLIDEAN

    def search(self, q: np.ndarray, k: int, ef: int, allow: np.ndarray | None = None,
               cap: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        kk = min(max(k, ef), self.n if cap is None else min(cap, self.n))
        pos = np.arange(self.n) if allow is None else np.flatnonzero(allow[: self.n])
        if kk <= 0 or pos.size < kk:
            return None
        v = self.vecs[pos]
        d = ((v - q) ** 2).sum(1) if self.l2 else 1.0 - v @ q
        best = np.argsort(d, kind="stable")[:kk]
        return pos[best].astype(np.int64), d[best].astype(np.float32)

    def write(self, path: str) -> None:
        with open(path, "wb") as f:  # the vectors stay in LMDB: only a header
            f.write(MAGIC + np.int64(self.n).tobytes())

    def memory_bytes(self) -> int:
        return int(self.vecs.nbytes)

    def manifest(self) -> dict[str, Any]:
        return {}


class FlatKind:
    name = "flat"

    def params(self, config: Any) -> dict[str, Any]:
        return {}

    def build(self, vecs: np.ndarray, distance: Distance, params: Mapping[str, Any],
              threads: int, seed: int, cancelled: Cancelled | None = None,
              progress: Progress | None = None) -> FlatIndex:
        if cancelled is not None and cancelled():
            raise BuildCancelled()
        return FlatIndex(vecs.copy(), distance)

    def extend(self, base: Any, vecs: np.ndarray, threads: int, scratch: str,
               cancelled: Cancelled | None = None,
               progress: Progress | None = None) -> FlatIndex | None:
        return None  # always rebuilt

    def load(self, path: str, distance: Distance, dim: int, n: int,
             entry: Mapping[str, Any], vectors: Vectors) -> FlatIndex:
        with open(path, "rb") as f:
            head = f.read()
        if head != MAGIC + np.int64(n).tobytes():
            raise OSError(f"{path} is not a flat index of {n} rows")
        return FlatIndex(vectors(np.arange(n, dtype=np.int64)), distance)


register(FlatKind())
