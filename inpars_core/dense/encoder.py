"""Encode a corpus with a sentence-transformers model into a cached ``DenseIndex`` artifact.

The model's own modules decide pooling and normalisation (``SentenceTransformer(path)`` reads
``modules.json``; a plain Hugging Face model gets mean pooling). A document is encoded as
``Document.contents`` (title + " " + text), truncated to ``max_length`` word-pieces. With the
``cosine`` similarity the stored embeddings (and the query embeddings at search time) are
L2-normalised, so cosine is an inner product; ``dot`` keeps the model's raw output.

An index folder, written atomically (``meta.json`` present means complete)::

    <out_dir>/embeddings.npy   float32, one row per document, in doc_ids order
    <out_dir>/doc_ids.json     the document ids, in row order
    <out_dir>/meta.json        model, model fingerprint, dataset, documents, max_length,
                               similarity, encode seconds (and the usual stage fields)

:func:`cached_dense_index` keys such a folder by the model fingerprint, the dataset name, a hash
of the corpus and ``max_length`` (and the similarity), so a corpus is encoded once per model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from inpars_core import models
from inpars_core.artifacts import META_FILE, StageMeta, atomic_path, finish_meta, stable_hash
from inpars_core.datasets.beir import Dataset
from inpars_core.errors import ConfigError, DependencyError, InputFormatError
from inpars_core.models import resolve_model_folder
from inpars_core.records import Document

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

Similarity = Literal["cosine", "dot"]
SIMILARITIES: tuple[str, ...] = ("cosine", "dot")
Precision = Literal["auto", "fp32", "bf16"]
#: ``auto``: bf16 autocast on a CPU with native bf16 (AVX512-BF16 or AMX), else fp32.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
#: CPU flags (``/proc/cpuinfo``) under which bf16 autocast is faster than fp32: on a 2-core Xeon
#: with AMX, ~2x for all-MiniLM-L6-v2 at 256 word-pieces (benchmarks/bench_dense.py).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")

EMBEDDINGS_FILE = "embeddings.npy"
DOC_IDS_FILE = "doc_ids.json"
#: Sub-folder of a cache root that holds dense indexes, one per key.
CACHE_STAGE = "dense_index"


def check_similarity(similarity: str) -> None:
    """Raise ConfigError unless ``similarity`` is ``cosine`` or ``dot``."""
    if similarity not in SIMILARITIES:
        raise ConfigError(f"similarity must be one of {list(SIMILARITIES)}, got {similarity!r}")


def check_precision(precision: str) -> None:
    """Raise ConfigError unless ``precision`` is ``auto``, ``fp32`` or ``bf16``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16), from /proc/cpuinfo
    (False where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "").split()
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve_precision(precision: str, encoder: Any | None = None) -> str:
    """``fp32`` or ``bf16``: ``auto`` is bf16 on a CPU encoder where the CPU has native bf16, and
    fp32 otherwise (GPU encoders keep fp32 under ``auto``). Without ``encoder``, the device is
    the one sentence-transformers picks for a new encoder (a GPU when there is one)."""
    check_precision(precision)
    if precision != "auto":
        return precision
    if encoder is not None:
        device = str(getattr(encoder, "device", "cpu"))
    else:  # the device sentence-transformers would pick for a new encoder
        import torch

        mps = getattr(torch.backends, "mps", None)
        accelerated = torch.cuda.is_available() or bool(mps and mps.is_available())
        device = "accelerator" if accelerated else "cpu"
    return "bf16" if device.startswith("cpu") and cpu_has_native_bf16() else "fp32"


def _autocast(encoder: Any, precision: str) -> Any:
    """A context in which the encoder runs at ``precision`` (fp32 or bf16 autocast)."""
    import contextlib

    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    device = str(getattr(encoder, "device", "cpu")).split(":")[0]
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


def _check_max_length(max_length: int) -> None:
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 8:
        raise ConfigError(f"max_length must be an integer >= 8, got {max_length!r}")


