"""Time BM25 indexing and retrieval on SciFact (both field layouts); prints one JSON line each.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_bm25.py [--dataset scifact]``.
Wall times include nothing but the named step; the JVM start and pyserini import are timed apart.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from inpars_core.datasets import resolve_dataset
    from inpars_core.evaluation import evaluate
    from inpars_core.retrieval.bm25 import BM25Config, BM25Retriever, IndexConfig, build_index
    from inpars_core.retrieval.lucene_runtime import lucene_searcher_class

    started = time.perf_counter()
    lucene_searcher_class()
    startup_s = time.perf_counter() - started
    dataset = resolve_dataset(args.dataset)
    queries = dataset.split_queries(args.split)
    with tempfile.TemporaryDirectory() as tmp:
        for fields in ("flat", "multifield"):
            started = time.perf_counter()
            index = build_index(dataset, Path(tmp) / fields, IndexConfig(fields, args.threads))
            index_s = time.perf_counter() - started
            retriever = BM25Retriever(index, BM25Config(threads=args.threads))
            started = time.perf_counter()
            run = retriever.retrieve(queries, k=1000)
            retrieve_s = time.perf_counter() - started
            figures = evaluate(run, dataset.qrels(args.split), ["nDCG@10", "R@100"]).aggregate
            print(
                json.dumps(
                    {
                        "dataset": dataset.name,
                        "fields": fields,
                        "documents": len(dataset.corpus),
                        "queries": len(queries),
                        "jvm_and_pyserini_import_s": round(startup_s, 2),
                        "index_s": round(index_s, 2),
                        "retrieve_top1000_s": round(retrieve_s, 2),
                        "threads": args.threads,
                        **{k: round(v, 4) for k, v in figures.items()},
                    }
                )
            )


if __name__ == "__main__":
    main()
