"""Cross-encoder training sweep on SciFact (run on a GPU machine when one is lent; CPU works,
slowly). Results: ``benchmarks/results/gpu-training-sweep-*.json``.

Trains cross-encoders from the all-MiniLM-L6-v2 backbone (fresh 1-logit head) on SciFact train
qrels (BM25 negatives), keeps 100 train claims out as the dev set, then reranks BM25 top-100 of
the 300 test claims with `pair` and `separate` encodings and evaluates. Also reports the
interpolation of the cross-encoder with BM25 and inference pairs/s per precision.

Usage: python benchmarks/gpu_training_sweep.py DATA_DIR BACKBONE_DIR TRAIN_RUN TEST_RUN OUT_DIR
       [RECIPES_JSON [MAX_LENGTH [DEPTHS_JSON]]]
RECIPES_JSON: [[name, objective, lr, epochs, [a, b], negatives], ...]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    data_dir, backbone, train_run, test_run, out = (Path(a) for a in sys.argv[1:6])
    import torch

    from inpars_core.datasets import load_beir_folder
    from inpars_core.evaluation import evaluate
    from inpars_core.negatives import NegativesConfig, mine_triples, positives_from_qrels
    from inpars_core.records import ScoredDoc
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs
    from inpars_core.reranking.stage import RerankConfig, rerank
    from inpars_core.runs import read_trec_run, top_k
    from inpars_core.training.trainer import DevSet, TrainingConfig, train_reranker

    out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []

    def emit(row: dict) -> None:
        results.append(row)
        print(json.dumps(row), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))

    dataset = load_beir_folder(data_dir, name="scifact")
    documents = {d: doc.contents for d, doc in dataset.corpus.items()}
    train_qrels = dataset.qrels("train")
    bm25_train = read_trec_run(train_run)
    held_out = sorted(train_qrels)[-100:]
    positives = {q: p for q, p in positives_from_qrels(train_qrels).items() if q not in held_out}
    texts = {q: dataset.queries[q].text for q in positives}
    test_queries = dataset.split_queries("test")
    bm25_test = top_k(read_trec_run(test_run), 100)
    measures = ["nDCG@10", "RR@10", "R@100"]
    emit({"run": "bm25", **evaluate(bm25_test, dataset.qrels("test"), measures).aggregate})
    dev = DevSet(
        queries={q: dataset.queries[q].text for q in held_out},
        run={q: bm25_train[q] for q in held_out},
        qrels={q: train_qrels[q] for q in held_out},
        documents=documents,
        depth=30,
    )
    recipes = [
        ("bce-lr2e-5-e3", "bce", 2e-5, 3, (1, 100), 4),
        ("bce-lr5e-5-e3", "bce", 5e-5, 3, (1, 100), 4),
        ("bce-lr1e-4-e3", "bce", 1e-4, 3, (1, 100), 4),
        ("lce-lr5e-5-e3", "lce", 5e-5, 3, (1, 100), 4),
    ]
    if len(sys.argv) > 6:
        recipes = [(n, o, lr, e, tuple(w), k) for n, o, lr, e, w, k in json.loads(sys.argv[6])]
    max_length = int(sys.argv[7]) if len(sys.argv) > 7 else 256
    depths = json.loads(sys.argv[8]) if len(sys.argv) > 8 else [100]
    best_model, best_dev = None, -1.0
    for name, objective, lr, epochs, window, negatives in recipes:
        triples, report = mine_triples(
            texts,
            positives,
            bm25_train,
            sorted(dataset.corpus),
            NegativesConfig(negatives=negatives, window=window),
        )
        config = TrainingConfig(
            objective=objective,
            lr=lr,
            epochs=epochs,
            batch_size=32,
            max_length=max_length,
            eval_every=100,
            bf16=True,
        )
        started = time.perf_counter()
        result = train_reranker(
            triples, documents, config, out / name, dev=dev, base_model=str(backbone)
        )
        emit(
            {
                "run": name,
                "triples": len(triples),
                "train_s": round(time.perf_counter() - started, 1),
                "dev_step0": result.step0_dev_ndcg10,
                "dev_best": result.best_dev_ndcg10,
                "best_step": result.best_step,
                "final_step": result.final_step,
            }
        )
        if result.best_dev_ndcg10 is not None and result.best_dev_ndcg10 > best_dev:
            best_model, best_dev = result.model_dir, result.best_dev_ndcg10

    reranker = load_reranker(str(best_model), ScoringConfig(batch_size=128))
    for depth, mode in [(d, "pair") for d in depths] + [(depths[-1], "separate")]:
        config = RerankConfig(
            depth=depth,
            encoding=EncodingConfig(mode, max_length),
            scoring=ScoringConfig(batch_size=128),
        )
        started = time.perf_counter()
        run, report = rerank(reranker, test_queries, bm25_test, dataset.corpus, config)
        seconds = time.perf_counter() - started
        emit(
            {
                "run": f"rerank-{mode}-depth{depth}",
                "model": str(best_model),
                "pairs": report.pairs,
                "seconds": round(seconds, 1),
                **evaluate(run, dataset.qrels("test"), measures).aggregate,
            }
        )
        if mode == "pair":
            for alpha in (0.3, 0.5, 0.7):
                fused = {}
                for q, docs in run.items():
                    ce = {d.doc_id: d.score for d in docs}
                    bm = {d.doc_id: d.score for d in bm25_test[q][:depth]}

                    def norm(values: dict) -> dict:
                        low, high = min(values.values()), max(values.values())
                        return {k: (v - low) / (high - low or 1.0) for k, v in values.items()}

                    nce, nbm = norm(ce), norm(bm)
                    fused[q] = [ScoredDoc(q, d, alpha * nce[d] + (1 - alpha) * nbm[d]) for d in ce]
                emit(
                    {
                        "run": f"interpolate-ce{alpha}-depth{depth}",
                        **evaluate(fused, dataset.qrels("test"), measures).aggregate,
                    }
                )
    pairs = [
        (q.text, dataset.corpus[d.doc_id].contents)
        for q in list(test_queries.values())[:40]
        for d in bm25_test[q.query_id][:50]
    ]
    for precision in ("fp32", "bf16", "fp16") if torch.cuda.is_available() else ():
        scorer = load_reranker(str(best_model), ScoringConfig(batch_size=256, precision=precision))
        score_pairs(scorer, pairs[:256], EncodingConfig("pair", 256), ScoringConfig(256))
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        score_pairs(scorer, pairs, EncodingConfig("pair", 256), ScoringConfig(256))
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        emit(
            {
                "run": f"speed-{precision}",
                "device": scorer.device,
                "pairs_per_s": round(len(pairs) / (time.perf_counter() - started), 1),
            }
        )


if __name__ == "__main__":
    main()
