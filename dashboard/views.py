"""DataFrames and page values built from what :mod:`dashboard.loading` read, nothing recomputed.

Every number comes from the pipeline's records: measures, Δ, p-values, significance and
win/tie/loss from ``summary.json``; per-query values from ``per_query.tsv``; filter verdicts and
their measured values from ``verdicts.jsonl``; the exact prompt from ``prompt.json``. Which stage
fed which is read from each row's ``stages`` (stage name -> folder), never guessed from names.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.loading import (
    META_FILE,
    NEWER_PIPELINE,
    PER_QUERY_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    VERDICTS_FILE,
    BadArtifactError,
    Experiment,
    MissingArtifactError,
    StageInfo,
    artifact_data,
    dataset_for,
    document_text,
    per_query_table,
    query_rows,
    read_json,
    resolve_path,
    run_frame,
    stamp,
    training_folder,
    training_logs,
    triples_frame,
    verdict_rows,
    words,
)
from inpars_core.experiments.schema import KINDS_TEXT, SYNTHETIC_TRAINING_STAGES, TRAINING_FIELDS
from inpars_core.experiments.summary import CI_FIELD
from inpars_core.reporting.figures import DeltaPoint

LEGACY_BASELINE = "base (zero-shot)"  # summaries written before rows named their baseline
PER_QUERY_MEASURE = "nDCG@10"
#: Δ within this of 0 is a tie, as ``inpars_core.compare`` counts them.
TIE_TOLERANCE = 1e-9


def stages_frame(experiment: Experiment) -> pd.DataFrame:
    """One row per stage folder: status, seconds, counts."""
    rows = []
    for s in experiment.stages:
        counts = {k: v for k, v in s.counts.items() if isinstance(v, int | float | str | bool)}
        rows.append(
            {
                "stage": s.stage,
                "key": s.key,
                "status": "complete" if s.complete else "unfinished",
                "seconds": s.seconds,
                "counts": ", ".join(f"{k} {v}" for k, v in counts.items()),
            }
        )
    return pd.DataFrame(rows, columns=["stage", "key", "status", "seconds", "counts"])


# --------------------------------------------------------------------------- rows and lineage


def summary_rows(experiment: Experiment) -> list[dict[str, Any]]:
    """The rows of summary.json (empty when the experiment has not finished)."""
    return list((experiment.summary or {}).get("rows") or [])


def no_overlap_rows(experiment: Experiment) -> list[dict[str, Any]]:
    """The rows evaluated on the test queries without overlap (``no_overlap``), if any."""
    block = (experiment.summary or {}).get("no_overlap") or {}
    return list(block.get("rows") or [])


def depth_label(depth: Any) -> str:
    """A row's depth as shown: the number, or ``full`` for a first-stage run."""
    return "full" if depth is None else str(depth)


def row_label(row: Mapping[str, Any]) -> str:
    """``system @depth``: how the pages name a row (unique within one summary)."""
    return f"{row.get('system')} @{depth_label(row.get('depth'))}"


def is_tuned_cross_encoder(row: Mapping[str, Any]) -> bool:
    """A cross-encoder fine-tuned on synthetic queries (kind ``synthetic``, family
    ``cross-encoder``; ``fine-tuned`` in summaries written before the kinds were renamed)."""
    if row.get("kind") == "fine-tuned":
        return True
    return row.get("kind") == "synthetic" and row.get("family", "cross-encoder") == "cross-encoder"


def baselines(experiment: Experiment) -> dict[str, str]:
    """Depth (as a string) -> system name of the row the Δ are computed against there:
    ``summary["baselines"]``, else the rows marked ``baseline``, else (older summaries) the row
    named ``base (zero-shot)``."""
    summary = experiment.summary or {}
    found = {str(d): str(name) for d, name in (summary.get("baselines") or {}).items() if name}
    rows = summary_rows(experiment)
    for row in rows:
        if row.get("baseline") and row.get("depth") is not None:
            found.setdefault(str(row["depth"]), str(row.get("system")))
    if not found and "baselines" not in summary:
        for row in rows:
            if row.get("system") == LEGACY_BASELINE and row.get("depth") is not None:
                found.setdefault(str(row["depth"]), LEGACY_BASELINE)
    return found


def baseline_row(experiment: Experiment, depth: str) -> dict[str, Any] | None:
    """The baseline row at ``depth``, or None."""
    name = baselines(experiment).get(str(depth))
    return next(
        (
            r
            for r in summary_rows(experiment)
            if r.get("system") == name and str(r.get("depth")) == str(depth)
        ),
        None,
    )


def row_stages(experiment: Experiment, row: Mapping[str, Any]) -> dict[str, StageInfo]:
    """Stage name -> stage folder of a summary row, from the row's ``stages`` (what the pipeline
    recorded); stages no longer on disk are left out. Summaries written before rows recorded
    their stages raise :class:`MissingArtifactError` naming summary.json."""
    recorded = row.get("stages")
    if not isinstance(recorded, Mapping):
        raise MissingArtifactError(
            Path(experiment.path) / SUMMARY_FILE,
            f"The `stages` of the rows in {SUMMARY_FILE}",
            NEWER_PIPELINE,
        )
    out = {}
    for name, folder in recorded.items():
        stage = experiment.stage_at(str(folder))
        if stage is not None:
            out[str(name)] = stage
    return out


def row_stage(experiment: Experiment, row: Mapping[str, Any], name: str) -> StageInfo | None:
    """One stage of a row's lineage (None when the row has no such stage or no ``stages``)."""
    if not isinstance(row.get("stages"), Mapping):
        return None
    return row_stages(experiment, row).get(name)


def finetune_of_row(experiment: Experiment, row: Mapping[str, Any]) -> StageInfo | None:
    """The stage that trained a synthetic-query cross-encoder row's model, from its ``stages``:
    ``finetune``, or a label-free variant's ``consistency-train`` / ``synthetic-base-train``
    (:data:`~inpars_core.experiments.schema.SYNTHETIC_TRAINING_STAGES`)."""
    if not is_tuned_cross_encoder(row) or not isinstance(row.get("stages"), Mapping):
        return None
    name = next((n for n in SYNTHETIC_TRAINING_STAGES if n in row["stages"]), None)
    return row_stage(experiment, row, name) if name else None


def variant_of_finetune(experiment: Experiment) -> dict[str, list[str]]:
    """finetune stage key -> variant names that used it (from the summary rows' stages)."""
    out: dict[str, list[str]] = {}
    for row in summary_rows(experiment):
        names = [str(v) for v in [row.get("variant"), *(row.get("variants") or [])] if v]
        tune = finetune_of_row(experiment, row)
        if tune is None:
            continue
        for name in names:
            if name not in out.get(tune.key, []):
                out.setdefault(tune.key, []).append(name)
    return out


