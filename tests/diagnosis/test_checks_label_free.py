"""The diagnosis of a label-free variant (its backbone trained on synthetic queries, stages
``synthetic-base-train`` and, consistency-checked, ``consistency-train``) and P13 (query form vs
the test queries), on hand-made experiment folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inpars_core.diagnosis import MissingEvidenceError, VariantContext, diagnose
from inpars_core.diagnosis.checks.form import form_stats, is_question, query_form
from inpars_core.diagnosis.engine import fine_tuned_variants
from tests.conftest import write_beir
from tests.diagnosis.data_fakes import FakeExperiment, base_row, tuned_row

QUESTIONS = {
    "s1": "how does aspirin affect heart attacks",
    "s2": "what causes insulin resistance",
    "s3": "does vitamin d lower blood pressure?",
    "s4": "which genes control the yeast cell cycle",
}
CLAIMS = {
    "t1": "Aspirin lowers the risk of heart attack in adults.",
    "t2": "Obesity causes insulin resistance.",
    "t3": "Vitamin D supplementation lowers blood pressure.",
}


def _label_free_experiment(
    tmp_path: Path, synthetic: dict[str, str], test: dict[str, str], *, consistency: bool = False
) -> Path:
    """A label-free variant ``lf``: generate → filter → triples → synthetic-base-train → rerank,
    and with ``consistency`` a second model on consistency-triples; test queries ``test`` in a
    tiny BEIR folder the summary names."""
    data = write_beir(
        tmp_path / "data",
        [{"_id": f"d-{q}", "title": "", "text": text} for q, text in synthetic.items()],
        [{"_id": q, "text": text} for q, text in {**synthetic, **test}.items()],
        {"test": "".join(f"{q}\td-s1\t1\n" for q in test)},
    )
    exp = FakeExperiment(tmp_path / "exp", {"base_reranker": {"source": "synthetic"}})
    verdicts = [
        {"query_id": q, "doc_id": f"d-{q}", "text": t, "kept": True, "verdicts": []}
        for q, t in synthetic.items()
    ]
    generate = exp.stage("generate", "g0", prompt_json={"example_queries": []})
    filtered = exp.stage("filter", "f0", {"config": {}, "counts": {}}, verdicts_jsonl=verdicts)
    triples = [
        {"query_id": q, "pos_doc_id": f"d-{q}", "neg_doc_id": "x", "neg_source": "bm25"}
        for q in synthetic
    ]
    mined = exp.stage("triples", "t0", {"config": {"window": [1, 30]}}, triples_jsonl=triples)
    trained_meta = {"config": {"objective": "lce", "lr": 1e-4}, "base_model": "minilm"}
    trained = exp.stage("synthetic-base-train", "m0", trained_meta)
    lineage = {
        "generate": generate,
        "filter": filtered,
        "triples": mined,
        "synthetic-base-train": trained,
        "rerank": "stages/rerank/r0",
    }
    values = dict.fromkeys(test, 0.5)
    row = tuned_row("lf", stages=lineage, system="lf: trained on synthetic queries (label-free)")
    del row["stages"]["finetune"]
    exp.add(base_row(), values)
    exp.add(row, values)
    if consistency:
        checked = exp.stage("consistency-triples", "c0", triples_jsonl=triples[:2])
        second = exp.stage("consistency-train", "m1", trained_meta)
        row2 = tuned_row(
            "lf",
            stages={**lineage, "consistency-triples": checked, "consistency-train": second},
            system="lf: consistency-checked",
        )
        del row2["stages"]["finetune"]
        exp.add(row2, values)
    folder = exp.write()
    summary = json.loads((folder / "summary.json").read_text())
    summary["dataset_path"] = str(data)
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_a_label_free_variant_is_diagnosed_as_a_model_trained_from_the_backbone(tmp_path: Path):
    folder = _label_free_experiment(tmp_path, QUESTIONS, CLAIMS, consistency=True)
    assert fine_tuned_variants(folder) == ["lf"]
    ctx = VariantContext.load(folder, "lf", probe=False)
    first, checked = ctx.tuned_rows()
    assert ctx.training_stage(first) == "synthetic-base-train"
    assert ctx.training_stage(checked) == "consistency-train"  # not the model that checked it
    assert ctx.triples_stage(first) == "triples"
    assert ctx.triples_stage(checked) == "consistency-triples"
    assert ctx.from_backbone(first)
    # its training options live in [base_reranker]; the dev options stay in [finetune]
    assert ctx.setting_key(first, "finetune.lr") == "base_reranker.lr"
    assert ctx.setting_key(first, "finetune.keep") == "finetune.keep"
    with pytest.raises(MissingEvidenceError, match="trained from the backbone"):
        ctx.base_row(first)  # the supervised/zero-shot base is not its starting model


def test_a_fine_tuned_variant_keeps_its_finetune_keys(tmp_path: Path):
    exp = FakeExperiment(tmp_path / "exp")
    exp.add(base_row())
    row = exp.add(tuned_row("v"))
    ctx = VariantContext.load(exp.write(), "v", probe=False)
    assert ctx.training_stage(row) == "finetune"
    assert not ctx.from_backbone(row)
    assert ctx.setting_key(row, "finetune.lr") == "finetune.lr"
    assert ctx.base_row(row)["system"] == "base"


def test_p13_warns_when_the_model_learnt_questions_and_is_tested_on_claims(tmp_path: Path):
    folder = _label_free_experiment(tmp_path, QUESTIONS, CLAIMS)
    finding = query_form(VariantContext.load(folder, "lf", probe=False))
    assert finding.verdict == "warn"
    assert finding.evidence["synthetic_question_share"] == 1.0
    assert finding.evidence["test_question_share"] == 0.0
    assert finding.evidence["trained_queries"] == 4
    assert finding.evidence["test_queries"] == 3
    assert finding.fix == {"generator.prompt": "inpars-claim"}
    assert set(finding.ids) <= set(QUESTIONS)
    assert "100% of the 4 trained synthetic queries are questions, 0% of the 3" in finding.summary
    assert finding.page.startswith("synthetic?gen=lf")


def test_p13_names_the_question_prompt_for_question_test_queries(tmp_path: Path):
    claims = {f"s{i}": text for i, text in enumerate(CLAIMS.values())}
    tests = {f"t{i}": text for i, text in enumerate(QUESTIONS.values())}
    folder = _label_free_experiment(tmp_path, claims, tests)
    finding = query_form(VariantContext.load(folder, "lf", probe=False))
    assert finding.verdict == "warn"
    assert finding.fix == {"generator.prompt": "inpars"}


def test_p13_ok_when_the_forms_agree(tmp_path: Path):
    tests = {"t1": "how do statins lower cholesterol", "t2": "what is coffee's effect on heart"}
    folder = _label_free_experiment(tmp_path, QUESTIONS, tests)
    finding = query_form(VariantContext.load(folder, "lf", probe=False))
    assert finding.verdict == "ok"
    assert finding.fix == {}


def test_p13_warns_on_lengths_alone_without_a_prompt_to_name(tmp_path: Path):
    long = {"t1": " ".join(["aspirin"] * 30) + " lowers risk of heart attack"}
    statements = {"s1": "aspirin heart", "s2": "insulin obesity"}
    folder = _label_free_experiment(tmp_path, statements, long)
    finding = query_form(VariantContext.load(folder, "lf", probe=False))
    assert finding.verdict == "warn"
    assert finding.fix == {}
    assert "mean length 2.0 words (synthetic) vs 35.0 (test)" in finding.summary


def test_form_stats_count_questions_by_mark_or_first_word():
    assert is_question("Does aspirin help?")
    assert is_question("aspirin and bleeding?")
    assert not is_question("Aspirin causes bleeding.")
    assert form_stats(["how are you", "Aspirin helps", "why?", "x y z w"]) == {
        "questions": 0.5,
        "mean_words": 2.5,
    }
    with pytest.raises(MissingEvidenceError):
        form_stats(["", "  "])


def test_the_diagnosis_writes_a_label_free_variants_fix_where_it_takes_effect(tmp_path: Path):
    folder = _label_free_experiment(tmp_path, QUESTIONS, CLAIMS)
    (variant,) = diagnose(folder, probe=False).variants
    findings = {f.code: f for f in variant.findings}
    assert findings["P13"].verdict == "warn"
    assert findings["P6"].verdict == "n/a"
    assert "trained from the backbone" in findings["P6"].summary
    for finding in variant.findings:  # no fix names [finetune]'s training options
        assert not any(
            key in {f"finetune.{k}" for k in ("objective", "lr", "max_length", "max_steps")}
            for key in finding.fix
        ), finding
