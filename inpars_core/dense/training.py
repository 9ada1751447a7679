"""Fine-tuning a bi-encoder on triples with sentence-transformers' own trainer and losses.

Objectives, chosen by name:

- ``mnrl``: ``MultipleNegativesRankingLoss`` on (query, positive, negative) columns — the mined
  negative plus every other document of the batch are negatives. Batches never hold the same
  text twice (``no_duplicates`` sampler), so a repeated positive is never its own negative.
- ``margin-mse``: ``MarginMSELoss`` on (query, positive, negative, label) with
  ``label = teacher(q, pos) - teacher(q, neg)``: the triple's ``teacher_pos_score`` and
  ``teacher_neg_score`` when present, else the scores of a cross-encoder ``teacher``
  (:func:`~inpars_core.reranking.scoring.score_pairs`). The student margin is a cosine (or dot)
  difference, so a teacher on a logit scale asks for margins the student cannot reach; the loss
  still falls, but its floor is not 0.

Dev evaluation reranks the top ``depth`` of a dev run (e.g. BM25) with the current weights,
encoding the dev documents afresh, and scores nDCG@10 — at step 0 (before any update; equal to
:func:`zero_shot_dev_score` exactly), every ``eval_every`` updates and after the last one. With
``DenseDevSet.bm25_weight > 0`` the reranked head is interpolated with the run's first-stage
scores first: the dev criterion is the system that is reported. The best checkpoint is kept
(``keep = "best"``, the default); ties keep the earlier step, so it may be step 0 (the starting
model), which a note in ``meta.json`` then says. Each best checkpoint's weights hash
(:func:`state_sha256`) is logged, and the kept model's in ``meta.json``.

The margin-mse teacher is never the model being trained, and triples whose recorded guard teacher
is the base model are refused (:mod:`inpars_core.training.teachers`).

The output folder is built in ``.<out_dir>.staging`` beside it and renamed when complete
(:mod:`inpars_core.training.resume`, shared with the cross-encoder trainer). A Hugging Face
checkpoint (weights, optimizer, schedule, RNG) is written there every ``eval_every`` updates, the
dev evaluation runs once it is on disk, and the best model so far is kept on disk there too: a
run killed with kill -9 resumes, when rerun with the same settings, from its last checkpoint with
its logs and its best model of before the kill (a note in ``meta.json`` says so)::

    <out_dir>/model/            best checkpoint (the final one without a dev set), a
                                sentence-transformers folder
    <out_dir>/train_log.jsonl   one line per update: step, epoch, loss, lr, grad_norm
    <out_dir>/eval_log.jsonl    one line per dev evaluation, step 0 first: step, nDCG@10
    <out_dir>/meta.json         config, base model and fingerprint, results, notes, timings
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inpars_core.artifacts import META_FILE, StageMeta, finish_meta, stable_hash
from inpars_core.dense.encoder import SIMILARITIES, load_encoder, model_fingerprint
from inpars_core.dense.search import rerank_with_encoder
from inpars_core.errors import ConfigError, DependencyError, InputFormatError, UnknownNameError
from inpars_core.evaluation import evaluate
from inpars_core.records import Document, Qrels, Query, Run, Triple
from inpars_core.runs import check_bm25_weight
from inpars_core.training.resume import EVAL_LOG, TRAIN_LOG, KeptModel, staging, take_up
from inpars_core.training.trainer import TrainingResult

logger = logging.getLogger(__name__)

#: Objective names and the sentence-transformers loss each uses.
OBJECTIVES: dict[str, str] = {
    "mnrl": "MultipleNegativesRankingLoss",
    "margin-mse": "MarginMSELoss",
}
#: The dev measure that picks the best checkpoint.
MEASURE = "nDCG@10"
MODEL_DIR = "model"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainDenseConfig:
    """How to fine-tune a bi-encoder.

    Attributes:
        objective: ``mnrl`` or ``margin-mse``.
        lr: peak learning rate (AdamW, linear warm-up then linear decay).
        epochs: passes over the triples (ignored when ``max_steps`` is set).
        max_steps: number of updates, overriding ``epochs`` (the data repeats as needed).
        batch_size: triples per update.
        max_length: truncation length of queries and documents, in word-pieces.
        warmup_ratio: fraction of the updates spent warming up, in [0, 1).
        weight_decay: AdamW weight decay.
        seed: seed of the shuffles, dropout and the trainer.
        eval_every: dev evaluation every this many updates (and at step 0 and the end).
        similarity: ``cosine`` or ``dot``, in the loss and at dev evaluation.
        scale: MNRL's inverse temperature for ``cosine`` (``dot`` uses 1).
        eval_batch_size: encoding batch size at dev evaluation.
        teacher: cross-encoder model scoring (query, document) pairs for ``margin-mse`` when the
            triples carry no teacher scores.
        teacher_max_length: truncation length of the teacher's pairs.
        teacher_batch_size: the teacher's scoring batch size.
        keep: which weights ``model/`` holds with a dev set: the ``best`` dev checkpoint (may
            be step 0) or the ``final`` one.
    """

    objective: str = "mnrl"
    lr: float = 2e-5
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 32
    max_length: int = 256
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    eval_every: int = 50
    similarity: str = "cosine"
    scale: float = 20.0
    eval_batch_size: int = 64
    teacher: str | None = None
    teacher_max_length: int = 256
    teacher_batch_size: int = 32
    keep: str = "best"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise UnknownNameError("dense objective", str(self.objective), list(OBJECTIVES))
        if not isinstance(self.lr, int | float) or isinstance(self.lr, bool) or self.lr <= 0:
            raise ConfigError(f"lr must be a number > 0, got {self.lr!r}")
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ConfigError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if self.max_steps is not None and (not _is_int(self.max_steps) or self.max_steps < 1):
            raise ConfigError(f"max_steps must be an integer >= 1 or unset, got {self.max_steps!r}")
        for name in ("batch_size", "eval_every", "eval_batch_size", "teacher_batch_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("max_length", "teacher_max_length"):
            value = getattr(self, name)
            if not _is_int(value) or value < 8:
                raise ConfigError(f"{name} must be an integer >= 8, got {value!r}")
        if not isinstance(self.warmup_ratio, int | float) or not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.similarity not in SIMILARITIES:
            raise ConfigError(
                f"similarity must be one of {list(SIMILARITIES)}, got {self.similarity!r}"
            )
        if not _is_int(self.seed):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if self.keep not in ("best", "final"):
            raise ConfigError(f"keep must be 'best' or 'final', got {self.keep!r}")


@dataclass(frozen=True)
class DenseDevSet:
    """Dev data: queries, their judgements, a first-stage run whose top ``depth`` is reranked
    with the current weights, and the texts of the run's documents.

    ``bm25_weight`` is the weight of the first-stage score in the evaluated system (0: the pure
    bi-encoder; above 0 the reranked head is interpolated with the run's scores by
    :func:`inpars_core.runs.interpolate_with_first_stage`).
    """

    queries: Mapping[str, Query]
    qrels: Qrels
    run: Run
    documents: Mapping[str, Document]
    depth: int = 30
    bm25_weight: float = 0.0

    def __post_init__(self) -> None:
        try:
            check_bm25_weight(self.bm25_weight, "dev set")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def validate(self) -> None:
        """Raise InputFormatError naming the first query or document without text."""
        if not _is_int(self.depth) or self.depth < 10:
            raise ConfigError(
                f"dev depth must be an integer >= 10 (for {MEASURE}), got {self.depth!r}"
            )
        if not self.run:
            raise InputFormatError("dev run", "holds no queries", fix="give a non-empty dev run")
        from inpars_core.runs import check_run_texts

        check_run_texts(self.run, self.queries, self.documents, self.depth)


#: One result type for both trainers (see :class:`inpars_core.training.trainer.TrainingResult`).
DenseTrainingResult = TrainingResult


@dataclass
class DenseTrainingMeta(StageMeta):
    """``meta.json`` of a bi-encoder training run: the stage fields plus results and notes."""

    base_model: str = ""
    base_fingerprint: str = ""
    objective: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def evaluate_dev(
    encoder: Any, dev: DenseDevSet, similarity: str = "cosine", batch_size: int = 64
) -> float:
    """nDCG@10 of the dev run's top ``depth`` reranked with ``encoder`` (its current weights;
    interpolated with the first-stage scores when ``dev.bm25_weight > 0``), averaged over the
    judged queries of the dev run."""
    reranked = rerank_with_encoder(
        encoder, dev.queries, dev.run, dev.documents, dev.depth, similarity, batch_size
    )
    if dev.bm25_weight > 0:
        from inpars_core.runs import interpolate_with_first_stage

        reranked = interpolate_with_first_stage(reranked, dev.run, dev.bm25_weight)
    qrels = {q: dev.qrels[q] for q in dev.run if q in dev.qrels}
    return evaluate(reranked, qrels, [MEASURE]).aggregate[MEASURE]


def zero_shot_dev_score(model: str, dev: DenseDevSet, config: TrainDenseConfig) -> float:
    """The dev score of ``model`` before any training, as :func:`train_dense` logs at step 0."""
    encoder = load_encoder(model, config.max_length)
    return evaluate_dev(encoder, dev, config.similarity, config.eval_batch_size)


def check_triples(triples: Sequence[Triple], documents: Mapping[str, Document]) -> None:
    """Raise InputFormatError naming the first triple without a query text or document text."""
    if not triples:
        raise InputFormatError(
            "triples", "none given", fix="build triples first with 'inpars triples'"
        )
    for number, triple in enumerate(triples, start=1):
        if not triple.query_text.strip():
            raise InputFormatError(
                "triples", f"triple {number}: empty query text", field="query_text"
            )
        for name in ("pos_doc_id", "neg_doc_id"):
            doc_id = getattr(triple, name)
            if doc_id not in documents:
                raise InputFormatError(
                    "triples",
                    f"triple {number} (query {triple.query_id!r}): document {doc_id!r} has no text",
                    field=name,
                    fix="give the corpus the triples were mined from",
                )


def margin_labels(
    triples: Sequence[Triple],
    documents: Mapping[str, Document],
    teacher: str | None = None,
    max_length: int = 256,
    batch_size: int = 32,
) -> tuple[list[float], dict[str, int]]:
    """``teacher(q, pos) - teacher(q, neg)`` per triple, and how many came from where.

    A triple with both ``teacher_pos_score`` and ``teacher_neg_score`` uses them; the others are
    scored by the cross-encoder ``teacher`` (each distinct (query, document) pair once).
    """
    lacking = [t for t in triples if t.teacher_pos_score is None or t.teacher_neg_score is None]
    scored: dict[tuple[str, str], float] = {}
    if lacking:
        if teacher is None:
            raise ConfigError(
                f"objective 'margin-mse' needs teacher scores: {len(lacking)} of {len(triples)} "
                "triples lack teacher_pos_score/teacher_neg_score; set teacher to a "
                "cross-encoder model or mine the triples with a teacher"
            )
        from inpars_core.reranking.encoding import EncodingConfig
        from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs

        keys = sorted({(t.query_text, d) for t in lacking for d in (t.pos_doc_id, t.neg_doc_id)})
        reranker = load_reranker(teacher)
        scores = score_pairs(
            reranker,
            [(query, documents[doc_id].contents) for query, doc_id in keys],
            EncodingConfig(max_length=max_length),
            ScoringConfig(batch_size=batch_size),
        )
        scored = dict(zip(keys, scores, strict=True))
    labels = []
    for t in triples:
        if t.teacher_pos_score is not None and t.teacher_neg_score is not None:
            labels.append(float(t.teacher_pos_score) - float(t.teacher_neg_score))
        else:
            labels.append(
                scored[(t.query_text, t.pos_doc_id)] - scored[(t.query_text, t.neg_doc_id)]
            )
    counts = {"from_triples": len(triples) - len(lacking), "from_teacher": len(lacking)}
    return labels, counts


def state_sha256(state: Mapping[str, Any]) -> str:
    """sha256 (hex) over a state dict's tensors (name, dtype, shape and bytes, by name): equal
    hashes mean the same weights."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _make_loss(encoder: Any, config: TrainDenseConfig) -> Any:
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.util import cos_sim, dot_score, pairwise_cos_sim, pairwise_dot_score

    cosine = config.similarity == "cosine"
    if config.objective == "mnrl":
        return losses.MultipleNegativesRankingLoss(
            encoder,
            scale=config.scale if cosine else 1.0,
            similarity_fct=cos_sim if cosine else dot_score,
        )
    return losses.MarginMSELoss(
        encoder, similarity_fct=pairwise_cos_sim if cosine else pairwise_dot_score
    )


