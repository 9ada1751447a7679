"""Checks P5 (lr and length), P6 (score drift), P7 (false negatives) and P11 (overfitting / no
dev set) on hand-made experiment folders: one test per verdict each check can give."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from inpars_core.diagnosis.checks import drift, negatives, schedule
from inpars_core.diagnosis.context import MissingEvidenceError
from tests.diagnosis.training_fakes import FakeExperiment, write_file

VARIANT = "v"
BASE = "base reranker"
TUNED = "v: fine-tuned"


def trec(scores: dict[str, list[tuple[str, float]]], tail: int = 0) -> str:
    """A TREC run, each query's documents in the order given (rank 1 first), plus ``tail``
    lower-scored first-stage documents per query after them (as the rerank stage writes)."""
    lines = []
    for query_id, docs in scores.items():
        rank = 0
        for rank, (doc_id, score) in enumerate(docs, start=1):
            lines.append(f"{query_id} Q0 {doc_id} {rank} {score} x")
        for extra in range(tail):
            lines.append(f"{query_id} Q0 tail{extra} {rank + extra + 1} {-100 - extra} x")
    return "\n".join(lines) + "\n"


def experiment(
    tmp_path: Path,
    *,
    lr: float = 1e-5,
    base_lr: float | None = 1e-4,
    keep: str = "best",
    dev: list[tuple[int, float]] | None = ((0, 0.50), (10, 0.55), (20, 0.56)),
    dev_mode: str = "synthetic",
    kept_step: int | None = None,
    final_step: int = 20,
    losses: list[float] | None = None,
    warmup_steps: int = 2,
    measures: tuple[float, float] = (0.60, 0.65),
    base_model: str | None = None,
    triples: list[dict[str, Any]] | None = None,
    triples_config: dict[str, Any] | None = None,
    runs: tuple[str, str] | None = None,
    config: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
) -> FakeExperiment:
    """A base row (trained here, base-train ``bt``) and the variant's fine-tuned row over the
    same BM25 lists, with the finetune, triples and rerank files the checks read.
    ``measures``: (base, fine-tuned) nDCG@10."""
    fake = FakeExperiment(tmp_path / "exp", config=config or {}, dataset=dataset or {})
    base_train = fake.stage(
        "base-train", "bt", {"config": {"lr": base_lr}} if base_lr is not None else {}
    )
    (fake.folder / base_train / "model").mkdir()
    dev = list(dev) if dev is not None else []
    if kept_step is None:
        kept_step = max(dev, key=lambda p: (p[1], -p[0]))[0] if keep == "best" and dev else 20
    files: dict[str, Any] = {}
    if dev:
        files["eval_log__jsonl"] = [{"step": s, "nDCG@10": v} for s, v in dev]
    if losses is not None:
        files["train_log__jsonl"] = [
            {"step": i + 1, "loss": loss, "param_drift": 0.001 * (i + 1)}
            for i, loss in enumerate(losses)
        ]
    finetune = fake.stage(
        "finetune",
        "ft",
        {
            "base_model": base_model or "runs/exp/stages/base-train/bt/model",
            "config": {"lr": lr, "keep": keep, "epochs": 1, "max_length": 32},
            "counts": {
                "dev": dev_mode,
                "dev_queries": 6 if dev_mode != "none" else 0,
                "kept_step": kept_step,
                "final_step": final_step,
                "planned_steps": final_step,
                "warmup_steps": warmup_steps,
            },
            "results": {"final_param_drift": 0.02},
        },
        **files,
    )
    base_run, tuned_run = runs or (
        trec({"q1": [("a", 3.0), ("b", 2.0), ("c", 1.0)]}),
        trec({"q1": [("a", 0.9), ("b", 0.5), ("c", 0.1)]}),
    )
    triples_stage = fake.stage(
        "triples",
        "tr",
        {"config": triples_config or {"window": [1, 100], "teacher": None,
                                      "false_negative_margin": None}},
        triples__jsonl=triples or [triple("q1", "p1", "n1", 40)],
    )  # fmt: skip
    fake.row(
        BASE,
        {"base-train": base_train, "rerank": fake.stage("rerank", "rb", {}, run__trec=base_run)},
        kind="supervised",
        measures={"nDCG@10": measures[0]},
    )
    fake.row(
        TUNED,
        {
            "base-train": base_train,
            "finetune": finetune,
            "triples": triples_stage,
            "rerank": fake.stage("rerank", "rt", {}, run__trec=tuned_run),
        },
        variant=VARIANT,
        measures={"nDCG@10": measures[1]},
    )
    return fake


def triple(
    query_id: str, pos: str, neg: str, rank: int | None, source: str = "bm25", **more: Any
) -> dict[str, Any]:
    """One triples.jsonl line."""
    return {
        "query_id": query_id,
        "query_text": f"text of {query_id}",
        "pos_doc_id": pos,
        "neg_doc_id": neg,
        "neg_source": source,
        "neg_rank": rank,
        "window": [1, 100],
        "teacher_pos_score": None,
        "teacher_neg_score": None,
        "teacher_fingerprint": None,
        **more,
    }


# ---------------------------------------------------------------------------- P5
def test_p5_fails_when_dev_falls_from_step0_and_the_final_step_is_kept(tmp_path):
    fake = experiment(tmp_path, keep="final", dev=[(0, 0.60), (10, 0.55), (20, 0.50)], kept_step=20)
    finding = schedule.lr_and_length(fake.context(VARIANT))
    assert finding.verdict == "fail"
    assert finding.evidence["monotone_decline_from_step0"] is True
    assert finding.evidence["best_step"] == 0
    assert finding.fix == {"finetune.lr": 1e-6, "finetune.keep": "best"}  # lr / 10
    assert finding.page == "training?runs=finetune/ft"
    assert "param_drift_note" in finding.evidence  # probe off: weights not compared


def test_p5_warns_on_lr_far_above_the_starting_models_own(tmp_path):
    fake = experiment(tmp_path, lr=1e-3, base_lr=1e-4)
    finding = schedule.lr_and_length(fake.context(VARIANT))
    assert finding.verdict == "warn"
    assert finding.evidence["lr_ratio"] == pytest.approx(10.0)
    assert finding.evidence["recipe_lr"] == 1e-4
    assert "base-train/bt" in finding.evidence["recipe_source"]
    assert finding.fix == {"finetune.lr": 1e-4}  # the recipe's lr; keep is already "best"


def test_p5_warns_without_warmup(tmp_path):
    fake = experiment(tmp_path, warmup_steps=0)
    finding = schedule.lr_and_length(fake.context(VARIANT))
    assert finding.verdict == "warn"
    assert "warm-up" in finding.summary
    assert finding.fix == {"finetune.warmup_ratio": 0.1}


def test_p5_warns_on_many_passes_over_the_triples(tmp_path):
    fake = experiment(tmp_path)
    meta_path = fake.folder / "stages/finetune/ft/meta.json"
    meta = json.loads(meta_path.read_text())
    meta["counts"]["pairs_per_epoch"] = [40, 40, 40, 20]  # 3.5 passes in 20 steps
    write_file(meta_path, meta)
    finding = schedule.lr_and_length(fake.context(VARIANT))
    assert finding.verdict == "warn"
    assert finding.evidence["passes_over_triples"] == pytest.approx(3.5)
    assert finding.fix == {"finetune.max_steps": 6}  # ceil(20 / 3.5): one pass


def test_p5_uses_a_known_hub_recipe(tmp_path):
    fake = experiment(
        tmp_path, lr=5e-5, base_lr=None, base_model="cross-encoder/ms-marco-MiniLM-L-6-v2"
    )
    finding = schedule.lr_and_length(fake.context(VARIANT))
    assert finding.evidence["recipe_lr"] == 7e-6
    assert "train_cross-encoder_kd.py" in finding.evidence["recipe_source"]
    assert finding.verdict == "warn"  # 5e-5 is 7.1x 7e-6
    assert finding.fix["finetune.lr"] == 7e-6


def test_p5_ok_for_a_rising_dev_curve_a_modest_lr_and_warmup(tmp_path):
    fake = experiment(tmp_path, lr=1e-5, base_lr=1e-4, losses=[1.0] * 20)
    finding = schedule.lr_and_length(fake.context(VARIANT))
    assert finding.verdict == "ok"
    assert finding.evidence["best_step"] == 20
    assert finding.evidence["param_drift_logged"] == pytest.approx(0.02)  # logged at step 20
    assert finding.fix == {}


def test_p5_not_applicable_without_dev_curve_recipe_or_warmup_count(tmp_path):
    fake = experiment(tmp_path, dev=None, base_lr=None, base_model="someone/unknown-reranker")
    meta_path = fake.folder / "stages/finetune/ft/meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["counts"]["warmup_steps"]
    write_file(meta_path, meta)
    with pytest.raises(MissingEvidenceError, match="no dev curve"):
        schedule.lr_and_length(fake.context(VARIANT))


def save_weights(folder: Path, tensors: dict[str, list[float]]) -> Path:
    """A model folder holding only ``model.safetensors``."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.tensor(v) for k, v in tensors.items()}, str(folder / "model.safetensors"))
    return folder


