"""P7 false negatives: negatives of the training triples that are likely relevant.

Read from the variant's triples stage (``triples.jsonl``, whose lines record each negative's
source and BM25 rank, and, with the false-negative guard, the guard teacher's scores) and, with
``probe``, a scoring of a small sample by the judge: the guard's teacher
(``negatives.teacher``) when one is configured, else the starting model.

- A negative whose id is its positive's (the source document as its own negative): ``fail``.
- A negative the judge cannot rank below its positive (its score above the positive's minus the
  guard margin, 0 without a guard, within :data:`TIE` for fp32 noise): above
  :data:`OUTSCORE_FAIL` of the sample a ``fail``, above :data:`OUTSCORE_WARN` a ``warn``. When
  the judge also scores more than :data:`OUTSCORE_WARN` of the sampled *random* negatives (almost
  never relevant) above their positive, it is too weak to be believed: at most a ``warn``.
- The share of BM25 negatives from ranks 1–5, where the relevant documents of a topical query
  sit: :data:`TOP5_WARN` or more without the guard is a ``warn`` (a uniform draw from ranks
  1–100 gives 5 %; 25 % means the window is 1–20 or narrower).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from inpars_core.diagnosis.context import (
    MissingEvidenceError,
    VariantContext,
    iter_scores,
    model_folder,
    page_link,
    starting_model,
)
from inpars_core.diagnosis.findings import Finding
from inpars_core.diagnosis.registry import check

logger = logging.getLogger(__name__)

#: Triples scored by the probe at most.
PROBE_TRIPLES = 64
#: Share of probed negatives scored at or above their positive that fails / warns.
OUTSCORE_FAIL = 0.2
OUTSCORE_WARN = 0.1
#: Share of BM25 negatives from ranks 1–5 that warns when no guard was on.
TOP5_WARN = 0.25
#: Score difference treated as a tie (fp32 noise between two batches).
TIE = 1e-4
#: Pairs named in ``ids``.
SHOWN_PAIRS = 10

#: Probe scores per (triples file, its size and mtime, judge folder, max_length), kept for the
#: process: the variants of one experiment often share their triples and starting model.
_PROBED: dict[tuple[Any, ...], dict[tuple[str, str], float]] = {}


def sample_evenly(items: list[Any], size: int) -> list[Any]:
    """``size`` items spread evenly over ``items`` (all of them when fewer), deterministic."""
    if len(items) <= size:
        return list(items)
    return [items[index * len(items) // size] for index in range(size)]


def bm25_ranks(
    context: VariantContext, tuned: dict[str, Any], triples: list[dict[str, Any]]
) -> list[int]:
    """BM25 ranks of the BM25 negatives: as recorded in the triples (``neg_rank``), else
    recomputed from the synthetic-bm25 run's order."""
    bm25 = [t for t in triples if t.get("neg_source", "bm25") == "bm25"]
    recorded = [t["neg_rank"] for t in bm25 if isinstance(t.get("neg_rank"), int)]
    if recorded or not bm25:
        return recorded
    path = context.stage_dir(tuned, "synthetic-bm25") / "run.trec"
    if not path.is_file():
        raise MissingEvidenceError(f"{path} is missing (the triples record no neg_rank)")
    rank_of: dict[tuple[str, str], int] = {}
    ranking: dict[str, list[tuple[float, str]]] = {}
    for query_id, doc_id, score in iter_scores(path):
        ranking.setdefault(query_id, []).append((score, doc_id))
    for query_id, docs in ranking.items():
        docs.sort(key=lambda item: (-item[0], item[1]))
        for rank, (_, doc_id) in enumerate(docs, start=1):
            rank_of.setdefault((query_id, doc_id), rank)
    return [
        rank_of[(t["query_id"], t["neg_doc_id"])]
        for t in bm25
        if (t["query_id"], t["neg_doc_id"]) in rank_of
    ]


def judge_scores(
    context: VariantContext, judge: Path, pairs: list[tuple[str, str]], max_length: int
) -> list[float]:
    """Scores of ``(query text, doc_id)`` pairs by the cross-encoder in folder ``judge``, with
    the project's scoring code (pair encoding, ``max_length``)."""
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs
    from inpars_core.stages.common import load_dataset

    recorded = context.manifest.get("dataset", {})
    where = recorded.get("path")
    source = where if where and Path(where).is_dir() else recorded.get("name")
    if not source:
        raise MissingEvidenceError("experiment.json records no dataset to read documents from")
    try:
        corpus = load_dataset(source).corpus
    except Exception as exc:  # a moved or missing dataset: the probe cannot run here
        raise MissingEvidenceError(f"dataset {source!r} cannot be loaded ({exc})") from None
    missing = sorted({doc for _, doc in pairs if doc not in corpus})
    if missing:
        raise MissingEvidenceError(f"document {missing[0]!r} is not in the corpus of {source}")
    scoring = ScoringConfig(batch_size=32)
    reranker = load_reranker(str(judge), scoring)
    if "+init:" in reranker.fingerprint:
        raise MissingEvidenceError(
            f"{judge} has no trained relevance head (newly initialised at load): its scores "
            "say nothing about relevance"
        )
    texts = [(query, corpus[doc].contents) for query, doc in pairs]
    return score_pairs(reranker, texts, EncodingConfig(max_length=max_length), scoring)


