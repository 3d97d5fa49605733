"""Weaviate ``where`` filter dicts, mapped onto vecstore's filter AST.

Accepted (as in Weaviate's GraphQL/REST documentation)::

    {"path": ["category"], "operator": "Equal", "valueText": "tech"}
    {"operator": "And" | "Or", "operands": [<where>, ...]}
    {"operator": "Not", "operands": [<where>]}

``path`` is a list of names (several = a nested field, ``["user", "age"]``;
a str is one name).  The value is exactly one of ``valueText``
``valueString`` ``valueInt`` ``valueNumber`` ``valueBoolean`` ``valueDate``
or, for ContainsAny/ContainsAll/ContainsNone, their ``...Array`` forms.

    Equal v              ANY(p = v)        (on an array: some element equals v)
    NotEqual v           NOT ANY(p = v)    (a missing property qualifies)
    GreaterThan v, ...   ANY(p > v), >=, <, <=
    Like "pat"           "abc" -> ANY(p = "abc"), "ab*" -> ANY(p STARTSWITH "ab"),
                         "*ab*" -> ANY(p CONTAINS "ab"), "*" -> ANY(p STARTSWITH "")
    ContainsAny [vs]     ANY(p IN (vs))
    ContainsAll [vs]     ANY(p = v1) AND ANY(p = v2) ...
    ContainsNone [vs]    NOT ANY(p IN (vs))
    IsNull true/false    p IS NULL / p IS NOT NULL

Differences from Weaviate: values are compared whole and case-sensitively
(no tokenization), Like supports only the pattern shapes above (others,
``?`` included, are rejected), ``valueDate`` compares as a string (ISO-8601
timestamps written alike order correctly), numbers compare numerically.
WithinGeoRange and unknown operators or keys raise :class:`FilterError`
naming the key path (e.g. ``operands[1].valueInt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import FilterError
from .anyof import AnyElem
from .ast import And, Compare, Contains, InList, IsNull, Node, Not, Or, StartsWith
from .dict import _child, _error
from .values import MAX_DEPTH, Scalar, check_literal

_TYPES: dict[str, Any] = {"Text": str, "String": str, "Date": str, "Int": int,
                          "Number": (int, float), "Boolean": bool}
SCALAR_KEYS = {f"value{t}": t for t in _TYPES}
ARRAY_KEYS = {f"value{t}Array": t for t in _TYPES}
_CMP = {"Equal": "=", "GreaterThan": ">", "GreaterThanEqual": ">=", "LessThan": "<",
        "LessThanEqual": "<="}
OPERATORS = ("And", "Or", "Not", *_CMP, "NotEqual", "Like", "ContainsAny", "ContainsAll",
             "ContainsNone", "IsNull", "WithinGeoRange")
_KEYS = {"operator", "path", "operands", *SCALAR_KEYS, *ARRAY_KEYS, "valueGeoRange"}


def looks_like_weaviate(obj: Mapping[Any, Any]) -> bool:
    """Weaviate's shape: a known ``operator`` with ``path`` or ``operands``, and
    only Weaviate's keys (see :mod:`vecstore._filter` for the rule)."""
    return (obj.get("operator") in OPERATORS and set(obj) <= _KEYS
            and ("path" in obj or "operands" in obj))


def parse_weaviate(obj: Any) -> Node:
    """A Weaviate ``where`` dict as an AST node."""
    return _where(obj, "", 0)


