"""P6 score drift: does the fine-tuned model still order the test BM25 lists as the starting
model did?

Per test query, Kendall's τ-b between the starting model's and the fine-tuned model's scores of
the documents both reranked (the two rerank stages' ``run.trec`` heads, same BM25 lists). A
model trained by distillation learnt its teacher's score magnitudes; hard 0/1 targets remap them,
and τ shows how much of its ordering survived. Thresholds: a mean τ below :data:`TAU_WARN` (0.8,
the pitfall note's figure: below it more than one pair in ten is swapped) is a ``warn``; a
``fail`` when the fine-tuned row is also below the starting model's on the test queries.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inpars_core.diagnosis.checks.schedule import base_recipe, lower_lr, training_facts
from inpars_core.diagnosis.context import MissingEvidenceError, VariantContext, page_link
from inpars_core.diagnosis.findings import Finding
from inpars_core.diagnosis.registry import check

#: A mean per-query τ below this is a warning.
TAU_WARN = 0.8
#: Queries named in ``ids`` (lowest τ first).
SHOWN_QUERIES = 5


def reranked_head(path: Path, depth: int | None) -> dict[str, dict[str, float]]:
    """``query_id → {doc_id: score}`` of the first ``depth`` ranks per query of a rerank
    stage's TREC run (the reranked head; the first stage's tail follows it in the file)."""
    ranked: dict[str, list[tuple[int, str, float]]] = {}
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            parts = line.split()
            if len(parts) < 6:
                continue
            rank = int(parts[3]) if parts[3].lstrip("-").isdigit() else number
            ranked.setdefault(parts[0], []).append((rank, parts[2], float(parts[4])))
    head: dict[str, dict[str, float]] = {}
    for query_id, items in ranked.items():
        items.sort(key=lambda item: item[0])
        head[query_id] = {doc: score for _, doc, score in items[:depth]}
    return head


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's τ-b of two score lists over the same items (NaN when either is constant or
    fewer than two items)."""
    from scipy.stats import kendalltau

    if len(a) < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on a constant input and returns NaN
        return float(kendalltau(a, b).statistic)


def per_query_tau(
    start: dict[str, dict[str, float]], tuned: dict[str, dict[str, float]]
) -> tuple[dict[str, float], int]:
    """τ per query both runs reranked, over the documents both scored; and the number of
    queries left out (fewer than two shared documents, or constant scores)."""
    taus: dict[str, float] = {}
    skipped = 0
    for query_id in sorted(set(start) & set(tuned)):
        docs = sorted(set(start[query_id]) & set(tuned[query_id]))
        tau = kendall_tau([start[query_id][d] for d in docs], [tuned[query_id][d] for d in docs])
        if math.isnan(tau):
            skipped += 1
        else:
            taus[query_id] = tau
    return taus, skipped


def _depth(context: VariantContext, row: dict[str, Any]) -> int | None:
    try:
        depth = context.meta(row, "rerank").get("config", {}).get("depth")
    except FileNotFoundError:
        depth = None
    if not isinstance(depth, int):
        depth = row.get("depth") if isinstance(row.get("depth"), int) else None
    return depth


@check("P6", "score drift")
def score_drift(context: VariantContext) -> Finding:
    """Kendall τ between the starting model's and the fine-tuned model's scores on the test
    BM25 lists."""
    tuned = context.tuned_row()
    base = context.base_row(tuned)
    runs = []
    for row in (base, tuned):
        path = context.stage_dir(row, "rerank") / "run.trec"
        if not path.is_file():
            raise MissingEvidenceError(f"{path} is missing")
        runs.append(reranked_head(path, _depth(context, row)))
    taus, skipped = per_query_tau(*runs)
    if not taus:
        raise MissingEvidenceError(
            f"no test query reranked by both {base['system']!r} and {tuned['system']!r} "
            "with two or more differently scored documents"
        )
    values = sorted(taus.values())
    mean, median = statistics.fmean(values), statistics.median(values)
    lowest = sorted(taus, key=lambda q: (taus[q], q))[:SHOWN_QUERIES]
    measures = context.summary.get("measures") or ["nDCG@10"]
    measure = "nDCG@10" if "nDCG@10" in measures else str(measures[0])
    tuned_value = tuned.get("measures", {}).get(measure)
    base_value = base.get("measures", {}).get(measure)
    evidence: dict[str, Any] = {
        "tau_mean": mean,
        "tau_median": median,
        "tau_min": values[0],
        "queries": len(values),
        "queries_skipped": skipped,
        "share_below_0.8": sum(v < TAU_WARN for v in values) / len(values),
        "depth": _depth(context, tuned),
        "lowest_tau": {q: round(taus[q], 4) for q in lowest},
        "base_system": base["system"],
    }
    worse = None
    if isinstance(tuned_value, int | float) and isinstance(base_value, int | float):
        evidence[f"tuned_{measure}"] = tuned_value
        evidence[f"base_{measure}"] = base_value
        worse = tuned_value < base_value
    page = page_link("per-query", a=base["system"], b=tuned["system"], query=lowest[0])
    stated = (
        f"mean Kendall τ {mean:.3f} (median {median:.3f}) between the starting model's and the "
        f"fine-tuned model's scores over {len(values)} test queries' BM25 lists"
    )
    if mean >= TAU_WARN:
        return Finding(
            "P6",
            "score drift",
            "ok",
            f"{stated}: the fine-tuned model keeps the starting model's ordering (τ ≥ {TAU_WARN}).",
            evidence,
            tuple(lowest),
            {},
            "",
            page,
        )
    if worse is False:
        return Finding(
            "P6",
            "score drift",
            "warn",
            f"{stated}: below {TAU_WARN}, the ordering was remapped; the fine-tuned row's "
            f"{measure} {tuned_value:.4f} is not below the starting model's {base_value:.4f}, "
            "so the remapping has not cost ranking quality here (no fix proposed).",
            evidence,
            tuple(lowest),
            {},
            "",
            page,
        )
    fix: dict[str, Any] = {"finetune.keep": "best"}
    try:
        facts = training_facts(context, tuned)
        lr = facts["config"].get("lr")
        if isinstance(lr, int | float):
            recipe = base_recipe(context, tuned, facts["meta"])
            fix = {"finetune.lr": lower_lr(lr, recipe[0] if recipe else None), **fix}
    except MissingEvidenceError:
        pass
    if worse:
        verdict = "fail"
        tail = (
            f"; the fine-tuned row's {measure} {tuned_value:.4f} is below the starting "
            f"model's {base_value:.4f}: fine-tuning remapped what the starting model ranked "
            "well"
        )
    else:
        verdict = "warn"
        tail = f" (no {measure} of both rows to compare)"
    return Finding(
        "P6",
        "score drift",
        verdict,
        f"{stated}: below {TAU_WARN}, the ordering was remapped{tail}.",
        evidence,
        tuple(lowest),
        fix,
        "τ rises towards 1 (the fine-tuned model keeps the starting model's ordering where it "
        f"was right) and {measure} returns at least to the starting model's",
        page,
    )
