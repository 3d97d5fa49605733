"""Hostile input at the API and the CLI.

Every call gets input it should refuse (or may accept, for fuzzed input
that happens to be valid).  A refusal must be a typed error: a
``vecstore.VecStoreError`` (the contract: "All errors derive from
VecStoreError"; argument errors *also* derive from ValueError/TypeError).
A plain ``TypeError``/``ValueError``, ``RecursionError``, ``KeyError``,
an ``lmdb`` error, ... is a failure, and so is a call that raised yet
changed the store (version, record count, partitions).  Input that is
accepted must round-trip (metadata, ids and vectors read back equal what
was written).  Hypothesis generates the fuzzed filters (string and dict
form), metadata, ids, vectors and query parameters; the hand-written list
covers huge ids, deep nesting, non-UTF-8 strings, 10 MB metadata, wrong
dtypes/shapes, batches with one bad record.  At the end the store is
reopened and must be consistent, with the baseline records unchanged.

The CLI gets bad paths, garbage stores, garbage import files and bad
arguments: a non-zero exit with a message, never a traceback, never a
changed store.  Failures are counted once per distinct (call, error type).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._check import check_store, cli_check
from ._common import run_cli, workdir
from ._report import Report

DIM = 8
CALL_TIMEOUT = 60.0


class Hang(Exception):
    pass


def call_with_timeout(fn: Callable[[], Any], timeout: float = CALL_TIMEOUT) -> Any:
    """Run ``fn`` in a daemon thread; raise :class:`Hang` if it does not
    return in time (a hung thread is abandoned)."""
    import threading

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["r"] = fn()
        except BaseException as exc:
            box["e"] = exc

    t = threading.Thread(target=target, daemon=True, name="hostile-call")
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise Hang(f"no answer after {timeout:.0f} s")
    if "e" in box:
        raise box["e"]
    return box.get("r")


class Outcomes:
    def __init__(self, report: Report) -> None:
        self.report = report
        self.tried = 0
        self.typed = 0
        self.accepted = 0
        self.by_area: dict[str, int] = {}
        self.seen: set[tuple[str, str, str]] = set()
        self.all: list[str] = []
        self.seconds: dict[str, float] = {}

    def bad(self, area: str, call: str, kind: str, detail: str) -> None:
        sig = (area, call, kind)
        if sig in self.seen:
            return
        self.seen.add(sig)
        self.all.append(f"[{kind}] {area}: {call}: {detail}")
        self.report.fail(f"hostile: {kind}", f"{area}: {call}: {detail}")


def _short(x: Any, n: int = 90) -> str:
    try:
        r = repr(x)
    except Exception:
        r = f"<{type(x).__name__}>"
    return r if len(r) <= n else r[: n - 3] + "..."


class StoreProxy:
    """Forwards to the current store, so the harness can reopen it when a
    hostile call has killed its writer."""

    def __init__(self, store: Any) -> None:
        self._s = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s, name)

    def __len__(self) -> int:
        return len(self._s)


class Harness:
    def __init__(self, store: StoreProxy, out: Outcomes, path: str) -> None:
        self.store = store
        self.out = out
        self.path = path
        self.vec = [0.5] * DIM

    def writer_alive(self) -> bool:
        try:
            call_with_timeout(lambda: self.store.upsert("__probe__", self.vec), 8)
            call_with_timeout(lambda: self.store.delete("__probe__"), 8)
            return True
        except Hang:
            self.out.bad("writer", "a write after the dead writer", "write hangs forever "
                         "(instead of StoreClosedError)", "LoopThread.call never answers")
            return False
        except BaseException:
            return False

    def reopen(self) -> None:
        from vecstore import VecStore

        try:
            call_with_timeout(self.store._s.close, 8)
        except BaseException:
            pass
        self.store._s = VecStore.open(self.path)

    def state(self) -> tuple[int, int, tuple[str, ...], int]:
        s = self.store
        return (s.version, len(s), tuple(s.partitions()), len(s.partition("p1")))

    def attempt(self, area: str, call: str, fn: Callable[[], Any], arg: Any = None, *,
                must_reject: bool = False, check: Callable[[Any], str | None] | None = None,
                undo: Callable[[], Any] | None = None) -> Any:
        """Run one hostile call and judge it."""
        out = self.out
        t_start = time.perf_counter()
        try:
            return self._attempt(area, call, fn, arg, must_reject, check, undo)
        finally:
            out.seconds[area] = out.seconds.get(area, 0.0) + time.perf_counter() - t_start

    def _attempt(self, area: str, call: str, fn: Callable[[], Any], arg: Any,
                 must_reject: bool, check: Callable[[Any], str | None] | None,
                 undo: Callable[[], Any] | None) -> Any:
        import vecstore

        out = self.out
        out.tried += 1
        out.by_area[area] = out.by_area.get(area, 0) + 1
        before = self.state()
        try:
            result = call_with_timeout(fn)
        except Hang as exc:
            out.bad(area, call, "the call hung", f"{_short(arg)}: {exc}")
            self.reopen()
            return None
        except vecstore.VecStoreError:
            out.typed += 1
            self.out.report.ok(f"hostile {area}: typed errors")
            after = self.state()
            if after != before:
                out.bad(area, call, "a refused call changed the store",
                        f"{_short(arg)}: {before} -> {after}")
            return None
        except RecursionError:
            out.bad(area, call, "RecursionError (not a typed error)", _short(arg))
            return None
        except MemoryError:
            out.bad(area, call, "MemoryError", _short(arg))
            return None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # trio.Cancelled is a BaseException
            kind = f"{type(exc).__module__}.{type(exc).__name__}".replace("builtins.", "")
            after = self.state()
            if type(exc) in (TypeError, ValueError):
                out.bad(area, call, "plain TypeError/ValueError, not a VecStoreError",
                        f"{_short(arg, 50)} -> {kind}: {str(exc)[:90]}")
            else:
                out.bad(area, call, "unexpected exception type (not a VecStoreError)",
                        f"{_short(arg, 50)} -> {kind}: {str(exc)[:110]}")
            if not self.writer_alive():
                out.bad(area, call, "the refused call killed the store's writer "
                        "(later writes fail)", f"{_short(arg)} -> {kind}")
                self.reopen()
            if after != before:
                out.bad(area, call, "a refused call changed the store",
                        f"{_short(arg)}: {before} -> {after}")
            return None
        out.accepted += 1
        if must_reject:
            out.bad(area, call, "invalid input accepted", _short(arg))
        elif check is not None:
            problem = check(result)
            if problem:
                out.bad(area, call, "accepted input does not round-trip",
                        f"{_short(arg)}: {problem}")
            else:
                self.out.report.ok(f"hostile {area}: accepted input round-trips")
        if undo is not None:
            try:
                undo()
            except Exception as exc:
                out.bad(area, call, "undo failed", f"{type(exc).__name__}: {exc}")
        return result


# -- hand-written hostile inputs -----------------------------------------------------------------

VEC = [0.5] * DIM


class _Weird:
    def __repr__(self) -> str:
        return "<weird object>"


def _deep(n: int, leaf: Any = 1) -> Any:
    d: Any = leaf
    for _ in range(n):
        d = {"k": d}
    return d


def _deep_list(n: int) -> Any:
    d: Any = 1
    for _ in range(n):
        d = [d]
    return d


def hostile_ids() -> list[tuple[Any, bool]]:
    """(id, must_reject)"""
    return [
        ("", True), ("\x00", True), ("a\x00b", True), ("x" * 481, True), ("é" * 241, True),
        ("x" * 1_000_000, True), (10 ** 600, True), (True, True), (False, True), (1.5, True),
        (None, True), (b"bytes", True), (["l"], True), ({"d": 1}, True), ("\ud800", True),
        ("ok\udcffbad", True), (np.float64(1.0), True), (_Weird(), True), (float("nan"), True),
        (-5, False), (2 ** 70, False), ("🦀" * 100, False), ("x" * 480, False),
        (np.int64(7), False), ("spaces and\nnewlines\t", False),
    ]


def hostile_vectors() -> list[tuple[Any, bool]]:
    obj = np.empty(DIM, object)
    obj[:] = 1.0
    return [
        ([1.0] * (DIM - 1), True), ([1.0] * (DIM + 1), True), ([], True), ([[1.0] * DIM], True),
        (np.ones((1, DIM)), True), ("abcdefgh", True), (["a"] * DIM, True), ([1j] * DIM, True),
        ([None] * DIM, True), (obj, True), (np.array(["1"] * DIM), True),
        ([float("nan")] + [1.0] * (DIM - 1), True), ([float("inf")] * DIM, True),
        ([1e39] * DIM, True), ([0.0] * DIM, True), ([[1, 2], [3]], True), ({"a": 1}, True),
        ((x for x in VEC), True), ({1.0, 2.0}, True), (5.0, True), (None, True),
        (np.ones(10 ** 6, np.float32), True), (np.zeros(DIM, [("a", "f4")]), True),
        (np.array([1.0] * DIM, np.float16), False), (np.arange(1, DIM + 1), False),
        (np.array([True] * DIM), False), ([1e-45] * DIM, False), (tuple(VEC), False),
        (np.array(VEC, np.float64)[::1], False), (np.ones((DIM, 2))[:, 0], False),
    ]


def hostile_metadata() -> list[tuple[Any, bool]]:
    selfref: dict[str, Any] = {"a": 1}
    selfref["self"] = selfref
    lref: list[Any] = [1]
    lref.append(lref)
    return [
        ([1, 2], True), ("str", True), (5, True), ({1: "a"}, True), ({(1, 2): 1}, True),
        ({"s": {1, 2}}, True), ({"b": b"x"}, True), ({"o": _Weird()}, True), ({"c": 1j}, True),
        ({"f": float("nan")}, True), ({"f": float("inf")}, True), ({"i": 2 ** 64}, True),
        ({"i": -(2 ** 63) - 1}, True), ({"d": time}, True), (_deep(40), True),
        (_deep(100_000), True), (_deep_list(100_000), True), (selfref, True), ({"l": lref}, True),
        ({"u": "bad\udcff"}, True), ({"bad\ud800key": 1}, True), ({"big": "x" * (10 << 20)}, True),
        ({f"k{i}": "y" * 100 for i in range(20_000)}, True), ({"a": np.arange(3)}, True),
        ({"n": None, "t": (1, "a"), "nested": {"x": [1, {"y": None}]}}, False),
        ({"i": 2 ** 64 - 1, "j": -(2 ** 63)}, False), ({"": "empty key"}, False),
        ({"f": -0.0, "g": 1e308, "h": 5e-324}, False), (_deep(30), False),
        ({"emoji": "🦀", "nul": "a\x00b"}, False), ({"big": "x" * 900_000}, False),
    ]


def hostile_filters() -> list[Any]:
    return [
        "", "   ", "(", ")", "a =", "= 1", "a == 1", "a = 'unterminated", "a IN ()", "a IN (1,",
        "a BETWEEN 1 AND 2", "a = 1 AND", "OR a = 1", "NOT", "a IS", "a IS NOT", "a EXISTS 1",
        "a STARTSWITH 1", "a < [1]", "a = nan", "a = inf", "a = 1e999", "a = --1", "a.b. = 1",
        "`a = 1", "a = '\\x'", "a = '\\ud800'", "(" * 5000 + "a = 1" + ")" * 5000,
        "NOT " * 5000 + "a = 1", " AND ".join(["a = 1"] * 20000), "a = 1" + " " * 70000,
        "a = 'x" + "\ud800" + "'", "\x00", "a = 1; DROP TABLE", 5, 1.5, True, b"a = 1",
        ["a = 1"], {"$bogus": 1}, {"a": {"$bogus": 1}}, {"$and": []}, {"$and": {}},
        {"$or": [1]}, {"$not": []}, {"a": {"$in": 5}}, {"a": {"$in": []}}, {"a": {"$gt": {}}},
        {"a": {"$gt": None}}, {1: 2}, {"a": {"$eq": float("nan")}}, {"a": {"$eq": b"x"}},
        {"a": {"$exists": "yes"}}, {"a": {"$contains": [1]}}, {"": 1}, {"a..b": 1},
        {"a": {"$eq": 1, "$bogus": 2}}, _deep_filter(5000), {"$and": [{"a": 1}] * 100000},
        {"a": {"$in": list(range(10 ** 6))}}, {"a\ud800": 1}, {"a": "\udcff"},
    ]


def _deep_filter(n: int) -> Any:
    d: Any = {"a": 1}
    for _ in range(n):
        d = {"$not": d}
    return d


# -- Hypothesis strategies -------------------------------------------------------------------------


def strategies() -> dict[str, Any]:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    words = st.sampled_from([
        "a", "n", "tag", "user.age", "`odd key`", "x.y.z", "AND", "OR", "NOT", "IN", "NOT IN",
        "CONTAINS", "STARTSWITH", "EXISTS", "IS NULL", "IS NOT NULL", "=", "!=", "<", "<=", ">",
        ">=", "(", ")", "[", "]", ",", "'x'", '"y"', "1", "-2.5e3", "true", "false", "null",
        "'", '"', "`", "\\", "1e999", "nan", "''", "'\\u00e9'", "0x10", "--", "$", "\u00e9"])
    fstring = st.one_of(st.lists(words, max_size=14).map(" ".join), st.text(max_size=60))
    leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                     st.binary(max_size=4), st.just(float("nan")), st.integers(2**63, 2**70))
    keys = st.sampled_from(["$and", "$or", "$not", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte",
                            "$in", "$nin", "$exists", "$contains", "$startswith", "$isnull",
                            "$bogus", "a", "n", "tag", "user.age", "", "`q`", "a..b"])
    fdict = st.recursive(leaf, lambda ch: st.one_of(st.lists(ch, max_size=4),
                                                    st.dictionaries(keys, ch, max_size=3)),
                         max_leaves=12).filter(lambda x: isinstance(x, dict))
    mleaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**65), 2**65), st.floats(),
                      st.text(), st.binary(max_size=3), st.complex_numbers(max_magnitude=2),
                      st.sampled_from(["\ud800", "a\udcffb", "\x00"]))
    mkeys = st.one_of(st.text(max_size=6), st.integers(), st.sampled_from(["\ud800", ""]))
    meta = st.recursive(mleaf, lambda ch: st.one_of(
        st.lists(ch, max_size=4), st.tuples(ch, ch), st.dictionaries(mkeys, ch, max_size=4)),
        max_leaves=20)
    ids = st.one_of(st.text(max_size=20), st.integers(), st.binary(max_size=5), st.floats(),
                    st.none(), st.booleans(), st.text(min_size=470, max_size=500))
    dtypes = st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.boolean_dtypes(),
                       hnp.complex_number_dtypes(), hnp.unicode_string_dtypes(max_len=3))
    vectors = st.one_of(
        hnp.arrays(dtypes, st.one_of(st.just(DIM), st.integers(0, 12),
                                     st.tuples(st.integers(0, 3), st.integers(0, 9)))),
        st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=2)), max_size=10))
    qparams = st.fixed_dictionaries({
        "k": st.one_of(st.integers(-3, 10 ** 13), st.floats(), st.booleans(), st.text(max_size=3),
                       st.none()),
        "ef": st.one_of(st.none(), st.integers(-3, 10 ** 10), st.floats(), st.text(max_size=2)),
        "partitions": st.one_of(st.none(), st.text(max_size=3),
                                st.lists(st.one_of(st.text(max_size=4), st.integers(),
                                                   st.none()), max_size=3)),
        "include_vectors": st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=2)),
    })
    return {"fstring": fstring, "fdict": fdict, "meta": meta, "ids": ids, "vectors": vectors,
            "qparams": qparams}


def _norm_meta(m: Any, top: bool = True) -> Any:
    if m is None and top:
        return {}  # metadata=None means no metadata
    if isinstance(m, dict):
        return {k: _norm_meta(v, False) for k, v in m.items()}
    if isinstance(m, (list, tuple)):
        return [_norm_meta(v, False) for v in m]
    return m


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


# -- the API phase ---------------------------------------------------------------------------------


def api_phase(path: str, examples: int, seed: int, out: Outcomes) -> None:
    from hypothesis import HealthCheck, given, settings

    from vecstore import Config, Query, VecStore

    rng = np.random.default_rng(seed)
    store: Any = StoreProxy(VecStore.open(path, Config(dim=DIM)))
    base_ids = [f"b{i}" for i in range(300)]
    base_vecs = rng.standard_normal((300, DIM)).astype(np.float32)
    store.upsert_many(ids=base_ids, vectors=base_vecs,
                      metadata=[{"n": i, "tag": "x" if i % 2 else "y", "user": {"age": i % 90}}
                                for i in range(300)])
    store.partition("p1").upsert_many([(f"q{i}", rng.standard_normal(DIM)) for i in range(10)])
    h = Harness(store, out, path)
    q = rng.standard_normal(DIM).astype(np.float32)

    def roundtrip_meta(meta: Any) -> Callable[[Any], str | None]:
        def check(_r: Any) -> str | None:
            rec = store.get("h-meta")
            want = _norm_meta(meta)
            if rec is None or not _same(rec.metadata, want):
                return f"read back {_short(rec and rec.metadata)}"
            return None
        return check

    # ids
    for rid, must in hostile_ids():
        def chk(_r: Any, rid: Any = rid) -> str | None:
            key = str(int(rid)) if isinstance(rid, (int, np.integer)) else rid
            rec = store.get(key)
            return None if rec is not None and rec.id == key else f"get({key!r}) = {rec}"
        h.attempt("ids", "upsert(id)", lambda rid=rid: store.upsert(rid, VEC), rid,
                  must_reject=must, check=chk,
                  undo=lambda rid=rid: store.delete(rid))
        h.attempt("ids", "get(id)", lambda rid=rid: store.get(rid), rid)
        h.attempt("ids", "delete(id)", lambda rid=rid: store.delete(rid), rid)
    # vectors
    for vec, must in hostile_vectors():
        def chkv(_r: Any, vec: Any = vec) -> str | None:
            rec = store.get("h-vec")
            want = np.asarray(vec).astype(np.float32)
            return None if rec is not None and np.array_equal(rec.vector, want) else \
                f"stored {rec and rec.vector}"
        h.attempt("vectors", "upsert(vector)", lambda vec=vec: store.upsert("h-vec", vec), vec,
                  must_reject=must, check=chkv, undo=lambda: store.delete("h-vec"))
        h.attempt("vectors", "query(vector)", lambda vec=vec: store.query(vec, k=3), vec,
                  must_reject=must)
    # metadata
    for meta, must in hostile_metadata():
        h.attempt("metadata", "upsert(metadata)",
                  lambda meta=meta: store.upsert("h-meta", VEC, meta), meta, must_reject=must,
                  check=roundtrip_meta(meta), undo=lambda: store.delete("h-meta"))
    # batches: one bad record makes the whole batch fail, nothing written
    good = [(f"g{i}", rng.standard_normal(DIM)) for i in range(20)]
    for bad in [("", VEC), ("bad-vec", [1.0] * (DIM + 1)), ("bad-meta", VEC, {"s": {1}}),
                ("nan", [float("nan")] * DIM), ("zero", [0.0] * DIM), ("short",),
                ("bad-id-type", VEC, {}, "extra")]:
        h.attempt("batches", "upsert_many(one bad record)",
                  lambda bad=bad: store.upsert_many([*good, bad]), bad, must_reject=True)
    for kw in [dict(ids=["a", "b"], vectors=np.ones((3, DIM))),
               dict(ids=["a"], vectors=np.ones((1, DIM)), metadata=[{}, {}]),
               dict(ids=["a"], vectors=np.ones((1, DIM)), metadata={"a": 1}),
               dict(ids=["a"], vectors=np.ones((1, DIM + 1))), dict(ids=["a"]),
               dict(vectors=np.ones((1, DIM))), dict(ids=[], vectors=np.ones((0, DIM))),
               dict(ids=["a", "b"], vectors=np.ones((2, DIM)), metadata=[{}, 5]),
               dict(ids=[["x"]], vectors=np.ones((1, DIM))),
               dict(ids=["a"], vectors=np.ones((1, 1, DIM)))]:
        h.attempt("batches", "upsert_many(columns)", lambda kw=kw: store.upsert_many(**kw),
                  kw, must_reject=True)
    h.attempt("batches", "upsert_many(items and ids)",
              lambda: store.upsert_many(good, ids=["a"]), "items+ids", must_reject=True)
    h.attempt("batches", "upsert_many([])", lambda: store.upsert_many([]), [], must_reject=True)
    h.attempt("batches", "upsert_many(None)", lambda: store.upsert_many(None), None,
              must_reject=True)
    h.attempt("batches", "upsert_many(items of str)", lambda: store.upsert_many(["abc"]),
              ["abc"], must_reject=True)
    h.attempt("batches", "delete_many([None])", lambda: store.delete_many([None]), [None],
              must_reject=True)
    h.attempt("batches", "delete_many(filter=bad)",
              lambda: store.delete_many(filter="tag = "), "tag = ", must_reject=True)
    # filters, hand-written
    for f in hostile_filters():
        h.attempt("filters", "query(filter)", lambda f=f: store.query(q, k=5, filter=f), f)
        h.attempt("filters", "count(filter)", lambda f=f: store.count(filter=f), f)
    # query / read parameters
    qcases = [  # (parameters, refused by query(vec, **kw), refused by Query(vec, **kw))
        (dict(k=0), True, True), (dict(k=-1), True, True), (dict(k=True), True, True),
        (dict(k="10"), True, True), (dict(k=10.5), True, True), (dict(k=None), False, True),
        (dict(k=10 ** 12), False, False), (dict(k=2 ** 63), False, False),
        (dict(ef=0), True, True), (dict(ef=-1), True, True), (dict(ef="x"), True, True),
        (dict(ef=10 ** 9), False, False), (dict(partitions=[""]), True, True),
        (dict(partitions=["\x00"]), True, True), (dict(partitions=[None]), True, True),
        (dict(partitions=[1]), True, True), (dict(partitions=["x" * 300]), True, True),
        (dict(partitions=["\ud800"]), True, True), (dict(partitions="p1"), False, False),
        (dict(include_vectors="yes"), False, False)]
    for kw, must_q, must_Q in qcases:
        h.attempt("query parameters", f"query({', '.join(kw)}=...)",
                  lambda kw=kw: store.query(q, **kw), kw, must_reject=must_q)
        h.attempt("query parameters", f"Query({', '.join(kw)}=...)",
                  lambda kw=kw: store.query(Query(q, **kw)), kw, must_reject=must_Q)
    for bs in (0, -1, "x", None, 2 ** 70):
        h.attempt("read parameters", "scan(batch_size)",
                  lambda bs=bs: list(store.scan(batch_size=bs))[:1], bs,
                  must_reject=bs != 2 ** 70)
    # versions
    for ver in (-1, 10 ** 30, "x", 1.5, True, None, "latest+5"):
        def resolve(ver: Any = ver) -> Any:
            return store.version + 5 if ver == "latest+5" else ver
        h.attempt("versions", "snapshot(version)",
                  lambda resolve=resolve: store.snapshot(version=resolve()), ver,
                  must_reject=ver is not None)
        h.attempt("versions", "rollback(version)",
                  lambda resolve=resolve: store.rollback(resolve()), ver, must_reject=True)
    for tag in ("", None, "x" * 1000, 5, "\ud800"):
        h.attempt("versions", "tag(name)", lambda tag=tag: store.tag(tag), tag, must_reject=True)
        h.attempt("versions", "snapshot(tag)", lambda tag=tag: store.snapshot(tag=tag), tag,
                  must_reject=tag is not None)
    for kw in [dict(versions=0), dict(versions=-1), dict(versions="x"), dict(versions=True),
               dict(seconds=-1), dict(seconds=float("nan")), dict(seconds="x")]:
        h.attempt("versions", "set_retention", lambda kw=kw: store.set_retention(**kw), kw,
                  must_reject=True)
    h.attempt("versions", "history(id)", lambda: store.history(None), None, must_reject=True)
    # partitions
    for name in ("", None, "\x00", "x" * 300, "\ud800", 5, b"p"):
        h.attempt("partitions", "partition(name)", lambda name=name: store.partition(name),
                  name, must_reject=True)
        h.attempt("partitions", "drop_partition(name)",
                  lambda name=name: store.drop_partition(name), name, must_reject=True)
    # config
    for kw in [dict(dim=0), dict(dim=-1), dict(dim="8"), dict(dim=True), dict(dim=2.0),
               dict(distance="manhattan"), dict(distance=None), dict(durability="maybe"),
               dict(seal_threshold=0), dict(hnsw_m=-1), dict(ef_search="x")]:
        h.attempt("config", "Config(...)", lambda kw=kw: Config(**kw), kw, must_reject=True)
    for kw in [dict(dim=DIM + 1), dict(dim=DIM, distance="euclidean")]:
        h.attempt("config", "open(mismatched config)",
                  lambda kw=kw: VecStore.open(path, Config(**kw)), kw, must_reject=True)
    # Hypothesis
    strat = strategies()
    cfg = settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                   suppress_health_check=list(HealthCheck), print_blob=False)

    @cfg
    @given(strat["fstring"])
    def fuzz_fstring(f: str) -> None:
        h.attempt("fuzzed string filters", "query(filter=str)",
                  lambda: store.query(q, k=5, filter=f), f)

    @cfg
    @given(strat["fdict"])
    def fuzz_fdict(f: Any) -> None:
        h.attempt("fuzzed dict filters", "query(filter=dict)",
                  lambda: store.query(q, k=5, filter=f), f)
        h.attempt("fuzzed dict filters", "count(filter=dict)", lambda: store.count(filter=f), f)

    @cfg
    @given(strat["meta"])
    def fuzz_meta(m: Any) -> None:
        h.attempt("fuzzed metadata", "upsert(metadata)", lambda: store.upsert("h-meta", VEC, m),
                  m, check=roundtrip_meta(m), undo=lambda: store.delete("h-meta"))

    @cfg
    @given(strat["ids"])
    def fuzz_ids(rid: Any) -> None:
        def chk(_r: Any) -> str | None:
            key = str(int(rid)) if isinstance(rid, int) else rid
            rec = store.get(key)
            return None if rec is not None and rec.id == key else f"get({key!r}) = {rec}"
        h.attempt("fuzzed ids", "upsert(id)", lambda: store.upsert(rid, VEC), rid, check=chk,
                  undo=lambda: store.delete(rid))

    @cfg
    @given(strat["vectors"])
    def fuzz_vectors(vec: Any) -> None:
        def chk(_r: Any) -> str | None:
            rec = store.get("h-vec")
            want = np.asarray(vec).astype(np.float32).reshape(-1)
            return None if rec is not None and np.array_equal(rec.vector, want) else \
                f"stored {rec and rec.vector}"
        h.attempt("fuzzed vectors", "upsert(vector)", lambda: store.upsert("h-vec", vec), vec,
                  check=chk, undo=lambda: store.delete("h-vec"))
        h.attempt("fuzzed vectors", "query(vector)", lambda: store.query(vec, k=3), vec)

    @cfg
    @given(strat["qparams"])
    def fuzz_qparams(kw: dict[str, Any]) -> None:
        h.attempt("fuzzed query parameters", "query(**params)", lambda: store.query(q, **kw), kw)

    for fn in (fuzz_fstring, fuzz_fdict, fuzz_meta, fuzz_ids, fuzz_vectors, fuzz_qparams):
        fn()
    # the store afterwards: baseline intact, consistent
    got = {r.id: r for r in store.scan()}
    missing = [i for i, v in zip(base_ids, base_vecs)
               if i not in got or not np.array_equal(got[i].vector, v)]
    out.report.check("hostile: baseline records intact", not missing, f"{missing[:5]}")
    extra = sorted(set(got) - set(base_ids))
    out.report.check("hostile: nothing left behind by refused or undone calls", not extra,
                     f"{extra[:5]}")
    store.close()
    with VecStore.open(path) as store:
        problems = check_store(store)
        out.report.check("hostile: consistency check clean afterwards", not problems,
                         "; ".join(problems[:3]))
    avail, clean, said = cli_check(path)
    if avail:
        out.report.check("hostile: vecstore check clean afterwards", clean, said)


# -- the CLI phase ---------------------------------------------------------------------------------


CLI_MEMORY_CAP = 1536 << 20


def _cap_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (CLI_MEMORY_CAP, CLI_MEMORY_CAP))


def cli_phase(wd: Path, store_path: str, out: Outcomes) -> dict[str, int]:
    from vecstore import VecStore

    def snapshot() -> tuple[int, int]:
        with VecStore.open(store_path, read_only=True) as s:
            return s.version, len(s)

    before = snapshot()
    (wd / "regular-file").write_text("not a store")
    garbage = wd / "garbage-store"
    garbage.mkdir()
    (garbage / "data.mdb").write_bytes(os.urandom(8192))
    (wd / "empty-dir").mkdir()
    (wd / "bad.json").write_bytes(b'{"vectors": [{"id": 1, "values": [1, "x"]}' + b"\xff\xfe")
    # 100 KB: one JSONL line of 100,000 unclosed brackets
    (wd / "huge-line.json").write_text('{"vectors": [' + "[" * 100_000)
    (wd / "deep.json").write_text('{"vectors": [{"id": "a", "values": ' + "[" * 100_000 + "}]}")
    weird = wd / "store with spaces\nand newline é"
    VecStore.open(weird).close()
    cases = [
        [], ["--bogus"], ["stats"], ["stats", str(wd / "missing")],
        ["stats", str(wd / "regular-file")], ["stats", str(garbage)],
        ["stats", str(wd / "empty-dir")],
        ["stats", "x" * 100_000], ["stats", "--json", str(weird)], ["stats", store_path, "extra"],
        ["query", store_path, "not-a-vector"], ["rollback", store_path, "not-a-number"],
        ["rollback", store_path, "-1"], ["rollback", store_path, str(10 ** 30)],
        ["versions", str(garbage)], ["check", str(garbage)], ["check", str(wd / "missing")],
        ["import", "pinecone", str(wd / "bad.json"), store_path],
        ["import", "qdrant", str(wd / "huge-line.json"), store_path],
        ["import", "pinecone", str(wd / "deep.json"), store_path],
        ["import", "nosuchformat", str(wd / "bad.json"), store_path],
        ["import", "pinecone", str(wd / "missing.json"), store_path],
        ["export", store_path, str(wd / "regular-file")],
    ]
    counts = {"tried": 0, "not_built": 0}
    for args in cases:
        counts["tried"] += 1
        out.tried += 1
        out.by_area["cli"] = out.by_area.get("cli", 0) + 1
        shown = [a.replace(str(wd), "$TMP") for a in args]
        call = "vecstore " + " ".join(a if len(a) < 40 else a[:37] + "..." for a in shown)
        try:
            # capped, so that a runaway parse fails here instead of pushing the
            # (shared) machine into the OOM killer
            proc = run_cli(args, timeout=120, preexec_fn=_cap_memory)
        except Exception as exc:
            out.bad("cli", call, "hang or failure to run", str(exc)[:200])
            continue
        err = proc.stderr
        if "MemoryError" in err + proc.stdout or proc.returncode < 0:
            out.bad("cli", call, f"unbounded memory/crash on a small input "
                    f"(capped at {CLI_MEMORY_CAP >> 20} MiB)",
                    f"{call}: exit {proc.returncode}: {err.strip()[-160:]}")
            continue
        if "Traceback (most recent call last)" in err:
            last = [ln for ln in err.strip().splitlines() if ln.strip()][-1:]
            out.bad("cli", call, "traceback instead of an error message",
                    f"{call}: {last}")
            continue
        if proc.returncode == 2 and "not built" in err:
            counts["not_built"] += 1
            out.report.ok("hostile cli: clean exit")
            continue
        valid = args[:2] == ["stats", "--json"]
        if valid:
            out.report.check("hostile cli: valid odd path works", proc.returncode == 0,
                             f"{call}: exit {proc.returncode}: {err[-200:]}")
            continue
        if proc.returncode == 0:
            out.bad("cli", call, "bad arguments accepted (exit 0)", proc.stdout[-200:])
        elif not (err.strip() or proc.stdout.strip()):
            out.bad("cli", call, "non-zero exit without a message", f"exit {proc.returncode}")
        else:
            out.typed += 1
            out.report.ok("hostile cli: clean exit")
    after = snapshot()
    out.report.check("hostile cli: the store is unchanged", before == after,
                     f"(version, count) {before} -> {after}")
    return counts


def run(examples: int = 150, seed: int | None = None, keep: bool = False,
        report: Report | None = None) -> Report:
    report = report or Report("hostile")
    seed = random.randrange(2**31) if seed is None else seed
    out = Outcomes(report)
    t0 = time.monotonic()
    with workdir(keep, "hostile") as wd:
        path = str(wd / "store")
        api_phase(path, examples, seed, out)
        api_tried = out.tried
        t_cli = time.monotonic()
        cli = cli_phase(wd, path, out)
        out.seconds["cli"] = time.monotonic() - t_cli
    failed_kinds = len(out.seen)
    report.figures.update({
        "inputs_tried": out.tried, "api_inputs": api_tried, "cli_inputs": cli["tried"],
        "cli_not_built": cli["not_built"], "typed_errors": out.typed, "accepted": out.accepted,
        "distinct_failures": failed_kinds, "by_area": out.by_area, "seed": seed,
        "examples_per_property": examples, "seconds": round(time.monotonic() - t0, 1),
        "seconds_by_area": {k: round(v, 1) for k, v in out.seconds.items()}})
    report.line(f"{out.tried} inputs tried ({api_tried} API incl. {examples} Hypothesis examples "
                f"per property x 6, {cli['tried']} CLI; {cli['not_built']} CLI commands not "
                f"built yet) in {time.monotonic() - t0:.0f} s, seed {seed}")
    report.line(f"{out.typed} refused with a typed error, {out.accepted} accepted "
                f"(valid, round-trip checked); {failed_kinds} distinct failures")
    report.figures["failures"] = out.all
    kinds: dict[str, list[str]] = {}
    for text in out.all:
        kind, rest = text[1:].split("] ", 1)
        kinds.setdefault(kind, []).append(rest.split(": ")[1])
    for kind, calls in kinds.items():
        report.line(f"  {kind}: {len(calls)} call(s): {', '.join(dict.fromkeys(calls))}")
    if cli["not_built"]:
        report.note(f"{cli['not_built']} CLI cases hit commands that are not built yet "
                    "(exit 2, 'not built'): re-run once they exist")
    return report
