"""Fusing runs: reciprocal rank fusion and the sum of min-max normalised scores.

Both are deterministic: each input ranking is first sorted by :func:`~inpars_core.runs.sort_ranking`
(score descending, doc id ascending), contributions are summed with ``math.fsum`` (exactly
rounded, so the result does not depend on the order of the runs), and the fused ranking is sorted
the same way. Queries appear in the order they are first met in the runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from inpars_core.errors import ConfigError
from inpars_core.records import Run, ScoredDoc
from inpars_core.runs import sort_ranking


def _check(runs: Sequence[Run], depth: int) -> None:
    if not runs:
        raise ConfigError("fusion needs at least one run")
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ConfigError(f"depth must be an integer >= 1, got {depth!r}")


def _query_ids(runs: Sequence[Run]) -> list[str]:
    seen: dict[str, None] = {}
    for run in runs:
        for query_id in run:
            seen.setdefault(query_id, None)
    return list(seen)


def _ranking(docs: Sequence[ScoredDoc], depth: int) -> list[ScoredDoc]:
    """Sorted, first occurrence of each document kept, cut to ``depth``."""
    seen: set[str] = set()
    ranking = []
    for doc in sort_ranking(docs):
        if doc.doc_id not in seen:
            seen.add(doc.doc_id)
            ranking.append(doc)
            if len(ranking) == depth:
                break
    return ranking


def _fuse(contributions: dict[str, dict[str, list[float]]], depth: int) -> Run:
    return {
        query_id: sort_ranking(
            ScoredDoc(query_id, doc_id, math.fsum(parts)) for doc_id, parts in docs.items()
        )[:depth]
        for query_id, docs in contributions.items()
    }


def reciprocal_rank_fusion(runs: Sequence[Run], k: int = 60, depth: int = 1000) -> Run:
    """Reciprocal rank fusion (Cormack et al., 2009).

    A document scores ``sum over runs of 1 / (k + rank)``, its rank counted from 1 within each
    run's top ``depth`` (a document listed twice counts once, at its best rank); a run that does
    not hold the document adds nothing. The fused ranking is cut to ``depth``.
    """
    _check(runs, depth)
    if not isinstance(k, int | float) or isinstance(k, bool) or k < 0:
        raise ConfigError(f"rrf k must be a number >= 0, got {k!r}")
    contributions: dict[str, dict[str, list[float]]] = {q: {} for q in _query_ids(runs)}
    for run in runs:
        for query_id, docs in run.items():
            fused = contributions[query_id]
            for rank, doc in enumerate(_ranking(docs, depth), start=1):
                fused.setdefault(doc.doc_id, []).append(1.0 / (k + rank))
    return _fuse(contributions, depth)


def normalised_score_sum(runs: Sequence[Run], depth: int = 1000) -> Run:
    """Sum of min-max normalised scores (CombSUM): within each run's top ``depth`` for a query,
    ``(score - min) / (max - min)`` (1.0 for every document when all scores are equal); a run
    that does not hold the document adds 0. The fused ranking is cut to ``depth``.
    """
    _check(runs, depth)
    contributions: dict[str, dict[str, list[float]]] = {q: {} for q in _query_ids(runs)}
    for run in runs:
        for query_id, docs in run.items():
            ranking = _ranking(docs, depth)
            if not ranking:
                continue
            high, low = ranking[0].score, ranking[-1].score
            span = high - low
            fused = contributions[query_id]
            for doc in ranking:
                value = (doc.score - low) / span if span > 0 else 1.0
                fused.setdefault(doc.doc_id, []).append(value)
    return _fuse(contributions, depth)
