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


def _unique(docs: Iterable[ScoredDoc]) -> list[ScoredDoc]:
    """``docs`` in :func:`sort_ranking` order, each document once (its best-scored line)."""
    seen: set[str] = set()
    unique = []
    for doc in sort_ranking(docs):
        if doc.doc_id not in seen:
            seen.add(doc.doc_id)
            unique.append(doc)
    return unique


def _below(floor: float, position: int) -> float:
    """The score of the ``position``-th tail document under ``floor``: ``floor - position``, with
    a step large enough to stay distinct for huge floors."""
    step = max(1.0, abs(floor) * 1e-9)
    return floor - position * step


def with_first_stage_tail(head: Run, first_stage: Run, depth: int) -> Run:
    """The ranking as shown: ``head`` (the reranked top ``depth``), then the first stage's
    documents below ``depth`` in their first-stage order.

    Tail scores are ``min(head) - 1, min(head) - 2, ...`` so the whole list stays sorted by
    score and every measure (R@100, R@1000 of a depth-20 rerank) sees the whole list. Every
    document appears once: duplicates in ``head`` or ``first_stage`` keep their best line, and
    documents already in the head are not repeated. Queries absent from ``head`` are left out.
    This is the one tail helper of every reranker (cross-encoder and dense).
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    shown: Run = {}
    for query_id, docs in head.items():
        ranked = _unique(docs)
        seen = {d.doc_id for d in ranked}
        floor = ranked[-1].score if ranked else 0.0
        below = [d for d in _unique(first_stage.get(query_id, []))[depth:] if d.doc_id not in seen]
        tail = [
            ScoredDoc(query_id, d.doc_id, _below(floor, position))
            for position, d in enumerate(below, start=1)
        ]
        shown[query_id] = ranked + tail
    return shown


def check_bm25_weight(weight: object, what: str) -> None:
    """Raise ValueError unless ``weight`` is a number in [0, 1] (the first stage's share in an
    interpolation; 0 = the pure model). ``what`` starts the message."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
        raise ValueError(
            f"{what}: bm25_weight must be a number in [0, 1] (0 = the pure model), got {weight!r}"
        )


def interpolate_with_first_stage(reranked: Run, first_stage: Run, bm25_weight: float) -> Run:
    """``(1 - bm25_weight) * minmax(reranker) + bm25_weight * minmax(first stage)`` per query.

    Only the documents of ``reranked`` are fused (pass the reranked head); ``bm25_weight = 0``
    is the pure reranker, 1 the pure first stage. Min-max is taken over the fused documents of
    each query; a document missing from the first stage gets its normalised score 0.
    """
    check_bm25_weight(bm25_weight, "interpolation")

    def norm(values: dict[str, float]) -> dict[str, float]:
        low, high = min(values.values()), max(values.values())
        return {k: (v - low) / (high - low or 1.0) for k, v in values.items()}

    fused: Run = {}
    for query_id, docs in reranked.items():
        if not docs:
            fused[query_id] = []
            continue
        model = norm({d.doc_id: d.score for d in docs})
        first = {d.doc_id: d.score for d in first_stage.get(query_id, []) if d.doc_id in model}
        bm = norm(first) if first else {}
        fused[query_id] = sort_ranking(
            ScoredDoc(
                query_id,
                doc_id,
                (1.0 - bm25_weight) * model[doc_id] + bm25_weight * bm.get(doc_id, 0.0),
            )
            for doc_id in model
        )
    return fused


def normalise_run(run: Run) -> Run:
    """Sort every ranking deterministically and drop duplicate documents (first kept)."""
    return {query_id: _unique(docs) for query_id, docs in run.items()}


def untied_run(run: Run) -> Run:
    """``run`` in :func:`sort_ranking` order, each document once, with the scores replaced by
    ``n, n - 1, ..., 1`` (``n`` documents in the ranking): no ties are left, so every consumer
    (pytrec_eval, other ir-measures providers) sees exactly the order the run file shows,
    whatever its own tie-breaking rule is."""
    untied: Run = {}
    for query_id, docs in run.items():
        unique = _unique(docs)
        untied[query_id] = [
            ScoredDoc(query_id, d.doc_id, float(len(unique) - i)) for i, d in enumerate(unique)
        ]
    return untied


