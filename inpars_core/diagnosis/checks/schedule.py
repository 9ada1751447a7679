"""P5 (learning rate and length of training) and P11 (overfitting, no dev set): read from the
finetune stage's ``meta.json``, ``eval_log.jsonl`` (dev nDCG@10 from step 0) and
``train_log.jsonl`` (loss and parameter drift per step), and, with ``probe``, the starting and
kept weights (``model.safetensors``) for the parameter drift ‖θ−θ₀‖/‖θ₀‖.

Thresholds (stated in the findings):

- P5 ``fail``: dev nDCG@10 falls monotonically from step 0 (every evaluation at or below the
  previous one, the last below step 0) while the kept model is not step 0 (``keep = "final"``):
  training only destroyed what the starting model knew, and that is what was kept. ``warn``: the
  same decline with step 0 kept (fine-tuning brought nothing), a best dev step 0 not kept, a peak
  lr above :data:`LR_FACTOR` × the starting model's recipe, no warm-up, or more than
  :data:`MAX_PASSES` passes over the training triples.
- P11 ``fail``: no dev set while the fine-tuned row is below the starting model's on the test
  queries, or the training loss fell under :data:`LOSS_COLLAPSE` of its start while dev fell
  below step 0 and the final step was kept; ``warn``: no dev set, or that collapse with a better
  step kept.
"""

from __future__ import annotations

import itertools
import logging
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inpars_core.diagnosis.context import (
    MissingEvidenceError,
    VariantContext,
    local_path,
    page_link,
    stage_label,
    starting_model,
)
from inpars_core.diagnosis.findings import Finding
from inpars_core.diagnosis.registry import check

logger = logging.getLogger(__name__)

#: A peak lr more than this many times the starting model's own training lr is a warning.
LR_FACTOR = 5.0
#: The training loss "went to ~0" when its late mean is below this fraction of its early mean.
LOSS_COLLAPSE = 0.1
#: More passes over the training triples than this is a warning (recipes train ≤ 1 epoch).
MAX_PASSES = 2.0
#: Steps averaged at each end of the training log (a single batch's loss is noisy).
LOSS_WINDOW = 10

#: Published training recipes of hub rerankers (name → (lr, where it comes from)).
KNOWN_RECIPES: dict[str, tuple[float, str]] = {
    name: (
        7e-6,
        f"{name}'s published recipe (sentence-transformers examples/training/ms_marco/"
        "train_cross-encoder_kd.py: lr 7e-6, 5,000 warm-up steps, 1 epoch)",
    )
    for name in (
        "cross-encoder/ms-marco-MiniLM-L-6-v2",
        "cross-encoder/ms-marco-MiniLM-L-12-v2",
    )
}


# ---------------------------------------------------------------------- shared readings
def training_facts(context: VariantContext, tuned: dict[str, Any]) -> dict[str, Any]:
    """What the finetune stage of ``tuned`` wrote: its folder, meta.json parts, the dev curve
    ``[(step, nDCG@10)]`` (empty without a dev set) and the loss curve ``[(step, loss)]``."""
    folder = context.stage_dir(tuned, context.training_stage(tuned))
    meta = context.meta(tuned, context.training_stage(tuned))
    dev: list[tuple[int, float]] = []
    try:
        for record in context.stage_jsonl(tuned, context.training_stage(tuned), "eval_log.jsonl"):
            value = record.get("nDCG@10")
            if isinstance(value, int | float) and math.isfinite(value):
                dev.append((int(record.get("step", 0)), float(value)))
    except MissingEvidenceError:
        pass
    losses: list[tuple[int, float]] = []
    drift_logged: dict[int, float] = {}
    try:
        for record in context.stage_jsonl(tuned, context.training_stage(tuned), "train_log.jsonl"):
            step = int(record.get("step", 0))
            if isinstance(record.get("loss"), int | float):
                losses.append((step, float(record["loss"])))
            if isinstance(record.get("param_drift"), int | float):
                drift_logged[step] = float(record["param_drift"])
    except MissingEvidenceError:
        pass
    counts, results = meta.get("counts", {}), meta.get("results", {})
    return {
        "folder": folder,
        "meta": meta,
        "config": meta.get("config", {}),
        "counts": counts,
        "results": results,
        "dev": sorted(dev),
        "losses": sorted(losses),
        "drift_logged": drift_logged,
        "kept_step": counts.get("kept_step", results.get("kept_step")),
        "final_step": counts.get("final_step", results.get("final_step")),
        "page": page_link("training", runs=stage_label(context.experiment_dir, folder)),
    }


