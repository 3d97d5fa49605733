"""Async tests run through anyio's pytest plugin: every ``async def`` test is
marked for it here.  They run under trio unless a module asks for more: a
module that defines its own ``anyio_backend`` fixture (``["asyncio",
"trio"]``) runs each test once per event loop (tests/test_async.py)."""

from __future__ import annotations

import inspect

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "obj", None)
        inner = getattr(getattr(fn, "hypothesis", None), "inner_test", fn)
        if inspect.iscoroutinefunction(inner):
            item.add_marker(pytest.mark.anyio)


@pytest.fixture
def anyio_backend() -> str:
    return "trio"
