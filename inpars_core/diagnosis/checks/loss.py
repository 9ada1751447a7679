"""P2 silent MSE, P3 re-initialised head, P4 zero loss: what the loss and the head of the
fine-tuning run were, from the finetune stage's ``meta.json`` (objective, problem_type,
num_labels, first-batch loss, the trainer's notes), its ``eval_log.jsonl`` (probe logit mean and
std, dev nDCG@10 from step 0) and its ``train_log.jsonl`` (loss per step).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inpars_core.diagnosis.context import MissingEvidenceError, VariantContext, page_link
from inpars_core.diagnosis.findings import Finding
from inpars_core.diagnosis.registry import check
from inpars_core.training.loading import HEAD_THROWN_AWAY, NEW_HEAD_NOTE

#: The score scale has collapsed when the probe logit std at the kept step is below the step-0
#: std divided by this factor. On the demo (SciFact, 200 steps) hf-default's std fell 3.4× (0.44
#: → 0.13) while lce's grew 2× (0.44 → 0.94): a 3× fall is far outside what a sound objective
#: does to a trained reranker's scale.
COLLAPSE_FACTOR = 3.0
#: Below this step-0 probe std the starting scores carry no scale to collapse (a new head's
#: logits are all ~0: std ~0.01).
MIN_STEP0_STD = 0.05
#: Two runs of the same starting model on the same dev set give the same step-0 dev nDCG@10
#: (fp32, eval mode, same pairs); a re-initialised head moves it by far more than this.
STEP0_TOLERANCE = 1e-3
#: Test queries listed as the ones that show a loss (most lost first).
SHOWN_QUERIES = 5


def _notes(meta: dict[str, Any]) -> list[str]:
    """The trainer's notes (``counts.notes``, else the structured ``notes`` texts)."""
    notes = meta.get("counts", {}).get("notes")
    if notes is None:
        notes = [
            n.get("text", "") if isinstance(n, dict) else str(n) for n in meta.get("notes", [])
        ]
    return [str(note) for note in notes]


def _eval_at(records: list[dict[str, Any]], step: Any) -> dict[str, Any]:
    """The evaluation record of ``step`` (the last one when that step was not evaluated)."""
    for record in records:
        if record.get("step") == step:
            return record
    return records[-1]


def _worst_queries(ctx: VariantContext, tuned: dict[str, Any], base: dict[str, Any]) -> tuple:
    """Test queries the fine-tuned row lost most on against ``base`` (nDCG@10)."""
    try:
        after, before = ctx.per_query(tuned), ctx.per_query(base)
    except MissingEvidenceError:
        return ()
    losses = sorted((after[q] - before[q], q) for q in after if q in before)
    return tuple(q for delta, q in losses[:SHOWN_QUERIES] if delta < 0)


def _training_page(ctx: VariantContext, tuned: dict[str, Any]) -> str:
    return page_link("training", runs=ctx.finetune_label(tuned))


