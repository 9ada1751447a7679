"""P13 — query form: do the synthetic queries the model was trained on look like the queries it
is tested on? A reranker trained on questions ("how does X affect Y") and tested on claims
("X increases Y", SciFact) learns the synthetic task well (its dev nDCG@10 on held-out synthetic
queries rises) and still loses on the test set: the most common reason a label-free model trails
zero-shot baselines when nothing else is wrong.

Label-free: it reads the test queries' *text* (what a user types at test time), never a
relevance label. The trained queries are those of the variant's filter stage that are in its
triples; the test queries those of its row's per-query table.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from inpars_core.diagnosis.checks.queries import generation_label
from inpars_core.diagnosis.context import MissingEvidenceError, VariantContext, page_link
from inpars_core.diagnosis.findings import Finding
from inpars_core.diagnosis.registry import check

#: First words that make a query a question (with a trailing "?").
_QUESTION_WORDS_TEXT = (
    "what how why which when where who whom whose does do did is are was were can could should "
    "would will has have had may might must"
)
QUESTION_WORDS = frozenset(_QUESTION_WORDS_TEXT.split())
#: Difference in the share of questions (synthetic minus test, absolute) from which the forms
#: differ: most of one set are questions and most of the other are not.
QUESTION_GAP_WARN = 0.5
#: Ratio of mean lengths in words (either way) from which the lengths differ.
LENGTH_RATIO_WARN = 2.0
#: The built-in prompt that writes each form (see ``BUILTIN_PROMPTS`` of the prompts module).
PROMPT_FOR_STATEMENTS = "inpars-claim"
PROMPT_FOR_QUESTIONS = "inpars"
MAX_IDS = 5


def is_question(text: str) -> bool:
    """A query phrased as a question: it ends with "?" or starts with a question word."""
    words = text.strip().lower().split()
    return bool(words) and (text.strip().endswith("?") or words[0] in QUESTION_WORDS)


def form_stats(texts: Iterable[str]) -> dict[str, float]:
    """Share of questions and mean length in words of ``texts`` (at least one)."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise MissingEvidenceError("no query text to measure")
    return {
        "questions": round(sum(map(is_question, texts)) / len(texts), 4),
        "mean_words": round(statistics.fmean(len(t.split()) for t in texts), 2),
    }


def trained_queries(ctx: VariantContext, tuned: dict[str, Any]) -> dict[str, str]:
    """Query id → text of the synthetic queries the model was trained on."""
    records = {r["query_id"]: r for r in ctx.stage_jsonl(tuned, "filter", "verdicts.jsonl")}
    triples = ctx.stage_jsonl(tuned, ctx.triples_stage(tuned), "triples.jsonl")
    ids = dict.fromkeys(t["query_id"] for t in triples if t["query_id"] in records)
    if not ids:
        raise MissingEvidenceError("no query of the filter stage is in the model's triples")
    return {q: str(records[q].get("text", "")) for q in ids}


def test_queries(ctx: VariantContext, tuned: dict[str, Any]) -> dict[str, str]:
    """Query id → text of the test queries ``tuned`` was evaluated on (the dataset's texts)."""
    ids = list(ctx.per_query(tuned))
    queries = ctx.dataset().queries
    found = {q: queries[q].text for q in ids if q in queries}
    if not found:
        raise MissingEvidenceError("none of the evaluated test queries is in the dataset")
    return found


@check("P13", "query form vs the test queries")
def query_form(ctx: VariantContext) -> Finding:
    """``warn`` when the trained synthetic queries and the test queries differ in form: the
    share of questions differs by at least :data:`QUESTION_GAP_WARN`, or the mean length by a
    factor of :data:`LENGTH_RATIO_WARN`; ``ok`` otherwise. Never ``fail``: a form gap explains a
    loss, it does not prove one. The fix names the built-in prompt that writes the test
    queries' form."""
    tuned = ctx.tuned_row()
    synthetic = trained_queries(ctx, tuned)
    test = test_queries(ctx, tuned)
    ours, theirs = form_stats(synthetic.values()), form_stats(test.values())
    evidence: dict[str, Any] = {
        "trained_queries": len(synthetic),
        "test_queries": len(test),
        "synthetic_question_share": ours["questions"],
        "test_question_share": theirs["questions"],
        "synthetic_mean_words": ours["mean_words"],
        "test_mean_words": theirs["mean_words"],
        "synthetic_example": next(iter(synthetic.values())),
        "test_example": next(iter(test.values())),
    }
    gap = ours["questions"] - theirs["questions"]
    ratio = max(ours["mean_words"], theirs["mean_words"]) / max(
        min(ours["mean_words"], theirs["mean_words"]), 1e-9
    )
    faults: list[str] = []
    fix: dict[str, Any] = {}
    if abs(gap) >= QUESTION_GAP_WARN:
        faults.append(
            f"{ours['questions']:.0%} of the {len(synthetic)} trained synthetic queries are "
            f"questions, {theirs['questions']:.0%} of the {len(test)} test queries"
        )
        fix["generator.prompt"] = PROMPT_FOR_STATEMENTS if gap > 0 else PROMPT_FOR_QUESTIONS
    if ratio >= LENGTH_RATIO_WARN:
        faults.append(
            f"mean length {ours['mean_words']:.1f} words (synthetic) vs "
            f"{theirs['mean_words']:.1f} (test)"
        )
    gen = generation_label(ctx, tuned)
    page = page_link("synthetic", gen=gen)
    if faults:
        ids = [q for q, t in synthetic.items() if is_question(t) == (gap > 0)][:MAX_IDS]
        return Finding(
            "P13", "query form vs the test queries", "warn",
            "the model learnt another kind of query than it is tested on: "
            + "; ".join(faults)
            + " (label-free evidence: the test queries' text only). "
            + (
                f"Generate in the test queries' form: prompt '{fix['generator.prompt']}'"
                if fix
                else "Write a prompt template whose examples have the test queries' length"
            ),
            evidence, tuple(ids), fix,
            "synthetic queries in the test queries' form; nDCG@10 up, the dev gain transfers",
            page,
        )  # fmt: skip
    return Finding(
        "P13", "query form vs the test queries", "ok",
        f"the trained synthetic queries have the test queries' form: {ours['questions']:.0%} vs "
        f"{theirs['questions']:.0%} questions, {ours['mean_words']:.1f} vs "
        f"{theirs['mean_words']:.1f} words on average",
        evidence, (), page=page,
    )  # fmt: skip
