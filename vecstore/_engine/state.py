"""Published, immutable state: what a snapshot holds on to; and the
writer's own records (a partition's bookkeeping, a request's effects).

The writer publishes a new :class:`State` after every commit and every
segment change.  A state never changes after publication (the ``died``
columns its segments share only ever gain versions newer than it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._segments.segment import GrowingSegment, GrowingView, SealedSegment
from .._types import Distance


@dataclass(frozen=True, slots=True)
class PartState:
    pid: int
    name: str
    live: bool
    sealed: tuple[SealedSegment, ...]
    growing: GrowingView | None

    def count_visible(self, version: int) -> int:
        n = sum(seg.count_visible(version) for seg in self.sealed)
        if self.growing is not None:
            n += self.growing.count_visible(version)
        return n

    def segments(self) -> list[SealedSegment | GrowingView]:
        """The sealed segments, then the growing one (if any)."""
        segs: list[SealedSegment | GrowingView] = list(self.sealed)
        if self.growing is not None:
            segs.append(self.growing)
        return segs

    @property
    def growing_rows(self) -> int:
        return 0 if self.growing is None else self.growing.n


@dataclass(frozen=True, slots=True)
class State:
    version: int
    parts: Mapping[str, PartState]
    dim: int | None
    distance: Distance
    indexes: Mapping[tuple[str, ...], Any] = field(default_factory=dict)  # path -> IndexDef


@dataclass
class PartMem:
    """The writer's mutable bookkeeping for one partition."""

    pid: int
    name: str
    live: bool
    sealed: list[SealedSegment] = field(default_factory=list)
    growing: GrowingSegment | None = None
    upto: int = -1  # every row of this partition with rowid <= upto is sealed
    # (first rowid, last rowid, wal seq) of the add events still in ``growing``
    adds: list[tuple[int, int, int]] = field(default_factory=list)
    job: Any = None

    def state(self) -> PartState:
        return PartState(self.pid, self.name, self.live, tuple(self.sealed),
                         None if self.growing is None else self.growing.view())

    def first_growing_seq(self) -> int | None:
        return min((seq for _a, _b, seq in self.adds), default=None)


@dataclass
class Effects:
    """What one committed request does to the in-memory segments."""

    version: int
    seq: int = 0
    kind: str = "write"  # "write" or "rollback": how history() names the change
    kills: list[tuple[int, int]] = field(default_factory=list)  # (pid, rowid)
    # (pid, first rowid, vectors, metadata dicts)
    adds: list[tuple[int, int, np.ndarray, list[dict[str, Any]]]] = field(default_factory=list)
    # (first rowid, index path) -> each added row's (term ids, weights) or None, for the
    # text and sparse indexes (analysed once, in the transaction)
    terms: dict[tuple[int, tuple[str, ...]], list[Any]] = field(default_factory=dict)
