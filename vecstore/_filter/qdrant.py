"""Qdrant filter dicts, mapped onto vecstore's filter AST.

Accepted (as in Qdrant's documentation)::

    {"must": [...], "should": [...], "must_not": [...],
     "min_should": {"conditions": [...], "min_count": 2}}

any subset of the keys, a clause being a list of conditions (or a single
one).  ``must`` = all hold, ``should`` = at least one holds, ``must_not`` =
none holds, ``min_should`` = at least ``min_count`` hold; the clauses present
are ANDed; an empty list or ``{}`` is no condition.  A condition is::

    {"key": "city", "match": {"value": "NYC"}}        ANY(city = "NYC")
    {"key": k, "match": {"any": [v, ...]}}            ANY(k IN (v, ...))
    {"key": k, "match": {"except": [v, ...]}}         ANY(k NOT IN (v, ...) AND k IS NOT NULL)
    {"key": k, "match": {"text": "s"}}                ANY(k CONTAINS "s")   (substring)
    {"key": k, "range": {"gt": 1, "lte": 5}}          ANY(k > 1 AND k <= 5)
    {"is_empty": {"key": k}}                          k IS NULL OR NOT ANY(k EXISTS)
    {"is_null": {"key": k}}                           k = null
    {"has_id": [1, "a"]}                              HAS_ID("1", "a")
    {"must": ...} / {"should": ...} / ...             a nested filter

Semantics follow Qdrant: a condition on an array field holds if some element
satisfies it (``ANY``, see :mod:`vecstore._filter_any`); a range needs
numbers (string bounds compare as strings, so ISO-8601 timestamps written
alike order correctly); ``except`` needs a non-null value not listed (on an
array: some such element), so a missing field, null or ``[]`` fails it;
``is_empty`` is missing, null or ``[]``; ``is_null`` is an explicit null.
``except`` also fails on a dict or nested-list value (Qdrant passes them).
Keys are dotted paths (``"user.age"``); a trailing ``[]`` (``"tags[]"``) is
the field itself.  Differences: numbers compare numerically (``match value
1`` matches ``1.0``), a path does not walk through arrays (``a[].b`` and
``"a.b"`` over a list of objects are rejected / do not match), and ``match
text`` is a plain substring test (no full-text index).  Rejected with a
:class:`FilterError` naming the key path: geo conditions, ``values_count``,
``nested``, ``has_vector``, ``match`` ``phrase``/``text_any``, unknown keys.

A ``qdrant_client.models.Filter`` is read through its dict form
(``model_dump(by_alias=True, exclude_none=True)``; vecstore does not import
qdrant_client).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from math import comb
from typing import Any

from .._errors import FilterError
from .anyof import AnyElem
from .ast import And, Compare, Contains, Exists, InList, IsNull, Node, Not, Or
from .dict import _child, _error, _literal
from .ids import HasId
from .values import MAX_DEPTH

CLAUSES = ("must", "should", "must_not", "min_should")
_FIELD_KEYS = ("match", "range", "geo_bounding_box", "geo_radius", "geo_polygon",
               "values_count", "datetime_range")
_RANGE_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
#: Most AND-terms ``min_should`` may expand to (at least k of n conditions).
MAX_MIN_SHOULD_TERMS = 256


def _plain_value(v: Any) -> bool:
    """A value the vecstore/Pinecone dict form can never hold at a field."""
    return isinstance(v, (list, tuple)) or (
        isinstance(v, Mapping) and not any(isinstance(k, str) and k.startswith("$") for k in v))


def looks_like_qdrant(obj: Mapping[Any, Any]) -> bool:
    """Qdrant's shape, and one the plain dict form would reject (a list, or a
    dict without ``$`` operators, as a field's value): see :mod:`vecstore._filter`."""
    if not obj:
        return False
    keys = set(obj)
    if keys <= set(CLAUSES):  # nulls aside (a model's dump may keep them)
        vals = [v for v in obj.values() if v is not None]
        return bool(vals) and all(_plain_value(v) for v in vals)
    if "key" in keys and isinstance(obj["key"], str):
        return any(k in obj and isinstance(obj[k], Mapping) for k in _FIELD_KEYS)
    if keys == {"has_id"}:
        return isinstance(obj["has_id"], (list, tuple))
    if keys in ({"is_empty"}, {"is_null"}):
        return _plain_value(next(iter(obj.values())))
    return False


