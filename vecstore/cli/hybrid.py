"""``vecstore query STORE --text "..."``: BM25 (pure, or hybrid with
``--vector``/``--id``) from the command line; the arguments and the extra
result fields (``vector_score``, ``text_score``)."""

from __future__ import annotations

import argparse
from typing import Any


def add_text_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", help="BM25 query text: pure BM25, or hybrid with --vector/--id")
    p.add_argument("--text-field", help="the text index to search (default: the store's)")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="hybrid: weight of the vector side (1.0 = vector only)")
    p.add_argument("--fusion", choices=("weighted", "rrf"), default="weighted",
                   help="hybrid: how the two sides' results are fused")


def hybrid_query(args: argparse.Namespace, vec: Any, flt: Any) -> Any:
    from .._types import HybridQuery

    return HybridQuery(vec, args.text, k=args.k, alpha=args.alpha, fusion=args.fusion,
                       filter=flt, text_field=args.text_field, partitions=args.partition)


def hybrid_scores(r: Any) -> dict[str, float]:
    return {k: v for k, v in (("vector_score", r.vector_score), ("text_score", r.text_score))
            if v is not None}


def hybrid_line(r: Any) -> str:
    return "".join(f"  {k.split('_')[0]}={v:.6f}" for k, v in hybrid_scores(r).items())
