"""triples: BM25 negatives for synthetic queries (positive = source document) or a qrels split.

Each (query, positive) gets negatives from a window of BM25 ranks and, optionally, at random from
the corpus (:mod:`inpars_core.negatives`); an optional false-negative guard drops negatives a
teacher cross-encoder scores within a margin of the positive, and stores the teacher's scores in
the triples (margin-mse can distil them). ``query_ids`` keeps a subset of the queries (the
experiment runner's training queries: the first train-qrels queries of a base reranker, or the
kept synthetic queries without the held-out dev slice); ``add_triples`` appends another triples
artifact (train-qrels triples mixed into synthetic ones).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inpars_core.errors import ConfigError
from inpars_core.options import (
    FINITE,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    RANK_WINDOW,
    option,
    validate,
)
from inpars_core.stages.common import Progress, dataset_record, load_dataset
from inpars_core.stages.contract import (
    Artifact,
    check_same_corpus,
    input_artifact,
    open_input,
    write_stage_meta,
)

logger = logging.getLogger(__name__)

NAME = "triples"
HELP = "mine BM25 negatives: (query, positive, negative) triples"
OUTPUT = "triples"
TRIPLES_FILE = "triples.jsonl"


@dataclass(frozen=True)
class Config:
    """How many negatives per positive, from where, and the optional false-negative guard."""

    negatives: int = option(5, "negatives per positive from the BM25 window", check=POSITIVE_INT)
    window: tuple[int, int] = option(
        (1, 100), "BM25 rank window A:B to sample negatives from", check=RANK_WINDOW
    )
    random_negatives: int = option(
        0, "extra negatives per positive drawn at random from the corpus", check=NON_NEGATIVE_INT
    )
    balanced: bool = option(False, "exactly one negative per positive")
    seed: int = option(0, "sampling seed", check=NON_NEGATIVE_INT)
    teacher: str | None = option(
        None,
        "cross-encoder of the false-negative guard (never the model you will train); its "
        "scores are stored in the triples, for margin-mse",
    )
    false_negative_margin: float | None = option(
        None,
        "with --teacher: drop a negative scored above the positive's score minus this",
        check=FINITE,
    )
    teacher_max_length: int = option(256, "max_length of the --teacher's pairs", check=POSITIVE_INT)
    teacher_batch_size: int = option(32, "batch size of the --teacher", check=POSITIVE_INT)
    device: str = option("auto", "device of the --teacher")

    def __post_init__(self) -> None:
        validate(self)
        if (self.teacher is None) != (self.false_negative_margin is None):
            raise ConfigError(
                "the false-negative guard needs both --teacher and --false-negative-margin, "
                f"found teacher {self.teacher!r} and margin {self.false_negative_margin!r}. Fix: "
                "give both (e.g. --teacher cross-encoder/ms-marco-MiniLM-L-6-v2 "
                "--false-negative-margin 0.1), or neither"
            )

    def negatives_config(self) -> Any:
        """The mining settings (:class:`inpars_core.negatives.NegativesConfig`)."""
        from inpars_core.negatives import NegativesConfig

        return NegativesConfig(
            negatives=self.negatives,
            window=self.window,
            random_negatives=self.random_negatives,
            balanced=self.balanced,
            seed=self.seed,
            false_negative_margin=self.false_negative_margin,
        )


@dataclass(frozen=True)
class Inputs:
    """The queries (synthetic, or a qrels split) with their BM25 run."""

    dataset: str = option(help="BEIR name (scifact, ...) or a BEIR-layout folder")
    run: str = option(help="BM25 run of those queries: the --out of 'inpars retrieve'")
    queries: str | None = option(
        None,
        "synthetic queries (positive = source document): the --out of 'inpars generate' or "
        "'inpars filter' (or a JSONL)",
    )
    split: str | None = option(None, "or a qrels split (e.g. train): supervised triples")
    query_ids: tuple[str, ...] | None = option(
        None, "only these queries of --queries or --split (default: all of them)"
    )
    add_triples: str | None = option(
        None,
        "triples appended after the mined ones (the --out of another 'inpars triples', e.g. "
        "train-qrels triples mixed into synthetic ones)",
    )

    def __post_init__(self) -> None:
        validate(self)
        if bool(self.queries) == bool(self.split):
            raise ConfigError(
                "expected exactly one of --queries (synthetic) or --split (qrels), found "
                f"{'both' if self.queries else 'neither'}"
            )


def _positives(inputs: Inputs, dataset: Any) -> tuple[dict[str, str], dict[str, set[str]]]:
    """(query texts, positives) of the synthetic queries or of the qrels split, restricted to
    ``inputs.query_ids`` when given."""
    from inpars_core.negatives import positives_from_qrels, positives_from_synthetic

    wanted = set(inputs.query_ids) if inputs.query_ids is not None else None
    if inputs.queries:
        from inpars_core.generation.stage import read_queries

        records = read_queries(open_input(inputs.queries, "queries", flag="--queries"))
        known = {r.query_id for r in records}
        if wanted is not None:
            records = [r for r in records if r.query_id in wanted]
        texts, positives = positives_from_synthetic(records)
    else:
        qrels = dataset.qrels(inputs.split)
        known = set(qrels)
        if wanted is not None:
            qrels = {q: judged for q, judged in qrels.items() if q in wanted}
        positives = positives_from_qrels(qrels)
        texts = {q: dataset.queries[q].text for q in positives if q in dataset.queries}
    if wanted is not None and wanted - known:
        logger.warning(
            "%d of the %d --query-ids are not among the queries (first: %s)",
            len(wanted - known),
            len(wanted),
            sorted(wanted - known)[0],
        )
    return texts, positives


def guard_teacher(config: Config, texts: dict[str, str], dataset: Any) -> Any:
    """A scorer of (query_id, doc_id) pairs with the guard's cross-encoder ``config.teacher``."""
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs

    scoring = ScoringConfig(batch_size=config.teacher_batch_size, device=config.device)
    reranker = load_reranker(str(config.teacher), scoring)
    encoding = EncodingConfig(max_length=config.teacher_max_length)

    def teacher(pairs: Sequence[tuple[str, str]]) -> list[float]:
        texts_of = [(texts[q], dataset.corpus[d].contents) for q, d in pairs]
        return score_pairs(reranker, texts_of, encoding, scoring)

    return teacher


