"""Import kill loop: SIGKILL ``vecstore import`` at random instants, run it
again, and check the store against an uninterrupted import, record for record.

Each round builds a source file (Qdrant JSON Lines or a Pinecone document)
with bad records and duplicate ids in it, imports it once without
interruption (the reference: its records and its reject file), then imports
it into a fresh store again and again -- through the real command line, or
through ``AsyncVecStore`` in a child process -- with a random batch size and
durability per run, killing each run after a random delay, until one run
finishes.  After every kill:

- the store opens, and holds exactly the reference's records from the
  positions before the recorded offset (no gap, no duplicate, no record
  from after it), each with its exact vector bytes and metadata;
- the reject file lists exactly the reference's rejects before that offset;
- every few kills, ``vecstore check`` reports no problem.

At the end the store equals the reference record for record, the reject
files are identical, and one more run says there is nothing to do.

    python -m stress migration [--kills N] [--seed S] [--keep]
    (or through ``python -m stress --short / --long``)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import PY, child_env, workdir
from ._report import Report

SHORT = {"kills": 24, "records": 4000, "dim": 16}
LONG = {"kills": 400, "records": 20000, "dim": 32}


def _vec(i: int, dim: int) -> list[float]:
    return np.random.default_rng(i).standard_normal(dim).astype(np.float32).tolist()


def make_source(path: Path, fmt: str, n: int, dim: int, rng: random.Random) -> None:
    """``n`` records; about 3% bad (wrong dim, NaN-free zero vector, bad
    metadata, missing id) and 3% duplicates of earlier ids."""
    recs = []
    for i in range(n):
        rid: Any = i if fmt == "qdrant" and i % 2 else f"r{i}"
        meta: Any = {"i": i, "tag": f"t{i % 7}", "nested": {"l": [i, str(i)], "f": i / 3}}
        v: Any = _vec(i, dim)
        roll = rng.random()
        if roll < 0.01:
            v = v[:-1]
        elif roll < 0.02:
            v = [0.0] * dim
        elif roll < 0.025:
            meta = ["not", "a", "dict"]
        elif roll < 0.03:
            rid = None
        elif roll < 0.06 and recs:
            rid = recs[rng.randrange(len(recs))][0]
        recs.append((rid, v, meta))
    with open(path, "w") as f:
        if fmt == "qdrant":
            for rid, v, meta in recs:
                obj = {"vector": v, "payload": meta} | ({} if rid is None else {"id": rid})
                f.write(json.dumps(obj) + "\n")
        else:
            f.write('{"namespace": "stress", "vectors": [\n')
            for k, (rid, v, meta) in enumerate(recs):
                obj = {"values": v, "metadata": meta} | ({} if rid is None else {"id": rid})
                f.write(("," if k else "") + json.dumps(obj) + "\n")
            f.write("]}\n")


def _dump(path: str) -> dict[str, tuple[bytes, Any]]:
    from vecstore import VecStore

    with VecStore.open(path, read_only=True) as s:
        return {r.id: (r.vector.tobytes(), r.metadata) for r in s.scan()}


def _progress(path: str, src: str) -> dict[str, Any] | None:
    from vecstore import VecStore
    from vecstore.migration._progress import progress_key

    with VecStore.open(path, read_only=True) as s:
        return s._engine.get_meta(progress_key("default", os.path.abspath(src), ""))


def _rejects(store: str, src: str) -> list[str]:
    from vecstore.migration._progress import default_reject_file, progress_key

    key = progress_key("default", os.path.abspath(src), "")
    p = default_reject_file(store, os.path.abspath(src), key)
    return Path(p).read_text().splitlines() if os.path.exists(p) else []


def _command(how: str, fmt: str, src: str, store: str, batch: int, durability: str) -> list[str]:
    if how == "cli":
        return [PY, "-m", "vecstore.cli", "import", fmt, src, store, "--batch-size", str(batch),
                "--durability", durability, "--json", "-q"]
    return [PY, "-m", "stress.migration_kill", "--child-async", fmt, src, store, str(batch),
            durability]


def _child_async(fmt: str, src: str, store: str, batch: int, durability: str) -> int:
    """Import through AsyncVecStore while another task keeps querying."""
    import trio

    from vecstore import AsyncVecStore, Config
    from vecstore.migration import MigrationConfig, migration_for

    async def main() -> None:
        cfg = Config(durability=durability)
        async with AsyncVecStore.open(store, cfg) as s:
            done = trio.Event()

            async def reader() -> None:
                while not done.is_set():
                    if (await s.stats()).dimension is not None:
                        await s.count()
                    await trio.sleep(0.001)

            async with trio.open_nursery() as n:
                n.start_soon(reader)
                await migration_for(fmt)(MigrationConfig(batch_size=batch)).import_from_file_async(
                    src, s)
                done.set()

    trio.run(main)
    return 0


def _expected(ref: dict[str, Any], positions: dict[str, int], offset: int) -> dict[str, Any]:
    return {rid: val for rid, val in ref.items() if positions[rid] < offset}


def run(short: bool = True, long: bool = False, report: Report | None = None,
        seed: int | None = None, keep: bool = False, kills: int | None = None,
        seconds: float | None = None, records: int | None = None) -> Report:
    plan = dict(LONG if long else SHORT)
    if kills is not None:
        plan["kills"] = kills
    if records is not None:
        plan["records"] = records
    report = report or Report("migration")
    seed = random.randrange(2**31) if seed is None else seed
    rng = random.Random(seed)
    t0 = time.monotonic()
    figures = {"kills": 0, "kills_before_progress": 0, "kills_mid_import": 0, "rounds": 0,
               "resumes_checked": 0, "runs_async": 0, "runs_cli": 0, "seed": seed}
    with workdir(keep, "migration") as wd:
        rnd = 0
        while figures["kills"] < plan["kills"]:
            if seconds is not None and time.monotonic() - t0 > seconds:
                report.note(f"stopped by the time budget after {figures['kills']} kills")
                break
            fmt = ("qdrant", "pinecone")[rnd % 2]
            src = str(wd / f"src-{rnd}.{'jsonl' if fmt == 'qdrant' else 'json'}")
            make_source(Path(src), fmt, plan["records"], plan["dim"], rng)
            ref_store = str(wd / f"ref-{rnd}")
            t1 = time.monotonic()
            out = subprocess.run(_command("cli", fmt, src, ref_store, 500, "sync"),
                                 env=child_env(), capture_output=True, text=True, timeout=600)
            full = time.monotonic() - t1
            t1 = time.monotonic()
            subprocess.run([PY, "-m", "vecstore.cli", "versions", ref_store, "--limit", "1"],
                           env=child_env(), capture_output=True, timeout=120)
            startup = time.monotonic() - t1  # interpreter + imports + open
            if not report.check("reference import completes", out.returncode in (0, 4),
                                f"exit {out.returncode}: {out.stderr[-300:]}"):
                break
            ref = _dump(ref_store)
            ref_rej = _rejects(ref_store, src)
            positions = _accepted_positions(src, fmt, ref, ref_rej)
            store = str(wd / f"store-{rnd}")
            per_round = max(3, plan["kills"] // 4)
            killed = 0
            left = 1.0  # fraction of the file still to import
            while True:
                how = rng.choice(("cli", "cli", "async"))
                figures[f"runs_{how}"] += 1
                batch = rng.choice((7, 50, 200, 1000))
                cmd = _command(how, fmt, src, store, batch, rng.choice(("sync", "relaxed")))
                proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                kill = killed < per_round and figures["kills"] < plan["kills"]
                if kill:
                    work = max(full - startup, 0.05) * left
                    time.sleep(rng.uniform(0.0, startup + work * 1.1))
                if kill and proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.communicate(timeout=60)
                    killed += 1
                    figures["kills"] += 1
                    offset = _after_kill(report, figures, store, src, ref, ref_rej, positions,
                                         check=killed % 4 == 0)
                    left = max(0.02, 1.0 - offset / plan["records"])
                    continue
                stdout, stderr = proc.communicate(timeout=600)
                if proc.returncode in (0, 4) and ("complete" in stdout or how == "async"):
                    break
                report.fail("an unkilled import run completes",
                            f"{how} exit {proc.returncode}: {stderr[-400:]}")
                break
            _final(report, store, src, ref, ref_rej, fmt)
            figures["rounds"] += 1
            rnd += 1
    figures["seconds"] = round(time.monotonic() - t0, 1)
    report.figures.update(figures)
    report.line(f" import kill loop: {figures['kills']} kills over {figures['rounds']} "
                f"rounds ({figures['runs_cli']} CLI runs, {figures['runs_async']} async runs), "
                f"{report.passed} checks passed, {report.failed} failed, seed {seed}")
    return report


def _accepted_positions(src: str, fmt: str, ref: dict[str, Any],
                        ref_rej: list[str]) -> dict[str, int]:
    """Position of the record each reference id came from (the first valid one)."""
    from vecstore.migration import open_reader

    rejected = {json.loads(x)["position"] for x in ref_rej}
    out: dict[str, int] = {}
    for rec in open_reader(fmt, src):
        if rec.position not in rejected:
            rid = str(rec.id)
            if rid not in out:
                out[rid] = rec.position
    missing = set(ref) - set(out)
    assert not missing, f"reference ids not found in the source: {sorted(missing)[:5]}"
    return out


def _after_kill(report: Report, figures: dict[str, Any], store: str, src: str,
                ref: dict[str, Any], ref_rej: list[str], positions: dict[str, int],
                check: bool) -> int:
    """Check the store after a kill; return the committed offset."""
    if not os.path.exists(os.path.join(store, "data.mdb")):
        figures["kills_before_progress"] += 1
        return 0
    try:
        prog = _progress(store, src)
        got = _dump(store)
    except Exception as exc:
        report.fail("store opens after a kill", f"{type(exc).__name__}: {exc}")
        return 0
    report.ok("store opens after a kill")
    offset = 0 if prog is None else int(prog["offset"])
    if prog is None:
        figures["kills_before_progress"] += 1
    else:
        figures["kills_mid_import"] += 1
    want = _expected(ref, positions, offset)
    report.check("after a kill the store holds exactly the records before the offset",
                 got == want, f"offset {offset}: {len(got)} records, expected {len(want)}; "
                 f"extra {sorted(set(got) - set(want))[:3]}, missing "
                 f"{sorted(set(want) - set(got))[:3]}, changed "
                 f"{[k for k in set(got) & set(want) if got[k] != want[k]][:3]}")
    rej = _rejects(store, src)
    want_rej = [x for x in ref_rej if json.loads(x)["position"] < offset]
    # lines past the offset may remain until the next run cuts them back
    report.check("after a kill the reject file holds the rejects before the offset",
                 rej[: len(want_rej)] == want_rej and all(
                     json.loads(x)["position"] >= offset for x in rej[len(want_rej):]),
                 f"offset {offset}: {len(rej)} lines, expected {len(want_rej)}")
    figures["resumes_checked"] += 1
    if check:
        _cli_check(report, store)
    return offset


def _cli_check(report: Report, store: str) -> None:
    out = subprocess.run([PY, "-m", "vecstore.cli", "check", store, "--json"], env=child_env(),
                         capture_output=True, text=True, timeout=300)
    report.check("vecstore check finds no problem", out.returncode == 0,
                 (out.stdout + out.stderr)[-400:])


def _final(report: Report, store: str, src: str, ref: dict[str, Any], ref_rej: list[str],
           fmt: str) -> None:
    got = _dump(store)
    report.check("the final store equals an uninterrupted import, record for record",
                 got == ref, f"{len(got)} records vs {len(ref)}; differing ids "
                 f"{sorted(k for k in set(got) | set(ref) if got.get(k) != ref.get(k))[:5]}")
    report.check("the final reject file equals an uninterrupted import's",
                 _rejects(store, src) == ref_rej,
                 f"{len(_rejects(store, src))} lines vs {len(ref_rej)}")
    _cli_check(report, store)
    out = subprocess.run(_command("cli", fmt, src, store, 100, "sync"), env=child_env(),
                         capture_output=True, text=True, timeout=300)
    ok = out.returncode == 0 and json.loads(out.stdout or "{}").get("already_complete")
    report.check("a run after completion does nothing and says so", bool(ok),
                 f"exit {out.returncode}: {out.stdout[-200:]} {out.stderr[-200:]}")


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child-async":
        fmt, src, store, batch, durability = argv[1:6]
        return _child_async(fmt, src, store, int(batch), durability)
    import argparse

    p = argparse.ArgumentParser(prog="python -m stress.migration_kill")
    p.add_argument("--kills", type=int)
    p.add_argument("--long", action="store_true")
    p.add_argument("--seed", type=int)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    rep = run(short=not args.long, long=args.long, seed=args.seed, keep=args.keep,
              kills=args.kills)
    print("\n".join(rep.lines))
    print(json.dumps(rep.figures))
    for name, c in rep.failures():
        print(f"FAILED {name}: {c.details}")
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