@check("P2", "silent MSE")
def silent_mse(ctx: VariantContext) -> Finding:
    """The model's own loss regressing the logit onto 0/1 labels (``hf-default``:
    ``problem_type`` regression), the first-batch loss, and the probe logit std and mean from
    step 0 to the kept step (a fall by :data:`COLLAPSE_FACTOR` or more: score-scale collapse).

    fail: silent MSE and (the fine-tuned row is below the starting model's, or the scale
    collapsed); warn: silent MSE without visible harm; ok: another loss."""
    from inpars_core.training.trainer import LARGE_FIRST_LOSS

    tuned = ctx.tuned_row()
    meta = ctx.meta(tuned, ctx.training_stage(tuned))
    results, counts = meta.get("results", {}), meta.get("counts", {})
    objective = meta.get("config", {}).get("objective") or meta.get("objective", {}).get("name")
    problem_type = results.get("problem_type")
    loss = meta.get("objective", {}).get("loss")
    notes = _notes(meta)
    silent = any(n.startswith("P2:") for n in notes) or (
        problem_type == "regression" and loss == "ModelOwnLoss"
    )
    first_loss = counts.get("first_loss", results.get("first_loss"))
    evidence: dict[str, Any] = {
        "objective": objective,
        "problem_type": problem_type,
        "first_loss": first_loss,
    }
    collapsed = False
    try:
        records = ctx.stage_jsonl(tuned, ctx.training_stage(tuned), "eval_log.jsonl")
    except MissingEvidenceError:
        records = []
    if records and records[0].get("probe_std") is not None:
        kept_step = counts.get("kept_step", results.get("kept_step"))
        start, kept = records[0], _eval_at(records, kept_step)
        step0_std, kept_std = start["probe_std"], kept.get("probe_std")
        evidence.update(
            step0_probe_std=step0_std,
            kept_probe_std=kept_std,
            step0_probe_mean=start.get("probe_mean"),
            kept_probe_mean=kept.get("probe_mean"),
            kept_step=kept.get("step"),
        )
        if kept_std is not None and step0_std >= MIN_STEP0_STD:
            evidence["probe_std_ratio"] = kept_std / step0_std
            collapsed = kept_std * COLLAPSE_FACTOR < step0_std
    harmed, ids = None, ()
    try:
        base = ctx.base_row(tuned)
    except MissingEvidenceError:
        base = None
    if base is not None:
        after, before = tuned["measures"].get("nDCG@10"), base["measures"].get("nDCG@10")
        if after is not None and before is not None:
            evidence.update(tuned_ndcg10=after, base_ndcg10=before, delta_vs_base=after - before)
            harmed = after < before
            ids = _worst_queries(ctx, tuned, base) if silent else ()
    evidence = {key: value for key, value in evidence.items() if value is not None}
    page = _training_page(ctx, tuned)
    fix = {"finetune.objective": "bce"}
    expected = "nDCG@10 back to at least the base; the probe logit std stays near its step-0 value"
    large = (
        f"; first-batch loss {first_loss:.3g} (> {LARGE_FIRST_LOSS:g})"
        if isinstance(first_loss, int | float) and first_loss > LARGE_FIRST_LOSS
        else ""
    )
    scale = (
        f"probe logit std {evidence['step0_probe_std']:.3g} at step 0 → "
        f"{evidence['kept_probe_std']:.3g} at the kept step {evidence['kept_step']}"
        if "probe_std_ratio" in evidence
        else "probe logit std not comparable"
    )
    if silent:
        what = (
            f"objective {objective!r} leaves the loss to the model: problem_type "
            f"{problem_type!r}, MSE of the logit onto 0/1 labels{large}"
        )
        harm = []
        if collapsed:
            harm.append(f"the score scale collapsed ({scale})")
        if harmed:
            harm.append(
                f"nDCG@10 {evidence['tuned_ndcg10']:.4f} < base {evidence['base_ndcg10']:.4f}"
            )
        if harm:
            return Finding(
                "P2", "silent MSE", "fail", f"{what}; {'; '.join(harm)}",
                evidence, ids, fix, expected, page,
            )  # fmt: skip
        return Finding(
            "P2", "silent MSE", "warn",
            f"{what}; no harm visible yet ({scale}"
            + (", nDCG@10 not below the base)" if harmed is False else "; no base row to compare)"),
            evidence, ids, fix, expected, page,
        )  # fmt: skip
    return Finding(
        "P2", "silent MSE", "ok",
        f"objective {objective!r} computes its own loss from the logits, not the model's "
        f"regression loss; {scale}",
        evidence, (), page=page,
    )  # fmt: skip