def training_stages(experiment: Experiment) -> dict[str, StageInfo]:
    """Label -> cross-encoder training stage (``finetune`` per variant, a label-free variant's
    ``synthetic-base-train`` / ``consistency-train``, and ``base-train``), unfinished ones
    included when they already wrote a log."""
    names = variant_of_finetune(experiment)
    out: dict[str, StageInfo] = {}
    for stage in experiment.stages:
        if stage.stage not in (*SYNTHETIC_TRAINING_STAGES, "base-train"):
            continue
        folder = training_folder(stage.path)
        if not stage.complete and not (folder / "train_log.jsonl").is_file():
            continue
        objective = stage.config.get("objective")
        if objective is None:  # unfinished: the trainer may already have written its meta
            trained_meta = folder / META_FILE
            try:
                objective = (read_json(trained_meta, "meta.json").get("config") or {}).get(
                    "objective"
                )
            except (MissingArtifactError, BadArtifactError, AttributeError):
                objective = None
        objective = objective or "objective unknown"
        if stage.stage == "base-train":
            label = f"base-train ({objective})"
        elif stage.key in names:
            label = " = ".join(names[stage.key])
            if stage.stage != "finetune":  # a label-free variant trains up to two models
                label = f"{label} ({stage.stage})"
        else:
            label = f"{stage.stage} {objective}"
        if label in out or not stage.complete:
            label = f"{label} · {stage.key[:8]}" + ("" if stage.complete else " (unfinished)")
        out[label] = stage
    return out


def rerank_models(experiment: Experiment) -> dict[str, str]:
    """Label -> model folder or hub id of every cross-encoder this experiment has: the base
    reranker (trained here or a Hugging Face id) and each fine-tuned variant."""
    out: dict[str, str] = {}
    for label, stage in training_stages(experiment).items():
        model = training_folder(stage.path) / "model"
        if stage.complete and (model / "config.json").is_file():
            out[label] = str(model)
    by_key = experiment.by_key
    for stage in experiment.of("rerank"):
        model = stage.inputs.get("model", "")
        if not model or model in by_key:
            continue  # a model trained in this experiment: listed above
        # an outside model: ``hf:<id>`` (older runs) or ``<id or folder>@<fingerprint>``
        name = model[3:] if model.startswith("hf:") else model.rsplit("@", 1)[0]
        out.setdefault(name, name)
    return out


@dataclass(frozen=True)
class Generation:
    """One set of synthetic queries and the stages that used it (from the rows' ``stages``)."""

    generate: StageInfo
    filter: StageInfo | None
    triples: StageInfo | None
    synthetic_bm25: StageInfo | None
    variants: tuple[str, ...]
    #: the model-based consistency check of these queries (a label-free variant's), if any
    consistency: StageInfo | None = None

    @property
    def label(self) -> str:
        """The variants it fed (or the stage key), marked when unfinished."""
        name = ", ".join(self.variants) if self.variants else self.generate.label
        if self.variants and not self.generate.complete:
            name += " (unfinished)"
        return name


def generations(experiment: Experiment) -> dict[str, Generation]:
    """Label -> synthetic query set, with the filter, triples and BM25-of-synthetic-queries
    stages that the summary rows record beside it. A generate folder no row names (the
    experiment has not finished) is listed alone: its queries, without verdicts."""
    found: dict[str, dict[str, Any]] = {}
    for row in summary_rows(experiment):
        stages = row_stages(experiment, row) if isinstance(row.get("stages"), Mapping) else {}
        gen = stages.get("generate")
        if gen is None:
            continue
        entry = found.setdefault(gen.key, {"generate": gen, "variants": []})
        for name in ("filter", "triples", "synthetic-bm25", "consistency"):
            if name in stages:
                entry.setdefault(name, stages[name])
        for variant in [row.get("variant"), *(row.get("variants") or [])]:
            if variant and str(variant) not in entry["variants"]:
                entry["variants"].append(str(variant))
    for gen in experiment.of("generate", complete_only=False):
        if gen.key not in found and artifact_data(gen.path, "queries").is_file():
            found[gen.key] = {"generate": gen, "variants": []}
    out: dict[str, Generation] = {}
    for entry in found.values():
        generation = Generation(
            entry["generate"],
            entry.get("filter"),
            entry.get("triples"),
            entry.get("synthetic-bm25"),
            tuple(entry["variants"]),
            entry.get("consistency"),
        )
        label = generation.label
        if label in out:
            label = f"{label} · {generation.generate.key[:8]}"
        out[label] = generation
    return out


def generation_of_run(experiment: Experiment, run_label: str) -> Generation | None:
    """The synthetic query set a row was trained on (its ``stages`` name the generate folder),
    or None."""
    row = next((r for r in summary_rows(experiment) if row_label(r) == run_label), None)
    gen = None if row is None else row_stage(experiment, row, "generate")
    if gen is None:
        return None
    return next((g for g in generations(experiment).values() if g.generate.key == gen.key), None)


def comparable_runs(experiment: Experiment) -> dict[str, dict[str, Any]]:
    """Label (``system @depth``) -> summary row, for every row the pipeline evaluated."""
    if experiment.summary is None:
        raise MissingArtifactError(
            Path(experiment.path) / SUMMARY_FILE,
            SUMMARY_FILE,
            "The per-query values are written when the experiment finishes; rerun "
            "`inpars run CONFIG` to complete it.",
        )
    return {row_label(r): r for r in summary_rows(experiment)}


def run_path(experiment: Experiment, row: Mapping[str, Any]) -> str:
    """The TREC run file of a summary row, re-rooted in this experiment folder."""
    path = resolve_path(experiment, str(row.get("run", "")))
    if not path.is_file():
        raise MissingArtifactError(path, f"The run of {row_label(row)}")
    return str(path)


def default_pair(experiment: Experiment) -> tuple[str | None, str | None]:
    """The runs the per-query page compares first (``system @depth`` labels): the baseline at
    the first depth that has one (else BM25), and a row fine-tuned on synthetic queries at
    that depth, preferably a cross-encoder interpolated with BM25 like the baseline."""
    rows = summary_rows(experiment)
    depths = [d for d in summary_depths(experiment) if d in baselines(experiment)]
    depths += [d for d in baselines(experiment) if d not in depths]
    base = baseline_row(experiment, depths[0]) if depths else None
    if base is None:
        base = next((r for r in rows if r.get("kind") == "bm25"), None)
    weight = (base or {}).get("bm25_weight") or 0
    depth = None if base is None else base.get("depth")

    def rank(row: Mapping[str, Any]) -> tuple[int, int, int]:
        return (
            0 if depth is None or row.get("depth") == depth else 1,
            0 if is_tuned_cross_encoder(row) else 1,
            0 if (row.get("bm25_weight") or 0) == weight else 1,
        )

    synthetic = [r for r in rows if r.get("kind") in ("synthetic", "fine-tuned")]
    tuned = min(synthetic, key=rank) if synthetic else None  # min keeps the first of equals
    return (
        None if base is None else row_label(base),
        None if tuned is None else row_label(tuned),
    )


def test_query_ids(experiment: Experiment) -> tuple[str, ...] | None:
    """The experiment's test queries, as summary.json (or experiment.json) lists them."""
    for record in (experiment.summary, experiment.manifest):
        listed = (record or {}).get("test_query_ids")
        if isinstance(listed, list) and listed:
            return tuple(str(q) for q in listed)
    return None


def per_query_path(experiment: Experiment) -> Path:
    """Where the experiment's per-query values are (``summary["per_query_file"]``)."""
    name = (experiment.summary or {}).get("per_query_file") or PER_QUERY_FILE
    return Path(experiment.path) / str(name)


