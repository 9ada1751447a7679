"""The experiment summary: one before/after table like the seed's slides.

Rows are systems (BM25, the base reranker, each variant fine-tuned, dense rows), each with its
kind (``bm25``, ``zero-shot``, ``supervised``, ``synthetic``); an interpolated row (``… ⊕
0.5·BM25``) always stands beside its pure-model row. Columns are measures at each rerank depth
with the difference from the baseline (the base reranker as reported) at the same depth, its 95 %
paired-bootstrap interval (``delta_ci95``) and a mark when both paired tests stay significant
after Holm–Bonferroni over the stated family.
The overlap between test queries and the queries the reranker was trained or selected on is
counted, and with ``[evaluation] exclude_overlap`` a second block of rows is evaluated on the
test queries without overlap.

When the variants rerank with several pair encodings (``rerank.pair_encoding``), the base
reranker has a row per encoding and each cross-encoder row is compared with the base row of its
own encoding (:func:`comparison_group`); the ``pair`` base stays the main baseline (BM25, dense
rows), and an ``encoding_table`` block gives the seed's 2×2 table: encoding × before/after
fine-tuning, with Δ and Holm marks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inpars_core.artifacts import atomic_text, write_json
from inpars_core.compare import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CI_LEVEL,
    ComparisonRow,
    compare,
    holm_bonferroni,
    paired_bootstrap_ci,
)
from inpars_core.evaluation import Evaluation, evaluate
from inpars_core.experiments.schema import KINDS_TEXT
from inpars_core.records import Qrels
from inpars_core.runs import read_trec_run, share_from_deep_ranks

if TYPE_CHECKING:
    from inpars_core.datasets.beir import Dataset
    from inpars_core.experiments.rows import Row

logger = logging.getLogger(__name__)

#: Per-query values of every evaluated row (long format), beside summary.json.
PER_QUERY_FILE = "per_query.tsv"
#: Which stages and files make each reported system.
MANIFEST_FILE = "experiment.json"
#: P9: a row reranked deeper than this gets the share of its top 10 from BM25 below this rank.
DEEP_RANK = 100
#: summary.json's field for that share, and its summary.md header.
DEEP_FIELD = "top10_from_bm25_beyond_100"
DEEP_HEADER = "top-10 from BM25 >100"
#: summary.json's field of each compared row: measure -> [low, high], the 95 % paired-bootstrap
#: interval of its Δ (summaries written before it lack the field: readers show a blank).
CI_FIELD = "delta_ci95"
#: How those intervals were computed (summary.json's ``delta_ci``).
CI_METHOD = {
    "method": "paired bootstrap over the queries both rows were evaluated on, percentile interval",
    "level": CI_LEVEL,
    "resamples": BOOTSTRAP_RESAMPLES,
    "seed": BOOTSTRAP_SEED,
}
#: The pair encoding whose base rows are the table's main baseline (for BM25 and dense rows).
MAIN_ENCODING = "pair"


@dataclass(frozen=True)
class Overlap:
    """Test queries that share a relevant document with a query the reranker was trained or
    selected on (``trained_queries``, from the collection's train qrels)."""

    test_queries: int
    trained_queries: int
    overlapping: tuple[str, ...]
    verbatim: tuple[str, ...]

    @classmethod
    def measure(
        cls,
        dataset: Dataset,
        test_split: str,
        test_ids: Sequence[str],
        trained_ids: Sequence[str],
    ) -> Overlap:
        """Count the overlap of ``test_ids`` with ``trained_ids`` (judged in any other split)."""
        test_qrels = dataset.qrels(test_split)
        positives: dict[str, set[str]] = {}
        trained = set(trained_ids)
        for split in dataset.splits():
            if split == test_split:
                continue
            for query_id, judged in dataset.qrels(split).items():
                if query_id in trained:
                    positives.setdefault(query_id, set()).update(
                        d for d, r in judged.items() if r > 0
                    )
        trained_docs = set().union(*positives.values()) if positives else set()
        trained_texts = {
            dataset.queries[q].text.strip().lower() for q in trained if q in dataset.queries
        }
        overlapping = tuple(
            q
            for q in test_ids
            if any(r > 0 and d in trained_docs for d, r in test_qrels.get(q, {}).items())
        )
        verbatim = tuple(
            q
            for q in test_ids
            if q in dataset.queries and dataset.queries[q].text.strip().lower() in trained_texts
        )
        return cls(len(test_ids), len(trained), overlapping, verbatim)

    def describe(self) -> str:
        """One sentence for the summary."""
        if not self.trained_queries:
            return (
                "Overlap: no reranker in this table was trained or selected on this "
                "collection's labelled queries."
            )
        return (
            f"Overlap: {len(self.overlapping)} of {self.test_queries} test queries share a "
            f"relevant document with the {self.trained_queries} labelled queries the reranker "
            f"was trained or selected on; {len(self.verbatim)} test queries are verbatim "
            "copies of one of them."
        )


def holm_family_text(family: str, depths: Sequence[int], measures: Sequence[str]) -> str:
    """What one Holm–Bonferroni correction covers."""
    if family == "table":
        return (
            "Holm–Bonferroni family: the whole table (every system against the baseline at "
            f"every depth {list(depths)} on every measure {list(measures)}, in one correction)."
        )
    return (
        "Holm–Bonferroni family: per depth and measure (the systems compared with the baseline "
        "at one depth on one measure)."
    )


def comparison_group(row: Row) -> tuple[Any, ...]:
    """The group a row is compared within: its rerank depth, the test queries it is evaluated on
    (``rerank.depth_queries``) and pair encoding (None for systems without one: BM25,
    bi-encoders). The one place that decides which baseline a row's Δ and Holm marks are taken
    against (:func:`baseline_of`)."""
    return (row.depth, row.queries, row.encoding)


def is_label_free(row: Row) -> bool:
    """A model trained on synthetic queries alone (``base_reranker.source = "synthetic"``) or a
    fusion of one with label-free systems: no label of the collection anywhere."""
    return bool(row.training.get("label_free"))


def label_free_reference(rows: Sequence[Row], row: Row) -> int | None:
    """The zero-shot system a label-free row is compared with: RRF(BM25, zero-shot bi-encoder)
    at its depth on its queries when the table has it (the strongest system with no label of
    the collection), else None (then its group's baseline)."""
    for i, other in enumerate(rows):
        if (
            other.kind == "zero-shot"
            and other.family == "fusion"
            and (other.depth, other.queries) == (row.depth, row.queries)
        ):
            return i
    return None


def main_baselines(rows: Sequence[Row]) -> dict[int, int]:
    """Depth -> index of the table's main baseline there: the baseline row reranked with the
    ``pair`` encoding (or without one), else the first baseline row at that depth."""
    found: dict[int, int] = {}
    for i, row in enumerate(rows):
        if not row.is_baseline or row.depth is None:
            continue
        current = found.get(row.depth)
        if current is None or (
            rows[current].encoding not in (None, MAIN_ENCODING)
            and row.encoding in (None, MAIN_ENCODING)
        ):
            found[row.depth] = i
    return found


def baseline_of(rows: Sequence[Row]) -> dict[int, int]:
    """Row index -> index of the baseline row it is compared with: the baseline of its
    :func:`comparison_group`, else the main baseline at its depth (:func:`main_baselines`).
    Baselines, and rows without a depth (BM25), are compared with nothing."""
    groups: dict[tuple[Any, ...], int] = {}
    for i, row in enumerate(rows):
        if row.is_baseline:
            groups.setdefault(comparison_group(row), i)
    main = main_baselines(rows)
    found: dict[int, int] = {}
    for i, row in enumerate(rows):
        if row.is_baseline or row.depth is None:
            continue
        base = groups.get(comparison_group(row), main.get(row.depth))
        reference = label_free_reference(rows, row) if is_label_free(row) else None
        base = base if reference is None else reference
        if base is not None and rows[base].queries == row.queries:
            found[i] = base  # compared on the same queries only
    return found


def _comparisons(
    evaluations: Mapping[int, Evaluation],
    rows: Sequence[Row],
    depths: Sequence[int],
    measures: Sequence[str],
    family: str,
) -> dict[tuple[int, str, int], tuple[ComparisonRow, bool]]:
    """(row index, measure, depth) -> (comparison with its baseline, significant after Holm).

    Each row is compared with :func:`baseline_of` it; Holm–Bonferroni corrects over the
    ``family``: every comparison at one depth on one measure (``depth-measure``, whatever
    baseline each was against) or the whole table (``table``)."""
    found: dict[tuple[int, str, int], ComparisonRow] = {}
    base_of = {i: b for i, b in baseline_of(rows).items() if rows[i].depth in depths}
    for base in sorted(set(base_of.values())):
        named = {str(base): evaluations[base]}
        named.update((str(i), evaluations[i]) for i, b in base_of.items() if b == base)
        for measure in measures:
            for cmp_row in compare(named, str(base), measure).rows:
                found[(int(cmp_row.run), measure, rows[base].depth)] = cmp_row  # type: ignore[index]
    families: dict[tuple[Any, ...], list[tuple[int, str, int]]] = {}
    for key in found:
        families.setdefault(() if family == "table" else (key[1], key[2]), []).append(key)
    for keys in families.values():
        t_holm = holm_bonferroni([found[k].t_p for k in keys])
        w_holm = holm_bonferroni([found[k].wilcoxon_p for k in keys])
        for k, t, w in zip(keys, t_holm, w_holm, strict=True):
            found[k] = replace(found[k], t_p_holm=t, wilcoxon_p_holm=w)
    return {k: (v, v.significant) for k, v in found.items()}


def row_identity(index: int, row: Row) -> dict[str, Any]:
    """What a row's system is and where it came from (shared by summary and manifest)."""
    return {
        "row": index,
        "system": row.name,
        "kind": row.kind,
        "family": row.family,
        "depth": row.depth,
        "variant": row.variant,
        "variants": list(row.variants),
        "bm25_weight": row.bm25_weight,
        "pure_system": row.pure,
        "baseline": row.is_baseline,
        "encoding": row.encoding,
        "run": str(row.run_path),
        "stages": dict(row.stages),
    }


def row_qrels(row: Row, qrels: Qrels, query_order: Sequence[str] | None) -> Qrels:
    """The judgements ``row`` is evaluated on: every query of ``qrels``, or the first
    ``row.queries`` of ``query_order`` (the test queries in order) that ``qrels`` holds."""
    if row.queries is None:
        return qrels
    order = list(query_order) if query_order is not None else list(qrels)
    chosen = set(order[: row.queries])
    return {q: judged for q, judged in qrels.items() if q in chosen}


def _table(
    rows: Sequence[Row],
    qrels: Qrels,
    measures: Sequence[str],
    depths: Sequence[int],
    family: str,
    costs: Mapping[str, float],
    per_query: list[tuple[int, str, str, float]] | None = None,
    query_order: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate the rows on ``qrels``; append (row, query, measure, value) to ``per_query``.

    A row reranked deeper than :data:`DEEP_RANK` also gets :data:`DEEP_FIELD` (P9): the share
    of its top-10 documents over the queries of ``qrels`` that came from BM25 ranks below
    :data:`DEEP_RANK` (BM25 = the run of the ``bm25`` row)."""
    bm25 = next((row.run_path for row in rows if row.kind == "bm25"), None)
    first_stage = read_trec_run(bm25) if bm25 is not None else None
    evaluations: dict[int, Evaluation] = {}
    deep: dict[int, float | None] = {}
    for i, row in enumerate(rows):
        run = read_trec_run(row.run_path)
        judged_here = row_qrels(row, qrels, query_order)
        evaluations[i] = evaluate(run, judged_here, measures)
        if first_stage is not None and row.depth is not None and row.depth > DEEP_RANK:
            judged = {q: docs for q, docs in run.items() if q in judged_here}
            deep[i] = share_from_deep_ranks(judged, first_stage, 10, DEEP_RANK)
    comparisons = _comparisons(evaluations, rows, depths, measures, family)
    base_of = baseline_of(rows)
    table: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        ev = evaluations[i]
        if per_query is not None:
            for query_id, values in sorted(ev.per_query.items()):
                per_query.extend((i, query_id, m, values[m]) for m in ev.measures)
        entry: dict[str, Any] = {
            **row_identity(i, row),
            "measures": ev.aggregate,
            "stage_seconds": row.stage_seconds,
        }
        entry[DEEP_FIELD] = deep.get(i)  # None: BM25, or reranked no deeper than DEEP_RANK
        if row.depth is not None and not row.is_baseline:
            for measure in ev.measures:
                found = comparisons.get((i, measure, row.depth))
                if found is None:
                    continue
                cmp_row, significant = found
                entry["compared_with"] = rows[base_of[i]].name
                entry.setdefault("delta", {})[measure] = cmp_row.delta
                entry.setdefault("significant", {})[measure] = significant
                entry.setdefault("p_values", {})[measure] = {
                    "t": cmp_row.t_p,
                    "wilcoxon": cmp_row.wilcoxon_p,
                    "t_holm": cmp_row.t_p_holm,
                    "wilcoxon_holm": cmp_row.wilcoxon_p_holm,
                }
                entry.setdefault("wins_ties_losses", {})[measure] = [
                    cmp_row.wins,
                    cmp_row.ties,
                    cmp_row.losses,
                ]
                entry.setdefault(CI_FIELD, {})[measure] = list(
                    delta_interval(evaluations[i], evaluations[base_of[i]], measure)
                )
        if row.variant is not None:
            entry["generation_cost_usd"] = costs.get(row.variant, 0.0)
        if row.training:
            entry["training"] = row.training
        entry["test_queries"] = len(ev.per_query)
        table.append(entry)
    return table


def delta_interval(row: Evaluation, base: Evaluation, measure: str) -> tuple[float, float]:
    """The 95 % paired-bootstrap interval of ``row``'s Δ ``measure`` against ``base`` over the
    queries both were evaluated on (:func:`~inpars_core.compare.paired_bootstrap_ci`, fixed
    seed), in query-id order so the interval does not depend on the order of the run files."""
    values, base_values = row.values(measure), base.values(measure)
    shared = sorted(set(values) & set(base_values))
    return paired_bootstrap_ci([base_values[q] for q in shared], [values[q] for q in shared])


#: One per-query value: (block, row index, query id, measure, value).
PerQueryValue = tuple[str, int, str, str, float]


def encoding_table(
    entries: Sequence[Mapping[str, Any]], finetuning: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """The seed's 2×2 table from the summary rows ``entries``: one row per pair encoding (and
    depth) with the base reranker as reported ("before") and each fine-tuned cross-encoder
    reranked with that encoding ("after", one column per ``finetuning[variant]``: variants
    that differ only by the encoding share a column), with Δ and the Holm mark against that
    "before". None when the table holds fewer than two encodings."""
    columns_of = dict(finetuning or {})
    bases = [e for e in entries if e.get("baseline") and e.get("encoding") is not None]
    encodings = list(dict.fromkeys(e["encoding"] for e in bases))
    if len(encodings) < 2:
        return None
    tuned = [
        e
        for e in entries
        if e.get("kind") == "synthetic" and e.get("family") == "cross-encoder" and e.get("variant")
    ]
    columns = list(dict.fromkeys(columns_of.get(e["variant"], e["variant"]) for e in tuned))
    rows = []
    for base in bases:
        after = {
            columns_of.get(e["variant"], e["variant"]): {
                "system": e["system"],
                "variant": e["variant"],
                "measures": e["measures"],
                "delta": e.get("delta", {}),
                "significant": e.get("significant", {}),
            }
            for e in tuned
            if e.get("compared_with") == base["system"]
            and e["depth"] == base["depth"]
            and e.get("bm25_weight") == base.get("bm25_weight")
        }
        rows.append(
            {
                "encoding": base["encoding"],
                "depth": base["depth"],
                "before": {"system": base["system"], "measures": base["measures"]},
                "after": after,
            }
        )
    return {"encodings": encodings, "columns": columns, "rows": rows}


def summarize(
    rows: Sequence[Row],
    qrels: Qrels,
    *,
    measures: Sequence[str],
    depths: Sequence[int],
    holm_family: str,
    costs: Mapping[str, float],
    overlap: Overlap,
    exclude_overlap: bool,
    query_order: Sequence[str] | None = None,
    finetuning: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], list[PerQueryValue]]:
    """The summary table of ``rows`` on ``qrels`` (a pure function of its arguments and the
    rows' run files): every row evaluated, compared with the baseline of its depth (and pair
    encoding, :func:`comparison_group`), Holm-corrected over ``holm_family``; with
    ``exclude_overlap`` a second block on the test queries without overlap; with two or more
    pair encodings an ``encoding_table`` (:func:`encoding_table`, columns per
    ``finetuning[variant]``). Returns the summary and every per-query value."""
    per_query: dict[str, list[tuple[int, str, str, float]]] = {"all": [], "no-overlap": []}
    summary: dict[str, Any] = {
        "test_queries": len(qrels),
        "measures": list(measures),
        "depths": list(depths),
        "baselines": {str(rows[i].depth): rows[i].name for i in main_baselines(rows).values()},
        "holm_family": holm_family,
        "holm_family_text": holm_family_text(holm_family, depths, measures),
        "delta_ci": dict(CI_METHOD),
        "overlap": {**asdict(overlap), "text": overlap.describe()},
        "rows": _table(
            rows, qrels, measures, depths, holm_family, costs, per_query["all"], query_order
        ),
        "per_query_file": PER_QUERY_FILE,
    }
    if (table := encoding_table(summary["rows"], finetuning)) is not None:
        summary["encoding_table"] = table
    if exclude_overlap:
        excluded = set(overlap.overlapping)
        clean = {q: j for q, j in qrels.items() if q not in excluded}
        summary["no_overlap"] = {
            "test_queries": len(clean),
            "rows": _table(
                rows,
                clean,
                measures,
                depths,
                holm_family,
                costs,
                per_query["no-overlap"],
                query_order,
            ),
        }
        if (table := encoding_table(summary["no_overlap"]["rows"], finetuning)) is not None:
            summary["no_overlap"]["encoding_table"] = table
    values = [(block, *value) for block, found in per_query.items() for value in found]
    return summary, values


def manifest(
    summary: Mapping[str, Any],
    rows: Sequence[Row],
    *,
    config: Mapping[str, Any],
    dataset: Mapping[str, Any],
) -> dict[str, Any]:
    """``experiment.json``: what each reported system is made of (stage folders and files), the
    dataset as the run found it (resolved path, content hash), splits, baselines and row kinds,
    so a reader (the dashboard) never reconstructs lineage from names."""
    return {
        "experiment": summary["experiment"],
        "config": dict(config),
        "dataset": dict(dataset),
        "test_query_ids": summary["test_query_ids"],
        "baselines": summary["baselines"],
        "per_query_file": PER_QUERY_FILE,
        "systems": [row_identity(index, row) for index, row in enumerate(rows)],
    }


def write_summary(
    root: Path,
    summary: Mapping[str, Any],
    per_query: Sequence[PerQueryValue],
    rows: Sequence[Row],
    experiment_manifest: Mapping[str, Any],
) -> None:
    """Write ``per_query.tsv``, ``experiment.json``, ``summary.json`` and ``summary.md`` into
    the experiment folder ``root`` (each atomically)."""
    with atomic_text(root / PER_QUERY_FILE) as handle:
        handle.write("block\trow\tsystem\tdepth\tquery_id\tmeasure\tvalue\n")
        for block, index, query_id, measure, value in per_query:
            row = rows[index]
            depth = "full" if row.depth is None else row.depth
            handle.write(
                f"{block}\t{index}\t{row.name}\t{depth}\t{query_id}\t{measure}\t{value!r}\n"
            )
    write_json(root / MANIFEST_FILE, experiment_manifest)
    write_json(root / "summary.json", summary)
    with atomic_text(root / "summary.md") as handle:
        handle.write(to_markdown(summary))


def _markdown_rows(
    rows: Sequence[dict[str, Any]], measures: Sequence[str], total: int | None = None
) -> list[str]:
    header = [
        "system",
        "kind",
        "depth",
        *measures,
        DEEP_HEADER,
        "model kept: step/steps (dev nDCG@10 step 0 → best @ step)",
        "cost US$",
        "stage seconds",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        name = f"**{row['system']}** (baseline)" if row.get("baseline") else row["system"]
        depth = "full" if row["depth"] is None else str(row["depth"])
        if total is not None and row.get("test_queries", total) != total:
            depth += f" ({row['test_queries']} queries)"
        cells = [name, row["kind"], depth]
        for measure in measures:
            value = row["measures"][measure]
            delta = row.get("delta", {}).get(measure)
            mark = "*" if row.get("significant", {}).get(measure) else ""
            cells.append(f"{value:.4f}" + (f" ({delta:+.4f}{mark})" if delta is not None else ""))
        share = row.get(DEEP_FIELD)
        cells.append("" if share is None else f"{share:.1%}")
        training = row.get("training") or {}
        if training.get("best_step") is not None and training.get("best_dev_ndcg10") is not None:
            kept = training.get("kept_step")
            kept = training["best_step"] if kept is None else kept
            cells.append(
                f"{kept}/{training['final_step']} "
                f"({training['step0_dev_ndcg10']:.3f} → {training['best_dev_ndcg10']:.3f} "
                f"@ {training['best_step']}; {training.get('dev', '?')} dev)"
            )
        elif training.get("final_step") is not None:
            cells.append(f"{training['final_step']}/{training['final_step']} (no dev set)")
        else:
            cells.append("")
        cost = row.get("generation_cost_usd")
        cells.append("" if cost is None else f"{cost:.4f}")
        cells.append(", ".join(f"{k} {v:.0f}" for k, v in row["stage_seconds"].items()))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _markdown_encoding_table(
    table: Mapping[str, Any], measure: str, title: str = "Pair encoding × fine-tuning"
) -> list[str]:
    """The "Pair encoding × fine-tuning" block: encoding × before/after with Δ and Holm mark."""
    columns = table["columns"]
    names = (
        ["after", "Δ"]
        if len(columns) == 1
        else [f"{word} ({column})" for column in columns for word in ("after", "Δ")]
    )
    header = ["encoding", "depth", "before", *names]
    lines = [
        "",
        f"## {title}",
        "",
        f"{measure}: the base reranker reranked with each pair encoding (before) and fine-tuned "
        "and reranked with it (after); Δ against the before of the same row, * as above.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in table["rows"]:
        cells = [f"`{row['encoding']}`", str(row["depth"])]
        cells.append(f"{row['before']['measures'][measure]:.4f}")
        for column in columns:
            after = row["after"].get(column)
            if after is None:
                cells += ["", ""]
                continue
            delta = after["delta"].get(measure)
            mark = "*" if after["significant"].get(measure) else ""
            cells.append(f"{after['measures'][measure]:.4f}")
            cells.append("" if delta is None else f"{delta:+.4f}{mark}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def to_markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown: header lines, then one row per system and depth."""
    measures = summary["measures"]
    baselines = summary.get("baselines", {})
    base_text = "; ".join(f"depth {d}: `{name}`" for d, name in baselines.items()) or "none"
    lines = [
        f"# {summary['experiment']} ({summary['dataset']}, {summary['test_queries']} test queries)",
        "",
        f"Δ vs the baseline at the same depth ({base_text}); * = paired t-test and Wilcoxon both "
        "< 0.05 after Holm–Bonferroni."
        + (
            " A cross-encoder row is compared with the base reranker of its own pair encoding "
            "(column `compared_with` of summary.json)."
            if "encoding_table" in summary
            else ""
        ),
        "",
        summary.get("holm_family_text", ""),
        "",
        KINDS_TEXT,
        "",
        summary.get("overlap", {}).get("text", ""),
        "",
        *_markdown_rows(summary["rows"], measures, summary["test_queries"]),
    ]
    if "encoding_table" in summary:
        lines += _markdown_encoding_table(summary["encoding_table"], measures[0])
    if "no_overlap" in summary:
        block = summary["no_overlap"]
        lines += [
            "",
            f"## Only the {block['test_queries']} test queries without overlap",
            "",
            *_markdown_rows(block["rows"], measures, block["test_queries"]),
        ]
        if "encoding_table" in block:
            lines += _markdown_encoding_table(
                block["encoding_table"],
                measures[0],
                "Pair encoding × fine-tuning, test queries without overlap",
            )
    lines += [
        "",
        f"Wall time of this invocation: {summary['wall_seconds']:.0f} s; stages run: "
        f"{', '.join(summary['stages_ran']) or 'none (all cached)'}.",
    ]
    return "\n".join(line for line in lines if line is not None) + "\n"