def base_recipe(
    context: VariantContext, tuned: dict[str, Any], meta: dict[str, Any]
) -> tuple[float, str] | None:
    """The starting model's own training lr and where it comes from: the base-train stage that
    trained it here, or a published recipe of a known hub model; None when neither is known."""
    recorded = str(meta.get("base_model") or "")
    if "base-train" in tuned.get("stages", {}):
        base_dir = context.stage_dir(tuned, "base-train")
        found = local_path(context.experiment_dir, recorded)
        wanted = (base_dir.resolve(), (base_dir / "model").resolve())
        if found is not None and found.resolve() in wanted:
            lr = context.meta(tuned, "base-train").get("config", {}).get("lr")
            if isinstance(lr, int | float):
                label = stage_label(context.experiment_dir, base_dir)
                return float(lr), f"the starting model's own training ({label}: lr {lr:g})"
    if recorded in KNOWN_RECIPES:
        return KNOWN_RECIPES[recorded]
    return None


def lower_lr(lr: float, recipe: float | None = None) -> float:
    """A learning rate to try instead of ``lr``: the recipe's when it is lower, else a tenth
    (one significant digit)."""
    target = recipe if recipe is not None and recipe < lr else lr / 10
    return float(f"{target:.1g}")


def is_monotone_decline(values: Sequence[float]) -> bool:
    """Every value at or below the previous one and the last below the first (at least two)."""
    return (
        len(values) >= 2
        and all(b <= a for a, b in itertools.pairwise(values))
        and values[-1] < values[0]
    )


def parameter_drift(start: Path, tuned: Path) -> dict[str, float | int]:
    """‖θ−θ₀‖/‖θ₀‖ between two model folders' ``*.safetensors`` weights, over the floating
    tensors both hold under the same name (a wrapper prefix such as ``bert.`` ignored) and
    shape; no forward pass. Returns ``drift``, ``tensors`` compared and ``only_tuned`` (tensors
    of the tuned model absent from the start, e.g. a new head)."""
    import torch
    from safetensors import safe_open

    def tensors(folder: Path) -> dict[str, Any]:
        files = sorted(Path(folder).glob("*.safetensors"))
        if not files:
            raise MissingEvidenceError(f"no *.safetensors weights in {folder}")
        out: dict[str, Any] = {}
        for file in files:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    out[name] = handle.get_tensor(name)
        return out

    before, after = tensors(start), tensors(tuned)
    diff_sq = norm_sq = 0.0
    compared = only_tuned = 0
    for name, value in after.items():
        if not value.is_floating_point():
            continue
        match = before.get(name)
        if match is None and "." in name:
            match = before.get(name.split(".", 1)[1])
        if match is None:
            match = next(
                (v for k, v in before.items() if "." in k and k.split(".", 1)[1] == name), None
            )
        if match is None or tuple(match.shape) != tuple(value.shape):
            only_tuned += 1
            continue
        a, b = value.double(), match.double()
        diff_sq += float(torch.sum((a - b) ** 2))
        norm_sq += float(torch.sum(b**2))
        compared += 1
    if not compared or norm_sq == 0:
        raise MissingEvidenceError(f"{start} and {tuned} share no weights to compare")
    return {"drift": math.sqrt(diff_sq / norm_sq), "tensors": compared, "only_tuned": only_tuned}