def row_values(
    experiment: Experiment,
    row: Mapping[str, Any],
    measure: str = PER_QUERY_MEASURE,
    block: str = "all",
) -> pd.Series:
    """Per-query values of one summary row (index: query_id), from ``per_query.tsv``."""
    path = per_query_path(experiment)
    table = per_query_table(str(path), stamp(path))
    index = row.get("row")
    if index is None:
        raise MissingArtifactError(
            Path(experiment.path) / SUMMARY_FILE, f"The `row` index of the rows in {SUMMARY_FILE}",
            NEWER_PIPELINE,
        )  # fmt: skip
    mine = table[(table["block"] == block) & (table["row"] == int(index))]
    mine = mine[mine["measure"] == measure]
    if mine.empty:
        raise MissingArtifactError(
            path, f"{measure} of `{row.get('system')}` ({block}) in {PER_QUERY_FILE}",
            NEWER_PIPELINE,
        )  # fmt: skip
    values = mine.set_index("query_id")["value"].sort_index()
    values.index.name = "query_id"
    return values


def outcome(delta: float) -> str:
    """``win``, ``tie`` or ``loss`` of one per-query Δ (ties within :data:`TIE_TOLERANCE`)."""
    return "win" if delta > TIE_TOLERANCE else "loss" if delta < -TIE_TOLERANCE else "tie"


def per_query_delta(
    experiment: Experiment,
    row_a: Mapping[str, Any],
    row_b: Mapping[str, Any],
    measure: str = PER_QUERY_MEASURE,
) -> pd.DataFrame:
    """Per query: before (row A), after (row B), Δ and win/tie/loss, sorted by Δ, with the
    query text; the values are those the pipeline wrote to ``per_query.tsv``."""
    a = row_values(experiment, row_a, measure)
    b = row_values(experiment, row_b, measure)
    frame = pd.DataFrame({"before": a, "after": b}).fillna(0.0)
    frame["delta"] = frame["after"] - frame["before"]
    frame["outcome"] = [outcome(d) for d in frame["delta"]]
    queries = dataset_for(experiment).queries
    frame["query"] = [queries[q].text if q in queries else "" for q in frame.index]
    frame = frame.sort_values(["delta", "before"], ascending=[False, True], kind="stable")
    frame.index.name = "query_id"
    return frame


def win_tie_loss(frame: pd.DataFrame) -> dict[str, int]:
    """Counts of wins, ties and losses of run B over run A in a :func:`per_query_delta` frame."""
    counts = frame["outcome"].value_counts()
    return {k: int(counts.get(k, 0)) for k in ("win", "tie", "loss")}


def recorded_comparison(
    experiment: Experiment, row_a: Mapping[str, Any], row_b: Mapping[str, Any], measure: str
) -> dict[str, Any] | None:
    """What the pipeline recorded for row B against row A when A is B's baseline (same depth):
    Δ, p-values (t, Wilcoxon), significant after Holm and win/tie/loss; else None."""
    depth = row_b.get("depth")
    if depth is None or row_a.get("depth") != depth:
        return None
    compared_with = row_b.get("compared_with") or baselines(experiment).get(str(depth))
    if compared_with != row_a.get("system"):  # B's Δ is against the base of its encoding
        return None
    if measure not in (row_b.get("delta") or {}):
        return None
    wtl = (row_b.get("wins_ties_losses") or {}).get(measure)
    p_values = (row_b.get("p_values") or {}).get(measure) or {}
    return {
        "delta": row_b["delta"][measure],
        "significant": bool((row_b.get("significant") or {}).get(measure)),
        "t p": p_values.get("t"),
        "wilcoxon p": p_values.get("wilcoxon"),
        "wtl": dict(zip(("win", "tie", "loss"), wtl, strict=True)) if wtl else None,
    }


def ranking(experiment: Experiment, run_path: str, query_id: str) -> pd.DataFrame:
    """One query's ranking of one run (rank, doc_id, score)."""
    frame = run_frame(run_path, stamp(run_path))
    rows = frame[frame["query_id"] == query_id]
    return rows[["rank", "doc_id", "score"]].assign(doc_id=lambda f: f["doc_id"].astype(str))


