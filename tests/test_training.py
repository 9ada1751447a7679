"""Training objectives and the trainer, on the packaged MiniLM backbone and a handful of inline
documents (max_length 48, a few steps each)."""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from inpars_core.errors import ConfigError, InputFormatError, UnknownNameError
from inpars_core.evaluation import evaluate
from inpars_core.records import ScoredDoc, Triple
from inpars_core.reranking.encoding import EncodingConfig
from inpars_core.training import (
    NEW_HEAD_NOTE,
    OBJECTIVES,
    DevSet,
    TrainingConfig,
    get_objective,
    load_for_training,
    train_reranker,
)
from inpars_core.training.trainer import (
    Processes,
    lr_factor,
    plan_epoch,
    plan_rows,
    plan_steps,
    ratio_text,
    shard_batch,
    shard_steps,
)

torch = pytest.importorskip("torch")

MAX_LENGTH = 48
ENCODING = EncodingConfig("pair", MAX_LENGTH)

DOCS = {
    "a1": "Aspirin lowers the risk of a heart attack in adults with heart disease.",
    "s1": "Statins reduce LDL cholesterol and the number of cardiovascular events.",
    "v1": "Vitamin D deficiency is common during the winter in northern countries.",
    "m1": "Metformin is the first-line drug for people with type 2 diabetes.",
    "c1": "Coffee consumption is associated with a lower risk of liver disease.",
    "e1": "Regular exercise improves sleep quality in older adults.",
    "i1": "Influenza vaccination reduces hospital admissions in the elderly.",
    "p1": "Probiotics shorten the duration of diarrhoea caused by antibiotics.",
}
QUERIES = {
    "q1": "does aspirin prevent heart attacks",
    "q2": "statins lower cholesterol",
    "q3": "vitamin d levels in winter",
    "q4": "first treatment for type 2 diabetes",
}
POSITIVES = {"q1": "a1", "q2": "s1", "q3": "v1", "q4": "m1"}
NEGATIVES = {"q1": ("c1", "e1"), "q2": ("i1", "p1"), "q3": ("e1", "c1"), "q4": ("p1", "i1")}


def make_triples(queries: tuple[str, ...] = ("q1", "q2", "q3", "q4"), **scores: float) -> list:
    """Two triples per query (its positive and two negatives)."""
    return [
        Triple(q, QUERIES[q], POSITIVES[q], neg, "bm25", **scores)
        for q in queries
        for neg in NEGATIVES[q]
    ]


def dev_set(qrels: dict[str, dict[str, int]] | None = None) -> DevSet:
    """Every document for every query, in a fixed first-stage order."""
    run = {
        q: [ScoredDoc(q, d, float(len(DOCS) - i)) for i, d in enumerate(sorted(DOCS))]
        for q in QUERIES
    }
    qrels = qrels or {q: {d: 1} for q, d in POSITIVES.items()}
    return DevSet(dict(QUERIES), run, qrels, dict(DOCS), depth=len(DOCS))


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-label cross-encoder checkpoint (MiniLM backbone + a seeded head), saved once."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inpars_core.models import resolve_model_path

    path = resolve_model_path("minilm")
    folder = tmp_path_factory.mktemp("ckpt") / "minilm-1label"
    torch.manual_seed(123)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    with torch.no_grad():  # a head with some spread, so rankings are not all ties
        model.classifier.weight.mul_(20)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(path).save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on two cores shared with other processes, two threads contend and
    run an order of magnitude slower; results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def zero_shot_scores(model: str | Path, pairs: list[tuple[str, str]]) -> list[float]:
    from inpars_core.reranking.scoring import load_reranker, score_pairs

    return score_pairs(load_reranker(str(model)), pairs, ENCODING)


def dev_pairs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    keys = [(q, d) for q in QUERIES for d in sorted(DOCS)]
    return keys, [(QUERIES[q], DOCS[d]) for q, d in keys]


def ranking_from(keys: list[tuple[str, str]], scores: list[float]) -> dict:
    run: dict[str, list[ScoredDoc]] = {}
    for (q, d), s in zip(keys, scores, strict=True):
        run.setdefault(q, []).append(ScoredDoc(q, d, s))
    return {q: sorted(docs, key=lambda x: (-x.score, x.doc_id)) for q, docs in run.items()}


# --- registry, config, schedule, batching -------------------------------------------------


