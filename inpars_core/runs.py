"""TREC run files: read, write (atomically, with deterministic order) and cut to a depth."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from pathlib import Path

from inpars_core.artifacts import atomic_text
from inpars_core.errors import InputFormatError
from inpars_core.records import Run, ScoredDoc


def sort_ranking(docs: Iterable[ScoredDoc]) -> list[ScoredDoc]:
    """Order by score descending, then doc id ascending: deterministic under ties."""
    return sorted(docs, key=lambda d: (-d.score, d.doc_id))


def top_k(run: Run, k: int) -> Run:
    """The first ``k`` documents of every query (the one depth helper for all backends)."""
    if k < 1:
        raise ValueError(f"depth must be at least 1, got {k}")
    return {query_id: docs[:k] for query_id, docs in run.items()}


def normalise_run(run: Run) -> Run:
    """Sort every ranking deterministically and drop duplicate documents (first kept)."""
    normalised: Run = {}
    for query_id, docs in run.items():
        seen: set[str] = set()
        unique = []
        for doc in sort_ranking(docs):
            if doc.doc_id not in seen:
                seen.add(doc.doc_id)
                unique.append(doc)
        normalised[query_id] = unique
    return normalised


def write_trec_run(run: Run, path: Path, tag: str = "inpars") -> None:
    """Write ``run`` in TREC format, rankings sorted deterministically, atomically."""
    with atomic_text(Path(path)) as handle:
        for query_id in run:
            for rank, doc in enumerate(sort_ranking(run[query_id]), start=1):
                handle.write(f"{query_id} Q0 {doc.doc_id} {rank} {doc.score:.6f} {tag}\n")


def read_trec_run(path: Path) -> Run:
    """Read a TREC run file (``query_id Q0 doc_id rank score tag``), sorted by score."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(path, "not found", fix="give the path of an existing run file")
    run: Run = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise InputFormatError(
                    path,
                    f"expected 6 columns (query_id Q0 doc_id rank score tag), found {len(parts)}",
                    line=number,
                    fix="write TREC run lines",
                )
            try:
                score = float(parts[4])
            except ValueError:
                score = math.nan
            if math.isnan(score):
                raise InputFormatError(
                    path,
                    f"score {parts[4]!r} is not a number",
                    line=number,
                    field="score",
                    fix="scores must be numbers",
                )
            run.setdefault(parts[0], []).append(ScoredDoc(parts[0], parts[2], score))
    return {query_id: sort_ranking(docs) for query_id, docs in run.items()}


def check_run_texts(
    run: Run,
    queries: Collection[str],
    documents: Collection[str],
    depth: int,
    what: str = "dev run",
) -> None:
    """Every query of ``run`` has a text and so does every document of its top ``depth``."""
    for query_id, docs in run.items():
        if query_id not in queries:
            raise InputFormatError(
                what,
                f"query {query_id!r} has no text in the dev queries",
                field="query_id",
                fix=f"give the text of every query of the {what}",
            )
        for doc in docs[:depth]:
            if doc.doc_id not in documents:
                raise InputFormatError(
                    what,
                    f"document {doc.doc_id!r} (query {query_id!r}) has no text",
                    field="doc_id",
                    fix=f"give the text of every document of the {what}",
                )


def run_size(run: Run) -> int:
    """Number of (query, document) lines in a run."""
    return sum(len(docs) for docs in run.values())
