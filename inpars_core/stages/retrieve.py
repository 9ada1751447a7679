"""retrieve: top-k of a split's queries or of a synthetic queries file, as a TREC run.

The backend is a retriever of the :data:`~inpars_core.retrieval.base.RETRIEVERS` registry:
``bm25`` searches the Lucene index of ``inpars index``; ``dense`` searches, exactly, the
embeddings of ``inpars dense-index`` (queries encoded with the index's model).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from inpars_core.errors import ConfigError
from inpars_core.options import NON_NEGATIVE_FLOAT, POSITIVE_INT, PROBABILITY, option, validate
from inpars_core.stages.common import (
    Progress,
    dataset_record,
    first_queries,
    load_dataset,
    synthetic_queries,
)
from inpars_core.stages.contract import (
    Artifact,
    check_same_corpus,
    input_artifact,
    open_input,
    write_stage_meta,
)

NAME = "retrieve"
HELP = "BM25 (or dense) top-k for a split or a synthetic queries file, as a TREC run"
OUTPUT = "run"
RUN_FILE = "run.trec"


def retriever_names() -> tuple[str, ...]:
    """The registered retrieval backends (their modules imported: they register on import)."""
    import inpars_core.dense.search  # registers "dense"
    import inpars_core.retrieval.bm25  # noqa: F401  registers "bm25"
    from inpars_core.retrieval.base import RETRIEVERS

    return tuple(sorted(RETRIEVERS))


#: Artifact type of the --index each backend reads.
INDEX_TYPES = {"bm25": "index", "dense": "dense-index"}


@dataclass(frozen=True)
class Config:
    """The backend, the depth, and the BM25 settings (defaults: the BEIR regressions of
    Anserini; a dense retriever ignores them)."""

    retriever: str = option(
        "bm25",
        "bm25: the Lucene --index of 'inpars index'; dense: the --index of 'inpars dense-index'",
        choices=retriever_names,
    )
    k: int = option(1000, "documents retrieved per query", check=POSITIVE_INT)
    k1: float = option(0.9, "BM25 k1", check=NON_NEGATIVE_FLOAT)
    b: float = option(0.4, "BM25 b", check=PROBABILITY)
    threads: int = option(2, "search threads", check=POSITIVE_INT)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class Inputs:
    """The index and the queries: a qrels split of the dataset, or a queries file/artifact."""

    dataset: str = option(help="BEIR name (scifact, ...) or a BEIR-layout folder")
    index: str = option(help="the --out folder of 'inpars index' (or 'inpars dense-index')")
    split: str | None = option(None, "qrels split whose queries are retrieved (default test)")
    queries: str | None = option(
        None, "synthetic queries: the --out of 'inpars generate' or 'inpars filter' (or a JSONL)"
    )
    max_queries: int | None = option(
        None, "only the first N queries of --split", check=POSITIVE_INT
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.split and self.queries:
            raise ConfigError("--split and --queries: give one of them (the queries to retrieve)")
        if self.queries and self.max_queries is not None:
            raise ConfigError(
                f"expected --max-queries only with --split, found it with --queries "
                f"{self.queries} (a queries file is retrieved whole). Fix: drop --max-queries, "
                "or keep fewer queries with 'inpars filter --top-k N'"
            )


def run(
    config: Config, inputs: Inputs, out_dir: Path, progress: Progress | None = None
) -> Artifact:
    """Retrieve and write ``run.trec`` into ``out_dir``."""
    from inpars_core.runs import run_size, write_trec_run

    started = time.perf_counter()
    dataset = load_dataset(inputs.dataset)
    check_same_corpus(inputs.index, dataset, "--index")
    recorded = dataset_record(dataset, index=input_artifact(inputs.index))
    if inputs.queries:
        check_same_corpus(inputs.queries, dataset, "--queries")
        queries = synthetic_queries(open_input(inputs.queries, "queries", flag="--queries"))
        recorded["queries"] = input_artifact(inputs.queries)
        tag = f"{config.retriever}-{dataset.name}-synthetic"
    else:
        split = inputs.split or "test"
        queries = first_queries(dataset, split, inputs.max_queries)
        recorded.update(split=split, max_queries=inputs.max_queries)
        tag = f"{config.retriever}-{dataset.name}"
    retriever = _retriever(config, inputs.index)
    searched = time.perf_counter()
    result = retriever.retrieve(queries, config.k)
    seconds = round(time.perf_counter() - searched, 3)
    write_trec_run(result, Path(out_dir) / RUN_FILE, tag=tag)
    return write_stage_meta(
        out_dir,
        stage=NAME,
        type=OUTPUT,
        config=config,
        inputs=recorded,
        counts={"queries": len(result), "lines": run_size(result)},
        timings={"retrieve_s": seconds},
        started=started,
    )


def _retriever(config: Config, index: str):
    """The configured backend over ``index`` (checked to be the artifact type it reads)."""
    from inpars_core.retrieval.base import get_retriever

    data = open_input(index, INDEX_TYPES.get(config.retriever, "index"), flag="--index")
    if config.retriever == "bm25":
        from inpars_core.retrieval.bm25 import BM25Config

        settings = BM25Config(k1=config.k1, b=config.b, threads=config.threads)
        return get_retriever("bm25", index_dir=data, config=settings)
    folder = data.parent if data.is_file() else data  # the index folder, not its embeddings
    return get_retriever(config.retriever, index_dir=folder)


def describe(artifact: Artifact) -> str:
    """The line the command prints."""
    return (
        f"{artifact.counts['lines']} lines for {artifact.counts['queries']} queries written to "
        f"{artifact.data} in {artifact.meta['timings']['retrieve_s']:.1f} s"
    )
