"""Fine-tuning a cross-encoder reranker on triples, with the checks the pitfalls call for.

Training runs on sentence-transformers' ``CrossEncoderTrainer`` (an HF ``Trainer``;
:mod:`inpars_core.training.hf`) with each objective's loss module: the batches our seeded
shuffles planned (:func:`plan_steps`), AdamW with linear warm-up then linear decay (our schedule,
:func:`lr_factor`: no update at lr 0), gradient clipping, a JSON line per step (loss, lr,
gradient norm, parameter drift ‖θ−θ₀‖/‖θ₀‖), an evaluation at step 0 (before any update), every
``eval_every`` steps and at the end (nDCG@10 of the reranked dev run, score mean/std on a fixed
probe set; one dev-evaluation callback), and the best checkpoint kept — which may be step 0 (P5).
The dev criterion is the system that is reported: with ``DevSet.bm25_weight > 0`` the reranked
dev head is interpolated with the first-stage scores before it is evaluated. Each saved
checkpoint's weights hash (``weights_sha256``) is logged, so ``model/`` can be traced to its step.
A margin-mse teacher (``TrainingConfig.teacher_model``, or the guard teacher recorded in the
triples) is never the model being trained (:mod:`inpars_core.training.teachers`).
Pairs are encoded by :func:`inpars_core.reranking.encoding.encode_pairs` for training and scored
by :func:`inpars_core.reranking.scoring.score_pairs` for evaluation, with the same encoding.

The output folder is built in ``.<out_dir>.staging`` beside it and renamed when complete. A
Hugging Face checkpoint (weights, optimizer, schedule, RNG) is written there at every
evaluation step (``eval_every``), and the evaluation runs once it is on disk: a run killed with
kill -9 resumes, when rerun with the same settings, from its last checkpoint with its logs and
kept model, in one process or under a data-parallel launch (:mod:`inpars_core.training.resume`,
shared with the bi-encoder trainer)::

    <out_dir>/model/            best checkpoint (or the final one without a dev set)
    <out_dir>/train_log.jsonl   one line per update
    <out_dir>/eval_log.jsonl    one line per evaluation, step 0 first
    <out_dir>/meta.json         config, base model, objective, results, notes, timings
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import shutil
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inpars_core.artifacts import META_FILE, StageMeta, finish_meta, stable_hash
from inpars_core.errors import ConfigError, InputFormatError, UnknownNameError
from inpars_core.evaluation import evaluate
from inpars_core.records import Qrels, Run, ScoredDoc, Triple
from inpars_core.reranking.encoding import PAIR_ENCODINGS, EncodingConfig
from inpars_core.runs import check_bm25_weight, sort_ranking
from inpars_core.training.loading import load_for_training
from inpars_core.training.objectives import OBJECTIVES, Objective, get_objective
from inpars_core.training.objectives.base import PairScorer, pointwise_pairs
from inpars_core.training.resume import (
    EVAL_LOG,
    TRAIN_LOG,
    KeptModel,
    join_launch,
    shared_result,
    staging,
    take_up,
    wait_for_ranks,
)
from inpars_core.training.teachers import (
    check_teacher_is_not_student,
    check_triples_teacher,
)

logger = logging.getLogger(__name__)

#: The dev measure that picks the best checkpoint.
MEASURE = "nDCG@10"
#: A first-batch loss above this is reported (MSE onto 0/1 labels of a ±8-logit model: tens).
LARGE_FIRST_LOSS = 5.0
MODEL_DIR = "model"


@dataclass(frozen=True)
class TrainingConfig:
    """How to fine-tune.

    ``batch_size`` counts triples per update. A pointwise objective trains each triple's
    negative pair and each (query, positive) pair once per epoch, with the first of its triples
    (pos:neg 1:n for n negatives per positive, :func:`plan_rows`); a listwise one scores each
    group's positive once per batch; margin-mse scores each triple's two pairs. ``max_steps``
    overrides ``epochs`` when set (the data is re-shuffled and repeated as needed). ``bf16``
    turns on bf16 autocast for the training forward pass; evaluation always scores in fp32 so
    step 0 equals the zero-shot scores.

    ``teacher_model`` names the cross-encoder whose scores ``margin-mse`` distils (hub id,
    folder or ``minilm``); it scores the pairs of triples without stored teacher scores once,
    before training, in fp32 eval mode. It must not be the base model being trained.
    """

    objective: str = "bce"
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 16
    max_length: int = 256
    weight_decay: float = 0.01
    seed: int = 0
    eval_every: int = 50
    bf16: bool = False
    probe_size: int = 64
    pair_encoding: str = "pair"
    max_grad_norm: float = 1.0
    eval_batch_size: int = 32
    device: str = "auto"
    #: Which checkpoint model/ holds: the best on the dev set (may be step 0), or the final one
    #: (to see what training did even when it hurt; the dev curve is logged either way).
    keep: str = "best"
    #: The margin-mse teacher cross-encoder (None: only stored teacher scores in the triples).
    teacher_model: str | None = None
    #: Length-bucketed batches: within each window of this many planned batches, the batches'
    #: units (triples, or listwise groups) are sorted by their word-piece length and cut into
    #: batches again, and the epoch's batches are shuffled (:func:`bucket_epoch`): each epoch
    #: trains the same triples, groups kept whole, with less padding. 0: off (plain batches).
    length_buckets: int = 0
    #: AdamW's fused kernel where the device has one (the default, :func:`_optimizer`); False:
    #: torch's foreach kernel, the trainer's path before issue 15 (the benchmark's reference).
    fused_optimizer: bool = True

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise UnknownNameError("objective", self.objective, list(OBJECTIVES))
        checks = [
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (
                0 <= self.warmup_ratio < 1,
                f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}",
            ),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (
                self.max_steps is None or self.max_steps >= 1,
                f"max_steps must be at least 1 (or None), got {self.max_steps}",
            ),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.eval_every >= 1, f"eval_every must be at least 1, got {self.eval_every}"),
            (self.probe_size >= 0, f"probe_size must be >= 0, got {self.probe_size}"),
            (self.max_grad_norm > 0, f"max_grad_norm must be positive, got {self.max_grad_norm}"),
            (
                self.eval_batch_size >= 1,
                f"eval_batch_size must be >= 1, got {self.eval_batch_size}",
            ),
            (self.keep in ("best", "final"), f"keep must be 'best' or 'final', got {self.keep!r}"),
            (
                self.teacher_model is None
                or (isinstance(self.teacher_model, str) and bool(self.teacher_model.strip())),
                f"teacher_model must be a model name or None, got {self.teacher_model!r}",
            ),
            (
                self.length_buckets >= 0,
                f"length_buckets must be >= 0 (0: off), got {self.length_buckets}",
            ),
            (
                self.pair_encoding in PAIR_ENCODINGS,
                f"pair_encoding must be one of {PAIR_ENCODINGS}, got {self.pair_encoding!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"training: {message}")
        self.encoding()  # validates max_length

    def encoding(self) -> EncodingConfig:
        """The pair encoding shared by training and evaluation."""
        return EncodingConfig(self.pair_encoding, self.max_length)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DevSet:
    """What the dev evaluation reranks: query texts, a first-stage run (e.g. BM25), its qrels,
    document texts (doc_id -> text) and the reranking depth.

    ``bm25_weight`` is the weight of the first-stage score in the evaluated system: 0 evaluates
    the pure reranker; above 0 the reranked head is interpolated with the run's scores
    (:func:`inpars_core.runs.interpolate_with_first_stage`), so the checkpoint is picked for the
    system that is reported.
    """

    queries: Mapping[str, str]
    run: Run
    qrels: Qrels
    documents: Mapping[str, str]
    depth: int = 100
    bm25_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ConfigError(f"dev set: depth must be at least 1, got {self.depth}")
        try:
            check_bm25_weight(self.bm25_weight, "dev set")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def validate(self) -> None:
        """Every reranked query has a text and every reranked document a text."""
        from inpars_core.runs import check_run_texts

        check_run_texts(self.run, self.queries, self.documents, self.depth)


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produced. Without a dev set ``best_step`` is the final step and the
    dev values are None."""

    best_step: int
    best_dev_ndcg10: float | None
    step0_dev_ndcg10: float | None
    final_step: int
    model_dir: Path
    first_loss: float | None
    last_loss: float | None
    notes: tuple[str, ...] = ()
    kept_step: int | None = None

    @property
    def best_at_step0(self) -> bool:
        """Whether the starting model beat every fine-tuned checkpoint on the dev set."""
        return self.best_dev_ndcg10 is not None and self.best_step == 0


