"""P12 — noise: is the fine-tuned row's difference a change at all?

Fifty test topics move nDCG@10 by ±0.03 between runs that differ by nothing that matters. This
check says how many test queries the difference rests on, whether paired tests (t-test and
Wilcoxon, Holm-corrected) find it, the wins/ties/losses per query, and — when the experiment
has variants that differ only by a seed — how far the seeds spread. When the difference is
within noise it says so plainly.

Two comparisons are read: the one ``summary.json`` recorded (the row against the row it is
``compared_with``, Holm over the summary's family), and the fine-tuned row against its starting
model on the same lists (:meth:`VariantContext.base_row`), tested here on the per-query values
of ``per_query.tsv`` with Holm over the summary's measures. The second answers "did
fine-tuning change anything" and decides the verdict when it can be computed.
"""

from __future__ import annotations

from typing import Any

from inpars_core.diagnosis.context import (
    MissingEvidenceError,
    VariantContext,
    page_link,
    row_label,
    training_stage_name,
)
from inpars_core.diagnosis.findings import Finding
from inpars_core.diagnosis.registry import check

MEASURE = "nDCG@10"
#: Both Holm-corrected paired tests below this: a change (as ``compare`` and the summary do).
ALPHA = 0.05
MAX_IDS = 10


def seed_siblings(ctx: VariantContext) -> list[str]:
    """The variants (this one included, in config order) whose overrides differ from this
    variant's only by keys named ``seed`` (``finetune.seed``, ``negatives.seed``, ...)."""
    variants = ctx.manifest.get("config", {}).get("variants", {}) or {}
    mine = variants.get(ctx.variant, {})

    def rest(overrides: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in overrides.items() if k.rpartition(".")[2] != "seed"}

    return [name for name, overrides in variants.items() if rest(overrides) == rest(mine)]


def _paired(
    ctx: VariantContext, base: dict[str, Any], tuned: dict[str, Any], measures: list[str]
) -> dict[str, dict[str, Any]]:
    """Per measure: Δ, wins/ties/losses, paired p-values and their Holm correction over
    ``measures``, and the per-query deltas (tuned − base) on the queries both were scored on."""
    from inpars_core.compare import TIE_TOLERANCE, holm_bonferroni, paired_tests

    found: dict[str, dict[str, Any]] = {}
    for measure in measures:
        try:
            before, after = ctx.per_query(base, measure), ctx.per_query(tuned, measure)
        except MissingEvidenceError:
            continue
        common = sorted(set(before) & set(after))
        if len(common) < 2:
            continue
        deltas = {q: after[q] - before[q] for q in common}
        t_p, w_p = paired_tests([before[q] for q in common], [after[q] for q in common])
        found[measure] = {
            "delta": sum(deltas.values()) / len(deltas),
            "wtl": [
                sum(d > TIE_TOLERANCE for d in deltas.values()),
                sum(abs(d) <= TIE_TOLERANCE for d in deltas.values()),
                sum(d < -TIE_TOLERANCE for d in deltas.values()),
            ],
            "t": t_p,
            "wilcoxon": w_p,
            "deltas": deltas,
        }
    names = list(found)
    for key in ("t", "wilcoxon"):
        for name, value in zip(names, holm_bonferroni([found[n][key] for n in names]), strict=True):
            found[name][f"{key}_holm"] = value
    return found


def _seeds(ctx: VariantContext, tuned: dict[str, Any], measure: str) -> dict[str, float]:
    """Variant → its fine-tuned row's Δ ``measure`` against its base at ``tuned``'s depth, for
    every seed sibling that has both rows."""
    spread: dict[str, float] = {}
    for name in seed_siblings(ctx):
        for row in ctx.rows:
            if (
                row.get("variant") == name
                and row.get("depth") == tuned.get("depth")
                and row.get("kind") == "synthetic"
                and not row.get("bm25_weight")
                and training_stage_name(row) is not None
                and row.get("family", "cross-encoder") == "cross-encoder"
            ):
                try:
                    base = ctx.base_row(row)
                except MissingEvidenceError:
                    continue
                value = row.get("measures", {}).get(measure)
                reference = base.get("measures", {}).get(measure)
                if value is not None and reference is not None:
                    spread[name] = float(value) - float(reference)
                break
    return spread


def _wtl(counts: Any) -> str | None:
    """Wins/ties/losses as ``"W/T/L"``."""
    return "/".join(str(c) for c in counts) if counts else None


