"""``ANY(...)``: a condition on one field that looks inside a list.

``ANY(tags = 'a')`` holds when the field ``tags`` is a list with an element
satisfying ``tags = 'a'``, or, when ``tags`` is not a list (a scalar, a dict,
null or missing), when ``tags = 'a'`` itself holds.  The inner condition may
combine (AND/OR/NOT) conditions on that one field only; each list element is
tested on its own, so ``ANY(n > 1 AND n < 3)`` needs a single element between
1 and 3.  An empty list has no element, so ``ANY(...)`` is false for it.

This is how Qdrant and Weaviate read conditions on array fields (see
:mod:`vecstore._filter_qdrant`, :mod:`vecstore._filter_weaviate`).
String form ``ANY(<condition>)``, dict form ``{"$any": {<filter dict>}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import FilterError
from .ast import And, Compare, InList, IsNull, Node, Or, StartsWith, _check_depth, format_node
from .values import LIST, MISSING, family, getter

#: Inner leaves that are false on a dict or a nested list (so an index that
#: keeps only scalar list elements evaluates them exactly).
SCALAR_ONLY = (Compare, InList, StartsWith)


def _leaves(node: Node) -> list[Node]:
    out: list[Node] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        kids = cur.children()
        if kids and not isinstance(cur, AnyElem):
            stack.extend(kids)
        else:
            out.append(cur)
    return out


def element_safe(node: Node) -> bool:
    """True if ``node`` is false on any non-scalar value (indexable inside ANY)."""
    if isinstance(node, (And, Or)):
        return all(element_safe(i) for i in node.items)
    if isinstance(node, IsNull):
        return not node.negate
    return isinstance(node, SCALAR_ONLY)


@dataclass(frozen=True, eq=False)
class AnyElem(Node):
    """``ANY(item)``: ``item`` (conditions on one field) holds for the field's
    value, or for some element when the value is a list."""

    item: Node

    def __post_init__(self) -> None:
        if not isinstance(self.item, Node):
            raise FilterError(f"ANY needs a filter node, got {self.item!r}")
        paths: set[tuple[str, ...]] = set()
        for leaf in _leaves(self.item):
            p = getattr(leaf, "path", None)
            if p is None or isinstance(leaf, AnyElem):
                raise FilterError(
                    "ANY(...) takes conditions on one field (no ANY or HAS_ID inside)")
            paths.add(p)
        if len(paths) != 1:
            raise FilterError(
                "ANY(...) takes conditions on exactly one field, got "
                + ", ".join(sorted(".".join(p) for p in paths)))
        (path,) = paths
        object.__setattr__(self, "path", path)
        depth = _check_depth((self.item,))
        inner = self.item._fn
        get = getter(path)
        head, rest = path[0], path[1:]

        def wrap(e: Any) -> dict[str, Any]:
            for k in reversed(rest):
                e = {k: e}
            return {head: e}

        def fn(md: Any) -> bool:
            x = get(md)
            if x is not MISSING and family(x) == LIST:
                for e in x:
                    if inner(wrap(e)):
                        return True
                return False
            return inner(md)

        self._finish(("any", self.item._key), fn, depth)

    def children(self) -> tuple[Node, ...]:
        return (self.item,)

    def _format_string(self) -> str:
        return f"ANY({format_node(self.item)})"

    def _to_dict(self, to_dict: Callable[[Node], dict[str, Any]]) -> dict[str, Any]:
        return {"$any": to_dict(self.item)}

