"""Known-item query sets over pypi58k summaries (benchmarks/bench_hybrid.py).

Every query is made from one record's summary; that record is the one
right answer.  Records are drawn (seeded) among those whose summary has at
least 5 analyzed terms, 3 of them content words (not stop words).  Three
sets of the same size, each from its own draw:

* ``keyword``: the record's 2 rarest terms (lowest document frequency in
  the corpus after vecstore's default analysis; ties by position), in
  summary order -- what a user who remembers a distinctive word types;
* ``verbatim`` (near-verbatim): the summary with one word dropped (seeded
  position) and the two words after it swapped when there are any;
* ``paraphrase`` (and ``paraphrase-hard``): the summary's words with every
  content word (alphabetic, 3+ letters, not a stop word, a whole word of
  MiniLM's vocabulary) replaced, with probability 0.6 (0.9 for the hard
  set; at least one replaced, at least one kept), by
  its nearest neighbour among MiniLM's whole-word input embeddings (cosine)
  that does not share its first 4 letters (so "fast" -> "quick", not
  "faster"); stop words kept, so the sentence reads on.  The record's
  summary is not contained in the query; both sides keep some signal: the
  words kept for BM25, the meaning for the embedding.

Query vectors are MiniLM embeddings of the query text (benchmarks/_minilm.py,
the dataset's own model), cached in the temp directory.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

STOP = {
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with", "from", "your", "you", "can",
    "using", "use", "based", "via", "its",
}


def _df(terms: list[list[str]]) -> Counter[str]:
    c: Counter[str] = Counter()
    for t in terms:
        c.update(set(t))
    return c


def _eligible(terms: list[list[str]]) -> list[int]:
    return [i for i, t in enumerate(terms)
            if len(t) >= 5 and sum(1 for w in t if w not in STOP and w.isalpha()) >= 3]


def keyword_set(texts: list[str], terms: list[list[str]], n: int, seed: int
                ) -> list[tuple[str, int]]:
    df = _df(terms)
    rng = random.Random(seed)
    out = []
    for i in rng.sample(_eligible(terms), n):
        t = list(dict.fromkeys(terms[i]))
        rare = sorted(range(len(t)), key=lambda j: (df[t[j]], j))[:2]
        out.append((" ".join(t[j] for j in sorted(rare)), i))
    return out


def verbatim_set(texts: list[str], terms: list[list[str]], n: int, seed: int
                 ) -> list[tuple[str, int]]:
    rng = random.Random(seed + 1)
    out = []
    for i in rng.sample(_eligible(terms), n):
        words = texts[i].split()
        if len(words) >= 3:
            j = rng.randrange(len(words))
            del words[j]
            if j + 1 < len(words):
                words[j], words[j + 1] = words[j + 1], words[j]
        out.append((" ".join(words), i))
    return out


class Neighbours:
    """Nearest whole-word neighbours in MiniLM's input embedding matrix."""

    def __init__(self, model: Any) -> None:
        vocab = model.tok.get_vocab()
        words = [(w, i) for w, i in vocab.items() if w.isalpha() and len(w) >= 3]
        self.words = [w for w, _i in words]
        self.index = {w: k for k, w in enumerate(self.words)}
        emb = model.w["embeddings.word_embeddings.weight"][[i for _w, i in words]]
        self.emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)

    def near(self, word: str) -> str | None:
        k = self.index.get(word)
        if k is None:
            return None
        sims = self.emb @ self.emb[k]
        for j in np.argsort(-sims)[1:30].tolist():
            cand = self.words[j]
            if cand[:4] != word[:4] and cand not in STOP:
                return cand
        return None


def paraphrase_set(texts: list[str], terms: list[list[str]], n: int, seed: int,
                   nb: Neighbours, p: float = 0.6) -> list[tuple[str, int]]:
    rng = random.Random(seed + 2 + int(p * 100))
    out = []
    pool = _eligible(terms)
    rng.shuffle(pool)
    for i in pool:
        if len(out) >= n:
            break
        words = re.findall(r"[A-Za-z0-9]+|[^A-Za-z0-9\s]+", texts[i])
        slots = [j for j, w in enumerate(words)
                 if w.isalpha() and len(w) >= 3 and w.lower() not in STOP
                 and nb.near(w.lower()) is not None]
        if len(slots) < 2:
            continue
        pick = [j for j in slots if rng.random() < p]
        if not pick:
            pick = [rng.choice(slots)]
        if len(pick) == len(slots):
            pick.remove(rng.choice(pick))
        for j in pick:
            words[j] = nb.near(words[j].lower()) or words[j]
        out.append((" ".join(words), i))
    return out


def embed_cached(model_factory: Any, texts: list[str]) -> np.ndarray:
    """MiniLM embeddings of ``texts``, cached by content in the temp dir."""
    import tempfile

    h = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"vecstore-bench-queries-{h}.npy"
    if path.exists():
        return np.load(path)  # type: ignore[no-any-return]
    vecs = model_factory().embed(texts)
    np.save(path, vecs)
    return vecs
