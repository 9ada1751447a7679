"""Dense retrieval: encode a corpus with a bi-encoder (cached), search it exactly, rerank and
fuse runs, and fine-tune the bi-encoder on triples.

Importing this package loads neither torch nor sentence-transformers (nor numpy): they are
imported inside the functions that need them. Importing it registers the ``dense`` retriever.
"""

from __future__ import annotations

from inpars_core.dense.encoder import (
    DenseIndex,
    build_dense_index,
    cached_dense_index,
    corpus_hash,
    encode_documents,
    encode_queries,
    load_encoder,
    model_fingerprint,
)
from inpars_core.dense.fusion import normalised_score_sum, reciprocal_rank_fusion
from inpars_core.dense.search import DenseRetriever, rerank_with_encoder
from inpars_core.dense.training import (
    OBJECTIVES,
    DenseDevSet,
    DenseTrainingResult,
    TrainDenseConfig,
    evaluate_dev,
    margin_labels,
    train_dense,
    zero_shot_dev_score,
)

__all__ = [
    "OBJECTIVES",
    "DenseDevSet",
    "DenseIndex",
    "DenseRetriever",
    "DenseTrainingResult",
    "TrainDenseConfig",
    "build_dense_index",
    "cached_dense_index",
    "corpus_hash",
    "encode_documents",
    "encode_queries",
    "evaluate_dev",
    "load_encoder",
    "margin_labels",
    "model_fingerprint",
    "normalised_score_sum",
    "reciprocal_rank_fusion",
    "rerank_with_encoder",
    "train_dense",
    "zero_shot_dev_score",
]
