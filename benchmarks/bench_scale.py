"""TREC-COVID scale, measured on a synthetic corpus and projected: 171,332 documents (BEIR
TREC-COVID's count) recombined from SciFact sentences with a fixed seed, about TREC-COVID's
length (~243 MiniLM word-pieces per document), then

* BM25 indexing time (flat, 2 threads) and peak RSS of this process (the JVM runs in it);
* BM25 top-1000 for 50 SciFact test claims: ``BM25Retriever`` next to pyserini's
  ``LuceneSearcher.search`` one query at a time;
* dense encoding (all-MiniLM-L6-v2, 256 word-pieces, ``precision="auto"``) of a sample:
  docs/s, projected to the whole corpus;
* cross-encoder reranking of 50,000 pairs (depth 1000 x 50 queries): pairs/s from the rerank
  benchmark's result file when there is one (``benchmarks/results/rerank-<machine>.json``), else
  measured on 256 pairs with the current scorer (fp32, 256 word-pieces, batch 32).

GPU projections use the issue's stated H100 figure, 1,836 pairs/s for ``CrossEncoder.predict``
fp32 at 256 word-pieces, and assume a MiniLM-L6 bi-encoder encodes documents at that same rate
(same backbone, same length, one sequence per item). Quick mode: 5,000 documents, 10 queries,
small samples; every figure is then projected linearly to 171,332 documents.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--quick]`` (one JSON row per line).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import resource
import tempfile
import time
from pathlib import Path

TREC_COVID_DOCUMENTS = 171_332
TREC_COVID_QUERIES = 50
RERANK_PAIRS = 50_000
#: Mean character budget per synthetic document, calibrated so that documents average ~243
#: MiniLM word-pieces (Anserini's TREC-COVID word-piece count / documents): sentences stop short
#: of the budget, and SciFact sentences run ~4.6 characters per word-piece.
MEAN_CHARACTERS = 1_180
GPU_PAIRS_PER_S = 1_836.0
SEED = 15
RESULTS = Path(__file__).resolve().parent / "results"


def _shared_datasets() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    if "INPARS_DATA_DIR" not in os.environ and shared.is_dir():
        os.environ["INPARS_DATA_DIR"] = str(shared)


def synthetic_corpus(source, size: int, seed: int = SEED) -> dict:
    """``size`` documents recombined from ``source``'s sentences (seeded, deterministic): a title
    of a source document and sentences drawn while title and text stay within a budget of
    :data:`MEAN_CHARACTERS` x U(0.5, 1.5) characters (at least one sentence)."""
    from inpars_core.records import Document

    rng = random.Random(seed)
    titles = [d.title for d in source.corpus.values() if d.title]
    sentences = [
        part.strip()
        for d in source.corpus.values()
        for part in re.split(r"(?<=[.!?])\s+", d.text)
        if len(part.strip()) > 20
    ]
    corpus = {}
    for number in range(size):
        title = rng.choice(titles)
        budget = MEAN_CHARACTERS * rng.uniform(0.5, 1.5) - len(title)
        text = [rng.choice(sentences)]
        length = len(text[0])
        while True:  # add sentences while the contents stay within the budget
            sentence = rng.choice(sentences)
            if length + 1 + len(sentence) > budget:
                break
            text.append(sentence)
            length += 1 + len(sentence)
        doc_id = f"syn{number:06d}"
        corpus[doc_id] = Document(doc_id, title, " ".join(text))
    return corpus


def _peak_rss_gib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 2**20, 2)  # ru_maxrss is in KiB on Linux


def _rerank_from_results() -> tuple[float, str] | None:
    """pairs/s of the fastest CPU row in a rerank result file written by run_all.py."""
    for path in sorted(glob.glob(str(RESULTS / "rerank-cpu*.json"))):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows = data.get("rows", data) if isinstance(data, dict) else data
        for row in rows if isinstance(rows, list) else []:
            match = re.search(r"([\d.]+) pairs/s", str(row.get("ours", "")))
            if row.get("path") == "rerank" and match:
                return float(match.group(1)), f"{Path(path).name}: {row['ours']}"
    return None


def _measure_rerank(pairs: list[tuple[str, str]]) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inpars_core.models import resolve_model_path
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs

    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        path = resolve_model_path("minilm")
        network = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        network.save_pretrained(folder)
        AutoTokenizer.from_pretrained(path).save_pretrained(folder)
        config = ScoringConfig(batch_size=32, precision="fp32", device="cpu")
        encoding = EncodingConfig("pair", 256)
        reranker = load_reranker(folder, config)
        score_pairs(reranker, pairs[:32], encoding, config)
        started = time.perf_counter()
        score_pairs(reranker, pairs, encoding, config)
        return len(pairs) / (time.perf_counter() - started)


def _row(what: str, ours: str, reference: str, ratio: float | None, quality: str, details: dict):
    return {
        "path": "scale",
        "ours": f"{what}: {ours}",
        "reference": reference,
        "ratio": ratio,
        "target": "measured; projected to TREC-COVID (171,332 docs, 50 queries)",
        "met": True,
        "quality": quality,
        "details": details,
    }


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def run(quick: bool = False) -> list[dict]:
    """Rows for index, BM25, dense and rerank at TREC-COVID scale (5,000 documents if quick)."""
    _shared_datasets()
    from inpars_core.datasets import resolve_dataset
    from inpars_core.datasets.beir import Dataset
    from inpars_core.dense.encoder import encode_documents, load_encoder, resolve_precision
    from inpars_core.retrieval.bm25 import BM25Config, BM25Retriever, IndexConfig, build_index
    from inpars_core.retrieval.lucene_runtime import lucene_searcher_class

    size = 5_000 if quick else TREC_COVID_DOCUMENTS
    n_queries = 10 if quick else TREC_COVID_QUERIES
    dense_sample = 32 if quick else 256
    rerank_sample = 64 if quick else 256
    scale = TREC_COVID_DOCUMENTS / size
    scifact = resolve_dataset("scifact")
    started = time.perf_counter()
    corpus = synthetic_corpus(scifact, size)
    build_s = time.perf_counter() - started
    queries = dict(list(scifact.split_queries("test").items())[:n_queries])
    common = {
        "documents": size,
        "projected_to": TREC_COVID_DOCUMENTS,
        "seed": SEED,
        "mean_characters": round(sum(len(d.contents) for d in corpus.values()) / size, 1),
        "corpus_build_s": round(build_s, 2),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Dataset(f"synthetic-{size}", Path(tmp), corpus, queries)
        started = time.perf_counter()
        index = build_index(dataset, Path(tmp) / "index", IndexConfig("flat", 2))
        index_s = time.perf_counter() - started
        rss_after_index = _peak_rss_gib()
        rows.append(
            _row(
                "BM25 index (flat, 2 threads)",
                f"{index_s:.1f} s for {size:,} docs; projected {_hours(index_s * scale)}",
                "—",
                None,
                f"peak RSS after indexing {rss_after_index} GiB",
                {**common, "index_s": round(index_s, 2), "peak_rss_gib": rss_after_index},
            )
        )
        searcher = lucene_searcher_class()(str(index / "lucene"))
        searcher.set_bm25(0.9, 0.4)
        BM25Retriever(index, BM25Config(threads=2)).retrieve(dict(list(queries.items())[:2]), k=10)
        started = time.perf_counter()
        ours = BM25Retriever(index, BM25Config(threads=2)).retrieve(queries, k=1000)
        ours_s = time.perf_counter() - started
        started = time.perf_counter()
        theirs = {q: searcher.search(x.text, k=1000) for q, x in queries.items()}
        reference_s = time.perf_counter() - started
        same = sum(
            [(d.doc_id, d.score) for d in ours[q]]
            == sorted(((h.docid, h.score) for h in theirs[q]), key=lambda h: (-h[1], h[0]))
            for q in queries
        )
        per_query = ours_s / len(queries)
        rows.append(
            _row(
                "BM25 top-1000",
                f"{len(queries)} queries {ours_s:.2f} s; 50 queries projected "
                f"{per_query * TREC_COVID_QUERIES * (scale if quick else 1):.1f} s",
                f"LuceneSearcher.search one by one {reference_s:.2f} s",
                round(reference_s / ours_s, 2),
                f"identical runs {same}/{len(queries)} queries; peak RSS {_peak_rss_gib()} GiB",
                {**common, "queries": len(queries), "ours_s": round(ours_s, 3)}
                | {"reference_s": round(reference_s, 3), "threads": 2},
            )
        )
    encoder = load_encoder("minilm", 256, device="cpu")
    precision = resolve_precision("auto", encoder)
    sample = list(corpus.values())[:dense_sample]
    encode_documents(encoder, sample[:8], 64, "cosine", precision=precision)
    started = time.perf_counter()
    encode_documents(encoder, sample, 64, "cosine", precision=precision)
    docs_per_s = len(sample) / (time.perf_counter() - started)
    dense_cpu_s = TREC_COVID_DOCUMENTS / docs_per_s
    dense_gpu_s = TREC_COVID_DOCUMENTS / GPU_PAIRS_PER_S
    rows.append(
        _row(
            f"dense encoding (minilm, 256, {precision})",
            f"{docs_per_s:.1f} docs/s on {len(sample)} docs; 171,332 docs projected CPU "
            f"{_hours(dense_cpu_s)}, GPU {_hours(dense_gpu_s)} (assumed {GPU_PAIRS_PER_S:.0f}/s)",
            "—",
            None,
            f"embeddings 171,332 x 384 float32 = {TREC_COVID_DOCUMENTS * 384 * 4 / 2**20:.0f} MiB; "
            f"peak RSS {_peak_rss_gib()} GiB",
            {**common, "sample": len(sample), "docs_per_s": round(docs_per_s, 2)}
            | {"projected_cpu_s": round(dense_cpu_s), "projected_gpu_s": round(dense_gpu_s)},
        )
    )
    source = _rerank_from_results()
    if source is None:
        queries_list = list(queries.values())
        docs = list(corpus.values())
        pairs = [
            (queries_list[i % len(queries_list)].text, docs[i].contents)
            for i in range(rerank_sample)
        ]
        pairs_per_s = _measure_rerank(pairs)
        origin = f"measured here on {len(pairs)} synthetic pairs (score_pairs fp32, batch 32)"
    else:
        pairs_per_s, origin = source
    rerank_cpu_s = RERANK_PAIRS / pairs_per_s
    rerank_gpu_s = RERANK_PAIRS / GPU_PAIRS_PER_S
    rows.append(
        _row(
            "cross-encoder rerank 50,000 pairs (256 word-pieces)",
            f"{pairs_per_s:.1f} pairs/s; projected CPU {_hours(rerank_cpu_s)}, "
            f"GPU {_hours(rerank_gpu_s)} (assumed {GPU_PAIRS_PER_S:.0f} pairs/s, H100)",
            "—",
            None,
            f"throughput: {origin}; peak RSS {_peak_rss_gib()} GiB",
            {**common, "pairs_per_s": round(pairs_per_s, 2), "source": origin}
            | {"projected_cpu_s": round(rerank_cpu_s), "projected_gpu_s": round(rerank_gpu_s)},
        )
    )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for row in run(quick=args.quick):
        print(json.dumps(row, ensure_ascii=False))