def model_folder(model: str) -> Path:
    """The local folder of ``model`` (``minilm``, a folder, or a hub id already downloaded or
    downloadable)."""
    path = resolve_model_folder(model)
    if Path(path).is_dir():
        return Path(path)
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - comes with sentence-transformers
        raise DependencyError(
            "hub models need huggingface_hub: pip install huggingface_hub"
        ) from exc
    try:
        return Path(snapshot_download(path))
    except Exception as exc:  # the hub client raises many kinds; name the model and the fix
        raise ConfigError(
            f"model {model!r} is neither a local folder nor a reachable hub id ({exc}); "
            "give the path of a sentence-transformers folder or 'minilm'"
        ) from None


def model_fingerprint(model: str) -> str:
    """The fingerprint of ``model``: :func:`inpars_core.models.model_fingerprint` (sha256 over
    its weight files, module configs and tokenizer files by relative path, computed once per
    process for unchanged files). Equal fingerprints encode alike."""
    return models.model_fingerprint(model)


def corpus_hash(corpus: Mapping[str, Document]) -> str:
    """sha256 (hex) over the documents in order (id, title, text): the corpus as encoded."""
    digest = hashlib.sha256()
    for doc in corpus.values():
        for part in (doc.doc_id, doc.title, doc.text):
            digest.update(part.encode("utf-8") + b"\0")
    return digest.hexdigest()


def load_encoder(model: str, max_length: int = 256, device: str | None = None) -> Any:
    """A ``SentenceTransformer`` for ``model`` (``minilm``, a folder or a hub id) truncating at
    ``max_length`` word-pieces; pooling and normalisation as the model's modules say."""
    _check_max_length(max_length)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise DependencyError(
            "dense retrieval needs sentence-transformers: pip install sentence-transformers"
        ) from exc
    encoder = SentenceTransformer(resolve_model_folder(model), device=device)
    network = getattr(encoder, "transformers_model", None)
    limit = getattr(getattr(network, "config", None), "max_position_embeddings", None)
    if isinstance(limit, int) and max_length > limit:
        raise ConfigError(
            f"max_length {max_length} exceeds what model {model!r} can encode ({limit} positions)"
        )
    encoder.max_seq_length = max_length
    return encoder


def _normalise(embeddings: np.ndarray) -> np.ndarray:
    import numpy as np

    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)


def _encode(
    encoder: Any,
    texts: Sequence[str],
    kind: str,
    batch_size: int,
    similarity: str,
    precision: str = "fp32",
) -> np.ndarray:
    """Embed ``texts``, each distinct text once (then copied to every row that holds it), so
    identical texts get identical embeddings by construction, whatever batch position or
    padding the encoder would otherwise give them. sentence-transformers already encodes in
    batches sorted by text length (padding only to the batch's longest), so it is called once
    with every distinct text; ``precision`` bf16 runs it under bf16 autocast."""
    import numpy as np

    check_similarity(similarity)
    if not texts:
        dimension = encoder.get_sentence_embedding_dimension()
        return np.zeros((0, dimension or 0), dtype=np.float32)
    row_of: dict[str, int] = {}
    rows = np.fromiter(
        (row_of.setdefault(text, len(row_of)) for text in texts), dtype=np.int64, count=len(texts)
    )
    method = encoder.encode_query if kind == "query" else encoder.encode_document
    with _autocast(encoder, resolve_precision(precision, encoder)):
        embeddings = method(
            list(row_of), batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True
        )
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    if len(row_of) < len(texts):
        embeddings = np.ascontiguousarray(embeddings[rows])
    return _normalise(embeddings) if similarity == "cosine" else embeddings


def encode_queries(
    encoder: Any, texts: Sequence[str], batch_size: int = 64, similarity: str = "cosine"
) -> np.ndarray:
    """Query embeddings (float32, one row per text); L2-normalised for ``cosine``. The model's
    ``query`` prompt, if it defines one, is applied. Equal texts are encoded once and get
    identical rows."""
    return _encode(encoder, texts, "query", batch_size, similarity)