def parse_qdrant(obj: Any) -> Node | None:
    """A Qdrant filter (or a single condition) as an AST node; ``None`` if empty."""
    if not isinstance(obj, Mapping):
        raise _error("", f"expected a Qdrant filter dict, got {type(obj).__name__}")
    if obj and not set(obj) <= set(CLAUSES):
        return _condition(obj, "", 0)
    return _filter(obj, "", 0)


def _filter(obj: Mapping[Any, Any], kp: str, depth: int) -> Node | None:
    if depth > MAX_DEPTH:
        raise _error(kp, f"filter nested too deeply: more than {MAX_DEPTH} levels")
    parts: list[Node] = []
    for key, value in obj.items():
        here = _child(kp, key)
        if key not in CLAUSES:
            raise _error(here, f"unknown Qdrant filter key {key!r}; use {', '.join(CLAUSES)}")
        if value is None:
            continue
        if key == "min_should":
            node = _min_should(value, here, depth)
            if node is not None:
                parts.append(node)
            continue
        items = _conditions(value, here, depth)
        if not items:
            continue
        if key == "must":
            parts.extend(n for n in items if n is not None)
        elif key == "should":
            if all(n is not None for n in items):
                parts.append(_build(Or.of, items, here))  # type: ignore[arg-type]
            # else: an empty sub-filter matches everything, so the clause always holds
        else:
            if any(n is None for n in items):
                raise _error(here, "must_not holds an empty filter, which matches every "
                                   "point: nothing could match")
            parts.append(_build(lambda *a: Not(Or.of(*a)), items, here))  # type: ignore[arg-type]
    return _build(And.of, parts, kp) if parts else None


def _build(fn: Any, items: list[Node], kp: str) -> Node:
    try:
        return fn(*items)
    except FilterError as e:
        raise _error(kp, str(e)) from None


def _conditions(value: Any, kp: str, depth: int) -> list[Node | None]:
    if isinstance(value, Mapping):
        return [_condition(value, kp, depth)]
    if not isinstance(value, (list, tuple)):
        raise _error(kp, f"expected a list of conditions, got {type(value).__name__}")
    return [_condition(c, f"{kp}[{i}]", depth) for i, c in enumerate(value)]


def _min_should(value: Any, kp: str, depth: int) -> Node | None:
    if not isinstance(value, Mapping) or "conditions" not in value or "min_count" not in value:
        raise _error(kp, "min_should needs {'conditions': [...], 'min_count': n}")
    k = value["min_count"]
    if isinstance(k, bool) or not isinstance(k, int):
        raise _error(_child(kp, "min_count"), f"min_count must be an int, got {k!r}")
    items = _conditions(value["conditions"], _child(kp, "conditions"), depth)
    if k <= 0:
        return None
    n = len(items)
    if k > n:
        raise _error(kp, f"min_count {k} exceeds the {n} conditions: nothing could match")
    if any(i is None for i in items):
        raise _error(_child(kp, "conditions"), "an empty filter in min_should is not supported")
    nodes: list[Node] = items  # type: ignore[assignment]
    if comb(n, k) > MAX_MIN_SHOULD_TERMS:
        raise _error(kp, f"min_should with {k} of {n} conditions expands to {comb(n, k)} "
                         f"terms (the limit is {MAX_MIN_SHOULD_TERMS})")
    terms = [_build(And.of, list(c), kp) for c in combinations(nodes, k)]
    return _build(Or.of, terms, kp)


def key_path(key: Any, kp: str) -> tuple[str, ...]:
    if not isinstance(key, str) or not key:
        raise _error(kp, f"key must be a non-empty str, got {key!r}")
    name = key.removesuffix("[]")
    if "[" in name or "]" in name:
        raise _error(kp, f"key {key!r}: array paths such as 'a[].b' are not supported "
                         "(a trailing [] is: 'tags[]' is the field tags)")
    parts = tuple(name.split("."))
    if "" in parts:
        raise _error(kp, f"key {key!r} has an empty name; nested fields are written 'user.age'")
    return parts