def test_registry_has_the_five_objectives_and_names_the_known_ones() -> None:
    assert set(OBJECTIVES) == {"hf-default", "bce", "ce2", "lce", "margin-mse"}
    assert get_objective("ce2").num_labels == 2
    with pytest.raises(UnknownNameError, match=r"unknown objective 'mse'.*bce"):
        get_objective("mse")


def test_config_is_checked_at_construction() -> None:
    with pytest.raises(UnknownNameError):
        TrainingConfig(objective="nope")
    with pytest.raises(ConfigError, match="lr"):
        TrainingConfig(lr=0)
    with pytest.raises(ConfigError, match="max_length"):
        TrainingConfig(max_length=4)


def test_lr_warms_up_then_decays_linearly_without_a_zero_step() -> None:
    factors = [lr_factor(step, 2, 6) for step in range(1, 7)]
    assert factors == pytest.approx([1 / 3, 2 / 3, 1.0, 0.75, 0.5, 0.25])
    assert [lr_factor(s, 0, 2) for s in (1, 2)] == [1.0, 0.5]


def test_listwise_batches_keep_each_query_positive_group_together() -> None:
    import random

    batches = plan_epoch(make_triples(), 4, random.Random(0), keep_groups=True)
    assert sum(len(b) for b in batches) == 8
    for batch in batches:
        assert len({t.query_id for t in batch}) * 2 == len(batch)


def test_each_rank_gets_its_share_of_every_planned_batch_and_the_weight_to_average_it() -> None:
    triples = make_triples()  # 8 triples, 2 per (query, positive)
    assert shard_batch(triples[:5], 2, keep_groups=False) == [triples[:3], triples[3:5]]
    # listwise: whole groups, as even as they allow (3 groups: 2 then 1)
    groups = shard_batch(triples[:6], 2, keep_groups=True)
    assert groups == [triples[:4], triples[4:6]]
    # pointwise rows: q1's positive (row 0) comes with its first triple, q2's (row 3) with its
    # first: step 1 = q1/c1 [0, 1], q1/e1 [2], q2/i1 [3, 4]; step 2 = q2/p1 [5]
    steps = [(0, triples[:3]), (0, triples[3:4])]
    rows = plan_rows(steps, get_objective("bce").triple_rows(triples), position(triples))
    assert rows == [[[0, 1], [2], [3, 4]], [[5]]]
    shares, weights = shard_steps(steps, rows, keep_groups=False, processes=Processes(1, 2, 1))
    # rank 1: the third triple, 2 of the batch's 5 rows (weight 2 * 2/5); an empty share runs
    # the first triple's rows at weight 0
    assert shares == [[3, 4], [5]]
    assert weights == pytest.approx([4 / 5, 0.0])
    shares, weights = shard_steps(steps, rows, keep_groups=False, processes=Processes(0, 2, 0))
    assert (shares, weights) == ([[0, 1, 2], [5]], pytest.approx([6 / 5, 2.0]))
    # listwise: one row per triple, weighted by groups (2 groups, one per rank)
    lce_rows = plan_rows(steps, get_objective("lce").triple_rows(triples), position(triples))
    assert lce_rows == [[[0], [1], [2]], [[3]]]
    shares, weights = shard_steps(steps, lce_rows, keep_groups=True, processes=Processes(1, 2, 1))
    assert (shares, weights) == ([[2], [3]], pytest.approx([1.0, 0.0]))


def position(triples: list[Triple]) -> dict[int, int]:
    """``id(triple)`` -> its index, as the trainer maps planned triples to their rows."""
    return {id(triple): index for index, triple in enumerate(triples)}


def many_negatives(count: int) -> list[Triple]:
    """``count`` negatives for each of q1 and q2: the documents other than its positive, in
    name order (``count`` <= 7)."""
    return [
        Triple(q, QUERIES[q], POSITIVES[q], neg, "bm25")
        for q in ("q1", "q2")
        for neg in sorted(d for d in DOCS if d != POSITIVES[q])[:count]
    ]


POINTWISE = sorted(name for name, cls in OBJECTIVES.items() if cls.layout == "pairs")


