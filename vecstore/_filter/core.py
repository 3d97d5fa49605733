"""Metadata filters: parsing, matching and printing.

A filter is given as a string, a dict, a :class:`Filter` (or bare AST node) or
``None``; :func:`parse_filter` turns it into a :class:`Filter` (or ``None`` for
"no condition").  ``Filter.matches(metadata)`` evaluates it against one
record's metadata through closures compiled once per node.

String form (keywords case-insensitive)::

    expr  := or
    or    := and ("OR" and)*
    and   := not ("AND" not)*
    not   := "NOT" not | "(" expr ")" | cmp
    cmp   := path op value | path "IN" list | path "NOT IN" list
           | path "CONTAINS" value | path "STARTSWITH" string
           | path "EXISTS" | path "IS NULL" | path "IS NOT NULL"
    op    := "=" | "!=" | "<" | "<=" | ">" | ">="
    path  := name ("." name)*          name: [A-Za-z_][A-Za-z0-9_-]* or `quoted`
    value := 'str' | "str" | number | true | false | null
    list  := "(" value ("," value)* ")" | "[" value ("," value)* "]"

* A bare name that is a keyword (AND OR NOT IN CONTAINS STARTSWITH EXISTS IS
  NULL TRUE FALSE) must be backtick-quoted; a backtick inside a quoted name is
  doubled.  Strings take the escapes ``\\\\ \\' \\" \\n \\t \\r \\uXXXX`` (an
  escaped surrogate pair makes one character).  Numbers are ``-?digits`` with
  an optional fraction and exponent; one with a fraction or an exponent is a
  float.  ``inf`` and ``nan`` are rejected (metadata cannot hold them).
* Limits: 65536 characters, 64 levels of parentheses/NOT and 64 levels of
  AND/OR/NOT in the resulting tree.

Dict form: ``{"category": "tech", "price": {"$lt": 100}}``.  Top-level keys
are ANDed; a field key maps to a literal (``=``) or to a dict of operators
(ANDed): ``$eq $ne $gt $gte $lt $lte $in $nin $exists $contains $startswith
$isnull``; combinators ``$and``/``$or`` (non-empty lists of dicts) and ``$not``
(a dict).  ``{"$exists": false}`` is ``NOT path EXISTS``; ``{"$isnull": b}`` is
``IS NULL`` / ``IS NOT NULL``.  Field keys are dotted paths (``"user.age"``);
a key containing a backtick is read with the string syntax, so
``"`odd.key`.x"`` is the path ``("odd.key", "x")`` and ``"`$x`"`` the field
``$x``.  ``{}`` means no condition.

Semantics (metadata is a JSON-like dict):

* A path walks nested dicts; it is *missing* if a step is absent or the value
  at a step is not a dict.  Type families: bool (not a number), number (int
  and float), str, null, list, dict.
* ``=``: present, same family, equal (numbers numerically); ``x = null`` only
  for an explicit null.  A list or dict never equals a literal.
* ``!=``: present, same family and not equal.  A missing field or another
  family gives false, so ``!=`` is not ``NOT =``, and ``x != null`` is never
  true (use ``IS NOT NULL``).
* ``< <= > >=``: number with number, str with str (Python order); otherwise
  false, never an error.
* ``IN``: present and ``=`` to some element.  ``NOT IN``: present, a scalar
  (str, number, bool or null) and ``=`` to no element.
* ``CONTAINS v``: a list field with an element ``=`` to ``v``, or a str field
  holding the str ``v`` as a substring.  ``STARTSWITH s``: a str field that
  starts with ``s``.
* ``EXISTS``: present (null counts).  ``IS NULL``: missing or null.
  ``IS NOT NULL``: present and not null.
* Any comparison on a missing field is false, so its ``NOT`` is true.
  Precedence: NOT > AND > OR.
* Metadata that is not a mapping (e.g. ``None``) behaves like ``{}``.

Beyond the grammar above (additions that change no valid filter: a name
followed by ``(`` was an error before):

* ``ANY(<conditions on one field>)``: the field is a list with an element
  satisfying them, or is not a list and satisfies them itself
  (:mod:`vecstore._filter_any`); dict form ``{"$any": {...}}``.
* ``HAS_ID('a', 7)``: the record id is one of those listed
  (:mod:`vecstore._filter_ids`); dict form ``{"$hasid": [...]}``.  Such a
  filter is evaluated with the id: ``matches(metadata, id=...)``.

Dialects: a Qdrant filter (:mod:`vecstore._filter_qdrant`) or a Weaviate
``where`` dict (:mod:`vecstore._filter_weaviate`) is read onto the same AST,
and so is any object with ``model_dump()``/``dict()`` (a
``qdrant_client.models.Filter``: its dict form is read).  Detection rule, in
order: a dict is *Qdrant* if its keys are among ``must should must_not
min_should`` and every non-null value is a list or a dict without
``$``-keys, or if it is one Qdrant condition (``key`` with a ``match``/
``range``/... dict, ``has_id`` with a list, ``is_empty``/``is_null`` with a
dict); it is *Weaviate* if ``operator`` is one of Weaviate's operator names,
``path`` or ``operands`` is present and every key is a Weaviate key
(``operator path operands value*``); otherwise it is the dict form above.
The Qdrant shapes are ones the dict form rejects (it never takes a list or
a dict without operators as a field's value), so a field named ``must``
keeps working (``{"must": "x"}``).  The one overlap is a Weaviate-shaped
dict with a str ``path`` (``{"path": "a", "operator": "Equal",
"valueText": "t"}``), read as Weaviate; ``Filter.from_dict``,
``Filter.from_qdrant`` and ``Filter.from_weaviate`` read one form only.

Errors: :class:`FilterError`; the string form names the 0-based offset
(``err.position``) and shows an excerpt with a caret, the dict form names the
key path (``err.key_path``, e.g. ``$and[1].price.$lte``).

``Filter`` also offers ``predicate`` (the compiled matcher, for hot loops),
``fields()``, and ``&``, ``|``, ``~`` to combine filters.  AST equality is
type exact for literals (``x = 1``, ``x = 1.0`` and ``x = true`` are three
different filters).  ``parse_filter(f.to_string())`` and
``parse_filter(f.to_dict())`` equal ``f``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._errors import FilterError
from .anyof import AnyElem
from .ast import (
    And,
    Compare,
    Contains,
    Exists,
    InList,
    IsNull,
    Node,
    Not,
    Or,
    StartsWith,
    evaluate,
    format_node,
)
from .dict import parse_dict, to_dict
from .ids import HasId, id_matcher, uses_ids
from .lex import MAX_LENGTH
from .parse import parse_string
from .qdrant import looks_like_qdrant, parse_qdrant
from .values import MAX_DEPTH, Scalar
from .weaviate import looks_like_weaviate, parse_weaviate

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "And",
    "AnyElem",
    "Compare",
    "Contains",
    "Exists",
    "Filter",
    "FilterError",
    "FilterLike",
    "HasId",
    "InList",
    "IsNull",
    "Node",
    "Not",
    "Or",
    "Scalar",
    "StartsWith",
    "evaluate",
    "parse_filter",
]


class Filter:
    """A parsed, immutable filter.  Equality and hashing follow the AST."""

    __slots__ = ("_root", "_text")

    def __init__(self, root: Node) -> None:
        if not isinstance(root, Node):
            raise FilterError(f"Filter needs an AST node, got {type(root).__name__}")
        self._root = root
        self._text: str | None = None

    @property
    def root(self) -> Node:
        """The AST root node."""
        return self._root

    @property
    def predicate(self) -> Callable[[Mapping[str, Any]], bool]:
        """The compiled matcher itself, for hot loops (same as ``matches``)."""
        return self._root._fn

    def matches(self, metadata: Mapping[str, Any], id: Any = None) -> bool:
        """True if the record (``metadata``, and ``id`` for a filter that
        tests ids with ``HAS_ID``) satisfies the filter."""
        if self.uses_ids:
            if id is None:
                raise FilterError("this filter tests record ids (HAS_ID / has_id): "
                                  "pass the record's id, matches(metadata, id=...)")
            return self.id_matcher(metadata, str(id))
        return self._root._fn(metadata)

    @property
    def uses_ids(self) -> bool:
        """True if the filter tests record ids (``HAS_ID``), not only metadata."""
        return uses_ids(self._root)

    @property
    def id_matcher(self) -> Callable[[Mapping[str, Any], str], bool]:
        """The compiled matcher of ``(metadata, record id)``."""
        fn = self._root.__dict__.get("_id_fn")
        if fn is None:
            fn = id_matcher(self._root)
            object.__setattr__(self._root, "_id_fn", fn)
        return fn

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Filter | None:
        """The vecstore (Pinecone/Chroma-style) dict form, never read as a dialect."""
        return _wrap(parse_dict(obj))

    @classmethod
    def from_qdrant(cls, obj: Any) -> Filter | None:
        """A Qdrant filter dict or ``qdrant_client.models.Filter``."""
        return _wrap(parse_qdrant(_as_dict(obj) if not isinstance(obj, Mapping) else obj))

    @classmethod
    def from_weaviate(cls, obj: Mapping[str, Any]) -> Filter:
        """A Weaviate ``where`` dict."""
        return Filter(parse_weaviate(obj))

    def to_string(self) -> str:
        """The canonical string form; ``parse_filter`` of it equals ``self``."""
        if self._text is None:
            self._text = format_node(self._root)
        return self._text

    def to_dict(self) -> dict[str, Any]:
        """The dict form; ``parse_filter`` of it equals ``self``."""
        return to_dict(self._root)

    def fields(self) -> set[tuple[str, ...]]:
        """Every field path the filter references."""
        return self._root.fields()

    def __and__(self, other: object) -> Filter:
        if not isinstance(other, Filter):
            return NotImplemented
        return Filter(And((self._root, other._root)))

    def __or__(self, other: object) -> Filter:
        if not isinstance(other, Filter):
            return NotImplemented
        return Filter(Or((self._root, other._root)))

    def __invert__(self) -> Filter:
        return Filter(Not(self._root))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Filter):
            return NotImplemented
        return self._root == other._root

    def __hash__(self) -> int:
        return hash(self._root)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"Filter({self.to_string()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Filter, (self._root,))


FilterLike = str | Mapping[str, Any] | Filter | Node | None


def parse_filter(expr: FilterLike) -> Filter | None:
    """Parse a filter given as a string, a dict, a ``Filter``/node or ``None``.

    ``None`` and ``{}`` give ``None`` (no condition); a ``Filter`` is returned
    as is.  Raises :class:`FilterError` for anything malformed.
    """
    if expr is None:
        return None
    if isinstance(expr, Filter):
        return expr
    if isinstance(expr, Node):
        return Filter(expr)
    try:
        if isinstance(expr, str):
            return Filter(parse_string(expr))
        if isinstance(expr, Mapping):
            return _wrap(parse_mapping(expr))
        if callable(getattr(expr, "model_dump", None)) or callable(getattr(expr, "dict", None)):
            return _wrap(parse_mapping(_as_dict(expr)))  # e.g. qdrant_client.models.Filter
    except RecursionError:  # pragma: no cover - defensive; depth is capped
        raise FilterError("invalid filter: nested too deeply") from None
    raise FilterError(
        f"invalid filter: expected a str, a dict, a Filter or None, got {type(expr).__name__}"
    )


def parse_mapping(obj: Mapping[str, Any]) -> Node | None:
    """A dict in any accepted form (the detection rule is in the module docstring)."""
    if looks_like_qdrant(obj):
        return parse_qdrant(obj)
    if looks_like_weaviate(obj):
        return parse_weaviate(obj)
    return parse_dict(obj)


def _wrap(node: Node | None) -> Filter | None:
    return None if node is None else Filter(node)


def _as_dict(obj: Any) -> Mapping[str, Any]:
    """The dict form of a pydantic-style model (v2 ``model_dump`` or v1 ``dict``)."""
    for name in ("model_dump", "dict"):
        fn = getattr(obj, name, None)
        if callable(fn):
            try:
                out = fn(by_alias=True, exclude_none=True)
            except TypeError:
                out = fn()
            if isinstance(out, Mapping):
                return out
    raise FilterError(f"invalid filter: {type(obj).__name__} has no dict form "
                      "(model_dump() or dict())")