def _where(obj: Any, kp: str, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise _error(kp, f"filter nested too deeply: more than {MAX_DEPTH} levels")
    if not isinstance(obj, Mapping):
        raise _error(kp, f"expected a Weaviate where dict, got {type(obj).__name__}")
    obj = {k: v for k, v in obj.items() if v is not None}
    for k in obj:
        if k not in _KEYS:
            raise _error(_child(kp, k), f"unknown key {k!r} in a Weaviate where filter")
    op = obj.get("operator")
    here = _child(kp, "operator")
    if op not in OPERATORS:
        raise _error(here, f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    if op in ("And", "Or", "Not"):
        extra = sorted(k for k in obj if k not in ("operator", "operands"))
        if extra:
            raise _error(_child(kp, extra[0]), f"{op} takes operands only")
        ops = obj.get("operands")
        okp = _child(kp, "operands")
        if not isinstance(ops, (list, tuple)) or not ops:
            raise _error(okp, f"{op} needs a non-empty list of operands")
        items = [_where(o, f"{okp}[{i}]", depth + 1) for i, o in enumerate(ops)]
        try:
            if op == "Not":
                if len(items) != 1:
                    raise _error(okp, "Not takes exactly one operand")
                return Not(items[0])
            return And.of(*items) if op == "And" else Or.of(*items)
        except FilterError as e:
            if getattr(e, "key_path", None) is not None:
                raise
            raise _error(okp, str(e)) from None
    if "operands" in obj:
        raise _error(_child(kp, "operands"), f"{op} takes a path and a value, not operands")
    if op == "WithinGeoRange":
        raise _error(here, "WithinGeoRange is not supported (vecstore has no geo index)")
    p = _path(obj.get("path"), _child(kp, "path"))
    vkeys = [k for k in obj if k.startswith("value")]
    if len(vkeys) != 1:
        raise _error(kp, f"{op} needs exactly one value key (valueText, valueInt, valueNumber, "
                         f"valueBoolean, ...), got {vkeys or 'none'}")
    (vk,) = vkeys
    vhere = _child(kp, vk)
    values = _values(vk, obj[vk], vhere)
    is_array = vk in ARRAY_KEYS
    try:
        if op in ("ContainsAny", "ContainsAll", "ContainsNone"):
            if not values:
                raise _error(vhere, f"{op} needs at least one value")
            if op == "ContainsAll":
                return And.of(*(AnyElem(Compare(p, "=", v)) for v in values))
            node = AnyElem(InList(p, tuple(values)))
            return Not(node) if op == "ContainsNone" else node
        if is_array:
            raise _error(vhere, f"{op} takes a single value, not {vk}; "
                                "use ContainsAny/ContainsAll for several")
        (v,) = values
        if op == "IsNull":
            if not isinstance(v, bool):
                raise _error(vhere, "IsNull needs valueBoolean: true or false")
            return IsNull(p, negate=not v)
        if op == "Like":
            return AnyElem(_like(p, v, vhere))
        if op == "NotEqual":
            return Not(AnyElem(Compare(p, "=", v)))
        return AnyElem(Compare(p, _CMP[op], v))
    except FilterError as e:
        if getattr(e, "key_path", None) is not None:
            raise
        raise _error(vhere, str(e)) from None


def _path(raw: Any, kp: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not raw or \
            not all(isinstance(x, str) and x for x in raw):
        raise _error(kp, f"path must be a non-empty list of property names, got {raw!r}")
    return tuple(raw)


def _values(vk: str, raw: Any, kp: str) -> list[Scalar]:
    if vk == "valueGeoRange":
        raise _error(kp, "valueGeoRange is not supported (vecstore has no geo index)")
    kind = SCALAR_KEYS.get(vk) or ARRAY_KEYS[vk]
    items = raw if vk in ARRAY_KEYS else [raw]
    if vk in ARRAY_KEYS and not isinstance(raw, (list, tuple)):
        raise _error(kp, f"{vk} needs a list, got {raw!r}")
    want = _TYPES[kind]
    out: list[Scalar] = []
    for i, v in enumerate(items):
        ikp = f"{kp}[{i}]" if vk in ARRAY_KEYS else kp
        if not isinstance(v, want) or (kind != "Boolean" and isinstance(v, bool)):
            raise _error(ikp, f"{vk} needs {kind.lower()} values, got {v!r}")
        try:
            out.append(check_literal(v))
        except FilterError as e:
            raise _error(ikp, str(e)) from None
    return out


def _like(p: tuple[str, ...], pat: Scalar, kp: str) -> Node:
    if not isinstance(pat, str):
        raise _error(kp, "Like needs a text pattern (valueText)")
    if "?" in pat:
        raise _error(kp, "Like patterns with '?' are not supported; use '*' at the end "
                         "(prefix) or at both ends (substring)")
    if "*" not in pat:
        return Compare(p, "=", pat)
    body = pat.strip("*")
    if "*" not in body:
        if pat == "*" * len(pat) or (pat.endswith("*") and not pat.startswith("*")):
            return StartsWith(p, body)
        if pat.startswith("*") and pat.endswith("*"):
            return Contains(p, body)
    raise _error(kp, f"Like pattern {pat!r} is not supported; supported: 'abc', 'abc*', "
                     "'*abc*' and '*'")
