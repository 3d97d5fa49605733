"""Index settings (API.md "Index settings and quantization"): a Config's
index settings are checked against the stored ones, and ``reindex``
changes them, rebuilding every sealed segment and publishing all at once;
kill -9 at any moment leaves the old or the new index."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecstore import AsyncVecStore, Config, PQConfig, VecStore
from vecstore._engine import settings
from vecstore._errors import ConfigMismatchError, InvalidArgumentError
from vecstore._index import kind_named

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "_reindex_child.py"
_spec = importlib.util.spec_from_file_location("_reindex_child", CHILD)
assert _spec is not None and _spec.loader is not None
child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child)

DIM = 16
SEED = int(os.environ.get("VECSTORE_CRASH_SEED", random.randrange(2**31)))


def _vecs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _filled(path: Path, cfg: Config, n: int = 1200, batch: int = 300) -> VecStore:
    s = VecStore.open(path, cfg)
    x = _vecs(n)
    for i in range(0, n, batch):
        s.upsert_many(ids=[f"r{j}" for j in range(i, i + batch)], vectors=x[i : i + batch])
    _settle(s)
    return s


def _settle(s: VecStore) -> None:
    """Wait for the background seals (several segments, unlike optimize())."""
    deadline = time.monotonic() + 120  # generous: a hang fails
    while s.stats().indexing_pending and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not s.stats().indexing_pending


def _segment_settings(s: VecStore) -> set[tuple[str, str]]:
    eng = s._engine_checked()
    return {(seg.index.kind, json.dumps(seg.index.params, sort_keys=True))
            for pm in eng.mem.parts.values() for seg in pm.sealed}


def _expected(s: VecStore) -> tuple[str, str]:
    cfg = s._engine_checked().config
    kind = kind_named(cfg.index_kind or "")
    return kind.name, json.dumps(kind.params(cfg), sort_keys=True)


# -- Config: None means "as stored"; another value is a mismatch naming reindex ---------


def test_config_defaults_are_the_stored_settings(tmp_path: Path) -> None:
    assert Config().hnsw_m is None and Config().ef_construction is None  # "as stored"
    with VecStore.open(tmp_path / "s", Config(dim=DIM, quantization="sq8", hnsw_m=8)) as s:
        s.upsert("a", _vecs(1)[0])
    with VecStore.open(tmp_path / "s", Config(dim=DIM)) as s:  # all None: the stored ones
        cfg = s._engine_checked().config
        assert (cfg.index_kind, cfg.quantization, cfg.hnsw_m, cfg.ef_construction) == \
            ("faiss", "sq8", 8, 200)
        assert s.stats().index["settings"]["quantization"] == "sq8"
    with VecStore.open(tmp_path / "s", Config(dim=DIM, index_kind="faiss", hnsw_m=8,
                                               quantization="sq8", ef_construction=200)):
        pass  # the same values, given: fine
    with VecStore.open(tmp_path / "new") as s:  # a new store: hnswlib, float32, 16, 200
        cfg = s._engine_checked().config
        assert (cfg.index_kind, cfg.quantization, cfg.hnsw_m, cfg.ef_construction) == \
            ("hnswlib", None, 16, 200)


@pytest.mark.parametrize("given", [
    {"hnsw_m": 32}, {"ef_construction": 100}, {"index_kind": "hnswlib"},
    {"quantization": PQConfig(num_subvectors=4)},
])
def test_other_index_settings_raise_naming_reindex(tmp_path: Path, given: dict[str, Any]
                                                   ) -> None:
    with VecStore.open(tmp_path / "s", Config(dim=DIM, quantization="sq8")):
        pass
    with pytest.raises(ConfigMismatchError, match="reindex"):
        VecStore.open(tmp_path / "s", Config(dim=DIM, **given))
    with pytest.raises(ConfigMismatchError, match="reindex"):
        VecStore.open(tmp_path / "s", Config(**given), read_only=True)


def test_a_float32_store_opened_with_quantization_raises(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "s", Config(dim=DIM)):
        pass
    with pytest.raises(ConfigMismatchError, match="reindex"):
        VecStore.open(tmp_path / "s", Config(dim=DIM, quantization="sq8"))


def test_stored_configs_from_before_the_settings_read_as_defaults() -> None:
    old = {"dim": 8, "distance": "cosine", "hnsw_m": 16, "ef_construction": 200}
    assert settings.stored_settings(old) == {"index_kind": "hnswlib", "quantization": None,
                                             "hnsw_m": 16, "ef_construction": 200}
    assert Config.from_dict(old).hnsw_m == 16


# -- reindex ----------------------------------------------------------------------------


def test_reindex_rebuilds_every_segment_and_changes_the_settings(tmp_path: Path) -> None:
    s = _filled(tmp_path / "s", Config(dim=DIM, seal_threshold=300))
    try:
        q = _vecs(20, seed=1)
        before = [[r.id for r in s.query(v, k=5)] for v in q]
        assert _segment_settings(s) == {_expected(s)}
        old_files = set(os.listdir(tmp_path / "s" / "segments"))
        s.reindex(quantization="sq8", hnsw_m=8, ef_construction=100)
        info = s.stats().index
        assert info["settings"] == {"index_kind": "faiss", "quantization": "sq8", "hnsw_m": 8,
                                    "ef_construction": 100}
        assert info["partitions"]["default"]["kinds"] == ["faiss"]
        assert info["partitions"]["default"]["quantization"] == ["sq8"]
        assert _segment_settings(s) == {_expected(s)}
        assert not old_files & set(os.listdir(tmp_path / "s" / "segments"))
        after = [[r.id for r in s.query(v, k=5)] for v in q]
        hits = sum(len(set(a) & set(b)) for a, b in zip(before, after))
        assert hits >= 0.95 * 5 * len(q)
        r = s.query(q[0], k=1)[0]  # scores stay exact (re-ranked with float32 vectors)
        v = s.get(r.id).vector
        exact = float(np.dot(q[0], v) / np.linalg.norm(q[0]) / np.linalg.norm(v))
        assert r.score == pytest.approx(exact, abs=1e-5)
        s.upsert_many(ids=[f"n{j}" for j in range(300)], vectors=_vecs(300, seed=2))
        s.optimize()  # new seals use the new settings
        assert _segment_settings(s) == {_expected(s)}
    finally:
        s.close()
    with pytest.raises(ConfigMismatchError, match="reindex"):
        VecStore.open(tmp_path / "s", Config(dim=DIM, hnsw_m=16))
    with VecStore.open(tmp_path / "s", Config(dim=DIM)) as s:
        assert s.stats().index["settings"]["hnsw_m"] == 8
        assert s.count() == 1500
        s.reindex(quantization=None)  # None: float32 (left out: unchanged)
        assert s.stats().index["settings"] == {"index_kind": "faiss", "quantization": None,
                                               "hnsw_m": 8, "ef_construction": 100}
        s.reindex(index_kind="hnswlib")
        assert _segment_settings(s) == {_expected(s)}
        assert s.stats().index["partitions"]["default"]["kinds"] == ["hnswlib"]


def test_reindex_serves_reads_and_keeps_writes_meanwhile(tmp_path: Path) -> None:
    s = _filled(tmp_path / "s", Config(dim=DIM, seal_threshold=300), n=3000)
    errors: list[BaseException] = []
    done = threading.Event()
    reads = 0

    def reader() -> None:
        nonlocal reads
        q = _vecs(1, seed=5)[0]
        while not done.is_set():
            try:
                assert len(s.query(q, k=10)) == 10
                reads += 1
            except BaseException as exc:
                errors.append(exc)
                return

    t = threading.Thread(target=reader)
    t.start()
    try:
        rx = threading.Thread(target=s.reindex, kwargs={"quantization": "sq8"})
        rx.start()
        s.delete_many(ids=[f"r{j}" for j in range(0, 3000, 3)])  # before or during the build
        s.upsert_many(ids=[f"n{j}" for j in range(600)], vectors=_vecs(600, seed=3))
        rx.join()
    finally:
        done.set()
        t.join()
    try:
        assert not errors and reads > 0
        assert s.count() == 3000 - 1000 + 600
        assert s.get("r0") is None and s.get("r1") is not None and s.get("n5") is not None
        got = {r.id for r in s.query(s.get("r1").vector, k=50)}
        assert "r1" in got and not any(i.startswith("r") and int(i[1:]) % 3 == 0 for i in got
                                       if i[0] == "r")
        s.optimize()
        assert _segment_settings(s) == {_expected(s)}
    finally:
        s.close()


def test_reindex_arguments_are_checked(tmp_path: Path) -> None:
    with VecStore.open(tmp_path / "s", Config(dim=DIM)) as s:
        with pytest.raises(InvalidArgumentError):
            s.reindex(index_kind="hnswlib", quantization="sq8")
        with pytest.raises(InvalidArgumentError):
            s.reindex(index_kind="nope")
        with pytest.raises(InvalidArgumentError):
            s.reindex(hnsw_m=0)
        with pytest.raises(InvalidArgumentError):
            s.reindex(quantization=PQConfig(num_subvectors=5))  # does not divide 16
        s.reindex()  # nothing to change: fine (no segments either)
        s.reindex(quantization="sq8")  # an empty store: the settings alone change
        assert s.stats().index["settings"]["quantization"] == "sq8"


def test_a_failed_publish_leaves_the_old_index(tmp_path: Path, monkeypatch: Any) -> None:
    from vecstore._engine import reindex as rxmod

    s = _filled(tmp_path / "s", Config(dim=DIM, seal_threshold=300))
    try:
        before = _segment_settings(s)
        files = set(os.listdir(tmp_path / "s" / "segments"))

        def fail(self: Any) -> None:
            raise OSError("disk gone")

        monkeypatch.setattr(rxmod.Reindex, "publish", fail)
        with pytest.raises(OSError):
            s.reindex(quantization="sq8")
        assert _segment_settings(s) == before
        assert set(os.listdir(tmp_path / "s" / "segments")) == files  # new files removed
        assert len(s.query(_vecs(1)[0], k=3)) == 3
    finally:
        s.close()


async def test_async_reindex(tmp_path: Path) -> None:
    _filled(tmp_path / "s", Config(dim=DIM, seal_threshold=300)).close()
    async with await AsyncVecStore.open(tmp_path / "s", Config(dim=DIM)) as s:
        await s.reindex(quantization="sq8")
        assert (await s.stats()).index["settings"]["quantization"] == "sq8"
        assert len(await s.query(_vecs(1)[0], k=3)) == 3


# -- kill -9 during reindexes -------------------------------------------------------------


def _spawn(store: Path, log: Path, first: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(CHILD), str(store), str(log), str(first)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _w, _x = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "ready":
        proc.kill()
        pytest.fail(f"child did not start: {line!r}\n{proc.communicate(timeout=30)[1]}")
    return proc


def _settings_after(n: int) -> dict[str, Any]:
    """The settings after reindexes 0..n-1 of the child's cycle."""
    stored = settings.fill(child.config().to_dict())
    for i in range(n):
        stored.update(settings.to_stored(
            settings.resolve("", stored, child.CYCLE[i % len(child.CYCLE)])))
    return settings.stored_settings(stored)


