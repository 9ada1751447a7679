"""index: a Lucene index of a dataset's corpus (flat or title/contents fields)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inpars_core.options import POSITIVE_INT, option, validate
from inpars_core.stages.common import Progress, dataset_record, load_dataset
from inpars_core.stages.contract import Artifact, write_stage_meta

NAME = "index"
HELP = "build a Lucene index of a dataset"
OUTPUT = "index"


@dataclass(frozen=True)
class Config:
    """How the corpus is indexed."""

    fields: Literal["flat", "multifield"] = option(
        "flat", "flat: title+text in one field; multifield: title as its own field"
    )
    threads: int = option(2, "indexing threads", check=POSITIVE_INT)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class Inputs:
    """What is indexed."""

    dataset: str = option(help="BEIR name (scifact, ...) or a BEIR-layout folder")


def run(
    config: Config, inputs: Inputs, out_dir: Path, progress: Progress | None = None
) -> Artifact:
    """Index ``inputs.dataset`` into ``out_dir`` (``lucene/`` + ``meta.json``)."""
    from inpars_core.retrieval.bm25 import IndexConfig, build_index

    started = time.perf_counter()
    dataset = load_dataset(inputs.dataset)
    build_index(dataset, Path(out_dir), IndexConfig(fields=config.fields, threads=config.threads))
    return write_stage_meta(
        out_dir,
        stage=NAME,
        type=OUTPUT,
        config=config,
        inputs=dataset_record(dataset),
        counts={"documents": len(dataset.corpus)},
        started=started,
    )


def describe(artifact: Artifact) -> str:
    """The line the command prints."""
    return f"index of {artifact.counts['documents']} documents written to {artifact.path}"