def _shown(name: str) -> str:
    """A model name as the findings show it: a stage folder from ``stages/`` on."""
    parts = Path(name).parts
    if "stages" in parts:
        return "/".join(parts[len(parts) - 1 - parts[::-1].index("stages") :])
    return name


def _window_fix(window: Any, depth: Any) -> list[int]:
    """A BM25 window clear of the top ranks: from 30 to at least 100, within the run depth."""
    a, b = window if isinstance(window, list | tuple) and len(window) == 2 else (1, 100)
    end = max(int(b), 100)
    if isinstance(depth, int) and depth > 0:
        end = min(end, depth)
    start = max(int(a), 30)
    if start >= end:
        start = max(6, end // 3)
    return [start, end]


@check("P7", "false negatives")
def false_negatives(context: VariantContext) -> Finding:
    """Negatives equal to their positive, negatives the judge scores above their positive, and
    the share of negatives from BM25's top 5."""
    tuned = context.tuned_row()
    triples = context.stage_jsonl(tuned, context.triples_stage(tuned), "triples.jsonl")
    if not triples:
        raise MissingEvidenceError("triples.jsonl holds no triple")
    needed = ("query_id", "pos_doc_id", "neg_doc_id")
    if any(key not in t for t in triples for key in needed):
        raise MissingEvidenceError(
            f"triples.jsonl lines without {', '.join(needed)} (not written by `inpars triples`)"
        )
    meta_config = context.meta(tuned, context.triples_stage(tuned)).get("config", {})
    teacher = meta_config.get("teacher", context.setting("negatives.teacher"))
    margin = meta_config.get(
        "false_negative_margin", context.setting("negatives.false_negative_margin")
    )
    guard = teacher is not None and margin is not None
    window = meta_config.get("window", context.setting("negatives.window"))
    evidence: dict[str, Any] = {
        "triples": len(triples),
        "window": window,
        "guard": guard,
        "teacher": teacher,
        "false_negative_margin": margin,
        "random_share": sum(t.get("neg_source") == "random" for t in triples) / len(triples),
    }

    same = [t for t in triples if t["neg_doc_id"] == t["pos_doc_id"]]
    evidence["negative_is_positive"] = len(same)

    ranks = bm25_ranks(context, tuned, triples)
    top5 = None
    if ranks:
        top5 = sum(rank <= 5 for rank in ranks) / len(ranks)
        evidence["bm25_negatives"] = len(ranks)
        evidence["top5_share"] = top5
    top5_ids = [
        f"{t['query_id']}/{t['neg_doc_id']}"
        for t in triples
        if isinstance(t.get("neg_rank"), int) and t["neg_rank"] <= 5
    ]

    outscored, share = _outscoring(context, tuned, triples, teacher, margin or 0.0, evidence)

    problems: list[tuple[str, str]] = []
    if same:
        problems.append(
            (
                "fail",
                f"{len(same)} negatives are their own positive (the source document trained "
                "as irrelevant to its own query)",
            )
        )
    if share is not None:
        said = (
            f"{len(outscored)} of {evidence['scored_triples']} sampled negatives "
            f"({share:.0%}) are scored at or above their positive by {evidence['judge']}"
        )
        weak_judge = evidence.get("random_outscoring_share", 0.0) > OUTSCORE_WARN
        if share > OUTSCORE_WARN and weak_judge:
            problems.append(
                (
                    "warn",
                    f"{said}, but it also scores {evidence['random_outscoring_share']:.0%} of "
                    "the random negatives (almost never relevant) at or above their positive: "
                    "the judge is too weak to tell false negatives from its own errors",
                )
            )
        elif share > OUTSCORE_FAIL:
            problems.append(("fail", f"{said}: likely false negatives"))
        elif share > OUTSCORE_WARN:
            problems.append(("warn", f"{said}: some are likely false negatives"))
    if top5 is not None and top5 >= TOP5_WARN and not guard:
        problems.append(
            (
                "warn",
                f"{top5:.0%} of the BM25 negatives come from ranks 1–5 (window {window}) with "
                "no false-negative guard",
            )
        )

    ids = [f"{t['query_id']}/{t['neg_doc_id']}" for t in same]
    ids += [pair for pair in outscored if pair not in ids]
    ids += [pair for pair in top5_ids if pair not in ids]
    ids = ids[:SHOWN_PAIRS]
    page = page_link("synthetic", q=ids[0].split("/")[0]) if ids else page_link("synthetic")
    if not problems:
        parts = ["no negative is its own positive"]
        if share is not None:
            parts.append(
                f"{share:.0%} of {evidence['scored_triples']} sampled negatives scored at or "
                f"above their positive by {evidence['judge']}"
            )
        if top5 is not None:
            parts.append(f"{top5:.0%} of BM25 negatives from ranks 1–5")
        return Finding(
            "P7", "false negatives", "ok", "; ".join(parts) + ".", evidence, tuple(ids), {}, "",
            page,
        )  # fmt: skip

    fix: dict[str, Any] = {}
    outscored_many = share is not None and share > OUTSCORE_WARN
    if outscored_many or (top5 is not None and top5 >= TOP5_WARN):
        fix["negatives.window"] = _window_fix(window, context.setting("bm25.k"))
        stronger = context.setting("finetune.teacher")
        if not guard and stronger:
            fix["negatives.teacher"] = stronger
            fix["negatives.false_negative_margin"] = 0.0
    verdict = "fail" if any(v == "fail" for v, _ in problems) else "warn"
    summary = "; ".join(text for _, text in problems) + "."
    if same:
        summary += (
            " Rebuild the triples with `inpars triples`, which never draws a positive as its "
            "own negative."
        )
    return Finding(
        "P7",
        "false negatives",
        verdict,
        summary,
        evidence,
        tuple(ids),
        fix,
        "fewer sampled negatives scored above their positive and a smaller top-5 share; the "
        "fine-tuned row's nDCG@10 rises",
        page,
    )


def _outscoring(
    context: VariantContext,
    tuned: dict[str, Any],
    triples: list[dict[str, Any]],
    teacher: str | None,
    margin: float,
    evidence: dict[str, Any],
) -> tuple[list[str], float | None]:
    """``("query_id/neg_doc_id" of the negatives the judge scores at or above their positive
    minus ``margin``, most outscoring first; their share)`` from the guard's recorded scores or a
    probe; ``([], None)`` with a note in ``evidence`` when neither is possible."""
    recorded = [
        t
        for t in triples
        if isinstance(t.get("teacher_pos_score"), int | float)
        and isinstance(t.get("teacher_neg_score"), int | float)
    ]
    if recorded:
        evidence["judge"] = f"the guard's teacher {teacher} (scores recorded in the triples)"
        scored = [(t, t["teacher_pos_score"], t["teacher_neg_score"]) for t in recorded]
    elif not context.probe:
        evidence["probe_note"] = "negatives not scored: probing is off (--no-probe)"
        return [], None
    else:
        try:
            scored = _probe(context, tuned, triples, teacher, evidence)
        except MissingEvidenceError as exc:
            evidence["probe_note"] = f"negatives not scored: {exc}"
            return [], None
    above = [
        (neg - pos, f"{t['query_id']}/{t['neg_doc_id']}")
        for t, pos, neg in scored
        if neg > pos - margin - TIE
    ]
    above.sort(key=lambda item: (-item[0], item[1]))
    random_scored = [(t, pos, neg) for t, pos, neg in scored if t.get("neg_source") == "random"]
    if random_scored:  # a random document is almost never relevant: a check of the judge
        random_above = sum(neg > pos - margin - TIE for _, pos, neg in random_scored)
        evidence["random_scored"] = len(random_scored)
        evidence["random_outscoring_share"] = random_above / len(random_scored)
    evidence["scored_triples"] = len(scored)
    evidence["outscoring"] = len(above)
    evidence["outscoring_share"] = len(above) / len(scored)
    return [pair for _, pair in above], len(above) / len(scored)


def _probe(
    context: VariantContext,
    tuned: dict[str, Any],
    triples: list[dict[str, Any]],
    teacher: str | None,
    evidence: dict[str, Any],
) -> list[tuple[dict[str, Any], float, float]]:
    """Score an even sample of at most :data:`PROBE_TRIPLES` triples with the judge."""
    if teacher:
        folder = model_folder(context.experiment_dir, teacher)
        who = f"the guard's teacher {_shown(teacher)}"
    else:
        name, folder = starting_model(context, tuned)
        who = f"the starting model {_shown(name)}"
    if folder is None:
        raise MissingEvidenceError(f"{who} is not on this machine")
    max_length = (
        context.meta(tuned, context.training_stage(tuned)).get("config", {}).get("max_length")
        or context.setting("finetune.max_length")
        or 128
    )
    ordered = sorted(triples, key=lambda t: (t["query_id"], t["pos_doc_id"], t["neg_doc_id"]))
    sample = sample_evenly(ordered, PROBE_TRIPLES)
    pairs = sorted(
        {(t["query_text"], t["pos_doc_id"]) for t in sample}
        | {(t["query_text"], t["neg_doc_id"]) for t in sample}
    )
    path = context.stage_dir(tuned, context.triples_stage(tuned)) / "triples.jsonl"
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(folder), int(max_length))
    if key not in _PROBED:  # variants sharing triples and starting model are probed once
        scores = judge_scores(context, folder, pairs, int(max_length))
        _PROBED[key] = dict(zip(pairs, scores, strict=True))
    values = _PROBED[key]
    evidence["judge"] = who
    evidence["probe_max_length"] = int(max_length)
    return [
        (t, values[(t["query_text"], t["pos_doc_id"])], values[(t["query_text"], t["neg_doc_id"])])
        for t in sample
    ]
