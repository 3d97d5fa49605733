"""A LangChain retriever over vecstore (pip install 'vecstore[langchain]').

Run: python examples/langchain_retriever.py [STORE_PATH]

The embeddings here are a toy bag-of-words model so the script runs offline
and the results are easy to follow; any LangChain ``Embeddings`` (OpenAI,
HuggingFace, Ollama, ...) drops in the same way.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from vecstore.langchain import VecStoreVectorStore


class KeywordEmbeddings(Embeddings):
    """One dimension per keyword: texts sharing keywords are close."""

    KEYWORDS = ("python", "rust", "database", "vector", "web", "async", "crash", "tutorial")

    def _embed(self, text: str) -> list[float]:
        words = text.lower().replace(",", " ").replace(".", " ").split()
        v = [float(sum(w.startswith(k) for w in words)) for k in self.KEYWORDS]
        return v if any(v) else [0.01] * len(self.KEYWORDS)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


DOCS = [
    Document(id="sqlite", page_content="SQLite is an embedded database, crash safe.",
             metadata={"lang": "c", "year": 2000}),
    Document(id="vecstore", page_content="vecstore is an embedded vector database for Python.",
             metadata={"lang": "python", "year": 2024}),
    Document(id="vecstore-async", page_content="vecstore has an async API for Python, a "
             "vector database.", metadata={"lang": "python", "year": 2025}),
    Document(id="axum", page_content="Axum is a Rust web framework, async.",
             metadata={"lang": "rust", "year": 2021}),
    Document(id="fastapi", page_content="FastAPI is a Python async web framework.",
             metadata={"lang": "python", "year": 2018}),
    Document(id="tutorial", page_content="A tutorial on web databases in Python.",
             metadata={"lang": "python", "year": 2023}),
]


def show(title: str, docs: list[Document]) -> None:
    print(f"{title}: {[d.id for d in docs]}")


def main(path: str) -> None:
    emb = KeywordEmbeddings()
    with VecStoreVectorStore(path, embedding=emb) as vs:
        ids = vs.add_documents(DOCS)
        print(f"added {len(ids)} documents (one store version)")

        retriever = vs.as_retriever(search_kwargs={"k": 2})
        show("'python vector database'", retriever.invoke("python vector database"))

        recent = vs.as_retriever(search_kwargs={"k": 3, "filter": "year >= 2023"})
        show("same, year >= 2023", recent.invoke("python vector database"))

        not_python = vs.as_retriever(search_kwargs={"k": 2, "filter": {"lang": {"$ne": "python"}}})
        show("'async web', lang != python", not_python.invoke("async web"))

        mmr = vs.as_retriever(search_type="mmr",
                              search_kwargs={"k": 3, "fetch_k": 6, "lambda_mult": 0.3})
        show("'python vector database', MMR (diverse)", mmr.invoke("python vector database"))

        strict = vs.as_retriever(search_type="similarity_score_threshold",
                                 search_kwargs={"score_threshold": 0.8, "k": 6})
        show("'crash safe database', relevance >= 0.8", strict.invoke("crash safe database"))

        docs = asyncio.run(vs.as_retriever(search_kwargs={"k": 1}).ainvoke("rust"))
        show("async: 'rust'", docs)

    # the documents are on disk: a new vector store over the same path sees them
    with VecStoreVectorStore(path, embedding=emb) as again:
        doc = again.get_by_ids(["vecstore"])[0]
        print(f"reopened: {doc.id!r} -> {doc.page_content!r} {doc.metadata}")


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else str(Path(tempfile.mkdtemp()) / "lc.db")
    main(target)