def encode_documents(
    encoder: Any,
    documents: Sequence[Document],
    batch_size: int = 64,
    similarity: str = "cosine",
    precision: str = "fp32",
) -> np.ndarray:
    """Document embeddings of ``Document.contents`` (title + " " + text), float32, one row per
    document; L2-normalised for ``cosine``. The model's ``document`` prompt, if any, is applied.
    Documents with equal contents are encoded once and get identical rows. ``precision``:
    ``fp32``, ``bf16`` (autocast) or ``auto`` (see :func:`resolve_precision`)."""
    contents = [d.contents for d in documents]
    return _encode(encoder, contents, "document", batch_size, similarity, precision)


@dataclass
class DenseIndexMeta(StageMeta):
    """``meta.json`` of a dense index: the stage fields plus what identifies the embeddings."""

    model: str = ""
    model_fingerprint: str = ""
    dataset: str = ""
    corpus_hash: str = ""
    documents: int = 0
    dimension: int = 0
    max_length: int = 256
    similarity: str = "cosine"
    precision: str = "fp32"
    encode_s: float = 0.0


@dataclass(frozen=True)
class DenseIndex:
    """A loaded dense index: the embedding matrix (rows in ``doc_ids`` order) and its meta."""

    path: Path
    embeddings: np.ndarray
    doc_ids: list[str]
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: Path, mmap: bool = True) -> DenseIndex:
        """Load a complete index folder (memory-mapped unless ``mmap`` is False)."""
        import numpy as np

        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise InputFormatError(
                meta_path,
                "not found (the dense index is missing or incomplete)",
                fix="build it with build_dense_index or cached_dense_index",
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        embeddings = np.load(path / EMBEDDINGS_FILE, mmap_mode="r" if mmap else None)
        doc_ids = json.loads((path / DOC_IDS_FILE).read_text(encoding="utf-8"))
        if embeddings.ndim != 2 or embeddings.shape[0] != len(doc_ids):
            raise InputFormatError(
                path / EMBEDDINGS_FILE,
                f"shape {embeddings.shape} does not match {len(doc_ids)} document ids",
                fix="rebuild the index",
            )
        return cls(path=path, embeddings=embeddings, doc_ids=doc_ids, meta=meta)

    @property
    def model(self) -> str:
        """The model name the documents were encoded with."""
        return str(self.meta["model"])

    @property
    def model_fingerprint(self) -> str:
        """Fingerprint of that model's weights."""
        return str(self.meta["model_fingerprint"])

    @property
    def similarity(self) -> str:
        """``cosine`` (normalised embeddings) or ``dot``."""
        return str(self.meta["similarity"])

    @property
    def max_length(self) -> int:
        """Truncation length the documents were encoded with (queries use the same)."""
        return int(self.meta["max_length"])

    @property
    def encode_seconds(self) -> float:
        """Seconds spent encoding the corpus."""
        return float(self.meta["encode_s"])


def build_dense_index(
    dataset: Dataset,
    model: str,
    out_dir: Path,
    max_length: int = 256,
    batch_size: int = 64,
    similarity: str = "cosine",
    *,
    encoder: Any | None = None,
    precision: str = "fp32",
) -> DenseIndex:
    """Encode every document of ``dataset`` with ``model`` and write the index folder
    ``out_dir`` atomically (see the module docstring). ``encoder``: an already loaded
    ``SentenceTransformer`` for ``model`` (its ``max_seq_length`` is set to ``max_length``).
    ``precision``: ``fp32`` (default), ``bf16`` (autocast) or ``auto`` (bf16 on a CPU with native
    bf16, else fp32); the precision used is written to ``meta.json``. bf16 encodes SciFact about
    2x faster on an AMX CPU, at nDCG@10 0.6462 against fp32's 0.6451 (all-MiniLM-L6-v2, 256)."""
    import numpy as np

    check_similarity(similarity)
    check_precision(precision)
    _check_max_length(max_length)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    out_dir = Path(out_dir)
    fingerprint = model_fingerprint(model)
    documents = list(dataset.corpus.values())
    meta = DenseIndexMeta(
        stage="dense_index",
        config={
            "model": model,
            "max_length": max_length,
            "batch_size": batch_size,
            "similarity": similarity,
            "precision": precision,
        },
        inputs={"dataset": dataset.name, "dataset_path": str(dataset.path)},
        model=model,
        model_fingerprint=fingerprint,
        dataset=dataset.name,
        corpus_hash=corpus_hash(dataset.corpus),
        documents=len(documents),
        max_length=max_length,
        similarity=similarity,
    )
    started = time.perf_counter()
    if encoder is None:
        encoder = load_encoder(model, max_length)
    else:
        encoder.max_seq_length = max_length
    meta.timings["load_s"] = round(time.perf_counter() - started, 3)
    meta.precision = resolve_precision(precision, encoder)
    logger.info(
        "encoding %d documents of %s with %s (max_length %d, %s, %s)",
        len(documents),
        dataset.name,
        model,
        max_length,
        similarity,
        meta.precision,
    )
    started = time.perf_counter()
    embeddings = encode_documents(encoder, documents, batch_size, similarity, meta.precision)
    meta.encode_s = round(time.perf_counter() - started, 3)
    meta.timings["encode_s"] = meta.encode_s
    meta.dimension = int(embeddings.shape[1])
    meta.counts.update(documents=len(documents), dimension=meta.dimension)
    with atomic_path(out_dir) as staged:
        staged.mkdir()
        np.save(staged / EMBEDDINGS_FILE, embeddings)
        (staged / DOC_IDS_FILE).write_text(
            json.dumps([d.doc_id for d in documents], ensure_ascii=False) + "\n", encoding="utf-8"
        )
        finish_meta(meta, staged / META_FILE)
    logger.info("encoded %d documents in %.1f s into %s", len(documents), meta.encode_s, out_dir)
    return DenseIndex.load(out_dir)


def dense_cache_key(
    dataset: Dataset,
    model: str,
    max_length: int,
    similarity: str = "cosine",
    precision: str = "fp32",
) -> tuple[str, dict[str, Any]]:
    """The folder name under ``<cache_root>/dense_index/`` and the values it is a hash of. A
    resolved ``precision`` other than fp32 is part of the key (fp32 keys are those of before)."""
    values: dict[str, Any] = {
        "model_fingerprint": model_fingerprint(model),
        "dataset": dataset.name,
        "corpus_hash": corpus_hash(dataset.corpus),
        "documents": len(dataset.corpus),
        "max_length": max_length,
        "similarity": similarity,
    }
    if precision != "fp32":
        values["precision"] = precision
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset.name) or "dataset"
    return f"{name}-L{max_length}-{similarity}-{stable_hash(values)}", values


