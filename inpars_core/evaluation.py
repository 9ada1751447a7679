"""Evaluation with ir-measures: aggregate and per-query values (written by
:mod:`inpars_core.stages.evaluate`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import ir_measures

from inpars_core.errors import ConfigError
from inpars_core.records import Qrel, Qrels, Run
from inpars_core.runs import untied_run

logger = logging.getLogger(__name__)


def parse_measures(names: Sequence[str]) -> list[ir_measures.Measure]:
    """Parse measure strings such as ``nDCG@10``; a bad one names itself and the fix."""
    measures = []
    for name in names:
        try:
            measures.append(ir_measures.parse_measure(name))
        except (ValueError, NameError, SyntaxError, TypeError) as exc:
            raise ConfigError(
                f"measure {name!r} is not an ir-measures measure ({exc}); "
                "examples: nDCG@10, RR@10, R@100, AP, P@5"
            ) from None
    return measures


def qrels_records(qrels: Qrels) -> list[Qrel]:
    """Qrels as ir-measures records."""
    return [Qrel(q, d, rel) for q, judged in qrels.items() for d, rel in judged.items()]


@dataclass(frozen=True)
class Evaluation:
    """Aggregate and per-query values of some measures for one run."""

    measures: tuple[str, ...]
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]  # query_id -> measure -> value

    def values(self, measure: str) -> dict[str, float]:
        """Per-query values of one measure."""
        return {q: values[measure] for q, values in self.per_query.items()}


def evaluate(run: Run, qrels: Qrels, measures: Sequence[str]) -> Evaluation:
    """Evaluate ``run`` on ``qrels``.

    Like ``trec_eval -c``: a judged query (with at least one relevant document) that the run
    does not answer counts as 0, and the aggregate is the mean over judged queries. Queries the
    qrels do not judge are ignored.

    Every measure sees one and the same order: the run's :func:`~inpars_core.runs.sort_ranking`
    order (score descending, ties by doc id ascending; each document once), the order
    ``write_trec_run`` writes and the dashboard shows. The scores handed to ir-measures are
    rank-based and strictly decreasing (:func:`~inpars_core.runs.untied_run`), so no provider
    applies its own tie-breaking (pytrec_eval's is doc id descending).
    """
    parsed = parse_measures(measures)
    names = tuple(str(m) for m in parsed)
    judged = [q for q, docs in qrels.items() if any(rel > 0 for rel in docs.values())]
    per_query: dict[str, dict[str, float]] = {q: {} for q in judged}
    untied = untied_run({q: run[q] for q in judged if q in run})
    scored = [doc for docs in untied.values() for doc in docs]
    for metric in ir_measures.iter_calc(parsed, qrels_records(qrels), scored):
        if metric.query_id in per_query:
            per_query[metric.query_id][str(metric.measure)] = float(metric.value)
    missing = [q for q in judged if q not in run or not run[q]]
    if missing:
        logger.warning(
            "%d judged queries have no ranking in the run; they count as 0", len(missing)
        )
    for values in per_query.values():
        for name in names:
            values.setdefault(name, 0.0)
    aggregate = {
        name: (sum(v[name] for v in per_query.values()) / len(per_query) if per_query else 0.0)
        for name in names
    }
    return Evaluation(measures=names, aggregate=aggregate, per_query=per_query)
