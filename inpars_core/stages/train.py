"""train: fine-tune a reranker on triples, picking the kept step on a dev set.

One arrow for both families: ``cross-encoder`` (:func:`inpars_core.training.train_reranker`,
objectives hf-default, bce, ce2, lce, margin-mse) and ``bi-encoder``
(:func:`inpars_core.dense.training.train_dense`, objectives mnrl, margin-mse). The dev set is a
first-stage run of dev queries (``dev_run``) judged by the qrels of ``dev_split``, or by their
source documents for synthetic dev queries (``dev_queries``); ``dev_query_ids`` picks which of
them. No dev query may be judged in ``eval_split`` (the split results are reported on): choosing
the checkpoint on it would leak the evaluation labels into model selection.

The artifact folder holds ``model/`` (the kept checkpoint, a Hugging Face or
sentence-transformers folder), ``train_log.jsonl`` (one line per update: loss, lr, grad norm),
``eval_log.jsonl`` (one line per dev evaluation, step 0 first) and ``meta.json`` (type "model";
counts: best, kept and final step, dev nDCG@10 at step 0 and best, first and last loss, dev,
dev_queries, notes; the trainer's results).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from inpars_core.errors import ConfigError, InputFormatError
from inpars_core.options import (
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    PROBABILITY,
    WARMUP_FRACTION,
    option,
    validate,
)
from inpars_core.records import Qrels, Query, Run
from inpars_core.reranking.encoding import PairEncoding
from inpars_core.stages.common import Progress, dataset_record, load_dataset
from inpars_core.stages.contract import (
    Artifact,
    Note,
    check_same_corpus,
    input_artifact,
    open_input,
    write_stage_meta,
)

logger = logging.getLogger(__name__)

NAME = "train"
HELP = "fine-tune a reranker (cross-encoder or bi-encoder) on triples"
OUTPUT = "model"
#: Where the trainer writes inside the stage folder before its files are moved up.
_TRAINER_DIR = "_trainer"
#: The trainer's files the artifact keeps.
KEPT_FILES = ("model", "train_log.jsonl", "eval_log.jsonl")
#: Results of the trainer copied into the artifact's counts (what the runner and summary read).
RESULT_COUNTS = (
    "best_step",
    "kept_step",
    "final_step",
    "best_dev_ndcg10",
    "step0_dev_ndcg10",
    "first_loss",
    "last_loss",
)


def family_objectives() -> dict[str, tuple[str, ...]]:
    """Family -> the objectives its trainer registers."""
    from inpars_core.dense.training import OBJECTIVES as DENSE
    from inpars_core.training.objectives import OBJECTIVES as CROSS

    return {"cross-encoder": tuple(CROSS), "bi-encoder": tuple(DENSE)}


def _all_objectives() -> tuple[str, ...]:
    return tuple(dict.fromkeys(o for names in family_objectives().values() for o in names))


#: Options one family's trainer has and the other's lacks: field -> family.
ONLY_FOR = {
    "bf16": "cross-encoder",
    "pair_encoding": "cross-encoder",
    "device": "cross-encoder",
    "length_buckets": "cross-encoder",
    "probe_size": "cross-encoder",
    "max_grad_norm": "cross-encoder",
    "similarity": "bi-encoder",
    "scale": "bi-encoder",
    "teacher_max_length": "bi-encoder",
    "teacher_batch_size": "bi-encoder",
}
#: Defaults that differ by family (a None field takes these).
FAMILY_DEFAULTS = {
    "cross-encoder": {"batch_size": 16, "eval_batch_size": 32},
    "bi-encoder": {"batch_size": 32, "eval_batch_size": 64},
}


@dataclass(frozen=True)
class Config:
    """Every training option, the dev-set options and which checkpoint is kept."""

    objective: str = option(
        help="cross-encoder: hf-default|bce|ce2|lce|margin-mse; bi-encoder: mnrl|margin-mse",
        choices=_all_objectives,
    )
    family: Literal["cross-encoder", "bi-encoder"] = option(
        "cross-encoder", "which model is trained"
    )
    lr: float = option(2e-5, "peak learning rate", check=POSITIVE_FLOAT)
    warmup_ratio: float = option(
        0.1, "fraction of the updates spent warming up", check=WARMUP_FRACTION
    )
    epochs: int = option(1, "passes over the triples", check=POSITIVE_INT)
    max_steps: int | None = option(
        None, "optimizer steps (overrides --epochs)", check=POSITIVE_INT, flag="--steps"
    )
    batch_size: int | None = option(
        None,
        "triples per step (default 16 for a cross-encoder, 32 for a bi-encoder)",
        check=POSITIVE_INT,
    )
    max_length: int = option(256, "truncation length in word-pieces", check=POSITIVE_INT)
    weight_decay: float = option(0.01, "AdamW weight decay", check=NON_NEGATIVE_FLOAT)
    seed: int = option(0, "seed of the batches, dropout and new heads", check=NON_NEGATIVE_INT)
    eval_every: int = option(
        50, "dev evaluation every N steps (and at 0 and the end)", check=POSITIVE_INT
    )
    keep: Literal["best", "final"] = option(
        "best", "model/ holds the best dev checkpoint (may be step 0) or the final one"
    )
    teacher: str | None = option(
        None, "margin-mse: cross-encoder whose score margins are distilled (not --base-model)"
    )
    eval_batch_size: int | None = option(
        None,
        "batch size of the dev evaluation (default 32 for a cross-encoder, 64 for a bi-encoder)",
        check=POSITIVE_INT,
    )
    bf16: bool = option(False, "cross-encoder: bf16 autocast for training")
    pair_encoding: PairEncoding = option(  # noqa: RUF009 (a Literal of str: immutable)
        "pair", "cross-encoder: how (query, document) is encoded (see 'inpars rerank --help')"
    )
    device: str = option("auto", "cross-encoder: auto, cpu, cuda, mps")
    length_buckets: int = option(
        0,
        "cross-encoder: sort the triples of every N planned batches by word-piece length and "
        "batch them again (less padding; each epoch trains the same triples, listwise groups "
        "whole); 0: off",
        check=NON_NEGATIVE_INT,
    )
    probe_size: int = option(
        64, "cross-encoder: pairs of the fixed probe set (score mean/std)", check=NON_NEGATIVE_INT
    )
    max_grad_norm: float = option(1.0, "cross-encoder: gradient clipping", check=POSITIVE_FLOAT)
    similarity: Literal["cosine", "dot"] = option("cosine", "bi-encoder: similarity")
    scale: float = option(20.0, "bi-encoder: mnrl inverse temperature", check=POSITIVE_FLOAT)
    teacher_max_length: int = option(
        256, "bi-encoder: max_length of the --teacher's pairs", check=POSITIVE_INT
    )
    teacher_batch_size: int = option(
        32, "bi-encoder: batch size of the --teacher", check=POSITIVE_INT
    )
    dev_split: str = option(
        "train", "qrels split of the dev queries (never the split you report: see --eval-split)"
    )
    eval_split: str = option(
        "test", "the split results are reported on: no dev query may be judged in it"
    )
    dev_depth: int = option(30, "first-stage documents reranked per dev query", check=POSITIVE_INT)
    dev_max_queries: int = option(100, "dev queries evaluated at most", check=POSITIVE_INT)
    dev_bm25_weight: float = option(
        0.0,
        "weight of the first-stage score in the dev system (0: the pure model); use the "
        "interpolation weight you report",
        check=PROBABILITY,
    )

    def __post_init__(self) -> None:
        validate(self)
        allowed = family_objectives()[self.family]
        if self.objective not in allowed:
            raise ConfigError(
                f"--objective: expected one of {', '.join(allowed)} for a {self.family}, found "
                f"{self.objective!r}"
            )
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, family in ONLY_FOR.items():
            if family != self.family and getattr(self, name) != defaults[name]:
                raise ConfigError(
                    f"{name}: a {family} option, found {getattr(self, name)!r} for a "
                    f"{self.family}. Fix: drop it, or train a {family} (--family {family})"
                )

    def resolved(self, name: str) -> Any:
        """A field's value, the family's default where it is None."""
        value = getattr(self, name)
        return FAMILY_DEFAULTS[self.family][name] if value is None else value

    def trainer_config(self) -> Any:
        """The trainer's config: :class:`~inpars_core.training.TrainingConfig` for a
        cross-encoder, :class:`~inpars_core.dense.training.TrainDenseConfig` for a bi-encoder."""
        shared = {
            "objective": self.objective,
            "lr": self.lr,
            "warmup_ratio": self.warmup_ratio,
            "epochs": self.epochs,
            "max_steps": self.max_steps,
            "batch_size": self.resolved("batch_size"),
            "max_length": self.max_length,
            "weight_decay": self.weight_decay,
            "seed": self.seed,
            "eval_every": self.eval_every,
            "eval_batch_size": self.resolved("eval_batch_size"),
            "keep": self.keep,
        }
        if self.family == "bi-encoder":
            from inpars_core.dense.training import TrainDenseConfig

            return TrainDenseConfig(
                **shared,
                similarity=self.similarity,
                scale=self.scale,
                teacher=self.teacher,
                teacher_max_length=self.teacher_max_length,
                teacher_batch_size=self.teacher_batch_size,
            )
        from inpars_core.training.trainer import TrainingConfig

        return TrainingConfig(
            **shared,
            bf16=self.bf16,
            probe_size=self.probe_size,
            pair_encoding=self.pair_encoding,
            max_grad_norm=self.max_grad_norm,
            device=self.device,
            teacher_model=self.teacher,
            length_buckets=self.length_buckets,
        )


@dataclass(frozen=True)
class Inputs:
    """The triples, the model to start from and the dev set."""

    dataset: str = option(help="BEIR name (scifact, ...) or a BEIR-layout folder")
    triples: str = option(help="the --out of 'inpars triples' (or a triples JSONL)")
    base_model: str = option(help="hub id, path, or minilm (a new head for a cross-encoder)")
    dev_run: str | None = option(
        None, "first-stage run of the dev queries, reranked at every evaluation"
    )
    dev_queries: str | None = option(
        None,
        "synthetic dev queries (the --out of 'inpars filter', or a JSONL), each judged by its "
        "source document, instead of --dev-split's qrels; --dev-run is their BM25 run",
    )
    dev_query_ids: tuple[str, ...] | None = option(
        None, "only these dev queries, in this order (default: those of --dev-run, in its order)"
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.dev_run is None and (self.dev_queries or self.dev_query_ids is not None):
            raise ConfigError(
                "--dev-queries and --dev-query-ids need --dev-run (the first-stage run of the "
                "dev queries). Fix: add --dev-run"
            )


@dataclass(frozen=True)
class Dev:
    """The dev set: query texts, their first-stage run, their judgements and where they came
    from (``label``: the qrels split, or ``synthetic``)."""

    queries: Mapping[str, Query]
    run: Run
    qrels: Qrels
    label: str


def dev_set(config: Config, inputs: Inputs, dataset: Any) -> Dev | None:
    """The dev set of ``inputs`` (None without ``dev_run``): the given ``dev_query_ids`` or the
    dev run's queries, those judged (by ``dev_split``'s qrels, or by their source document for
    synthetic dev queries), the first ``dev_max_queries``. Stops when one is judged in
    ``eval_split``."""
    if inputs.dev_run is None:
        return None
    from inpars_core.runs import read_trec_run

    check_same_corpus(inputs.dev_run, dataset, "--dev-run")
    run = read_trec_run(open_input(inputs.dev_run, "run", flag="--dev-run"))
    if inputs.dev_queries:
        from inpars_core.generation.stage import read_queries

        records = read_queries(open_input(inputs.dev_queries, "queries", flag="--dev-queries"))
        texts = {r.query_id: Query(r.query_id, r.text) for r in records}
        qrels: Qrels = {r.query_id: {r.doc_id: 1} for r in records}
        label, source = "synthetic", "--dev-queries"
    else:
        texts = dataset.queries
        qrels = dataset.qrels(config.dev_split)
        label, source = config.dev_split, f"--dev-split {config.dev_split}"
    candidates = inputs.dev_query_ids if inputs.dev_query_ids is not None else list(run)
    ids = [q for q in candidates if q in qrels and q in texts][: config.dev_max_queries]
    if not ids:
        raise InputFormatError(
            inputs.dev_run,
            f"expected dev queries judged by {source}, found none among the "
            f"{len(candidates)} {'--dev-query-ids' if inputs.dev_query_ids else 'run queries'}",
            fix="give --dev-run a run of queries judged in --dev-split (inpars retrieve --split "
            "train), or --dev-queries for synthetic ones",
        )
    check_dev_split(dataset, ids, source, config.eval_split)
    return Dev(
        queries={q: texts[q] for q in ids},
        run={q: run[q] for q in ids if q in run},
        qrels={q: qrels[q] for q in ids},
        label=label,
    )


def check_dev_split(dataset: Any, dev_ids: list[str], source: str, eval_split: str) -> None:
    """Stop when a dev query is judged in the evaluated split: picking the checkpoint on it
    would leak the evaluation labels into model selection."""
    if eval_split not in dataset.splits():
        logger.warning(
            "--eval-split %s has no qrels in %s: the dev/evaluation overlap is not checked",
            eval_split,
            dataset.name,
        )
        return
    evaluated = dataset.qrels(eval_split)
    overlap = [q for q in dev_ids if q in evaluated]
    if overlap:
        raise ConfigError(
            f"{len(overlap)} of {len(dev_ids)} dev queries ({source}) are judged "
            f"in the evaluated split {eval_split!r} (e.g. {', '.join(overlap[:3])}): choosing "
            "the checkpoint on them uses the evaluation labels. Fix: give --dev-run a run of "
            "queries from another split (--dev-split train), or set --eval-split to the split "
            "you report"
        )


def _train(
    config: Config, inputs: Inputs, dataset: Any, dev: Dev | None, target: Path, progress: bool
) -> Any:
    """Run the family's trainer into ``target``; its :class:`TrainingResult`."""
    from inpars_core.negatives import read_triples

    triples = read_triples(open_input(inputs.triples, "triples", flag="--triples"))
    trainer_config = config.trainer_config()
    dev_fields: dict[str, Any] = {}
    if dev is not None:
        dev_fields = {
            "run": dev.run,
            "qrels": dev.qrels,
            "depth": config.dev_depth,
            "bm25_weight": config.dev_bm25_weight,
        }
    if config.family == "bi-encoder":
        from inpars_core.dense.training import DenseDevSet, train_dense
        from inpars_core.training.trainer import launched_processes

        if launched_processes().world > 1:
            raise ConfigError(
                "bi-encoder training is not data-parallel yet: launch it as one process"
            )
        dense_dev = None
        if dev is not None:
            dense_dev = DenseDevSet(queries=dev.queries, documents=dataset.corpus, **dev_fields)
        return train_dense(
            inputs.base_model, triples, dataset.corpus, target, trainer_config, dense_dev, progress
        )
    from inpars_core.training.trainer import DevSet, train_reranker

    documents = {doc_id: doc.contents for doc_id, doc in dataset.corpus.items()}
    cross_dev = None
    if dev is not None:
        texts = {q: query.text for q, query in dev.queries.items()}
        cross_dev = DevSet(queries=texts, documents=documents, **dev_fields)
    return train_reranker(
        triples,
        documents,
        trainer_config,
        target,
        dev=cross_dev,
        base_model=inputs.base_model,
        progress=progress,
    )