def cached_dense_index(
    dataset: Dataset,
    model: str,
    cache_root: Path,
    max_length: int = 256,
    batch_size: int = 64,
    similarity: str = "cosine",
    precision: str = "fp32",
) -> DenseIndex:
    """The dense index of ``dataset`` under ``model``, encoded once and then reused.

    The folder ``<cache_root>/dense_index/<dataset>-L<max_length>-<similarity>-<hash>/`` is keyed
    by the model fingerprint (its weights, not its name), the dataset name, a hash of the corpus,
    ``max_length``, the similarity and the precision (``auto`` resolved on this machine, see
    :func:`resolve_precision`). A complete folder is loaded (logged at INFO as
    ``reusing dense index``); otherwise the corpus is encoded and the folder written atomically.
    """
    check_similarity(similarity)
    _check_max_length(max_length)
    resolved = resolve_precision(precision)
    name, values = dense_cache_key(dataset, model, max_length, similarity, resolved)
    folder = Path(cache_root) / CACHE_STAGE / name
    if (folder / META_FILE).is_file():
        index = DenseIndex.load(folder)
        stored = {key: index.meta.get(key) for key in values}
        if stored == values:
            logger.info(
                "reusing dense index %s (%s, %d documents, encoded in %.1f s)",
                folder,
                model,
                len(index.doc_ids),
                index.encode_seconds,
            )
            return index
        logger.warning("dense index %s does not match its key; rebuilding it", folder)
    return build_dense_index(
        dataset, model, folder, max_length, batch_size, similarity, precision=resolved
    )