def side_by_side(
    experiment: Experiment, run_a: str, run_b: str, query_id: str, top: int = 20
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Both rankings of one query (top ``top``) with relevance labels and the rank the other
    run gives each document, and the rank movement of every relevant document."""
    dataset = dataset_for(experiment)
    judged = dataset.qrels("test").get(query_id, {})
    a = ranking(experiment, run_a, query_id)
    b = ranking(experiment, run_b, query_id)
    rank_a = dict(zip(a["doc_id"], a["rank"], strict=True))
    rank_b = dict(zip(b["doc_id"], b["rank"], strict=True))

    def view(rows: pd.DataFrame, other: dict[str, int]) -> pd.DataFrame:
        rows = rows.head(top)
        return pd.DataFrame(
            {
                "rank": rows["rank"].astype(int).to_numpy(),
                "doc_id": rows["doc_id"].to_numpy(),
                "rel": [judged.get(d, 0) for d in rows["doc_id"]],
                "score": rows["score"].to_numpy(),
                "other rank": [other.get(d) for d in rows["doc_id"]],
                "title": [document_text(dataset, d)[0][:90] for d in rows["doc_id"]],
            }
        )

    movement = []
    for doc_id, rel in sorted(judged.items()):
        if rel <= 0:
            continue
        ra, rb = rank_a.get(doc_id), rank_b.get(doc_id)
        moved = None if ra is None or rb is None else ra - rb
        movement.append(
            {
                "doc_id": doc_id,
                "rel": rel,
                "rank A": ra,
                "rank B": rb,
                "moved up by": moved,
                "title": document_text(dataset, doc_id)[0][:90],
            }
        )
    columns = ["doc_id", "rel", "rank A", "rank B", "moved up by", "title"]
    return view(a, rank_b), view(b, rank_a), pd.DataFrame(movement, columns=columns)


# --------------------------------------------------------------------------- overview


def show(value: Any, spec: str = "", missing: str = "n/a") -> str:
    """``format(value, spec)``, or ``missing`` for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def training_of_row(experiment: Experiment, row: Mapping[str, Any]) -> dict[str, Any]:
    """Training facts of a fine-tuned row: the summary's own, else its finetune stage's counts."""
    if row.get("training"):
        return dict(row["training"])
    tune = finetune_of_row(experiment, row)
    if tune is None:
        return {}
    counts = tune.counts
    return {k: counts.get(k) for k in (*TRAINING_FIELDS, "dev", "dev_queries")}


def kept_model_text(training: Mapping[str, Any]) -> str:
    """``kept/final (dev step 0 → best @ step; which dev)``, as summary.md writes it."""
    best = training.get("best_step")
    kept = training.get("kept_step")
    kept = best if kept is None else kept
    dev = f"; {training['dev']} dev" if training.get("dev") else ""
    if best is not None and training.get("best_dev_ndcg10") is not None:
        return (
            f"{kept}/{training.get('final_step')} "
            f"({_fmt(training.get('step0_dev_ndcg10'), 3)} → "
            f"{_fmt(training.get('best_dev_ndcg10'), 3)} @ {best}{dev})"
        )
    final = training.get("final_step")
    if final is not None:
        return f"{final}/{final} (no dev set)"
    return ""


def overlap_of(experiment: Experiment) -> dict[str, Any]:
    """``summary["overlap"]`` (test queries sharing a relevant document with the queries the
    reranker was trained or selected on); empty for older summaries."""
    return dict((experiment.summary or {}).get("overlap") or {})


def summary_notes(experiment: Experiment) -> list[str]:
    """The sentences that say how to read the table: the baseline of each depth, the
    Holm–Bonferroni family, the kinds, and the overlap with the training queries."""
    summary = experiment.summary or {}
    base = baselines(experiment)
    base_text = "; ".join(f"depth {d}: `{name}`" for d, name in base.items()) or "none"
    notes = [
        f"Δ vs the baseline at the same depth ({base_text}); * = paired t-test and Wilcoxon "
        "both < 0.05 after Holm–Bonferroni.",
        str(summary.get("holm_family_text") or ""),
        KINDS_TEXT,
        str(overlap_of(experiment).get("text") or ""),
    ]
    return [n for n in notes if n]


MODEL_KEPT = "model kept: step/steps (dev nDCG@10 step 0 → best @ step)"


def ci_column(measure: str) -> str:
    """The Overview column of the 95 % paired-bootstrap interval of Δ ``measure``."""
    return f"Δ {measure} 95% CI"


def overview_rows(
    experiment: Experiment, depth: str = "all", *, without_overlap: bool = False
) -> list[dict[str, Any]]:
    """The summary rows the Overview shows at ``depth`` (``"all"``: every depth; BM25, without
    a depth, always), from the block without overlap when ``without_overlap``."""
    rows = no_overlap_rows(experiment) if without_overlap else summary_rows(experiment)
    return [
        row
        for row in rows
        if depth == "all" or row.get("depth") is None or str(row.get("depth")) == depth
    ]


def blank_missing(frame: pd.DataFrame) -> Any:
    """``frame`` styled for ``st.dataframe``: missing values (None, NaN, <NA>) as blank cells
    instead of "None", floats with 4 decimals (very small ones, p-values, in scientific
    notation); the data itself is unchanged."""

    def number(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
        return str(value)

    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    return frame.style.format(number, subset=floats, na_rep="").format(
        na_rep="", subset=[c for c in frame.columns if c not in floats]
    )


def overview_frames(
    experiment: Experiment, depth: str = "all", *, without_overlap: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The before/after table: a display frame (value (Δ*) strings, like summary.md) and a raw
    frame with every number, for one depth (``"all"`` for every depth; BM25 always shown).
    ``without_overlap``: the block evaluated on the test queries without overlap."""
    if experiment.summary is None:
        raise MissingArtifactError(
            Path(experiment.path) / SUMMARY_FILE,
            "summary.json",
            "The experiment has not finished; rerun `inpars run CONFIG` to complete it.",
        )
    measures = list(experiment.summary.get("measures") or [])
    base = baselines(experiment)
    display, raw = [], []
    for row in overview_rows(experiment, depth, without_overlap=without_overlap):
        row_depth = row.get("depth")
        values = row.get("measures") or {}
        deltas = row.get("delta") or {}
        marks = row.get("significant") or {}
        p_values = row.get("p_values") or {}
        intervals = row.get(CI_FIELD) or {}
        wtl = (row.get("wins_ties_losses") or {}).get(PER_QUERY_MEASURE)
        training = training_of_row(experiment, row)
        seconds = {k: float(v) for k, v in (row.get("stage_seconds") or {}).items()}
        is_base = bool(row.get("baseline")) or (
            row_depth is not None and base.get(str(row_depth)) == row.get("system")
        )
        shown: dict[str, Any] = {
            "system": row.get("system"),
            "kind": row.get("kind"),
            "depth": depth_label(row_depth),
            "baseline": "✓" if is_base else "",
        }
        numbers: dict[str, Any] = {
            **shown,
            "baseline": is_base,
            "family": row.get("family"),
            "variant": row.get("variant"),
            "variants": ", ".join(str(v) for v in row.get("variants") or []),
            "bm25_weight": row.get("bm25_weight"),
            "pure_system": row.get("pure_system"),
        }
        for m in measures:
            value, delta = values.get(m), deltas.get(m)
            text = _fmt(value)
            if delta is not None:
                text += f" ({delta:+.4f}{'*' if marks.get(m) else ''})"
            shown[m] = text
            numbers[m] = value
            numbers[f"delta {m}"] = delta
            numbers[f"significant {m}"] = marks.get(m)
            numbers[f"t p {m}"] = (p_values.get(m) or {}).get("t")
            numbers[f"wilcoxon p {m}"] = (p_values.get(m) or {}).get("wilcoxon")
            low, high = (intervals.get(m) or (None, None))[:2]
            numbers[f"delta ci95 low {m}"] = low
            numbers[f"delta ci95 high {m}"] = high
        if measures:  # the headline measure's interval beside the values (blank: none)
            shown[ci_column(measures[0])] = DeltaPoint.of(row, measures[0]).interval_text
        shown["W/T/L nDCG@10"] = "/".join(map(str, wtl)) if wtl else ""
        numbers["wins/ties/losses nDCG@10"] = "/".join(map(str, wtl)) if wtl else ""
        shown[MODEL_KEPT] = kept_model_text(training)
        for k in (*TRAINING_FIELDS, "dev", "dev_queries", "kept_queries", "triples"):
            value = training.get(k)  # pairs_per_epoch is a list: one cell "n0, n1, ..."
            numbers[k] = ", ".join(map(str, value)) if isinstance(value, list) else value
        cost = row.get("generation_cost_usd")
        shown["cost US$"] = "" if cost is None else f"{cost:.4f}"
        numbers["generation_cost_usd"] = cost
        shown["seconds"] = f"{sum(seconds.values()):.0f}"
        shown["stage seconds"] = ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
        numbers["seconds"] = sum(seconds.values())
        numbers.update({f"seconds {k}": v for k, v in seconds.items()})
        display.append(shown)
        raw.append(numbers)
    numbers_frame = pd.DataFrame(raw)
    for column in ("best_step", "kept_step", "final_step", "dev_queries", "kept_queries",
                   "triples", "positives", "negatives"):  # fmt: skip
        if column in numbers_frame:  # whole numbers stay whole in the CSV beside empty cells
            numbers_frame[column] = numbers_frame[column].astype("Int64")
    return pd.DataFrame(display), numbers_frame


def variants_frame(experiment: Experiment) -> pd.DataFrame:
    """One row per fine-tuned model: the variants that used it, its objective and learning
    rate, and the synthetic queries and triples it was trained on (the stages its rows record)."""
    rows: dict[str, dict[str, Any]] = {}
    for row in summary_rows(experiment):
        tune = finetune_of_row(experiment, row)
        if tune is None:
            continue
        stages = row_stages(experiment, row)
        names = [str(v) for v in [row.get("variant"), *(row.get("variants") or [])] if v]
        entry = rows.get(tune.key)
        if entry is not None:
            known = entry["variant"].split(", ")
            entry["variant"] = ", ".join(dict.fromkeys([*known, *names]))
            continue
        config, counts = tune.config, tune.counts

        def count(stage: str, name: str, stages: dict[str, StageInfo] = stages) -> Any:
            return stages[stage].counts.get(name) if stage in stages else None

        rows[tune.key] = {
            "variant": ", ".join(names) or f"({tune.key[:8]})",
            "objective": config.get("objective"),
            "lr": config.get("lr"),
            "max_steps": config.get("max_steps"),
            "generated": count("generate", "queries"),
            "kept": count("filter", "kept"),
            "triples": count("triples", "triples"),
            "dev": counts.get("dev"),
            "best step": counts.get("best_step"),
            "final step": counts.get("final_step"),
            "finetune key": tune.key,
        }
    return pd.DataFrame(list(rows.values()))


def summary_depths(experiment: Experiment) -> list[str]:
    """Rerank depths in the summary, as strings."""
    return [str(d) for d in (experiment.summary or {}).get("depths") or []]


def stage_seconds_frame(experiment: Experiment) -> pd.DataFrame:
    """Long frame (system, depth, stage, seconds) for the stage-time chart."""
    rows = []
    for row in summary_rows(experiment):
        for stage_name, seconds in (row.get("stage_seconds") or {}).items():
            rows.append(
                {
                    "system": row_label(row),
                    "stage": stage_name,
                    "seconds": float(seconds),
                }
            )
    return pd.DataFrame(rows, columns=["system", "stage", "seconds"])


def paired_frame(
    experiment: Experiment, depth: str, measure: str, *, without_overlap: bool = False
) -> pd.DataFrame | None:
    """The paired tests the pipeline ran at ``depth`` on ``measure`` (one row per system,
    baseline first): mean, Δ, win/tie/loss, t-test and Wilcoxon p-values and the Holm verdict,
    as summary.json records them (``without_overlap``: its ``no_overlap`` block). None when
    that depth has no baseline or nothing was compared with it."""
    name = baselines(experiment).get(str(depth))
    rows = no_overlap_rows(experiment) if without_overlap else summary_rows(experiment)
    at_depth = [r for r in rows if str(r.get("depth")) == str(depth)]
    base = next((r for r in at_depth if r.get("system") == name), None)
    others = [
        r
        for r in at_depth
        if r is not base
        and measure in (r.get("delta") or {})
        and r.get("compared_with", name) == name  # not rows compared with another encoding's
    ]
    if base is None or not others:
        return None
    table = [
        {
            "run": base.get("system"),
            "mean": (base.get("measures") or {}).get(measure),
            "significant": "",
        }
    ]
    for r in others:
        wtl = (r.get("wins_ties_losses") or {}).get(measure) or [None, None, None]
        p_values = (r.get("p_values") or {}).get(measure) or {}
        table.append(
            {
                "run": r.get("system"),
                "mean": (r.get("measures") or {}).get(measure),
                "delta": r["delta"][measure],
                "win": wtl[0],
                "tie": wtl[1],
                "loss": wtl[2],
                "t p": p_values.get("t"),
                "Wilcoxon p": p_values.get("wilcoxon"),
                "significant": "*" if (r.get("significant") or {}).get(measure) else "",
            }
        )
    frame = pd.DataFrame(table)
    for column in ("win", "tie", "loss"):
        frame[column] = frame[column].astype("Int64")
    return frame


# --------------------------------------------------------------------------- synthetic queries

#: Filter name -> the flag shown when that filter dropped a query (copies and duplicates).
FLAGS = {
    "duplicates": "duplicate",
    "document-copy": "copies document",
    "example-copy": "copies few-shot example",
}
SYNTHETIC_COLUMNS = [
    "query_id", "doc_id", "text", "words", "mean_logprob", "sum_logprob", "completion_tokens",
    "verdict", "dropped by", "reasons", "flags", "doc overlap", "example jaccard", "source rank",
    "cost_usd", "latency_s", "raw_output", "prompt_hash",
]  # fmt: skip


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def synthetic_frame(
    queries: Sequence[Mapping[str, Any]],
    verdicts: Sequence[Mapping[str, Any]] | None,
    source_ranks: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """Every generated query (``queries.jsonl``) with its log-prob and length, and, when the
    filter stage ran, its verdict, the filters that dropped it with their reasons, flags
    (duplicate, copy of the document or of a few-shot example) and the measured values, all as
    ``verdicts.jsonl`` records them; plus the BM25 rank of its source document."""
    by_query = {str(v.get("query_id")): v for v in verdicts or []}
    ranks = dict(source_ranks or {})
    records = []
    for q in queries:
        qid = q.get("query_id")
        if not isinstance(qid, str) or not isinstance(q.get("doc_id"), str):
            continue
        text = str(q.get("text") or "")
        record = by_query.get(qid)
        values: dict[str, Any] = {}
        against: list[Mapping[str, Any]] = []
        if record is None:
            verdict = "not filtered"
        else:
            verdict = "kept" if record.get("kept") else "dropped"
            for v in record.get("verdicts") or []:
                values[str(v.get("filter"))] = v.get("value")
                if not v.get("kept", True):
                    against.append(v)
        rank = values.get("round-trip", ranks.get(qid))
        records.append(
            {
                "query_id": qid,
                "doc_id": q["doc_id"],
                "text": text,
                "words": len(words(text)),
                "mean_logprob": _number(q.get("mean_logprob")),
                "sum_logprob": _number(q.get("sum_logprob")),
                "completion_tokens": q.get("completion_tokens"),
                "verdict": verdict,
                "dropped by": ", ".join(str(v.get("filter")) for v in against),
                "reasons": "; ".join(str(v.get("reason") or "") for v in against),
                "flags": ", ".join(
                    FLAGS[str(v.get("filter"))] for v in against if str(v.get("filter")) in FLAGS
                ),
                "doc overlap": _number(values.get("document-copy")),
                "example jaccard": _number(values.get("example-copy")),
                "source rank": None if rank is None else int(rank),
                "cost_usd": _number(q.get("cost_usd")),
                "latency_s": _number(q.get("latency_s")),
                "raw_output": str(q.get("raw_output") or ""),
                "prompt_hash": str(q.get("prompt_hash") or ""),
            }
        )
    return pd.DataFrame(records, columns=SYNTHETIC_COLUMNS)


def _source_ranks(generation: Generation, queries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Rank of each query's source document in the BM25 run of the synthetic queries."""
    if generation.synthetic_bm25 is None:
        return {}
    path = Path(generation.synthetic_bm25.path) / RUN_FILE
    if not path.is_file():
        return {}
    frame = run_frame(str(path), stamp(path))
    source = {str(q.get("query_id")): str(q.get("doc_id")) for q in queries}
    wanted = frame["query_id"].astype(str).map(source).to_numpy()
    hits = frame[frame["doc_id"].astype(str).to_numpy() == wanted]
    return dict(zip(hits["query_id"].astype(str), hits["rank"].astype(int), strict=True))


def filter_verdicts(generation: Generation) -> list[dict[str, Any]] | None:
    """``verdicts.jsonl`` of the generation's filter stage (None when it has not run)."""
    if generation.filter is None:
        return None
    path = Path(generation.filter.path) / VERDICTS_FILE
    if not path.is_file():
        raise MissingArtifactError(path, VERDICTS_FILE, NEWER_PIPELINE)
    return verdict_rows(generation.filter.path, stamp(path))


def synthetic_for(experiment: Experiment, generation: Generation) -> tuple[pd.DataFrame, int]:
    """The synthetic-query table of one generation (see :func:`synthetic_frame`) and the number
    of unreadable lines of ``queries.jsonl``."""
    path = artifact_data(generation.generate.path, "queries")
    queries, bad = query_rows(generation.generate.path, stamp(path))
    verdicts = filter_verdicts(generation)
    return synthetic_frame(queries, verdicts, _source_ranks(generation, queries)), bad


def consistency_frame(generation: Generation) -> pd.DataFrame | None:
    """The consistency check's verdicts (``verdicts.jsonl`` of the ``consistency`` stage): per
    query its text, whether the model trained on the queries kept it, the model's rank of the
    source document and the reason; None when no consistency stage ran for these queries."""
    if generation.consistency is None:
        return None
    path = Path(generation.consistency.path) / VERDICTS_FILE
    if not path.is_file():
        raise MissingArtifactError(path, VERDICTS_FILE, NEWER_PIPELINE)
    columns = ["query_id", "text", "verdict", "source rank (model)", "reason", "doc_id"]
    table = []
    for record in verdict_rows(generation.consistency.path, stamp(path)):
        mine = [v for v in record.get("verdicts") or [] if v.get("filter") == "consistency"]
        verdict = mine[0] if mine else {}
        table.append(
            {
                "query_id": str(record.get("query_id")),
                "text": str(record.get("text") or ""),
                "verdict": "kept" if record.get("kept") else "dropped",
                "source rank (model)": _number(verdict.get("value")),
                "reason": str(verdict.get("reason") or ""),
                "doc_id": str(record.get("doc_id")),
            }
        )
    return pd.DataFrame(table, columns=columns)


def verdicts_of(generation: Generation, query_id: str) -> pd.DataFrame:
    """Each filter's verdict on one query (filter, kept, reason, value), from verdicts.jsonl."""
    rows = filter_verdicts(generation) or []
    record = next((r for r in rows if r.get("query_id") == query_id), None)
    columns = ["filter", "kept", "reason", "value"]
    if record is None:
        return pd.DataFrame(columns=columns)
    table = [
        {
            "filter": str(v.get("filter")),
            "kept": bool(v.get("kept")),
            "reason": str(v.get("reason") or ""),
            "value": _number(v.get("value")),
        }
        for v in record.get("verdicts") or []
    ]
    return pd.DataFrame(table, columns=columns)


def filled_prompt(record: Mapping[str, Any], document: str) -> str:
    """The prompt the generator got for ``document`` (its contents: title and text): the
    template with the placeholder replaced by the document's first ``max_document_words``
    whitespace-separated words, as the generator truncates it."""
    limit = int(record.get("max_document_words") or 0)
    body = document.split()
    body = " ".join(body[:limit] if limit > 0 else body)
    placeholder = str(record.get("document_placeholder") or "{document}")
    return str(record["template"]).replace(placeholder, body)


def prompt_of(
    experiment: Experiment, generation: Generation, doc_id: str, prompt_hash: str = ""
) -> dict[str, Any]:
    """The exact prompt of a query generated from ``doc_id``: ``text`` (the filled template),
    ``system_message`` (chat models), ``prompt_id``, ``chat``, ``prompt_hash`` and whether it
    matches the query's recorded hash (``hash_matches``; None when the query has none)."""
    from dashboard.loading import PROMPT_FILE, prompt_record

    path = Path(generation.generate.path) / PROMPT_FILE
    record = prompt_record(generation.generate.path, stamp(path))
    doc = dataset_for(experiment).corpus.get(doc_id)
    if doc is None:
        raise MissingArtifactError(
            f"{experiment.dataset_path or experiment.dataset}: {doc_id}", f"Document {doc_id!r}"
        )
    recorded = str(record.get("prompt_hash") or "")
    return {
        "text": filled_prompt(record, doc.contents),
        "system_message": record.get("system_message") if record.get("chat") else None,
        "chat": bool(record.get("chat")),
        "prompt_id": record.get("prompt_id"),
        "prompt_hash": recorded,
        "max_document_words": record.get("max_document_words"),
        "hash_matches": None if not prompt_hash else prompt_hash == recorded,
    }


def filter_queries(
    frame: pd.DataFrame,
    search: str = "",
    verdicts: Sequence[str] = (),
    flagged_only: bool = False,
    logprob_range: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Rows matching a case-insensitive search (query text, ids), the chosen verdicts, only
    flagged rows, and a mean log-prob range."""
    mask = pd.Series(True, index=frame.index)
    if search:
        needle = search.casefold()
        mask &= (
            frame["text"].str.casefold().str.contains(needle, regex=False)
            | frame["query_id"].str.casefold().str.contains(needle, regex=False)
            | frame["doc_id"].str.casefold().str.contains(needle, regex=False)
        )
    if verdicts:
        mask &= frame["verdict"].isin(list(verdicts))
    if flagged_only:
        mask &= frame["flags"] != ""
    if logprob_range is not None:
        lp = frame["mean_logprob"]
        mask &= lp.isna() | lp.between(logprob_range[0], logprob_range[1])
    return frame[mask]


def negatives_for(experiment: Experiment, generation: Generation, query_id: str) -> pd.DataFrame:
    """The negatives mined for one synthetic query: BM25 rank, source, teacher scores, title."""
    if generation.triples is None:
        raise MissingArtifactError(
            Path(experiment.path) / "stages" / "triples",
            "The triples stage of this generation",
            "Negatives are mined after filtering; rerun the experiment to get there.",
        )
    path = Path(generation.triples.path) / "triples.jsonl"
    frame = triples_frame(generation.triples.path, stamp(path))
    rows = frame[frame["query_id"] == query_id].copy()
    dataset = dataset_for(experiment)
    rows["neg title"] = [document_text(dataset, d)[0][:90] for d in rows["neg_doc_id"]]
    return rows[
        ["neg_doc_id", "neg_source", "neg_rank", "teacher_pos_score", "teacher_neg_score",
         "neg title"]
    ].reset_index(drop=True)  # fmt: skip


def closest_synthetic(
    experiment: Experiment, query_text: str, generation: Generation | None, k: int = 5
) -> pd.DataFrame:
    """The kept synthetic training queries closest to a test query by word-set Jaccard."""
    gens = [generation] if generation is not None else list(generations(experiment).values())
    target = set(words(query_text))
    rows = []
    for gen in gens:
        frame, _ = synthetic_for(experiment, gen)
        if "kept" in set(frame["verdict"]):
            frame = frame[frame["verdict"] == "kept"]
        for qid, doc_id, text in frame[["query_id", "doc_id", "text"]].itertuples(index=False):
            other = set(words(text))
            union = target | other
            score = len(target & other) / len(union) if union else 0.0
            rows.append({"overlap": score, "synthetic query": text, "query_id": qid,
                         "source doc": doc_id})  # fmt: skip
    frame = pd.DataFrame(rows, columns=["overlap", "synthetic query", "query_id", "source doc"])
    frame = frame.sort_values("overlap", ascending=False, kind="stable")
    return frame.head(k).reset_index(drop=True)


# --------------------------------------------------------------------------- encodings


def tokens_html(explained: Mapping[str, Any]) -> str:
    """Tokens as coloured chips: token type 0 blue, 1 orange; padding (mask 0) grey and struck
    through; a scissors mark where truncation cut the document."""
    chips = []
    for token, kind, mask in zip(
        explained["tokens"], explained["token_type_ids"], explained["attention_mask"], strict=True
    ):
        colour = "#f3f3f3" if not mask else ("#d6e6ff" if kind == 0 else "#ffe0b8")
        style = (
            f"background:{colour};border-radius:3px;padding:1px 3px;margin:1px;"
            "display:inline-block;font-family:monospace;font-size:0.85em"
        )
        if not mask:
            style += ";text-decoration:line-through;color:#999"
        chips.append(
            f'<span title="type {kind} · mask {mask}" style="{style}">{html.escape(token)}</span>'
        )
    if explained.get("truncated"):
        chips.append(
            '<span style="color:#c00;font-weight:bold;margin-left:4px">✂ truncated at '
            f"{explained['max_length']} (of {explained['untruncated_length']} tokens)</span>"
        )
    return '<div style="line-height:1.9">' + "".join(chips) + "</div>"


def tokens_frame(explained: Mapping[str, Any]) -> pd.DataFrame:
    """Position, token, id, token type and attention mask of every position."""
    return pd.DataFrame(
        {
            "token": explained["tokens"],
            "input_id": explained["input_ids"],
            "token_type_id": explained["token_type_ids"],
            "attention_mask": explained["attention_mask"],
        }
    )


#: What each pair encoding is, for the Encodings page's column titles.
ENCODING_TITLES = {
    "pair": "correct",
    "zero-types": "the seed's bug",
    "separate": "texts encoded apart",
}


def encodings_frame(explained: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per pair encoding of the same pair, side by side: [CLS] count, length kept (and
    without truncation), whether it was truncated, type-1 tokens and the problems found."""
    rows = [
        {
            "encoding": mode,
            "[CLS]": e["cls_count"],
            "length": e["length"],
            "untruncated length": e["untruncated_length"],
            "truncated": bool(e["truncated"]),
            "type-1 tokens": e["type1_tokens"],
            "problems": "; ".join(e["problems"]),
        }
        for mode, e in explained.items()
    ]
    return pd.DataFrame(rows)


def rerank_encodings(experiment: Experiment) -> pd.DataFrame:
    """What each cross-encoder row's rerank stage recorded of its pair encoding (meta.json
    ``encoding``): the encoding, the share of type-1 tokens, [CLS] per pair, all types 0."""
    rows = []
    for row in summary_rows(experiment):
        if row.get("family") != "cross-encoder" or row.get("bm25_weight"):
            continue  # an interpolated row shares its pure row's rerank stage
        stage = row_stage(experiment, row, "rerank")
        seen = (stage.meta.get("encoding") if stage is not None else None) or {}
        rows.append(
            {
                "system": row.get("system"),
                "depth": depth_label(row.get("depth")),
                "encoding": row.get("encoding") or seen.get("pair_encoding"),
                "type-1 share": seen.get("type1_share"),
                "[CLS] per pair": seen.get("cls_per_pair"),
                "all types 0": seen.get("all_zero_types"),
                "pairs checked": seen.get("pairs_checked"),
            }
        )
    columns = ["system", "depth", "encoding", "type-1 share", "[CLS] per pair", "all types 0",
               "pairs checked"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def default_max_length(experiment: Experiment) -> int:
    """The max_length the experiment's rerank (or fine-tune) stage used, else 256."""
    for stage in experiment.of("rerank") + experiment.of("finetune"):
        value = stage.config.get("max_length")
        if isinstance(value, int) and value >= 8:
            return value
    return 256


def sample_pairs(experiment: Experiment, limit: int = 50) -> dict[str, tuple[str, str, str]]:
    """Label -> (query, document id, document) pairs from the data: test queries with their
    first relevant document and synthetic queries with their source document."""
    dataset = dataset_for(experiment)
    out: dict[str, tuple[str, str, str]] = {}
    ids = test_query_ids(experiment) or tuple(dataset.qrels("test"))
    qrels = dataset.qrels("test")
    for qid in ids[:limit]:
        relevant = [d for d, r in qrels.get(qid, {}).items() if r > 0 and d in dataset.corpus]
        if qid in dataset.queries and relevant:
            text = dataset.queries[qid].text
            doc = dataset.corpus[relevant[0]]
            out[f"test {qid}: {text[:60]}"] = (text, doc.doc_id, doc.contents)
    for gen in generations(experiment).values():
        try:
            frame, _ = synthetic_for(experiment, gen)
        except (MissingArtifactError, BadArtifactError):
            continue  # the synthetic-queries page says what is missing
        rows = frame[["query_id", "doc_id", "text"]].head(limit).itertuples(index=False)
        for qid, doc_id, text in rows:
            if doc_id in dataset.corpus:
                doc = dataset.corpus[doc_id]
                out[f"synthetic {qid}: {text[:60]}"] = (text, doc_id, doc.contents)
    return out


# --------------------------------------------------------------------------- training


TrainingView = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[tuple[str, str]]]


def training_for(labels: Sequence[str], stages: Mapping[str, StageInfo]) -> TrainingView:
    """Long train and eval frames (column ``run``) for the chosen training stages, a table of
    what each run did (first/last loss, step-0 vs best dev nDCG@10, probe spread, drift), and
    the notes and pitfall warnings the trainer recorded."""
    trains, evals, table, notes = [], [], [], []
    for label in labels:
        stage = stages[label]
        trained = training_folder(stage.path)
        train, ev, meta = training_logs(
            stage.path, stamp(trained / "train_log.jsonl", trained / "eval_log.jsonl")
        )
        trains.append(train.assign(run=label))
        evals.append(ev.assign(run=label))
        config = meta.get("config") or stage.config
        results = {**stage.counts, **(meta.get("results") or {})}
        best = None
        if len(ev) and ev["nDCG@10"].notna().any():
            best = ev.loc[ev["nDCG@10"].idxmax()]
        best_step = results.get("best_step", None if best is None else int(best["step"]))
        kept_step = results.get("kept_step")
        step0 = ev[ev["step"] == 0]
        first = ev.iloc[0] if len(ev) else None
        last = ev.iloc[-1] if len(ev) else None
        table.append(
            {
                "run": label,
                "objective": config.get("objective"),
                "lr": config.get("lr"),
                "steps": int(train["step"].max()) if len(train) else 0,
                **trained_pairs(results),
                "first loss": float(train["loss"].iloc[0]) if len(train) else None,
                "last loss": float(train["loss"].iloc[-1]) if len(train) else None,
                "dev nDCG@10 step 0": float(step0["nDCG@10"].iloc[0]) if len(step0) else None,
                "best dev nDCG@10": None if best is None else float(best["nDCG@10"]),
                "best step": best_step,
                "kept step": best_step if kept_step is None else kept_step,
                "problem_type": results.get("problem_type"),
                "probe std first → last": (
                    f"{first['probe_std']:.3f} → {last['probe_std']:.3f}"
                    if first is not None and pd.notna(first["probe_std"])
                    else ""
                ),
                "param drift": float(train["param_drift"].iloc[-1]) if len(train) else None,
                "complete": stage.complete,
            }
        )
        for note in meta.get("notes") or stage.counts.get("notes") or []:
            # structured {code, level, text} in a stage's meta.json; plain text in older runs
            notes.append((label, str(note["text"] if isinstance(note, Mapping) else note)))
    train_long = pd.concat(trains, ignore_index=True) if trains else pd.DataFrame()
    eval_long = pd.concat(evals, ignore_index=True) if evals else pd.DataFrame()
    return train_long, eval_long, pd.DataFrame(table), notes


def trained_pairs(counts: Mapping[str, Any]) -> dict[str, Any]:
    """The (query, document) pairs a training run trained on, from its meta.json counts:
    positives, negatives, their ratio (``1:5``) and the pairs of each epoch (None for runs
    that predate these counts, and for the bi-encoder trainer)."""
    per_epoch = counts.get("pairs_per_epoch")
    return {
        "positives": counts.get("positives"),
        "negatives": counts.get("negatives"),
        "pos:neg": counts.get("pos_neg_ratio"),
        "pairs per epoch": ", ".join(map(str, per_epoch)) if per_epoch else None,
    }


def marked_points(eval_long: pd.DataFrame, table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The evaluation of each run at the step named in ``table[column]`` (``best step`` or
    ``kept step``), when that step was evaluated."""
    if eval_long.empty or table.empty or eval_long["nDCG@10"].isna().all():
        return eval_long.head(0)
    steps = dict(zip(table["run"], table[column], strict=True))
    wanted = eval_long.apply(lambda r: steps.get(r["run"]) == r["step"], axis=1)
    return eval_long[wanted.astype(bool)].dropna(subset=["nDCG@10"])


_PITFALL = re.compile(r"\bP(\d+)\b")


def classify_notes(notes: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(run, note, level): ``error`` for the silent-MSE pitfall (P2, a regression loss on 0/1
    labels), ``warning`` for any other named pitfall, ``info`` for the rest."""
    out = []
    for label, note in notes:
        pitfalls = set(_PITFALL.findall(note))
        if "2" in pitfalls or "'regression'" in note:
            level = "error"
        elif pitfalls:
            level = "warning"
        else:
            level = "info"
        out.append((label, note, level))
    return out


# --------------------------------------------------------------------------- links and aliases


def row_aliases(runs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """System name -> label (``system @depth``) of its shallowest row: a link may name a row by
    its system alone (``per-query?a=<system>``)."""
    out: dict[str, str] = {}
    ordered = sorted(runs.items(), key=lambda item: depth_order(item[1].get("depth")))
    for label, row in ordered:
        out.setdefault(str(row.get("system")), label)
    return out


def depth_order(depth: Any) -> float:
    """Sort key of a depth: the first stage (``None``) first, then by number."""
    if depth is None:
        return -1.0
    try:
        return float(depth)
    except (TypeError, ValueError):
        return math.inf


def stage_aliases(stages: Mapping[str, StageInfo]) -> dict[str, str]:
    """``stage/key``, ``stage/<key[:8]>`` and the bare key -> the label a page lists the stage
    under: a link names a training run by its folder (``training?runs=finetune/<key>``)."""
    out: dict[str, str] = {}
    for label, stage in stages.items():
        for alias in (f"{stage.stage}/{stage.key}", f"{stage.stage}/{stage.key[:8]}", stage.key):
            out.setdefault(alias, label)
    return out


def pair_aliases(pairs: Mapping[str, tuple[str, str, str]]) -> dict[str, str]:
    """Query id and ``query_id/doc_id`` -> the label of a pair of :func:`sample_pairs` (labels
    read ``test <query_id>: <text>`` or ``synthetic <query_id>: <text>``)."""
    out: dict[str, str] = {}
    for label, (_, doc_id, _) in pairs.items():
        head = label.split(": ", 1)[0]
        query_id = head.split(" ", 1)[1] if " " in head else head
        out.setdefault(query_id, label)
        out.setdefault(f"{query_id}/{doc_id}", label)
    return out


def generation_aliases(gens: Mapping[str, Generation]) -> dict[str, str]:
    """Variant name and ``generate/<key>`` -> the label of the query set that variant used."""
    out: dict[str, str] = {}
    for label, gen in gens.items():
        for variant in gen.variants:
            out.setdefault(variant, label)
        out.setdefault(f"generate/{gen.generate.key}", label)
        out.setdefault(gen.generate.key, label)
    return out


# --------------------------------------------------------------------------- diagnosis


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v) for v in value)
    return "" if value is None else str(value)


def _numeric_key(key: Any) -> float | None:
    try:
        return float(key)
    except (TypeError, ValueError):
        return None


def evidence_parts(
    evidence: Mapping[str, Any],
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """A finding's evidence split for display: (the single values as a ``name``/``value``
    table, the series to chart, the record lists to show as tables).

    A series is a list of at least two numbers (x: its ``steps`` sibling of the same length
    when the evidence has one, else the position) or a mapping of at least two numeric keys
    (e.g. step -> value) to numbers; a list of mappings is a record table; a mapping of other
    keys adds ``name.key`` rows to the table. Values are shown as recorded (4 significant
    digits for floats), blank for none."""
    names: list[str] = []
    values: list[str] = []
    series: dict[str, pd.DataFrame] = {}
    records: dict[str, pd.DataFrame] = {}
    steps = evidence.get("steps")
    used_steps = False
    for name, value in evidence.items():
        if name == "steps":
            continue
        if isinstance(value, list | tuple) and len(value) >= 2 and all(map(_is_number, value)):
            use_steps = isinstance(steps, list | tuple) and len(steps) == len(value)
            used_steps = used_steps or use_steps
            x = list(steps) if use_steps else list(range(len(value)))
            series[name] = pd.DataFrame({"step" if use_steps else "position": x, name: value})
        elif (
            isinstance(value, Mapping)
            and len(value) >= 2
            and all(_numeric_key(k) is not None for k in value)
            and all(map(_is_number, value.values()))
        ):
            pairs = sorted((_numeric_key(k), v) for k, v in value.items())
            series[name] = pd.DataFrame(
                {"step": [k for k, _ in pairs], name: [v for _, v in pairs]}
            )
        elif (
            isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value)
        ):
            records[name] = pd.DataFrame([dict(v) for v in value])
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                names.append(f"{name}.{key}")
                values.append(_shown(inner))
        else:
            names.append(str(name))
            values.append(_shown(value))
    if steps is not None and not used_steps:
        names.append("steps")
        values.append(_shown(steps))
    return pd.DataFrame({"name": names, "value": values}), series, records


def fix_frame(overrides: Mapping[str, Any], sources: Mapping[str, str]) -> pd.DataFrame:
    """The new variant's settings: key, value (as TOML writes it) and the finding it fixes
    (blank for the variant's own overrides)."""
    from inpars_core.diagnosis.fixes import toml_value

    return pd.DataFrame(
        {
            "setting": list(overrides),
            "value": [toml_value(v) for v in overrides.values()],
            "from finding": [sources.get(k, "") for k in overrides],
        }
    )


def finding_id_links(
    ids: Sequence[str],
    page: str,
    *,
    experiment: str,
    system: str,
    baseline: str,
    test_query_ids: Sequence[str],
) -> list[tuple[str, str | None]]:
    """(id, relative link or None) for each id of a finding: a test query opens the per-query
    comparison of the variant and its baseline on that query; another query or pair opens the
    finding's own page (synthetic queries: ``q``; encodings: ``pair``) when it is one of those."""
    from dashboard.ui import page_url

    tests = set(test_query_ids)
    path = page.split("?", 1)[0].strip("/")
    out: list[tuple[str, str | None]] = []
    for item in ids:
        query_id = str(item).split("/", 1)[0]
        if query_id in tests and system and baseline:
            params = {"exp": experiment, "a": baseline, "b": system, "query": query_id}
            out.append((str(item), page_url("per-query", params)))
        elif path == "synthetic":
            out.append((str(item), page_url("synthetic", {"exp": experiment, "q": query_id})))
        elif path == "encodings":
            params = {"exp": experiment, "src": "from the data", "pair": str(item)}
            out.append((str(item), page_url("encodings", params)))
        else:
            out.append((str(item), None))
    return out
