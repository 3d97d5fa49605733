"""Qdrant and Weaviate filter dicts: same answers as the equivalent string
filter, with and without indexes; a reference evaluator of Qdrant's
documented semantics; HAS_ID across sealed and growing segments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecstore import Config, VecStore
from vecstore._errors import FilterError
from vecstore._filter.core import Filter, parse_filter

V = [1.0, 0.0, 0.5, 0.25]

METAS: list[dict[str, Any]] = [
    {"city": "NYC", "n": 1, "tags": ["a", "b"], "user": {"age": 30}, "flag": True},
    {"city": "LA", "n": 2.5, "tags": ["b"], "user": {"age": 17}},
    {"city": ["NYC", "LA"], "n": [0, 7], "tags": []},
    {"city": None, "n": None, "tags": None},
    {"city": "NYCX", "n": "3", "tags": "ab", "user": {"age": "30"}},
    {"n": 5, "tags": ["a", None], "user": None},
    {"city": "Boston", "n": -1, "tags": [["a"]], "flag": False},
    {"city": 3, "n": 3, "tags": ["c", 1]},
    {},
    {"city": "nyc", "n": 10, "user": {"age": 45, "x": 1}, "tags": [{"a": 1}]},
]


@pytest.fixture(scope="module", params=["plain", "indexed"])
def store(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("dialects") / "s.db"
    s = VecStore.open(path, Config(dim=4, seal_threshold=16))
    rows = [(f"r{i}", [1.0, i % 7, 2.0, 1.0 + i % 3], METAS[i % len(METAS)]) for i in range(40)]
    s.upsert_many(rows[:20])
    if request.param == "indexed":
        for f, kind in (("city", "hash"), ("n", "btree"), ("tags", "inverted"),
                        ("user.age", "btree")):
            s.create_index(f, kind)
    s.upsert_many(rows[20:])
    s.optimize()
    s.delete_many(["r3", "r13"])
    yield s
    s.close()


def ids_of(s: VecStore, flt: Any) -> list[str]:
    got = sorted(r.id for r in s.query(V, k=100, filter=flt))
    assert s.count(filter=flt) == len(got)
    assert sorted(r.id for r in s.scan(filter=flt)) == got
    return got


def cond(key: str, **kw: Any) -> dict[str, Any]:
    return {"key": key, **kw}


QDRANT = [
    ({"must": [cond("city", match={"value": "NYC"})]}, "ANY(city = 'NYC')"),
    ({"must": [cond("n", match={"value": 3})]}, "ANY(n = 3)"),
    ({"must": [cond("flag", match={"value": True})]}, "ANY(flag = true)"),
    ({"should": [cond("city", match={"any": ["LA", "Boston"]})]}, "ANY(city IN ('LA', 'Boston'))"),
    ({"must": [cond("city", match={"except": ["NYC", "LA"]})]},
     "ANY(city NOT IN ('NYC', 'LA') AND city IS NOT NULL)"),
    ({"must": [cond("city", match={"except_": ["NYC"]})]},
     "ANY(city NOT IN ('NYC') AND city IS NOT NULL)"),
    ({"must": [cond("city", match={"text": "NY"})]}, "ANY(city CONTAINS 'NY')"),
    ({"must": [cond("n", range={"gt": 0, "lte": 5})]}, "ANY(n > 0 AND n <= 5)"),
    ({"must": [cond("n", range={"gte": 6})]}, "ANY(n >= 6)"),
    ({"must": [cond("user.age", range={"lt": 40})]}, "ANY(user.age < 40)"),
    ({"must": [{"is_empty": {"key": "tags"}}]}, "tags IS NULL OR NOT ANY(tags EXISTS)"),
    ({"must": [{"is_null": {"key": "city"}}]}, "city = null"),
    ({"must_not": [cond("tags", match={"value": "a"})]}, "NOT ANY(tags = 'a')"),
    ({"must_not": [cond("tags[]", match={"value": "a"}), {"is_null": {"key": "n"}}]},
     "NOT (ANY(tags = 'a') OR n = null)"),
    ({"must": [cond("city", match={"value": "NYC"})],
      "should": [cond("n", range={"lt": 2}), cond("tags", match={"value": "b"})],
      "must_not": [{"has_id": ["r0"]}]},
     "ANY(city = 'NYC') AND (ANY(n < 2) OR ANY(tags = 'b')) AND NOT HAS_ID('r0')"),
    ({"should": [{"must": [cond("n", range={"gt": 1})],
                  "must_not": [{"is_empty": {"key": "tags"}}]},
                 {"has_id": ["r8", "r9", "nope"]}]},
     "(ANY(n > 1) AND NOT (tags IS NULL OR NOT ANY(tags EXISTS))) OR HAS_ID('r8', 'r9', 'nope')"),
    ({"min_should": {"conditions": [cond("city", match={"value": "NYC"}),
                                    cond("n", range={"lt": 3}),
                                    cond("tags", match={"value": "a"})], "min_count": 2}},
     ("(ANY(city = 'NYC') AND ANY(n < 3)) OR (ANY(city = 'NYC') AND ANY(tags = 'a')) "
      "OR (ANY(n < 3) AND ANY(tags = 'a'))")),
    (cond("city", match={"value": "LA"}), "ANY(city = 'LA')"),
    ({"has_id": [5, "r6"]}, "HAS_ID('5', 'r6')"),
]


@pytest.mark.parametrize(("qdrant", "text"), QDRANT)
def test_qdrant_equals_string(store: VecStore, qdrant: dict[str, Any], text: str) -> None:
    flt = parse_filter(qdrant)
    assert flt == parse_filter(text)
    want = ids_of(store, text)
    assert ids_of(store, qdrant) == want
    live = {r.id: r.metadata for r in store.scan()}
    assert want == sorted(i for i, m in live.items() if q_ref(qdrant, m, i))


WEAVIATE = [
    ({"path": ["city"], "operator": "Equal", "valueText": "NYC"}, "ANY(city = 'NYC')"),
    ({"path": ["city"], "operator": "NotEqual", "valueString": "NYC"}, "NOT ANY(city = 'NYC')"),
    ({"path": ["n"], "operator": "GreaterThan", "valueInt": 2}, "ANY(n > 2)"),
    ({"path": ["n"], "operator": "GreaterThanEqual", "valueNumber": 2.5}, "ANY(n >= 2.5)"),
    ({"path": ["n"], "operator": "LessThan", "valueInt": 1}, "ANY(n < 1)"),
    ({"path": ["user", "age"], "operator": "LessThanEqual", "valueInt": 30}, "ANY(user.age <= 30)"),
    ({"path": ["flag"], "operator": "Equal", "valueBoolean": False}, "ANY(flag = false)"),
    ({"path": ["city"], "operator": "Like", "valueText": "NY*"}, "ANY(city STARTSWITH 'NY')"),
    ({"path": ["city"], "operator": "Like", "valueText": "*os*"}, "ANY(city CONTAINS 'os')"),
    ({"path": ["city"], "operator": "Like", "valueText": "LA"}, "ANY(city = 'LA')"),
    ({"path": ["tags"], "operator": "ContainsAny", "valueTextArray": ["a", "c"]},
     "ANY(tags IN ('a', 'c'))"),
    ({"path": ["tags"], "operator": "ContainsAll", "valueTextArray": ["a", "b"]},
     "ANY(tags = 'a') AND ANY(tags = 'b')"),
    ({"path": ["tags"], "operator": "ContainsNone", "valueTextArray": ["a"]},
     "NOT ANY(tags IN ('a'))"),
    ({"path": ["city"], "operator": "IsNull", "valueBoolean": True}, "city IS NULL"),
    ({"path": ["city"], "operator": "IsNull", "valueBoolean": False}, "city IS NOT NULL"),
    ({"operator": "Or", "operands": [
        {"path": ["city"], "operator": "Equal", "valueText": "LA"},
        {"operator": "And", "operands": [
            {"path": ["n"], "operator": "GreaterThan", "valueNumber": 0},
            {"operator": "Not", "operands": [
                {"path": ["tags"], "operator": "ContainsAny", "valueTextArray": ["a"]}]}]}]},
     "ANY(city = 'LA') OR (ANY(n > 0) AND NOT ANY(tags IN ('a')))"),
]


@pytest.mark.parametrize(("where", "text"), WEAVIATE)
def test_weaviate_equals_string(store: VecStore, where: dict[str, Any], text: str) -> None:
    assert parse_filter(where) == parse_filter(text) == Filter.from_weaviate(where)
    assert ids_of(store, where) == ids_of(store, text)


def test_array_semantics_by_hand() -> None:
    f = parse_filter({"must": [cond("tags", match={"value": "a"})]})
    assert f is not None
    assert f.matches({"tags": ["x", "a"]}) and f.matches({"tags": "a"})
    assert not f.matches({"tags": "abc"}) and not f.matches({"tags": []}) and not f.matches({})
    r = parse_filter({"must": [cond("n", range={"gt": 1, "lt": 3})]})
    assert r is not None
    assert r.matches({"n": [0, 2]}) and not r.matches({"n": [0, 5]}) and not r.matches({"n": "2"})
    e = parse_filter({"must": [cond("c", match={"except": ["a"]})]})
    assert e is not None
    assert e.matches({"c": ["a", "b"]}) and not e.matches({"c": ["a"]})
    assert not e.matches({"c": None}) and not e.matches({}) and not e.matches({"c": []})
    w = parse_filter({"path": ["tags"], "operator": "Equal", "valueText": "a"})
    assert w is not None and w.matches({"tags": ["b", "a"]})


# -- a reference evaluator of Qdrant's documented semantics -------------------------

MISSING = object()


def _get(md: Any, key: str) -> Any:
    cur = md
    for k in key.removesuffix("[]").split("."):
        if not isinstance(cur, dict) or k not in cur:
            return MISSING
        cur = cur[k]
    return cur


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _num(a) and _num(b):
        return a == b
    return type(a) is type(b) and isinstance(a, str) and a == b


def _elem(c: dict[str, Any], e: Any) -> bool:
    if "match" in c:
        ((k, v),) = c["match"].items()
        if k == "value":
            return _eq(e, v)
        if k == "any":
            return any(_eq(e, x) for x in v)
        if k == "text":
            return isinstance(e, str) and v in e
        return e is not None and not isinstance(e, (dict, list)) and not any(_eq(e, x) for x in v)
    ops = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
           "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
    return _num(e) and all(ops[k](e, b) for k, b in c["range"].items())


def q_ref(f: dict[str, Any], md: dict[str, Any], rid: str) -> bool:
    if "key" in f:
        x = _get(md, f["key"])
        if x is MISSING:
            return False
        return any(_elem(f, e) for e in x) if isinstance(x, list) else _elem(f, x)
    if "has_id" in f:
        return rid in {str(i) for i in f["has_id"]}
    if "is_empty" in f:
        x = _get(md, f["is_empty"]["key"])
        return x is MISSING or x is None or x == []
    if "is_null" in f:
        return _get(md, f["is_null"]["key"]) is None
    ok = all(q_ref(c, md, rid) for c in f.get("must", []))
    if f.get("should"):
        ok = ok and any(q_ref(c, md, rid) for c in f["should"])
    ok = ok and not any(q_ref(c, md, rid) for c in f.get("must_not", []))
    if "min_should" in f:
        ms = f["min_should"]
        ok = ok and sum(q_ref(c, md, rid) for c in ms["conditions"]) >= ms["min_count"]
    return ok


SC = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([0.5, 1.0]),
               st.sampled_from(["a", "b", "ab", ""]))
VAL = st.one_of(SC, st.lists(SC, max_size=3), st.fixed_dictionaries({"x": SC}))
MD = st.dictionaries(st.sampled_from(["f", "g"]), VAL, max_size=2)
KEY = st.sampled_from(["f", "g", "g.x", "f[]"])
LIT = st.one_of(st.booleans(), st.integers(-2, 2), st.sampled_from(["a", "b", "ab"]))
LEAF = st.one_of(
    st.builds(lambda k, v: cond(k, match={"value": v}), KEY, LIT),
    st.builds(lambda k, v: cond(k, match={"any": v}), KEY, st.lists(LIT, min_size=1, max_size=3)),
    st.builds(lambda k, v: cond(k, match={"except": v}), KEY,
              st.lists(LIT, min_size=1, max_size=3)),
    st.builds(lambda k, v: cond(k, match={"text": v}), KEY, st.sampled_from(["a", "b", ""])),
    st.builds(lambda k, r: cond(k, range=r), KEY,
              st.dictionaries(st.sampled_from(["gt", "gte", "lt", "lte"]),
                              st.sampled_from([-1, 0, 0.5, 1]), min_size=1)),
    st.builds(lambda k: {"is_empty": {"key": k}}, KEY),
    st.builds(lambda k: {"is_null": {"key": k}}, KEY),
    st.builds(lambda ids: {"has_id": ids}, st.lists(st.sampled_from(["0", "1", 2, "3"]),
                                                     min_size=1, max_size=3)),
)
QF = st.recursive(
    st.builds(lambda m: {"must": m}, st.lists(LEAF, min_size=1, max_size=2)),
    lambda inner: st.builds(
        lambda m, s, n: {k: v for k, v in (("must", m), ("should", s), ("must_not", n)) if v},
        st.lists(st.one_of(LEAF, inner), min_size=1, max_size=2),  # never {} (see errors)
        st.lists(st.one_of(LEAF, inner), max_size=2),
        st.lists(st.one_of(LEAF, inner), max_size=2)),
    max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(f=QF, metas=st.lists(MD, min_size=1, max_size=8))
def test_qdrant_matches_reference(f: dict[str, Any], metas: list[dict[str, Any]]) -> None:
    flt = parse_filter(f)
    for i, md in enumerate(metas):
        want = q_ref(f, md, str(i))
        if flt is None:
            assert want
            continue
        assert flt.matches(md, id=str(i)) == want, (f, md)
        assert parse_filter(flt.to_string()) == flt == parse_filter(flt.to_dict())


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(fs=st.lists(QF, min_size=1, max_size=5), metas=st.lists(MD, min_size=1, max_size=30),
       indexed=st.booleans())
def test_qdrant_store_matches_reference(tmp_path_factory, fs, metas, indexed) -> None:
    path = tmp_path_factory.mktemp("qh") / "s.db"
    with VecStore.open(path, Config(dim=4, seal_threshold=10)) as s:
        half = len(metas) // 2
        s.upsert_many([(str(i), [1, i, 2, 3], m) for i, m in enumerate(metas) if i < half] or
                      [("x", [1, 1, 1, 1], {})])
        if indexed:
            s.create_index("f", "inverted")
            s.create_index("g.x", "btree")
        rest = [(str(i), [1, i, 2, 3], m) for i, m in enumerate(metas) if i >= half]
        if rest:
            s.upsert_many(rest)
        s.delete_many([str(i) for i in range(0, len(metas), 4)])
        live = {r.id: r.metadata for r in s.scan()}
        for f in fs:
            want = sorted(i for i, m in live.items() if q_ref(f, m, i))
            assert s.count(filter=f) == len(want), f
            assert sorted(r.id for r in s.query([1, 1, 2, 3], k=100, filter=f)) == want, f
            flt = parse_filter(f)
            if flt is not None:
                assert sorted(r.id for r in s.query([1, 1, 2, 3], k=100,
                                                    filter=flt.to_string())) == want


# -- HAS_ID on a store with sealed (HNSW) and growing segments ----------------------


def test_has_id_sealed_and_growing(tmp_path) -> None:
    rng = np.random.default_rng(3)
    n = 1500
    data = rng.normal(size=(n, 8)).astype(np.float32)
    with VecStore.open(tmp_path / "h.db", Config(dim=8, seal_threshold=400)) as s:
        s.upsert_many(ids=[str(i) for i in range(n)], vectors=data,
                      metadata=[{"b": i % 3} for i in range(n)])
        s.optimize()
        s.upsert_many(ids=[str(i) for i in range(n, n + 150)], vectors=data[:150],
                      metadata=[{"b": i % 3} for i in range(150)])  # growing
        s.upsert("5", data[5], {"b": 9})  # a newer version of a sealed row
        wanted = [str(i) for i in range(0, n + 150, 7)] + ["missing"]
        live = {str(i) for i in range(0, n + 150, 7)}
        f = {"must": [{"has_id": wanted}]}
        assert s.count(filter=f) == len(live)
        got = s.query(data[14], k=len(live), filter=f)
        assert {r.id for r in got} == live and got[0].id == "14"
        both = {"must": [{"has_id": wanted}, cond("b", match={"value": 1})]}
        want_both = {i for i in live if (int(i) % 1500) % 3 == 1 and i != "5"}
        assert {r.id for r in s.query(data[0], k=2000, filter=both)} == want_both
        plan = s.explain(data[0], k=10, filter=f)
        assert plan.estimated_matches == len(live)
        s.create_index("b", "hash")
        assert {r.id for r in s.query(data[0], k=2000, filter=both)} == want_both
        assert s.count(filter={"must_not": [{"has_id": wanted}]}) == n + 150 - len(live)
        snap = s.snapshot()
        s.delete_many(filter={"should": [{"has_id": ["1", "2", "1400", "1600"]},
                                         cond("b", match={"value": 9})]})
        assert s.get("1") is None and s.get("1400") is None and s.get("5") is None
        assert s.get("3") is not None and len(s) == n + 150 - 5
        assert snap.count(filter={"has_id": ["1", "2", "5"]}) == 3  # the snapshot keeps them
        # a HAS_ID delete in the same batch as the write that created the row
        s.upsert("new", data[0], {"b": 0})
        s.delete_many(filter="HAS_ID('new') OR b = 42")
        assert s.get("new") is None


# -- detection, qdrant_client objects, errors ---------------------------------------


class FakeModel:
    """Stands in for qdrant_client.models.Filter (a pydantic model)."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.d = d

    def model_dump(self, by_alias: bool = False, exclude_none: bool = False) -> dict[str, Any]:
        assert by_alias and exclude_none
        return self.d