def _condition(c: Any, kp: str, depth: int) -> Node | None:
    if not isinstance(c, Mapping):
        raise _error(kp, f"expected a condition dict, got {type(c).__name__}")
    c = {k: v for k, v in c.items() if v is not None}  # pydantic dumps may hold nulls
    if set(c) <= set(CLAUSES):  # a nested filter ({} holds always)
        return _filter(c, kp, depth + 1)
    if "has_id" in c:
        _only(c, {"has_id"}, kp)
        ids = c["has_id"]
        if not isinstance(ids, (list, tuple)):
            raise _error(_child(kp, "has_id"), f"has_id needs a list of ids, got {ids!r}")
        try:
            return HasId(tuple(ids))
        except FilterError as e:
            raise _error(_child(kp, "has_id"), str(e)) from None
    for name in ("is_empty", "is_null"):
        if name in c:
            _only(c, {name}, kp)
            arg = c[name]
            here = _child(kp, name)
            if not isinstance(arg, Mapping) or "key" not in arg:
                raise _error(here, f"{name} needs {{'key': field}}")
            p = key_path(arg["key"], _child(here, "key"))
            if name == "is_null":
                return Compare(p, "=", None)
            return Or((IsNull(p), Not(AnyElem(Exists(p)))))
    if "key" in c:
        return _field(c, kp)
    for bad in ("nested", "has_vector"):
        if bad in c:
            raise _error(_child(kp, bad), f"Qdrant's {bad} condition is not supported")
    raise _error(kp, f"unknown condition with keys {sorted(map(str, c))}; expected a field "
                     "condition {'key': ..., 'match'|'range': ...}, has_id, is_empty, is_null, "
                     "or a nested must/should/must_not filter")


def _only(c: Mapping[Any, Any], allowed: set[str], kp: str) -> None:
    extra = sorted(str(k) for k in c if k not in allowed)
    if extra:
        raise _error(_child(kp, extra[0]), f"unexpected key {extra[0]!r} in this condition")


def _field(c: Mapping[Any, Any], kp: str) -> Node:
    p = key_path(c["key"], _child(kp, "key"))
    kinds = [k for k in c if k != "key"]
    for k in kinds:
        if k not in ("match", "range"):
            msg = "is not supported" if k in _FIELD_KEYS else "is not a Qdrant field condition"
            raise _error(_child(kp, k), f"{k} {msg}; use match or range")
    if len(kinds) != 1:
        raise _error(kp, "a field condition needs exactly one of match or range")
    (kind,) = kinds
    here = _child(kp, kind)
    arg = c[kind]
    if not isinstance(arg, Mapping):
        raise _error(here, f"{kind} needs a dict, got {type(arg).__name__}")
    arg = {("except" if k == "except_" else k): v for k, v in arg.items() if v is not None}
    if kind == "range":
        if not arg:
            raise _error(here, "range needs at least one of gt, gte, lt, lte")
        parts = []
        for op, v in arg.items():
            if op not in _RANGE_OPS:
                raise _error(_child(here, op), f"unknown range bound {op!r}; use gt, gte, lt, lte")
            lit = _literal(v, _child(here, op))
            if lit is None or isinstance(lit, bool):
                raise _error(_child(here, op), f"a range bound must be a number, got {v!r}")
            parts.append(Compare(p, _RANGE_OPS[op], lit))
        return AnyElem(And.of(*parts))
    if len(arg) != 1:
        raise _error(here, "match needs exactly one of value, any, except, text")
    ((mk, mv),) = arg.items()
    mhere = _child(here, mk)
    if mk == "value":
        lit = _literal(mv, mhere)
        if lit is None:
            raise _error(mhere, "match value cannot be null; use is_null")
        return AnyElem(Compare(p, "=", lit))
    if mk in ("any", "except"):
        if not isinstance(mv, (list, tuple)):
            raise _error(mhere, f"match {mk} needs a list of values, got {mv!r}")
        vals = tuple(_literal(v, f"{mhere}[{i}]") for i, v in enumerate(mv))
        if not vals:
            raise _error(mhere, f"match {mk} needs at least one value")
        if mk == "any":
            return AnyElem(InList(p, vals))
        return AnyElem(And((InList(p, vals, negate=True), IsNull(p, negate=True))))
    if mk == "text":
        if not isinstance(mv, str):
            raise _error(mhere, f"match text needs a str, got {mv!r}")
        return AnyElem(Contains(p, mv))
    if mk in ("phrase", "text_any"):
        raise _error(mhere, f"match {mk} needs a full-text index, which vecstore does not have; "
                            "match text is a substring test")
    raise _error(mhere, f"unknown match kind {mk!r}; use value, any, except or text")
