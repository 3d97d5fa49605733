"""Filter literals and paths: type families, validation, matching
predicates and their printing (shared by the AST, the parsers and printers).

Semantics are described in :mod:`vecstore._filter`.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from .._errors import FilterError

Scalar: TypeAlias = str | int | float | bool | None
Matcher: TypeAlias = Callable[[Any], bool]

#: Most levels of AND / OR / NOT (and, in the string form, parentheses).
MAX_DEPTH = 64
#: Largest magnitude (in bits) of an integer literal.
MAX_INT_BITS = 1024

COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=")
KEYWORDS = frozenset(
    {"AND", "OR", "NOT", "IN", "CONTAINS", "STARTSWITH", "EXISTS", "IS", "NULL", "TRUE", "FALSE"}
)

MISSING: Any = object()
# Type families.  bool is its own family; int and float are both numbers.
NULL, BOOL, NUM, STR, LIST, DICT, OTHER = range(7)
SCALAR_FAMILIES = frozenset({NULL, BOOL, NUM, STR})


class DepthError(FilterError):
    """Internal: a composite node would nest deeper than :data:`MAX_DEPTH`."""


def family(x: Any) -> int:
    """The type family of a metadata value or literal."""
    t = type(x)
    if t is str:
        return STR
    if t is int or t is float:
        return NUM
    if t is bool:
        return BOOL
    if x is None:
        return NULL
    if isinstance(x, (int, float)):
        return NUM
    if isinstance(x, str):
        return STR
    if isinstance(x, (list, tuple)):
        return LIST
    if isinstance(x, Mapping):
        return DICT
    return OTHER


def check_literal(value: Any) -> Scalar:
    """Validate a literal and return it as an exact ``str/int/float/bool/None``.

    Raises :class:`FilterError` (with a message but no location) otherwise.
    """
    if value is None or value is True or value is False:
        return value
    t = type(value)
    if t is not bool and isinstance(value, int):
        value = int(value)
        if value.bit_length() > MAX_INT_BITS:
            raise FilterError(f"integer literal too large (over {MAX_INT_BITS} bits)")
        return value
    if isinstance(value, float):
        value = float(value)
        if not math.isfinite(value):
            raise FilterError(
                f"{value!r} is not allowed as a value: metadata cannot hold NaN or infinity"
            )
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        raise FilterError("expected a single value, got a list")
    raise FilterError(
        f"unsupported value type {t.__name__}: use str, int, float, bool or None"
    )


def value_key(value: Scalar) -> tuple[Any, ...]:
    """A type-tagged key, so that equality of literals is type exact."""
    return (type(value).__name__, value)


def check_path(path: Any) -> tuple[str, ...]:
    """Validate a field path (a non-empty tuple or list of str)."""
    if isinstance(path, (tuple, list)) and path and all(isinstance(p, str) for p in path):
        return tuple(str(p) for p in path)
    raise FilterError(
        f"a field path must be a non-empty tuple of str such as ('user', 'age'), got {path!r}"
    )


def getter(path: tuple[str, ...]) -> Callable[[Any], Any]:
    """Compile a function that resolves ``path`` in metadata (or ``MISSING``)."""

    def get(md: Any) -> Any:
        cur = md
        for k in path:
            if type(cur) is not dict and not isinstance(cur, Mapping):
                return MISSING
            cur = cur.get(k, MISSING)
            if cur is MISSING:
                return MISSING
        return cur

    return get


def leaf(path: tuple[str, ...], pred: Matcher, when_missing: bool = False) -> Matcher:
    """Combine a path resolver and a predicate on the resolved value."""
    if len(path) == 1:  # the common case, inlined
        (key,) = path

        def fn1(md: Any) -> bool:
            if type(md) is dict or isinstance(md, Mapping):
                x = md.get(key, MISSING)
                if x is not MISSING:
                    return pred(x)
            return when_missing

        return fn1
    get = getter(path)

    def fn(md: Any) -> bool:
        x = get(md)
        if x is MISSING:
            return when_missing
        return pred(x)

    return fn


def false(_x: Any) -> bool:
    return False


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_EXACT = {NUM: (int, float), STR: (str,), BOOL: (bool,)}


def eq_pred(v: Scalar) -> Matcher:
    """Predicate: a value equals ``v`` under the family-exact ``=`` rule."""
    if v is None:
        return lambda x: x is None
    vf = family(v)
    exact = _EXACT[vf]  # fast path on exact types, family() for subclasses
    return lambda x: (type(x) in exact or family(x) == vf) and x == v


def compare_pred(op: str, v: Scalar) -> Matcher:
    """Predicate for `value op v` under the family rules (see vecstore._filter)."""
    if op == "=":
        return eq_pred(v)
    vf = family(v)
    if op == "!=":
        if vf == NULL:
            return false
        exact = _EXACT[vf]
        return lambda x: (type(x) in exact or family(x) == vf) and x != v
    if vf != NUM and vf != STR:
        return false
    exact = _EXACT[vf]
    cmp = _ORDER[op]
    return lambda x: (type(x) in exact or family(x) == vf) and cmp(x, v)


_BARE_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_STR_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f-\x9f]')
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def format_ident(name: str) -> str:
    """A path component, backtick-quoted unless it is a plain non-keyword name."""
    if _BARE_IDENT.fullmatch(name) and name.upper() not in KEYWORDS:
        return name
    return "`" + name.replace("`", "``") + "`"


def format_path(path: tuple[str, ...]) -> str:
    """A field path in the string syntax, e.g. ``user.age``."""
    return ".".join(format_ident(p) for p in path)


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    return _ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


def format_value(value: Scalar) -> str:
    """A literal in the string syntax (floats use ``repr`` to round-trip)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return '"' + _STR_ESCAPE.sub(_escape, value) + '"'
    if isinstance(value, float):
        return repr(value)
    return str(value)
