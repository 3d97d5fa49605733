"""Check bookkeeping shared by every harness: named checks (passed/failed,
with the first few failure details), figures (numbers for the summary) and
notes (what was not covered, and why)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_DETAILS = 5


@dataclass
class Check:
    passed: int = 0
    failed: int = 0
    details: list[str] = field(default_factory=list)


class Report:
    def __init__(self, harness: str) -> None:
        self.harness = harness
        self.checks: dict[str, Check] = {}
        self.figures: dict[str, Any] = {}
        self.notes: list[str] = []
        self.lines: list[str] = []  # the harness's own summary lines

    # -- recording ---------------------------------------------------------------

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        c = self.checks.setdefault(name, Check())
        if ok:
            c.passed += 1
        else:
            c.failed += 1
            if len(c.details) < MAX_DETAILS:
                c.details.append(detail or "(no detail)")
        return ok

    def fail(self, name: str, detail: str) -> bool:
        return self.check(name, False, detail)

    def ok(self, name: str) -> bool:
        return self.check(name, True)

    def figure(self, key: str, value: Any) -> None:
        self.figures[key] = value

    def add(self, key: str, n: int = 1) -> None:
        self.figures[key] = self.figures.get(key, 0) + n

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def line(self, text: str) -> None:
        self.lines.append(text)

    # -- totals -------------------------------------------------------------------

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.checks.values())

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.checks.values())

    def failures(self) -> list[tuple[str, Check]]:
        return [(n, c) for n, c in self.checks.items() if c.failed]

    # -- (de)serialisation: harnesses run in child processes -------------------------

    def to_json(self) -> str:
        return json.dumps({
            "harness": self.harness,
            "checks": {n: [c.passed, c.failed, c.details] for n, c in self.checks.items()},
            "figures": self.figures, "notes": self.notes, "lines": self.lines,
        }, default=str)

    @classmethod
    def from_json(cls, text: str) -> Report:
        d = json.loads(text)
        r = cls(d["harness"])
        for n, (p, f, det) in d["checks"].items():
            r.checks[n] = Check(p, f, list(det))
        r.figures, r.notes, r.lines = d["figures"], d["notes"], d["lines"]
        return r


def totals(reports: list[Report]) -> list[str]:
    """The headline figures the issue asks every run to print."""
    f = {r.harness: r.figures for r in reports}
    out = []
    k, fa, lo, ho, mi = (f.get(n, {}) for n in ("kill", "faults", "load", "hostile", "migration"))
    kills = k.get("kills", 0) + (mi.get("kills", 0) if isinstance(mi.get("kills"), int) else 0)
    acked = k.get("acked_records", 0) + fa.get("acked_checked", 0)
    lost = k.get("writes_lost", 0) + fa.get("writes_lost", 0)
    if k or mi:
        out.append(f"kills survived: {kills} (kill loop {k.get('kills', 0)}, import "
                   f"{mi.get('kills', 0)})")
    if k or fa:
        out.append(f"acknowledged writes checked: {acked} (kill loop {k.get('acked_records', 0)} "
                   f"record writes in {k.get('acked_calls', 0)} calls, after faults "
                   f"{fa.get('acked_checked', 0)}); writes lost: {lost}")
    if fa:
        out.append(f"faults injected: {fa.get('faults_injected', 0)} (outcomes above)")
    if lo:
        out.append(f"load held: {lo.get('queries_per_s')} queries/s, "
                   f"{lo.get('write_calls_per_s')} write calls/s ({lo.get('vectors_per_s')} "
                   f"vectors/s), query p50 {lo.get('p50_ms')} ms / p99 {lo.get('p99_ms')} ms, "
                   f"{lo.get('inconsistent', '?')} inconsistent answers")
    if ho:
        out.append(f"inputs tried: {ho.get('inputs_tried', 0)} (API {ho.get('api_inputs', 0)}, "
                   f"CLI {ho.get('cli_inputs', 0)})")
    return out


def print_summary(reports: list[Report], elapsed: float, title: str) -> tuple[int, int]:
    """Print the run's summary; return (passed, failed)."""
    print()
    print(f"== {title} ==")
    for text in totals(reports):
        print(f"* {text}")
    for r in reports:
        for i, text in enumerate(r.lines or ["(no summary)"]):
            print(f"{r.harness if i == 0 else '':<9}{text}")
    notes = [(r.harness, n) for r in reports for n in r.notes]
    if notes:
        print("not covered / notes:")
        for h, n in notes:
            print(f"  [{h}] {n}")
    fails = [(r.harness, n, c) for r in reports for n, c in r.failures()]
    if fails:
        print("FAILED checks:")
        for h, n, c in fails:
            print(f"  [{h}] {n}: {c.failed} failed, {c.passed} passed")
            for d in c.details:
                print(f"      - {d}")
    passed = sum(r.passed for r in reports)
    failed = sum(r.failed for r in reports)
    print(f"elapsed {elapsed:.0f} s")
    print(f"{passed} passed, {failed} failed")
    return passed, failed
