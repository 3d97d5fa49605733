"""Dict form of filters: parser and printer (see :mod:`vecstore._filter`).

Errors name the key path where the filter went wrong, e.g.
``$and[1].price.$lte``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import FilterError
from .anyof import AnyElem
from .ast import And, Compare, Contains, Exists, InList, IsNull, Node, Not, Or, StartsWith
from .ids import HasId
from .parse import parse_path_text
from .values import MAX_DEPTH, DepthError, Scalar, check_literal, format_ident

_CMP_OPS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_OP_NAMES = {v: k for k, v in _CMP_OPS.items()}
FIELD_OPERATORS = (*_CMP_OPS, "$in", "$nin", "$exists", "$contains", "$startswith", "$isnull")
COMBINATORS = ("$and", "$or", "$not", "$any", "$hasid")


def _error(key_path: str, message: str) -> FilterError:
    err = FilterError(f"invalid filter at key {key_path or '<top level>'}: {message}")
    err.key_path = key_path  # type: ignore[attr-defined]
    return err


def _child(parent: str, key: Any) -> str:
    name = key if isinstance(key, str) else repr(key)
    return f"{parent}.{name}" if parent else name


def _literal(value: Any, key_path: str) -> Scalar:
    if isinstance(value, (list, tuple)):
        raise _error(
            key_path,
            "expected a single value, got a list; use {'$in': [...]} to match any of "
            "several values, or {'$contains': value} to test list membership",
        )
    if isinstance(value, Mapping):
        raise _error(key_path,
                     "expected a single value (str, int, float, bool or None), got a dict")
    try:
        return check_literal(value)
    except FilterError as e:
        raise _error(key_path, str(e)) from None


def _field_path(key: str, key_path: str) -> tuple[str, ...]:
    """A dict-form field key: dotted (``user.age``), or string syntax if it has a backtick."""
    if "`" in key:
        try:
            return parse_path_text(key)
        except FilterError as e:
            first = str(e).splitlines()[0]
            raise _error(key_path, f"cannot read the field name {key!r} ({first})") from None
    parts = tuple(key.split("."))
    if "" in parts:
        raise _error(
            key_path,
            f"empty name in the field key {key!r}; write nested fields as 'user.age' "
            "and names holding dots or other odd characters in backticks, e.g. '`odd.key`'",
        )
    return parts


def _combine(nodes: list[Node], key_path: str) -> Node:
    try:
        return And.of(*nodes)
    except DepthError as e:
        raise _error(key_path, str(e)) from None


def _sub_filter(obj: Any, key_path: str, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise _error(
            key_path, f"filter nested too deeply: more than {MAX_DEPTH} levels of $and/$or/$not"
        )
    if not isinstance(obj, Mapping):
        raise _error(key_path, f"expected a filter dict, got {type(obj).__name__}")
    if not obj:
        raise _error(key_path, "empty filter dict: a sub-filter needs at least one condition")
    node = _parse_mapping(obj, key_path, depth)
    assert node is not None
    return node


def _parse_mapping(obj: Mapping[Any, Any], key_path: str, depth: int) -> Node | None:
    nodes: list[Node] = []
    for key, value in obj.items():
        kp = _child(key_path, key)
        if not isinstance(key, str):
            raise _error(kp, f"keys must be str, got {type(key).__name__}")
        if key in ("$and", "$or"):
            if not isinstance(value, (list, tuple)) or not value:
                raise _error(kp, f"{key} needs a non-empty list of filter dicts")
            items = [_sub_filter(v, f"{kp}[{i}]", depth + 1) for i, v in enumerate(value)]
            try:
                nodes.append(And.of(*items) if key == "$and" else Or.of(*items))
            except DepthError as e:
                raise _error(kp, str(e)) from None
        elif key == "$not":
            inner = _sub_filter(value, kp, depth + 1)
            try:
                nodes.append(Not(inner))
            except DepthError as e:
                raise _error(kp, str(e)) from None
        elif key == "$any":
            inner = _sub_filter(value, kp, depth + 1)
            try:
                nodes.append(AnyElem(inner))
            except FilterError as e:
                raise _error(kp, str(e)) from None
        elif key == "$hasid":
            if not isinstance(value, (list, tuple)):
                raise _error(kp, f"$hasid needs a non-empty list of ids, got {value!r}")
            try:
                nodes.append(HasId(tuple(value)))
            except FilterError as e:
                raise _error(kp, str(e)) from None
        elif key in FIELD_OPERATORS:
            raise _error(
                kp,
                f"{key} must be applied to a field, e.g. {{'price': {{'{key}': ...}}}}",
            )
        elif key.startswith("$"):
            raise _error(
                kp,
                f"unknown operator {key}; combinators are {', '.join(COMBINATORS)} and field "
                f"operators are {', '.join(FIELD_OPERATORS)} (a field named {key} is written "
                f"'`{key}`')",
            )
        else:
            path = _field_path(key, kp)
            nodes.append(_field_condition(path, value, kp))
    if not nodes:
        return None
    return _combine(nodes, key_path)


def _field_condition(path: tuple[str, ...], value: Any, key_path: str) -> Node:
    if not isinstance(value, Mapping):
        return Compare(path, "=", _literal(value, key_path))
    if not value:
        raise _error(key_path, "empty operator dict; use e.g. {'$eq': value} or {'$exists': true}")
    plain = [k for k in value if not (isinstance(k, str) and k.startswith("$"))]
    if plain:
        first = plain[0]
        if len(plain) == len(value) and isinstance(first, str):
            dotted = ".".join(path) + "." + first
            raise _error(
                key_path,
                "a dict value must hold $operators; to match a nested field use a dotted key, "
                f"e.g. {{'{dotted}': ...}}",
            )
        raise _error(_child(key_path, first), "cannot mix $operators and plain keys in one dict")
    nodes = [_operator(path, op, arg, _child(key_path, op)) for op, arg in value.items()]
    return _combine(nodes, key_path)


def _operator(path: tuple[str, ...], op: str, arg: Any, kp: str) -> Node:
    if op in _CMP_OPS:
        return Compare(path, _CMP_OPS[op], _literal(arg, kp))
    if op in ("$in", "$nin"):
        if not isinstance(arg, (list, tuple)) or not arg:
            raise _error(kp, f"{op} needs a non-empty list of values, e.g. {{'{op}': ['a', 'b']}}")
        values = tuple(_literal(v, f"{kp}[{i}]") for i, v in enumerate(arg))
        return InList(path, values, op == "$nin")
    if op in ("$exists", "$isnull"):
        if not isinstance(arg, bool):
            raise _error(kp, f"{op} needs true or false, got {arg!r}")
        if op == "$isnull":
            return IsNull(path, not arg)
        return Exists(path) if arg else Not(Exists(path))
    if op == "$contains":
        return Contains(path, _literal(arg, kp))
    if op == "$startswith":
        if not isinstance(arg, str):
            raise _error(kp, f"$startswith needs a str, got {arg!r}")
        return StartsWith(path, str(arg))
    hint = " ($and/$or/$not go at the top level of a filter dict)" if op in COMBINATORS else ""
    raise _error(kp, f"unknown field operator {op}; use one of {', '.join(FIELD_OPERATORS)}{hint}")


def parse_dict(obj: Mapping[Any, Any]) -> Node | None:
    """Parse the dict form; ``{}`` (no condition) gives ``None``."""
    return _parse_mapping(obj, "", 0)


def format_key(path: tuple[str, ...]) -> str:
    """A dict-form field key that reads back as ``path``."""
    if all(p and "." not in p and "`" not in p for p in path) and not path[0].startswith("$"):
        return ".".join(path)
    return ".".join(format_ident(p) for p in path)


def to_dict(node: Node) -> dict[str, Any]:
    """The dict form of ``node`` (reads back as an equal node)."""
    if isinstance(node, Compare):
        key = format_key(node.path)
        if node.op == "=":
            return {key: node.value}
        return {key: {_OP_NAMES[node.op]: node.value}}
    if isinstance(node, InList):
        return {format_key(node.path): {"$nin" if node.negate else "$in": list(node.values)}}
    if isinstance(node, Contains):
        return {format_key(node.path): {"$contains": node.value}}
    if isinstance(node, StartsWith):
        return {format_key(node.path): {"$startswith": node.prefix}}
    if isinstance(node, Exists):
        return {format_key(node.path): {"$exists": True}}
    if isinstance(node, IsNull):
        return {format_key(node.path): {"$isnull": not node.negate}}
    if isinstance(node, And):
        return {"$and": [to_dict(i) for i in node.items]}
    if isinstance(node, Or):
        return {"$or": [to_dict(i) for i in node.items]}
    if isinstance(node, Not):
        return {"$not": to_dict(node.item)}
    custom = getattr(node, "_to_dict", None)  # $any, $hasid: anyof.py, ids.py
    if custom is not None:
        return custom(to_dict)
    raise TypeError(f"not a filter node: {node!r}")  # pragma: no cover