@check("P12", "noise")
def noise(ctx: VariantContext) -> Finding:
    """``warn`` when the fine-tuned row's Δ ``nDCG@10`` against its base (else against the row
    the summary compares it with) is not significant after Holm — it must not be read as a
    change — or when seed replicates disagree on its sign; ``ok`` when it is significant.

    Never ``fail``: noise is no fault of the fine-tuning to fix, it is how far the other
    findings and the table can be trusted; the fix is more evidence (a seed, more queries),
    not a different training."""
    tuned = ctx.tuned_row()
    measures = list(tuned.get("measures", {}))
    measure = MEASURE if MEASURE in measures else (measures[0] if measures else MEASURE)
    evidence: dict[str, Any] = {"test_queries": tuned.get("test_queries"), "measure": measure}
    recorded = (tuned.get("p_values") or {}).get(measure)
    if recorded is not None:
        evidence.update(
            {
                "compared_with": tuned.get("compared_with"),
                "delta_vs_compared": tuned.get("delta", {}).get(measure),
                "t_holm_vs_compared": recorded.get("t_holm"),
                "wilcoxon_holm_vs_compared": recorded.get("wilcoxon_holm"),
                "significant_vs_compared": (tuned.get("significant") or {}).get(measure),
                "wins_ties_losses_vs_compared": _wtl(
                    (tuned.get("wins_ties_losses") or {}).get(measure)
                ),
            }
        )
    try:
        base = ctx.base_row(tuned)
    except MissingEvidenceError:
        base = None
    tests = _paired(ctx, base, tuned, measures) if base is not None else {}
    ids: tuple[str, ...] = ()
    if measure in tests:
        test = tests[measure]
        significant = test["t_holm"] < ALPHA and test["wilcoxon_holm"] < ALPHA
        delta, wtl, versus = test["delta"], test["wtl"], base["system"]  # type: ignore[index]
        t_holm, w_holm = test["t_holm"], test["wilcoxon_holm"]
        evidence = {
            "delta_vs_base": round(delta, 4),
            "wins_ties_losses_vs_base": _wtl(wtl),
            "t_holm_vs_base": t_holm,
            "wilcoxon_holm_vs_base": w_holm,
            "queries_vs_base": sum(wtl),
            "base": versus,
            **evidence,
        }
        largest = sorted(test["deltas"].items(), key=lambda item: -abs(item[1]))
        ids = tuple(q for q, d in largest[:MAX_IDS] if d)
        page = page_link(
            "per-query", a=row_label(base), b=row_label(tuned), query=ids[0] if ids else None
        )  # type: ignore[arg-type]
    elif recorded is not None:
        significant = bool((tuned.get("significant") or {}).get(measure))
        delta = float(tuned.get("delta", {}).get(measure, 0.0))
        wtl = (tuned.get("wins_ties_losses") or {}).get(measure) or ["?", "?", "?"]
        versus = str(tuned.get("compared_with"))
        t_holm = float(recorded.get("t_holm", 1.0))
        w_holm = float(recorded.get("wilcoxon_holm", 1.0))
        page = page_link("per-query", a=f"{versus} @{tuned.get('depth')}", b=row_label(tuned))
    else:
        raise MissingEvidenceError(
            f"{tuned['system']!r} has neither a base row with per-query values nor a recorded "
            "paired test"
        )
    spread = _seeds(ctx, tuned, measure)
    flips = len(spread) > 1 and min(spread.values()) < 0 < max(spread.values())
    if len(spread) > 1:
        evidence.update(
            {
                "seeds": len(spread),
                "seed_variants": ", ".join(spread),
                "seed_delta_min": round(min(spread.values()), 4),
                "seed_delta_max": round(max(spread.values()), 4),
            }
        )
    counts = f"{wtl[0]}/{wtl[1]}/{wtl[2]}"
    n = evidence["queries_vs_base"] if "queries_vs_base" in evidence else tuned.get("test_queries")
    said = (
        f"Δ {measure} {delta:+.4f} against {versus} on {n} test queries (wins/ties/losses "
        f"{counts}; Holm-corrected paired t p {t_holm:.3g}, Wilcoxon p {w_holm:.3g})"
    )
    seeds_said = (
        f"; across {len(spread)} seeds Δ spans {min(spread.values()):+.4f} to "
        f"{max(spread.values()):+.4f}"
        if len(spread) > 1
        else "; one seed only"
    )
    used = [ctx.setting("finetune.seed", 0)]
    variants = ctx.manifest.get("config", {}).get("variants", {}) or {}
    used += [variants[name].get("finetune.seed") for name in seed_siblings(ctx)]
    next_seed = max((s for s in used if isinstance(s, int)), default=0) + 1
    if significant and not flips:
        return Finding(
            "P12",
            "noise",
            "ok",
            f"{said}: significant{seeds_said}.",
            evidence,
            ids,
            page=page,
        )
    verdict_text = (
        "not significant: within noise, do not read it as a change"
        if not significant
        else "significant on this seed, but the seeds disagree on its sign: not a stable change"
    )
    if wtl[0] == 0 and wtl[2] == 0:
        verdict_text += " (no query changed at all)"
    return Finding(
        "P12",
        "noise",
        "warn",
        f"{said}: {verdict_text}{seeds_said}.",
        evidence,
        ids,
        {"finetune.seed": next_seed},
        "a seed replicate shows the spread of Δ: a real change keeps its sign across seeds",
        page,
    )
