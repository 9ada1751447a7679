"""The exact head: a fast precision's ranking whose top ``k`` is rescored in fp32.

bf16, fp16 or ONNX int8 scores differ from fp32 by a small error; where a reranker's scores are
close together, that error swaps neighbours and moves nDCG@10 (bf16 moved it by ~0.009 on 100
SciFact claims here, with scores within 0.015 of fp32). :func:`exact_head` keeps the fast
precision's speed on the bulk of the pairs and makes the head exact: every pair whose fast score
is within ``2 * margin`` of its query's ``k``-th fast score is rescored in fp32.

Why the top ``k`` is then fp32's own: let ``s`` be a query's ``k``-th fast score and suppose no
pair's fast score is off by more than ``margin``. Each of the ``k`` fast-best pairs has an fp32
score >= ``s - margin``, so fp32's ``k`` best all score >= ``s - margin``; a pair left unrescored
has a fast score < ``s - 2 * margin``, hence an fp32 score < ``s - margin``: fp32's ``k`` best are
all among the rescored pairs, which are ordered by their fp32 scores, and an unrescored pair's
fast score (< ``s - 2 * margin``) ranks below them. So the top ``k`` and its order equal fp32's.

The margin calibrates itself from the errors it sees: the first round rescores each query's
fast top ``k``; the margin becomes ``safety`` times the largest |fp32 - fast| observed, the pairs
it newly covers are rescored, and so on until the observed errors fit (``safety`` times the
largest one is within the margin). The premise, that the pairs left unrescored err no more than
those rescored, is an empirical one: the tests and ``benchmarks/bench_rerank_exact.py`` check the
result against fp32 on real rankings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: A pair of a ranking: (query id, position in that query's list of fast scores).
Position = tuple[str, int]


@dataclass(frozen=True)
class ExactHeadReport:
    """What :func:`exact_head` rescored: pairs, rounds, the final margin and the largest
    |fp32 - fast| error seen on a rescored pair."""

    rescored: int
    rounds: int
    margin: float
    max_error: float


def exact_head(
    fast: Mapping[str, Sequence[float]],
    rescore: Callable[[list[Position]], Sequence[float]],
    top: int,
    safety: float = 2.0,
) -> tuple[dict[str, list[float]], ExactHeadReport]:
    """Each query's scores with its head rescored in fp32 (see the module docstring).

    ``fast``: query id -> the fast precision's score of each of its pairs. ``rescore``: the fp32
    scores of the given positions, in their order. ``top``: the ``k`` whose ranking must be
    exact (a query with at most ``top`` pairs is rescored whole). Returns the merged scores (fp32
    where rescored, fast elsewhere), in ``fast``'s order, and an :class:`ExactHeadReport`.
    """
    if top < 1:
        raise ValueError(f"top: expected an integer >= 1, found {top}")
    if safety < 1:
        raise ValueError(f"safety: expected a number >= 1, found {safety}")
    kth = {
        query_id: sorted(scores, reverse=True)[min(top, len(scores)) - 1]
        for query_id, scores in fast.items()
        if scores
    }
    exact: dict[Position, float] = {}
    margin, max_error, rounds = 0.0, 0.0, 0
    while True:
        wanted = [
            (query_id, i)
            for query_id, scores in fast.items()
            for i, score in enumerate(scores)
            if (query_id, i) not in exact and score >= kth[query_id] - 2 * margin
        ]
        if not wanted:
            break
        rounds += 1
        for position, score in zip(wanted, rescore(wanted), strict=True):
            exact[position] = float(score)
            max_error = max(max_error, abs(float(score) - fast[position[0]][position[1]]))
        if safety * max_error <= margin:
            break
        margin = safety * max_error
    merged = {
        query_id: [exact.get((query_id, i), float(s)) for i, s in enumerate(scores)]
        for query_id, scores in fast.items()
    }
    report = ExactHeadReport(len(exact), rounds, float(margin), float(max_error))
    logger.info(
        "exact head (top %d): %d of %d pairs rescored in fp32 in %d rounds, margin %.3g "
        "(largest fast-vs-fp32 error seen %.3g)",
        top,
        report.rescored,
        sum(len(s) for s in fast.values()),
        rounds,
        margin,
        max_error,
    )
    return merged, report