def run(
    config: Config, inputs: Inputs, out_dir: Path, progress: Progress | None = None
) -> Artifact:
    """Train and write the artifact folder ``out_dir`` (see the module docstring).

    Under a data-parallel launch (``torchrun``) every rank trains its share of each batch; only
    rank 0 writes ``out_dir`` (the others return an artifact without meta)."""
    from inpars_core.training.trainer import launched_processes

    started = time.perf_counter()
    out_dir = Path(out_dir)
    dataset = load_dataset(inputs.dataset)
    dev = dev_set(config, inputs, dataset)
    target = out_dir / _TRAINER_DIR
    result = _train(config, inputs, dataset, dev, target, progress is not None)
    processes = launched_processes()
    if not processes.main:
        return Artifact(out_dir, OUTPUT, "huggingface", {})
    trainer_meta = json.loads((target / "meta.json").read_text(encoding="utf-8"))
    for name in KEPT_FILES:
        if (target / name).exists():
            os.replace(target / name, out_dir / name)
    shutil.rmtree(target)
    notes = list(result.notes)
    counts = {
        **trainer_meta.get("counts", {}),
        **{k: trainer_meta.get("results", {}).get(k) for k in RESULT_COUNTS},
        "best_at_step0": result.best_at_step0,
        "dev": dev.label if dev is not None else "none",
        "dev_queries": len(dev.run) if dev is not None else 0,
        "dev_bm25_weight": config.dev_bm25_weight,
        "notes": notes,
    }
    recorded: dict[str, Any] = {
        **dataset_record(dataset),
        "triples": input_artifact(inputs.triples),
        **trainer_meta.get("inputs", {}),
    }
    for name in ("dev_run", "dev_queries"):
        if getattr(inputs, name):
            recorded[name] = input_artifact(getattr(inputs, name))
    if dev is not None:
        recorded["dev_query_ids"] = list(dev.queries)
    recorded_config = dataclasses.asdict(config)
    if processes.world > 1:
        recorded_config["processes"] = processes.world
    return write_stage_meta(
        out_dir,
        stage=NAME,
        type=OUTPUT,
        config=recorded_config,
        inputs=recorded,
        counts=counts,
        timings={k: v for k, v in trainer_meta.get("timings", {}).items() if k != "total_s"},
        notes=[Note("training", "warning", text) for text in notes],
        started=started,
        extra={
            "base_model": inputs.base_model,
            "objective": trainer_meta.get("objective", {}),
            "results": trainer_meta.get("results", {}),
            "trainer_config": trainer_meta.get("config", {}),
            "encoding": trainer_meta.get("encoding", {}),
        },
    )


def describe(artifact: Artifact) -> str:
    """What the command prints: steps, dev nDCG@10 at step 0 and best, the notes."""
    counts = artifact.counts

    def value(name: str) -> str:
        return "n/a" if counts.get(name) is None else f"{counts[name]:.4f}"

    lines = [
        f"trained {counts['final_step']} steps; dev nDCG@10 step 0 {value('step0_dev_ndcg10')}, "
        f"best {value('best_dev_ndcg10')} at step {counts['best_step']}"
        + (" (the starting model: fine-tuning did not help)" if counts["best_at_step0"] else "")
        + f"; model -> {artifact.data}"
    ]
    lines += [f"note: {note.text}" for note in artifact.notes]
    return "\n".join(lines)
