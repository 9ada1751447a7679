"""P9 — only hard negatives and deep reranking: a model that never saw easy negatives promotes
junk when it reranks 1,000 BM25 documents instead of 100.

Read from the summary: the variant's fine-tuned rows at its rerank depths (nDCG@10 per query
from ``per_query.tsv``, compared on the queries both depths were evaluated on), the share of
their top 10 that came from BM25 beyond rank 100 (``top10_from_bm25_beyond_100``), the base
model's rows at the same depths (does the base lose depth too?), and the triples the model was
trained on (``neg_source`` / ``neg_rank`` of each negative, the triples stage's ``random`` and
``window`` settings).
"""

from __future__ import annotations

from typing import Any

from inpars_core.diagnosis.context import (
    MissingEvidenceError,
    VariantContext,
    page_link,
    row_label,
)
from inpars_core.diagnosis.findings import Finding
from inpars_core.diagnosis.registry import check
from inpars_core.experiments.summary import DEEP_FIELD, DEEP_RANK

MEASURE = "nDCG@10"
#: nDCG@10 lost going deeper that counts as a loss: below it, 50-query test sets cannot tell
#: it from noise (pitfalls note, P12: ±0.03 between runs), and the seed's own P9 loss was 0.003.
DEPTH_LOSS = 0.01
#: Share of the deep top 10 from BM25 beyond rank 100 that shows the model promoting documents
#: BM25 placed far down (one in ten of the top 10).
DEEP_SHARE_WARN = 0.10
#: The fix: mix in easy (random) negatives and rerank the depth the model was trained for.
RANDOM_NEGATIVES = 1
MAX_IDS = 10


def _depth(row: dict[str, Any]) -> int | None:
    depth = row.get("depth")
    return int(depth) if isinstance(depth, int | float) else None


def _mean_delta(
    ctx: VariantContext, shallow: dict[str, Any], deep: dict[str, Any]
) -> tuple[float, list[tuple[float, str]]] | None:
    """Mean nDCG@10 of ``deep`` minus ``shallow`` on the queries both were evaluated on, and
    each such query's delta; None without per-query values."""
    try:
        a, b = ctx.per_query(shallow, MEASURE), ctx.per_query(deep, MEASURE)
    except MissingEvidenceError:
        return None
    common = sorted(set(a) & set(b))
    if not common:
        return None
    deltas = [(b[q] - a[q], q) for q in common]
    return sum(d for d, _ in deltas) / len(deltas), sorted(deltas)


def negative_mix(ctx: VariantContext, row: dict[str, Any]) -> dict[str, Any]:
    """How the training negatives were drawn: the share of random ones and of ones from BM25
    beyond rank 100 (``easy``), and the triples stage's ``random`` / ``window`` settings."""
    config = ctx.meta(row, ctx.triples_stage(row)).get("config", {})
    triples = ctx.stage_jsonl(row, ctx.triples_stage(row), "triples.jsonl")
    if not triples:
        raise MissingEvidenceError("the triples the model was trained on are empty")
    random = sum(t.get("neg_source") == "random" for t in triples)
    deep = sum(
        t.get("neg_source") != "random" and (t.get("neg_rank") or 0) > DEEP_RANK for t in triples
    )
    window = config.get("window")
    return {
        "negatives": len(triples),
        "random_negative_share": round(random / len(triples), 4),
        "negatives_beyond_100_share": round(deep / len(triples), 4),
        "random_negatives_setting": config.get("random_negatives"),
        "window": "" if window is None else f"{window[0]}:{window[1]}",
        "easy": random + deep > 0,
    }


