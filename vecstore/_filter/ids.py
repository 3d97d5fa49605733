"""``HAS_ID(...)``: a condition on the record id rather than its metadata.

``HAS_ID('a', 'b')`` holds for the records whose id is one of those listed
(ids are canonicalised as everywhere else: the int ``7`` is the id ``"7"``).
Dict form ``{"$hasid": ["a", "b"]}``; Qdrant's ``{"has_id": [...]}`` maps to it.

Metadata alone cannot answer it, so a filter that uses it is evaluated with
the id at hand: ``Filter.matches(metadata, id=...)``.  The store never scans
for it: it looks each id up (one history seek per id) and turns the rows
found into a mask per segment (see :mod:`vecstore._plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._errors import FilterError, VecStoreError
from .ast import And, Node, Not, Or
from .values import format_value

RowFn = Callable[[Any, Any], bool]  # (metadata, x) -> bool; x: the id, or a row position


def canonical_ids(raw: Any) -> tuple[str, ...]:
    """Validated, de-duplicated ids (order kept); FilterError otherwise."""
    from .._validate import check_id

    if isinstance(raw, (str, bytes, int)) or not isinstance(raw, Iterable):
        raise FilterError(f"HAS_ID needs a list of ids, got {raw!r}")
    out: dict[str, None] = {}
    for i, v in enumerate(raw):
        try:
            out[check_id(v)] = None
        except VecStoreError as e:
            raise FilterError(f"HAS_ID: id [{i}] {v!r} is not a valid id: {e}") from None
    if not out:
        raise FilterError("HAS_ID needs at least one id")
    return tuple(out)


@dataclass(frozen=True, eq=False)
class HasId(Node):
    """The record's id is one of ``ids``."""

    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        ids = canonical_ids(self.ids)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "idset", frozenset(ids))

        def fn(_md: Any) -> bool:
            raise FilterError(
                "this filter tests record ids (HAS_ID / has_id): evaluate it with the id, "
                "e.g. Filter.matches(metadata, id=record_id)")

        self._finish(("hasid", tuple(sorted(ids))), fn)

    def _format_string(self) -> str:
        return f"HAS_ID({', '.join(format_value(i) for i in self.ids)})"

    def _to_dict(self, _to_dict: Any) -> dict[str, Any]:
        return {"$hasid": list(self.ids)}


def uses_ids(node: Node) -> bool:
    """True if ``node`` has a ``HasId`` anywhere (cached on the node)."""
    got = node.__dict__.get("_uses_ids")
    if got is None:
        got = isinstance(node, HasId) or any(uses_ids(c) for c in node.children())
        object.__setattr__(node, "_uses_ids", got)
    return got


def compile_rows(node: Node, id_leaf: Callable[[HasId], RowFn]) -> RowFn:
    """A matcher of ``(metadata, x)`` where ``id_leaf(h)`` answers each ``HasId``
    from ``x`` (a record id, or a row position with a precomputed mask)."""
    if not uses_ids(node):
        f = node._fn
        return lambda md, _x: f(md)
    if isinstance(node, HasId):
        return id_leaf(node)
    if isinstance(node, Not):
        g = compile_rows(node.item, id_leaf)
        return lambda md, x: not g(md, x)
    if isinstance(node, (And, Or)):
        fns = tuple(compile_rows(i, id_leaf) for i in node.items)
        if isinstance(node, And):
            return lambda md, x: all(f(md, x) for f in fns)
        return lambda md, x: any(f(md, x) for f in fns)
    raise TypeError(f"unexpected node holding HAS_ID: {node!r}")  # pragma: no cover


def id_matcher(node: Node) -> RowFn:
    """``(metadata, record id) -> bool``."""

    def leaf(h: HasId) -> RowFn:
        s = h.idset  # type: ignore[attr-defined]
        return lambda _md, rid: rid in s

    return compile_rows(node, leaf)
