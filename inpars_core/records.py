"""Frozen record types, one per artifact row.

Runs and qrels reuse ir_measures' ``ScoredDoc`` and ``Qrel`` rather than inventing twins.
"""

from __future__ import annotations

from dataclasses import dataclass

from ir_measures import Qrel, ScoredDoc

__all__ = ["Document", "Qrel", "Qrels", "Query", "Run", "ScoredDoc"]


@dataclass(frozen=True, slots=True)
class Document:
    """One corpus document (BEIR ``corpus.jsonl`` row)."""

    doc_id: str
    title: str
    text: str

    @property
    def contents(self) -> str:
        """Title and text as one string, the way flat BM25 indexes and rerankers see it."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass(frozen=True, slots=True)
class Query:
    """One query (BEIR ``queries.jsonl`` row)."""

    query_id: str
    text: str


#: A ranking: query_id -> scored documents, best first.
Run = dict[str, list[ScoredDoc]]

#: Relevance judgements: query_id -> doc_id -> relevance.
Qrels = dict[str, dict[str, int]]