def test_parameter_drift_equals_a_hand_computation(tmp_path):
    # θ0 = (3, 4 | 0) with a new head only in the tuned model; θ − θ0 = (0, 1): 1 / 5.
    start = save_weights(tmp_path / "a", {"embeddings.w": [3.0, 4.0], "pooler.b": [0.0]})
    tuned = save_weights(
        tmp_path / "b",
        {"bert.embeddings.w": [3.0, 5.0], "bert.pooler.b": [0.0], "classifier.weight": [9.0]},
    )
    measured = schedule.parameter_drift(start, tuned)
    assert measured["drift"] == pytest.approx(0.2)
    assert measured["tensors"] == 2
    assert measured["only_tuned"] == 1


def test_p5_with_probe_compares_the_starting_and_kept_weights(tmp_path):
    fake = experiment(tmp_path)
    save_weights(fake.folder / "stages/base-train/bt/model", {"w": [0.0, 2.0]})
    save_weights(fake.folder / "stages/finetune/ft/model", {"w": [0.2, 2.0]})
    finding = schedule.lr_and_length(fake.context(VARIANT, probe=True))
    assert finding.evidence["param_drift"] == pytest.approx(0.1, rel=1e-6)  # float32 0.2/2


# ---------------------------------------------------------------------------- P11
def test_p11_fails_without_dev_set_when_below_the_starting_model(tmp_path):
    fake = experiment(tmp_path, dev=None, dev_mode="none", keep="final", measures=(0.6, 0.5))
    finding = schedule.overfitting(fake.context(VARIANT))
    assert finding.verdict == "fail"
    assert finding.evidence["base_nDCG@10"] == 0.6
    assert finding.fix == {"finetune.dev": "synthetic", "finetune.keep": "best"}


