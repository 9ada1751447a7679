"""rerank: re-score the top ``depth`` of a run with a cross-encoder or a bi-encoder.

The output is the ranking as shown: the reranked head, then the first stage's tail below it
(:func:`~inpars_core.runs.with_first_stage_tail`), so R@100 of a depth-20 rerank is the recall of
the whole list. Cross-encoder scores go to the artifact's own ``scores.tsv`` as they are computed
(a crashed run resumes from it) and, with ``cache`` on, to the per-model cache shared by every
run (:class:`~inpars_core.reranking.stage.ScoreCache`). A bi-encoder encodes the documents of
the head on the fly (:func:`~inpars_core.dense.search.rerank_with_encoder`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from inpars_core.errors import InputFormatError
from inpars_core.options import NON_NEGATIVE_INT, POSITIVE_INT, option, validate
from inpars_core.reranking.encoding import PairEncoding
from inpars_core.reranking.scoring import Precision
from inpars_core.stages.common import (
    Progress,
    dataset_record,
    first_queries,
    load_dataset,
    no_progress,
)
from inpars_core.stages.contract import (
    Artifact,
    check_same_corpus,
    input_artifact,
    open_input,
    write_stage_meta,
)

NAME = "rerank"
HELP = "rerank the top-k of a run with a cross-encoder (or a bi-encoder)"
OUTPUT = "run"
RUN_FILE = "run.trec"
#: The item-level score cache inside the artifact folder (cross-encoder).
SCORES_FILE = "scores.tsv"
#: Reranked pairs (the first, in query then first-stage order) whose encoding meta.json describes.
ENCODING_SAMPLE = 64


@dataclass(frozen=True)
class Config:
    """How deep to rerank, with which kind of model, and how pairs are encoded and scored."""

    family: Literal["cross-encoder", "bi-encoder"] = option(
        "cross-encoder", "cross-encoder: score (query, document) pairs; bi-encoder: embeddings"
    )
    depth: int = option(100, "documents reranked per query", check=POSITIVE_INT)
    pair_encoding: PairEncoding = option(  # noqa: RUF009 (a Literal of str: immutable)
        "pair",
        "cross-encoder: how a pair is encoded ('pair' is right; 'zero-types' is the seed's bug: "
        "every token_type_id 0; 'separate': texts encoded apart, two [CLS])",
    )
    max_length: int = option(
        256, "word-pieces per pair (per text for a bi-encoder)", check=POSITIVE_INT
    )
    batch_size: int = option(32, "pairs (bi-encoder: texts) per forward pass", check=POSITIVE_INT)
    device: str = option("auto", "torch device: auto, cpu, cuda, mps")
    precision: Precision = option(  # noqa: RUF009 (a Literal of str: immutable)
        "fp32",
        "cross-encoder inference precision: fp32; bf16/fp16 autocast; int8 (torch dynamic); "
        "onnx-fp32, onnx-int8 (ONNX Runtime on the CPU, fused attention; onnx-int8: int8 "
        "weights, the fastest on a CPU; the graph is exported once into $INPARS_CACHE_DIR/onnx)",
    )
    exact_top: int = option(
        0,
        "cross-encoder: rescore in fp32 each query's top N and every pair whose fast score is "
        "near it, after a faster precision (bf16, fp16, onnx-*): the top N then ranks as fp32 "
        "ranks it (nDCG@10 equal to fp32's with 10) at most of that precision's speed; 0: off",
        check=NON_NEGATIVE_INT,
    )
    cache: bool = option(
        True,
        "cross-encoder: also read and write the per-model score cache under $INPARS_CACHE_DIR "
        "(the artifact's own scores.tsv is always kept: a crashed run resumes from it)",
    )
    chunk_pairs: int = option(
        256, "cross-encoder: pairs scored between cache writes", check=POSITIVE_INT
    )
    similarity: Literal["cosine", "dot"] = option("cosine", "bi-encoder: cosine or dot product")

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class Inputs:
    """The dataset and queries, the first-stage run and the model."""

    dataset: str = option(help="BEIR name (scifact, ...) or a BEIR-layout folder")
    run: str = option(help="first-stage run: the --out of 'inpars retrieve' (or a TREC file)")
    model: str = option(
        help="hub id, folder, 'minilm', or the --out of 'inpars train' / 'inpars train-dense'"
    )
    split: str = option("test", "qrels split whose queries are reranked")
    max_queries: int | None = option(
        None, "only the first N queries of --split", check=POSITIVE_INT
    )

    def __post_init__(self) -> None:
        validate(self)


def run(
    config: Config, inputs: Inputs, out_dir: Path, progress: Progress | None = None
) -> Artifact:
    """Rerank ``inputs.run`` and write ``run.trec`` (and ``scores.tsv``) into ``out_dir``."""
    from inpars_core.models import model_fingerprint
    from inpars_core.runs import read_trec_run, run_size, top_k, write_trec_run

    started = time.perf_counter()
    dataset = load_dataset(inputs.dataset)
    queries = first_queries(dataset, inputs.split, inputs.max_queries)
    if Path(inputs.model).exists():
        open_input(inputs.model, "model", flag="--model")  # a folder, not a file
    check_same_corpus(inputs.run, dataset, "--run")
    first = read_trec_run(open_input(inputs.run, "run", flag="--run"))
    check_run_queries(first, dataset, inputs.split, queries, inputs.run)
    total = run_size(top_k({q: d for q, d in first.items() if q in queries}, config.depth))
    tick = (progress or no_progress)(f"rerank@{config.depth}", total)
    reranking = time.perf_counter()
    extra: dict[str, Any] = {}
    if config.family == "cross-encoder":
        reranked, counts, fingerprint, recorded = _cross_encoder(
            config, inputs, out_dir, queries, first, dataset, tick
        )
        extra.update(recorded)
    else:
        reranked, fingerprint = _bi_encoder(config, inputs, queries, first, dataset), None
        tick(total)
        counts = {"pairs": total}
    seconds = round(time.perf_counter() - reranking, 3)
    write_trec_run(reranked, Path(out_dir) / RUN_FILE, tag=f"rerank-{config.family}")
    return write_stage_meta(
        out_dir,
        stage=NAME,
        type=OUTPUT,
        config=config,
        inputs=dataset_record(
            dataset,
            split=inputs.split,
            max_queries=inputs.max_queries,
            run=input_artifact(inputs.run),
            model=input_artifact(inputs.model),
            model_fingerprint=fingerprint or model_fingerprint(inputs.model),
        ),
        counts={"queries": len(reranked), **counts},
        timings={"rerank_s": seconds},
        started=started,
        extra=extra,
    )


def check_run_queries(first, dataset, split: str, selected, run_path: str) -> None:
    """Refuse a run that is not of ``split``'s queries (a query outside the split would be
    silently left out) or that holds none of the ``selected`` ones (an empty rerank)."""
    judged = dataset.split_queries(split)
    outside = [query_id for query_id in first if query_id not in judged]
    fix = (
        f"rerank a run of this split ('inpars retrieve --split {split}'), or give the "
        "--split and --dataset the run was retrieved for"
    )
    if outside or not first:
        found = (
            f"{len(outside)} of its {len(first)} queries outside it (first: {outside[0]!r})"
            if outside
            else "no query at all"
        )
        raise InputFormatError(
            run_path,
            f"--run: expected a run of the queries of split {split!r} of {dataset.name!r}, "
            f"found {found}",
            field="query_id",
            fix=fix,
        )
    if not any(query_id in selected for query_id in first):
        raise InputFormatError(
            run_path,
            f"--run: none of its {len(first)} queries is among the {len(selected)} selected "
            f"queries of split {split!r} (--max-queries)",
            field="query_id",
            fix="raise --max-queries, or rerank the run the first queries were retrieved into",
        )


def _cross_encoder(
    config: Config, inputs: Inputs, out_dir: Path, queries, first, dataset, tick
) -> tuple[Any, dict[str, Any], str, dict[str, Any]]:
    """(the reranked run, counts, the model fingerprint, what meta.json records of how it
    scored: ``encoding``, what its pair encoding looked like, and ``training_mode``, whether any
    module of the scoring model was in training mode, i.e. dropout on) with a cross-encoder."""
    from inpars_core.reranking.encoding import EncodingConfig, encoding_stats
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker
    from inpars_core.reranking.stage import RerankConfig, ScoreCache, ScoreCaches, rerank
    from inpars_core.runs import top_k

    scoring = ScoringConfig(
        batch_size=config.batch_size, device=config.device, precision=config.precision
    )
    rerank_config = RerankConfig(
        depth=config.depth,
        encoding=EncodingConfig(config.pair_encoding, config.max_length),
        scoring=scoring,
        chunk_pairs=config.chunk_pairs,
        exact_top=config.exact_top,
    )
    reranker = load_reranker(inputs.model, scoring)
    # the shared cache first: a kill between the two writes leaves the artifact's file behind
    caches = [ScoreCache.for_model(reranker, rerank_config)] if config.cache else []
    caches.append(ScoreCache(Path(out_dir) / SCORES_FILE))  # item-level: a rerun resumes here
    reranked, report = rerank(
        reranker, queries, first, dataset.corpus, rerank_config, ScoreCaches(caches), tick
    )
    counts = {"pairs": report.pairs, "scored": report.scored, "cached": report.cached}
    if config.exact_top:
        counts["rescored_fp32"] = report.rescored_fp32
    sample = [
        (queries[query_id].text, dataset.corpus[doc.doc_id].contents)
        for query_id, docs in sorted(top_k(reranked, config.depth).items())
        for doc in sorted(docs, key=lambda d: d.doc_id)
    ][:ENCODING_SAMPLE]
    encoding = encoding_stats(
        reranker.tokenizer,
        [q for q, _ in sample],
        [d for _, d in sample],
        rerank_config.encoding,
        reranker.type_vocab_size,
    )
    # dropout off at inference (P10): every module of the scoring model in eval mode
    training_mode = any(module.training for module in reranker.model.modules())
    recorded = {
        "encoding": encoding,
        "training_mode": training_mode,
        "scoring": {
            **scoring_record(reranker),
            "exact_top": config.exact_top,
            "exact_margin": report.exact_margin,
        },
    }
    return reranked, counts, reranker.fingerprint, recorded


def scoring_record(reranker: Any) -> dict[str, Any]:
    """How a cross-encoder scored, as meta.json records it (key ``scoring``): the precision
    actually used, the backend (torch or onnxruntime), the device, the threads and, for the
    ``onnx-*`` precisions, the cached graph file."""
    import torch

    onnx = reranker.onnx
    return {
        "precision": reranker.precision,
        "backend": "onnxruntime" if onnx is not None else "torch",
        "device": reranker.device,
        "threads": onnx.threads if onnx is not None else torch.get_num_threads(),
        "onnx_file": str(onnx.path) if onnx is not None else None,
    }


def _bi_encoder(config: Config, inputs: Inputs, queries, first, dataset) -> Any:
    """The run reranked with a bi-encoder (documents encoded on the fly)."""
    from inpars_core.dense.encoder import load_encoder
    from inpars_core.dense.search import rerank_with_encoder

    device = None if config.device == "auto" else config.device
    encoder = load_encoder(inputs.model, max_length=config.max_length, device=device)
    return rerank_with_encoder(
        encoder,
        queries,
        first,
        dataset.corpus,
        depth=config.depth,
        similarity=config.similarity,
        batch_size=config.batch_size,
    )


def describe(artifact: Artifact) -> str:
    """The line the command prints."""
    counts, seconds = artifact.counts, artifact.meta["timings"]["rerank_s"]
    if artifact.meta["config"]["family"] == "bi-encoder":
        return (
            f"reranked {counts['pairs']} pairs with a bi-encoder in {seconds:.1f} s "
            f"-> {artifact.data}"
        )
    return (
        f"reranked {counts['pairs']} pairs ({counts['cached']} from cache) in {seconds:.1f} s "
        f"-> {artifact.data}"
    )
