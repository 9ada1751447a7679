"""Checks P1 (pair encoding), P10 (train/eval mismatch), P2 (silent MSE), P3 (re-initialised
head) and P4 (zero loss) on hand-made experiment folders (tests/diagnosis/fakes.py), one test
per verdict each can give; the P1 probe and the pipeline records it reads on the packaged
MiniLM at short max_length."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inpars_core.diagnosis import VariantContext
from inpars_core.diagnosis.checks import encoding, loss
from inpars_core.diagnosis.engine import diagnose
from tests.diagnosis.fakes import DROP, FakeExperiment, fine_tuned_experiment

ZERO_TYPES = {
    "config": {"pair_encoding": "zero-types"},
    "encoding": {
        "pair_encoding": "zero-types",
        "type1_share": 0.0,
        "all_zero_types": True,
        "problems": ["all token_type_ids are 0 for a model with type_vocab_size 2: ..."],
    },
}
SEPARATE = {
    "config": {"pair_encoding": "separate"},
    "encoding": {"pair_encoding": "separate", "type1_share": 0.0, "cls_per_pair": 2.0},
}


def context(fake: FakeExperiment, variant: str = "v", probe: bool = False) -> VariantContext:
    return VariantContext.load(fake.write(), variant, probe=probe)


# --------------------------------------------------------------------------- P1


@pytest.mark.parametrize(("bug", "words"), [(ZERO_TYPES, "zero-types"), (SEPARATE, "2 [CLS]")])
def test_p1_fails_for_a_buggy_encoding_on_a_two_type_model(tmp_path: Path, bug, words) -> None:
    fake = fine_tuned_experiment(tmp_path, finetune=bug, rerank=bug)
    finding = encoding.pair_encoding(context(fake))
    assert finding.verdict == "fail" and words in finding.summary
    assert (
        "training" in finding.evidence["problems"] and "reranking" in finding.evidence["problems"]
    )
    assert finding.fix == {"rerank.pair_encoding": "pair"}
    assert finding.evidence["type_vocab_size"] == 2
    assert finding.page.startswith("encodings?model=v&") and "maxlen=128" in finding.page


def test_p1_fails_when_only_reranking_is_buggy(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(tmp_path, rerank=ZERO_TYPES)
    finding = encoding.pair_encoding(context(fake))
    assert finding.verdict == "fail"
    assert "reranking" in finding.evidence["problems"]
    assert "training" not in finding.evidence["problems"]


def test_p1_ok_for_the_pair_encoding(tmp_path: Path) -> None:
    finding = encoding.pair_encoding(context(fine_tuned_experiment(tmp_path)))
    assert finding.verdict == "ok" and finding.fix == {}
    assert finding.evidence["rerank_type1_share"] == 0.8
    assert finding.evidence["train_cls_per_pair"] == 1.0


def test_p1_is_na_for_a_one_type_model(tmp_path: Path) -> None:
    one_type = {"encoding": {"type_vocab_size": 1, "type1_share": 0.0, "all_zero_types": True}}
    fake = fine_tuned_experiment(tmp_path, finetune=one_type, rerank=one_type)
    finding = encoding.pair_encoding(context(fake))
    assert finding.verdict == "n/a" and "type_vocab_size 1" in finding.summary


def test_p1_reads_the_model_config_when_no_stage_recorded_its_encoding(tmp_path: Path) -> None:
    """Older stages recorded no encoding: type_vocab_size comes from the model's config.json;
    without it the check says why it could not run (through the engine: n/a)."""
    fake = fine_tuned_experiment(
        tmp_path, finetune={"encoding": DROP, "config": {"pair_encoding": "zero-types"}},
        rerank={"encoding": DROP, "config": {"pair_encoding": "zero-types"}},
    )  # fmt: skip
    assert encoding.pair_encoding(context(fake)).verdict == "fail"
    (fake.dir / "stages/finetune/ft-v/model/config.json").unlink()
    found = diagnose(fake.dir, "v", probe=False).variant("v").finding("P1")
    assert found.verdict == "n/a" and "type_vocab_size" in found.summary


# --------------------------------------------------------------------------- P10


def test_p10_fails_on_an_encoding_mismatch(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(tmp_path, rerank={"config": {"pair_encoding": "separate"}})
    finding = encoding.train_eval_mismatch(context(fake))
    assert finding.verdict == "fail" and "'pair', reranked with 'separate'" in finding.summary
    assert finding.evidence["rerank_truncation"] != finding.evidence["train_truncation"]
    assert finding.fix == {"rerank.pair_encoding": "pair"}


def test_p10_fails_when_dropout_was_on_at_inference(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(tmp_path, rerank={"training_mode": True})
    finding = encoding.train_eval_mismatch(context(fake))
    assert finding.verdict == "fail" and "dropout" in finding.summary


def test_p10_warns_on_a_length_or_precision_mismatch(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(
        tmp_path, finetune={"config": {"max_length": 64}},
        rerank={"config": {"max_length": 256, "precision": "bf16"}},
    )  # fmt: skip
    finding = encoding.train_eval_mismatch(context(fake))
    assert finding.verdict == "warn"
    assert (finding.evidence["train_max_length"], finding.evidence["rerank_max_length"]) == (
        64,
        256,
    )
    assert finding.fix == {"finetune.max_length": 256, "rerank.precision": "fp32"}


def test_p10_ok_when_training_and_reranking_agree(tmp_path: Path) -> None:
    finding = encoding.train_eval_mismatch(context(fine_tuned_experiment(tmp_path)))
    assert finding.verdict == "ok" and "dropout off" in finding.summary
    assert finding.evidence["rerank_training_mode"] is False


def test_p10_onnx_fp32_is_fp32_and_onnx_int8_is_a_precision_change(tmp_path: Path) -> None:
    same = fine_tuned_experiment(tmp_path / "a", rerank={"config": {"precision": "onnx-fp32"}})
    assert encoding.train_eval_mismatch(context(same)).verdict == "ok"
    other = fine_tuned_experiment(tmp_path / "b", rerank={"config": {"precision": "onnx-int8"}})
    finding = encoding.train_eval_mismatch(context(other))
    assert finding.verdict == "warn" and "reranked in onnx-int8" in finding.summary
    assert finding.fix == {"rerank.precision": "fp32"}


def test_p10_a_bf16_rerank_whose_top_10_is_rescored_in_fp32_is_no_precision_change(
    tmp_path: Path,
) -> None:
    exact = {"config": {"precision": "bf16", "exact_top": 10}}
    finding = encoding.train_eval_mismatch(
        context(fine_tuned_experiment(tmp_path / "a", rerank=exact))
    )
    assert finding.verdict == "ok" and finding.evidence["rerank_exact_top"] == 10
    # a top 5 leaves ranks 6-10 of nDCG@10 in bf16: still a precision change
    short = {"config": {"precision": "bf16", "exact_top": 5}}
    finding = encoding.train_eval_mismatch(
        context(fine_tuned_experiment(tmp_path / "b", rerank=short))
    )
    assert finding.verdict == "warn" and "reranked in bf16" in finding.summary


def test_p10_is_na_without_a_rerank_stage(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(tmp_path)
    del fake.rows[1]["stages"]["rerank"]
    found = diagnose(fake.write(), "v", probe=False).variant("v").finding("P10")
    assert found.verdict == "n/a" and "no rerank stage" in found.summary


# --------------------------------------------------------------------------- P2

SILENT_MSE = {
    "config": {"objective": "hf-default"},
    "objective": {"name": "hf-default", "loss": "ModelOwnLoss"},
    "results": {"problem_type": "regression"},
    "counts": {"notes": ["P2: problem_type is 'regression' with 0/1 labels: ..."]},
}
COLLAPSED = [
    {"step": 0, "probe_mean": -0.2, "probe_std": 0.44},
    {"step": 100, "probe_mean": 0.2, "probe_std": 0.12},  # the kept step: 3.7x smaller
    {"step": 200, "probe_mean": 0.1, "probe_std": 0.30},
]


def test_p2_fails_for_silent_mse_that_collapsed_the_scale_and_hurt(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(
        tmp_path, finetune=SILENT_MSE, eval_log=COLLAPSED, tuned_ndcg=0.5, base_ndcg=0.6
    )
    fake.add_per_query(fake.rows[0], {"q1": 0.9, "q2": 0.5, "q3": 0.4})
    fake.add_per_query(fake.rows[1], {"q1": 0.3, "q2": 0.6, "q3": 0.3})
    finding = loss.silent_mse(context(fake))
    assert finding.verdict == "fail"
    assert "collapsed" in finding.summary and "< base" in finding.summary
    assert finding.evidence["kept_step"] == 100  # the kept step, not the last one
    assert finding.evidence["probe_std_ratio"] == pytest.approx(0.12 / 0.44)
    assert finding.evidence["delta_vs_base"] == pytest.approx(-0.1)
    assert finding.ids == ("q1", "q3")  # the queries lost, most lost first
    assert finding.fix == {"finetune.objective": "bce"}
    assert "at least the base" in finding.expected and finding.page == "training?runs=v"


def test_p2_fails_on_the_collapse_alone(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(
        tmp_path, finetune=SILENT_MSE, eval_log=COLLAPSED, tuned_ndcg=0.7, base_ndcg=0.6
    )
    finding = loss.silent_mse(context(fake))
    assert finding.verdict == "fail" and "< base" not in finding.summary


def test_p2_warns_for_silent_mse_without_visible_harm(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(tmp_path, finetune=SILENT_MSE, tuned_ndcg=0.7, base_ndcg=0.6)
    finding = loss.silent_mse(context(fake))
    assert finding.verdict == "warn" and finding.fix == {"finetune.objective": "bce"}
    assert finding.evidence["probe_std_ratio"] == pytest.approx(0.90 / 0.44)


def test_p2_ok_for_bce_even_when_it_hurt(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(tmp_path, tuned_ndcg=0.5, base_ndcg=0.6)
    finding = loss.silent_mse(context(fake))
    assert finding.verdict == "ok" and finding.evidence["objective"] == "bce"


def test_p2_is_na_when_the_finetune_stage_is_gone(tmp_path: Path) -> None:
    import shutil

    fake = fine_tuned_experiment(tmp_path)
    fake.write()
    shutil.rmtree(fake.dir / "stages" / "finetune")
    found = diagnose(fake.dir, "v", probe=False).variant("v").finding("P2")
    assert found.verdict == "n/a" and "is gone" in found.summary


# --------------------------------------------------------------------------- P3

THROWN = {
    "config": {"objective": "ce2"},
    "objective": {"name": "ce2", "num_labels": 2},
    "results": {"num_labels": 2},
    "counts": {
        "step0_dev_ndcg10": 0.31,
        "notes": [
            "newly initialised head (classifier.weight): the checkpoint's head has 1 label(s), "
            "objective 'ce2' needs 2: ignore_mismatched_sizes=True threw the trained head "
            "away (P3)"
        ],
    },
}


def with_sibling(fake: FakeExperiment, step0: float, **config: Any) -> None:
    """A second variant fine-tuned from the same base on the same dev set, head kept
    (``config``: settings of its finetune config that differ)."""
    meta = json.loads((fake.dir / fake.rows[1]["stages"]["finetune"] / "meta.json").read_text())
    meta = {**meta, "counts": {**meta["counts"], "step0_dev_ndcg10": step0, "notes": []}}
    meta["config"] = {**meta.get("config", {}), **config}
    tune = fake.stage("finetune", "ft-sibling", meta)
    fake.add_row(
        "sibling: fine-tuned", kind="synthetic", family="cross-encoder", variant="sibling",
        depth=20, test_queries=3, measures={"nDCG@10": 0.7}, stages={"finetune": tune},
    )  # fmt: skip


def test_p3_fails_when_the_trained_head_was_thrown_away(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(tmp_path, finetune=THROWN)
    with_sibling(fake, 0.70)
    finding = loss.reinitialised_head(context(fake))
    assert finding.verdict == "fail" and "threw the trained head away" in finding.summary
    assert (finding.evidence["base_head_labels"], finding.evidence["tuned_head_labels"]) == (1, 2)
    assert finding.evidence["starting_model_dev_ndcg10"] == 0.70
    assert finding.evidence["starting_model_dev_from"] == "sibling"
    assert finding.fix == {"finetune.objective": "bce"}


def test_p3_fails_on_a_moved_step0_dev_alone(tmp_path: Path) -> None:
    """No note (an older trainer), same label count: the step-0 dev nDCG@10 differs from that
    of a run from the same model on the same dev set."""
    fake = fine_tuned_experiment(tmp_path, finetune={"counts": {"step0_dev_ndcg10": 0.31}})
    with_sibling(fake, 0.70)
    finding = loss.reinitialised_head(context(fake))
    assert finding.verdict == "fail" and "0.3100 ≠" in finding.summary


@pytest.mark.parametrize("setting", [{"pair_encoding": "separate"}, {"max_length": 32}])
def test_p3_compares_step0_dev_only_with_a_run_that_scores_the_dev_set_alike(
    tmp_path: Path, setting: dict[str, Any]
) -> None:
    """Another pair encoding or max_length moves the step-0 dev of the very same weights: such
    a run is no measure of the starting model's own dev."""
    fake = fine_tuned_experiment(tmp_path, finetune={"counts": {"step0_dev_ndcg10": 0.31}})
    with_sibling(fake, 0.70, **setting)
    finding = loss.reinitialised_head(context(fake))
    assert finding.verdict == "ok", finding.summary
    assert "starting_model_dev_ndcg10" not in finding.evidence