@pytest.mark.parametrize("name", POINTWISE)
@pytest.mark.parametrize("count", [5, 1])
def test_pointwise_training_rows_are_each_positive_once_and_each_negative_once(
    name: str, count: int
) -> None:
    """count = 5 (5 triples per query and positive): 5 times as many negative rows as positive
    ones in every epoch; balanced (1 negative per positive): 1:1. Every row the trainer plans is
    one of the objective's columns, none twice in an epoch."""
    assert POINTWISE == ["bce", "ce2", "hf-default"]
    objective = get_objective(name)
    triples = many_negatives(count)
    columns = objective.train_columns(triples, DOCS)
    positive = objective.pair_label(True)
    # the columns: each (query, positive) once, each negative once
    pairs = list(zip(columns["query"], columns["document"], columns["label"], strict=True))
    assert sorted(pairs) == sorted(
        [(QUERIES[q], DOCS[POSITIVES[q]], positive) for q in ("q1", "q2")]
        + [(t.query_text, DOCS[t.neg_doc_id], objective.pair_label(False)) for t in triples]
    )
    config = TrainingConfig(objective=name, epochs=3, batch_size=3, seed=7)
    steps = plan_steps(triples, config, objective.keep_groups)
    rows = plan_rows(steps, objective.triple_rows(triples), position(triples))
    for epoch in range(3):
        trained = [
            row
            for (step_epoch, _), step in zip(steps, rows, strict=True)
            if step_epoch == epoch
            for brought in step
            for row in brought
        ]
        assert sorted(trained) == list(range(len(pairs)))  # every row once per epoch
        labels = [columns["label"][row] for row in trained]
        assert labels.count(positive) == 2
        assert len(labels) - labels.count(positive) == 2 * count
    for (_, batch), step in zip(steps, rows, strict=True):
        positives, negatives = objective.pair_counts(batch, sum(map(len, step)))
        labels = [columns["label"][row] for brought in step for row in brought]
        assert (positives, negatives) == (labels.count(positive), len(batch))
    assert ratio_text(2, 2 * count) == f"1:{count}"


def test_listwise_and_triple_objectives_keep_their_layout() -> None:
    """lce and margin-mse train one row per triple (query, positive, negative): nothing is
    dropped as a repeat; lce scores a group's positive once per batch, margin-mse each
    triple's positive and negative."""
    triples = many_negatives(5)
    steps = [(0, triples[:4]), (0, triples[4:])]
    for name, positives in (("lce", [1, 2]), ("margin-mse", [4, 6])):
        objective = get_objective(name)
        assert objective.layout == "triples"
        rows = plan_rows(steps, objective.triple_rows(triples), position(triples))
        assert [row for step in rows for brought in step for row in brought] == list(range(10))
        counts = [
            objective.pair_counts(batch, sum(map(len, step)))
            for (_, batch), step in zip(steps, rows, strict=True)
        ]
        assert counts == list(zip(positives, [4, 6], strict=True))
    assert ratio_text(3, 7) == "1:2.33" and ratio_text(0, 4) == "0:4"