def test_kill9_during_reindex_leaves_the_old_or_the_new_index(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    store, log = tmp_path / "s", tmp_path / "log"
    with VecStore.open(store, child.config()) as s:
        x = np.random.default_rng(0).standard_normal((1500, child.DIM)).astype(np.float32)
        for i in range(0, 1500, 300):
            s.upsert_many(ids=[f"r{j}" for j in range(i, i + 300)], vectors=x[i : i + 300])
        _settle(s)
        assert s.stats().sealed_segments >= 2
    nxt = 0  # the next reindex a child starts with
    acked: set[int] = set()
    for kill in range(6):
        proc = _spawn(store, log, nxt)
        time.sleep(rng.uniform(0.05, 3.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        started = [e["b"] for e in entries if "b" in e]
        finished = {e["a"] for e in entries if "a" in e}
        acked |= {e["w"] for e in entries if "w" in e}
        last = max(started, default=None)
        if last is None:  # killed before the first reindex began
            ok, after = [_settings_after(nxt)], nxt
        elif last in finished:  # killed between two reindexes
            ok, after = [_settings_after(last + 1)], last + 1
        else:  # killed during reindex `last`: the old or the new settings and index
            ok, after = [_settings_after(last), _settings_after(last + 1)], last
        with VecStore.open(store, child.config()) as s:
            eng = s._engine_checked()
            have = {f: getattr(eng.config, f) for f in settings.FIELDS}
            assert have in ok, f"seed {SEED}, kill {kill}: settings {have} not in {ok}"
            assert _segment_settings(s) <= {_expected(s)}, f"seed {SEED}: mixed index"
            manifest = {seg.file for pm in eng.mem.parts.values() for seg in pm.sealed}
            assert set(os.listdir(store / "segments")) == manifest
            assert s.count() >= 1500
            missing = [n for n in acked if s.get(f"w{n}") is None]
            assert not missing, f"seed {SEED}: acknowledged writes lost: {missing[:5]}"
            assert len(s.query(x[7], k=5)) == 5
            assert s.query(x[7], k=1)[0].id == "r7"
            nxt = after
        log.unlink()