def test_model_dump_duck_typing(store: VecStore) -> None:
    d = {"must": [{"key": "city", "match": {"value": "NYC"}, "range": None}],
         "should": None, "must_not": [{"has_id": ["r0"]}]}
    want = ids_of(store, "ANY(city = 'NYC') AND NOT HAS_ID('r0')")
    assert ids_of(store, FakeModel(d)) == want
    assert Filter.from_qdrant(FakeModel(d)) == parse_filter(FakeModel(d))


def test_detection_rule() -> None:
    assert parse_filter({"must": "x"}) == parse_filter("must = 'x'")  # a plain field
    assert parse_filter({"key": "x"}) == parse_filter("key = 'x'")
    assert parse_filter({"path": "a", "operator": "Equal", "valueText": "t"}) == \
        parse_filter("ANY(a = 't')")
    assert Filter.from_dict({"path": "a", "operator": "Equal", "valueText": "t"}) == \
        parse_filter("path = 'a' AND operator = 'Equal' AND valueText = 't'")
    assert parse_filter({"operator": "Alice", "path": "p"}) == \
        parse_filter("operator = 'Alice' AND path = 'p'")
    assert parse_filter({"must": []}) is None and parse_filter({"must": [{}]}) is None
    assert parse_filter({"must": [{"key": "a", "match": {"value": 1}}], "should": []}) == \
        parse_filter("ANY(a = 1)")


