"""Cross-encoder training speed (issue 15, "Training"): pairs/s of our trainer's fast path (bf16
autocast and AdamW's fused kernel) next to the trainer before issue 15 (fp32, torch's foreach
AdamW, plain batches), both through :func:`inpars_core.training.train_reranker` (the train
stage's trainer) on the same SciFact train-claim triples, same seed, max_length 128, batch 16.

The reference is the same trainer with the levers switched off by their options (``bf16=False``,
``fused_optimizer=False``, ``length_buckets=0``). Pairs/s are read from the trainer's own
``train_log.jsonl`` (per-update seconds: forward, backward, clipping, optimizer step) over the
updates after ``warmup`` warm-up updates; checkpoints and evaluation are left out of the runs.
Runs, in this order: fp32 foreach (reference), fp32 fused, bf16 fused, bf16 fused + length
buckets, then at batch 4 (the demo's fine-tuning) fp32 foreach and fp32 fused. Rows: the fast
path vs the reference (the target), and each lever alone.

Triples: the first train claims with a judged document, each with 3 negatives drawn by a
seeded RNG from the corpus (random negatives: the speed depends on the pairs' lengths, not on
how hard they are), objective lce (the base reranker's default: one query's positive and
negatives stay in one batch).

Quality: runs on the same batches give a loss per update each; a lever's row reports their
largest per-update difference. The target row and the bucketing row (bucketing reorders the
batches) compare the mean loss of the last 10 updates, against a tolerance of twice the standard
error of that difference (the per-update losses scatter from batch to batch: a smaller
difference is noise).

Threads: torch's, as the process has them (``OMP_NUM_THREADS``; recorded in ``details``). Measured
on 2 cores shared with other jobs (load 7-10), two threads per process ran every setting 2-3x
slower than one, and bf16 (more, smaller parallel regions) slower than fp32; on one thread bf16
was ~2x fp32. Measure on an idle machine, or pin one thread on a busy one.

Run: ``.venv/bin/python benchmarks/bench_train.py [--quick]`` (JSON lines).
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PATH = "train"
TARGET_RATIO = 1.5
MAX_LENGTH = 128
BATCH_SIZE = 16
NEGATIVES = 3
LAST = 10
SMALL_BATCH = 4
#: (name, bf16, length-bucket window, fused AdamW): "fp32" is the trainer before issue 15.
RUNS = (
    ("fp32", False, 0, False),
    ("fp32+fused", False, 0, True),
    ("bf16+fused", True, 0, True),
    ("bf16+fused+buckets", True, 8, True),
)


def _triples(steps: int) -> tuple[list[Any], dict[str, str]]:
    """Enough lce triples for ``steps`` updates of :data:`BATCH_SIZE` (one epoch), and the
    documents' texts."""
    from inpars_core.datasets import resolve_dataset
    from inpars_core.records import Triple

    dataset = resolve_dataset("scifact")
    queries = dataset.split_queries("train")
    qrels = dataset.qrels("train")
    documents = {doc_id: doc.contents for doc_id, doc in dataset.corpus.items()}
    doc_ids = sorted(documents)
    rng = random.Random(0)
    triples: list[Triple] = []
    wanted = steps * BATCH_SIZE
    for query_id in sorted(qrels):
        if query_id not in queries or len(triples) >= wanted:
            continue
        positive = sorted(qrels[query_id])[0]
        for _ in range(NEGATIVES):
            negative = rng.choice(doc_ids)
            while negative in qrels[query_id]:
                negative = rng.choice(doc_ids)
            triples.append(Triple(query_id, queries[query_id].text, positive, negative, "random"))
    return triples, documents


