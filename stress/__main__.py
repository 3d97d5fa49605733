"""``python -m stress``: the stress harnesses' single entry point.

    python -m stress --short           # every harness, CI-sized (a few minutes)
    python -m stress --long            # every harness, thousands of kills (tens of minutes)
    python -m stress kill --kills 50   # one harness (see --help of each)
    python -m stress faults
    python -m stress load --seconds 30
    python -m stress hostile
    python -m stress migration         # only if stress/migration_kill.py exists
    python -m stress powercut --cuts 50 [--peers]   # power cuts from a recorded log

``--short``/``--long`` run each harness in a child interpreter (a crash or a
hang of one is reported, the others still run), then print one summary and
a closing line ``N passed, M failed``; the exit status is 1 if any check
failed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from ._common import PY, child_env
from ._report import Report, print_summary

HARNESSES = ("kill", "faults", "load", "hostile", "migration", "powercut")

# (arguments, timeout in seconds) per harness and mode
PLANS: dict[str, dict[str, tuple[list[str], float]]] = {
    "short": {
        "kill": (["--kills", "36", "--seconds", "60"], 240),
        "faults": (["--rounds", "1"], 180),
        "load": (["--seconds", "20", "--tasks", "4", "--procs", "2"], 150),
        "hostile": (["--examples", "50"], 180),
        "migration": (["--short"], 180),
        "powercut": (["--cuts", "50", "--seconds", "150"], 240),
    },
    "long": {
        "kill": (["--kills", "2000"], 4 * 3600),
        "faults": (["--rounds", "3"], 3600),
        "load": (["--seconds", "180", "--tasks", "8", "--procs", "3"], 1800),
        "hostile": (["--examples", "500"], 3600),
        "migration": (["--long"], 3600),
        "powercut": (["--cuts", "1000", "--states", "4", "--peers"], 4 * 3600),
    },
}


def migration_available() -> bool:
    return importlib.util.find_spec("stress.migration_kill") is not None


def run_migration(args: argparse.Namespace, report: Report) -> Report:
    """Call whatever ``run(...)`` stress/migration_kill.py exposes, passing
    only the keyword arguments its signature names."""
    mod = importlib.import_module("stress.migration_kill")
    fn = getattr(mod, "run", None)
    if fn is None:
        report.fail("migration harness exposes run()", "stress/migration_kill.py has no run()")
        return report
    offer = {"short": args.mode != "long", "long": args.mode == "long", "report": report,
             "seed": args.seed, "keep": args.keep, "kills": args.kills,
             "seconds": args.seconds, "mode": args.mode}
    params = inspect.signature(fn).parameters
    takes_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in offer.items() if (takes_kw or k in params) and v is not None}
    result = fn(**kwargs)
    if isinstance(result, Report):
        return result
    if result is report:
        return report
    if hasattr(result, "passed") and hasattr(result, "failed"):
        p, f = int(result.passed), int(result.failed)
        for _ in range(p):
            report.ok("migration kill loop checks")
        for _ in range(f):
            report.fail("migration kill loop checks", "see the migration harness output")
    elif isinstance(result, bool):
        report.check("migration kill loop passed", result, "run() returned False")
    elif isinstance(result, dict):
        report.figures.update(result)
        failed = int(result.get("failed", 0) or 0) + int(result.get("lost", 0) or 0)
        report.check("migration kill loop passed", failed == 0, f"run() returned {result}")
    elif not report.checks:
        report.ok("migration kill loop ran without raising")
    if not report.lines:
        report.line(f"migration kill loop: {report.passed} passed, {report.failed} failed "
                    f"{report.figures or ''}")
    return report


def run_one(name: str, args: argparse.Namespace) -> Report:
    report = Report(name)
    try:
        if name == "kill":
            from . import kill
            return kill.run(args.kills or 40, seed=args.seed, seconds=args.seconds,
                            keep=args.keep, report=report)
        if name == "faults":
            from . import faults
            return faults.run(rounds=args.rounds or 1, seed=args.seed, keep=args.keep,
                              report=report)
        if name == "load":
            from . import load
            return load.run(seconds=args.seconds or 20,
                            tasks=args.tasks if args.tasks is not None else 4,
                            procs=args.procs if args.procs is not None else 2,
                            seed=args.seed, keep=args.keep, report=report)
        if name == "hostile":
            from . import hostile
            return hostile.run(examples=args.examples or 150, seed=args.seed, keep=args.keep,
                               report=report)
        if name == "powercut":
            from . import powercut
            return powercut.run(args.cuts or 50, seed=args.seed, keep=args.keep, report=report,
                                states=args.states or 3, seconds=args.seconds,
                                peers=args.peers)
        if name == "migration":
            if not migration_available():
                report.note("stress/migration_kill.py does not exist yet: migration kill loop "
                            "not run")
                report.line("not available (stress/migration_kill.py missing)")
                return report
            return run_migration(args, report)
    except Exception as exc:  # the harness itself broke: that is a failure too
        import traceback

        report.fail(f"{name} harness ran to completion",
                    "".join(traceback.format_exception(exc))[-1500:])
        return report
    raise SystemExit(f"unknown harness {name!r}")


def run_all(mode: str, only: list[str] | None, keep: bool, seed: int | None) -> int:
    t0 = time.monotonic()
    reports = []
    names = [h for h in HARNESSES if not only or h in only]
    for name in names:
        if name == "migration" and not migration_available():
            r = Report(name)
            r.note("stress/migration_kill.py does not exist yet: import kill loop not run "
                   "(see docs/reliability.md)")
            r.line("not available (stress/migration_kill.py missing)")
            reports.append(r)
            continue
        extra, timeout = PLANS[mode][name]
        with tempfile.TemporaryDirectory(prefix="vecstore-stress-") as d:
            out = os.path.join(d, "report.json")
            cmd = [PY, "-m", "stress", name, *extra, "--json-out", out, "--no-summary"]
            if name == "migration":
                cmd = [PY, "-m", "stress", name, "--mode", mode, "--json-out", out,
                       "--no-summary"]
            if keep:
                cmd.append("--keep")
            if seed is not None:
                cmd += ["--seed", str(seed)]
            print(f"[{name}] {' '.join(cmd[2:])}", flush=True)
            t1 = time.monotonic()
            try:
                proc = subprocess.run(cmd, env=child_env(), timeout=timeout, cwd=os.getcwd())
                code: Any = proc.returncode
            except subprocess.TimeoutExpired:
                code = f"timeout after {timeout:.0f} s"
            if os.path.exists(out):
                with open(out) as f:
                    r = Report.from_json(f.read())
            else:
                r = Report(name)
            if not os.path.exists(out) or not isinstance(code, int) or code not in (0, 1):
                r.fail(f"{name} harness ran to completion",
                       f"child ended with {code} and "
                       f"{'a' if os.path.exists(out) else 'no'} report")
            print(f"[{name}] {time.monotonic() - t1:.0f} s: {r.passed} passed, "
                  f"{r.failed} failed", flush=True)
            reports.append(r)
    _passed, failed = print_summary(reports, time.monotonic() - t0,
                                    f"vecstore stress ({mode})")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stress", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("harness", nargs="?", choices=HARNESSES,
                   help="run one harness (default: all, with --short or --long)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--short", action="store_const", dest="mode", const="short")
    g.add_argument("--long", action="store_const", dest="mode", const="long")
    p.add_argument("--mode", choices=("short", "long"), help=argparse.SUPPRESS)
    p.add_argument("--only", action="append", choices=HARNESSES,
                   help="with --short/--long: run only these harnesses")
    p.add_argument("--kills", type=int, help="kill: number of kills")
    p.add_argument("--seconds", type=float, help="kill: time budget; load: duration")
    p.add_argument("--rounds", type=int, help="faults: repetitions of each scenario")
    p.add_argument("--tasks", type=int, help="load: reader tasks in the writer's process")
    p.add_argument("--procs", type=int, help="load: read_only reader processes")
    p.add_argument("--examples", type=int, help="hostile: Hypothesis examples per property")
    p.add_argument("--cuts", type=int, help="powercut: number of power cuts")
    p.add_argument("--states", type=int, help="powercut: crash states per cut (>= 3)")
    p.add_argument("--peers", action="store_true",
                   help="powercut: also cut the power under Chroma and LanceDB")
    p.add_argument("--seed", type=int)
    p.add_argument("--keep", action="store_true", help="keep the working directories")
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    p.add_argument("--no-summary", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.harness is None:
        if args.mode is None:
            p.error("name a harness, or pass --short or --long")
        return run_all(args.mode, args.only, args.keep, args.seed)
    t0 = time.monotonic()
    report = run_one(args.harness, args)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(report.to_json())
    if not args.no_summary:
        print_summary([report], time.monotonic() - t0, f"vecstore stress: {args.harness}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