def test_p11_warns_without_dev_set_when_not_below(tmp_path):
    fake = experiment(tmp_path, dev=None, dev_mode="none", keep="final", measures=(0.6, 0.7))
    finding = schedule.overfitting(fake.context(VARIANT))
    assert finding.verdict == "warn"
    assert "no dev set" in finding.summary


def test_p11_fails_when_loss_collapses_dev_falls_and_the_final_step_is_kept(tmp_path):
    losses = [1.0] * 10 + [0.5] * 80 + [0.01] * 10
    fake = experiment(
        tmp_path,
        keep="final",
        dev=[(0, 0.6), (50, 0.62), (100, 0.5)],
        kept_step=100,
        final_step=100,
        losses=losses,
    )
    finding = schedule.overfitting(fake.context(VARIANT))
    assert finding.verdict == "fail"
    assert finding.evidence["loss_ratio"] == pytest.approx(0.01)  # 10-step means: 0.01 / 1
    assert finding.fix["finetune.keep"] == "best"


def test_p11_warns_on_the_same_collapse_when_a_better_step_is_kept(tmp_path):
    losses = [1.0] * 10 + [0.5] * 80 + [0.01] * 10
    fake = experiment(
        tmp_path, dev=[(0, 0.6), (50, 0.62), (100, 0.5)], final_step=100, losses=losses
    )
    finding = schedule.overfitting(fake.context(VARIANT))
    assert finding.verdict == "warn"
    assert finding.evidence["kept_step"] == 50


