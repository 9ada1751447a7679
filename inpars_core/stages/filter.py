"""filter: run the configured filters over synthetic queries, keep the queries every one keeps.

Every filter runs from the registry :data:`inpars_core.filtering.FILTERS`, as :data:`USES` binds
it to the settings of :class:`Config`: a filter runs when one of its settings is set (not None).
Every filter sees every query, so the counts say what fraction each one alone drops. The
artifact holds the kept queries (``queries.jsonl``), every filter's verdict on every query with
the measured value (``verdicts.jsonl``, kept queries too) and the verdicts that dropped each
dropped query (``dropped.jsonl``). The input is only read.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inpars_core.errors import ConfigError
from inpars_core.options import (
    FINITE,
    NON_NEGATIVE_FLOAT,
    POSITIVE_INT,
    PROBABILITY,
    Check,
    option,
    validate,
)
from inpars_core.runs import read_trec_run
from inpars_core.stages.common import Progress, dataset_record, load_dataset
from inpars_core.stages.contract import (
    Artifact,
    Note,
    check_same_corpus,
    input_artifact,
    open_input,
    read_artifact,
    write_stage_meta,
)

NAME = "filter"
HELP = (
    "filter synthetic queries (log-prob, reranker score, round trip, consistency, duplicates, "
    "copies)"
)
OUTPUT = "queries"
QUERIES_FILE = "queries.jsonl"
#: Every filter's verdict on every query (kept ones too), with the measured value.
VERDICTS_FILE = "verdicts.jsonl"
#: The verdicts that dropped each dropped query.
DROPPED_FILE = "dropped.jsonl"

logger = logging.getLogger(__name__)

FRACTION = Check("a number in (0, 1]", lambda v: PROBABILITY.ok(v) and v > 0, float)


@dataclass(frozen=True)
class Config:
    """Which filters run and their settings ('none' switches a setting off): the command
    line's flags and the experiment TOML's ``[filters]`` section."""

    top_fraction: float | None = option(
        None, "log-prob filter: keep the top fraction by mean log-prob (InPars-v1)", check=FRACTION
    )
    top_k: int | None = option(
        None, "log-prob filter: keep the top k by mean log-prob", check=POSITIVE_INT
    )
    round_trip_k: int | None = option(
        None, "keep a query when BM25 (--index) finds its source document in the top k",
        check=POSITIVE_INT,
    )  # fmt: skip
    near_duplicate_jaccard: float | None = option(
        0.9, "drop exact and near duplicates (word-set Jaccard at least this)", check=FRACTION
    )
    min_words: int | None = option(3, "drop queries with fewer words", check=POSITIVE_INT)
    max_words: int | None = option(40, "drop queries with more words", check=POSITIVE_INT)
    max_document_overlap: float | None = option(
        0.8,
        "drop when more of the query's 3-grams come from its source document (needs --dataset)",
        check=PROBABILITY,
    )
    example_copy_jaccard: float | None = option(
        0.8, "drop near copies of a few-shot example of the prompt", check=FRACTION
    )
    reranker_model: str | None = option(
        None,
        "reranker-score filter (InPars-v2): a cross-encoder (hub id or folder) scoring each "
        "(query, source document); needs --dataset and one of the --reranker-top-k, "
        "--reranker-top-fraction, --reranker-min-score",
    )
    reranker_top_k: int | None = option(
        None, "reranker-score filter: keep the top k", check=POSITIVE_INT
    )
    reranker_top_fraction: float | None = option(
        None, "reranker-score filter: keep the top fraction", check=FRACTION
    )
    reranker_min_score: float | None = option(
        None, "reranker-score filter: drop scores below this", check=FINITE
    )
    reranker_max_length: int = option(256, "reranker: tokens per pair", check=POSITIVE_INT)
    reranker_batch_size: int = option(32, "reranker: pairs per batch", check=POSITIVE_INT)
    reranker_device: str = option("auto", "reranker: auto, cpu, cuda, mps")
    consistency_model: str | None = option(
        None,
        "consistency filter (InPars-light): a cross-encoder trained on these queries (a folder, "
        "e.g. the model/ of 'inpars train') reranks each query's BM25 top --consistency-depth; "
        "needs --dataset, --index and --consistency-k",
    )
    consistency_k: int | None = option(
        None,
        "consistency filter: keep a query when the model ranks its source document in its top k",
        check=POSITIVE_INT,
    )
    consistency_depth: int = option(
        20, "consistency filter: BM25 documents the model reranks per query", check=POSITIVE_INT
    )
    consistency_max_length: int = option(
        256, "consistency filter: tokens per pair", check=POSITIVE_INT
    )
    bm25_k1: float = option(
        0.9, "BM25 k1 of the round trip (an experiment uses [bm25] k1)", check=NON_NEGATIVE_FLOAT
    )
    bm25_b: float = option(
        0.4, "BM25 b of the round trip (an experiment uses [bm25] b)", check=PROBABILITY
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.top_k is not None and self.top_fraction is not None:
            raise ConfigError(
                f"top_k and top_fraction: expected one of them (the log-prob filter keeps the "
                f"top k or the top fraction), found both ({self.top_k} and {self.top_fraction})"
            )
        if self.reranker_top_k is not None and self.reranker_top_fraction is not None:
            raise ConfigError(
                "reranker_top_k and reranker_top_fraction: expected one of them, found both"
            )
        selection = ("reranker_top_k", "reranker_top_fraction", "reranker_min_score")
        chosen = [name for name in selection if getattr(self, name) is not None]
        if self.reranker_model is None and chosen:
            raise ConfigError(
                f"{chosen[0]}: set, but no reranker_model scores the queries. Fix: name a "
                "cross-encoder with reranker_model (--reranker-model), or drop the setting"
            )
        if self.reranker_model is not None and not chosen:
            raise ConfigError(
                f"reranker_model {self.reranker_model!r}: expected one of "
                f"{', '.join(selection)} saying which queries it keeps, found none. Fix: e.g. "
                "reranker_top_fraction = 0.5 (--reranker-top-fraction 0.5)"
            )
        if self.consistency_model is not None and self.consistency_k is None:
            raise ConfigError(
                f"consistency_model {self.consistency_model!r}: expected consistency_k saying "
                "which queries it keeps, found none. Fix: e.g. consistency_k = 3 "
                "(--consistency-k 3)"
            )
        if (
            self.min_words is not None
            and self.max_words is not None
            and self.max_words < self.min_words
        ):
            raise ConfigError(
                f"max_words: expected at least min_words ({self.min_words}), found {self.max_words}"
            )


@dataclass(frozen=True)
class Inputs:
    """The queries, and what some filters read besides."""

    queries: str = option(help="the --out of 'inpars generate' (or a queries JSONL)")
    dataset: str | None = option(
        None, "BEIR name or folder: the source documents (document-copy and reranker filters)"
    )
    index: str | None = option(None, "the --out of 'inpars index', for --round-trip-k")
    run: str | None = option(
        None,
        "BM25 run of these queries (the --out of 'inpars retrieve --queries'): "
        "--consistency-k reranks its lists instead of searching --index",
    )


@dataclass(frozen=True)
class FilterUse:
    """How settings of :class:`Config` run one registered filter: ``params`` maps the filter's
    keyword arguments to Config fields; ``needs`` names what it takes after the queries
    (``examples``, ``documents``, ``ranks`` or ``scores``); ``unset`` gives a keyword's value
    when its field is None but the filter runs."""

    name: str
    params: Mapping[str, str]
    needs: str | None = None
    unset: Mapping[str, Any] = field(default_factory=dict)

    def enabled(self, config: Config) -> bool:
        """Whether one of the filter's settings is set."""
        return any(getattr(config, name) is not None for name in self.params.values())

    def arguments(self, config: Config) -> dict[str, Any]:
        """The filter's keyword arguments."""
        values = {key: getattr(config, name) for key, name in self.params.items()}
        return {
            key: self.unset[key] if value is None and key in self.unset else value
            for key, value in values.items()
            if value is not None or key in self.unset
        }


