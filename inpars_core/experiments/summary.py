"""The experiment summary: one before/after table like the seed's slides.

Rows are systems (BM25, the base reranker zero-shot, each variant fine-tuned, dense rows);
columns are measures at each rerank depth with the difference from the zero-shot base reranker
at the same depth and a mark when both paired tests stay significant after Holm-Bonferroni
across the rows compared at that depth. Generation cost and wall time per stage are listed too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from inpars_core.artifacts import atomic_text, write_json
from inpars_core.compare import compare
from inpars_core.evaluation import Evaluation, evaluate
from inpars_core.runs import read_trec_run

if TYPE_CHECKING:
    from inpars_core.experiments.runner import ExperimentRunner, Row

logger = logging.getLogger(__name__)
BASELINE = "base (zero-shot)"


def write_summary(
    runner: ExperimentRunner, rows: list[Row], costs: dict[str, float], seconds: float
) -> dict[str, Any]:
    """Evaluate every row, compare with the zero-shot base per depth, write summary.json/.md."""
    config = runner.config
    measures = list(config.evaluation.measures)
    queries = set(runner.test_queries())
    qrels = {
        q: j for q, j in runner.dataset.qrels(config.dataset.test_split).items() if q in queries
    }
    evaluations: dict[tuple[str, int | None], Evaluation] = {}
    for row in rows:
        evaluations[(row.name, row.depth)] = evaluate(read_trec_run(row.run_path), qrels, measures)
    table: list[dict[str, Any]] = []
    depths = list(config.rerank.depths)
    comparisons: dict[tuple[int, str], dict[str, Any]] = {}
    for depth in depths:
        at_depth = {name: ev for (name, d), ev in evaluations.items() if d == depth}
        if BASELINE not in at_depth:
            continue
        for measure in evaluations[(BASELINE, depth)].measures:
            result = compare(at_depth, BASELINE, measure)
            for row in result.rows:
                comparisons[(depth, measure)] = comparisons.get((depth, measure), {})
                comparisons[(depth, measure)][row.run] = row
    for row in rows:
        ev = evaluations[(row.name, row.depth)]
        entry: dict[str, Any] = {
            "system": row.name,
            "kind": row.kind,
            "depth": row.depth,
            "variant": row.variant,
            "run": str(row.run_path),
            "measures": ev.aggregate,
            "stage_seconds": row.stage_seconds,
        }
        if row.depth is not None and row.name != BASELINE:
            entry["delta"] = {}
            entry["significant"] = {}
            for measure in ev.measures:
                cmp_row = comparisons.get((row.depth, measure), {}).get(row.name)
                if cmp_row is not None:
                    entry["delta"][measure] = cmp_row.delta
                    entry["significant"][measure] = cmp_row.significant
                    entry.setdefault("wins_ties_losses", {})[measure] = [
                        cmp_row.wins,
                        cmp_row.ties,
                        cmp_row.losses,
                    ]
        if row.variant is not None:
            entry["generation_cost_usd"] = costs.get(row.variant, 0.0)
        if row.training:
            entry["training"] = row.training
        table.append(entry)
    summary = {
        "experiment": config.experiment.name,
        "dataset": config.dataset.name,
        "test_queries": len(qrels),
        "measures": measures,
        "depths": depths,
        "rows": table,
        "wall_seconds": round(seconds, 1),
        "stages_ran": list(runner.store.ran),
        "stages_cached": list(runner.store.cached),
    }
    write_json(runner.root / "summary.json", summary)
    with atomic_text(runner.root / "summary.md") as handle:
        handle.write(to_markdown(summary))
    return summary


def to_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table (one row per system and depth)."""
    measures = summary["measures"]
    header = [
        "system",
        "depth",
        *measures,
        "model kept: step/steps (dev nDCG@10 step 0 → best @ step)",
        "cost US$",
        "stage seconds",
    ]
    lines = [
        f"# {summary['experiment']} ({summary['dataset']}, {summary['test_queries']} test queries)",
        "",
        f"Δ vs `{BASELINE}` at the same depth; * = paired t-test and Wilcoxon both < 0.05 after "
        "Holm–Bonferroni across the systems at that depth.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in summary["rows"]:
        cells = [row["system"], "full" if row["depth"] is None else str(row["depth"])]
        for measure in measures:
            value = row["measures"][measure]
            delta = row.get("delta", {}).get(measure)
            mark = "*" if row.get("significant", {}).get(measure) else ""
            cells.append(f"{value:.4f}" + (f" ({delta:+.4f}{mark})" if delta is not None else ""))
        training = row.get("training") or {}
        if training.get("best_step") is not None and training.get("best_dev_ndcg10") is not None:
            kept = training.get("kept_step")
            kept = training["best_step"] if kept is None else kept
            cells.append(
                f"{kept}/{training['final_step']} "
                f"({training['step0_dev_ndcg10']:.3f} → {training['best_dev_ndcg10']:.3f} "
                f"@ {training['best_step']})"
            )
        else:
            cells.append("")
        cost = row.get("generation_cost_usd")
        cells.append("" if cost is None else f"{cost:.4f}")
        cells.append(", ".join(f"{k} {v:.0f}" for k, v in row["stage_seconds"].items()))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Wall time of this invocation: {summary['wall_seconds']:.0f} s; stages run: "
        f"{', '.join(summary['stages_ran']) or 'none (all cached)'}.",
    ]
    return "\n".join(lines) + "\n"
