"""Cross-encoder inference speed on this machine: pairs/s for fp32, bf16 autocast and dynamic int8
with our scorer, next to sentence_transformers.CrossEncoder.predict (fp32), on SciFact pairs.

Run: ``.venv/bin/python benchmarks/bench_rerank.py [--pairs 256] [--max-length 256]``.
Prints one JSON line per setting. The model is the packaged MiniLM backbone with a 1-logit head
(speed does not depend on the head's training).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inpars_core.datasets import resolve_dataset
    from inpars_core.models import resolve_model_path
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs

    dataset = resolve_dataset("scifact")
    queries = list(dataset.split_queries("test").values())
    docs = list(dataset.corpus.values())
    pairs = [(queries[i % len(queries)].text, docs[i].contents) for i in range(args.pairs)]
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        path = resolve_model_path("minilm")
        AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).save_pretrained(
            folder
        )
        AutoTokenizer.from_pretrained(path).save_pretrained(folder)
        encoding = EncodingConfig("pair", args.max_length)
        for precision in ("fp32", "bf16", "int8"):
            config = ScoringConfig(batch_size=args.batch_size, precision=precision)
            reranker = load_reranker(folder, config)
            score_pairs(reranker, pairs[: args.batch_size], encoding, config)  # warm-up
            started = time.perf_counter()
            score_pairs(reranker, pairs, encoding, config)
            seconds = time.perf_counter() - started
            print(
                json.dumps(
                    {
                        "scorer": "inpars",
                        "precision": precision,
                        "max_length": args.max_length,
                        "pairs": len(pairs),
                        "pairs_per_s": round(len(pairs) / seconds, 1),
                        "threads": torch.get_num_threads(),
                    }
                )
            )
        reference = CrossEncoder(folder, max_length=args.max_length, device="cpu")
        reference.predict(pairs[: args.batch_size], batch_size=args.batch_size)
        started = time.perf_counter()
        reference.predict(pairs, batch_size=args.batch_size)
        seconds = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "scorer": "sentence_transformers.CrossEncoder.predict",
                    "precision": "fp32",
                    "max_length": args.max_length,
                    "pairs": len(pairs),
                    "pairs_per_s": round(len(pairs) / seconds, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
