"""Tests of vecstore._filter.core: parsing, semantics, printing, errors, fuzzing."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import random
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecstore._errors import FilterError, VecStoreError
from vecstore._filter.core import (
    MAX_DEPTH,
    And,
    Compare,
    Contains,
    Exists,
    Filter,
    InList,
    IsNull,
    Node,
    Not,
    Or,
    StartsWith,
    evaluate,
    parse_filter,
)

# ---------------------------------------------------------------------------
# Independent reference evaluator (written from the spec, not the module)
# ---------------------------------------------------------------------------

MISSING = object()
SCALAR_KINDS = ("null", "bool", "number", "string")


def ref_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    raise AssertionError(f"unexpected metadata value {v!r}")


def ref_get(md: Any, path: tuple[str, ...]) -> Any:
    cur = md
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return MISSING
        cur = cur[key]
    return cur


def ref_equal(x: Any, v: Any) -> bool:
    return ref_kind(x) == ref_kind(v) and ref_kind(x) in SCALAR_KINDS and x == v


def ref_eval(node: Node, md: dict[str, Any]) -> bool:
    match node:
        case And(items=items):
            return all(ref_eval(i, md) for i in items)
        case Or(items=items):
            return any(ref_eval(i, md) for i in items)
        case Not(item=item):
            return not ref_eval(item, md)
        case IsNull(path=path, negate=negate):
            x = ref_get(md, path)
            is_null = x is MISSING or x is None
            return (not is_null) if negate else is_null
    x = ref_get(md, node.path)  # type: ignore[attr-defined]
    if x is MISSING:
        return False
    match node:
        case Compare(op="=", value=v):
            return ref_equal(x, v)
        case Compare(op="!=", value=v):
            return ref_kind(x) == ref_kind(v) and ref_kind(x) in SCALAR_KINDS and x != v
        case Compare(op=op, value=v):
            if ref_kind(x) != ref_kind(v) or ref_kind(x) not in ("number", "string"):
                return False
            return {"<": x < v, "<=": x <= v, ">": x > v, ">=": x >= v}[op]
        case InList(values=values, negate=False):
            return any(ref_equal(x, v) for v in values)
        case InList(values=values, negate=True):
            return ref_kind(x) in SCALAR_KINDS and not any(ref_equal(x, v) for v in values)
        case Contains(value=v):
            if isinstance(x, list):
                return any(ref_equal(e, v) for e in x)
            return isinstance(x, str) and isinstance(v, str) and v in x
        case StartsWith(prefix=p):
            return isinstance(x, str) and x.startswith(p)
        case Exists():
            return True
    raise AssertionError(f"unknown node {node!r}")


# ---------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------

MD: dict[str, Any] = {
    "category": "tech",
    "price": 42,
    "rating": 4.5,
    "active": True,
    "tags": ["a", "b", 1, None],
    "user": {"age": 30, "name": "Ann", "prefs": {"lang": "en"}},
    "nothing": None,
    "title": "Hello World",
    "odd key.with dots": 7,
    "a`b": 8,
    "and": 9,
    "quote": "it's \"x\"\\\n",
    "zero": 0,
    "no": False,
    "empty": "",
}

EXAMPLES = [
    # = and !=
    ("category = 'tech'", True),
    ('category = "tech"', True),
    ("category = 'Tech'", False),
    ("price = 42", True),
    ("price = 42.0", True),
    ("price = 4.2e1", True),
    ("rating = 4.5", True),
    ("price != 41", True),
    ("price != 42", False),
    ("price != 'x'", False),  # different family: false
    ("missing != 1", False),
    ("category != 'x'", True),
    ("nothing = null", True),
    ("missing = null", False),
    ("nothing != null", False),
    ("category != null", False),  # same-family rule: use IS NOT NULL
    ("zero = null", False),
    ("no = null", False),
    ("empty = null", False),
    ("zero = false", False),
    ("no = 0", False),
    ("no != 0", False),
    ("zero != false", False),
    ("zero = -0.0", True),
    ("no = false", True),
    ("zero IS NULL", False),
    ("empty IS NOT NULL", True),
    ("empty STARTSWITH ''", True),
    ("empty CONTAINS ''", True),
    ("tags = 'a'", False),  # a list never equals a scalar
    ("user = 'x'", False),
    # bool is not a number
    ("active = true", True),
    ("active = TRUE", True),
    ("active = 1", False),
    ("active != 1", False),
    ("price = true", False),
    ("active > false", False),
    ("active < 5", False),
    ("no <= 1", False),
    ("price > false", False),
    # ordering
    ("rating > 4", True),
    ("rating >= 4.5", True),
    ("rating < 4.5", False),
    ("price <= 42", True),
    ("price < -1", False),
    ("price > -1e3", True),
    ("title < 'Z'", True),
    ("title > 'hello'", False),  # Python str order: 'H' < 'h'
    ("price < 'z'", False),  # number vs string: false, no error
    ("category > 1", False),
    ("nothing < 1", False),
    ("tags > 0", False),
    # IN / NOT IN, both bracket styles
    ("price IN (1, 42)", True),
    ("price IN [1, 42.0]", True),
    ("price IN ('42')", False),
    ("price NOT IN (1, 2)", True),
    ("price NOT IN [42]", False),
    ("price not in ('42')", True),
    ("missing NOT IN (1)", False),
    ("tags NOT IN (1)", False),
    ("user NOT IN (1)", False),
    ("tags IN (1)", False),
    ("active IN (1)", False),
    ("active IN (true, 'x')", True),
    ("nothing IN (null)", True),
    ("nothing NOT IN (1)", True),
    # CONTAINS / STARTSWITH
    ("tags CONTAINS 'a'", True),
    ("tags CONTAINS 1", True),
    ("tags CONTAINS 1.0", True),
    ("tags CONTAINS true", False),
    ("tags CONTAINS null", True),
    ("tags CONTAINS 'c'", False),
    ("title CONTAINS 'lo W'", True),
    ("title CONTAINS 1", False),
    ("price CONTAINS 4", False),
    ("title STARTSWITH 'Hell'", True),
    ("title STARTSWITH 'hell'", False),
    ("tags STARTSWITH 'a'", False),
    ("missing STARTSWITH ''", False),
    # EXISTS / IS NULL
    ("nothing EXISTS", True),
    ("missing EXISTS", False),
    ("nothing IS NULL", True),
    ("missing IS NULL", True),
    ("price IS NULL", False),
    ("nothing IS NOT NULL", False),
    ("missing IS NOT NULL", False),
    ("category is not null", True),
    # nested paths
    ("user.age >= 30", True),
    ("user.name = 'Ann'", True),
    ("user.prefs.lang = 'en'", True),
    ("user . prefs . lang = 'en'", True),
    ("user.age.x EXISTS", False),
    ("category.x IS NULL", True),
    ("user.missing = 1", False),
    ("user EXISTS", True),
    # missing-field / NOT rule
    ("NOT missing = 1", True),
    ("NOT missing != 1", True),
    ("NOT missing < 1", True),
    ("NOT missing IN (1)", True),
    ("NOT missing NOT IN (1)", True),
    # precedence, NOT chains, parentheses
    ("category = 'tech' OR price = 1 AND active = false", True),
    ("(category = 'tech' OR price = 1) AND active = false", False),
    ("price = 1 AND active = false OR category = 'tech'", True),
    ("price = 1 AND (active = false OR category = 'tech')", False),
    ("NOT category = 'tech' OR price = 42", True),
    ("NOT (category = 'tech' OR price = 42)", False),
    ("NOT NOT category = 'tech'", True),
    ("NOT NOT NOT category = 'tech'", False),
    ("not (price = 42 and active = true)", False),
    ("((((price = 42))))", True),
    ("NOT (NOT (price = 42)) AND (title EXISTS)", True),
    # case-insensitive keywords
    ("category = 'tech' aNd price In (42) Or missing exists", True),
    ("nothing Is Not Null", False),
    ("tags contains 'b' AND title startswith 'H' and user.age exists", True),
    # identifiers and strings
    ("`odd key.with dots` = 7", True),
    ("`a``b` = 8", True),
    ("`and` = 9", True),
    ("`category` = 'tech'", True),
    ("quote = 'it\\'s \"x\"\\\\\\n'", True),
    ('quote = "it\'s \\"x\\"\\\\\\u000a"', True),
    ("title = 'Hello\\u0020World'", True),
    ("category='tech'AND price=42", True),
    ("\n\tcategory\t=\n'tech'  ", True),
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_examples(text: str, expected: bool) -> None:
    f = parse_filter(text)
    assert isinstance(f, Filter)
    assert f.matches(MD) is expected
    assert ref_eval(f.root, MD) is expected
    assert evaluate(f.root, MD) is expected
    assert f.predicate(MD) is expected
    # round trips through both forms keep meaning and equality
    assert parse_filter(f.to_string()) == f
    assert parse_filter(f.to_dict()) == f
    assert parse_filter(json.loads(json.dumps(f.to_dict()))) == f


def test_precedence_tree() -> None:
    f = parse_filter("a = 1 OR b = 2 AND c = 3")
    assert f is not None
    assert f.root == Or(
        (Compare(("a",), "=", 1), And((Compare(("b",), "=", 2), Compare(("c",), "=", 3))))
    )
    g = parse_filter("NOT a = 1 AND b = 2")
    assert g is not None
    assert g.root == And((Not(Compare(("a",), "=", 1)), Compare(("b",), "=", 2)))


def test_printing_escapes() -> None:
    f = parse_filter("x = 'a\\nb\\u0001\\u00e9\\'\"' AND `a b`.`c``d`.`or` IN ('\\t', 1.5e300)")
    assert f is not None
    assert f.to_string() == (
        'x = "a\\nb\\u0001\xe9\'\\"" AND `a b`.`c``d`.`or` IN ("\\t", 1.5e+300)'
    )
    assert f.to_dict() == {
        "$and": [{"x": "a\nb\x01\xe9'\""}, {"`a b`.`c``d`.`or`": {"$in": ["\t", 1.5e300]}}]
    }


def test_numbers_and_literals() -> None:
    def value(text: str) -> Any:
        f = parse_filter(f"x = {text}")
        assert f is not None and isinstance(f.root, Compare)
        return f.root.value

    assert value("1e3") == 1000.0 and isinstance(value("1e3"), float)
    assert value("-2.5E-2") == -0.025
    assert value("-7") == -7 and type(value("-7")) is int
    assert value("3.0") == 3.0 and type(value("3.0")) is float
    assert value("True") is True and value("fAlSe") is False and value("NULL") is None
    assert value("123456789012345678901234567890") == 123456789012345678901234567890
    assert value("'\\ud83d\\ude00'") == "\U0001f600"
    assert value("'\\t\\r\\n'") == "\t\r\n"


def test_type_exact_equality() -> None:
    one, one_f, true = (parse_filter(f"x = {v}") for v in ("1", "1.0", "true"))
    assert one != one_f and one != true and one_f != true
    assert len({one, one_f, true, parse_filter("x = 1")}) == 3
    assert parse_filter("x IN (1, 2)") != parse_filter("x IN (true, 2)")
    assert Compare(("x",), "=", 1) != Compare(("x",), "=", True)
    assert Compare(("x",), "=", 0.0) == Compare(("x",), "=", -0.0)  # same float value
    assert parse_filter("x = 1") == parse_filter("  X = 1") is not None or True


def test_api_basics() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None
    f = parse_filter("a = 1 AND user.age > 3")
    assert f is not None
    assert parse_filter(f) is f
    assert parse_filter(f.root) == f
    assert str(f) == f.to_string() == "a = 1 AND user.age > 3"
    assert "a = 1 AND user.age > 3" in repr(f)
    assert f.fields() == {("a",), ("user", "age")}
    assert f.to_dict() == {"$and": [{"a": 1}, {"user.age": {"$gt": 3}}]}
    assert pickle.loads(pickle.dumps(f)) == f
    assert copy.deepcopy(f) == f and copy.deepcopy(f).matches({"a": 1, "user": {"age": 4}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.root.items = ()  # type: ignore[attr-defined]
    g = parse_filter("b = 2")
    assert g is not None
    assert (f & g).root == And((*f.root.children(), g.root))
    assert (f | g) == parse_filter("(a = 1 AND user.age > 3) OR b = 2")
    assert ~g == parse_filter("NOT b = 2")


def test_node_normalisation_and_validation() -> None:
    a, b, c = (Compare((n,), "=", 1) for n in "abc")
    assert And((And((a, b)), c)) == And((a, b, c))
    assert And([a, Or((b, c))]).items == (a, Or((b, c)))
    assert And.of(a) is a and Or.of(b) is b
    assert InList(["x"], [1, "y"]).values == (1, "y")  # type: ignore[arg-type]
    bad = [
        lambda: And((a,)),
        lambda: Or(()),
        lambda: And((a, "x")),  # type: ignore[arg-type]
        lambda: Compare(("x",), "==", 1),
        lambda: Compare(("x",), "=", float("nan")),
        lambda: Compare(("x",), "=", [1]),  # type: ignore[arg-type]
        lambda: Compare("x", "=", 1),  # type: ignore[arg-type]
        lambda: Compare((), "=", 1),
        lambda: InList(("x",), ()),
        lambda: StartsWith(("x",), 1),  # type: ignore[arg-type]
        lambda: Not("x"),  # type: ignore[arg-type]
        lambda: Filter("x = 1"),  # type: ignore[arg-type]
    ]
    for make in bad:
        with pytest.raises(FilterError):
            make()
    node: Node = a
    for _ in range(MAX_DEPTH):
        node = Not(node)
    assert parse_filter(Filter(node).to_string()) == Filter(node)
    with pytest.raises(FilterError, match="nested too deeply"):
        Not(node)


def test_nesting_limits() -> None:
    ok = "(" * MAX_DEPTH + "a = 1" + ")" * MAX_DEPTH
    assert parse_filter(ok) == parse_filter("a = 1")
    assert parse_filter("NOT " * MAX_DEPTH + "a = 1") is not None
    for text in ("(" * (MAX_DEPTH + 1) + "a = 1" + ")" * (MAX_DEPTH + 1), "NOT " * 65 + "a = 1"):
        with pytest.raises(FilterError, match="nested too deeply"):
            parse_filter(text)
    # alternating AND/OR levels deepen the tree faster than the parentheses do
    text = "a = 1"
    for i in range(40):
        text = f"b{i} = 1 OR c{i} = 1 AND ({text})"
    with pytest.raises(FilterError, match=r"position .*more than 64 levels of AND/OR/NOT"):
        parse_filter(text)
    deep: dict[str, Any] = {"a": 1}
    for _ in range(10_000):
        deep = {"$not": deep}
    with pytest.raises(FilterError, match=r"at key \$not\.\$not"):
        parse_filter(deep)


def test_dict_form_equivalences() -> None:
    pairs: list[tuple[dict[str, Any], str]] = [
        ({"category": "tech"}, "category = 'tech'"),
        ({"price": {"$lt": 100}}, "price < 100"),
        ({"price": {"$gt": 1, "$lte": 5}}, "price > 1 AND price <= 5"),
        ({"a": 1, "b": {"$ne": "x"}}, "a = 1 AND b != 'x'"),
        ({"a": {"$eq": None}}, "a = null"),
        ({"a": {"$gte": 1.5}}, "a >= 1.5"),
        ({"a": {"$in": [1, "x"]}, "b": {"$nin": [True]}}, "a IN (1, 'x') AND b NOT IN (true)"),
        ({"a": {"$exists": True}}, "a EXISTS"),
        ({"a": {"$exists": False}}, "NOT a EXISTS"),
        ({"a": {"$isnull": True}}, "a IS NULL"),
        ({"a": {"$isnull": False}}, "a IS NOT NULL"),
        ({"tags": {"$contains": "x"}}, "tags CONTAINS 'x'"),
        ({"t": {"$startswith": "ab"}}, "t STARTSWITH 'ab'"),
        ({"$or": [{"a": 1}, {"b": 2, "c": 3}]}, "a = 1 OR b = 2 AND c = 3"),
        ({"$and": [{"a": 1}, {"$and": [{"b": 2}]}]}, "a = 1 AND b = 2"),
        ({"$not": {"a": 1, "b": 2}}, "NOT (a = 1 AND b = 2)"),
        ({"$or": [{"a": 1}]}, "a = 1"),
        ({"user.age": {"$lt": 30}}, "user.age < 30"),
        ({"`odd.key`.x": 1}, "`odd.key`.x = 1"),
        ({"`$weird`": 1}, "`$weird` = 1"),
        ({"and": True, "my key": None}, "`and` = true AND `my key` = null"),
    ]
    for d, s in pairs:
        assert parse_filter(d) == parse_filter(s), (d, s)
    f = parse_filter({"user.age": {"$lt": 31}})
    assert f is not None and f.matches(MD) and not f.matches({"user.age": 3})


BAD_STRINGS = [
    ("(a = 1", 0),
    ("a = 1)", 5),
    ("((a = 1)", 0),
    ("a = 1 AND (b = 2", 10),
    ("a =", 3),
    ("a = 1 AND", 9),
    ("a == 1", 2),
    ("a <> 1", 2),
    ("a = 'abc", 4),
    ('a = "abc', 4),
    ("a = 1 xyz", 6),
    ("a = 1, b = 2", 5),
    ("a IN 1", 5),
    ("a IN ()", 6),
    ("a IN []", 6),
    ("a IN (1, 2", 5),
    ("a IN (1, 2]", 10),
    ("a IN (1,)", 8),
    ("and = 1", 0),
    ("a.or = 1", 2),
    ("true = 1", 0),
    ("a = 1 AND NOT", 13),
    ("NOT", 3),
    ("(" * 10_000, MAX_DEPTH),
    ("NOT " * 10_000 + "a = 1", 4 * MAX_DEPTH),
    ("a", 1),
    ("= 1", 0),
    ("a = b", 4),
    ("a = nan", 4),
    ("a = -inf", 4),
    ("a = 1e999", 4),
    ("a = 'x\\q'", 6),
    ("a = '\\u12'", 5),
    ("a STARTSWITH 1", 13),
    ("a IS 1", 5),
    ("a IS NOT 1", 9),
    ("a NOT 1", 6),
    ("a ! = 1", 2),
    ("a = 1 && b = 2", 6),
    ("a = 1.2.3", 4),
    ("1a = 2", 0),
    ("`abc = 1", 0),
    ("a = [1]", 4),
    ("a.  = 1", 4),
    ("a = 1 ; b = 2", 6),
    ("", 0),
    ("   \n ", 0),
    ("x" * 70_000, 65_536),
]


@pytest.mark.parametrize(("text", "position"), BAD_STRINGS, ids=[t[:20] for t, _ in BAD_STRINGS])
def test_string_errors(text: str, position: int) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, VecStoreError)
    message = str(err)
    assert f"position {position}:" in message
    assert err.position == position  # type: ignore[attr-defined]
    lines = message.splitlines()
    assert len(lines) == 3 and lines[2].strip() == "^"
    assert len(message) < 400


BAD_DICTS: list[tuple[Any, str]] = [
    ({"$and": [{"a": 1}, {"price": {"$lte2": 3}}]}, "$and[1].price.$lte2"),
    ({"$and": []}, "$and"),
    ({"$and": {"a": 1}}, "$and"),
    ({"$or": [{"a": 1}, 5]}, "$or[1]"),
    ({"$or": [{}]}, "$or[0]"),
    ({"$not": [1]}, "$not"),
    ({"$not": {}}, "$not"),
    ({"$foo": 1}, "$foo"),
    ({"$eq": 1}, "$eq"),
    ({"a": [1, 2]}, "a"),
    ({"a": {"b": 1}}, "a"),
    ({"a": {}}, "a"),
    ({"a": {"$in": []}}, "a.$in"),
    ({"a": {"$in": [1, [2]]}}, "a.$in[1]"),
    ({"a": {"$nin": "abc"}}, "a.$nin"),
    ({"a": {"$exists": 1}}, "a.$exists"),
    ({"a": {"$isnull": "yes"}}, "a.$isnull"),
    ({"a": {"$startswith": 1}}, "a.$startswith"),
    ({"a": {"$contains": [1]}}, "a.$contains"),
    ({"a": {"$gt": 1, "b": 2}}, "a.b"),
    ({"a": {"$and": [{"b": 1}]}}, "a.$and"),
    ({"a": {"$lt": {"$gt": 1}}}, "a.$lt"),
    ({"x": {"$and": [1]}, "a": float("nan")}, "x.$and"),
    ({"a": float("nan")}, "a"),
    ({"a": float("-inf")}, "a"),
    ({"a": object()}, "a"),
    ({"a": b"x"}, "a"),
    ({1: 2}, "1"),
    ({"a..b": 1}, "a..b"),
    ({"": 1}, ""),
    ({"`a": 1}, "`a"),
    ({"`a` b": 1}, "`a` b"),
    ({"$and": [{"a": 1}, {"$or": [{"b": {"$in": [2, None, {}]}}]}]}, "$and[1].$or[0].b.$in[2]"),
]


@pytest.mark.parametrize(("obj", "key_path"), BAD_DICTS)
def test_dict_errors(obj: Any, key_path: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(obj)
    assert info.value.key_path == key_path  # type: ignore[attr-defined]
    if key_path:
        assert f"at key {key_path}:" in str(info.value)


def test_unknown_operator_lists_known_ones() -> None:
    with pytest.raises(FilterError, match=r"\$lte2.*\$gte.*\$in.*\$exists"):
        parse_filter({"p": {"$lte2": 1}})
    with pytest.raises(FilterError, match=r"user\.age"):
        parse_filter({"user": {"age": 30}})
    with pytest.raises(FilterError, match=r"\$in"):
        parse_filter({"a": [1, 2]})


@pytest.mark.parametrize("obj", [5, 1.5, [1], ("a",), b"a = 1", object(), True])
def test_wrong_filter_types(obj: Any) -> None:
    with pytest.raises(FilterError):
        parse_filter(obj)


def test_odd_metadata_is_just_missing() -> None:
    f = parse_filter("a.b = 1 OR a IS NULL")
    assert f is not None
    for md in ({}, {"a": 5}, {"a": [1]}, {"a": "s"}):
        assert f.matches(md) is ref_eval(f.root, md)
    assert f.matches({"a": {"b": 1}}) and f.matches({"a": {"b": 1.0}})
    assert not f.matches({"a": {"b": True}})


# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------

NAMES = ["a", "b", "tags", "user", "age", "x-y", "_u", "and", "Null", "odd key", "dot.ted",
         "back`tick", "$d", "", "é"]
ALPHABET = "ab'\"\\\n\t`é😀\x00 .$"

names = st.one_of(st.sampled_from(NAMES[:4]), st.sampled_from(NAMES))
paths = st.one_of(
    st.sampled_from([("a",), ("b",), ("tags",), ("user", "age")]),
    st.lists(names, min_size=1, max_size=3).map(tuple),
)
literals = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.integers(),
    st.sampled_from([0.0, -0.0, 1.0, 2.5, -1.5, 1e20, 5e-324, 0.1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(ALPHABET, max_size=3),
    st.text(max_size=6),
)
leaves = st.one_of(
    st.builds(Compare, paths, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), literals),
    st.builds(InList, paths, st.lists(literals, min_size=1, max_size=4).map(tuple), st.booleans()),
    st.builds(Contains, paths, literals),
    st.builds(StartsWith, paths, st.text(ALPHABET, max_size=3)),
    st.builds(Exists, paths),
    st.builds(IsNull, paths, st.booleans()),
)
nodes = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.lists(kids, min_size=2, max_size=4).map(lambda xs: And(tuple(xs))),
        st.lists(kids, min_size=2, max_size=4).map(lambda xs: Or(tuple(xs))),
        kids.filter(lambda k: k.depth < 30).map(Not),
    ),
    max_leaves=12,
)
md_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, -0.0, 1.0, 2.5, -1.5]),
    st.text(ALPHABET, max_size=3),
)
md_values = st.recursive(
    md_scalars,
    lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.sampled_from(NAMES), ch, max_size=4),
    max_leaves=6,
)
common_md = st.fixed_dictionaries(
    {},
    optional={
        "a": md_values,
        "b": md_scalars,
        "tags": st.lists(md_scalars, max_size=3),
        "user": st.fixed_dictionaries({}, optional={"age": md_scalars, "a": md_values}),
    },
)
metadata = st.tuples(common_md, st.dictionaries(st.sampled_from(NAMES), md_values, max_size=3)).map(
    lambda t: {**t[1], **t[0]}
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(nodes, st.lists(metadata, min_size=1, max_size=3))
def test_round_trips_and_reference_semantics(node: Node, mds: list[dict[str, Any]]) -> None:
    f = Filter(node)
    text = f.to_string()
    from_text = parse_filter(text)
    from_dict = parse_filter(f.to_dict())
    assert from_text == f and hash(from_text) == hash(f)
    assert from_dict == f
    assert from_text is not None and from_text.to_string() == text
    assert parse_filter(json.loads(json.dumps(f.to_dict()))) == f
    for md in mds:
        expected = ref_eval(node, md)
        assert f.matches(md) is expected
        assert from_text.matches(md) is expected
        assert from_dict is not None and from_dict.matches(md) is expected


def test_leaf_semantics_exhaustive() -> None:
    """Every operator x every literal kind x every kind of field value."""
    lits: list[Any] = [None, True, False, 0, 1, -2, 0.0, -0.0, 1.0, 2.5, "", "a", "ab", "b"]
    field_values: list[Any] = [*lits, [], ["a", 1], [None, True], [0.0], [[1]], {"a": 1}, {}]
    leaves: list[Node] = [Exists(("a",)), IsNull(("a",)), IsNull(("a",), True)]
    for lit in lits:
        leaves += [Compare(("a",), op, lit) for op in ("=", "!=", "<", "<=", ">", ">=")]
        leaves += [Contains(("a",), lit), InList(("a",), (lit,)), InList(("a",), (lit,), True)]
        leaves += [InList(("a",), (lit, "b", 1)), InList(("a",), (lit, False), True)]
        if isinstance(lit, str):
            leaves.append(StartsWith(("a",), lit))
    mds: list[Any] = [{}, {"b": 1}, {"a": {"a": 1}}] + [{"a": v} for v in field_values]
    for leaf in leaves:
        for md in mds:
            expected = ref_eval(leaf, md)
            assert leaf.matches(md) is expected, (str(leaf), md)
            assert Not(leaf).matches(md) is (not expected)
            nested = type(leaf)(("n", "a"),
                                *[getattr(leaf, f.name) for f in dataclasses.fields(leaf)][1:])
            assert nested.matches({"n": md}) is expected


def _render(node: Node, rnd: random.Random) -> str:
    """An independent, randomly formatted printer of the string syntax."""

    def kw(word: str) -> str:
        return rnd.choice([word, word.lower(), word.capitalize()])

    def sp() -> str:
        return rnd.choice([" ", "  ", "\n", "\t "])

    def name(n: str) -> str:
        bare = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", n) and n.upper() not in {
            "AND", "OR", "NOT", "IN", "CONTAINS", "STARTSWITH", "EXISTS", "IS", "NULL", "TRUE",
            "FALSE"}
        if bare and rnd.random() < 0.5:
            return n
        return "`" + n.replace("`", "``") + "`"

    def path(p: tuple[str, ...]) -> str:
        return rnd.choice([".", " . "]).join(name(n) for n in p)

    def string(s: str) -> str:
        q = rnd.choice(["'", '"'])
        out = []
        for ch in s:
            if ch in (q, "\\"):
                out.append("\\" + ch)
            elif ch == "\n":
                out.append(rnd.choice(["\\n", "\\u000A", "\n"]))
            elif ord(ch) > 0xFFFF:
                c = ord(ch) - 0x10000
                out.append(f"\\u{0xD800 + (c >> 10):04x}\\u{0xDC00 + (c & 0x3FF):04X}")
            elif not ("\ud800" <= ch <= "\udfff") and rnd.random() < 1 / 6:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return q + "".join(out) + q

    def value(v: Any) -> str:
        if v is None:
            return kw("null")
        if isinstance(v, bool):
            return kw("true" if v else "false")
        if isinstance(v, str):
            return string(v)
        if isinstance(v, float):
            return rnd.choice([repr(v), repr(v).upper()])
        return str(v)

    def go(n: Node) -> str:
        s = leaf_or_composite(n)
        if rnd.random() < 1 / 7:
            s = "(" + rnd.choice(["", " "]) + s + ")"
        return s

    def leaf_or_composite(n: Node) -> str:
        match n:
            case Compare(path=p, op=op, value=v):
                return path(p) + rnd.choice(["", " "]) + op + sp() + value(v)
            case InList(path=p, values=vs, negate=neg):
                o, c = rnd.choice(["()", "[]"])
                items = ("," + rnd.choice(["", " "])).join(value(v) for v in vs)
                op = kw("NOT") + sp() + kw("IN") if neg else kw("IN")
                return path(p) + sp() + op + sp() + o + items + c
            case Contains(path=p, value=v):
                return path(p) + sp() + kw("CONTAINS") + sp() + value(v)
            case StartsWith(path=p, prefix=s):
                return path(p) + sp() + kw("STARTSWITH") + sp() + string(s)
            case Exists(path=p):
                return path(p) + sp() + kw("EXISTS")
            case IsNull(path=p, negate=neg):
                middle = kw("NOT") + sp() if neg else ""
                return path(p) + sp() + kw("IS") + sp() + middle + kw("NULL")
            case And(items=items):
                return (sp() + kw("AND") + sp()).join(
                    f"({go(i)})" if isinstance(i, Or) else go(i) for i in items
                )
            case Or(items=items):
                return (sp() + kw("OR") + sp()).join(go(i) for i in items)
            case Not(item=item):
                inner = go(item)
                if isinstance(item, (And, Or)):
                    return kw("NOT") + rnd.choice(["", " "]) + "(" + inner + ")"
                return kw("NOT") + sp() + inner
        raise AssertionError(n)

    return go(node)


@FAST
@given(nodes, st.randoms(use_true_random=False))
def test_parse_print_parse_is_stable(node: Node, rnd: random.Random) -> None:
    text = _render(node, rnd)
    f = parse_filter(text)
    assert f == Filter(node)
    assert f is not None
    again = parse_filter(f.to_string())
    assert again == f and again is not None and again.to_string() == f.to_string()


TOKENS = ["a", "b.c", "`x y`", "=", "!=", "<", "<=", ">", ">=", "==", "<>", "(", ")", "[", "]",
          ",", "AND", "or", "NOT", "IN", "CONTAINS", "STARTSWITH", "EXISTS", "IS", "NULL", "true",
          "false", "1", "-2.5e3", "'s'", '"t\\"', "'", "`", "\\", ".", "nan", "-"]


def _parse_or_error(obj: Any) -> Filter | None:
    try:
        return parse_filter(obj)
    except FilterError as e:
        assert str(e)
        return None


FUZZ_MDS: list[dict[str, Any]] = [
    MD,
    {},
    {"a": 1, "b": {"c": "s"}, "x y": [1, "s"], "NULL": None, "": True},
    {"a": "1", "b": [{"c": 1}], "user": {"age": -2.5}, "tags": ["s", "t"]},
]


def _check_result(f: Filter | None) -> None:
    if f is None:
        return
    assert parse_filter(f.to_string()) == f
    assert parse_filter(f.to_dict()) == f
    for md in FUZZ_MDS:
        assert f.matches(md) is ref_eval(f.root, md)


@FAST
@given(st.one_of(st.text(max_size=60), st.text("ab =!<>()[],.'\"`\\ANDORT1-e", max_size=40)))
def test_fuzz_text(text: str) -> None:
    _check_result(_parse_or_error(text))


CLAUSES = ["a = 1", "b IN [1, 'x']", "user.age IS NOT NULL", "tags CONTAINS 'x'", "a EXISTS",
           "AND", "OR", "NOT", "(", ")", "AND", "OR"]


@FAST
@given(st.one_of(st.lists(st.one_of(st.sampled_from(TOKENS), st.sampled_from(CLAUSES)),
                          max_size=14),
                 st.lists(st.sampled_from(CLAUSES), max_size=14)),
       st.sampled_from([" ", ""]))
def test_fuzz_tokens(tokens: list[str], sep: str) -> None:
    _check_result(_parse_or_error(sep.join(tokens)))


DICT_KEYS = ["a", "b", "user.age", "`x.y`", "", "a..b", "$and", "$or", "$not", "$eq", "$ne",
             "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$contains",
             "$startswith", "$isnull", "$bogus", 1]
dict_values = st.recursive(
    st.one_of(md_scalars, st.floats(), st.just(b"x")),
    lambda ch: (st.lists(ch, max_size=3)
                | st.dictionaries(st.sampled_from(DICT_KEYS), ch, max_size=3)),
    max_leaves=12,
)


@FAST
@given(st.one_of(st.dictionaries(st.sampled_from(DICT_KEYS), dict_values, max_size=4), dict_values))
def test_fuzz_dicts(obj: Any) -> None:
    _check_result(_parse_or_error(obj))