def test_p11_ok_with_a_dev_set_and_a_loss_clear_of_zero(tmp_path):
    fake = experiment(tmp_path, losses=[1.0] * 10 + [0.6] * 10)
    finding = schedule.overfitting(fake.context(VARIANT))
    assert finding.verdict == "ok"
    assert finding.evidence["loss_ratio"] == pytest.approx(0.6)  # 2-step means of 20 steps


def test_p11_not_applicable_when_the_finetune_folder_is_gone(tmp_path):
    import shutil

    fake = experiment(tmp_path)
    context = fake.context(VARIANT)
    shutil.rmtree(fake.folder / "stages/finetune/ft")
    with pytest.raises(MissingEvidenceError, match="is gone"):
        schedule.overfitting(context)


# ---------------------------------------------------------------------------- P6
def test_kendall_tau_b_equals_hand_computations():
    # 5 concordant and 1 discordant pairs of 6: (5 - 1) / 6.
    assert drift.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # a tie in the first list: 2 concordant, n0 = 3, n1 = 1, n2 = 0: 2 / sqrt(2 * 3).
    assert drift.kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(drift.kendall_tau([1, 1, 1], [1, 2, 3]))


def test_reranked_head_keeps_the_first_depth_ranks(tmp_path):
    path = write_file(tmp_path / "run.trec", trec({"q": [("a", 2.0), ("b", 1.0)]}, tail=3))
    assert drift.reranked_head(path, 2) == {"q": {"a": 2.0, "b": 1.0}}
    assert len(drift.reranked_head(path, None)["q"]) == 5


ORDER = [("a", 3.0), ("b", 2.0), ("c", 1.0), ("d", 0.0)]
#: (base run, fine-tuned run): q0 and q1 reversed (τ = -1), q2 kept (τ = 1), q9 scored
#: constant by the fine-tuned model (no τ); two first-stage tail documents after the 4-deep
#: heads.
REVERSED = (
    trec({"q0": ORDER, "q1": ORDER, "q2": ORDER}, tail=2) + trec({"q9": ORDER[:2]}),
    trec(
        {
            "q0": [(d, -s) for d, s in ORDER[::-1]],
            "q1": [("d", 9.0), ("c", 8.0), ("b", 7.0), ("a", 6.0)],
            "q2": [(d, s / 10) for d, s in ORDER],
        },
        tail=2,
    )
    + trec({"q9": [("a", 1.0), ("b", 1.0)]}),
)


def test_p6_fails_when_the_ordering_is_remapped_and_the_row_is_worse(tmp_path):
    fake = experiment(tmp_path, runs=REVERSED, measures=(0.6, 0.5), lr=1e-5)
    fake.rows[0]["depth"] = fake.rows[1]["depth"] = 4
    finding = drift.score_drift(fake.context(VARIANT))
    assert finding.verdict == "fail"
    assert finding.evidence["tau_min"] == pytest.approx(-1.0)
    assert finding.evidence["queries"] == 3
    assert finding.evidence["queries_skipped"] == 1
    assert finding.evidence["tau_mean"] == pytest.approx((-1 - 1 + 1) / 3)
    assert finding.evidence["share_below_0.8"] == pytest.approx(2 / 3)
    assert finding.ids[:2] == ("q0", "q1")
    assert finding.fix == {"finetune.lr": 1e-6, "finetune.keep": "best"}
    assert finding.page.startswith("per-query?a=base%20reranker&b=v%3A%20fine-tuned&query=q0")