def test_missing_document_is_reported_before_loading(tmp_path: Path) -> None:
    bad = [Triple("q1", "x", "a1", "zz", "random")]
    with pytest.raises(InputFormatError, match="line 1: field 'neg_doc_id'"):
        train_reranker(bad, DOCS, TrainingConfig(max_length=MAX_LENGTH), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- objectives ---------------------------------------------------------------------------


@pytest.mark.integration
def test_hf_default_is_the_models_own_mse_on_0_1_labels(checkpoint: Path) -> None:
    import torch.nn.functional as F  # noqa: N812

    from inpars_core.training.hf import wrap_cross_encoder

    objective = get_objective("hf-default")
    model, tokenizer, notes = load_for_training(str(checkpoint), objective)
    assert model.config.problem_type is None
    assert not any(n.startswith(NEW_HEAD_NOTE) for n in notes)
    model.eval()
    triples = make_triples()[:3]  # q1's two negatives, q2's first
    batch = objective.make_batch(triples, DOCS, tokenizer, ENCODING)
    # q1's positive once, its two negatives; q2's positive, its negative
    assert batch.labels.tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    columns = objective.train_columns(triples, DOCS)
    loss_module = objective.make_loss(
        wrap_cross_encoder(str(checkpoint), model, tokenizer, ENCODING, "cpu")
    )
    with torch.no_grad():
        loss = loss_module([columns["query"], columns["document"]], torch.tensor(columns["label"]))
        logits = model(**batch.features).logits
    assert model.config.problem_type == "regression"  # what transformers chose by itself
    expected = F.mse_loss(logits.squeeze(-1), batch.labels)
    assert torch.allclose(loss, expected, rtol=0, atol=1e-7)


@pytest.mark.integration
def test_hf_default_on_a_bce_trained_checkpoint_is_its_bce_loss(
    checkpoint: Path, tmp_path: Path
) -> None:
    """A checkpoint trained with BCE stores problem_type "multi_label_classification"; hf-default
    fine-tuning of it used to stop with "Target size [8] must be the same as input size [8, 1]".
    Now the model's own loss is BCE with logits of the 0/1 labels."""
    import shutil

    import torch.nn.functional as F  # noqa: N812
    from transformers import AutoConfig

    from inpars_core.training.hf import wrap_cross_encoder

    folder = tmp_path / "bce-trained"
    shutil.copytree(checkpoint, folder)
    config = AutoConfig.from_pretrained(folder)
    config.problem_type = "multi_label_classification"
    config.save_pretrained(folder)
    objective = get_objective("hf-default")
    model, tokenizer, _notes = load_for_training(str(folder), objective)
    assert model.config.problem_type == "multi_label_classification"
    model.eval()
    triples = make_triples()[:3]
    batch = objective.make_batch(triples, DOCS, tokenizer, ENCODING)
    columns = objective.train_columns(triples, DOCS)
    loss_module = objective.make_loss(
        wrap_cross_encoder(str(folder), model, tokenizer, ENCODING, "cpu")
    )
    with torch.no_grad():
        loss = loss_module([columns["query"], columns["document"]], torch.tensor(columns["label"]))
        logits = model(**batch.features).logits
    expected = F.binary_cross_entropy_with_logits(logits.squeeze(-1), batch.labels)
    assert torch.allclose(loss, expected, rtol=0, atol=1e-6)


@pytest.mark.integration
def test_ce2_on_a_1_label_checkpoint_reports_a_newly_initialised_head(checkpoint: Path) -> None:
    from inpars_core.reranking.scoring import LoadedReranker, score_pairs

    model, tokenizer, notes = load_for_training(str(checkpoint), get_objective("ce2"))
    new = [n for n in notes if n.startswith(NEW_HEAD_NOTE)]
    assert len(new) == 1 and "1 label" in new[0] and "classifier.weight" in new[0]
    assert model.config.num_labels == 2
    # P3: the re-initialised head no longer scores like the checkpoint did.
    pairs = [(QUERIES["q1"], DOCS[d]) for d in sorted(DOCS)]
    ce2 = score_pairs(
        LoadedReranker(model.eval(), tokenizer, "ce2", "-", "cpu", "fp32"), pairs, ENCODING
    )
    assert ce2 != pytest.approx(zero_shot_scores(checkpoint, pairs), abs=1e-3)
    # The same checkpoint with a 1-label objective keeps its head; the bare backbone does not.
    assert not any(
        n.startswith(NEW_HEAD_NOTE)
        for n in load_for_training(str(checkpoint), get_objective("bce"))[2]
    )
    notes = load_for_training("minilm", get_objective("lce"))[2]
    assert any(
        n.startswith(NEW_HEAD_NOTE) and "no sequence-classification head" in n for n in notes
    )


@pytest.mark.integration
def test_margin_mse_teacher_prefers_stored_scores_and_scores_the_rest_with_the_teacher() -> None:
    from transformers import AutoTokenizer

    from inpars_core.models import resolve_model_path

    objective = get_objective("margin-mse")
    stored = make_triples(("q1",), teacher_pos_score=4.0, teacher_neg_score=-1.0)
    computed = make_triples(("q2", "q3"))
    calls: list[list[tuple[str, str]]] = []

    def teacher(pairs: list[tuple[str, str]]) -> list[float]:  # a stand-in: document length
        calls.append(list(pairs))
        return [float(len(text)) for _, text in pairs]

    notes = objective.prepare(stored + computed, DOCS, teacher)
    assert (
        "2 triples with stored teacher scores, 4 scored by the teacher model (6 pairs)" in notes[0]
    )
    assert len(calls) == 1 and len(set(calls[0])) == len(calls[0]) == 6  # each pair once
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    batch = objective.make_batch(stored + computed, DOCS, tokenizer, ENCODING)
    expected = [5.0, 5.0] + [len(DOCS[t.pos_doc_id]) - len(DOCS[t.neg_doc_id]) for t in computed]
    assert batch.teacher_margins.tolist() == expected
    # Without a teacher, triples lacking stored scores are refused (never the student's own).
    with pytest.raises(ConfigError, match="4 of 4 triples without teacher_pos_score"):
        get_objective("margin-mse").prepare(computed, DOCS, None)


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_lowers_its_training_loss(
    name: str, checkpoint: Path, tmp_path: Path
) -> None:
    # Stored teacher margins: margin-mse needs no teacher model (and never uses the student).
    scores = {"teacher_pos_score": 2.0, "teacher_neg_score": -2.0} if name == "margin-mse" else {}
    triples = make_triples(("q1", "q2", "q3"), **scores)
    config = TrainingConfig(
        objective=name,
        lr=1e-4,
        warmup_ratio=0.0,
        max_steps=12,
        batch_size=len(triples),
        max_length=MAX_LENGTH,
        probe_size=4,
    )
    result = train_reranker(triples, DOCS, config, tmp_path / "out", base_model=str(checkpoint))
    losses = [line["loss"] for line in read_lines(tmp_path / "out" / "train_log.jsonl")]
    assert len(losses) == 12 == result.final_step == result.best_step
    assert statistics.fmean(losses[-3:]) < statistics.fmean(losses[:3]), losses
    assert result.first_loss == losses[0] and result.last_loss == losses[-1]
    assert result.best_dev_ndcg10 is None and (tmp_path / "out" / "model" / "config.json").is_file()
    assert any(note.startswith("P2:") for note in result.notes) == (name == "hf-default")


# --- trainer: step 0, best checkpoint, artifacts ------------------------------------------


@pytest.mark.integration
def test_step0_equals_zero_shot_and_logs_and_meta_hold_the_documented_fields(
    checkpoint: Path, tmp_path: Path
) -> None:
    triples = make_triples()
    config = TrainingConfig(
        objective="bce",
        lr=1e-4,
        max_steps=4,
        batch_size=4,
        eval_every=2,
        max_length=MAX_LENGTH,
        probe_size=6,
    )
    out = tmp_path / "run"
    result = train_reranker(triples, DOCS, config, out, dev=dev_set(), base_model=str(checkpoint))

    keys, pairs = dev_pairs()
    zero_shot = evaluate(
        ranking_from(keys, zero_shot_scores(checkpoint, pairs)),
        {q: {d: 1} for q, d in POSITIVES.items()},
        ["nDCG@10"],
    )
    evals = read_lines(out / "eval_log.jsonl")
    assert [e["step"] for e in evals] == [0, 2, 4]
    assert evals[0]["nDCG@10"] == zero_shot.aggregate["nDCG@10"] == result.step0_dev_ndcg10
    # the first 6 training rows: each query's positive once, then its two negatives
    probe = [(QUERIES[q], DOCS[d]) for q in ("q1", "q2") for d in (POSITIVES[q], *NEGATIVES[q])]
    probe_scores = zero_shot_scores(checkpoint, probe)
    assert evals[0]["probe_mean"] == statistics.fmean(probe_scores)
    assert evals[0]["probe_std"] == statistics.pstdev(probe_scores)

    steps = read_lines(out / "train_log.jsonl")
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    for line in steps:
        assert {"step", "loss", "lr", "grad_norm", "param_drift"} <= set(line)
    # one warm-up update (10 % of 4, rounded up) at half the lr, then full, then linear decay
    assert [s["lr"] for s in steps] == pytest.approx([5e-5, 1e-4, 2e-4 / 3, 1e-4 / 3])
    assert 0 < steps[0]["param_drift"] < steps[-1]["param_drift"]

    meta = json.loads((out / "meta.json").read_text())
    assert meta["stage"] == "train" and meta["base_model"] == str(checkpoint)
    assert meta["config"]["objective"] == "bce" and meta["objective"]["name"] == "bce"
    results = meta["results"]
    assert results["best_step"] == result.best_step
    assert results["best_dev_ndcg10"] == result.best_dev_ndcg10
    assert results["step0_dev_ndcg10"] == zero_shot.aggregate["nDCG@10"]
    assert results["first_loss"] == steps[0]["loss"]
    assert results["problem_type"] == "multi_label_classification"
    assert any("problem_type" in note for note in meta["notes"])
    assert {"load_s", "train_s", "eval_s", "total_s"} <= set(meta["timings"])
    assert (out / "model" / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.integration
def test_best_checkpoint_is_step_0_when_training_can_only_hurt(
    checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Judge each query's zero-shot top document relevant: step 0 scores a perfect 1.0, so no
    # later step can beat it (ties keep the earlier step), and a huge lr makes it worse anyway.
    keys, pairs = dev_pairs()
    start_scores = zero_shot_scores(checkpoint, pairs)
    ranking = ranking_from(keys, start_scores)
    qrels = {q: {docs[0].doc_id: 1} for q, docs in ranking.items()}
    config = TrainingConfig(
        objective="hf-default",
        lr=5e-3,
        warmup_ratio=0.0,
        max_steps=4,
        batch_size=4,
        eval_every=2,
        max_length=MAX_LENGTH,
        probe_size=4,
    )
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="inpars_core.training"):
        result = train_reranker(
            make_triples(), DOCS, config, out, dev=dev_set(qrels), base_model=str(checkpoint)
        )

    evals = read_lines(out / "eval_log.jsonl")
    values = [e["nDCG@10"] for e in evals]
    assert values[0] == 1.0 == result.step0_dev_ndcg10 == result.best_dev_ndcg10
    assert result.best_step == 0 and result.best_at_step0
    assert result.best_step == evals[values.index(max(values))]["step"]  # first of the best
    assert [e.get("saved", False) for e in evals] == [True, False, False]
    assert any("step 0" in r.getMessage() for r in caplog.records)
    assert any(r.getMessage().startswith("P2:") for r in caplog.records)
    assert any("step 0" in note for note in result.notes)
    assert json.loads((out / "meta.json").read_text())["results"]["best_step"] == 0
    # model/ holds the starting model: it scores exactly as the checkpoint did.
    assert zero_shot_scores(result.model_dir, pairs) == start_scores


@pytest.mark.integration
def test_a_crash_mid_training_leaves_no_output_folder(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inpars_core.training import trainer

    def boom(self: object) -> float:
        raise RuntimeError("crash after the step-0 checkpoint was saved")

    monkeypatch.setattr(trainer._Tracker, "drift", boom)
    config = TrainingConfig(max_steps=2, batch_size=2, max_length=MAX_LENGTH, probe_size=2)
    with pytest.raises(RuntimeError, match="crash"):
        train_reranker(
            make_triples(),
            DOCS,
            config,
            tmp_path / "run",
            dev=dev_set(),
            base_model=str(checkpoint),
        )
    # no output folder; only the staging folder a rerun resumes from (or clears)
    assert [p.name for p in tmp_path.iterdir()] == [".run.staging"]


def test_importing_training_loads_neither_torch_nor_transformers() -> None:
    code = (
        "import sys, inpars_core.training, inpars_core.training.objectives;"
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- the port onto CrossEncoderTrainer: the old loop's curve, frozen ----------------------

#: Measured with the hand-written loop this trainer replaced (commit 194a6a9,
#: ``inpars_core.training.trainer.train_reranker`` before the port), on the config of the test
#: below, one torch thread, CPU: a script ran the old loop (kept as ``_legacy_train_reranker``
#: until then) and the new trainer side by side on it and every logged number (loss, lr,
#: grad_norm, param_drift, pairs, epoch, dev nDCG@10, probe mean/std, saved weights' hashes)
#: was bit-identical; lce, ce2 and hf-default
#: were bit-identical too; margin-mse is not (the library's MarginMSELoss scores positives and
#: negatives in two forward passes, so dropout draws other masks).
#: The old loop trained every triple's positive beside its negative; the pointwise layout now
#: trains each (query, positive) once per epoch. On triples that each have their own (query id,
#: positive), as below, the two layouts feed the model the same rows in the same order, so the
#: frozen curve still applies (pos:neg 1:1, 2 rows a triple).
OLD_BCE_LOSSES = [0.6935279369354248, 0.6888940930366516, 0.691590428352356, 0.6603953242301941,
                  0.6572358012199402]  # fmt: skip
OLD_BCE_GRAD_NORMS = [0.5130874514579773, 0.5462096929550171, 0.7403362989425659,
                      0.6010821461677551, 0.6385945677757263]  # fmt: skip
OLD_BCE_DRIFT = [0.0005849628923291228, 0.0012965323883931343, 0.0017019720926901795,
                 0.0019462655550046566, 0.002057079253101202]  # fmt: skip
OLD_BCE_LRS = [5e-05, 1e-04, 7.5e-05, 5e-05, 2.5e-05]
OLD_BCE_DEV = {0: 0.42367161237002987, 2: 0.5154015779112127, 4: 0.5654648767857288,
               5: 0.5654648767857288}  # fmt: skip
#: Tolerance: the port reproduced the old curve exactly (difference 0.0) on the machine that
#: measured it; 1e-5 relative leaves room for other BLAS builds, far below what a changed
#: batch order, schedule, clipping or loss would move (the curve moves by 1e-3 per step).
REL_TOL = 1e-5


def test_the_trainer_reproduces_the_old_loops_bce_curve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = TrainingConfig(
        objective="bce",
        lr=1e-4,
        max_steps=5,
        batch_size=3,
        max_length=32,
        probe_size=4,
        eval_every=2,
        seed=0,
    )
    out = tmp_path / "run"
    # make_triples' texts and documents, each triple its own query id: one negative per
    # (query id, positive), the old loop's rows exactly
    triples = [
        dataclasses.replace(t, query_id=f"{t.query_id}-{t.neg_doc_id}") for t in make_triples()
    ]
    result = train_reranker(triples, DOCS, config, out, dev=dev_set(), base_model="minilm")
    steps = read_lines(out / "train_log.jsonl")
    assert [s["loss"] for s in steps] == pytest.approx(OLD_BCE_LOSSES, rel=REL_TOL)
    assert [s["grad_norm"] for s in steps] == pytest.approx(OLD_BCE_GRAD_NORMS, rel=REL_TOL)
    assert [s["param_drift"] for s in steps] == pytest.approx(OLD_BCE_DRIFT, rel=1e-4)
    assert [s["lr"] for s in steps] == pytest.approx(OLD_BCE_LRS, rel=1e-12)
    assert [s["pairs"] for s in steps] == [6, 6, 4, 6, 6]  # 8 triples by 3: the planned batches
    assert [s["positives"] for s in steps] == [s["negatives"] for s in steps] == [3, 3, 2, 3, 3]
    counts = json.loads((out / "meta.json").read_text())["counts"]
    assert (counts["positives"], counts["negatives"], counts["pos_neg_ratio"]) == (14, 14, "1:1")
    assert counts["pairs_per_epoch"] == [16, 12] and counts["pairs_seen"] == 28
    assert [s["epoch"] for s in steps] == [0, 0, 0, 1, 1]
    evals = {e["step"]: e["nDCG@10"] for e in read_lines(out / "eval_log.jsonl")}
    assert evals == pytest.approx(OLD_BCE_DEV, rel=REL_TOL)
    assert (result.best_step, result.kept_step, result.final_step) == (4, 4, 5)
    assert capsys.readouterr().out == ""  # the library logs; HF's printer callback is removed


@pytest.mark.integration
def test_training_sees_our_pair_encoding_in_every_mode(checkpoint: Path) -> None:
    from transformers import AutoTokenizer

    from inpars_core.reranking.encoding import PAIR_ENCODINGS, encode_pairs
    from inpars_core.training.hf import wrap_cross_encoder

    model, tokenizer, _ = load_for_training(str(checkpoint), get_objective("bce"))
    pairs = [(QUERIES["q1"], DOCS["a1"]), (QUERIES["q2"], DOCS["c1"])]
    assert PAIR_ENCODINGS == ("pair", "zero-types", "separate")
    for mode in PAIR_ENCODINGS:
        encoding = EncodingConfig(mode, MAX_LENGTH)
        wrapped = wrap_cross_encoder(str(checkpoint), model, tokenizer, encoding, "cpu")
        seen = wrapped.preprocess(pairs)
        expected = encode_pairs(
            AutoTokenizer.from_pretrained(checkpoint), *zip(*pairs, strict=True), encoding
        )
        assert set(seen) >= {"input_ids", "token_type_ids", "attention_mask"}
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert torch.equal(seen[key], expected[key]), (mode, key)
        # pair: type 1 on the document; zero-types and separate: every token type 0 (the bug)
        assert bool(seen["token_type_ids"].any()) == (mode == "pair"), mode
