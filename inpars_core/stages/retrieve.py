"""retrieve: BM25 top-k of a split's queries or of a synthetic queries file, as a TREC run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from inpars_core.errors import ConfigError
from inpars_core.options import NON_NEGATIVE_FLOAT, POSITIVE_INT, PROBABILITY, option, validate
from inpars_core.stages.common import Progress, first_queries, load_dataset, synthetic_queries
from inpars_core.stages.contract import Artifact, input_artifact, open_input, write_stage_meta

NAME = "retrieve"
HELP = "BM25 top-k for a split or a synthetic queries file, as a TREC run"
OUTPUT = "run"
RUN_FILE = "run.trec"


@dataclass(frozen=True)
class Config:
    """BM25 settings (defaults: the BEIR regressions of Anserini) and the depth."""

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
    index: str = option(help="the --out folder of 'inpars index'")
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
    from inpars_core.retrieval.bm25 import BM25Config, BM25Retriever
    from inpars_core.runs import run_size, write_trec_run

    started = time.perf_counter()
    dataset = load_dataset(inputs.dataset)
    recorded: dict[str, object] = {
        "dataset": dataset.name,
        "dataset_path": str(dataset.path),
        "index": input_artifact(inputs.index),
    }
    if inputs.queries:
        queries = synthetic_queries(open_input(inputs.queries, "queries", flag="--queries"))
        recorded["queries"] = input_artifact(inputs.queries)
        tag = f"bm25-{dataset.name}-synthetic"
    else:
        split = inputs.split or "test"
        queries = first_queries(dataset, split, inputs.max_queries)
        recorded.update(split=split, max_queries=inputs.max_queries)
        tag = f"bm25-{dataset.name}"
    retriever = BM25Retriever(
        open_input(inputs.index, "index", flag="--index"),
        BM25Config(k1=config.k1, b=config.b, threads=config.threads),
    )
    searched = time.perf_counter()
    result = retriever.retrieve(queries, config.k)
    seconds = round(time.perf_counter() - searched, 3)
    write_trec_run(result, Path(out_dir) / RUN_FILE, tag=tag)
    return write_stage_meta(
        out_dir,
        stage=NAME,
        type=OUTPUT,
        config={"retriever": "bm25", **vars(config)},
        inputs=recorded,
        counts={"queries": len(result), "lines": run_size(result)},
        timings={"retrieve_s": seconds},
        started=started,
    )


def describe(artifact: Artifact) -> str:
    """The line the command prints."""
    return (
        f"{artifact.counts['lines']} lines for {artifact.counts['queries']} queries written to "
        f"{artifact.data} in {artifact.meta['timings']['retrieve_s']:.1f} s"
    )