def test_p6_warns_without_fix_when_the_remapped_row_is_better(tmp_path):
    fake = experiment(tmp_path, runs=REVERSED, measures=(0.6, 0.7))
    fake.rows[0]["depth"] = fake.rows[1]["depth"] = 4
    finding = drift.score_drift(fake.context(VARIANT))
    assert finding.verdict == "warn"
    assert finding.fix == {}


def test_p6_ok_when_the_ordering_is_kept(tmp_path):
    fake = experiment(tmp_path, measures=(0.6, 0.5))  # same order, other scale
    finding = drift.score_drift(fake.context(VARIANT))
    assert finding.verdict == "ok"
    assert finding.evidence["tau_mean"] == pytest.approx(1.0)


def test_p6_not_applicable_without_a_base_row(tmp_path):
    fake = experiment(tmp_path)
    fake.rows[0]["kind"] = "bm25"
    with pytest.raises(MissingEvidenceError, match="no base cross-encoder row"):
        drift.score_drift(fake.context(VARIANT))


# ---------------------------------------------------------------------------- P7
def test_p7_fails_when_a_negative_is_its_own_positive(tmp_path):
    fake = experiment(tmp_path, triples=[triple("q1", "p1", "p1", 1), triple("q1", "p1", "n2", 50)])
    finding = negatives.false_negatives(fake.context(VARIANT))
    assert finding.verdict == "fail"
    assert finding.evidence["negative_is_positive"] == 1
    assert finding.ids[0] == "q1/p1"
    assert finding.page == "synthetic?q=q1"
    assert "probing is off" in finding.evidence["probe_note"]


def test_p7_warns_on_top5_negatives_without_guard(tmp_path):
    fake = experiment(
        tmp_path,
        triples=[triple("q1", "p1", f"n{r}", r) for r in (1, 2, 3)],
        triples_config={"window": [1, 3], "teacher": None, "false_negative_margin": None},
        config={"bm25": {"k": 100}},
    )
    finding = negatives.false_negatives(fake.context(VARIANT))
    assert finding.verdict == "warn"
    assert finding.evidence["top5_share"] == 1.0
    assert finding.fix == {"negatives.window": [30, 100]}
    assert set(finding.ids) == {"q1/n1", "q1/n2", "q1/n3"}


def test_p7_recomputes_ranks_from_the_synthetic_bm25_run(tmp_path):
    fake = experiment(
        tmp_path, triples=[triple("q1", "p1", "n1", None), triple("q1", "p1", "n9", None)]
    )
    ranked = [("p1", 9.0), ("n1", 8.0), *[(f"x{i}", 7.0 - i) for i in range(4)], ("n9", 1.0)]
    run = fake.stage("synthetic-bm25", "sb", {}, run__trec=trec({"q1": ranked}))
    fake.rows[1]["stages"]["synthetic-bm25"] = run
    finding = negatives.false_negatives(fake.context(VARIANT))
    assert finding.evidence["bm25_negatives"] == 2
    assert finding.evidence["top5_share"] == 0.5  # n1 at rank 2, n9 at rank 7


def test_p7_ok_from_the_guards_recorded_scores(tmp_path):
    guarded = [
        triple("q1", "p1", f"n{r}", r, teacher_pos_score=5.0, teacher_neg_score=1.0 - r)
        for r in (1, 20, 40)
    ]
    fake = experiment(
        tmp_path,
        triples=guarded,
        triples_config={"window": [1, 100], "teacher": "t", "false_negative_margin": 0.5},
    )
    finding = negatives.false_negatives(fake.context(VARIANT))
    assert finding.verdict == "ok"  # 1 of 3 from the top 5, but the guard was on
    assert finding.evidence["outscoring_share"] == 0.0
    assert finding.evidence["scored_triples"] == 3
    assert "recorded" in finding.evidence["judge"]


