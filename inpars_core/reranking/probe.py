"""A linear-probe cross-encoder: a backbone's 1-logit head fitted in closed form, backbone frozen.

For measuring what a precision (bf16, int8, ONNX) costs a reranker whose scores mean something:
a freshly initialised head ranks near chance, where any rounding reorders near-ties, so the
nDCG of such a model says little about a trained one. The head is ridge-regularised linear
discriminant analysis on the pooled output between relevant and non-relevant pairs of a
*training* split; fitting 400 pairs takes one forward pass over them (seconds), no optimiser.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inpars_core.reranking.encoding import EncodingConfig, encode_pairs


def probe_pairs(
    dataset: Any, split: str = "train", claims: int = 100, negatives: int = 3, seed: int = 0
) -> tuple[list[tuple[str, str]], list[int]]:
    """(pairs, labels): each of the first ``claims`` judged queries of ``split`` with its first
    relevant document (label 1) and ``negatives`` seeded random corpus documents (label 0)."""
    queries, qrels = dataset.split_queries(split), dataset.qrels(split)
    rng, doc_ids = random.Random(seed), sorted(dataset.corpus)
    pairs: list[tuple[str, str]] = []
    labels: list[int] = []
    for query_id in [q for q in qrels if q in queries][:claims]:
        relevant = sorted(d for d, grade in qrels[query_id].items() if grade > 0)
        if not relevant:
            continue
        text = queries[query_id].text
        pairs.append((text, dataset.corpus[relevant[0]].contents))
        pairs += [(text, dataset.corpus[rng.choice(doc_ids)].contents) for _ in range(negatives)]
        labels += [1] + [0] * negatives
    return pairs, labels


def fit_probe_head(
    model_dir: str | Path,
    out: str | Path,
    pairs: Sequence[tuple[str, str]],
    labels: Sequence[int],
    max_length: int = 128,
    ridge: float = 0.1,
) -> Path:
    """Save to ``out`` the 1-logit sequence-classification model of ``model_dir`` with its head
    set to the LDA direction between the pooled outputs of label-1 and label-0 ``pairs``
    (covariance + ``ridge`` x mean variance on the diagonal), scaled so the training scores
    have unit spread, and a bias centring the two class means on 0."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if len(set(labels)) != 2 or len(labels) != len(pairs):
        raise ValueError(f"expected labelled pairs of both classes, got labels {set(labels)}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    network = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1).eval()
    features = []
    with torch.inference_mode():
        for start in range(0, len(pairs), 32):
            batch = pairs[start : start + 32]
            encoded = encode_pairs(
                tokenizer,
                [q for q, _ in batch],
                [d for _, d in batch],
                EncodingConfig("pair", max_length),
            )
            features.append(network.base_model(**encoded).pooler_output.float().numpy())
    x, y = np.concatenate(features).astype(np.float64), np.asarray(labels)
    positive, negative = x[y == 1].mean(0), x[y == 0].mean(0)
    covariance = np.cov(x.T)
    regularised = covariance + ridge * np.trace(covariance) / len(covariance) * np.eye(len(x[0]))
    weight = np.linalg.solve(regularised, positive - negative)
    weight /= (x @ weight).std()
    with torch.no_grad():
        network.classifier.weight.copy_(torch.tensor(weight, dtype=torch.float32)[None])
        network.classifier.bias.fill_(float(-weight @ (positive + negative) / 2))
    network.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)


def train_claims_cross_encoder(
    dataset: Any,
    index: Any,
    out: str | Path,
    claims: int = 300,
    negatives: int = 3,
    max_length: int = 128,
    bf16: bool = True,
) -> Path:
    """Train and save (``out``/model) a full cross-encoder on the first ``claims`` judged
    *train* claims of ``dataset``: the demo's base recipe (all-MiniLM-L6-v2 backbone, objective
    lce, lr 1e-4, one epoch, batch 32, ``negatives`` BM25 negatives from ranks 1-100 of
    ``index``). Unlike :func:`fit_probe_head` every layer learns to read the pair, so its scores
    have the spread of a real reranker; this is the model a precision is judged on when the
    question is what it costs a trained reranker."""
    from inpars_core.negatives import NegativesConfig, mine_triples, positives_from_qrels
    from inpars_core.retrieval.bm25 import BM25Retriever
    from inpars_core.training.trainer import TrainingConfig, train_reranker

    qrels, split = dataset.qrels("train"), dataset.split_queries("train")
    chosen = [q for q in qrels if q in split][:claims]
    queries = {q: split[q].text for q in chosen}
    run = BM25Retriever(index).retrieve({q: split[q] for q in chosen}, k=100)
    triples, _ = mine_triples(
        queries,
        positives_from_qrels({q: qrels[q] for q in chosen}),
        run,
        sorted(dataset.corpus),
        NegativesConfig(negatives=negatives, window=(1, 100), seed=0),
    )
    documents = {doc_id: doc.contents for doc_id, doc in dataset.corpus.items()}
    config = TrainingConfig(
        objective="lce", lr=1e-4, epochs=1, batch_size=32, max_length=max_length, bf16=bf16
    )
    return train_reranker(triples, documents, config, Path(out), base_model="minilm").model_dir