def _head_labels(config_path: Path) -> int | None:
    """Output labels of a checkpoint's sequence-classification head (None: no such head)."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    architectures = config.get("architectures") or []
    if not any(str(name).endswith("ForSequenceClassification") for name in architectures):
        return None
    return int(config.get("num_labels") or len(config.get("id2label") or {0: 0}))


def _base_config(ctx: VariantContext, tuned: dict[str, Any], meta: dict[str, Any]) -> Path | None:
    """``config.json`` of the model fine-tuning started from: the base-train stage's model, or a
    local folder / the packaged model the finetune meta names (None for a hub id not here)."""
    if "base-train" in tuned.get("stages", {}):
        path = ctx.stage_dir(tuned, "base-train") / "model" / "config.json"
        return path if path.is_file() else None
    base = meta.get("base_model") or meta.get("inputs", {}).get("base_model")
    if not base:
        return None
    try:
        from inpars_core.models import resolve_model_path

        path = Path(resolve_model_path(str(base))) / "config.json"
    except Exception:  # a missing optional package or an odd name: no local config
        return None
    return path if path.is_file() else None


def _sibling_step0(ctx: VariantContext, tuned: dict[str, Any], meta: dict[str, Any]) -> tuple:
    """(step-0 dev nDCG@10, variant) of another fine-tuning run of this experiment that started
    from the same model on the same dev set and kept its head: the starting model's own dev."""
    name = ctx.training_stage(tuned)
    stage = tuned["stages"][name]
    keys = meta.get("keys", {})
    dev = meta.get("inputs", {}).get("dev_query_ids")
    weight = meta.get("counts", {}).get("dev_bm25_weight")
    seen = {stage}
    for row in ctx.rows:
        other = row.get("stages", {}).get(name)
        if not other or other in seen or row.get("family", "cross-encoder") != "cross-encoder":
            continue
        seen.add(other)
        try:
            sibling = ctx.meta(row, name)
        except MissingEvidenceError:
            continue
        same = (
            sibling.get("keys", {}).get("base") == keys.get("base")
            and sibling.get("keys", {}).get("backbone") == keys.get("backbone")
            and sibling.get("keys", {}).get("dev") == keys.get("dev")
            and sibling.get("inputs", {}).get("dev_query_ids") == dev
            and sibling.get("counts", {}).get("dev_bm25_weight") == weight
            # the same dev scoring: depth, and how pairs are encoded and cut (another encoding
            # or max_length moves the step-0 dev of the very same weights)
            and all(
                sibling.get("config", {}).get(key) == meta.get("config", {}).get(key)
                for key in ("dev_depth", "pair_encoding", "max_length")
            )
        )
        value = sibling.get("counts", {}).get("step0_dev_ndcg10")
        if (
            same
            and value is not None
            and not any(n.startswith(NEW_HEAD_NOTE) for n in _notes(sibling))
        ):
            return value, row.get("variant")
    return None, None


@check("P3", "re-initialised head")
def reinitialised_head(ctx: VariantContext) -> Finding:
    """A trained head thrown away at load time: the loader's "newly initialised head" note, the
    head's label count against the starting checkpoint's, and the step-0 dev nDCG@10 against the
    starting model's own (another run from the same model on the same dev set that kept its
    head). A new head on a backbone that has none is expected, not P3.

    fail: the trained head was replaced (note, label count, or step-0 dev moved); ok otherwise."""
    tuned = ctx.tuned_row()
    meta = ctx.meta(tuned, ctx.training_stage(tuned))
    notes = _notes(meta)
    new_head = [n for n in notes if n.startswith(NEW_HEAD_NOTE)]
    thrown = [n for n in new_head if HEAD_THROWN_AWAY in n]
    tuned_labels = meta.get("results", {}).get("num_labels") or meta.get("objective", {}).get(
        "num_labels"
    )
    config_path = _base_config(ctx, tuned, meta)
    base_labels = _head_labels(config_path) if config_path is not None else None
    step0 = meta.get("counts", {}).get("step0_dev_ndcg10")
    sibling_step0, sibling = _sibling_step0(ctx, tuned, meta)
    evidence: dict[str, Any] = {
        "new_head": bool(new_head),
        "base_head_labels": "no head" if config_path and base_labels is None else base_labels,
        "tuned_head_labels": tuned_labels,
        "step0_dev_ndcg10": step0,
        "starting_model_dev_ndcg10": sibling_step0,
        "starting_model_dev_from": sibling,
    }
    evidence = {key: value for key, value in evidence.items() if value is not None}
    faults = [thrown[0]] if thrown else []
    if base_labels is not None and tuned_labels is not None and base_labels != tuned_labels:
        faults.append(
            f"the starting head has {base_labels} label(s), the trained one {tuned_labels}"
        )
    if (
        step0 is not None
        and sibling_step0 is not None
        and abs(step0 - sibling_step0) > STEP0_TOLERANCE
    ):
        faults.append(
            f"step-0 dev nDCG@10 {step0:.4f} ≠ the starting model's {sibling_step0:.4f} "
            f"(variant {sibling}, same model and dev set)"
        )
    page = _training_page(ctx, tuned)
    if faults:
        objective = "ce2" if base_labels == 2 else "bce"
        return Finding(
            "P3", "re-initialised head", "fail",
            "the trained head was replaced by a new one: " + "; ".join(faults),
            evidence, (), {"finetune.objective": objective},
            "step-0 dev nDCG@10 equals the starting model's; nDCG@10 at least the base", page,
        )  # fmt: skip
    if new_head:
        return Finding(
            "P3", "re-initialised head", "ok",
            "a new head on a starting model that had none (expected when training a backbone): "
            + new_head[0],
            evidence, (), page=page,
        )  # fmt: skip
    return Finding(
        "P3", "re-initialised head", "ok",
        "the starting model's head was kept (no weight newly initialised"
        + (f"; step-0 dev equals the starting model's {sibling_step0:.4f})" if sibling else ")"),
        evidence, (), page=page,
    )  # fmt: skip