def _loss_means(losses: Sequence[tuple[int, float]]) -> tuple[float, float] | None:
    """Mean loss over the first and the last :data:`LOSS_WINDOW` steps (each at most a tenth
    of the log, at least one step)."""
    values = [loss for _, loss in losses]
    if len(values) < 2:
        return None
    width = max(1, min(LOSS_WINDOW, len(values) // 10))
    return statistics.fmean(values[:width]), statistics.fmean(values[-width:])


def _measure(context: VariantContext) -> str:
    measures = context.summary.get("measures") or ["nDCG@10"]
    return "nDCG@10" if "nDCG@10" in measures else str(measures[0])


# ---------------------------------------------------------------------- P5
@check("P5", "learning rate and length")
def lr_and_length(context: VariantContext) -> Finding:
    """Best dev step 0 with a monotone decline; lr against the starting model's recipe; steps
    and warm-up; parameter drift of the kept model."""
    tuned = context.tuned_row()
    facts = training_facts(context, tuned)
    config, counts = facts["config"], facts["counts"]
    lr = config.get("lr")
    keep = config.get("keep")
    kept_step = facts["kept_step"]
    evidence: dict[str, Any] = {
        "lr": lr,
        "keep": keep,
        "kept_step": kept_step,
        "planned_steps": counts.get("planned_steps"),
        "warmup_steps": counts.get("warmup_steps"),
        "epochs": config.get("epochs"),
    }
    problems: list[tuple[str, str]] = []  # (verdict, sentence)
    dev = facts["dev"]
    decline = lr_high = False
    if len(dev) >= 2:
        steps = [step for step, _ in dev]
        values = [value for _, value in dev]
        best_step, best = max(dev, key=lambda point: (point[1], -point[0]))
        decline = steps[0] == 0 and is_monotone_decline(values)
        evidence.update(
            {
                "dev_steps": steps,
                "dev_ndcg10": [round(v, 4) for v in values],
                "dev_step0": values[0],
                "dev_best": best,
                "best_step": best_step,
                "dev_final": values[-1],
                "monotone_decline_from_step0": decline,
            }
        )
        if decline and kept_step not in (0, None):
            problems.append(
                (
                    "fail",
                    f"dev nDCG@10 fell at every evaluation from step 0 ({values[0]:.4f} → "
                    f"{values[-1]:.4f}) and step {kept_step} was kept (keep = {keep!r})",
                )
            )
        elif decline:
            problems.append(
                (
                    "warn",
                    f"dev nDCG@10 fell at every evaluation from step 0 ({values[0]:.4f} → "
                    f"{values[-1]:.4f}); step 0 was kept, so fine-tuning brought nothing",
                )
            )
        elif best_step == 0 and kept_step not in (0, None):
            problems.append(
                (
                    "warn",
                    f"the best dev nDCG@10 is step 0's ({best:.4f}) but step {kept_step} was "
                    f"kept ({values[-1]:.4f} at the end)",
                )
            )
    else:
        evidence["dev_note"] = "no dev curve (fewer than two dev evaluations logged)"

    recipe = base_recipe(context, tuned, facts["meta"])
    if recipe is not None and isinstance(lr, int | float):
        recipe_lr, source = recipe
        evidence.update(
            {"recipe_lr": recipe_lr, "recipe_source": source, "lr_ratio": lr / recipe_lr}
        )
        if lr > LR_FACTOR * recipe_lr:
            lr_high = True
            problems.append(
                (
                    "warn",
                    f"peak lr {lr:g} is {lr / recipe_lr:.1f}× {source.split(' (')[0]} "
                    f"({recipe_lr:g}; over {LR_FACTOR:g}× is too much for an already trained "
                    "reranker)",
                )
            )
    else:
        evidence["recipe_note"] = (
            "the starting model's training lr is unknown (not trained here, not a known hub "
            "recipe): lr not compared"
        )
    per_epoch = counts.get("pairs_per_epoch") or []
    passes = None
    if len(per_epoch) > 1 and per_epoch[0]:
        passes = sum(per_epoch) / per_epoch[0]
        evidence["passes_over_triples"] = passes
        if passes > MAX_PASSES:
            problems.append(
                (
                    "warn",
                    f"{passes:.1f} passes over the training triples (the recipes train ≤ 1 "
                    "epoch; more fits the few synthetic queries)",
                )
            )
    warmup = counts.get("warmup_steps")
    if warmup == 0:
        problems.append(("warn", "no warm-up (0 warm-up steps): the first updates hit at peak lr"))

    _drift_evidence(context, tuned, facts, evidence)

    if not dev and recipe is None and warmup is None and passes is None:
        raise MissingEvidenceError(
            "no dev curve, no known recipe of the starting model and no warm-up or epoch "
            "counts in the finetune meta.json"
        )
    fix: dict[str, Any] = {}
    best_at_step0 = len(dev) >= 2 and evidence.get("best_step") == 0
    if problems and isinstance(lr, int | float):
        if decline or lr_high or best_at_step0:
            fix["finetune.lr"] = lower_lr(lr, recipe[0] if recipe else None)
        if (decline or best_at_step0) and keep != "best":
            fix["finetune.keep"] = "best"
        if warmup == 0:
            fix["finetune.warmup_ratio"] = 0.1
        planned = counts.get("planned_steps")
        if passes is not None and passes > MAX_PASSES and isinstance(planned, int):
            fix["finetune.max_steps"] = max(1, math.ceil(planned / passes))
    if problems:
        verdict = "fail" if any(v == "fail" for v, _ in problems) else "warn"
        summary = "; ".join(text for _, text in problems) + "."
        expected = (
            "dev nDCG@10 rises above step 0 (or step 0 is kept), and the fine-tuned row is no "
            "longer below the starting model's"
        )
    else:
        verdict = "ok"
        parts = []
        if len(dev) >= 2:
            parts.append(
                f"best dev nDCG@10 {evidence['dev_best']:.4f} at step {evidence['best_step']} "
                f"(step 0: {evidence['dev_step0']:.4f}), kept step {kept_step}"
            )
        if "lr_ratio" in evidence:
            parts.append(f"lr {lr:g} = {evidence['lr_ratio']:.2g}× the recipe's")
        if warmup:
            parts.append(f"{warmup} warm-up steps of {counts.get('planned_steps')}")
        summary = "; ".join(parts) + "." if parts else "nothing wrong in the schedule."
        expected = ""
    return Finding(
        "P5",
        "learning rate and length",
        verdict,
        summary,
        evidence,
        (),
        fix,
        expected,
        facts["page"],
    )


def _drift_evidence(
    context: VariantContext, tuned: dict[str, Any], facts: dict[str, Any], evidence: dict
) -> None:
    """Parameter drift of the kept model: logged by the trainer at the kept step (no probe
    needed) and, with ``probe``, recomputed from the two folders' weights."""
    kept_step = facts["kept_step"]
    logged = facts["drift_logged"]
    if kept_step == 0:
        evidence["param_drift_logged"] = 0.0
    elif kept_step in logged:
        evidence["param_drift_logged"] = logged[kept_step]
    final = facts["results"].get("final_param_drift")
    if isinstance(final, int | float):
        evidence["param_drift_final"] = final
    if not context.probe:
        evidence["param_drift_note"] = "weights not compared: probing is off (--no-probe)"
        return
    try:
        _, start = starting_model(context, tuned)
        if start is None:
            raise MissingEvidenceError("the starting model is not on this machine")
        measured = parameter_drift(start, facts["folder"] / "model")
    except MissingEvidenceError as exc:
        evidence["param_drift_note"] = f"weights not compared: {exc}"
        return
    evidence["param_drift"] = measured["drift"]
    evidence["param_drift_tensors"] = measured["tensors"]
    if measured["only_tuned"]:
        evidence["param_drift_new_tensors"] = measured["only_tuned"]


# ---------------------------------------------------------------------- P11
@check("P11", "overfitting / no dev set")
def overfitting(context: VariantContext) -> Finding:
    """Training loss → ~0 while dev falls; no dev set at all."""
    tuned = context.tuned_row()
    facts = training_facts(context, tuned)
    counts = facts["counts"]
    dev_mode = counts.get("dev") or context.setting("finetune.dev")
    dev = facts["dev"]
    kept_step, final_step = facts["kept_step"], facts["final_step"]
    evidence: dict[str, Any] = {
        "dev": dev_mode,
        "dev_queries": counts.get("dev_queries"),
        "dev_evaluations": len(dev),
        "kept_step": kept_step,
        "final_step": final_step,
    }
    means = _loss_means(facts["losses"])
    if means is not None:
        evidence.update(
            {"loss_early": means[0], "loss_late": means[1], "loss_ratio": _ratio(*means)}
        )
    for name in ("first_loss", "last_loss"):
        if isinstance(counts.get(name), int | float):
            evidence[name] = counts[name]
    fix = {"finetune.dev": "synthetic", "finetune.keep": "best"}
    page = facts["page"]

    if dev_mode == "none" or not dev:
        measure = _measure(context)
        below = None
        try:
            base = context.base_row(tuned)
            tuned_value = tuned.get("measures", {}).get(measure)
            base_value = base.get("measures", {}).get(measure)
            if isinstance(tuned_value, int | float) and isinstance(base_value, int | float):
                evidence[f"tuned_{measure}"] = tuned_value
                evidence[f"base_{measure}"] = base_value
                below = tuned_value < base_value
        except MissingEvidenceError as exc:
            evidence["base_note"] = str(exc)
        what = (
            "no dev set (finetune.dev = 'none')"
            if dev_mode == "none"
            else "no dev evaluation in eval_log.jsonl"
        )
        if below:
            verdict = "fail"
            summary = (
                f"{what}: nothing could stop training or keep an earlier step, and the "
                f"fine-tuned row's {measure} {evidence[f'tuned_{measure}']:.4f} is below the "
                f"starting model's {evidence[f'base_{measure}']:.4f}."
            )
        else:
            verdict = "warn"
            summary = f"{what}: the final step is kept whatever it does to ranking."
        return Finding(
            "P11",
            "overfitting / no dev set",
            verdict,
            summary,
            evidence,
            (),
            fix,
            "a dev curve from step 0 picks the kept step; the kept model is no worse on dev "
            "than the starting model",
            page,
        )

    values = [value for _, value in dev]
    step0 = dev[0][1] if dev[0][0] == 0 else None
    best = max(values)
    evidence.update({"dev_step0": step0, "dev_best": best, "dev_final": values[-1]})
    dev_fell = step0 is not None and values[-1] < step0
    collapsed = means is not None and _ratio(*means) < LOSS_COLLAPSE
    kept_final = kept_step is not None and kept_step == final_step
    if collapsed and dev_fell:
        drop = f"dev nDCG@10 fell from {step0:.4f} at step 0 to {values[-1]:.4f}"
        loss = f"training loss fell to {_ratio(*means):.1%} of its start"
        if kept_final:
            return Finding(
                "P11",
                "overfitting / no dev set",
                "fail",
                f"overfitting: {loss} while {drop}, and the final step was kept.",
                evidence,
                (),
                fix,
                "the best dev step is kept; the training loss stays clear of 0",
                page,
            )
        return Finding(
            "P11",
            "overfitting / no dev set",
            "warn",
            f"overfitting: {loss} while {drop}; step {kept_step} (dev {best:.4f}) was kept, "
            "not the final one.",
            evidence,
            (),
            {},
            "",
            page,
        )
    loss_text = (
        f"training loss at {_ratio(*means):.1%} of its start" if means else "no training loss"
    )
    kept_dev = dict(dev).get(kept_step)
    return Finding(
        "P11",
        "overfitting / no dev set",
        "ok",
        f"dev set {dev_mode!r} with {len(dev)} evaluations; {loss_text}; kept step "
        f"{kept_step}" + (f" (dev {kept_dev:.4f})." if kept_dev is not None else "."),
        evidence,
        (),
        {},
        "",
        page,
    )


def _ratio(early: float, late: float) -> float:
    return late / early if early > 0 else math.inf
