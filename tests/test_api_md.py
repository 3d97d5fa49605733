"""API.md, section by section: every name it promises exists, sync and async.

The checked list below mirrors the contract (``../shared/API.md``).  A section
that an open issue still has to build is marked ``xfail(strict=True)`` with
that issue's number: it fails CI the day the names appear without the mark
being removed, and never hides a name that goes missing from a built section.
When API.md is beside the checkout, a second test reads its code blocks and
fails on any ``store.<method>`` or ``from vecstore... import`` name that this
list does not cover, so the list cannot drift from the document.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vecstore

ROOT = Path(__file__).resolve().parent.parent
API_MD = Path(os.environ.get("VECSTORE_API_MD", ROOT.parent / "shared" / "API.md"))


def pending(issue: int) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"built by open issue #{issue}")


# (section, store methods (sync VecStore + async AsyncVecStore twins), other names)
SECTIONS: dict[str, tuple[list[str], list[str]]] = {
    "Opening and closing": (["close", "backup"],
                            ["VecStore.open", "AsyncVecStore.open", "Config", "Distance.COSINE",
                             "Query"]),
    "Writing": (["upsert", "upsert_many", "delete", "delete_many"], []),
    "Reading": (["get", "get_many", "query", "count", "scan", "stats", "__len__"], ["Record",
                                                                                   "Result"]),
    "Maintenance": (["optimize", "compact", "refresh"], []),
    "Partitions": (["partition", "partitions", "drop_partition"],
                   ["PartitionedStore.open", "PartitionedStore.insert",
                    "PartitionedStore.query_partition", "PartitionedStore.query_all",
                    "PartitionedStore.close"]),
    "Versions": (["snapshot", "versions", "history", "tag", "rollback", "set_retention"],
                 ["VersionedStore.open", "VersionedStore.update", "VersionInfo",
                  "RecordVersion", "Snapshot.partition"]),
    "Versions: change feed": (["changes"], []),
    "Indexes, planner, explain": (["create_index", "indexes", "drop_index", "explain"],
                                  ["QueryPlan"]),
    "Index settings and quantization": (["reindex"], ["PQConfig"]),
    "Hybrid search": ([], ["HybridQuery"]),
    "Analytics": (["recommend", "find_duplicates"], []),
    "Metrics": (["metrics"], []),
}
PENDING: dict[str, int] = {}

MODULES: dict[str, list[str]] = {
    "vecstore.migration": ["MigrationConfig", "PineconeMigration", "QdrantMigration",
                           "ChromaMigration", "WeaviateMigration"],
    "vecstore.langchain": ["VecStoreVectorStore"],
    "vecstore.llama_index": ["VecStoreVectorStore"],
    "vecstore.analytics": ["KMeansClustering", "DBSCAN", "Hierarchical", "IsolationForest",
                           "LOF", "ZScoreDetector", "PCA"],
}
PENDING_MODULES: dict[str, tuple[int, list[str]]] = {}
ERRORS = ["VecStoreError", "DimensionMismatchError", "InvalidVectorError",
          "InvalidMetadataError", "FilterError", "ConfigMismatchError", "StoreClosedError",
          "StoreLockedError", "ReadOnlyError", "VersionNotRetainedError", "CorruptionError",
          "MigrationError"]
CONFIG_FIELDS = ["dim", "distance", "hnsw_m", "ef_construction", "ef_search", "durability",
                 "text_field"]
QUERY_BUILDERS = ["with_limit", "with_filter", "with_ef", "with_partitions"]
PLAN_FIELDS = ["strategy", "estimated_matches", "estimated_cost_ms", "hints"]
STATS_FIELDS = ["total_vectors", "dimension", "distance", "partitions", "version",
                "bytes_on_disk"]
CLI_COMMANDS = ["import", "export", "stats", "query", "versions", "rollback", "check",
                "optimize", "compact"]


def _resolve(dotted: str) -> object:
    obj: object = vecstore
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _missing(section: str) -> list[str]:
    methods, names = SECTIONS[section]
    out = []
    for m in methods:
        if not callable(getattr(vecstore.VecStore, m, None)):
            out.append(f"VecStore.{m}")
        if m.startswith("__"):
            continue
        am = getattr(vecstore.AsyncVecStore, m, None)
        if am is None:
            out.append(f"AsyncVecStore.{m}")
        elif m not in ("partition",) and not (inspect.iscoroutinefunction(am)
                                                or inspect.isasyncgenfunction(am)
                                                or m in ("scan", "changes", "open")):
            out.append(f"AsyncVecStore.{m} (not awaitable)")
    for n in names:
        try:
            _resolve(n)
        except AttributeError:
            out.append(n)
    return out


@pytest.mark.parametrize("section", [
    pytest.param(s, marks=pending(PENDING[s])) if s in PENDING else s for s in SECTIONS])
def test_section_names_exist(section: str) -> None:
    assert _missing(section) == []


@pytest.mark.parametrize("module", [
    *MODULES, *(pytest.param(m, marks=pending(i)) for m, (i, _n) in PENDING_MODULES.items())])
def test_module_names_exist(module: str) -> None:
    names = MODULES.get(module) or PENDING_MODULES[module][1]
    mod = importlib.import_module(module)
    assert [n for n in names if not hasattr(mod, n)] == []


def test_errors_config_query_plan_stats() -> None:
    assert [e for e in ERRORS if not (hasattr(vecstore, e) and issubclass(
        getattr(vecstore, e), vecstore.VecStoreError))] == []
    fields = set(inspect.signature(vecstore.Config).parameters)
    assert [f for f in CONFIG_FIELDS if f not in fields] == []
    assert [b for b in QUERY_BUILDERS if not hasattr(vecstore.Query, b)] == []
    q = inspect.signature(vecstore.Query).parameters
    assert {"vector", "k", "filter", "ef", "include_vectors", "partitions"} <= set(q)
    assert [f for f in PLAN_FIELDS if f not in vecstore.QueryPlan.__dataclass_fields__] == []
    assert [f for f in STATS_FIELDS if f not in vecstore.Stats.__dataclass_fields__] == []
    for cls in (vecstore.PartitionView, vecstore.Snapshot):  # the views share the read API
        assert [m for m in ("get", "get_many", "query", "count", "scan", "explain")
                if not hasattr(cls, m)] == []


def test_async_twins_of_views() -> None:
    for sync_cls, async_cls in ((vecstore.PartitionView, vecstore.AsyncPartitionView),
                                (vecstore.Snapshot, vecstore.AsyncSnapshot)):
        public = {m for m in dir(sync_cls) if not m.startswith("_")}
        missing = sorted(m for m in public if not hasattr(async_cls, m))
        assert missing == [], f"{async_cls.__name__} lacks {missing}"


def test_async_close() -> None:
    assert inspect.iscoroutinefunction(getattr(vecstore.AsyncVecStore, "close", None))


def test_cli_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "vecstore.cli", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [c for c in CLI_COMMANDS if not re.search(rf"\b{c}\b", out.stdout)] == []
    imp = subprocess.run([sys.executable, "-m", "vecstore.cli", "import", "--help"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "--no-index" in imp.stdout


def _code_blocks(text: str) -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))


@pytest.mark.skipif(not API_MD.exists(), reason=f"{API_MD} not beside this checkout")
def test_checked_list_covers_api_md() -> None:
    code = _code_blocks(API_MD.read_text())
    known_methods = {m for ms, _n in SECTIONS.values() for m in ms} | {
        "partition", "version", "upsert", "query"}
    known_methods |= {n.split(".")[1] for _m, ns in SECTIONS.values() for n in ns
                      if n.startswith("PartitionedStore.")}
    called = set(re.findall(r"\b(?:store|ps|a|snap)\.([a-z_]+)\b", code))
    ignored = {"index", "version"}  # attributes of results (stats().index, snap.version)
    assert sorted(called - known_methods - ignored) == []
    known_names = {n.split(".")[0] for _m, ns in SECTIONS.values() for n in ns} | set(ERRORS) \
        | {"AsyncVecStore", "VecStore", "Distance"}
    imports = re.findall(r"from (vecstore(?:\.\w+)?) import (?:\(([^)]*)\)|([\w ,]+))", code)
    assert len(imports) >= 5
    for mod, group, line in imports:
        names = group or line
        listed = set(MODULES.get(mod, [])) | set(PENDING_MODULES.get(mod, (0, []))[1])
        for name in (n.strip() for n in names.split(",")):
            if name:
                assert name in (known_names if mod == "vecstore" else listed), (mod, name)
