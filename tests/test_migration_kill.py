"""The import kill loop (stress/migration_kill.py) in its CI size: SIGKILL
``vecstore import`` (CLI and AsyncVecStore children) at random instants,
re-run it, and compare with an uninterrupted import, record for record."""

from __future__ import annotations

from stress.migration_kill import run


def test_import_survives_sigkill_loop() -> None:
    report = run(short=True, kills=6, records=1500, seed=20240611)
    failures = {name: c.details for name, c in report.failures()}
    assert not failures, failures
    assert report.figures["kills"] == 6 and report.figures["rounds"] >= 2
    # every round ends with 4 checks (records, rejects, vecstore check, nothing to do);
    # every kill after the store exists adds 3 more (how many: timing decides)
    assert report.passed >= 4 * report.figures["rounds"]