@pytest.mark.parametrize(("bad", "key_path"), [
    ({"must": [{"key": "a", "match": {"phrase": "x y"}}]}, "must[0].match.phrase"),
    ({"must": [{"key": "a", "geo_radius": {"center": {}}}]}, "must[0].geo_radius"),
    ({"must": [{"key": "a", "values_count": {"gt": 1}}]}, "must[0].values_count"),
    ({"should": [{"nested": {"key": "a", "filter": {}}}]}, "should[0].nested"),
    ({"must_not": [{"key": "a", "range": {"between": 1}}]}, "must_not[0].range.between"),
    ({"must": [{"key": "a", "range": {"gt": True}}]}, "must[0].range.gt"),
    ({"must": [{"must": [{"key": "a[].b", "match": {"value": 1}}]}]}, "must[0].must[0].key"),
    ({"must": [{"has_id": [None]}]}, "must[0].has_id"),
    ({"must": [{"key": "a", "match": {"value": 1}, "range": {"gt": 1}}]}, "must[0]"),
    ({"min_should": {"conditions": [{"has_id": [1]}], "min_count": 2}}, "min_should"),
    ({"operator": "And", "operands": [{"path": ["a"], "operator": "Equal", "valueInt": "x"}]},
     "operands[0].valueInt"),
    ({"operator": "Or", "operands": [{"path": ["a"], "operator": "Like", "valueText": "a?c"}]},
     "operands[0].valueText"),
    ({"path": ["a"], "operator": "WithinGeoRange", "valueGeoRange": {}}, "operator"),
    ({"path": ["a"], "operator": "Equal", "valueTextArray": ["x"]}, "valueTextArray"),
])
def test_errors_name_the_key_path(bad: dict[str, Any], key_path: str) -> None:
    with pytest.raises(FilterError) as ei:
        parse_filter(bad)
    assert ei.value.key_path == key_path, str(ei.value)  # type: ignore[attr-defined]
    assert key_path in str(ei.value)


def test_has_id_needs_the_id() -> None:
    f = parse_filter({"has_id": [1]})
    assert f is not None and f.uses_ids
    with pytest.raises(FilterError, match="id"):
        f.matches({})
    assert f.matches({}, id="1") and not f.matches({}, id="2")
    assert parse_filter("has_id(1) AND has_id = 2") == \
        parse_filter({"$and": [{"$hasid": ["1"]}, {"has_id": 2}]})
    with pytest.raises(FilterError, match="one field"):
        parse_filter("ANY(a = 1 AND b = 2)")
