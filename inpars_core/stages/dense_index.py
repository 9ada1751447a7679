"""dense-index: a corpus encoded with a bi-encoder, for ``inpars retrieve --retriever dense``.

The embeddings are computed once per (model weights, corpus, max_length, similarity) and kept in
the cache (:func:`~inpars_core.dense.encoder.cached_dense_index`, under ``$INPARS_CACHE_DIR``);
the artifact folder holds a copy: ``embeddings.npy``, ``doc_ids.json`` and ``meta.json``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inpars_core.options import POSITIVE_INT, option, validate
from inpars_core.stages.common import Progress, dataset_record, load_dataset
from inpars_core.stages.contract import (
    Artifact,
    Note,
    input_artifact,
    open_input,
    write_stage_meta,
)

NAME = "dense-index"
HELP = "encode a corpus with a bi-encoder (cached)"
OUTPUT = "dense-index"
#: What identifies the embeddings, copied from the cached index into the artifact's meta.json
#: (what :class:`~inpars_core.dense.encoder.DenseIndex` reads).
INDEX_FIELDS = (
    "model",
    "model_fingerprint",
    "dataset",
    "corpus_hash",
    "documents",
    "dimension",
    "max_length",
    "similarity",
    "precision",
    "encode_s",
)


@dataclass(frozen=True)
class Config:
    """How documents are encoded."""

    max_length: int = option(256, "word-pieces per document (at least 8)", check=POSITIVE_INT)
    batch_size: int = option(64, "documents per forward pass", check=POSITIVE_INT)
    similarity: Literal["cosine", "dot"] = option(
        "cosine", "cosine (normalised embeddings) or dot product"
    )
    precision: Literal["fp32", "bf16", "auto"] = option(
        "fp32",
        "fp32, bf16 (autocast: ~2x on a CPU with AVX512-BF16 or AMX; SciFact nDCG@10 0.6462 vs "
        "0.6451) or auto (bf16 where the CPU has it)",
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class Inputs:
    """The corpus and the encoder."""

    dataset: str = option(help="BEIR name (scifact, ...) or a BEIR-layout folder")
    model: str = option(
        help="sentence-transformers id or folder, 'minilm', or the --out of 'inpars train-dense'"
    )


def run(
    config: Config, inputs: Inputs, out_dir: Path, progress: Progress | None = None
) -> Artifact:
    """Encode (or reuse the cached encoding of) the corpus and copy it into ``out_dir``."""
    from inpars_core.dense.encoder import DOC_IDS_FILE, EMBEDDINGS_FILE, cached_dense_index
    from inpars_core.reranking.stage import cache_dir

    started, now = time.perf_counter(), time.time()
    dataset = load_dataset(inputs.dataset)
    if Path(inputs.model).exists():
        open_input(inputs.model, "model", flag="--model")  # a folder, not a file
    index = cached_dense_index(
        dataset,
        inputs.model,
        cache_dir(),
        max_length=config.max_length,
        batch_size=config.batch_size,
        similarity=config.similarity,
        precision=config.precision,
    )
    for name in (EMBEDDINGS_FILE, DOC_IDS_FILE):
        shutil.copyfile(index.path / name, Path(out_dir) / name)
    reused = float(index.meta.get("finished_at") or 0.0) < now
    notes = [Note("reused-cache", "info", f"the cached encoding {index.path} was reused")]
    return write_stage_meta(
        out_dir,
        stage=NAME,
        type=OUTPUT,
        config=config,
        inputs=dataset_record(
            dataset,
            model=input_artifact(inputs.model),
        ),
        counts={"documents": len(index.doc_ids), "dimension": int(index.embeddings.shape[1])},
        timings={"encode_s": 0.0 if reused else index.encode_seconds},
        notes=notes if reused else [],
        started=started,
        extra={key: index.meta[key] for key in INDEX_FIELDS if key in index.meta}
        | {"cache": str(index.path)},
    )


def describe(artifact: Artifact) -> str:
    """The line the command prints."""
    how = "reused from the cache" if artifact.notes else f"encoded in {artifact.meta['encode_s']} s"
    return (
        f"dense index of {artifact.counts['documents']} documents ({artifact.meta['model']}, "
        f"max_length {artifact.meta['max_length']}, {how}) -> {artifact.path}"
    )
