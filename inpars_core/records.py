"""Frozen record types, one per artifact row.

Runs and qrels reuse ir_measures' ``ScoredDoc`` and ``Qrel`` rather than inventing twins.
"""

from __future__ import annotations

from dataclasses import dataclass

from ir_measures import Qrel, ScoredDoc

__all__ = [
    "Document",
    "FilterVerdict",
    "Qrel",
    "Qrels",
    "Query",
    "Run",
    "ScoredDoc",
    "SyntheticQuery",
    "Triple",
]


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


@dataclass(frozen=True, slots=True)
class SyntheticQuery:
    """One LLM-written query for one document (a row of ``queries.jsonl`` from generation)."""

    query_id: str
    doc_id: str
    text: str
    raw_output: str
    prompt_id: str
    prompt_hash: str
    backend: str
    model: str
    seed: int
    mean_logprob: float | None = None
    sum_logprob: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0


@dataclass(frozen=True, slots=True)
class FilterVerdict:
    """Whether one synthetic query survived a filter, and why not when it did not."""

    query_id: str
    filter: str
    kept: bool
    reason: str = ""
    value: float | None = None


@dataclass(frozen=True, slots=True)
class Triple:
    """A training example: a query, one positive and one negative document, and where the
    negative came from (``bm25`` with its rank and window, or ``random``)."""

    query_id: str
    query_text: str
    pos_doc_id: str
    neg_doc_id: str
    neg_source: str
    neg_rank: int | None = None
    window: tuple[int, int] | None = None
    teacher_pos_score: float | None = None
    teacher_neg_score: float | None = None
    #: Weights fingerprint of the teacher that wrote the teacher scores (the false-negative guard
    #: of negative mining), so training can refuse a teacher that is the model being trained.
    teacher_fingerprint: str | None = None
