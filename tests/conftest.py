"""Async tests run through anyio's pytest plugin (``anyio_mode = "auto"`` in
pyproject.toml: every ``async def`` test is its).  They run under trio unless
a module asks for more: a module that defines its own ``anyio_backend``
fixture (``["asyncio", "trio"]``) runs each test once per event loop
(tests/test_async.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "trio"
