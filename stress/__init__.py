"""Stress harnesses for vecstore: ``python -m stress --short`` (CI, a few
minutes) or ``--long``; one subcommand per harness (``kill``, ``faults``,
``load``, ``hostile``, ``migration``).  See docs/reliability.md."""
