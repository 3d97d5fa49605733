"""Every error vecstore raises to a user is a :class:`~vecstore.VecStoreError`,
and still the builtin it used to be (``except ValueError`` keeps working).

Each entry point that used to raise a bare builtin is driven into that error
here; :func:`test_no_bare_builtin_raises` then walks the source so a new
``raise ValueError(...)`` cannot slip in (the allowlist below names the few
that are deliberate, with the reason).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vecstore
from vecstore import (
    AsyncVecStore,
    Config,
    DestinationExistsError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StoreNotFoundError,
    UnsupportedOperationError,
    VecStore,
    VecStoreError,
)
from vecstore.migration import MigrationConfig, PineconeMigration

ROOT = Path(__file__).resolve().parent.parent
DIM = 4


def raises(builtin: type[BaseException], cls: type[VecStoreError],
           fn: Callable[..., Any], *args: Any, **kwargs: Any) -> VecStoreError:
    """``fn(*args, **kwargs)`` raises ``cls``, a VecStoreError that is also ``builtin``."""
    with pytest.raises(builtin) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, VecStoreError), type(info.value)
    assert isinstance(info.value, cls), type(info.value)
    return info.value


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with VecStore.open(tmp_path / "s.db", Config(dim=DIM)) as s:
        s.upsert("a", np.ones(DIM, np.float32), {"n": 1})
        yield s


def test_the_new_classes_are_exported_and_keep_their_builtin() -> None:
    for name, builtin in (("StoreNotFoundError", FileNotFoundError),
                          ("DestinationExistsError", FileExistsError),
                          ("UnsupportedOperationError", NotImplementedError)):
        cls = getattr(vecstore, name)
        assert name in vecstore.__all__
        assert issubclass(cls, VecStoreError) and issubclass(cls, builtin)


# -- opening a store that is not there ----------------------------------------------------


def test_read_only_open_of_a_missing_store(tmp_path: Path) -> None:
    exc = raises(FileNotFoundError, StoreNotFoundError,
                 VecStore.open, tmp_path / "nothing.db", read_only=True)
    assert "nothing.db" in str(exc)


async def test_async_read_only_open_of_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        async with AsyncVecStore.open(tmp_path / "nothing.db", read_only=True):
            pass  # pragma: no cover
    assert isinstance(info.value, StoreNotFoundError)


def test_cli_commands_on_a_missing_store(tmp_path: Path) -> None:
    from vecstore.cli import analyze, check, maint

    cli_main = importlib.import_module("vecstore.cli.main")  # vecstore.cli.main is also a function

    missing = str(tmp_path / "nothing.db")
    raises(FileNotFoundError, StoreNotFoundError, check.check_store, missing)
    raises(FileNotFoundError, StoreNotFoundError, maint._open, argparse.Namespace(store=missing))
    raises(FileNotFoundError, StoreNotFoundError, analyze._open,
           argparse.Namespace(store=missing, write_back=False))
    raises(FileNotFoundError, StoreNotFoundError, cli_main._rollback,
           argparse.Namespace(store=missing, partition=None, version=1, message=None))
    # ... and the command line still reports it as an error, not a traceback.
    assert cli_main.main(["check", missing]) != 0
    assert cli_main.main(["rollback", missing, "1"]) != 0


# -- backup -----------------------------------------------------------------------------


def test_backup_into_a_non_empty_directory(store: VecStore, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    raises(FileExistsError, DestinationExistsError, store.backup, dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


async def test_async_backup_into_a_non_empty_directory(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    async with AsyncVecStore.open(tmp_path / "a.db", Config(dim=DIM)) as s:
        with pytest.raises(FileExistsError) as info:
            await s.backup(dest)
    assert isinstance(info.value, DestinationExistsError)


# -- migration ----------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "builtin", "cls"), [
    ({"batch_size": "10"}, TypeError, InvalidArgumentTypeError),
    ({"batch_size": True}, TypeError, InvalidArgumentTypeError),
    ({"batch_size": 0}, ValueError, InvalidArgumentError),
    ({"validate": 1}, TypeError, InvalidArgumentTypeError),
    ({"parallel_parse": "yes"}, TypeError, InvalidArgumentTypeError),
    ({"restart": None}, TypeError, InvalidArgumentTypeError),
    ({"index": 0}, TypeError, InvalidArgumentTypeError),
    ({"resume_from": 1.5}, TypeError, InvalidArgumentTypeError),
    ({"resume_from": -1}, ValueError, InvalidArgumentError),
    ({"id_prefix": None}, TypeError, InvalidArgumentTypeError),
    ({"text_field": ""}, TypeError, InvalidArgumentTypeError),
    ({"message": 3}, TypeError, InvalidArgumentTypeError),
])
def test_migration_config(options: dict[str, Any], builtin: type[Exception],
                          cls: type[VecStoreError]) -> None:
    raises(builtin, cls, MigrationConfig, **options)
    raises(builtin, cls, PineconeMigration, **options)  # keywords go through the same checks


def test_migration_arguments(store: VecStore, tmp_path: Path) -> None:
    src = tmp_path / "in.json"
    src.write_text('{"vectors": []}')
    raises(TypeError, InvalidArgumentTypeError, PineconeMigration, {"batch_size": 10})
    raises(TypeError, InvalidArgumentTypeError, PineconeMigration().with_progress, 42)
    raises(TypeError, InvalidArgumentTypeError,
           PineconeMigration().with_progress, None, indexing="no")
    m = PineconeMigration()
    raises(TypeError, InvalidArgumentTypeError, m.import_from_file, src, object())
    raises(TypeError, InvalidArgumentTypeError, m.export_to_file, object(), tmp_path / "o.json")
    conflict = PineconeMigration(partition="other")
    raises(ValueError, InvalidArgumentError,
           conflict.import_from_file, src, store.partition("mine"))
    raises(ValueError, InvalidArgumentError,
           conflict.export_to_file, store.partition("mine"), tmp_path / "o.json")


async def test_migration_sync_and_async_mixed_up(tmp_path: Path) -> None:
    src = tmp_path / "in.json"
    src.write_text('{"vectors": []}')
    m = PineconeMigration()
    with VecStore.open(tmp_path / "s.db", Config(dim=DIM)) as s:
        with pytest.raises(TypeError) as info:
            await m.import_from_file_async(src, s)
        assert isinstance(info.value, InvalidArgumentTypeError)
        with pytest.raises(TypeError) as info:
            await m.export_to_file_async(s, tmp_path / "o.json")
        assert isinstance(info.value, InvalidArgumentTypeError)
    async with AsyncVecStore.open(tmp_path / "a.db", Config(dim=DIM)) as a:
        raises(TypeError, InvalidArgumentTypeError, m.import_from_file, src, a)
        raises(TypeError, InvalidArgumentTypeError, m.export_to_file, a, tmp_path / "o.json")


# -- the LangChain and LlamaIndex adapters --------------------------------------------------


def test_langchain_adapter(store: VecStore, tmp_path: Path) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from vecstore.langchain import VecStoreVectorStore

    emb = DeterministicFakeEmbedding(size=DIM)
    T, TT = TypeError, InvalidArgumentTypeError
    raises(T, TT, VecStoreVectorStore, store.partition("p"), emb)
    raises(T, TT, VecStoreVectorStore, store, emb, config=Config(dim=DIM))
    raises(T, TT, VecStoreVectorStore, 42, emb)
    raises(T, TT, VecStoreVectorStore.from_texts, ["x"], emb)
    vs = VecStoreVectorStore(store, emb)
    raises(ValueError, InvalidArgumentError, vs.add_texts, ["x", "y"], metadatas=[{}])
    raises(ValueError, InvalidArgumentError, vs.add_texts, ["x"], ids=["1", "2"])
    raises(ValueError, InvalidArgumentError, vs.add_texts, ["x"], metadatas=[{"text": "t"}])
    raises(T, TT, vs.add_texts, [b"bytes"])
    raises(T, TT, vs.similarity_search, "x", where={"n": 1})


def test_llama_index_adapter(store: VecStore) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    from vecstore.llama_index import VecStoreVectorStore

    T, TT = TypeError, InvalidArgumentTypeError
    raises(T, TT, VecStoreVectorStore, store.partition("p"))
    raises(T, TT, VecStoreVectorStore, store, config=Config(dim=DIM))
    raises(T, TT, VecStoreVectorStore, 42)
    vs = VecStoreVectorStore(store)
    bad = TextNode(id_="n", text="t", metadata={"text": "clash"}, embedding=[1.0] * DIM)
    raises(ValueError, InvalidArgumentError, vs.add, [bad])
    raises(ValueError, InvalidArgumentError, vs.query, VectorStoreQuery(similarity_top_k=1))
    for mode in (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.SVM):
        q = VectorStoreQuery(query_embedding=[1.0] * DIM, similarity_top_k=1, mode=mode)
        raises(NotImplementedError, UnsupportedOperationError, vs.query, q)
    hybrid = VectorStoreQuery(query_embedding=[1.0] * DIM, similarity_top_k=1,
                              mode=VectorStoreQueryMode.HYBRID)  # (no query_str)
    raises(ValueError, InvalidArgumentError, vs.query, hybrid)


# -- no bare builtin raise in the source ---------------------------------------------------

BUILTIN_EXCEPTIONS = {name for name, obj in vars(builtins).items()
                      if isinstance(obj, type) and issubclass(obj, BaseException)}

#: (path, exception) -> why a bare builtin is right there.  Every entry must
#: still match a raise (a stale entry fails the test), and every such raise
#: not listed fails it.
ALLOWED: dict[tuple[str, str], str] = {
    ("wal/_log.py", "KeyError"):
        "wal is a standalone package (it must not import vecstore); WriteAheadLog.get "
        "is a mapping lookup, KeyError is its documented contract, and vecstore "
        "catches it (cli/check.py)",
    ("vecstore/_index/hnsw.py", "OSError"):
        "a short segment file, raised inside write_durably's write callback, which "
        "turns it into StorageFullError/StorageError by its errno",
    ("vecstore/_index/hnswfile.py", "OSError"):
        "a short scratch file while stripping a segment, inside write_durably's write "
        "callback (turned into StorageError there)",
    ("vecstore/_index/faiss_hnsw.py", "OSError"):
        "a short segment file, inside write_durably's write callback (turned into "
        "StorageFullError/StorageError by its errno)",
    ("vecstore/migration/_readers.py", "ValueError"):
        "a JSON line nested too deeply, caught beside json.loads's own ValueError by "
        "the caller and reported as a MigrationError / rejected record",
    ("vecstore/_engine/txn.py", "NotImplementedError"):
        "WriteRequest.apply is abstract: every request class overrides it",
    ("vecstore/_api/sync.py", "TypeError"):
        "an op kind the executor does not know: unreachable, spec.py builds only known ops",
    ("vecstore/_api/aio.py", "TypeError"):
        "an op kind the executor does not know: unreachable, spec.py builds only known ops",
    ("vecstore/_filter/ast.py", "TypeError"):
        "an AST node of no known class: unreachable (pragma: no cover), the parsers "
        "build only known nodes",
    ("vecstore/_filter/dict.py", "TypeError"):
        "an AST node of no known class: unreachable (pragma: no cover)",
    ("vecstore/_filter/ids.py", "TypeError"):
        "an AST node of no known class: unreachable (pragma: no cover)",
    ("vecstore/_metaindex/masks.py", "TypeError"):
        "a leaf node of no known class: unreachable, the filter AST has no others",
    ("vecstore/migration/replicate.py", "AssertionError"):
        "after the retry loop, which returns or raises MigrationError: unreachable",
    ("vecstore/analytics/pca.py", "AssertionError"):
        "an internal invariant (two reads of one snapshot disagree), not a user error",
    ("vecstore/_analysis/source.py", "ImportError"):
        "an optional dependency is missing: ImportError with the pip command to install "
        "it, as Python's own import would raise",
    ("vecstore/cli/__main__.py", "SystemExit"):
        "the CLI's exit status",
    ("vecstore/cli/imports.py", "KeyboardInterrupt"):
        "re-raises Ctrl-C that arrived before the import started (main maps it to exit 130)",
}


def _bare_builtin_raises() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for top in ("vecstore", "wal"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                if not isinstance(node, ast.Raise) or node.exc is None:
                    continue
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id in BUILTIN_EXCEPTIONS:
                    found.add((rel, exc.id))
    return found


def test_no_bare_builtin_raises() -> None:
    found = _bare_builtin_raises()
    unexpected = sorted(found - ALLOWED.keys())
    assert not unexpected, (
        "raise a VecStoreError subclass (vecstore/_errors.py; one that is also the builtin, "
        f"e.g. InvalidArgumentError for ValueError) instead of: {unexpected}")
    stale = sorted(ALLOWED.keys() - found)
    assert not stale, f"allowlist entries that no longer match a raise: {stale}"
