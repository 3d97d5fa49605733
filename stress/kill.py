"""Kill loop: SIGKILL a writing child at random instants, reopen, verify.

The child (:func:`stress._children.kill_writer`) runs upsert, upsert_many,
delete, delete_many, rollback (whole store or one partition), compact and
optimize on two partitions, with a small ``seal_threshold`` so segments are
sealed and merged all the time, and a short retention so compaction really
purges.  It logs every call before it starts and every answer after it
returns.  The parent kills it after a random delay (sometimes while it is
still opening/recovering), then:

- replays the log into a model (``(partition, id) -> (op, version)``, plus
  the model's state at every acknowledged version, for rollbacks);
- reopens the store (any repair warning is a failure: a kill must never
  damage a file) and compares every record (id, vector bytes, metadata,
  version) with the model: an acknowledged write that is missing or changed
  is a *lost write*; the one call in flight must be all-or-nothing;
- reads a few retained older versions through ``snapshot(version=...)``;
- runs the consistency check (``vecstore check`` if the CLI has it, else
  :func:`stress._check.check_store`) and measures recall@10 against exact
  search (>= 0.95; the small partition must answer exactly).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._check import check_store, cli_check
from ._children import kill_writer
from ._common import fmt_exc, fork_context, vecstore_warnings, vector_for, workdir
from ._report import Report

DIM = 16
SEAL = 300
POOLS = {"default": 2500, "t1": 400}
PARTS = tuple(POOLS)
RETENTION = 150
MAINTAIN_EVERY = 20  # kills between maintenance windows (a full compact() in the parent)
KEEP_STATES = 80
RECALL_MIN = 0.95
OPS_PER_RUN = 10_000_000

Key = tuple[str, str]
Rec = tuple[int, int]  # (op number, version)


def _cfg(durability: str) -> dict[str, Any]:
    return {"dim": DIM, "seal_threshold": SEAL, "durability": durability, "ef_construction": 100}


def rolled_back(cur: dict[Key, Rec], tgt: dict[Key, Rec], parts: tuple[str, ...],
                version: int) -> dict[Key, Rec]:
    """The state a rollback to ``tgt`` of ``parts`` makes at ``version``:
    records whose row differs from the target's are restored (new version)
    or deleted; the others keep their row and version."""
    new = {k: v for k, v in cur.items() if k[0] not in parts}
    for k in set(cur) | set(tgt):
        if k[0] not in parts:
            continue
        if cur.get(k) == tgt.get(k):
            if k in cur:
                new[k] = cur[k]
        elif k in tgt:
            new[k] = (tgt[k][0], version)
    return new


class Model:
    """What the store must hold, from the child's acknowledged calls."""

    def __init__(self) -> None:
        self.state: dict[Key, Rec] = {}
        self.states: dict[int, dict[Key, Rec]] = {}
        self.max_acked = 0
        self.floor = 0  # store.version at the last reopen
        self.acked_calls = 0
        self.acked_records = 0
        self.by_op: dict[str, int] = {}
        self.problems: list[str] = []  # answers that contradict the model
        self.errors: list[str] = []  # calls that raised

    def replay(self, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
        pending: dict[str, Any] | None = None
        for e in entries:
            if "ready" in e:
                continue
            if "b" in e:
                if pending is not None:
                    self.problems.append(f"two calls begun without an answer: {pending} {e}")
                pending = e
                continue
            if pending is None or e.get("a") != pending["b"]:
                self.problems.append(f"answer without its call: {e} (pending {pending})")
                pending = None
                continue
            self._ack(pending, e)
            pending = None
        return pending

    def _newer(self, n: int, r: Any, strict: bool = True) -> bool:
        low = max(self.max_acked, self.floor)
        ok = isinstance(r, int) and not isinstance(r, bool) and (r > low if strict else r >= low)
        if not ok:
            self.problems.append(f"op {n} answered version {r!r}; expected > {low} "
                                 "(versions must increase, never be reused)")
        return ok

    def _ack(self, p: dict[str, Any], a: dict[str, Any]) -> None:
        op, part, ids, n = p["op"], p["p"], p["ids"], p["b"]
        if "e" in a:
            self.errors.append(f"op {n} {op}: {a['e']}: {a.get('m', '')}")
            return
        r = a["r"]
        self.acked_calls += 1
        self.by_op[op] = self.by_op.get(op, 0) + 1
        if op in ("upsert", "upsert_many"):
            if self._newer(n, r):
                for rid in ids:
                    self.state[(part, rid)] = (n, r)
                self.max_acked = r
                self.states[r] = dict(self.state)
            self.acked_records += len(ids)
        elif op == "delete":
            expect = (part, ids[0]) in self.state
            if r is not expect:
                self.problems.append(f"op {n} delete({part}/{ids[0]}) answered {r!r}, "
                                     f"expected {expect}")
            self.state.pop((part, ids[0]), None)
            self.acked_records += 1
        elif op == "delete_many":
            existed = any((part, rid) in self.state for rid in ids)
            if self._newer(n, r, strict=existed):
                self.max_acked = max(self.max_acked, r)
            for rid in ids:
                self.state.pop((part, rid), None)
            if isinstance(r, int):
                self.states[r] = dict(self.state)
            self.acked_records += len(ids)
        elif op == "rollback":
            tgt = self.states.get(p["t"])
            if tgt is None:
                self.problems.append(f"harness: rollback target {p['t']} unknown")
                return
            if self._newer(n, r):
                scope = PARTS if p["scope"] == "store" else (part,)
                self.state = rolled_back(self.state, tgt, scope, r)
                self.max_acked = r
                self.states[r] = dict(self.state)

    def trim(self, retained: set[int]) -> None:
        keep = sorted(v for v in self.states if v in retained)[-KEEP_STATES:]
        self.states = {v: self.states[v] for v in keep}


def _read_log(path: Path) -> tuple[list[dict[str, Any]], bool]:
    entries: list[dict[str, Any]] = []
    ready = False
    if not path.exists():
        return entries, ready
    lines = path.read_text().split("\n")
    for i, line in enumerate(lines):
        if not line:
            continue
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise
            continue  # only the last line can be torn by the kill
        ready = ready or "ready" in e
        entries.append(e)
    return entries, ready


def _observe(store: Any, report: Report) -> dict[Key, Rec]:
    seen: dict[Key, Rec] = {}
    bad: list[str] = []
    for part in PARTS:
        for rec in store.partition(part).scan():
            op = rec.metadata.get("op")
            if rec.metadata != {"op": op} or not isinstance(op, int):
                bad.append(f"{part}/{rec.id}: metadata {rec.metadata!r}")
                continue
            if rec.vector.dtype != np.float32 or \
                    not np.array_equal(rec.vector, vector_for(rec.id, op, DIM)):
                bad.append(f"{part}/{rec.id}: vector differs from what op {op} wrote")
            seen[(part, rec.id)] = (op, rec.version)
    report.check("records intact (vector bytes, metadata)", not bad,
                 f"{len(bad)} damaged records, e.g. {bad[:3]}")
    return seen


def _inflight(model: Model, pending: dict[str, Any], seen: dict[Key, Rec],
              report: Report, stats: dict[str, int]) -> set[Key]:
    """Check the call in flight at the kill is all-or-nothing; return the
    keys it may have changed."""
    op, part, n = pending["op"], pending["p"], pending["b"]
    low = max(model.max_acked, model.floor)
    if op in ("compact", "optimize"):
        stats["inflight_maintenance"] += 1
        return set()
    if op == "rollback":
        scope = PARTS if pending["scope"] == "store" else (part,)
        keys = {k for k in set(model.state) | set(seen) if k[0] in scope}
        tgt = model.states.get(pending["t"], {})
        keys |= {k for k in tgt if k[0] in scope}
        before = {k: model.state.get(k) for k in keys}
        now = {k: seen.get(k) for k in keys}
        if now == before:
            stats["inflight_absent"] += 1
            return keys
        after = rolled_back(model.state, tgt, scope, -1)
        ops_ok = all((now[k] or (None,))[0] == (after.get(k) or (None,))[0] for k in keys)
        vers = {now[k][1] for k in keys if now[k] is not None and now[k] != before[k]}
        ok = ops_ok and len(vers) <= 1 and all(v > low for v in vers)
        report.check("in-flight call all-or-nothing", ok,
                     f"rollback op {n} to {pending['t']} half applied")
        stats["inflight_committed"] += 1
        return keys
    keys = {(part, rid) for rid in pending["ids"]}
    before = {k: model.state.get(k) for k in keys}
    now = {k: seen.get(k) for k in keys}
    if now == before:
        stats["inflight_absent"] += 1
        return keys
    if op in ("upsert", "upsert_many"):
        ops = {v[0] if v else None for v in now.values()}
        vers = {v[1] if v else None for v in now.values()}
        ok = ops == {n} and len(vers) == 1 and None not in vers and vers.pop() > low
        report.check("in-flight call all-or-nothing", ok,
                     f"op {n} {op}: partial batch visible: {sorted(now.items())[:6]}")
    else:
        ok = all(v is None for v in now.values())
        report.check("in-flight call all-or-nothing", ok,
                     f"op {n} {op}: partial delete visible: {sorted(now.items())[:6]}")
    stats["inflight_committed"] += 1
    return keys


def _recall(store: Any, seen: dict[Key, Rec], rng: np.random.Generator, report: Report,
            stats: dict[str, Any]) -> None:
    for part in PARTS:
        live = sorted((rid, op) for (p, rid), (op, _v) in seen.items() if p == part)
        if len(live) < 20:
            continue
        ids = [rid for rid, _op in live]
        mat = np.stack([vector_for(rid, op, DIM) for rid, op in live]).astype(np.float64)
        mat /= np.linalg.norm(mat, axis=1, keepdims=True)
        hits = 0
        total = 0
        wrong: list[str] = []
        for _ in range(10 if part == "default" else 4):
            q = rng.standard_normal(DIM)
            qn = q / np.linalg.norm(q)
            sims = mat @ qn
            exact = [ids[i] for i in np.argsort(-sims, kind="stable")[:10]]
            res = store.partition(part).query(q.astype(np.float32), k=10)
            got = [r.id for r in res]
            for r in res:
                if r.partition != part or (part, r.id) not in seen or \
                        r.metadata.get("op") != seen[(part, r.id)][0]:
                    wrong.append(f"{part}: result {r.id} ({r.partition}) is not a live record")
                elif abs(r.score - float(sims[ids.index(r.id)])) > 1e-3:
                    wrong.append(f"{part}: {r.id} score {r.score} != {sims[ids.index(r.id)]}")
            if len(res) != min(10, len(ids)):
                wrong.append(f"{part}: {len(res)} results for k=10 over {len(ids)} records")
            hits += len(set(got) & set(exact))
            total += len(exact)
        recall = hits / total
        report.check("query answers are live records with exact scores", not wrong,
                     "; ".join(wrong[:3]))
        if len(live) >= 1000:
            stats["recall_min"] = min(stats.get("recall_min", 1.0), recall)
            stats["recall_sum"] = stats.get("recall_sum", 0.0) + recall
            stats["recall_n"] = stats.get("recall_n", 0) + 1
            report.check(f"recall@10 >= {RECALL_MIN} (HNSW path)", recall >= RECALL_MIN,
                         f"{part}: recall {recall:.3f} over {len(live)} records")
        else:
            report.check("small partition answers exactly", recall == 1.0,
                         f"{part}: recall {recall:.3f} over {len(live)} records (< 1000: "
                         "must be exact)")


def verify(store: Any, model: Model, pending: dict[str, Any] | None, report: Report,
           stats: dict[str, Any], rng: np.random.Generator, *, final: bool = False) -> None:
    seen = _observe(store, report)
    stats["records_checked"] += len(seen)
    inflight = _inflight(model, pending, seen, report, stats) if pending else set()
    lost = []
    for k in set(model.state) | set(seen):
        if k in inflight:
            continue
        if seen.get(k) != model.state.get(k):
            lost.append(f"{k[0]}/{k[1]}: store {seen.get(k)}, acknowledged {model.state.get(k)}")
    stats["writes_lost"] += len(lost)
    report.check("no acknowledged write lost", not lost,
                 f"{len(lost)} records differ from the acknowledged state, e.g. {lost[:3]}")
    version = store.version
    report.check("store version >= last acknowledged version", version >= model.max_acked,
                 f"version {version} < acknowledged {model.max_acked}")
    # point reads agree with the scan
    keys = [(p, f"k{rng.integers(POOLS[p])}") for p in PARTS for _ in range(25)]
    bad = []
    for p, rid in keys:
        rec = store.partition(p).get(rid)
        got = None if rec is None else (rec.metadata.get("op"), rec.version)
        if got != seen.get((p, rid)):
            bad.append(f"{p}/{rid}: get {got}, scan {seen.get((p, rid))}")
    report.check("get() agrees with scan()", not bad, "; ".join(bad[:3]))
    model.state = dict(seen)
    model.floor = version
    model.max_acked = max([model.max_acked] + [v for _o, v in seen.values()])
    model.states[version] = dict(seen)
    # older retained versions through snapshots
    retained = {vi.version for vi in store.versions()}
    olds = [v for v in model.states if v in retained and v != version]
    for v in rng.permutation(olds)[:2].tolist() if olds else []:
        snap = store.snapshot(version=v)
        got: dict[Key, Rec] = {}
        for part in PARTS:
            for rec in snap.partition(part).scan():
                got[(part, rec.id)] = (rec.metadata.get("op"), rec.version)
        diff = [k for k in set(got) | set(model.states[v]) if got.get(k) != model.states[v].get(k)]
        report.check("snapshot(version=v) of a retained version is exact", not diff,
                     f"version {v}: {len(diff)} records differ, e.g. "
                     f"{[(k, got.get(k), model.states[v].get(k)) for k in diff[:3]]}")
        stats["snapshots_checked"] += 1
    model.trim(retained | {version})
    _recall(store, seen, rng, report, stats)
    problems = check_store(store)
    report.check("consistency check clean", not problems, "; ".join(problems[:4]))
    stats["sealed_max"] = max(stats["sealed_max"], store.stats().sealed_segments)


def _maintain(store: Any, report: Report, stats: dict[str, Any]) -> None:
    """A maintenance window without kills: compaction runs to the end.

    The child's own ``compact()`` is usually killed before it finishes on a
    grown store (its segment rebuilds take longer than a run lasts), so
    rows, history and versions would pile up.  This also checks that a
    compaction completes on a store left behind by many crashes (half-done
    purges included) and leaves it consistent."""
    t0 = time.monotonic()
    before = store.stats().bytes_on_disk
    res = store.compact()
    stats["parent_compactions"] += 1
    stats["rows_purged"] += int(res.get("rows", 0))
    stats["compact_seconds_max"] = max(stats["compact_seconds_max"],
                                       round(time.monotonic() - t0, 2))
    problems = check_store(store)
    report.check("consistency check clean after compaction", not problems,
                 "; ".join(problems[:4]))
    stats["bytes_on_disk"] = max(before, store.stats().bytes_on_disk)


def run(kills: int, seed: int | None = None, seconds: float | None = None,
        keep: bool = False, report: Report | None = None) -> Report:
    from vecstore import Config, VecStore

    report = report or Report("kill")
    seed = random.randrange(2**31) if seed is None else seed
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    ctx = fork_context()
    model = Model()
    stats: dict[str, Any] = dict.fromkeys((
        "kills", "kills_during_open", "inflight_committed", "inflight_absent",
        "inflight_maintenance", "parent_compactions", "rows_purged", "compact_seconds_max",
        "bytes_on_disk",
        "records_checked", "writes_lost", "snapshots_checked", "sealed_max", "relaxed_runs"), 0)
    t0 = time.monotonic()
    cli_used = False
    with workdir(keep, "kill") as wd:
        store_path = str(wd / "store")
        # start from a store big enough for queries to take the HNSW path
        with VecStore.open(store_path, Config(**_cfg("sync"))) as store:
            ids = [f"k{i}" for i in range(2000)]
            v = store.upsert_many(ids=ids, vectors=np.stack([vector_for(i, 1, DIM) for i in ids]),
                                  metadata=[{"op": 1}] * len(ids))
            store.optimize()
            store.optimize()
        model.state = {("default", i): (1, v) for i in ids}
        model.max_acked = v
        model.states[v] = dict(model.state)
        for run_i in range(kills):
            if seconds is not None and time.monotonic() - t0 > seconds:
                report.note(f"kill loop stopped by its time budget after {run_i} kills")
                break
            log = wd / f"log-{run_i}.jsonl"
            err = wd / f"child-{run_i}.err"
            durability = "relaxed" if rng.random() < 0.3 else "sync"
            stats["relaxed_runs"] += durability == "relaxed"
            targets = sorted(model.states)[-40:]
            proc = ctx.Process(target=kill_writer, args=(
                store_path, str(log), str(err), rng.randrange(2**31), (run_i + 1) * OPS_PER_RUN,
                _cfg(durability), POOLS, RETENTION, targets))
            proc.start()
            r = rng.random()
            delay = rng.uniform(0.0, 0.06) if r < 0.15 else rng.uniform(0.06, 0.3) if r < 0.3 \
                else rng.uniform(0.3, 1.3)
            time.sleep(delay)
            alive = proc.is_alive()
            if alive:
                os.kill(proc.pid, signal.SIGKILL)
            proc.join(30)
            errtext = err.read_text()[-1500:] if err.exists() else ""
            if not report.check("writer child only ever ends by SIGKILL",
                                alive and proc.exitcode == -signal.SIGKILL,
                                f"run {run_i}: child exit code {proc.exitcode}: {errtext}") \
                    and proc.exitcode is None:
                proc.kill()
                proc.join()
            stats["kills"] += 1
            entries, ready = _read_log(log)
            stats["kills_during_open"] += not ready
            pending = model.replay(entries)
            with vecstore_warnings() as warned:
                try:
                    store = VecStore.open(store_path, Config(**_cfg("sync")))
                except Exception as exc:
                    report.fail("store reopens after a kill", f"run {run_i}: {fmt_exc(exc)}")
                    break
            report.ok("store reopens after a kill")
            report.check("reopen after a kill needs no repair", not warned,
                         f"run {run_i}: {warned[:3]}")
            try:
                verify(store, model, pending, report, stats, nrng)
                if run_i % MAINTAIN_EVERY == MAINTAIN_EVERY - 1:
                    _maintain(store, report, stats)
            except Exception as exc:
                report.fail("verification ran", f"run {run_i}: {fmt_exc(exc)}")
            finally:
                store.close()
            if run_i % (5 if kills <= 200 else 20) == 4 or run_i == kills - 1:
                avail, clean, out = cli_check(store_path)
                if avail:
                    cli_used = True
                    report.check("vecstore check clean", clean, out)
            if os.environ.get("STRESS_VERBOSE"):
                print(f"[kill] run {run_i}: {len(entries)} log lines, "
                      f"{len(model.state)} records", flush=True)
        # afterwards the store still works: write, seal everything, read back
        try:
            with vecstore_warnings() as warned, \
                    VecStore.open(store_path, Config(**_cfg("sync"))) as store:
                n = (kills + 2) * OPS_PER_RUN
                v = store.upsert_many([(f"k{i}", vector_for(f"k{i}", n, DIM), {"op": n})
                                       for i in range(SEAL + 50)])
                for i in range(SEAL + 50):
                    model.state[("default", f"k{i}")] = (n, v)
                model.max_acked = v
                store.optimize()
                store.optimize()
                report.check("optimize() leaves nothing pending after the kills",
                             store.stats().growing_vectors == 0,
                             f"growing rows {store.stats().growing_vectors}")
                verify(store, model, None, report, stats, nrng, final=True)
            report.check("no vecstore warnings after the kills", not warned, str(warned[:3]))
        except Exception as exc:
            report.fail("store works after the kills", fmt_exc(exc))
        avail, clean, out = cli_check(store_path)
        if avail:
            cli_used = True
            report.check("vecstore check clean", clean, out)
    report.check("the child acknowledged enough calls to test anything",
                 model.acked_calls > stats["kills"], f"{model.acked_calls} calls acknowledged")
    report.check("segments were sealed during the kill loop", stats["sealed_max"] > 0,
                 "no sealed segment was ever seen")
    for p in model.problems[:20]:
        report.fail("answers agree with the model", p)
    if not model.problems:
        report.ok("answers agree with the model")
    for e in model.errors[:20]:
        report.fail("no write call raised", e)
    if not model.errors:
        report.ok("no write call raised")
    mean_recall = stats.get("recall_sum", 0.0) / max(1, stats.get("recall_n", 0))
    elapsed = time.monotonic() - t0
    figs = dict(stats, seed=seed, acked_calls=model.acked_calls,
                acked_records=model.acked_records, ops=model.by_op,
                recall_mean=round(mean_recall, 4), seconds=round(elapsed, 1),
                recall_min=round(stats.get("recall_min", 0.0), 4),
                cli_check=cli_used)
    figs.pop("recall_sum", None)
    report.figures.update(figs)
    if not cli_used:
        report.note("`vecstore check` is not built yet: only the in-process consistency check "
                    "(stress/_check.py) ran")
    report.line(f"{stats['kills']} kills survived ({stats['kills_during_open']} while opening, "
                f"{stats['relaxed_runs']} with durability=relaxed) in {elapsed:.0f} s, seed {seed}")
    report.line(f"{model.acked_calls} acknowledged calls ({model.acked_records} record writes) "
                f"replayed; {stats['records_checked']} records checked; "
                f"writes lost: {stats['writes_lost']}")
    report.line(f"in-flight at kill: {stats['inflight_committed']} committed whole, "
                f"{stats['inflight_absent']} absent whole, {stats['inflight_maintenance']} "
                f"compact/optimize; {stats['snapshots_checked']} old "
                f"snapshots checked; ops {dict(sorted(model.by_op.items()))}")
    report.line(f"recall@10 (HNSW, >=1000 records) mean {mean_recall:.3f}, min "
                f"{stats.get('recall_min', float('nan')):.3f}; max sealed segments "
                f"{stats['sealed_max']}; {stats['parent_compactions']} full compactions between "
                f"kills purged {stats['rows_purged']} rows (max {stats['compact_seconds_max']} s, "
                f"store <= {stats['bytes_on_disk'] >> 20} MiB)")
    return report
