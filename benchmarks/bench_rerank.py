"""Cross-encoder reranking speed: our scorer vs ``sentence_transformers.CrossEncoder.predict``.

Model (full size): a MiniLM-L6 cross-encoder trained here on 300 SciFact *train* claims with the
demo's base recipe (:func:`inpars_core.reranking.probe.train_claims_cross_encoder`, ~1-2 min:
no cross-encoder can be downloaded on this machine), max_length 256, batch 32 for both sides.
The quality column is judged on that model, and also reported for a linear probe head on the
frozen bi-encoder backbone (:func:`inpars_core.reranking.probe.fit_probe_head`), whose scores
are nearly tied and so the most fragile to rounding. ``quick=True``: the backbone with a seeded
random 1-logit head (speed does not depend on the head).

Pairs (default): SciFact BM25 (flat index, k1 0.9, b 0.4) top-20 of the first 100 test claims,
2,000 pairs. Speed is timed on every 4th of them (500 pairs, all claims represented), ours and
the reference interleaved over ``ROUNDS`` rounds after a warm-up, median per side; the quality
column is nDCG@10 of the 100 claims reranked with ours against our fp32 torch scorer (which
equals ``CrossEncoder.predict``: tests/test_reranking.py). ``quick=True``: 64 corpus pairs (the
i-th test claim with the i-th corpus document; no JVM), one round, and the max abs score
difference against fp32 instead of nDCG.

Rows: ``bf16`` (torch autocast, oneDNN; AMX where the CPU has it: nDCG@10 moved 0.0001 with a
random head, 0.0056 with the probe head in earlier runs here) and ``onnx-int8`` (ONNX Runtime, fused
attention, int8 per-channel weights: faster than fp32, slower than bf16 with AMX, nDCG@10 moved by
0.002-0.03 in the runs here), each against the same reference.

Run: ``.venv/bin/python benchmarks/bench_rerank.py [--quick]`` (one JSON line per row) or
``make bench``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

BATCH_SIZE = 32
MAX_LENGTH = 256
CLAIMS = 100
DEPTH = 20
TIMED_EVERY = 4
ROUNDS = 3
NDCG_TOLERANCE = 0.002
MIN_RATIO = 2.0
MIN_PAIRS_PER_S = 50.0
#: The precisions compared with CrossEncoder.predict fp32, one row each (the best first).
OURS = ("bf16", "onnx-int8")
#: The quality models (full size): the first is the one the target is judged on.
TRAINED = "cross-encoder trained on 300 train claims"
PROBE = "linear probe on the frozen backbone"


def _model_folder(folder: Path) -> Path:
    """The packaged MiniLM backbone with a seeded 1-logit head, saved to ``folder``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inpars_core.models import resolve_model_path

    torch.manual_seed(0)
    path = resolve_model_path("minilm")
    network = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    network.save_pretrained(folder)
    AutoTokenizer.from_pretrained(path).save_pretrained(folder)
    return folder


def _bm25_head(dataset, index):
    """(queries, BM25 top-``DEPTH`` run) of the first ``CLAIMS`` test claims."""
    from inpars_core.retrieval.bm25 import BM25Retriever

    queries = dict(list(dataset.split_queries("test").items())[:CLAIMS])
    return queries, BM25Retriever(index).retrieve(queries, k=DEPTH)


def _ndcg(scores: list[float], keys: list[tuple[str, str]], qrels) -> float:
    """nDCG@10 of the run these pair scores give, over its own queries."""
    from inpars_core.evaluation import evaluate
    from inpars_core.records import ScoredDoc
    from inpars_core.runs import sort_ranking

    grouped: dict[str, list[ScoredDoc]] = {}
    for (query_id, doc_id), score in zip(keys, scores, strict=True):
        grouped.setdefault(query_id, []).append(ScoredDoc(query_id, doc_id, float(score)))
    run = {query_id: sort_ranking(docs) for query_id, docs in grouped.items()}
    judged = {query_id: qrels[query_id] for query_id in grouped if query_id in qrels}
    return float(evaluate(run, judged, ["nDCG@10"]).aggregate["nDCG@10"])