@dataclass
class TrainingMeta(StageMeta):
    """``meta.json`` of a training run: the stage fields plus objective, results and notes."""

    base_model: str = ""
    objective: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: What the pair encoding made of the first training pairs
    #: (:func:`~inpars_core.reranking.encoding.encoding_stats`), as a rerank stage records it.
    encoding: dict[str, Any] = field(default_factory=dict)


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier of update ``step`` (1-based): ``step / (warmup + 1)`` during the
    ``warmup_steps`` warm-up updates, 1 at the next, then linear decay to ``1 / (total - warmup)``
    at the last update (no update runs at lr 0)."""
    if step <= warmup_steps:
        return step / (warmup_steps + 1)
    remaining = total_steps - warmup_steps
    return max(0.0, (total_steps - step + 1) / remaining) if remaining > 0 else 1.0


def plan_epoch(
    triples: Sequence[Triple], batch_size: int, rng: random.Random, keep_groups: bool
) -> list[list[Triple]]:
    """One epoch of batches, shuffled with ``rng``. With ``keep_groups`` the triples of one
    (query, positive) stay in one batch (split only when a group exceeds ``batch_size``)."""
    if not keep_groups:
        order = list(triples)
        rng.shuffle(order)
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    groups: dict[tuple[str, str], list[Triple]] = {}
    for triple in triples:
        groups.setdefault((triple.query_id, triple.pos_doc_id), []).append(triple)
    keys = list(groups)
    rng.shuffle(keys)
    return pack_units(
        (
            groups[key][start : start + batch_size]
            for key in keys
            for start in range(0, len(groups[key]), batch_size)
        ),
        batch_size,
    )


def pack_units(units: Iterable[Sequence[Triple]], batch_size: int) -> list[list[Triple]]:
    """``units`` in order, packed into batches of at most ``batch_size`` triples: a unit goes
    whole into the current batch, or starts the next one when it would not fit."""
    batches: list[list[Triple]] = []
    current: list[Triple] = []
    for unit in units:
        if current and len(current) + len(unit) > batch_size:
            batches.append(current)
            current = []
        current = current + list(unit)
    if current:
        batches.append(current)
    return batches


def bucket_epoch(
    batches: Sequence[Sequence[Triple]],
    lengths: Mapping[int, int],
    batch_size: int,
    window: int,
    rng: random.Random,
    keep_groups: bool,
) -> list[list[Triple]]:
    """One planned epoch (``batches``, :func:`plan_epoch`) re-cut into length-bucketed batches.

    The batches' units (:func:`batch_units`: each triple, or with ``keep_groups`` each
    (query, positive) group of a batch) are taken ``window`` batches at a time, sorted by their
    length (the longest pair of the unit; ``lengths`` maps ``id(triple)`` to its word-pieces,
    :func:`triple_lengths`), longest first, and packed into batches of at most ``batch_size``
    triples, never splitting a unit; the epoch's batches are then shuffled with ``rng``. The
    epoch trains the same triples as ``batches`` (as a multiset), a padded batch is as long as
    its longest pair, so similar lengths waste less padding."""
    bucketed: list[list[Triple]] = []
    for start in range(0, len(batches), window):
        units = [
            [batch[index] for index in unit]
            for batch in batches[start : start + window]
            for unit in batch_units(batch, keep_groups)
        ]
        units.sort(key=lambda unit: -max(lengths[id(triple)] for triple in unit))
        bucketed += pack_units(units, batch_size)
    rng.shuffle(bucketed)
    return bucketed


def triple_lengths(
    triples: Sequence[Triple],
    documents: Mapping[str, str],
    tokenizer: Any,
    encoding: EncodingConfig,
) -> dict[int, int]:
    """``id(triple)`` -> word-pieces of its longer pair ([CLS] query [SEP] document [SEP], at
    most ``encoding.max_length``): what orders :func:`bucket_epoch`'s units. Each query and
    document is tokenised once, cut first to ``12 * max_length`` characters (a word-piece is
    rarely longer than 12 characters; a length only orders the batches)."""
    limit = 12 * encoding.max_length
    queries = sorted({t.query_text for t in triples})
    doc_ids = sorted({d for t in triples for d in (t.pos_doc_id, t.neg_doc_id)})

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        ids = tokenizer([t[:limit] for t in texts], add_special_tokens=False)["input_ids"]
        return [len(row) for row in ids]

    query_len = dict(zip(queries, count(queries), strict=True))
    doc_len = dict(zip(doc_ids, count([documents[d] for d in doc_ids]), strict=True))
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    return {
        id(t): min(
            encoding.max_length,
            query_len[t.query_text] + specials + max(doc_len[t.pos_doc_id], doc_len[t.neg_doc_id]),
        )
        for t in triples
    }


def plan_steps(
    triples: Sequence[Triple],
    config: TrainingConfig,
    keep_groups: bool,
    lengths: Mapping[int, int] | None = None,
) -> list[tuple[int, list[Triple]]]:
    """(epoch, batch) for every update: ``epochs`` epochs, or ``max_steps`` updates. With
    ``config.length_buckets`` and ``lengths`` (:func:`triple_lengths`) each epoch's batches are
    length-bucketed (:func:`bucket_epoch`) with their own seeded shuffle, so the epochs' plain
    shuffles (which triples an epoch trains) are the plain path's."""
    rng = random.Random(config.seed)
    bucket_rng = random.Random(f"length-buckets-{config.seed}")
    steps: list[tuple[int, list[Triple]]] = []
    epoch = 0
    while True:
        if config.max_steps is None and epoch >= config.epochs:
            return steps
        batches = plan_epoch(triples, config.batch_size, rng, keep_groups)
        if config.length_buckets and lengths is not None:
            batches = bucket_epoch(
                batches, lengths, config.batch_size, config.length_buckets, bucket_rng, keep_groups
            )
        for batch in batches:
            if config.max_steps is not None and len(steps) >= config.max_steps:
                return steps
            steps.append((epoch, batch))
        epoch += 1


