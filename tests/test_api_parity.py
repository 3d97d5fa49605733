"""One source for sync and async: every public method of every async class
has a sync twin with the same signature and docstring, and back."""

from __future__ import annotations

import inspect

import pytest

import vecstore
from vecstore import (
    AsyncPartitionedStore,
    AsyncPartitionView,
    AsyncSnapshot,
    AsyncVecStore,
    AsyncVersionedStore,
    PartitionedStore,
    PartitionView,
    Snapshot,
    VecStore,
    VersionedStore,
)

PAIRS = [(VecStore, AsyncVecStore), (PartitionView, AsyncPartitionView),
         (Snapshot, AsyncSnapshot), (VersionedStore, AsyncVersionedStore),
         (PartitionedStore, AsyncPartitionedStore)]
# Not twins by design: context-manager protocols, and what only a sync object can be.
SYNC_ONLY = {"__enter__", "__exit__", "__len__", "__contains__"}
ASYNC_ONLY = {"__aenter__", "__aexit__", "sync"}
NOT_AWAITED = {"partition", "scan", "changes", "open", "name", "version", "partition_name", "path",
               "read_only", "closed", "commits"}


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def _signature(fn: object) -> inspect.Signature:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS, ids=lambda c: c.__name__)
def test_same_names(sync_cls: type, async_cls: type) -> None:
    assert sorted(_public(sync_cls) - _public(async_cls) - SYNC_ONLY) == []
    assert sorted(_public(async_cls) - _public(sync_cls) - ASYNC_ONLY) == []


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS, ids=lambda c: c.__name__)
def test_same_signatures_and_docs(sync_cls: type, async_cls: type) -> None:
    for name in sorted(_public(sync_cls) & _public(async_cls)):
        s, a = inspect.getattr_static(sync_cls, name), inspect.getattr_static(async_cls, name)
        if isinstance(s, property) or isinstance(a, property):
            assert isinstance(s, property) and isinstance(a, property), name
            continue
        s, a = getattr(sync_cls, name), getattr(async_cls, name)
        if name == "open":
            assert _signature(s) == _signature(a)
            continue
        assert _signature(s) == _signature(a), f"{async_cls.__name__}.{name}"
        if name not in ("partition",):
            assert inspect.getdoc(s) and inspect.getdoc(s) == inspect.getdoc(a), \
                f"{async_cls.__name__}.{name} docstring differs from its sync twin"
        if name not in NOT_AWAITED:
            assert inspect.iscoroutinefunction(a), f"{async_cls.__name__}.{name} not awaitable"
            assert not inspect.iscoroutinefunction(s), f"{sync_cls.__name__}.{name} is async"


def test_facade_methods_come_from_one_source() -> None:
    """The store methods are generated from vecstore._api.spec, not hand-written twice."""
    from vecstore._api import spec

    spec_names = {n for cls in (spec.PartitionSpec, spec.StoreSpec, spec.PartitionedSpec,
                                spec.VersionedSpec) for n in vars(cls) if not n.startswith("_")}
    for cls in (VecStore, AsyncVecStore, PartitionedStore, AsyncPartitionedStore):
        for name in spec_names & _public(cls):
            fn = getattr(cls, name)
            assert fn.__qualname__.split(".")[0].endswith("Spec"), (cls.__name__, name)


def test_every_public_class_is_exported() -> None:
    for sync_cls, async_cls in PAIRS:
        assert getattr(vecstore, sync_cls.__name__) is sync_cls
        assert getattr(vecstore, async_cls.__name__) is async_cls
