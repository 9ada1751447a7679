"""P8 — noisy synthetic queries: what the filters dropped, how tied the kept queries are to
their document, and whether the model was trained on copies, duplicates or dropped queries.

Everything is read from the variant's filter stage (``meta.json`` counts and config,
``verdicts.jsonl``: every filter's verdict on every generated query with its measured value),
its triples (the query ids the model was trained on) and, for the prompt's few-shot examples,
the generate stage's ``prompt.json``. Copies of examples and duplicates among the trained
queries are measured again with the filters' own functions (:mod:`inpars_core.filtering`), at
the thresholds the experiment set or the filter's defaults when it switched them off, so a
config with the filters off is measured the same way as one with them on.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

from inpars_core.diagnosis.context import MissingEvidenceError, VariantContext, page_link
from inpars_core.diagnosis.findings import Finding
from inpars_core.diagnosis.registry import check

#: Share of the trained synthetic queries that are copies of a prompt example or duplicates of
#: another trained query at or above which P8 fails: one query in ten trained on a text that
#: says nothing about its document (InPars keeps the top 10 %, so noise on this scale is what
#: the filters exist to remove).
NOISY_SHARE_FAIL = 0.10
#: Share of generated queries the filters dropped above which the generator itself is noisy.
DROPPED_SHARE_WARN = 0.5
#: Median round-trip rank (BM25 rank of the source document for the query) of the kept queries
#: above which they are only loosely tied to their documents (InPars-v2 and Promptagator keep
#: queries whose document is in a small top-k).
ROUND_TRIP_MEDIAN_WARN = 10
#: Filters that judge whether a query matches its document (not only its form).
RELEVANCE_FILTERS = ("round-trip", "logprob", "reranker", "consistency")
#: The filter settings that switch each relevance filter on, for the fix.
_RELEVANCE_SETTINGS = ("round_trip_k", "top_fraction", "top_k", "reranker_model", "consistency_k")
#: The fix's settings (the filter's defaults, the round trip at InPars-v2's BM25 depth).
FIX = {
    "filters.near_duplicate_jaccard": 0.9,
    "filters.example_copy_jaccard": 0.8,
    "filters.round_trip_k": 100,
}
MAX_IDS = 10


@dataclass(frozen=True)
class _Query:
    """What the filter functions read from a query."""

    query_id: str
    text: str


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def generation_label(ctx: VariantContext, row: dict[str, Any]) -> str | None:
    """The Synthetic page's name of the query set ``row`` was trained on (``gen``): the variants
    of the rows sharing its generate stage, in row order (as the dashboard lists them)."""
    stage = row.get("stages", {}).get("generate")
    names: list[str] = []
    for other in ctx.rows:
        if other.get("stages", {}).get("generate") != stage:
            continue
        for name in [other.get("variant"), *(other.get("variants") or [])]:
            if name and str(name) not in names:
                names.append(str(name))
    return ", ".join(names) or None


def example_queries(ctx: VariantContext, row: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """The prompt's few-shot example queries: the filter's record, else the generate stage's
    ``prompt.json`` (none when neither names them)."""
    recorded = meta.get("inputs", {}).get("example_queries")
    if recorded:
        return list(recorded)
    try:
        prompt = ctx.stage_dir(row, "generate") / "prompt.json"
    except MissingEvidenceError:
        return []
    if not prompt.is_file():
        return []
    return list(json.loads(prompt.read_text(encoding="utf-8")).get("example_queries") or [])


def _threshold(config: dict[str, Any], key: str, default: float) -> float:
    value = config.get(key)
    return float(value) if isinstance(value, int | float) else default


@check("P8", "noisy synthetic queries")
def noisy_queries(ctx: VariantContext) -> Finding:
    """``fail`` when the model was trained on queries a filter dropped, or when at least
    :data:`NOISY_SHARE_FAIL` of its synthetic training queries copy a prompt example or
    duplicate another; ``warn`` for fewer such copies, no filter judging relevance, more than
    half of the generated queries dropped, or kept queries loosely tied to their document
    (median round-trip rank above :data:`ROUND_TRIP_MEDIAN_WARN`); ``ok`` otherwise."""
    from inpars_core import filtering

    tuned = ctx.tuned_row()
    meta = ctx.meta(tuned, "filter")
    records = {r["query_id"]: r for r in ctx.stage_jsonl(tuned, "filter", "verdicts.jsonl")}
    if not records:
        raise MissingEvidenceError("the filter stage's verdicts.jsonl holds no query")
    triples = ctx.stage_jsonl(tuned, ctx.triples_stage(tuned), "triples.jsonl")
    trained_ids = list(dict.fromkeys(t["query_id"] for t in triples if t["query_id"] in records))
    if not trained_ids:
        raise MissingEvidenceError(
            "no query of the filter stage's verdicts.jsonl is in the triples the model was "
            "trained on"
        )
    config = dict(meta.get("config", {}))
    counts = meta.get("counts", {})
    generated = int(counts.get("queries", len(records)))
    dropped_by = {k: int(v) for k, v in (counts.get("dropped_by") or {}).items()}
    ran = sorted({v["filter"] for r in records.values() for v in r.get("verdicts", [])})
    dropped_ids = [q for q, r in records.items() if not r.get("kept", True)]
    trained_dropped = [q for q in trained_ids if not records[q].get("kept", True)]

    trained = [_Query(q, str(records[q].get("text", ""))) for q in trained_ids]
    examples = example_queries(ctx, tuned, meta)
    defaults = {"example_copy_jaccard": 0.8, "near_duplicate_jaccard": 0.9}
    copy_at = _threshold(config, "example_copy_jaccard", defaults["example_copy_jaccard"])
    duplicate_at = _threshold(config, "near_duplicate_jaccard", defaults["near_duplicate_jaccard"])
    copies = (
        [
            v.query_id
            for v in filtering.by_example_copy(trained, examples, near_jaccard=copy_at)
            if not v.kept
        ]
        if examples
        else []
    )
    duplicates = [
        v.query_id
        for v in filtering.by_duplicates(trained, near_jaccard=duplicate_at)
        if not v.kept
    ]
    noisy = list(dict.fromkeys(copies + duplicates))
    noisy_share = _share(len(noisy), len(trained_ids))

    kept_ranks = []
    for query_id, record in records.items():
        if not record.get("kept", True):
            continue
        for verdict in record.get("verdicts", []):
            if verdict["filter"] == "round-trip" and verdict.get("value") is not None:
                kept_ranks.append((float(verdict["value"]), query_id))
    median_rank = statistics.median(r for r, _ in kept_ranks) if kept_ranks else None
    relevance = [name for name in RELEVANCE_FILTERS if name in ran]

    evidence: dict[str, Any] = {
        "trained_queries": len(trained_ids),
        "trained_noisy_share": noisy_share,
        "trained_on_dropped": len(trained_dropped),
        "dropped_share": _share(len(dropped_ids), generated),
        "trained_example_copies": len(copies),
        "trained_duplicates": len(duplicates),
        "generated": generated,
        "kept": int(counts.get("kept", generated - len(dropped_ids))),
        **{f"dropped_by_{name}": _share(n, generated) for name, n in dropped_by.items()},
        "prompt_examples": len(examples),
        "filters_ran": ", ".join(ran) or "none",
        "kept_round_trip_median_rank": median_rank,
        "kept_round_trip_beyond_10": (
            _share(sum(r > 10 for r, _ in kept_ranks), len(kept_ranks)) if kept_ranks else None
        ),
    }
    fix = {k: v for k, v in FIX.items() if config.get(k.split(".", 1)[1]) is None}
    if "filters.round_trip_k" in fix and any(
        config.get(k) is not None for k in _RELEVANCE_SETTINGS
    ):
        del fix["filters.round_trip_k"]  # another relevance filter is on
    gen = generation_label(ctx, tuned)
    loose = sorted(kept_ranks, reverse=True)
    expected = (
        "fewer, cleaner training queries: the fine-tuned row's nDCG@10 up (or no longer below "
        "the base)"
    )

    if trained_dropped or noisy_share >= NOISY_SHARE_FAIL:
        parts = []
        if trained_dropped:
            parts.append(f"{len(trained_dropped)} queries the filters dropped")
        if noisy:
            parts.append(
                f"{len(noisy)} of {len(trained_ids)} ({noisy_share:.0%}) that copy a prompt "
                f"example ({len(copies)}) or duplicate another query ({len(duplicates)})"
            )
        off = ", ".join(k for k in fix) or "none"
        return Finding(
            "P8",
            "noisy synthetic queries",
            "fail",
            f"The model was trained on {' and on '.join(parts)}; filters switched off: {off}.",
            evidence,
            tuple((trained_dropped + noisy)[:MAX_IDS]),
            fix or dict(FIX),
            expected,
            page_link(
                "synthetic",
                gen=gen,
                verdict="dropped" if trained_dropped else None,
                q=(trained_dropped + noisy)[0],
            ),
        )
    reasons = []
    if noisy:
        reasons.append(
            f"{len(noisy)} of {len(trained_ids)} training queries copy a prompt example or "
            "duplicate another"
        )
    if not relevance:
        reasons.append(
            "no filter checked that a query matches its document (round trip, log-prob, "
            "reranker or consistency)"
        )
    if evidence["dropped_share"] > DROPPED_SHARE_WARN:
        reasons.append(
            f"the filters dropped {evidence['dropped_share']:.0%} of the generated queries "
            "(a noisy generator: the model learns from what is left)"
        )
    if median_rank is not None and median_rank > ROUND_TRIP_MEDIAN_WARN:
        reasons.append(
            f"the kept queries find their document at a median BM25 rank of {median_rank:g}"
        )
    if reasons:
        shown = noisy or [q for _, q in loose] or dropped_ids
        return Finding(
            "P8",
            "noisy synthetic queries",
            "warn",
            _sentence("; ".join(reasons)),
            evidence,
            tuple(shown[:MAX_IDS]),
            fix,
            expected if fix else "",
            page_link(
                "synthetic",
                gen=gen,
                verdict="kept" if noisy or loose else "dropped",
                q=shown[0] if shown else None,
            ),
        )
    return Finding(
        "P8",
        "noisy synthetic queries",
        "ok",
        f"The model was trained on {len(trained_ids)} filtered queries with no copy of a prompt "
        f"example and no duplicate; the filters dropped {evidence['dropped_share']:.0%} of "
        f"{generated} generated.",
        evidence,
        tuple(q for _, q in loose[:MAX_IDS]),
        page=page_link("synthetic", gen=gen, verdict="dropped"),
    )