@dataclass(frozen=True)
class Processes:
    """Where this process stands in a data-parallel launch (``torchrun``, ``accelerate
    launch``): its global rank, the number of processes and its rank on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that evaluates and writes the output folder."""
        return self.rank == 0


def launched_processes() -> Processes:
    """The launch this process belongs to, from the variables ``torchrun`` and ``accelerate
    launch`` set (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one process without them."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Processes()
    rank = int(os.environ.get("RANK", "0") or 0)
    return Processes(rank, world, int(os.environ.get("LOCAL_RANK", str(rank)) or rank))


def plan_rows(
    steps: Sequence[tuple[int, list[Triple]]],
    triple_rows: Sequence[Sequence[int]],
    position: Mapping[int, int],
) -> list[list[list[int]]]:
    """The dataset rows each triple of every planned batch trains, in batch order: its rows
    (:meth:`Objective.triple_rows`; ``position`` maps ``id(triple)`` to its index) less those
    already trained in the same epoch.

    In the ``pairs`` layout a (query, positive) row is shared by the triples of that pair, so it
    is trained once per epoch, with the first of them to come up, and each negative once: a
    positive with ``n`` negatives trains at pos:neg 1:n (1:1 for balanced triples). Rows of the
    ``triples`` layout are never shared: every triple trains its own row."""
    planned: list[list[list[int]]] = []
    seen: set[int] = set()
    current: int | None = None
    for epoch, batch in steps:
        if epoch != current:
            seen, current = set(), epoch
        brought: list[list[int]] = []
        for triple in batch:
            rows = [row for row in triple_rows[position[id(triple)]] if row not in seen]
            seen.update(rows)
            brought.append(rows)
        planned.append(brought)
    return planned


def batch_units(batch: Sequence[Triple], keep_groups: bool) -> list[list[int]]:
    """What the loss of a batch averages over, as positions in the batch, in batch order: each
    triple, or with ``keep_groups`` each (query, positive) group (a listwise loss is a mean over
    groups)."""
    if not keep_groups:
        return [[index] for index in range(len(batch))]
    groups: dict[tuple[str, str], list[int]] = {}
    for index, triple in enumerate(batch):
        groups.setdefault((triple.query_id, triple.pos_doc_id), []).append(index)
    return list(groups.values())


def _split(units: list[list[int]], world: int) -> list[list[list[int]]]:
    """``units`` in ``world`` consecutive shares, as even as they allow."""
    base, extra = divmod(len(units), world)
    shares: list[list[list[int]]] = []
    start = 0
    for rank in range(world):
        size = base + (1 if rank < extra else 0)
        shares.append(units[start : start + size])
        start += size
    return shares


def shard_batch(batch: Sequence[Triple], world: int, keep_groups: bool) -> list[list[Triple]]:
    """One planned batch split into ``world`` consecutive shares, one per rank, as even as its
    units allow (:func:`batch_units`: a group is never split); a share may be empty when the
    batch has fewer units than ranks."""
    return [
        [batch[index] for unit in share for index in unit]
        for share in _split(batch_units(batch, keep_groups), world)
    ]


def shard_steps(
    steps: Sequence[tuple[int, list[Triple]]],
    rows: Sequence[Sequence[Sequence[int]]],
    keep_groups: bool,
    processes: Processes,
) -> tuple[list[list[int]], list[float]]:
    """This rank's dataset rows of every planned batch (``rows``: :func:`plan_rows`) and the
    weight of its loss.

    Each rank's loss is the mean over its share's loss terms (its rows; with ``keep_groups``
    its groups); DDP averages the ranks' gradients, so the weight ``world * terms_in_share /
    terms_in_batch`` makes that average the gradient of the whole batch's mean loss, as one
    process would compute it (the global batch stays ``batch_size``). A rank whose share is
    empty runs the batch's first triple's rows at weight 0: every rank must run each update's
    forward and backward (they are collective under DDP).
    """
    shares: list[list[int]] = []
    weights: list[float] = []
    for (_, batch), brought in zip(steps, rows, strict=True):
        units = batch_units(batch, keep_groups)

        def terms(chosen: list[list[int]], brought: Sequence[Sequence[int]] = brought) -> int:
            if keep_groups:
                return len(chosen)
            return sum(len(brought[index]) for unit in chosen for index in unit)

        mine = _split(units, processes.world)[processes.rank]
        if mine:
            weights.append(processes.world * terms(mine) / terms(units))
            shares.append([row for unit in mine for index in unit for row in brought[index]])
        else:
            weights.append(0.0)
            shares.append(list(brought[0]))
    return shares, weights


def ratio_text(positives: int, negatives: int) -> str:
    """``positives:negatives`` as ``1:n`` (``n`` to two decimals when not whole), e.g.
    ``1:5``; ``0:n`` without positives."""
    if positives <= 0:
        return f"0:{negatives}"
    return f"1:{round(negatives / positives, 2):g}"


def probe_pairs(
    triples: Sequence[Triple], documents: Mapping[str, str], size: int
) -> tuple[list[tuple[str, str]], list[float]]:
    """The first ``size`` pointwise rows of the triples (:func:`pointwise_pairs`: each (query,
    positive) once, then its negatives) as (query, document) pairs, and their labels."""
    queries, texts, labels = pointwise_pairs(triples[:size], documents)
    return list(zip(queries, texts, strict=True))[:size], labels[:size]


#: Training pairs (the first pointwise rows of the triples) whose encoding meta.json describes.
ENCODING_SAMPLE = 64


def training_encoding(
    triples: Sequence[Triple],
    documents: Mapping[str, str],
    tokenizer: Any,
    model: Any,
    encoding: EncodingConfig,
) -> dict[str, Any]:
    """:func:`~inpars_core.reranking.encoding.encoding_stats` of the first
    :data:`ENCODING_SAMPLE` training pairs under ``encoding`` (token-type share, [CLS] per pair,
    problems): what the trainer's meta.json records, so that a diagnosis can compare the
    training encoding with the reranking one (pitfalls P1 and P10). Tokenisation only."""
    from inpars_core.reranking.encoding import encoding_stats

    pairs, _ = probe_pairs(triples, documents, ENCODING_SAMPLE)
    type_vocab_size = int(getattr(model.config, "type_vocab_size", 1) or 1)
    return encoding_stats(
        tokenizer, [q for q, _ in pairs], [d for _, d in pairs], encoding, type_vocab_size
    )


def rerank_dev(reranker: Any, dev: DevSet, encoding: EncodingConfig, scoring: Any) -> Run:
    """The dev run's top ``depth`` documents of every query, rescored by ``reranker`` and, when
    ``dev.bm25_weight > 0``, interpolated with the run's first-stage scores: the system whose dev
    value picks the checkpoint."""
    from inpars_core.reranking.scoring import score_pairs

    keys: list[tuple[str, str]] = []
    pairs: list[tuple[str, str]] = []
    for query_id, docs in dev.run.items():
        for doc in docs[: dev.depth]:
            keys.append((query_id, doc.doc_id))
            pairs.append((dev.queries[query_id], dev.documents[doc.doc_id]))
    scores = score_pairs(reranker, pairs, encoding, scoring)
    run: Run = {query_id: [] for query_id in dev.run}
    for (query_id, doc_id), score in zip(keys, scores, strict=True):
        run[query_id].append(ScoredDoc(query_id, doc_id, score))
    reranked = {query_id: sort_ranking(docs) for query_id, docs in run.items()}
    if dev.bm25_weight > 0:
        from inpars_core.runs import interpolate_with_first_stage

        return interpolate_with_first_stage(reranked, dev.run, dev.bm25_weight)
    return reranked


def weights_sha256(folder: Path) -> str:
    """sha256 (hex) over the weight files of a saved model folder (``*.safetensors`` then
    ``*.bin``, by name): equal hashes mean the same saved weights."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not files:
        raise InputFormatError(
            folder, "holds no weight files (*.safetensors, *.bin)", fix="save a model there first"
        )
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _check_triples(triples: Sequence[Triple], documents: Mapping[str, str]) -> None:
    if not triples:
        raise InputFormatError(
            "triples", "no triples to train on", fix="build triples first with 'inpars triples'"
        )
    same = 0
    for number, triple in enumerate(triples, start=1):
        for name in ("pos_doc_id", "neg_doc_id"):
            doc_id = getattr(triple, name)
            if doc_id not in documents:
                raise InputFormatError(
                    "triples",
                    f"document {doc_id!r} has no text in the documents",
                    line=number,
                    field=name,
                    fix="pass the corpus the triples were built from",
                )
        same += triple.pos_doc_id == triple.neg_doc_id
    if same:
        logger.warning(
            "triples: %d of %d have the positive as their own negative (P7)", same, len(triples)
        )