def run(
    config: Config, inputs: Inputs, out_dir: Path, progress: Progress | None = None
) -> Artifact:
    """Mine the triples and write ``triples.jsonl`` + ``meta.json`` into ``out_dir``."""
    from dataclasses import asdict

    from inpars_core.negatives import mine_triples, read_triples, write_triples
    from inpars_core.runs import read_trec_run

    started = time.perf_counter()
    dataset = load_dataset(inputs.dataset)
    check_same_corpus(inputs.run, dataset, "--run")
    recorded: dict[str, Any] = dataset_record(dataset, run=input_artifact(inputs.run))
    if inputs.queries:
        check_same_corpus(inputs.queries, dataset, "--queries")
        recorded["queries"] = input_artifact(inputs.queries)
    else:
        recorded["split"] = inputs.split
    if inputs.query_ids is not None:
        recorded["query_ids"] = list(inputs.query_ids)
    texts, positives = _positives(inputs, dataset)
    teacher = fingerprint = None
    if config.teacher is not None:
        from inpars_core.training.teachers import teacher_fingerprint

        teacher = guard_teacher(config, texts, dataset)
        fingerprint = teacher_fingerprint(config.teacher)
        recorded["teacher"] = {"model": config.teacher, "fingerprint": fingerprint}
    triples, report = mine_triples(
        texts,
        positives,
        read_trec_run(open_input(inputs.run, "run", flag="--run")),
        sorted(dataset.corpus),
        config.negatives_config(),
        teacher,
        teacher_fingerprint=fingerprint,
    )
    counts: dict[str, Any] = asdict(report)
    counts.pop("teacher_fingerprint")
    counts.update(mined=len(triples), added=0)
    if inputs.add_triples:
        added = read_triples(open_input(inputs.add_triples, "triples", flag="--add-triples"))
        recorded["add_triples"] = input_artifact(inputs.add_triples)
        triples = triples + added
        counts["added"] = len(added)
    counts["triples"] = len(triples)  # what the file holds
    write_triples(triples, Path(out_dir) / TRIPLES_FILE, sidecar=False)
    return write_stage_meta(
        out_dir,
        stage=NAME,
        type=OUTPUT,
        config=config,
        inputs=recorded,
        counts=counts,
        started=started,
    )


def describe(artifact: Artifact) -> str:
    """The line the command prints."""
    counts = artifact.counts
    teacher = artifact.meta.get("config", {}).get("teacher")
    return (
        f"{counts['triples']} triples for {counts['queries']} queries -> {artifact.data} "
        f"(shortfall {counts['shortfall']}, queries without run {counts['queries_without_run']}"
        + (
            f", {counts['dropped_false_negatives']} false negatives dropped by {teacher}"
            if teacher
            else ""
        )
        + (f", {counts['added']} triples added" if counts.get("added") else "")
        + ")"
    )