@check("P9", "hard negatives and deep reranking")
def depth(ctx: VariantContext) -> Finding:
    """``fail`` when the fine-tuned model, trained on no easy negative, loses at least
    :data:`DEPTH_LOSS` nDCG@10 reranking its deepest depth instead of its shallowest, and loses
    more than the base model does there; ``warn`` for such a loss with easy negatives or no base
    to compare, or (one deep depth only) when at least :data:`DEEP_SHARE_WARN` of its top 10
    came from BM25 beyond rank 100 with no easy negative trained on; ``ok`` otherwise; ``n/a``
    when the variant reranks one depth of at most 100."""
    rows = [row for row in ctx.tuned_rows() if _depth(row) is not None]
    if rows:  # the depths of one model (a label-free variant has two: with and w/o consistency)
        model = rows[0]["stages"].get(ctx.training_stage(rows[0]))
        rows = [row for row in rows if row["stages"].get(ctx.training_stage(row)) == model]
    if not rows:
        raise MissingEvidenceError(f"variant {ctx.variant!r} has no reranked fine-tuned row")
    shallow, deep = rows[0], rows[-1]
    if len(rows) == 1 and _depth(deep) <= DEEP_RANK:  # type: ignore[operator]
        raise MissingEvidenceError(
            f"the variant reranks at one depth ({_depth(deep)}) of at most {DEEP_RANK}: no "
            f"deeper list to compare (add a depth, e.g. rerank.depths = [{DEEP_RANK}, 1000])"
        )
    mix = negative_mix(ctx, deep)
    share = deep.get(DEEP_FIELD)
    evidence: dict[str, Any] = {
        "depths": ", ".join(str(_depth(r)) for r in rows),
        f"top10_from_bm25_beyond_{DEEP_RANK}": share,
        **{k: v for k, v in mix.items() if k != "easy"},
    }
    try:
        base_deep = ctx.base_row(deep)
        evidence[f"base_top10_from_bm25_beyond_{DEEP_RANK}"] = base_deep.get(DEEP_FIELD)
    except MissingEvidenceError:
        base_deep = None
    fix = {"negatives.random": RANDOM_NEGATIVES, "rerank.depths": [_depth(shallow)]}
    if len(rows) == 1:  # one deep depth: only the share of its top 10 from deep BM25 ranks
        fix["rerank.depths"] = [DEEP_RANK]
        verdict = (
            "warn" if share is not None and share >= DEEP_SHARE_WARN and not mix["easy"] else "ok"
        )
        shown = f"{share:.0%}" if share is not None else "an unknown share"
        return Finding(
            "P9",
            "hard negatives and deep reranking",
            verdict,
            f"Reranking only at depth {_depth(deep)}: {shown} of the top 10 came from BM25 "
            f"beyond rank {DEEP_RANK}"
            + ("" if mix["easy"] else ", and the model saw no easy (random) negative")
            + (
                "; rerank a second depth to measure what depth costs." if verdict == "warn" else "."
            ),
            evidence,
            fix=fix if verdict == "warn" else {},
            expected="nDCG@10 at the shallow depth at least that of the deep one"
            if verdict == "warn"
            else "",
            page=page_link("per-query", b=row_label(deep)),
        )
    measured = _mean_delta(ctx, shallow, deep)
    if measured is None:
        raise MissingEvidenceError(
            f"per_query.tsv has no {MEASURE} of {row_label(shallow)!r} and {row_label(deep)!r} "
            "on common queries"
        )
    delta, per_query = measured
    evidence[f"delta_{MEASURE}_deep_minus_shallow"] = round(delta, 4)
    evidence["compared_queries"] = len(per_query)
    base_delta = None
    if base_deep is not None:
        try:
            base_measured = _mean_delta(ctx, ctx.base_row(shallow), base_deep)
        except MissingEvidenceError:
            base_measured = None
        if base_measured is not None:
            base_delta = base_measured[0]
            evidence[f"base_delta_{MEASURE}_deep_minus_shallow"] = round(base_delta, 4)
    losses = [q for d, q in per_query if d < 0][:MAX_IDS]
    loses = delta <= -DEPTH_LOSS
    worse_than_base = base_delta is None or delta < base_delta - DEPTH_LOSS
    page = page_link(
        "per-query", a=row_label(shallow), b=row_label(deep), query=losses[0] if losses else None
    )
    story = (
        f"Reranking {_depth(deep)} instead of {_depth(shallow)} changes {MEASURE} by "
        f"{delta:+.4f} on {len(per_query)} queries"
        + ("" if base_delta is None else f" (the base model: {base_delta:+.4f})")
    )
    if loses and not mix["easy"] and worse_than_base:
        return Finding(
            "P9",
            "hard negatives and deep reranking",
            "fail",
            f"{story}; the model was trained on hard BM25 negatives only (window "
            f"{mix['window']}, no random one) and promotes documents BM25 ranked low.",
            evidence,
            tuple(losses),
            fix,
            f"{MEASURE} at depth {_depth(deep)} up toward depth {_depth(shallow)}'s; rerank "
            f"{_depth(shallow)} meanwhile",
            page,
        )
    if loses:
        why = (
            "with easy negatives in training: another cause, or noise"
            if mix["easy"]
            else "no more than the base model loses"
        )
        return Finding(
            "P9",
            "hard negatives and deep reranking",
            "warn",
            f"{story}: a loss, {why}.",
            evidence,
            tuple(losses),
            {"rerank.depths": [_depth(shallow)]},
            f"{MEASURE} of the deep row no lower than the shallow one's",
            page,
        )
    return Finding(
        "P9",
        "hard negatives and deep reranking",
        "ok",
        f"{story}: depth costs nothing beyond {DEPTH_LOSS} nDCG@10.",
        evidence,
        tuple(losses),
        page=page,
    )