def _score_texts(ranked: list[ScoredDoc]) -> list[str]:
    """Scores as written: ``%.6f``, unless two different adjacent scores would print alike
    (then the whole ranking is written with round-trip precision), so that reading the file
    back yields the very order written."""
    short = [f"{d.score:.6f}" for d in ranked]
    collide = any(
        short[i] == short[i + 1] and ranked[i].score != ranked[i + 1].score
        for i in range(len(ranked) - 1)
    )
    return [repr(float(d.score)) for d in ranked] if collide else short


def write_trec_run(run: Run, path: Path, tag: str = "inpars") -> None:
    """Write ``run`` in TREC format, rankings sorted deterministically, atomically.

    A ranking listing a document twice is a bug of its producer: ValueError, nothing written.
    Scores are written with 6 decimals unless that would turn two different scores of one
    ranking into a tie (then with full precision): :func:`read_trec_run` gives back the order
    written, rank column and all.
    """
    for query_id, docs in run.items():
        if len({d.doc_id for d in docs}) != len(docs):
            raise ValueError(f"run for {path}: query {query_id!r} lists a document twice")
    with atomic_text(Path(path)) as handle:
        for query_id in run:
            ranked = sort_ranking(run[query_id])
            for rank, (doc, score) in enumerate(
                zip(ranked, _score_texts(ranked), strict=True), start=1
            ):
                handle.write(f"{query_id} Q0 {doc.doc_id} {rank} {score} {tag}\n")


def read_trec_run(path: Path) -> Run:
    """Read a TREC run file (``query_id Q0 doc_id rank score tag``), sorted by score.

    Every (query, document) pair appears once: a second line for a pair is refused, naming
    both lines and their scores (as ``trec_eval`` refuses duplicate documents), since no
    choice of one of the two scores is right for every run. A file that is a folder, missing
    or not UTF-8 is refused too (:func:`inpars_core.textio.read_lines`).
    """
    from inpars_core.textio import read_lines

    path = Path(path)
    run: Run = {}
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    lines = read_lines(path, "a TREC run", "give the run.trec of a run artifact (or its folder)")
    for number, line in lines:
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
        pair = (parts[0], parts[2])
        if pair in seen:
            first, first_score = seen[pair]
            raise InputFormatError(
                path,
                f"document {parts[2]!r} of query {parts[0]!r} appears twice: line {first} "
                f"(score {first_score}) and line {number} (score {parts[4]})",
                line=number,
                field="doc_id",
                fix="keep one line per (query, document): delete the line whose score is wrong",
            )
        seen[pair] = (number, parts[4])
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


def share_from_deep_ranks(
    run: Run, first_stage: Run, top: int = 10, beyond: int = 100
) -> float | None:
    """The share of ``run``'s top ``top`` documents, over all its queries, whose rank in
    ``first_stage`` (1-based, :func:`sort_ranking` order) is above ``beyond``: pitfall P9's
    statistic (a reranker that never saw easy negatives promotes junk from deep in the list).

    A document ``first_stage`` does not rank for that query counts as deep. A query with fewer
    than ``top`` documents counts those it has. None when ``run`` has no documents.
    """
    if top < 1 or beyond < 1:
        raise ValueError(f"top and beyond must be at least 1, got {top} and {beyond}")
    shown = deep = 0
    for query_id, docs in run.items():
        ranks = {
            doc.doc_id: rank
            for rank, doc in enumerate(sort_ranking(first_stage.get(query_id, [])), start=1)
        }
        for doc in sort_ranking(docs)[:top]:
            shown += 1
            deep += ranks.get(doc.doc_id, beyond + 1) > beyond
    return deep / shown if shown else None