#: The filters, in the order they run (the order of each query's verdicts).
USES: tuple[FilterUse, ...] = (
    FilterUse(
        "length",
        {"min_words": "min_words", "max_words": "max_words"},
        unset={"min_words": 1, "max_words": 10_000},
    ),
    FilterUse("duplicates", {"near_jaccard": "near_duplicate_jaccard"}),
    FilterUse("example-copy", {"near_jaccard": "example_copy_jaccard"}, needs="examples"),
    FilterUse("document-copy", {"max_overlap": "max_document_overlap"}, needs="documents"),
    FilterUse("round-trip", {"k": "round_trip_k"}, needs="ranks"),
    FilterUse("logprob", {"top_k": "top_k", "top_fraction": "top_fraction"}),
    FilterUse(
        "reranker",
        {
            "top_k": "reranker_top_k",
            "top_fraction": "reranker_top_fraction",
            "min_score": "reranker_min_score",
        },
        needs="scores",
    ),
    FilterUse("consistency", {"k": "consistency_k"}, needs="model_ranks"),
)


def source_ranks(queries: Sequence[Any], retriever: Any, k: int) -> dict[str, int | None]:
    """1-based rank of each query's source document in the retriever's top ``k`` (or None)."""
    from inpars_core.records import Query

    run = retriever.retrieve({q.query_id: Query(q.query_id, q.text) for q in queries if q.text}, k)
    ranks: dict[str, int | None] = {}
    for query in queries:
        ranking = [d.doc_id for d in run.get(query.query_id, [])]
        ranks[query.query_id] = ranking.index(query.doc_id) + 1 if query.doc_id in ranking else None
    return ranks


