"""Honest numbers in model selection: the dev criterion is the reported system (BM25
interpolation included), model/ holds exactly the best step's weights, margin-mse distils from a
real teacher, and no teacher (distillation or false-negative guard) is the model being trained.

Tiny runs on the packaged MiniLM backbone (max_length 48, a few steps)."""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from inpars_core.errors import ConfigError
from inpars_core.evaluation import evaluate
from inpars_core.records import ScoredDoc
from inpars_core.runs import interpolate_with_first_stage
from inpars_core.training import (
    DevSet,
    TrainingConfig,
    check_teacher_is_not_student,
    teacher_fingerprint,
    train_reranker,
    weights_sha256,
)
from tests.test_training import (
    DOCS,
    MAX_LENGTH,
    QUERIES,
    checkpoint,  # noqa: F401  (the session fixture, shared)
    dev_pairs,
    dev_set,
    make_triples,
    one_thread,  # noqa: F401  (one torch thread for this module too)
    ranking_from,
    read_lines,
    zero_shot_scores,
)

torch = pytest.importorskip("torch")


# --- the dev criterion is the reported system ---------------------------------------------


def test_dev_bm25_weight_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"bm25_weight must be a number in \[0, 1\]"):
        DevSet({}, {}, {}, {}, bm25_weight=1.5)
    assert dev_set().bm25_weight == 0.0  # the pure reranker unless asked


