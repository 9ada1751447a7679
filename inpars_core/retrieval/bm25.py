"""BM25 with Lucene through pyserini: index a dataset, retrieve top-k for a split."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from inpars_core.artifacts import META_FILE, StageMeta, atomic_path, finish_meta, read_meta
from inpars_core.datasets.beir import Dataset
from inpars_core.errors import ConfigError, InputFormatError
from inpars_core.records import Query, Run, ScoredDoc
from inpars_core.retrieval.base import register_retriever
from inpars_core.runs import sort_ranking

logger = logging.getLogger(__name__)

IndexFields = Literal["flat", "multifield"]

#: Anserini collection class for each field layout (as in the BEIR regressions).
COLLECTIONS: dict[str, str] = {
    "flat": "BeirFlatCollection",
    "multifield": "BeirMultifieldCollection",
}
#: Field weights searched for each layout.
SEARCH_FIELDS: dict[str, dict[str, float]] = {
    "flat": {},
    "multifield": {"contents": 1.0, "title": 1.0},
}
#: Extra indexing arguments: multifield indexes title as its own analysed field.
INDEX_EXTRA_ARGS: dict[str, list[str]] = {"flat": [], "multifield": ["-fields", "title"]}
LUCENE_SUBDIR = "lucene"


@dataclass(frozen=True)
class IndexConfig:
    """How to build a Lucene index."""

    fields: IndexFields = "flat"
    threads: int = 2

    def __post_init__(self) -> None:
        if self.fields not in COLLECTIONS:
            raise ConfigError(
                f"index fields must be one of {list(COLLECTIONS)}, got {self.fields!r}"
            )


@dataclass(frozen=True)
class BM25Config:
    """BM25 retrieval settings (defaults: the BEIR regressions of Anserini)."""

    k1: float = 0.9
    b: float = 0.4
    threads: int = 2


def _write_corpus(dataset: Dataset, folder: Path) -> None:
    folder.mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc in dataset.corpus.values():
            row = {"_id": doc.doc_id, "title": doc.title, "text": doc.text}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def build_index(dataset: Dataset, out_dir: Path, config: IndexConfig = IndexConfig()) -> Path:
    """Index ``dataset`` into ``out_dir`` (``lucene/`` + ``meta.json``), atomically."""
    from inpars_core.retrieval.lucene_runtime import autoclass

    out_dir = Path(out_dir)
    meta = StageMeta(
        stage="index",
        config=asdict(config),
        inputs={"dataset": dataset.name, "dataset_path": str(dataset.path)},
        counts={"documents": len(dataset.corpus)},
    )
    index_collection = autoclass("io.anserini.index.IndexCollection")
    with atomic_path(out_dir) as staged:
        staged.mkdir()
        _write_corpus(dataset, staged / "input")
        started = time.perf_counter()
        index_collection.main(
            [
                "-collection",
                COLLECTIONS[config.fields],
                "-input",
                str(staged / "input"),
                "-index",
                str(staged / LUCENE_SUBDIR),
                "-generator",
                "DefaultLuceneDocumentGenerator",
                "-threads",
                str(config.threads),
                "-storePositions",
                "-storeDocvectors",
                "-storeRaw",
                *INDEX_EXTRA_ARGS[config.fields],
            ]
        )
        meta.timings["index_s"] = round(time.perf_counter() - started, 3)
        for leftover in (staged / "input").iterdir():
            leftover.unlink()
        (staged / "input").rmdir()
        finish_meta(meta, staged / META_FILE)
    logger.info("indexed %d documents in %.1f s", len(dataset.corpus), meta.timings["index_s"])
    return out_dir


def index_fields(index_dir: Path) -> str:
    """The field layout an index was built with, from its meta.json."""
    meta = read_meta(index_dir)
    if meta is None or not (Path(index_dir) / LUCENE_SUBDIR).is_dir():
        raise InputFormatError(
            index_dir,
            "is not a complete InPars index (no meta.json or lucene/)",
            fix="build it with 'inpars index --dataset ... --out INDEX_DIR'",
        )
    return meta["config"]["fields"]


@register_retriever("bm25")
class BM25Retriever:
    """BM25 over a Lucene index built by :func:`build_index`, searched with Anserini."""

    def __init__(self, index_dir: Path, config: BM25Config = BM25Config()) -> None:
        from inpars_core.retrieval.lucene_runtime import LuceneBM25

        self.index_dir = Path(index_dir)
        self.config = config
        self.fields = index_fields(self.index_dir)
        self._searcher = LuceneBM25(self.index_dir / LUCENE_SUBDIR, config.k1, config.b)

    def retrieve(self, queries: Mapping[str, Query], k: int = 1000) -> Run:
        """Top ``k`` per query; ties broken by doc id; queries keep their input order."""
        query_ids = list(queries)
        hits = self._searcher.batch_search(
            [queries[q].text for q in query_ids],
            query_ids,
            k=k,
            threads=self.config.threads,
            fields=SEARCH_FIELDS[self.fields],
        )
        return {
            q: sort_ranking(
                ScoredDoc(q, doc_id, score)
                for doc_id, score in zip(*_as_lists(hits.get(q)), strict=True)
            )
            for q in query_ids
        }


def _as_lists(hit: tuple | None) -> tuple[list[str], list[float]]:
    if hit is None:
        return [], []
    doc_ids, scores = hit
    return doc_ids, scores.tolist()
