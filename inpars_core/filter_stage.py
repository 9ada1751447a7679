"""The filtering stage: run the chosen filters over a synthetic query file, keep the survivors.

Every filter sees every query (so the report says what fraction each filter alone drops); a query
is kept when every filter keeps it. Dropped queries and the verdicts that dropped them are written
beside the kept file for inspection (dashboard, ``inpars filter`` summary).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from inpars_core import filtering
from inpars_core.artifacts import StageMeta, atomic_text, finish_meta, sidecar_meta_path
from inpars_core.records import Document, FilterVerdict, Query, SyntheticQuery

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilterConfig:
    """Which filters run and their parameters (None switches a filter off)."""

    top_fraction: float | None = None
    top_k: int | None = None
    round_trip_k: int | None = None
    near_duplicate_jaccard: float | None = 0.9
    min_words: int | None = 3
    max_words: int | None = 40
    max_document_overlap: float | None = 0.8
    example_copy_jaccard: float | None = 0.8


def source_ranks(queries: Sequence[SyntheticQuery], retriever, k: int) -> dict[str, int | None]:
    """1-based rank of each query's source document in the retriever's top ``k`` (or None)."""
    run = retriever.retrieve({q.query_id: Query(q.query_id, q.text) for q in queries if q.text}, k)
    ranks: dict[str, int | None] = {}
    for query in queries:
        ranking = [d.doc_id for d in run.get(query.query_id, [])]
        ranks[query.query_id] = ranking.index(query.doc_id) + 1 if query.doc_id in ranking else None
    return ranks


def run_filters(
    queries: Sequence[SyntheticQuery],
    config: FilterConfig,
    *,
    documents: Mapping[str, Document] | None = None,
    example_queries: Sequence[str] = (),
    ranks: Mapping[str, int | None] | None = None,
) -> tuple[list[SyntheticQuery], dict[str, list[FilterVerdict]], dict[str, int]]:
    """Apply the configured filters; returns kept queries, dropping verdicts, drops per filter."""
    verdicts = filter_verdicts(
        queries, config, documents=documents, example_queries=example_queries, ranks=ranks
    )
    kept, dropped = filtering.combine(queries, verdicts)
    per_filter = {(v[0].filter if v else "?"): sum(not x.kept for x in v) for v in verdicts}
    return kept, dropped, per_filter


def filter_verdicts(
    queries: Sequence[SyntheticQuery],
    config: FilterConfig,
    *,
    documents: Mapping[str, Document] | None = None,
    example_queries: Sequence[str] = (),
    ranks: Mapping[str, int | None] | None = None,
) -> list[list[FilterVerdict]]:
    """Every configured filter's verdict on every query (kept ones too, with the measured
    value), one list per filter in query order."""
    verdicts: list[list[FilterVerdict]] = []
    if config.min_words is not None or config.max_words is not None:
        verdicts.append(
            filtering.by_length(
                queries, min_words=config.min_words or 0, max_words=config.max_words or 10_000
            )
        )
    if config.near_duplicate_jaccard is not None:
        verdicts.append(
            filtering.by_duplicates(queries, near_jaccard=config.near_duplicate_jaccard)
        )
    if config.example_copy_jaccard is not None and example_queries:
        verdicts.append(
            filtering.by_example_copy(
                queries, example_queries, near_jaccard=config.example_copy_jaccard
            )
        )
    if config.max_document_overlap is not None and documents is not None:
        verdicts.append(
            filtering.by_document_copy(queries, documents, max_overlap=config.max_document_overlap)
        )
    if config.round_trip_k is not None and ranks is not None:
        verdicts.append(filtering.by_round_trip(queries, ranks, k=config.round_trip_k))
    if config.top_fraction is not None or config.top_k is not None:
        verdicts.append(
            filtering.by_logprob(queries, top_k=config.top_k, top_fraction=config.top_fraction)
        )
    return verdicts


def verdict_rows(
    queries: Sequence[SyntheticQuery], verdicts: Sequence[Sequence[FilterVerdict]]
) -> list[dict]:
    """One JSON-able row per query: its text, source document, whether every filter kept it,
    and each filter's verdict with the measured value (``verdicts.jsonl``)."""
    rows = []
    for position, query in enumerate(queries):
        mine = [asdict(v[position]) for v in verdicts]
        rows.append(
            {
                "query_id": query.query_id,
                "doc_id": query.doc_id,
                "text": query.text,
                "kept": all(v["kept"] for v in mine),
                "verdicts": mine,
            }
        )
    return rows


def write_filtered(
    kept: Sequence[SyntheticQuery],
    dropped: Mapping[str, list[FilterVerdict]],
    out_path: Path,
    meta: StageMeta,
) -> None:
    """Kept queries to ``out_path``; dropping verdicts to ``<out>.dropped.jsonl``; meta beside."""
    from inpars_core.generation.stage import write_queries

    out_path = Path(out_path)
    write_queries(kept, out_path)
    with atomic_text(out_path.with_name(out_path.name + ".dropped.jsonl")) as handle:
        for query_id, reasons in dropped.items():
            handle.write(
                json.dumps({"query_id": query_id, "verdicts": [asdict(v) for v in reasons]}) + "\n"
            )
    finish_meta(meta, sidecar_meta_path(out_path))
