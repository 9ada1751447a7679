"""Dense encoding of the SciFact corpus with all-MiniLM-L6-v2 ("minilm"), max_length 256:
``encode_documents`` at ``precision="auto"`` (bf16 autocast where the CPU has native bf16, as
``inpars dense-index`` encodes) next to ``SentenceTransformer(model).encode(texts,
batch_size=64)`` in fp32, on the same documents in the same process. The corpus is cut into
chunks encoded alternately by ours and the reference (so drift on a shared machine hits both).

Quality: min cosine of every document's embedding to the fp32 one; without ``quick``, nDCG@10 on
the 300 test claims (exact search, fp32 queries) of both, next to the published 0.6451.

Run: ``.venv/bin/python benchmarks/bench_dense.py [--quick]`` (one JSON row per line).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

PUBLISHED_NDCG10 = 0.6451
TARGET_RATIO = 2.0
NDCG_TOLERANCE = 0.001


def _shared_datasets() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    if "INPARS_DATA_DIR" not in os.environ and shared.is_dir():
        os.environ["INPARS_DATA_DIR"] = str(shared)


def _ndcg10(dataset, doc_ids: list[str], embeddings, encoder) -> float:
    import numpy as np

    from inpars_core.dense.encoder import encode_queries
    from inpars_core.dense.search import top_k_exact
    from inpars_core.evaluation import evaluate

    queries = dataset.split_queries("test")
    vectors = encode_queries(encoder, [q.text for q in queries.values()], 64, "cosine")
    scores = np.asarray(vectors @ embeddings.T, dtype=np.float32)
    run = {q: top_k_exact(row, doc_ids, q, 1000) for q, row in zip(queries, scores, strict=True)}
    return evaluate(run, dataset.qrels("test"), ["nDCG@10"]).aggregate["nDCG@10"]


def run(quick: bool = False, chunks: int | None = None) -> list[dict]:
    """One row: ours (precision auto) vs SentenceTransformer.encode fp32, 5,183 documents (200 if
    quick)."""
    _shared_datasets()
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from inpars_core.datasets import resolve_dataset
    from inpars_core.dense.encoder import encode_documents, load_encoder, resolve_precision
    from inpars_core.models import resolve_model_folder

    dataset = resolve_dataset("scifact")
    documents = list(dataset.corpus.values())
    if quick:
        documents = documents[:200]
    chunks = chunks or (2 if quick else 8)
    encoder = load_encoder("minilm", 256, device="cpu")
    reference = SentenceTransformer(resolve_model_folder("minilm"), device="cpu")
    reference.max_seq_length = 256
    precision = resolve_precision("auto", encoder)
    warm = documents[:16]
    encode_documents(encoder, warm, 64, "cosine", precision=precision)
    reference.encode([d.contents for d in warm], batch_size=64)
    ours_s = reference_s = 0.0
    ours_rows, reference_rows = [], []
    size = -(-len(documents) // chunks)
    for start in range(0, len(documents), size):
        part = documents[start : start + size]
        started = time.perf_counter()
        ours_rows.append(encode_documents(encoder, part, 64, "cosine", precision=precision))
        ours_s += time.perf_counter() - started
        started = time.perf_counter()
        reference_rows.append(reference.encode([d.contents for d in part], batch_size=64))
        reference_s += time.perf_counter() - started
    ours = np.concatenate(ours_rows)
    plain = np.concatenate(reference_rows).astype(np.float32)
    plain /= np.linalg.norm(plain, axis=1, keepdims=True)
    cosine = float((ours * plain).sum(axis=1).min())
    ratio = reference_s / ours_s
    details = {
        "documents": len(documents),
        "max_length": 256,
        "batch_size": 64,
        "precision": precision,
        "chunks": chunks,
        "ours_s": round(ours_s, 2),
        "reference_s": round(reference_s, 2),
        "ours_docs_per_s": round(len(documents) / ours_s, 2),
        "reference_docs_per_s": round(len(documents) / reference_s, 2),
        "torch_threads": torch.get_num_threads(),
        "min_cosine_to_fp32": round(cosine, 6),
    }
    quality = f"min cosine to fp32 over {len(documents)} documents {cosine:.5f}"
    met = ratio >= TARGET_RATIO
    if not quick:
        doc_ids = [d.doc_id for d in documents]
        ours_ndcg = _ndcg10(dataset, doc_ids, ours, encoder)
        plain_ndcg = _ndcg10(dataset, doc_ids, plain, encoder)
        delta = abs(ours_ndcg - plain_ndcg)
        details.update(nDCG10=round(ours_ndcg, 4), reference_nDCG10=round(plain_ndcg, 4))
        quality += (
            f"; nDCG@10 {ours_ndcg:.4f} vs fp32 {plain_ndcg:.4f} (|Δ| {delta:.4f} "
            f"<= {NDCG_TOLERANCE}; published {PUBLISHED_NDCG10})"
        )
        met = met and delta <= NDCG_TOLERANCE
    return [
        {
            "path": "dense",
            "ours": f"encode_documents {precision} {len(documents) / ours_s:.1f} docs/s",
            "reference": (
                f"SentenceTransformer.encode fp32 {len(documents) / reference_s:.1f} docs/s"
            ),
            "ratio": round(ratio, 2),
            "target": f">= {TARGET_RATIO:.0f}x at nDCG@10 ± {NDCG_TOLERANCE}",
            "met": bool(met),
            "quality": quality,
            "details": details,
        }
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for row in run(quick=args.quick):
        print(json.dumps(row))