def consistency_ranks(
    queries: Sequence[Any], retriever: Any, documents: Mapping[str, Any], config: Config
) -> tuple[dict[str, int | None], str]:
    """1-based rank of each query's source document when the consistency model reranks the
    query's BM25 top ``consistency_depth`` (None when BM25 did not retrieve it there), and the
    model's fingerprint. Ties in score are broken by doc id, as in every run."""
    from inpars_core.records import Query
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs

    assert config.consistency_model is not None
    asked = {q.query_id: Query(q.query_id, q.text) for q in queries if q.text}
    run = retriever.retrieve(asked, config.consistency_depth)
    pairs: list[tuple[str, str]] = []
    owners: list[tuple[str, str]] = []
    for query in queries:
        for doc in run.get(query.query_id, [])[: config.consistency_depth]:
            if doc.doc_id in documents:
                pairs.append((query.text, documents[doc.doc_id].contents))
                owners.append((query.query_id, doc.doc_id))
    scoring = ScoringConfig(batch_size=config.reranker_batch_size, device=config.reranker_device)
    reranker = load_reranker(config.consistency_model, scoring)
    values = score_pairs(
        reranker, pairs, EncodingConfig(max_length=config.consistency_max_length), scoring
    )
    scored: dict[str, list[tuple[float, str]]] = {}
    for (query_id, doc_id), value in zip(owners, values, strict=True):
        scored.setdefault(query_id, []).append((value, doc_id))
    ranks: dict[str, int | None] = {}
    for query in queries:
        order = [d for _, d in sorted(scored.get(query.query_id, []), key=lambda s: (-s[0], s[1]))]
        ranks[query.query_id] = order.index(query.doc_id) + 1 if query.doc_id in order else None
    return ranks, reranker.fingerprint


def reranker_scores(
    queries: Sequence[Any], documents: Mapping[str, Any], config: Config
) -> tuple[dict[str, float], str]:
    """The cross-encoder's score of each (query, source document) and the model's fingerprint
    (through the scoring the reranking stage uses); a query whose document is missing gets no
    score (the filter drops it)."""
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs

    assert config.reranker_model is not None
    scoring = ScoringConfig(batch_size=config.reranker_batch_size, device=config.reranker_device)
    reranker = load_reranker(config.reranker_model, scoring)
    scored = [q for q in queries if q.doc_id in documents]
    values = score_pairs(
        reranker,
        [(q.text, documents[q.doc_id].contents) for q in scored],
        EncodingConfig(max_length=config.reranker_max_length),
        scoring,
    )
    return {q.query_id: s for q, s in zip(scored, values, strict=True)}, reranker.fingerprint