def run(quick: bool = False) -> list[dict]:
    """Rows (see the module docstring): ours at each of :data:`OURS` vs CrossEncoder.predict."""
    import torch
    from sentence_transformers import CrossEncoder

    from inpars_core.datasets import resolve_dataset
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs

    dataset = resolve_dataset("scifact")
    encoding = EncodingConfig("pair", MAX_LENGTH)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = str(_model_folder(work / "model"))
        quality_models = {"seeded random head": folder}
        if quick:
            claims = list(dataset.split_queries("test").values())
            docs = list(dataset.corpus.values())
            keys = []
            pairs = [(claims[i % len(claims)].text, docs[i].contents) for i in range(64)]
            timed, rounds, source = pairs, 1, "64 corpus pairs (i-th test claim, i-th document)"
        else:
            from inpars_core.reranking.probe import (
                fit_probe_head,
                probe_pairs,
                train_claims_cross_encoder,
            )
            from inpars_core.retrieval.bm25 import IndexConfig, build_index

            index = build_index(dataset, work / "index", IndexConfig("flat"))
            started = time.perf_counter()
            trained = str(train_claims_cross_encoder(dataset, index, work / "trained"))
            train_s = round(time.perf_counter() - started, 1)
            probe = str(fit_probe_head(folder, work / "probe", *probe_pairs(dataset, "train")))
            quality_models = {TRAINED: trained, PROBE: probe}
            folder = trained
            queries, first = _bm25_head(dataset, index)
            keys = [(q, d.doc_id) for q, docs in first.items() for d in docs]
            pairs = [(queries[q].text, dataset.corpus[d].contents) for q, d in keys]
            timed, rounds = pairs[::TIMED_EVERY], ROUNDS
            source = (
                f"SciFact BM25 top-{DEPTH} of the first {len(queries)} test claims "
                f"({len(pairs)} pairs; every {TIMED_EVERY}th timed)"
            )

        loaded, load_s = {}, {}
        for precision in ("fp32", *OURS):
            config = ScoringConfig(batch_size=BATCH_SIZE, device="cpu", precision=precision)
            started = time.perf_counter()
            loaded[precision] = (load_reranker(folder, config, onnx_root=work / "cache"), config)
            load_s[precision] = round(time.perf_counter() - started, 2)
        reference = CrossEncoder(
            folder, max_length=MAX_LENGTH, device="cpu", activation_fn=torch.nn.Identity()
        )

        def ours(precision: str, items) -> list[float]:
            reranker, config = loaded[precision]
            return score_pairs(reranker, items, encoding, config)

        def theirs(items) -> list[float]:
            return [float(x) for x in reference.predict(items, batch_size=BATCH_SIZE)]

        sides = {p: (lambda items, p=p: ours(p, items)) for p in OURS}
        sides["reference"] = theirs
        for call in sides.values():  # warm-up: one batch each
            call(timed[:BATCH_SIZE])
        seconds: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(rounds):
            for name, call in sides.items():
                started = time.perf_counter()
                call(timed)
                seconds[name].append(time.perf_counter() - started)
        rate = {name: len(timed) / statistics.median(s) for name, s in seconds.items()}

        qrels = dataset.qrels("test")
        # quality: each quality model scored at fp32 and at each of OURS (the timed model's
        # rerankers are already loaded; the others are loaded here, one at a time)
        measured: dict[str, dict[str, tuple[float | None, float]]] = {}
        for name, model in quality_models.items():
            scorers = (
                loaded
                if model == folder
                else {
                    p: (load_reranker(model, c, onnx_root=work / "cache"), c)
                    for p, (_, c) in loaded.items()
                }
            )
            baseline = score_pairs(scorers["fp32"][0], pairs, encoding, scorers["fp32"][1])
            measured[name] = {"fp32": (None if quick else _ndcg(baseline, keys, qrels), 0.0)}
            for precision in OURS:
                scores = score_pairs(scorers[precision][0], pairs, encoding, scorers[precision][1])
                diff = max(abs(a - b) for a, b in zip(scores, baseline, strict=True))
                measured[name][precision] = (None if quick else _ndcg(scores, keys, qrels), diff)
        judged_on = next(iter(quality_models))
        rows = []
        for precision in OURS:
            ndcg, diff = measured[judged_on][precision]
            ndcg_fp32 = measured[judged_on]["fp32"][0]
            if quick:
                quality = f"max |score - fp32| {diff:.5f} on {len(pairs)} pairs (no nDCG: quick)"
                quality_ok = True
            else:
                parts = []
                for name in quality_models:
                    value, reference = measured[name][precision][0], measured[name]["fp32"][0]
                    delta = abs(value - reference)
                    parts.append(
                        f"{name}: {value:.4f} vs fp32 {reference:.4f} (|Δ| {delta:.4f} "
                        f"{'<=' if delta <= NDCG_TOLERANCE else '>'} {NDCG_TOLERANCE})"
                    )
                quality_ok = abs(ndcg - ndcg_fp32) <= NDCG_TOLERANCE
                quality = f"nDCG@10 {CLAIMS} claims (BM25 top-{DEPTH}), " + "; ".join(parts)
            ratio = rate[precision] / rate["reference"]
            reranker = loaded[precision][0]
            rows.append(
                {
                    "path": "rerank",
                    "ours": f"{precision} {rate[precision]:.1f} pairs/s",
                    "reference": f"CrossEncoder.predict fp32 {rate['reference']:.1f} pairs/s",
                    "ratio": round(ratio, 3),
                    "target": f">= {MIN_RATIO}x and >= {MIN_PAIRS_PER_S:g} pairs/s, "
                    f"nDCG@10 within ±{NDCG_TOLERANCE} of fp32",
                    "met": bool(
                        ratio >= MIN_RATIO and rate[precision] >= MIN_PAIRS_PER_S and quality_ok
                    ),
                    "quality": quality,
                    "details": {
                        "pairs_source": source,
                        "timed_model": judged_on,
                        "quality_judged_on": judged_on,
                        "trained_model_train_s": None if quick else train_s,
                        "quality": {
                            name: {
                                p: {"ndcg10": v[0], "max_abs_score_diff": v[1]}
                                for p, v in values.items()
                            }
                            for name, values in measured.items()
                        },
                        "pairs_scored_for_quality": len(pairs),
                        "pairs_timed": len(timed),
                        "rounds": rounds,
                        "seconds_ours": [round(s, 3) for s in seconds[precision]],
                        "seconds_reference": [round(s, 3) for s in seconds["reference"]],
                        "batch_size": BATCH_SIZE,
                        "max_length": MAX_LENGTH,
                        "torch_threads": torch.get_num_threads(),
                        "onnx_threads": reranker.onnx.threads if reranker.onnx else None,
                        "load_s": load_s[precision],
                        "load_s_fp32": load_s["fp32"],
                        "ndcg10": ndcg,
                        "ndcg10_fp32": ndcg_fp32,
                        "max_abs_score_diff": diff,
                        "length_sorted_batches": True,
                    },
                }
            )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv[1:]):
        print(json.dumps(row))