def _column_prompts(encoder: Any) -> dict[str, str] | None:
    """The model's own query/document prompts per column, as encode_query/encode_document use."""
    prompts = getattr(encoder, "prompts", None) or {}
    columns: dict[str, str] = {}
    if prompts.get("query"):
        columns["query"] = prompts["query"]
    if prompts.get("document"):
        columns["positive"] = columns["negative"] = prompts["document"]
    return columns or None


def train_dense(
    model: str,
    triples: Sequence[Triple],
    documents: Mapping[str, Document],
    out_dir: Path,
    config: TrainDenseConfig = TrainDenseConfig(),
    dev: DenseDevSet | None = None,
    progress: bool = False,
) -> TrainingResult:
    """Fine-tune the bi-encoder ``model`` on ``triples`` (document texts from ``documents``)
    with ``SentenceTransformerTrainer`` and write the artifact folder ``out_dir`` (see the
    module docstring).

    With ``dev`` the checkpoint with the best dev nDCG@10 is kept (step 0 included; ties keep
    the earlier step); without, the final weights are kept. ``progress`` shows HF's progress
    bar (loss, ETA); the library never prints otherwise.
    """
    try:
        import torch
        from datasets import Dataset as HFDataset
        from sentence_transformers import (
            SentenceTransformerTrainer,
            SentenceTransformerTrainingArguments,
        )
        from transformers import set_seed

        from inpars_core.training.hf import DevEvaluation, StepLog, quiet_trainer
    except ImportError as exc:
        raise DependencyError(
            "training a bi-encoder needs sentence-transformers with its train extra: "
            'pip install "sentence-transformers[train]"'
        ) from exc

    from inpars_core.training.teachers import check_teacher_is_not_student, check_triples_teacher

    out_dir = Path(out_dir)
    check_triples(triples, documents)
    if dev is not None:
        dev.validate()
    check_triples_teacher((t.teacher_fingerprint for t in triples), model, "triples")
    if config.objective == "margin-mse" and config.teacher is not None:
        check_teacher_is_not_student(config.teacher, model, "margin-mse teacher")
    notes: list[str] = []
    timings: dict[str, float] = {}
    fingerprint = model_fingerprint(model)
    meta = DenseTrainingMeta(
        stage="train_dense",
        config=asdict(config),
        base_model=model,
        base_fingerprint=fingerprint,
        inputs={"base_model": model, "base_fingerprint": fingerprint},
        counts={"triples": len(triples), "documents": len(documents)},
        objective={"name": config.objective, "loss": OBJECTIVES[config.objective]},
    )

    columns: dict[str, list[Any]] = {
        "query": [t.query_text for t in triples],
        "positive": [documents[t.pos_doc_id].contents for t in triples],
        "negative": [documents[t.neg_doc_id].contents for t in triples],
    }
    if config.objective == "margin-mse":
        started = time.perf_counter()
        labels, sources = margin_labels(
            triples,
            documents,
            config.teacher,
            config.teacher_max_length,
            config.teacher_batch_size,
        )
        timings["labels_s"] = round(time.perf_counter() - started, 3)
        columns["label"] = labels
        meta.objective["label_sources"] = sources
        meta.objective["label_mean"] = sum(labels) / len(labels)
        if sources["from_teacher"]:
            meta.inputs["teacher"] = config.teacher

    started = time.perf_counter()
    set_seed(config.seed)
    encoder = load_encoder(model, config.max_length)
    timings["load_s"] = round(time.perf_counter() - started, 3)

    run_fingerprint = stable_hash(
        [
            asdict(config),
            model,
            fingerprint,
            [asdict(t) for t in triples],
            sorted(documents),
            columns.get("label"),
            None if dev is None else [dev.depth, dev.bm25_weight, sorted(dev.run)],
        ]
    )
    total = config.max_steps

    with staging(out_dir) as staged:
        resume = take_up(staged, run_fingerprint, total=total)
        if resume.note:
            notes.append(resume.note)

        def measure(step: int) -> dict[str, Any]:
            assert dev is not None
            value = evaluate_dev(encoder, dev, config.similarity, config.eval_batch_size)
            logger.info("dev step %d: %s %.4f", step, MEASURE, value)
            return {MEASURE: value, "bm25_weight": dev.bm25_weight}

        kept = KeptModel(staged, lambda folder: encoder.save(str(folder), create_model_card=False))

        def keep(step: int) -> dict[str, Any]:
            kept.keep(step)
            return {"best": True, "weights_sha256": state_sha256(encoder.state_dict())}

        with (
            open(staged / TRAIN_LOG, "a", encoding="utf-8") as train_log,
            open(staged / EVAL_LOG, "a", encoding="utf-8") as eval_log,
        ):
            # The callbacks the cross-encoder trainer uses too: one train-log line per update
            # (a non-finite loss stops training), the dev evaluation at step 0, once each
            # eval_every checkpoint is on disk and at the end, keeping the best model on disk.
            step_log = StepLog(train_log, notes=notes)
            step_log.records.extend(resume.train_records)
            evaluation = DevEvaluation(measure, keep, config.eval_every, eval_log)
            evaluation.restore(resume.eval_records)
            kept.restore(evaluation.best_step)
            callbacks = [step_log] if dev is None else [evaluation, step_log]
            args = SentenceTransformerTrainingArguments(
                output_dir=str(resume.checkpoints),
                num_train_epochs=config.epochs,
                max_steps=config.max_steps if config.max_steps is not None else -1,
                per_device_train_batch_size=config.batch_size,
                learning_rate=config.lr,
                warmup_steps=float(config.warmup_ratio),  # below 1: a ratio (transformers 5)
                weight_decay=config.weight_decay,
                lr_scheduler_type="linear",
                seed=config.seed,
                data_seed=config.seed,
                logging_strategy="steps",
                logging_steps=1,
                # a resumable checkpoint (weights, optimizer, schedule, RNG) every eval_every
                save_strategy="steps",
                save_steps=config.eval_every,
                save_total_limit=1,
                eval_strategy="no",
                report_to="none",
                disable_tqdm=True,
                dataloader_num_workers=0,
                dataloader_pin_memory=torch.cuda.is_available(),
                batch_sampler="no_duplicates" if config.objective == "mnrl" else "batch_sampler",
                prompts=_column_prompts(encoder),
            )
            trainer = SentenceTransformerTrainer(
                model=encoder,
                args=args,
                train_dataset=HFDataset.from_dict(columns),
                loss=_make_loss(encoder, config),
                callbacks=callbacks,
            )
            quiet_trainer(trainer, progress)
            started = time.perf_counter()
            trainer.train(resume_from_checkpoint=resume.resume_from)
            elapsed = time.perf_counter() - started
            timings["train_s"] = round(elapsed - evaluation.seconds, 3)
            timings["eval_s"] = round(evaluation.seconds, 3)
        evals = evaluation.records
        losses = step_log.records
        best: dict[str, Any] = {"step": evaluation.best_step, "value": evaluation.best_value}
        final_step = int(trainer.state.global_step)

        kept_step = final_step
        use_kept = dev is not None and config.keep == "best"
        if dev is None:
            best.update(step=final_step)
        elif config.keep == "final":
            if best["step"] != final_step:
                note = (
                    f"best dev {MEASURE} is at step {best['step']} ({best['value']:.4f}); "
                    f"{MODEL_DIR}/ holds the final step as asked (keep = 'final')"
                )
                notes.append(note)
                logger.warning(note)
        else:
            kept_step = best["step"]
            if best["step"] == 0:
                note = (
                    f"best dev {MEASURE} is at step 0 ({best['value']:.4f}), before any update: "
                    f"fine-tuning did not improve on the starting model, so {MODEL_DIR}/ holds "
                    "the starting model (lower the learning rate, train shorter, check the loss)"
                )
                notes.append(note)
                logger.warning(note)
        started = time.perf_counter()
        # model/ gets the best model kept on disk, or the final weights
        kept.publish(staged / MODEL_DIR, use=use_kept)
        if use_kept:
            kept_hash = next(
                e["weights_sha256"] for e in evals if e["step"] == kept_step and e.get("best")
            )
        else:
            shutil.rmtree(staged / MODEL_DIR, ignore_errors=True)
            encoder.save(str(staged / MODEL_DIR), create_model_card=False)
            kept_hash = state_sha256(encoder.state_dict())
        timings["save_s"] = round(time.perf_counter() - started, 3)

        step0 = evals[0][MEASURE] if evals else None
        first_loss = losses[0]["loss"] if losses else None
        last_loss = losses[-1]["loss"] if losses else None
        meta.counts.update(
            steps=final_step,
            evaluations=len(evals),
            dev_queries=len(dev.run) if dev is not None else 0,
        )
        if dev is not None:
            meta.inputs["dev"] = {
                "queries": len(dev.run),
                "depth": dev.depth,
                "bm25_weight": dev.bm25_weight,
            }
        meta.results = {
            "best_step": best["step"],
            "kept_step": kept_step,
            "kept_weights_sha256": kept_hash,
            "best_dev_ndcg10": best["value"],
            "step0_dev_ndcg10": step0,
            "dev_bm25_weight": dev.bm25_weight if dev is not None else None,
            "final_step": final_step,
            "first_loss": first_loss,
            "last_loss": last_loss,
            "device": str(encoder.device),
        }
        meta.notes = list(notes)
        meta.timings.update(timings)
        finish_meta(meta, staged / META_FILE)

    return TrainingResult(
        best_step=int(best["step"]),
        best_dev_ndcg10=best["value"],
        step0_dev_ndcg10=step0,
        final_step=final_step,
        model_dir=out_dir / MODEL_DIR,
        first_loss=first_loss,
        last_loss=last_loss,
        notes=tuple(notes),
        kept_step=kept_step,
    )