@check("P4", "zero loss")
def zero_loss(ctx: VariantContext) -> Finding:
    """Steps whose training loss is exactly 0 (``train_log.jsonl``; the trainer's P4 note):
    with ``num_labels=1`` and ``single_label_classification`` the loss is 0 and nothing learns.

    fail: the first-batch loss or every loss is exactly 0; warn: some steps are; ok: none."""
    tuned = ctx.tuned_row()
    stage = ctx.training_stage(tuned)
    meta = ctx.meta(tuned, stage)
    records = [r for r in ctx.stage_jsonl(tuned, stage, "train_log.jsonl") if "loss" in r]
    if not records:
        raise MissingEvidenceError("train_log.jsonl logs no loss")
    zero = [r for r in records if r["loss"] == 0.0]
    first_loss = meta.get("counts", {}).get("first_loss", records[0]["loss"])
    noted = any(n.startswith("P4:") for n in _notes(meta))
    evidence = {
        "steps": len(records),
        "zero_loss_steps": len(zero),
        "first_loss": first_loss,
        "last_loss": records[-1]["loss"],
        "param_drift": meta.get("results", {}).get("final_param_drift"),
        "problem_type": meta.get("results", {}).get("problem_type"),
    }
    evidence = {key: value for key, value in evidence.items() if value is not None}
    page = _training_page(ctx, tuned)
    fix = {"finetune.objective": "bce"}
    expected = "training loss above 0 and falling; dev nDCG@10 moves from its step-0 value"
    first_zero = [f"step {r['step']}" for r in zero[:3] if "step" in r]
    if noted or first_loss == 0.0 or len(zero) == len(records):
        return Finding(
            "P4", "zero loss", "fail",
            f"training loss exactly 0 on {len(zero)} of {len(records)} steps (first batch "
            f"{first_loss:g}): no gradient, nothing learns",
            evidence, (), fix, expected, page,
        )  # fmt: skip
    if zero:
        return Finding(
            "P4", "zero loss", "warn",
            f"training loss exactly 0 on {len(zero)} of {len(records)} steps "
            f"({', '.join(first_zero)}): those batches taught nothing",
            evidence, (), fix, expected, page,
        )  # fmt: skip
    return Finding(
        "P4", "zero loss", "ok",
        f"no step has a loss of exactly 0 ({len(records)} steps, first {first_loss:.3g}, last "
        f"{records[-1]['loss']:.3g})",
        evidence, (), page=page,
    )  # fmt: skip