def test_p3_ok_when_the_head_was_kept(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(tmp_path)
    with_sibling(fake, 0.70 + 1e-5)  # the same dev, up to float noise
    finding = loss.reinitialised_head(context(fake))
    assert finding.verdict == "ok" and finding.fix == {}
    assert finding.evidence["new_head"] is False


def test_p3_ok_for_a_new_head_on_a_backbone(tmp_path: Path) -> None:
    backbone = {"architectures": ["BertModel"], "type_vocab_size": 2}
    note = "newly initialised head (classifier.bias, classifier.weight): the checkpoint has no"
    fake = fine_tuned_experiment(
        tmp_path, base_train=backbone, finetune={"counts": {"notes": [note]}}
    )
    finding = loss.reinitialised_head(context(fake))
    assert finding.verdict == "ok" and "had none" in finding.summary
    assert finding.evidence["base_head_labels"] == "no head"


def test_p3_is_na_without_the_finetune_meta(tmp_path: Path) -> None:
    fake = fine_tuned_experiment(tmp_path)
    fake.write()
    (fake.dir / fake.rows[1]["stages"]["finetune"] / "meta.json").unlink()
    found = diagnose(fake.dir, "v", probe=False).variant("v").finding("P3")
    assert found.verdict == "n/a" and "meta.json is missing" in found.summary


# --------------------------------------------------------------------------- P4


def test_p4_fails_when_the_loss_is_exactly_zero(tmp_path: Path) -> None:
    zeros = [{"step": s, "loss": 0.0} for s in range(1, 11)]
    fake = fine_tuned_experiment(
        tmp_path, train_log=zeros, finetune={"counts": {"first_loss": 0.0}}
    )
    finding = loss.zero_loss(context(fake))
    assert finding.verdict == "fail" and "nothing learns" in finding.summary
    assert finding.evidence["zero_loss_steps"] == finding.evidence["steps"] == 10
    assert finding.fix == {"finetune.objective": "bce"}


def test_p4_warns_when_some_steps_had_zero_loss(tmp_path: Path) -> None:
    log = [{"step": s, "loss": 0.0 if s in (4, 7) else 0.5} for s in range(1, 11)]
    finding = loss.zero_loss(context(fine_tuned_experiment(tmp_path, train_log=log)))
    assert finding.verdict == "warn" and "step 4, step 7" in finding.summary


def test_p4_ok_and_na(tmp_path: Path) -> None:
    assert loss.zero_loss(context(fine_tuned_experiment(tmp_path / "a"))).verdict == "ok"
    fake = fine_tuned_experiment(tmp_path / "b")
    fake.write()
    (fake.dir / fake.rows[1]["stages"]["finetune"] / "train_log.jsonl").unlink()
    found = diagnose(fake.dir, "v", probe=False).variant("v").finding("P4")
    assert found.verdict == "n/a" and "train_log.jsonl is missing" in found.summary


# --------------------------------------------------------------------------- the P1 probe

LONG_QUERY = "aspirin heart attack risk reduction in older adults with diabetes and hypertension"


@pytest.fixture(scope="module")
def scaled_model(tmp_path_factory) -> Path:
    """The packaged MiniLM with a seeded 1-logit head scaled ×50 (logits of a few units, as a
    trained reranker's, so that an encoding's effect on the score is visible), saved once."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inpars_core.models import resolve_model_path

    torch.manual_seed(0)
    path = resolve_model_path("minilm")
    folder = tmp_path_factory.mktemp("diagnosis-model") / "model"
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    with torch.no_grad():
        model.classifier.weight.mul_(50.0)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(path).save_pretrained(folder)
    return folder


def probe_experiment(tmp_path: Path, model: Path, mode: str, max_length: int) -> FakeExperiment:
    """A fake experiment whose fine-tuned model is ``model``, reranked with ``mode`` at
    ``max_length``, over a tiny BEIR folder and a BM25 run of its three test queries."""
    from inpars_core.records import ScoredDoc
    from inpars_core.runs import write_trec_run
    from tests.conftest import TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir

    queries = [*TINY_QUERIES[:2], {"_id": "q3", "text": LONG_QUERY}]
    data = write_beir(tmp_path / "tiny", TINY_CORPUS, queries, TINY_QRELS)
    setting = {"config": {"pair_encoding": mode, "max_length": max_length}}
    fake = fine_tuned_experiment(tmp_path, finetune=setting, rerank=setting)
    fake.dataset = {"name": "tiny", "path": str(data)}
    fake.test_query_ids = ["q1", "q2", "q3"]
    docs = [d["_id"] for d in TINY_CORPUS]
    run = {q: [ScoredDoc(q, d, 5.0 - i) for i, d in enumerate(docs)] for q in fake.test_query_ids}
    write_trec_run(run, fake.dir / fake.rows[0]["stages"]["bm25-test"] / "run.trec")
    folder = fake.dir / fake.rows[1]["stages"]["finetune"] / "model"
    (folder / "config.json").unlink()
    folder.rmdir()
    folder.symlink_to(model, target_is_directory=True)
    return fake


@pytest.mark.integration
def test_p1_probe_scores_the_pipeline_encoding_against_the_reference(
    tmp_path: Path, scaled_model: Path
) -> None:
    """pair at 64: the same scores as `tokenizer(q, d)` (ok); zero-types: other scores (fail,
    the pairs that differ most listed); pair at 12, where only the long query is cut to fit: the
    records are right but the scores differ from the reference (warn)."""
    ok = encoding.pair_encoding(
        context(probe_experiment(tmp_path / "a", scaled_model, "pair", 64), probe=True)
    )
    assert ok.verdict == "ok" and ok.evidence["probe_pairs"] == 12  # 3 queries x 4 documents
    assert ok.evidence["probe_max_abs_diff"] < encoding.SCORE_TOLERANCE
    assert ok.evidence["probe_rank_agreement"] == 1.0 and ok.ids == ()
    zero = encoding.pair_encoding(
        context(probe_experiment(tmp_path / "b", scaled_model, "zero-types", 64), probe=True)
    )
    assert zero.verdict == "fail" and zero.evidence["probe_max_abs_diff"] > encoding.SCORE_TOLERANCE
    assert zero.ids and all("/" in pair for pair in zero.ids)
    cut = encoding.pair_encoding(
        context(probe_experiment(tmp_path / "c", scaled_model, "pair", 12), probe=True)
    )
    assert cut.verdict == "warn" and cut.ids and all(pair.startswith("q3/") for pair in cut.ids)


@pytest.mark.integration
def test_the_rerank_stage_records_eval_mode_and_its_encoding(
    tmp_path: Path, tiny_dir: Path, scaled_model: Path
) -> None:
    """What P1 and P10 read: the rerank stage's meta.json says the scoring model was in eval
    mode (dropout off) and what its pair encoding looked like."""
    from inpars_core.records import ScoredDoc
    from inpars_core.runs import write_trec_run
    from inpars_core.stages import rerank

    run = {q: [ScoredDoc(q, d, 1.0) for d in ("d1", "d2", "d3")] for q in ("q1", "q2", "q3")}
    write_trec_run(run, tmp_path / "first.run")
    config = rerank.Config(depth=3, max_length=32, cache=False, device="cpu")
    inputs = rerank.Inputs(
        dataset=str(tiny_dir), run=str(tmp_path / "first.run"), model=str(scaled_model)
    )
    meta = rerank.run(config, inputs, tmp_path / "out").meta
    assert meta["training_mode"] is False
    assert meta["encoding"]["cls_per_pair"] == 1.0 and meta["encoding"]["type1_share"] > 0