def _save_model(model: Any, tokenizer: Any, target: Path) -> None:
    """save_pretrained into a temporary sibling, then rename onto ``target``."""
    tmp = target.with_name(f".{target.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


class _Tracker:
    """Parameter drift ‖θ−θ₀‖/‖θ₀‖ against a copy of the starting weights."""

    def __init__(self, params: list[Any]) -> None:
        import torch

        with torch.no_grad():
            self.params = params
            self.start = [p.detach().clone() for p in params]
            self.norm = float(
                torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(p.float()) for p in self.start])
                )
            )

    def drift(self) -> float:
        """‖θ−θ₀‖/‖θ₀‖ over all tracked parameters."""
        import torch

        with torch.no_grad():
            norms = [
                torch.linalg.vector_norm(p.float() - p0.float())
                for p, p0 in zip(self.params, self.start, strict=True)
            ]
            total = float(torch.linalg.vector_norm(torch.stack(norms)))
        return total / self.norm if self.norm else 0.0


def _optimizer(model: Any, config: TrainingConfig) -> Any:
    """AdamW; no weight decay on biases and LayerNorm weights; the fused kernel (one pass over
    each parameter, the same update up to float rounding) where torch has one for the device.

    Fused matters on a CPU at the small batches of fine-tuning: AdamW touches all 22.7M
    parameters of MiniLM-L6 every step, the 11.7M of the word embeddings included, whatever the
    batch. Measured here (2-core Xeon, 5 pairs x 128 tokens per step): the optimizer step took
    0.13-0.15 s of a 0.45 s step with torch's default (foreach) kernel, 0.02 s fused; the
    Hugging Face Trainer's own default is fused too (transformers >= 5 with torch >= 2.8)."""
    import torch
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lowered = name.lower()
        (no_decay if name.endswith("bias") or "layernorm" in lowered else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    devices = {param.device.type for group in groups for param in group["params"]}
    fused = config.fused_optimizer and devices <= set(_get_fused_kernels_supported_devices())
    return torch.optim.AdamW(groups, lr=config.lr, fused=fused or None)


def _first_batch_checks(
    objective: Objective, model: Any, labels: Any, loss: float, notes: list[str]
) -> None:
    """P2 (silent MSE), large first loss, P4 (loss exactly 0)."""
    problem_type = getattr(model.config, "problem_type", None)
    label_values = {float(v) for v in labels.unique().tolist()}
    if objective.labels_to_model and problem_type == "regression" and label_values <= {0.0, 1.0}:
        note = (
            "P2: problem_type is 'regression' with 0/1 labels: the model's loss is MSE of the "
            "logit onto 0/1, which pushes correctly ranked pairs the hardest and destroys the "
            "score scale; use objective 'bce', 'lce' or 'margin-mse'"
        )
        notes.append(note)
        logger.warning(note)
    if math.isfinite(loss) and loss > LARGE_FIRST_LOSS:
        note = (
            f"first-batch loss {loss:.3f} is large (> {LARGE_FIRST_LOSS}): the loss does not "
            "match the model's score scale (P2) or the learning target is far from it"
        )
        notes.append(note)
        logger.warning(note)
    if loss == 0.0:
        note = (
            "P4: first-batch loss is exactly 0: nothing can learn (e.g. num_labels=1 with "
            "problem_type 'single_label_classification')"
        )
        notes.append(note)
        logger.warning(note)


def _teacher_scorer(
    teacher_model: str, encoding: EncodingConfig, batch_size: int, device: str
) -> PairScorer:
    """Scores pairs with ``teacher_model``, loaded on the first call (fp32, eval mode, no
    gradients) and released after it: the teacher scores every needed pair once."""

    def score(pairs: Sequence[tuple[str, str]]) -> list[float]:
        from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs

        scoring = ScoringConfig(batch_size=batch_size, device=device, precision="fp32")
        teacher = load_reranker(teacher_model, scoring)
        logger.info("scoring %d pairs with the teacher %s", len(pairs), teacher_model)
        try:
            return score_pairs(teacher, pairs, encoding, scoring)
        finally:
            del teacher

    return score


def _check_teachers(
    triples: Sequence[Triple], config: TrainingConfig, objective: Objective, base_model: str
) -> list[str]:
    """Refuse a teacher that is the student, and a distillation objective without a teacher;
    returns notes. Runs before any model is loaded."""
    from inpars_core.training.objectives.margin_mse import missing_teacher_message

    notes: list[str] = []
    check_triples_teacher((t.teacher_fingerprint for t in triples), base_model, "triples")
    stored = [
        t for t in triples if t.teacher_pos_score is not None and t.teacher_neg_score is not None
    ]
    if objective.needs_teacher:
        lacking = len(triples) - len(stored)
        if lacking and config.teacher_model is None:
            raise ConfigError(missing_teacher_message(lacking, len(triples)))
        unrecorded = sum(1 for t in stored if not t.teacher_fingerprint)
        if unrecorded:
            note = (
                f"{unrecorded} triples carry teacher scores from a teacher the triples do not "
                "name (no teacher_fingerprint): it could not be checked against the base model"
            )
            notes.append(note)
            logger.warning(note)
    if config.teacher_model is not None:
        if objective.needs_teacher:
            check_teacher_is_not_student(
                config.teacher_model, base_model, f"{objective.name} teacher"
            )
        else:
            note = (
                f"teacher_model {config.teacher_model!r} is unused: objective "
                f"{objective.name!r} learns from the labels, not from a teacher"
            )
            notes.append(note)
            logger.warning(note)
    return notes


def _training_args(
    config: TrainingConfig,
    device: str,
    output_dir: Path,
    total: int,
    world: int = 1,
) -> Any:
    """``CrossEncoderTrainingArguments`` for a planned run of ``total`` updates (under a launch
    of ``world`` processes on CPU, DDP over gloo), with a resumable checkpoint (weights,
    optimizer, schedule, RNG) in ``output_dir`` every ``config.eval_every`` updates."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    return CrossEncoderTrainingArguments(
        output_dir=str(output_dir),
        max_steps=total,
        num_train_epochs=1,
        per_device_train_batch_size=config.batch_size,  # informative: batches are planned
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        data_seed=config.seed,
        bf16=config.bf16,
        use_cpu=device == "cpu",
        logging_strategy="steps",
        logging_steps=1,
        logging_nan_inf_filter=False,
        save_strategy="steps",
        save_steps=config.eval_every,
        save_total_limit=1,
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,  # the ProgressCallback is added back only when progress is asked for
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False,
        ddp_backend="gloo" if world > 1 and device == "cpu" else None,
    )


def train_reranker(
    triples: Sequence[Triple],
    documents: Mapping[str, str],
    config: TrainingConfig,
    out_dir: Path,
    dev: DevSet | None = None,
    base_model: str = "minilm",
    progress: bool = False,
) -> TrainingResult:
    """Fine-tune ``base_model`` on ``triples`` (document texts in ``documents``, doc_id -> text)
    with sentence-transformers' ``CrossEncoderTrainer`` and write the artifact folder
    ``out_dir`` (see the module docstring).

    With ``dev``, the checkpoint with the best dev nDCG@10 is kept (ties keep the earlier step,
    so step 0 — the starting model — wins unless training strictly improves on it); without, the
    final model is kept. ``progress`` shows HF's progress bar (loss, ETA) on stderr; the library
    never prints otherwise.

    Launched on several processes (``torchrun --nproc_per_node N -m inpars_core.cli train ...``
    or ``accelerate launch``), training is data-parallel: every rank runs its share of each
    planned batch (:func:`shard_steps`; the global batch stays ``batch_size``) and DDP averages
    the gradients; only rank 0 evaluates on the dev set and writes ``out_dir``, and every rank
    returns rank 0's result. Every rank saves into rank 0's checkpoint folder, and a killed
    launch, rerun, resumes on every rank from the checkpoint rank 0 picks
    (:func:`inpars_core.training.resume.take_up`).
    """
    import torch
    from datasets import Dataset as HFDataset

    from inpars_core.models import resolve_model_folder
    from inpars_core.reranking.scoring import (
        LoadedReranker,
        ScoringConfig,
        pick_device,
        score_pairs,
    )
    from inpars_core.training.hf import (
        DevEvaluation,
        NonFiniteLossError,
        PlannedCrossEncoderTrainer,
        StepLog,
        quiet_trainer,
        wrap_cross_encoder,
    )

    out_dir = Path(out_dir)
    _check_triples(triples, documents)
    if dev is not None:
        dev.validate()
    objective = get_objective(config.objective)
    teacher_notes = _check_teachers(triples, config, objective, base_model)
    encoding = config.encoding()
    timings: dict[str, float] = {}
    meta = TrainingMeta(
        stage="train",
        config=asdict(config),
        base_model=base_model,
        inputs={"base_model": base_model},
        counts={"triples": len(triples), "documents": len(documents)},
    )

    processes = launched_processes()
    if processes.world > 1:
        meta.config["processes"] = processes.world
        logger.info("rank %d of %d processes", processes.rank, processes.world)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model, tokenizer, notes = load_for_training(base_model, objective)
    notes.extend(teacher_notes)
    device = pick_device(config.device)
    if processes.world > 1 and device == "cuda":
        device = f"cuda:{processes.local_rank}"
        torch.cuda.set_device(processes.local_rank)
    model.to(device)
    timings["load_s"] = round(time.perf_counter() - started, 3)
    reranker = LoadedReranker(model, tokenizer, base_model, "in-training", device, "fp32")
    scoring = ScoringConfig(batch_size=config.eval_batch_size, device=device)

    def scorer(pairs: Sequence[tuple[str, str]]) -> list[float]:
        # Evaluation scores the transformers model itself, in fp32 eval mode, exactly as
        # inference does: step 0 equals the zero-shot scores (bf16 autocast, which accelerate
        # puts around the CrossEncoder's forward, never reaches it).
        model.eval()
        try:
            return score_pairs(reranker, pairs, encoding, scoring)
        finally:
            model.train()

    teacher = None
    if config.teacher_model is not None and objective.needs_teacher:
        teacher = _teacher_scorer(config.teacher_model, encoding, config.eval_batch_size, device)
        meta.inputs["teacher_model"] = config.teacher_model
    started = time.perf_counter()
    notes.extend(objective.prepare(triples, documents, teacher))
    timings["prepare_s"] = round(time.perf_counter() - started, 3)

    lengths = None
    if config.length_buckets:
        lengths = triple_lengths(triples, documents, tokenizer, encoding)
    steps = plan_steps(triples, config, objective.keep_groups, lengths)
    total = len(steps)
    warmup = math.ceil(config.warmup_ratio * total) if config.warmup_ratio > 0 else 0
    position = {id(triple): index for index, triple in enumerate(triples)}
    rows = plan_rows(steps, objective.triple_rows(triples), position)
    weights: list[float] | None = None
    planned = [[row for brought in step for row in brought] for step in rows]
    if processes.world > 1:
        planned, weights = shard_steps(steps, rows, objective.keep_groups, processes)
    dataset = HFDataset.from_dict(objective.train_columns(triples, documents))
    # Our optimiser and schedule, not HF's: HF's linear warm-up starts at lr 0 (a wasted first
    # update) and decays to 0 (a wasted last one); lr_factor never runs an update at lr 0.
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda index: lr_factor(index + 1, warmup, total)
    )
    params = [p for p in model.parameters() if p.requires_grad]
    tracker = _Tracker(params)
    probe, probe_labels = probe_pairs(triples, documents, config.probe_size)
    meta.encoding = training_encoding(triples, documents, tokenizer, model, encoding)
    cross_encoder = wrap_cross_encoder(
        str(resolve_model_folder(base_model)), model, tokenizer, encoding, device
    )

    losses: dict[int, float] = {}
    first: dict[str, float | None] = {"loss": None}

    def on_loss(step: int, value: float, labels: Any) -> None:
        losses[step] = value
        if step == 1:
            first["loss"] = value
            _first_batch_checks(objective, model, labels, value, notes)

    def step_fields(step: int) -> dict[str, Any]:
        epoch, batch = steps[step - 1]
        positives, negatives = objective.pair_counts(batch, sum(map(len, rows[step - 1])))
        return {
            "epoch": epoch,
            "param_drift": tracker.drift(),
            "pairs": positives + negatives,
            "positives": positives,
            "negatives": negatives,
        }

    fingerprint = stable_hash(
        [
            asdict(config),
            base_model,
            [asdict(t) for t in triples],
            sorted(documents),
            None if dev is None else [dev.depth, dev.bm25_weight, sorted(dev.run)],
            processes.world,
        ]
    )
    join_launch(device)  # the ranks agree on the resume point before the trainer is built
    with staging(out_dir, processes.main) as staged:
        resume = take_up(staged, fingerprint, processes.main, total)
        if resume.note:
            notes.append(resume.note)
        model_dir = staged / MODEL_DIR

        def measure(step: int) -> dict[str, Any]:
            record: dict[str, Any] = {}
            if probe:
                scores = scorer(probe)
                pos = [s for s, y in zip(scores, probe_labels, strict=True) if y == 1.0]
                neg = [s for s, y in zip(scores, probe_labels, strict=True) if y == 0.0]
                record["probe_mean"] = statistics.fmean(scores)
                record["probe_std"] = statistics.pstdev(scores)
                record["probe_pos_mean"] = statistics.fmean(pos) if pos else None
                record["probe_neg_mean"] = statistics.fmean(neg) if neg else None
            if dev is not None:
                model.eval()
                try:
                    ranked = rerank_dev(reranker, dev, encoding, scoring)
                finally:
                    model.train()
                record[MEASURE] = evaluate(ranked, dev.qrels, [MEASURE]).aggregate[MEASURE]
                record["bm25_weight"] = dev.bm25_weight
            return record

        def save(folder: Path) -> None:
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)

        kept = KeptModel(staged, save)

        def keep(step: int) -> dict[str, Any]:
            return {"saved": True, "weights_sha256": weights_sha256(kept.keep(step))}

        train_started = time.perf_counter()
        with (
            open(staged / TRAIN_LOG, "a", encoding="utf-8") as train_log,
            open(staged / EVAL_LOG, "a", encoding="utf-8") as eval_log,
        ):
            step_log = StepLog(train_log, extra=step_fields, loss_of=losses.get)
            step_log.records.extend(resume.train_records)
            if resume.train_records and resume.train_records[0]["step"] == 1:
                first["loss"] = resume.train_records[0]["loss"]
            evaluation = DevEvaluation(measure, keep, config.eval_every, eval_log)
            evaluation.restore(resume.eval_records)
            if processes.main:
                kept.restore(evaluation.best_step)
            rng = torch.get_rng_state()
            trainer = PlannedCrossEncoderTrainer(
                model=cross_encoder,
                args=_training_args(config, device, resume.checkpoints, total, processes.world),
                train_dataset=dataset,
                loss=objective.make_loss(cross_encoder),
                # only rank 0 evaluates and logs; the other ranks train in step with it
                callbacks=[evaluation, step_log] if processes.main else [],
                optimizers=(optimizer, scheduler),
                planned=planned,
                on_loss=on_loss,
                loss_weights=weights,
            )
            # HF's Trainer re-seeds every RNG (set_seed(config.seed)) when it is built; put
            # torch's back where our seed left it, so dropout draws the masks it drew before the
            # port (the differential test in tests/test_training.py relies on it).
            torch.set_rng_state(rng)
            quiet_trainer(trainer, progress)
            try:
                trainer.train(resume_from_checkpoint=resume.resume_from)
            except NonFiniteLossError as stop:
                note = (
                    f"loss is {stop.value} at step {stop.step}: training stopped before that update"
                )
                notes.append(note)
                logger.warning(note)
                evaluation.finish(int(trainer.state.global_step))
            final_step = int(trainer.state.global_step)
        wait_for_ranks()  # every rank's last checkpoint files are written before rank 0 goes on
        if not processes.main:
            return shared_result(None)
        evals = evaluation.records
        eval_seconds = evaluation.seconds
        timings["train_s"] = round(time.perf_counter() - train_started - eval_seconds, 3)
        timings["eval_s"] = round(eval_seconds, 3)
        applied = [r for r in step_log.records if r["step"] <= final_step]
        first_loss = first["loss"]
        last_loss = applied[-1]["loss"] if applied else None
        pairs_seen = sum(r["pairs"] for r in applied)
        positives = sum(r.get("positives", 0) for r in applied)
        negatives = sum(r.get("negatives", 0) for r in applied)
        pairs_per_epoch: dict[int, int] = {}
        for record in applied:
            epoch = int(record["epoch"])
            pairs_per_epoch[epoch] = pairs_per_epoch.get(epoch, 0) + record["pairs"]
        best = {"step": evaluation.best_step, "value": evaluation.best_value}

        # model/ gets the kept best model, or the final weights saved below
        kept.publish(model_dir, use=dev is not None and config.keep == "best")
        kept_step = best["step"]
        if dev is None:
            _save_model(model, tokenizer, model_dir)
            best.update(step=final_step)
            kept_step = final_step
        elif config.keep == "final":
            _save_model(model, tokenizer, model_dir)
            kept_step = final_step
            if best["step"] == 0:
                note = (
                    f"best dev {MEASURE} is at step 0 ({best['value']:.4f}): fine-tuning "
                    f"hurt on the dev set; {MODEL_DIR}/ holds the final step as asked "
                    "(keep = 'final')"
                )
                notes.append(note)
                logger.warning(note)
        elif best["step"] == 0:
            note = (
                f"best dev {MEASURE} is at step 0 ({best['value']:.4f}), before any update: "
                f"fine-tuning did not improve on the starting model, so {MODEL_DIR}/ holds the "
                "starting model (P5: lower the learning rate, train shorter, check the loss)"
            )
            notes.append(note)
            logger.warning(note)
        step0 = evals[0].get(MEASURE)

        meta.objective = {**objective.describe(), "loss": type(trainer.loss).__name__}
        meta.counts.update(
            steps=final_step,
            planned_steps=total,
            warmup_steps=warmup,
            pairs_seen=pairs_seen,
            positives=positives,
            negatives=negatives,
            pos_neg_ratio=ratio_text(positives, negatives),
            pairs_per_epoch=[pairs_per_epoch[e] for e in sorted(pairs_per_epoch)],
            probe_pairs=len(probe),
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
            "best_dev_ndcg10": best["value"],
            "step0_dev_ndcg10": step0,
            "dev_bm25_weight": dev.bm25_weight if dev is not None else None,
            "kept_weights_sha256": weights_sha256(model_dir),
            "final_step": final_step,
            "first_loss": first_loss,
            "last_loss": last_loss,
            "problem_type": getattr(model.config, "problem_type", None),
            "num_labels": int(model.config.num_labels),
            "device": device,
            "final_param_drift": tracker.drift(),
            "step0_probe_mean": evals[0].get("probe_mean"),
            "step0_probe_std": evals[0].get("probe_std"),
            "final_probe_mean": evals[-1].get("probe_mean"),
            "final_probe_std": evals[-1].get("probe_std"),
        }
        meta.notes = list(notes)
        meta.timings.update(timings)
        finish_meta(meta, staged / META_FILE)

    return shared_result(
        TrainingResult(
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
    )