@pytest.mark.integration
def test_the_dev_value_is_the_interpolated_system_when_bm25_weight_is_set(
    checkpoint: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Judge each query's zero-shot LAST document relevant and let the first stage rank it first:
    # the pure reranker puts it at rank 8, the interpolated system (weight 0.8) at rank 1.
    keys, pairs = dev_pairs()
    pure = ranking_from(keys, zero_shot_scores(checkpoint, pairs))
    qrels = {q: {docs[-1].doc_id: 1} for q, docs in pure.items()}
    first_stage = {
        q: [ScoredDoc(q, d.doc_id, float(i + 1)) for i, d in enumerate(docs)][::-1]
        for q, docs in pure.items()
    }
    weight = 0.8
    dev = DevSet(dict(QUERIES), first_stage, qrels, dict(DOCS), len(DOCS), bm25_weight=weight)
    pure_value = evaluate(pure, qrels, ["nDCG@10"]).aggregate["nDCG@10"]
    fused_value = evaluate(
        interpolate_with_first_stage(pure, first_stage, weight), qrels, ["nDCG@10"]
    ).aggregate["nDCG@10"]
    assert fused_value == 1.0 and pure_value < 0.5  # the two systems disagree

    config = TrainingConfig(
        objective="bce", lr=1e-5, max_steps=1, batch_size=2, max_length=MAX_LENGTH, probe_size=0
    )
    out = tmp_path / "run"
    result = train_reranker(make_triples(), DOCS, config, out, dev=dev, base_model=str(checkpoint))
    evals = read_lines(out / "eval_log.jsonl")
    assert evals[0]["nDCG@10"] == fused_value == result.step0_dev_ndcg10
    assert evals[0]["bm25_weight"] == weight
    meta = json.loads((out / "meta.json").read_text())
    assert meta["inputs"]["dev"]["bm25_weight"] == weight
    assert meta["results"]["dev_bm25_weight"] == weight


# --- model/ holds exactly the best step's weights -----------------------------------------


@pytest.mark.integration
def test_a_later_step_wins_and_model_holds_exactly_its_weights(tmp_path: Path) -> None:
    # A fresh head on the packaged backbone ranks the dev set poorly at step 0; training on the
    # dev queries' own positives improves it, so a step > 0 is the best.
    config = TrainingConfig(
        objective="bce",
        lr=2e-4,
        warmup_ratio=0.0,
        max_steps=6,
        batch_size=8,
        eval_every=1,
        max_length=MAX_LENGTH,
        probe_size=0,
        seed=0,
    )
    assert config.keep == "best"
    out = tmp_path / "run"
    result = train_reranker(make_triples(), DOCS, config, out, dev=dev_set(), base_model="minilm")
    evals = read_lines(out / "eval_log.jsonl")
    values = [e["nDCG@10"] for e in evals]
    assert result.best_step > 0 and not result.best_at_step0, values
    assert result.best_dev_ndcg10 == max(values) > values[0]
    assert result.kept_step == result.best_step
    saved = {e["step"]: e["weights_sha256"] for e in evals if e.get("saved")}
    assert set(saved) >= {0, result.best_step}
    assert all("weights_sha256" not in e for e in evals if not e.get("saved"))
    kept = weights_sha256(result.model_dir)
    assert kept == saved[result.best_step] != saved[0]
    assert json.loads((out / "meta.json").read_text())["results"]["kept_weights_sha256"] == kept


# --- margin-mse distils from a real teacher -----------------------------------------------


@pytest.mark.integration
def test_margin_mse_without_a_teacher_is_refused_before_loading(tmp_path: Path) -> None:
    config = TrainingConfig(objective="margin-mse", max_steps=1, max_length=MAX_LENGTH)
    with pytest.raises(ConfigError, match=r"8 of 8 triples .* no teacher model.*teacher_model"):
        train_reranker(make_triples(), DOCS, config, tmp_path / "run", base_model="minilm")
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_margin_mse_with_the_student_as_teacher_is_refused(
    checkpoint: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    copy = tmp_path / "same-weights"
    shutil.copytree(checkpoint, copy)
    for teacher in (str(checkpoint), str(copy)):  # the same name, and another name for it
        config = TrainingConfig(
            objective="margin-mse", max_steps=1, max_length=MAX_LENGTH, teacher_model=teacher
        )
        with pytest.raises(ConfigError, match=r"margin-mse teacher: .* is the student"):
            train_reranker(
                make_triples(), DOCS, config, tmp_path / "run", base_model=str(checkpoint)
            )
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_margin_mse_with_another_teacher_starts_above_zero_and_learns(
    checkpoint: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    triples = make_triples(("q1", "q2", "q3"))
    config = TrainingConfig(
        objective="margin-mse",
        lr=1e-4,
        warmup_ratio=0.0,
        max_steps=10,
        batch_size=len(triples),
        max_length=MAX_LENGTH,
        probe_size=0,
        teacher_model=str(checkpoint),
    )
    out = tmp_path / "run"
    result = train_reranker(triples, DOCS, config, out, base_model="minilm")
    losses = [line["loss"] for line in read_lines(out / "train_log.jsonl")]
    assert result.first_loss == losses[0] > 0.01
    assert statistics.fmean(losses[-3:]) < statistics.fmean(losses[:3]), losses
    assert any(
        "0 triples with stored teacher scores, 6 scored by the teacher" in n for n in result.notes
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["inputs"]["teacher_model"] == str(checkpoint)
    assert meta["config"]["teacher_model"] == str(checkpoint)


# --- no teacher is the student: the helper and the mined triples --------------------------


@pytest.mark.integration
def test_check_teacher_is_not_student(checkpoint: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match=r"^guard teacher: expected a model other than"):
        check_teacher_is_not_student("minilm", "minilm", "guard teacher")
    copy = tmp_path / "copy"
    shutil.copytree(checkpoint, copy)
    with pytest.raises(ConfigError, match=r"weights fingerprint .* Fix: name a different"):
        check_teacher_is_not_student(str(copy), str(checkpoint), "guard teacher")
    check_teacher_is_not_student(str(checkpoint), "minilm", "guard teacher")  # different weights
    assert teacher_fingerprint(str(copy)) == teacher_fingerprint(str(checkpoint))


@pytest.mark.integration
def test_triples_guarded_by_the_student_are_refused(
    checkpoint: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    fingerprint = teacher_fingerprint(str(checkpoint))
    triples = make_triples(teacher_pos_score=1.0, teacher_neg_score=0.0)
    triples = [replace(t, teacher_fingerprint=fingerprint) for t in triples]
    config = TrainingConfig(objective="bce", max_steps=1, max_length=MAX_LENGTH)
    with pytest.raises(ConfigError, match=r"triples: .*teacher fingerprint .* is the base model"):
        train_reranker(triples, DOCS, config, tmp_path / "run", base_model=str(checkpoint))
    assert not (tmp_path / "run").exists()


# --- the bi-encoder trainer: the same two properties --------------------------------------


def _dense_dev():
    """Four queries whose judged document is off-topic (a poor zero-shot dev score), ten
    documents in a fixed first-stage order, and triples that teach exactly those pairs."""
    from inpars_core.dense.training import DenseDevSet
    from inpars_core.records import Document, Query, Triple

    texts = {
        **DOCS,
        "x1": "Sunscreen protects the skin against ultraviolet radiation.",
        "x2": "Hand washing prevents the spread of infections in hospitals.",
    }
    documents = {d: Document(d, "", t) for d, t in texts.items()}
    odd = {"q1": "x1", "q2": "x2", "q3": "p1", "q4": "c1"}
    run = {
        q: [ScoredDoc(q, d, float(len(texts) - i)) for i, d in enumerate(sorted(texts))]
        for q in QUERIES
    }
    dev = DenseDevSet(
        {q: Query(q, t) for q, t in QUERIES.items()},
        {q: {odd[q]: 1} for q in QUERIES},
        run,
        documents,
        depth=10,
    )
    triples = [Triple(q, QUERIES[q], odd[q], neg, "bm25") for q in QUERIES for neg in ("a1", "s1")]
    return dev, triples, documents


@pytest.mark.integration
def test_dense_dev_value_is_the_interpolated_system() -> None:
    pytest.importorskip("sentence_transformers")
    from inpars_core.dense.encoder import load_encoder
    from inpars_core.dense.search import rerank_with_encoder
    from inpars_core.dense.training import TrainDenseConfig, evaluate_dev, zero_shot_dev_score

    dev, _, _ = _dense_dev()
    config = TrainDenseConfig(max_length=32)
    encoder = load_encoder("minilm", 32)
    pure = rerank_with_encoder(encoder, dev.queries, dev.run, dev.documents, dev.depth)
    fused = interpolate_with_first_stage(pure, dev.run, 0.7)
    expected = evaluate(fused, dev.qrels, ["nDCG@10"]).aggregate["nDCG@10"]
    weighted = replace(dev, bm25_weight=0.7)
    assert evaluate_dev(encoder, weighted) == expected != evaluate_dev(encoder, dev)
    assert zero_shot_dev_score("minilm", weighted, config) == expected
    with pytest.raises(ConfigError, match="bm25_weight"):
        replace(dev, bm25_weight=-0.1)


@pytest.mark.integration
def test_dense_later_step_wins_and_model_holds_exactly_its_weights(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from inpars_core.dense.encoder import load_encoder
    from inpars_core.dense.training import TrainDenseConfig, state_sha256, train_dense

    dev, triples, documents = _dense_dev()
    config = TrainDenseConfig(
        objective="mnrl",
        lr=5e-4,
        max_steps=6,
        batch_size=4,
        max_length=32,
        warmup_ratio=0.0,
        eval_every=1,
    )
    assert config.keep == "best"
    out = tmp_path / "dense"
    result = train_dense("minilm", triples, documents, out, config, dev=dev)
    evals = read_lines(out / "eval_log.jsonl")
    values = [e["nDCG@10"] for e in evals]
    assert result.best_step > 0 and result.best_dev_ndcg10 == max(values) > values[0], values
    assert result.kept_step == result.best_step
    hashes = {e["step"]: e["weights_sha256"] for e in evals if e.get("best")}
    kept = state_sha256(load_encoder(str(result.model_dir), 32).state_dict())
    assert kept == hashes[result.best_step] != hashes[0]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["results"]["kept_weights_sha256"] == kept
    assert meta["results"]["kept_step"] == result.best_step


@pytest.mark.integration
def test_dense_margin_mse_refuses_the_student_as_teacher(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from inpars_core.dense.training import TrainDenseConfig, train_dense

    _, triples, documents = _dense_dev()
    config = TrainDenseConfig(objective="margin-mse", max_length=32, teacher="minilm")
    with pytest.raises(ConfigError, match=r"margin-mse teacher: .* is the student 'minilm'"):
        train_dense("minilm", triples, documents, tmp_path / "x", config)
    assert not (tmp_path / "x").exists()