@pytest.mark.parametrize(
    ("random_neg_score", "verdict"),
    [(-3.0, "fail"), (6.0, "warn")],  # random negatives below / above their positive
)
def test_p7_a_judge_that_also_ranks_random_documents_first_only_warns(
    tmp_path, random_neg_score, verdict
):
    """Half the BM25 negatives outscore their positive: a false-negative problem (fail) when
    the judge ranks the random negatives below their positive, a weak judge (warn, said so)
    when it ranks them above too."""
    scored = [
        triple("q1", "p1", f"n{r}", r, teacher_pos_score=5.0, teacher_neg_score=s)
        for r, s in ((10, 6.0), (20, 6.0), (30, 1.0), (40, 1.0))
    ] + [
        triple("q1", "p1", f"r{i}", None, "random", teacher_pos_score=5.0,
               teacher_neg_score=random_neg_score)
        for i in range(2)
    ]  # fmt: skip
    fake = experiment(
        tmp_path,
        triples=scored,
        triples_config={"window": [1, 100], "teacher": "t", "false_negative_margin": 0.0},
    )
    finding = negatives.false_negatives(fake.context(VARIANT))
    assert finding.verdict == verdict
    assert finding.evidence["random_scored"] == 2
    assert ("too weak" in finding.summary) == (verdict == "warn")


def test_p7_not_applicable_without_triples(tmp_path):
    fake = experiment(tmp_path)
    del fake.rows[1]["stages"]["triples"]
    with pytest.raises(MissingEvidenceError, match="has no triples stage"):
        negatives.false_negatives(fake.context(VARIANT))


def test_sample_evenly_spreads_over_the_list():
    assert negatives.sample_evenly(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert negatives.sample_evenly([1, 2], 5) == [1, 2]


@pytest.fixture(scope="module")
def headed_minilm(tmp_path_factory) -> Path:
    """The packaged MiniLM with a 1-logit head saved with it (a starting model whose head is
    not re-initialised at load)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inpars_core.models import resolve_model_path

    source = resolve_model_path("minilm")
    folder = tmp_path_factory.mktemp("headed") / "model"
    AutoModelForSequenceClassification.from_pretrained(source, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


@pytest.mark.integration
def test_p7_probe_counts_a_duplicate_document_as_outscoring(tmp_path, headed_minilm):
    """A negative with its positive's exact text (a duplicate under another id) scores as high
    as the positive whatever the head: the probe must count it."""
    from tests.conftest import TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir

    data = write_beir(tmp_path / "tiny", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    fake = experiment(
        tmp_path,
        base_model=str(headed_minilm),
        dataset={"name": "tiny", "path": str(data)},
        triples=[triple("q3", "d4", "d0", 2), triple("q2", "d0", "d4", 2)],
    )
    finding = negatives.false_negatives(fake.context(VARIANT, probe=True))
    assert finding.evidence["scored_triples"] == 2
    assert finding.evidence["outscoring"] == 2
    assert finding.verdict == "fail"
    assert finding.evidence["probe_max_length"] == 32
    assert str(headed_minilm) in finding.evidence["judge"]


@pytest.mark.integration
def test_p7_probe_refuses_a_starting_model_without_a_trained_head(tmp_path):
    from tests.conftest import TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir

    data = write_beir(tmp_path / "tiny", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    fake = experiment(
        tmp_path,
        base_model="minilm",
        dataset={"name": "tiny", "path": str(data)},
        triples=[triple("q1", "d1", "d2", 40)],
    )
    finding = negatives.false_negatives(fake.context(VARIANT, probe=True))
    assert "no trained relevance head" in finding.evidence["probe_note"]
    assert finding.verdict == "ok"  # nothing else wrong: 1 negative from rank 40