def _train(
    triples: list[Any],
    documents: dict[str, str],
    steps: int,
    bf16: bool,
    buckets: int,
    fused: bool = True,
    batch_size: int = BATCH_SIZE,
) -> list[dict[str, Any]]:
    """One training run of ``steps`` updates; its train-log records."""
    from inpars_core.training import train_reranker
    from inpars_core.training.trainer import TrainingConfig

    config = TrainingConfig(
        objective="lce",
        lr=1e-4,
        max_steps=steps,
        batch_size=batch_size,
        max_length=MAX_LENGTH,
        eval_every=10**9,
        probe_size=0,
        bf16=bf16,
        length_buckets=buckets,
        fused_optimizer=fused,
        device="cpu",
        seed=0,
    )
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out"
        train_reranker(triples, documents, config, out, base_model="minilm")
        lines = (out / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _speed(records: list[dict[str, Any]], warmup: int) -> tuple[float, int, float]:
    """(pairs/s, pairs, seconds) over the updates after ``warmup``."""
    timed = records[warmup:]
    pairs = sum(int(r["pairs"]) for r in timed)
    seconds = sum(float(r["seconds"]) for r in timed)
    return pairs / seconds if seconds else 0.0, pairs, seconds


def _last_mean(records: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean loss of the last :data:`LAST` updates and its standard error."""
    losses = [float(r["loss"]) for r in records[-LAST:]]
    spread = statistics.stdev(losses) if len(losses) > 1 else 0.0
    return statistics.fmean(losses), spread / math.sqrt(len(losses))


def run(quick: bool = False) -> list[dict]:
    """Rows: bf16 + length buckets vs fp32 plain (the target), bf16 alone, buckets alone."""
    import torch

    steps = 6 if quick else 60
    warmup = 1 if quick else 3
    triples, documents = _triples(steps)
    runs: dict[str, list[dict[str, Any]]] = {}
    wall: dict[str, float] = {}
    for name, bf16, buckets, fused in RUNS:
        started = time.perf_counter()
        runs[name] = _train(triples, documents, steps, bf16, buckets, fused)
        wall[name] = round(time.perf_counter() - started, 1)
    # the demo's fine-tuning shape: batch 4 (lce: 4 groups of 5 pairs per update), where the
    # optimizer step over all parameters weighs most
    for name, fused in (("fp32-b4", False), ("fp32+fused-b4", True)):
        started = time.perf_counter()
        runs[name] = _train(triples, documents, steps, False, 0, fused, batch_size=SMALL_BATCH)
        wall[name] = round(time.perf_counter() - started, 1)
    speed = {name: _speed(records, warmup) for name, records in runs.items()}
    settings = {
        "steps": steps,
        "warmup_steps": warmup,
        "batch_size": BATCH_SIZE,
        "max_length": MAX_LENGTH,
        "objective": "lce",
        "negatives_per_positive": NEGATIVES,
        "triples": len(triples),
        "length_buckets_window": 8,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "wall_s": wall,
        "pairs_per_s": {name: round(value[0], 2) for name, value in speed.items()},
        "timed_pairs": {name: value[1] for name, value in speed.items()},
        "timed_seconds": {name: round(value[2], 2) for name, value in speed.items()},
        "losses": {name: [round(float(r["loss"]), 4) for r in recs] for name, recs in runs.items()},
    }

    def last_mean_check(ours: str, reference: str) -> tuple[str, bool]:
        (m_ours, se_ours), (m_ref, se_ref) = _last_mean(runs[ours]), _last_mean(runs[reference])
        tolerance = 2 * math.hypot(se_ours, se_ref)
        diff = abs(m_ours - m_ref)
        return (
            f"mean loss of the last {min(LAST, steps)} updates: {m_ours:.4f} vs {reference} "
            f"{m_ref:.4f} (|Δ| {diff:.4f} <= 2 SE {tolerance:.4f})",
            diff <= tolerance,
        )

    def per_step_check(ours: str, reference: str) -> tuple[str, bool]:
        diff = max(
            abs(float(a["loss"]) - float(b["loss"]))
            for a, b in zip(runs[ours], runs[reference], strict=True)
        )
        return f"loss curve, same batches, {steps} updates: max |Δ| vs {reference} {diff:.4f}", True

    rows = []
    for ours, reference, target, label in (
        ("bf16+fused", "fp32", TARGET_RATIO, "bf16 autocast + fused AdamW"),
        ("fp32+fused", "fp32", None, "fused AdamW alone (fp32)"),
        ("bf16+fused", "fp32+fused", None, "bf16 autocast alone (fused both)"),
        ("bf16+fused+buckets", "bf16+fused", None, "length buckets alone (bf16, fused)"),
        ("fp32+fused-b4", "fp32-b4", None, f"fused AdamW alone, batch {SMALL_BATCH} (the demo's)"),
    ):
        ratio = speed[ours][0] / speed[reference][0] if speed[reference][0] else 0.0
        if target or "buckets" in ours:  # the target, and reordered batches: last losses
            quality, close = last_mean_check(ours, reference)
        else:
            quality, close = per_step_check(ours, reference)
        rows.append(
            {
                "path": PATH,
                "ours": f"{label} {speed[ours][0]:.1f} pairs/s",
                "reference": f"train_reranker {reference} {speed[reference][0]:.1f} pairs/s",
                "ratio": round(ratio, 3),
                "target": f">= {TARGET_RATIO}x at the same loss curve" if target else "lever alone",
                "met": bool(ratio >= TARGET_RATIO and close) if target else bool(close),
                "quality": quality,
                "details": settings if target else {"ours": ours, "reference": reference},
            }
        )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv[1:]):
        print(json.dumps(row))
