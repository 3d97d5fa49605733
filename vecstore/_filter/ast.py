"""Filter AST: immutable nodes, their compiled matchers and their printers.

Every node is a frozen, hashable dataclass.  Construction validates and
normalises the node (paths and sequences become tuples, nested ``And``/``Or``
of the same kind are flattened, literal values are checked) and compiles a
closure once, so ``node.matches(metadata)`` does no parsing or regex work.

Equality is *type exact* for literal values: ``Compare(("x",), "=", True)``
differs from ``Compare(("x",), "=", 1)`` and from ``Compare(("x",), "=", 1.0)``
even though Python considers ``True == 1 == 1.0``.  The semantics are described
in :mod:`vecstore._filter`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import fields as _dc_fields
from typing import Any

from .._errors import FilterError
from .values import (
    COMPARE_OPS,
    LIST,
    MAX_DEPTH,
    SCALAR_FAMILIES,
    STR,
    DepthError,
    Matcher,
    Scalar,
    check_literal,
    check_path,
    compare_pred,
    eq_pred,
    family,
    format_path,
    format_value,
    leaf,
    value_key,
)


class Node:
    """Base class of filter AST nodes."""

    __slots__ = ()
    # Set once by _finish() when a node is built (declared here for the type
    # checker; annotations only, so no class attributes and no fields).
    _key: tuple[Any, ...]
    _fn: Matcher
    _depth: int

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """True if ``metadata`` satisfies this (sub)filter."""
        return self._fn(metadata)

    @property
    def depth(self) -> int:
        """Levels of AND/OR/NOT above the deepest leaf (0 for a leaf)."""
        return self._depth

    def children(self) -> tuple[Node, ...]:
        """The direct sub-nodes (empty for a leaf)."""
        return ()

    def fields(self) -> set[tuple[str, ...]]:
        """Every field path this node references."""
        out: set[tuple[str, ...]] = set()
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            path = getattr(node, "path", None)
            if path is not None:
                out.add(path)
            stack.extend(node.children())
        return out

    def to_string(self) -> str:
        """The canonical string form (re-parses to an equal node)."""
        return format_node(self)

    def __str__(self) -> str:
        return format_node(self)

    def _finish(self, key: tuple[Any, ...], fn: Matcher, depth: int = 0) -> None:
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_depth", depth)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Node):
            return NotImplemented
        return self._key == other._key

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash(self._key)
            object.__setattr__(self, "_hash", h)
        return h

    def __reduce__(self) -> tuple[Any, ...]:
        args = tuple(getattr(self, f.name) for f in _dc_fields(self))  # type: ignore[arg-type]
        return (type(self), args)


@dataclass(frozen=True, eq=False)
class Compare(Node):
    """``path op value`` with ``op`` one of ``= != < <= > >=``."""

    path: tuple[str, ...]
    op: str
    value: Scalar

    def __post_init__(self) -> None:
        path = check_path(self.path)
        if self.op not in COMPARE_OPS:
            raise FilterError(
                f"unknown comparison {self.op!r}: use one of {', '.join(COMPARE_OPS)}")
        value = check_literal(self.value)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "value", value)
        key = ("cmp", path, self.op, value_key(value))
        self._finish(key, leaf(path, compare_pred(self.op, value)))


@dataclass(frozen=True, eq=False)
class InList(Node):
    """``path IN (values)``, or ``path NOT IN (values)`` when ``negate``."""

    path: tuple[str, ...]
    values: tuple[Scalar, ...]
    negate: bool = False

    def __post_init__(self) -> None:
        path = check_path(self.path)
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Iterable):
            raise FilterError("IN needs a sequence of values")
        values = tuple(check_literal(v) for v in self.values)
        if not values:
            raise FilterError("IN needs at least one value")
        negate = bool(self.negate)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "negate", negate)
        by_family: dict[int, set[Any]] = {}
        for v in values:
            by_family.setdefault(family(v), set()).add(v)
        if negate:

            def pred(x: Any) -> bool:
                fx = family(x)
                if fx not in SCALAR_FAMILIES:
                    return False
                s = by_family.get(fx)
                return s is None or x not in s

        else:

            def pred(x: Any) -> bool:
                s = by_family.get(family(x))
                return s is not None and x in s

        key = ("in", path, tuple(value_key(v) for v in values), negate)
        self._finish(key, leaf(path, pred))


@dataclass(frozen=True, eq=False)
class Contains(Node):
    """``path CONTAINS value``: list membership, or substring of a str field."""

    path: tuple[str, ...]
    value: Scalar

    def __post_init__(self) -> None:
        path = check_path(self.path)
        value = check_literal(self.value)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "value", value)
        eq = eq_pred(value)
        is_str = family(value) == STR

        def pred(x: Any) -> bool:
            fx = family(x)
            if fx == LIST:
                for e in x:
                    if eq(e):
                        return True
                return False
            return fx == STR and is_str and value in x

        self._finish(("contains", path, value_key(value)), leaf(path, pred))


@dataclass(frozen=True, eq=False)
class StartsWith(Node):
    """``path STARTSWITH prefix``: the field is a str beginning with ``prefix``."""

    path: tuple[str, ...]
    prefix: str

    def __post_init__(self) -> None:
        path = check_path(self.path)
        if not isinstance(self.prefix, str):
            raise FilterError(f"STARTSWITH needs a str prefix, got {self.prefix!r}")
        prefix = str(self.prefix)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "prefix", prefix)

        def pred(x: Any) -> bool:
            return isinstance(x, str) and x.startswith(prefix)

        self._finish(("startswith", path, prefix), leaf(path, pred))


@dataclass(frozen=True, eq=False)
class Exists(Node):
    """``path EXISTS``: the field is present (an explicit null counts)."""

    path: tuple[str, ...]

    def __post_init__(self) -> None:
        path = check_path(self.path)
        object.__setattr__(self, "path", path)
        self._finish(("exists", path), leaf(path, lambda _x: True))


@dataclass(frozen=True, eq=False)
class IsNull(Node):
    """``path IS NULL`` (missing or null), or ``IS NOT NULL`` when ``negate``."""

    path: tuple[str, ...]
    negate: bool = False

    def __post_init__(self) -> None:
        path = check_path(self.path)
        negate = bool(self.negate)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "negate", negate)
        if negate:
            fn = leaf(path, lambda x: x is not None, when_missing=False)
        else:
            fn = leaf(path, lambda x: x is None, when_missing=True)
        self._finish(("isnull", path, negate), fn)


def _composite_items(cls: type[Node], items: Any) -> tuple[Node, ...]:
    """Validate and flatten the items of an ``And``/``Or``."""
    if not isinstance(items, Iterable) or isinstance(items, (str, bytes, Node)):
        raise FilterError(f"{cls.__name__} needs a sequence of nodes")
    out: list[Node] = []
    for item in items:
        if not isinstance(item, Node):
            raise FilterError(f"{cls.__name__} items must be filter nodes, got {item!r}")
        if type(item) is cls:
            out.extend(item.items)  # type: ignore[attr-defined]
        else:
            out.append(item)
    if len(out) < 2:
        raise FilterError(f"{cls.__name__} needs at least two items; use {cls.__name__}.of(...)")
    return tuple(out)


def _check_depth(items: Iterable[Node]) -> int:
    depth = 1 + max(item.depth for item in items)
    if depth > MAX_DEPTH:
        raise DepthError(f"filter nested too deeply: more than {MAX_DEPTH} levels of AND/OR/NOT")
    return depth


@dataclass(frozen=True, eq=False)
class And(Node):
    """All of ``items`` hold (at least two; nested ``And`` are flattened)."""

    items: tuple[Node, ...]

    def __post_init__(self) -> None:
        items = _composite_items(And, self.items)
        depth = _check_depth(items)
        object.__setattr__(self, "items", items)
        fns = tuple(item._fn for item in items)
        if len(fns) == 2:
            a, b = fns
            fn: Matcher = lambda md: a(md) and b(md)  # noqa: E731
        else:

            def fn(md: Any) -> bool:
                for f in fns:
                    if not f(md):
                        return False
                return True

        key = ("and", tuple(item._key for item in items))
        self._finish(key, fn, depth)

    def children(self) -> tuple[Node, ...]:
        return self.items

    @classmethod
    def of(cls, *items: Node) -> Node:
        """``And`` of ``items``, or the single item itself."""
        if len(items) == 1 and isinstance(items[0], Node):
            return items[0]
        return cls(items)


@dataclass(frozen=True, eq=False)
class Or(Node):
    """Any of ``items`` holds (at least two; nested ``Or`` are flattened)."""

    items: tuple[Node, ...]

    def __post_init__(self) -> None:
        items = _composite_items(Or, self.items)
        depth = _check_depth(items)
        object.__setattr__(self, "items", items)
        fns = tuple(item._fn for item in items)
        if len(fns) == 2:
            a, b = fns
            fn: Matcher = lambda md: a(md) or b(md)  # noqa: E731
        else:

            def fn(md: Any) -> bool:
                for f in fns:
                    if f(md):
                        return True
                return False

        key = ("or", tuple(item._key for item in items))
        self._finish(key, fn, depth)

    def children(self) -> tuple[Node, ...]:
        return self.items

    @classmethod
    def of(cls, *items: Node) -> Node:
        """``Or`` of ``items``, or the single item itself."""
        if len(items) == 1 and isinstance(items[0], Node):
            return items[0]
        return cls(items)


@dataclass(frozen=True, eq=False)
class Not(Node):
    """``NOT item``."""

    item: Node

    def __post_init__(self) -> None:
        if not isinstance(self.item, Node):
            raise FilterError(f"Not needs a filter node, got {self.item!r}")
        depth = _check_depth((self.item,))
        f = self.item._fn
        key = ("not", self.item._key)
        self._finish(key, lambda md: not f(md), depth)

    def children(self) -> tuple[Node, ...]:
        return (self.item,)


def format_node(node: Node) -> str:
    """The canonical string form of ``node``."""
    if isinstance(node, Compare):
        return f"{format_path(node.path)} {node.op} {format_value(node.value)}"
    if isinstance(node, InList):
        kw = "NOT IN" if node.negate else "IN"
        return f"{format_path(node.path)} {kw} ({', '.join(map(format_value, node.values))})"
    if isinstance(node, Contains):
        return f"{format_path(node.path)} CONTAINS {format_value(node.value)}"
    if isinstance(node, StartsWith):
        return f"{format_path(node.path)} STARTSWITH {format_value(node.prefix)}"
    if isinstance(node, Exists):
        return f"{format_path(node.path)} EXISTS"
    if isinstance(node, IsNull):
        return f"{format_path(node.path)} IS {'NOT NULL' if node.negate else 'NULL'}"
    if isinstance(node, And):
        return " AND ".join(
            f"({format_node(i)})" if isinstance(i, Or) else format_node(i) for i in node.items
        )
    if isinstance(node, Or):
        return " OR ".join(format_node(i) for i in node.items)
    if isinstance(node, Not):
        inner = format_node(node.item)
        return f"NOT ({inner})" if isinstance(node.item, (And, Or)) else f"NOT {inner}"
    fmt = getattr(node, "_format_string", None)  # ANY(...), HAS_ID(...): _filter_any/_ids
    if fmt is not None:
        return fmt()
    raise TypeError(f"not a filter node: {node!r}")  # pragma: no cover


def evaluate(node: Node, metadata: Mapping[str, Any]) -> bool:
    """True if ``metadata`` satisfies ``node`` (same as ``node.matches``)."""
    return node.matches(metadata)
