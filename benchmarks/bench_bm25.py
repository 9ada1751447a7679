"""BM25 top-1000 on SciFact test: ``BM25Retriever.retrieve`` (direct Lucene search without the
stored-document fetch, Anserini's tie adjustment in numpy, ``threads`` Python threads) next to
pyserini's ``LuceneSearcher.search(q, k=1000)`` called once per query (what a user writes), on the
same index in the same process, interleaved after a warm-up; median of the repeats.

Quality: the two runs are identical (same doc ids and scores per query); nDCG@10 of ours is
reported next to Anserini's published 0.6789. Index timings (flat, and multifield unless quick)
are kept in ``details``.

Run: ``.venv/bin/python benchmarks/bench_bm25.py [--quick]`` (one JSON row per line).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

PUBLISHED_FLAT_NDCG10 = 0.6789
TARGET_RATIO = 4.0


def _shared_datasets() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    if "INPARS_DATA_DIR" not in os.environ and shared.is_dir():
        os.environ["INPARS_DATA_DIR"] = str(shared)


def run(quick: bool = False, threads: int = 2, repeats: int | None = None) -> list[dict]:
    """One row: ours (threads) vs pyserini one query at a time, 300 queries (30 if quick)."""
    _shared_datasets()
    from inpars_core.datasets import resolve_dataset
    from inpars_core.evaluation import evaluate
    from inpars_core.retrieval.bm25 import BM25Config, BM25Retriever, IndexConfig, build_index
    from inpars_core.retrieval.lucene_runtime import lucene_searcher_class

    repeats = repeats or (1 if quick else 3)
    started = time.perf_counter()
    searcher_class = lucene_searcher_class()
    startup_s = time.perf_counter() - started
    dataset = resolve_dataset("scifact")
    queries = dataset.split_queries("test")
    if quick:
        queries = dict(list(queries.items())[:30])
    k = 1000
    details: dict = {
        "documents": len(dataset.corpus),
        "queries": len(queries),
        "k": k,
        "threads": threads,
        "repeats": repeats,
        "jvm_and_pyserini_import_s": round(startup_s, 2),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for fields in ("flat",) if quick else ("flat", "multifield"):
            started = time.perf_counter()
            build_index(dataset, Path(tmp) / fields, IndexConfig(fields, threads))
            details[f"index_{fields}_s"] = round(time.perf_counter() - started, 2)
        index = Path(tmp) / "flat"

        def reference() -> dict[str, list[tuple[str, float]]]:
            searcher = searcher_class(str(index / "lucene"))
            searcher.set_bm25(0.9, 0.4)
            out = {}
            for query_id, query in queries.items():
                hits = searcher.search(query.text, k=k)
                out[query_id] = sorted(((h.docid, h.score) for h in hits), key=_rank_key)
            return out

        def ours() -> dict[str, list[tuple[str, float]]]:
            run_ = BM25Retriever(index, BM25Config(threads=threads)).retrieve(queries, k=k)
            return {q: [(d.doc_id, d.score) for d in docs] for q, docs in run_.items()}

        warm = dict(list(queries.items())[:10])
        BM25Retriever(index, BM25Config(threads=threads)).retrieve(warm, k=k)
        warm_searcher = searcher_class(str(index / "lucene"))
        for query in warm.values():
            warm_searcher.search(query.text, k=k)
        ours_s, reference_s = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            ours_run = ours()
            ours_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            reference_run = reference()
            reference_s.append(time.perf_counter() - started)
        same = sum(ours_run[q] == reference_run.get(q) for q in queries)
        retriever = BM25Retriever(index, BM25Config(threads=threads))
        qrels = {q: judged for q, judged in dataset.qrels("test").items() if q in queries}
        ndcg = evaluate(retriever.retrieve(queries, k=k), qrels, ["nDCG@10"])
    ndcg10 = ndcg.aggregate["nDCG@10"]
    ours_median, reference_median = statistics.median(ours_s), statistics.median(reference_s)
    ratio = reference_median / ours_median
    details.update(
        ours_s=[round(s, 3) for s in ours_s],
        reference_s=[round(s, 3) for s in reference_s],
        identical_queries=same,
        nDCG10=round(ndcg10, 4),
    )
    return [
        {
            "path": "bm25",
            "ours": f"BM25Retriever.retrieve threads={threads} {ours_median:.2f} s",
            "reference": f"LuceneSearcher.search one by one {reference_median:.2f} s",
            "ratio": round(ratio, 2),
            "target": f">= {TARGET_RATIO:.0f}x ({len(queries)} queries x top-{k})",
            "met": bool(ratio >= TARGET_RATIO and same == len(queries)),
            "quality": (
                f"identical runs (doc ids and scores): {same}/{len(queries)} queries; "
                f"nDCG@10 {ndcg10:.4f} on them (published {PUBLISHED_FLAT_NDCG10} on all 300)"
            ),
            "details": details,
        }
    ]


def _rank_key(hit: tuple[str, float]) -> tuple[float, str]:
    return -hit[1], hit[0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for row in run(quick=args.quick, threads=args.threads):
        print(json.dumps(row))