def example_queries(queries_input: str | Path) -> list[str]:
    """The few-shot example queries of the prompt the queries were written from: the input
    artifact's ``prompt.json`` (a generate artifact) or its meta (a filter artifact); none for
    a plain JSONL file."""
    from inpars_core.stages.generate import PROMPT_FILE

    folder = Path(queries_input)
    artifact = read_artifact(folder) if folder.is_dir() else None
    if artifact is None:
        return []
    if artifact.file(PROMPT_FILE).is_file():
        record = json.loads(artifact.file(PROMPT_FILE).read_text(encoding="utf-8"))
        return list(record.get("example_queries") or [])
    return list(artifact.meta.get("inputs", {}).get("example_queries") or [])


def verdict_rows(queries: Sequence[Any], verdicts: Sequence[Sequence[Any]]) -> list[dict]:
    """One JSON-able row per query: its text, source document, whether every filter kept it,
    and each filter's verdict with the measured value (``verdicts.jsonl``)."""
    rows = []
    for position, query in enumerate(queries):
        mine = [asdict(v[position]) for v in verdicts]
        rows.append(
            {
                "query_id": query.query_id,
                "doc_id": query.doc_id,
                "text": query.text,
                "kept": all(v["kept"] for v in mine),
                "verdicts": mine,
            }
        )
    return rows


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    from inpars_core.artifacts import atomic_text

    with atomic_text(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def run(
    config: Config, inputs: Inputs, out_dir: Path, progress: Progress | None = None
) -> Artifact:
    """Filter ``inputs.queries`` into ``out_dir`` (``queries.jsonl``, ``verdicts.jsonl``,
    ``dropped.jsonl``, ``meta.json``)."""
    from inpars_core import filtering
    from inpars_core.generation.stage import read_queries, write_queries

    started = time.perf_counter()
    out_dir = Path(out_dir)
    queries = read_queries(open_input(inputs.queries, "queries", flag="--queries"))
    recorded: dict[str, Any] = {"queries": input_artifact(inputs.queries)}
    wanted = [use for use in USES if use.enabled(config)]
    needs = {use.needs for use in wanted}
    dataset = load_dataset(inputs.dataset) if inputs.dataset else None
    if dataset is not None:
        recorded.update(dataset_record(dataset))
        check_same_corpus(inputs.queries, dataset, "--queries")
        if inputs.index:
            check_same_corpus(inputs.index, dataset, "--index")
    context: dict[str, Any] = {"documents": dataset.corpus if dataset is not None else None}
    if "examples" in needs:
        context["examples"] = example_queries(inputs.queries)
        recorded["example_queries"] = context["examples"]
    if "ranks" in needs:
        retriever = _bm25(
            config, inputs, f"--round-trip-k {config.round_trip_k}", "--round-trip-k none"
        )
        context["ranks"] = source_ranks(queries, retriever, config.round_trip_k)
        recorded["index"] = input_artifact(str(inputs.index))
    if "model_ranks" in needs:
        flag = f"--consistency-k {config.consistency_k}"
        if config.consistency_model is None:
            raise ConfigError(
                f"{flag}: expected --consistency-model (a cross-encoder trained on these "
                "queries), found none. Fix: add --consistency-model MODEL_DIR, or "
                "--consistency-k none"
            )
        if dataset is None:
            raise ConfigError(
                f"{flag}: expected --dataset (the model reranks each query's BM25 list of its "
                "documents), found none. Fix: add --dataset"
            )
        if inputs.run:  # the lists BM25 already gave (no JVM: e.g. on a GPU machine)
            check_same_corpus(inputs.run, dataset, "--run")
            retriever: Any = RunLists(read_trec_run(open_input(inputs.run, "run", flag="--run")))
            recorded["run"] = input_artifact(str(inputs.run))
        else:
            retriever = _bm25(config, inputs, flag, "--consistency-k none")
            recorded["index"] = input_artifact(str(inputs.index))
        context["model_ranks"], recorded["consistency_fingerprint"] = consistency_ranks(
            queries, retriever, dataset.corpus, config
        )
        recorded["consistency_model"] = input_artifact(config.consistency_model)
    if "scores" in needs:
        if dataset is None:
            raise ConfigError(
                f"--reranker-model {config.reranker_model}: expected --dataset (the reranker "
                "scores each query against its source document), found none. Fix: add --dataset"
            )
        context["scores"], recorded["reranker_fingerprint"] = reranker_scores(
            queries, dataset.corpus, config
        )
    notes: list[Note] = []
    verdicts, ran = [], []
    for use in wanted:
        extra = () if use.needs is None else (context[use.needs],)
        if use.needs in ("documents", "examples") and not extra[0]:
            if use.needs == "documents":
                text, level = (
                    f"{use.name}: skipped (no --dataset to read documents from)",
                    "warning",
                )
            else:
                text, level = f"{use.name}: skipped (the prompt had no few-shot examples)", "info"
            notes.append(Note("filter-skipped", level, text))
            continue
        verdicts.append(filtering.get_filter(use.name)(queries, *extra, **use.arguments(config)))
        ran.append(use.name)
    kept, dropped = filtering.combine(queries, verdicts)
    write_queries(kept, out_dir / QUERIES_FILE)
    _write_jsonl(out_dir / VERDICTS_FILE, verdict_rows(queries, verdicts))
    _write_jsonl(
        out_dir / DROPPED_FILE,
        [
            {"query_id": query_id, "verdicts": [asdict(v) for v in reasons]}
            for query_id, reasons in dropped.items()
        ],
    )
    per_filter = {name: sum(not v.kept for v in vs) for name, vs in zip(ran, verdicts, strict=True)}
    for note in notes:
        logger.log(logging.WARNING if note.level == "warning" else logging.INFO, "%s", note.text)
    return write_stage_meta(
        out_dir,
        stage=NAME,
        type=OUTPUT,
        config=config,
        inputs=recorded,
        counts={"queries": len(queries), "kept": len(kept), "dropped_by": per_filter},
        notes=notes,
        started=started,
    )


@dataclass(frozen=True)
class RunLists:
    """A BM25 run standing in for a retriever: each query's list as the run ranked it."""

    run: Mapping[str, Sequence[Any]]

    def retrieve(self, queries: Mapping[str, Any], k: int) -> dict[str, list[Any]]:
        """The top ``k`` of each query's list; refused when the run lacks a query."""
        missing = sorted(set(queries) - set(self.run))
        if missing:
            raise ConfigError(
                f"--run: expected a BM25 list for every query filtered, found none for "
                f"{len(missing)} (e.g. {', '.join(missing[:3])}). Fix: give the run of these "
                "queries ('inpars retrieve --queries' on the same file), or --index instead"
            )
        return {query_id: list(self.run[query_id][:k]) for query_id in queries}


def _bm25(config: Config, inputs: Inputs, flag: str, off: str) -> Any:
    """The BM25 retriever over ``--index`` a filter searches with (refused without one)."""
    if not inputs.index:
        raise ConfigError(
            f"{flag}: expected --index (a BM25 index of the dataset, the --out of 'inpars "
            f"index'), found none. Fix: add --index, or {off}"
        )
    from inpars_core.retrieval.bm25 import BM25Config, BM25Retriever

    return BM25Retriever(
        open_input(inputs.index, "index", flag="--index"),
        BM25Config(k1=config.bm25_k1, b=config.bm25_b),
    )


def describe(artifact: Artifact) -> str:
    """The line the command prints: what each filter alone drops, and what is kept."""
    total = artifact.counts["queries"]
    drops = ", ".join(
        f"{name} {count} ({100 * count / max(1, total):.1f}%)"
        for name, count in artifact.counts["dropped_by"].items()
    )
    return f"kept {artifact.counts['kept']} of {total} queries -> {artifact.data}" + (
        f"; each filter alone drops: {drops}" if drops else ""
    )
