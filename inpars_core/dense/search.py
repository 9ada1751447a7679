"""Exact dense retrieval over a :class:`~inpars_core.dense.encoder.DenseIndex`, and dense
reranking of another run's top documents.

Search is exhaustive: query embeddings times the whole embedding matrix (numpy float32 matmul,
queries in blocks sized to bound memory), so nothing is approximated. The ``k`` best documents
are chosen exactly, ties broken by doc id (:func:`~inpars_core.runs.sort_ranking`): every
document scoring at least the k-th best score is a candidate, then the candidates are sorted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inpars_core.dense.encoder import (
    DenseIndex,
    check_similarity,
    encode_documents,
    encode_queries,
    load_encoder,
    model_fingerprint,
)
from inpars_core.errors import ConfigError
from inpars_core.records import Document, Query, Run, ScoredDoc
from inpars_core.retrieval.base import register_retriever
from inpars_core.runs import normalise_run, sort_ranking, top_k, with_first_stage_tail

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

#: Upper bound on the score block (queries x documents, float32) computed at once.
BLOCK_BYTES = 256 << 20


def top_k_exact(
    scores: np.ndarray, doc_ids: Sequence[str], query_id: str, k: int
) -> list[ScoredDoc]:
    """The ``k`` best documents of one score row, exactly, ties broken by doc id."""
    import numpy as np

    n = scores.shape[0]
    if k >= n:
        candidates = np.arange(n)
    else:
        threshold = np.partition(scores, n - k)[n - k]  # the k-th largest score
        candidates = np.flatnonzero(scores >= threshold)
    ranked = sort_ranking(ScoredDoc(query_id, doc_ids[i], float(scores[i])) for i in candidates)
    return ranked[:k]


def _check_depth(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


def _missing_queries(queries: Mapping[str, Query], run: Run) -> list[str]:
    missing = [q for q in run if q not in queries]
    if missing:
        logger.warning(
            "%d queries of the run have no text (e.g. %s); they are left out",
            len(missing),
            ", ".join(missing[:3]),
        )
    return missing


def rerank_with_scores(
    run: Run,
    depth: int,
    score_of: Mapping[str, Mapping[str, float]],
) -> Run:
    """Reorder the top ``depth`` of every ranking by ``score_of[query_id][doc_id]``.

    Documents below ``depth`` keep their first-stage order after the reranked ones, scored
    ``min(head) - 1, min(head) - 2, ...`` (:func:`~inpars_core.runs.with_first_stage_tail`);
    every document appears once. Queries missing from ``score_of`` are left out.
    """
    _check_depth("depth", depth)
    unique = normalise_run({q: docs for q, docs in run.items() if q in score_of})
    head: Run = {}
    for query_id, docs in unique.items():
        scores = score_of[query_id]
        head[query_id] = sort_ranking(
            ScoredDoc(query_id, d.doc_id, float(scores[d.doc_id])) for d in docs[:depth]
        )
    return with_first_stage_tail(head, unique, depth)


@register_retriever("dense")
class DenseRetriever:
    """Exact inner-product (or cosine) search over a dense index.

    Args:
        index_dir: a folder written by :func:`~inpars_core.dense.encoder.build_dense_index`
            (or an already loaded :class:`DenseIndex`).
        model: the query encoder; default the model the index was built with. Another name is
            accepted only when its weights have the same fingerprint as the index's model.
        batch_size: query encoding batch size.
        device: torch device of the query encoder (default: sentence-transformers' choice).
    """

    def __init__(
        self,
        index_dir: Path | str | DenseIndex,
        model: str | None = None,
        batch_size: int = 64,
        device: str | None = None,
    ) -> None:
        self.index = (
            index_dir if isinstance(index_dir, DenseIndex) else DenseIndex.load(Path(index_dir))
        )
        check_similarity(self.index.similarity)
        self.model = model or self.index.model
        if model is not None and model != self.index.model:
            fingerprint = model_fingerprint(model)
            if fingerprint != self.index.model_fingerprint:
                raise ConfigError(
                    f"model {model!r} (fingerprint {fingerprint[:12]}) is not the model the "
                    f"dense index {self.index.path} was built with ({self.index.model!r}, "
                    f"{self.index.model_fingerprint[:12]}); rebuild the index with this model "
                    "or leave model unset"
                )
        self.batch_size = batch_size
        self.device = device
        self._encoder: Any | None = None
        self._row: dict[str, int] | None = None

    @property
    def encoder(self) -> Any:
        """The query encoder, loaded on first use."""
        if self._encoder is None:
            self._encoder = load_encoder(self.model, self.index.max_length, self.device)
        return self._encoder

    def encode_queries(self, queries: Mapping[str, Query]) -> np.ndarray:
        """Embeddings of the queries' texts, in ``queries`` order, as the index expects them."""
        texts = [q.text for q in queries.values()]
        return encode_queries(self.encoder, texts, self.batch_size, self.index.similarity)

    def retrieve(self, queries: Mapping[str, Query], k: int = 1000) -> Run:
        """The exact top ``k`` documents per query, best first, ties by doc id; queries keep
        their input order."""
        import numpy as np

        _check_depth("k", k)
        query_ids = list(queries)
        if not query_ids:
            return {}
        vectors = self.encode_queries(queries)
        matrix = self.index.embeddings
        doc_ids = self.index.doc_ids
        block = max(1, BLOCK_BYTES // (4 * max(1, matrix.shape[0])))
        run: Run = {}
        for start in range(0, len(query_ids), block):
            scores = np.asarray(vectors[start : start + block] @ matrix.T, dtype=np.float32)
            for offset, row in enumerate(scores):
                query_id = query_ids[start + offset]
                run[query_id] = top_k_exact(row, doc_ids, query_id, k)
        return run

    def _rows(self) -> dict[str, int]:
        if self._row is None:
            self._row = {doc_id: i for i, doc_id in enumerate(self.index.doc_ids)}
        return self._row

    def rerank(self, queries: Mapping[str, Query], run: Run, depth: int = 100) -> Run:
        """Rescore the top ``depth`` documents of each ranking of ``run`` with the index's
        embeddings and reorder them; documents below ``depth`` follow in their first-stage
        order, each document once (see :func:`rerank_with_scores`). Queries without text are
        left out (with a warning)."""
        import numpy as np

        _check_depth("depth", depth)
        _missing_queries(queries, run)
        shallow = top_k(normalise_run({q: d for q, d in run.items() if q in queries}), depth)
        rows = self._rows()
        absent = sorted({d.doc_id for docs in shallow.values() for d in docs} - rows.keys())
        if absent:
            raise ConfigError(
                f"{len(absent)} documents of the run are not in the dense index {self.index.path} "
                f"(e.g. {', '.join(absent[:3])}); build the index over the run's corpus"
            )
        wanted = {q: queries[q] for q in shallow}
        vectors = self.encode_queries(wanted)
        matrix = self.index.embeddings
        score_of: dict[str, dict[str, float]] = {}
        for vector, (query_id, docs) in zip(vectors, shallow.items(), strict=True):
            index = np.fromiter((rows[d.doc_id] for d in docs), dtype=np.int64, count=len(docs))
            values = np.asarray(matrix[index] @ vector, dtype=np.float32)
            score_of[query_id] = {
                d.doc_id: float(v) for d, v in zip(docs, values.tolist(), strict=True)
            }
        return rerank_with_scores(run, depth, score_of)


def rerank_with_encoder(
    encoder: Any,
    queries: Mapping[str, Query],
    run: Run,
    documents: Mapping[str, Document],
    depth: int = 100,
    similarity: str = "cosine",
    batch_size: int = 64,
) -> Run:
    """Dense rerank of the top ``depth`` of ``run`` with a loaded encoder, encoding the needed
    documents on the fly (in doc id order, each distinct text once, so the result is
    reproducible for fixed weights and equal texts score equally). The reranked top ``depth``
    is followed by the rest of ``run`` in its first-stage order (the ranking as shown, see
    :func:`rerank_with_scores`); queries without text are left out.

    Used for dev evaluation during training, where the weights change between calls.
    """
    import numpy as np

    _check_depth("depth", depth)
    check_similarity(similarity)
    _missing_queries(queries, run)
    unique = normalise_run({q: docs for q, docs in run.items() if q in queries})
    shallow = top_k(unique, depth)
    needed = sorted({d.doc_id for docs in shallow.values() for d in docs})
    absent = [d for d in needed if d not in documents]
    if absent:
        raise ConfigError(
            f"{len(absent)} documents of the run have no text (e.g. {', '.join(absent[:3])})"
        )
    doc_vectors = encode_documents(encoder, [documents[d] for d in needed], batch_size, similarity)
    row = {doc_id: i for i, doc_id in enumerate(needed)}
    query_ids = sorted(shallow)
    query_vectors = encode_queries(
        encoder, [queries[q].text for q in query_ids], batch_size, similarity
    )
    score_of: dict[str, dict[str, float]] = {}
    for query_id, vector in zip(query_ids, query_vectors, strict=True):
        docs = shallow[query_id]
        index = np.fromiter((row[d.doc_id] for d in docs), dtype=np.int64, count=len(docs))
        values = np.asarray(doc_vectors[index] @ vector, dtype=np.float32).tolist()
        score_of[query_id] = {d.doc_id: float(v) for d, v in zip(docs, values, strict=True)}
    return rerank_with_scores(unique, depth, score_of)
