"""P1 pair encoding and P10 train/eval mismatch: how the fine-tuned cross-encoder saw its pairs
in training (the finetune stage's config and ``encoding`` record) and in reranking (the rerank
stage's config, ``encoding`` and ``training_mode`` records), and, with ``probe``, what the
pipeline's encoding does to its scores against the reference pair encoding
``tokenizer(query, doc, truncation="only_second")``.
"""

from __future__ import annotations

import itertools
import json
import logging
import statistics
from typing import Any

from inpars_core.diagnosis.context import MissingEvidenceError, VariantContext, page_link
from inpars_core.diagnosis.findings import Finding
from inpars_core.diagnosis.registry import check

logger = logging.getLogger(__name__)

#: Pairs of the probe set (the first test queries' BM25 lists): at most this many.
PROBE_PAIRS = 16
#: Documents per query in the probe set (so the rank agreement compares several documents).
PROBE_DOCS_PER_QUERY = 4
#: A probe score difference above this (in logits) is the encoding's doing, not arithmetic: the
#: same pair scored in differently padded batches moves by ~1e-6 in fp32.
SCORE_TOLERANCE = 1e-3
#: What each mode does to truncation (P10 compares them between training and reranking).
TRUNCATION = {
    "pair": "only_second",
    "zero-types": "only_second",
    "separate": "concatenation cut at max_length",
}
_EXPECTED_P1 = (
    "nDCG@10 up (the seed went from 0.2949 to 0.7131 with the pair encoding); type-1 token share "
    "above 0 and one [CLS] per pair in training and reranking"
)


def _model_type_vocab_size(ctx: VariantContext, row: dict[str, Any]) -> int:
    """``type_vocab_size`` of the fine-tuned model (its ``config.json``; 1 when absent, as
    transformers' RoBERTa-like configs)."""
    path = ctx.stage_dir(row, ctx.training_stage(row)) / "model" / "config.json"
    if not path.is_file():
        raise MissingEvidenceError(f"neither stage recorded type_vocab_size and {path} is gone")
    return int(json.loads(path.read_text(encoding="utf-8")).get("type_vocab_size", 1) or 1)


def _side_faults(side: str, mode: str, recorded: dict[str, Any], type_vocab_size: int) -> list[str]:
    """What is wrong with one side's (training or reranking) encoding."""
    faults: list[str] = []
    cls = recorded.get("cls_per_pair")
    if isinstance(cls, int | float) and abs(cls - 1.0) > 1e-9:
        faults.append(f"{side}: {cls:g} [CLS] per pair (expected 1)")
    if type_vocab_size < 2:
        return faults
    if mode != "pair":
        faults.append(
            f"{side} encodes pairs as {mode!r} on a model with type_vocab_size {type_vocab_size}"
        )
    elif recorded.get("all_zero_types"):
        faults.append(f"{side}: every token_type_id is 0")
    else:  # the record's own segment problems ([CLS] counted above)
        problems = recorded.get("problems", [])
        faults.extend(f"{side}: {p}" for p in problems if "[CLS]" not in p)
    return faults


def probe_pairs(ctx: VariantContext, row: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(query_id, doc_id, query, document)`` of the probe set: the top
    :data:`PROBE_DOCS_PER_QUERY` BM25 documents of the first test queries, at most
    :data:`PROBE_PAIRS` pairs."""
    from inpars_core.runs import read_trec_run

    run_file = ctx.stage_dir(row, "bm25-test") / "run.trec"
    if not run_file.is_file():
        raise MissingEvidenceError(f"{run_file} is missing (the test BM25 lists)")
    run = read_trec_run(run_file)
    dataset = ctx.dataset()
    ids = ctx.summary.get("test_query_ids") or ctx.manifest.get("test_query_ids") or sorted(run)
    pairs = []
    for query_id in ids:
        if query_id not in run or query_id not in dataset.queries:
            continue
        for doc in run[query_id][:PROBE_DOCS_PER_QUERY]:
            if doc.doc_id in dataset.corpus:
                text = dataset.queries[query_id].text
                pairs.append((query_id, doc.doc_id, text, dataset.corpus[doc.doc_id].contents))
        if len(pairs) >= PROBE_PAIRS:
            break
    if not pairs:
        raise MissingEvidenceError("no test query of the BM25 run has its texts in the dataset")
    return pairs[:PROBE_PAIRS]


def reference_scores(reranker: Any, pairs: list[tuple[str, str]], max_length: int) -> list[float]:
    """Scores of ``pairs`` under the reference pair encoding ``tokenizer(query, doc,
    truncation="only_second", max_length=L)``, one pair per forward pass (no padding);
    ``longest_first`` for a pair whose query is too long to leave room for the document."""
    import torch

    from inpars_core.reranking.scoring import logits_to_scores

    scores = []
    for query, document in pairs:
        try:
            encoded = reranker.tokenizer(
                query, document, truncation="only_second", max_length=max_length,
                return_tensors="pt",
            )  # fmt: skip
        except Exception:  # the tokenizer refuses a query longer than max_length
            encoded = reranker.tokenizer(
                query, document, truncation="longest_first", max_length=max_length,
                return_tensors="pt",
            )  # fmt: skip
        with torch.inference_mode():
            logits = reranker.model(**encoded.to(reranker.device)).logits
        scores.append(float(logits_to_scores(logits.float())[0]))
    return scores


def rank_agreement(keys: list[tuple[str, str]], a: list[float], b: list[float]) -> float:
    """Share of same-query document pairs that ``a`` and ``b`` order alike (ties alike count
    as agreeing): 1 means the same ranking of every probed list."""
    agree = total = 0
    for i, j in itertools.combinations(range(len(keys)), 2):
        if keys[i][0] != keys[j][0]:
            continue
        total += 1
        first, second = a[i] - a[j], b[i] - b[j]
        agree += (first > 0) == (second > 0) and (first < 0) == (second < 0)
    return agree / total if total else 1.0


def probe_encoding(
    ctx: VariantContext, row: dict[str, Any], mode: str, max_length: int
) -> dict[str, Any]:
    """Score the probe set with the fine-tuned model under the pipeline's encoding (``mode``)
    and under the reference encoding: the largest and mean absolute score difference, the rank
    agreement and the pairs that differ most (``qid/docid``)."""
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs

    model_dir = ctx.stage_dir(row, ctx.training_stage(row)) / "model"
    if not (model_dir / "config.json").is_file():
        raise MissingEvidenceError(f"the fine-tuned model {model_dir} is gone")
    probe = probe_pairs(ctx, row)
    texts = [(query, document) for _, _, query, document in probe]
    scoring = ScoringConfig(batch_size=PROBE_PAIRS, device="cpu", precision="fp32")
    reranker = load_reranker(str(model_dir), scoring)
    pipeline = score_pairs(reranker, texts, EncodingConfig(mode, max_length), scoring)  # type: ignore[arg-type]
    reference = reference_scores(reranker, texts, max_length)
    keys = [(query_id, doc_id) for query_id, doc_id, _, _ in probe]
    diffs = [abs(x - y) for x, y in zip(pipeline, reference, strict=True)]
    worst = sorted(range(len(keys)), key=lambda i: -diffs[i])
    return {
        "probe_pairs": len(keys),
        "probe_max_abs_diff": max(diffs),
        "probe_mean_abs_diff": statistics.fmean(diffs),
        "probe_rank_agreement": rank_agreement(keys, pipeline, reference),
        "ids": tuple(f"{keys[i][0]}/{keys[i][1]}" for i in worst[:5] if diffs[i] > SCORE_TOLERANCE),
    }


@check("P1", "pair encoding")
def pair_encoding(ctx: VariantContext) -> Finding:
    """Segment ids switch 0→1 after the first [SEP] and one [CLS] per pair, in training and in
    reranking (the stages' records); with ``probe``, the fine-tuned model's scores of a probe
    set under the pipeline's encoding vs the reference pair encoding.

    fail: a 2-type model trained or reranked with ``zero-types``/``separate`` (or records
    showing the segments wrong), or more than one [CLS] on any model; warn: the records are
    right but the probe scores differ from the reference; n/a: a 1-type model (RoBERTa-like),
    which has no segment ids; ok otherwise."""
    tuned = ctx.tuned_row()
    train_meta, rerank_meta = ctx.meta(tuned, ctx.training_stage(tuned)), ctx.meta(tuned, "rerank")
    train_mode = train_meta.get("config", {}).get("pair_encoding", "pair")
    rerank_mode = rerank_meta.get("config", {}).get("pair_encoding", "pair")
    max_length = int(rerank_meta.get("config", {}).get("max_length", 256))
    train_seen = train_meta.get("encoding") or {}
    rerank_seen = rerank_meta.get("encoding") or {}
    type_vocab_size = int(
        rerank_seen.get("type_vocab_size")
        or train_seen.get("type_vocab_size")
        or _model_type_vocab_size(ctx, tuned)
    )
    evidence: dict[str, Any] = {
        "train_pair_encoding": train_mode,
        "rerank_pair_encoding": rerank_mode,
        "type_vocab_size": type_vocab_size,
        "rerank_type1_share": rerank_seen.get("type1_share"),
        "rerank_cls_per_pair": rerank_seen.get("cls_per_pair"),
        "train_type1_share": train_seen.get("type1_share"),
        "train_cls_per_pair": train_seen.get("cls_per_pair"),
        "train_encoding_recorded": bool(train_seen),
    }
    faults = _side_faults("training", train_mode, train_seen, type_vocab_size)
    faults += _side_faults("reranking", rerank_mode, rerank_seen, type_vocab_size)
    ids: tuple[str, ...] = ()
    probe_text = ""
    probed: dict[str, Any] = {}
    if ctx.probe:
        try:  # the records alone still give a verdict
            probed = probe_encoding(ctx, tuned, rerank_mode, max_length)
        except MissingEvidenceError as exc:
            evidence["probe"] = f"not run: {exc}"
    if probed:
        ids = probed.pop("ids")
        evidence.update(probed)
        probe_text = (
            f"; probe of {probed['probe_pairs']} test pairs: scores differ from the reference "
            f"pair encoding by up to {probed['probe_max_abs_diff']:.3g} (rank agreement "
            f"{probed['probe_rank_agreement']:.2f})"
        )
    evidence = {key: value for key, value in evidence.items() if value is not None}
    page = page_link(
        "encodings", model=ctx.finetune_label(tuned), src="from the data", maxlen=max_length
    )
    fix = {"rerank.pair_encoding": "pair"}
    if ctx.setting("finetune.pair_encoding") is not None:
        fix["finetune.pair_encoding"] = "pair"
    if faults:
        evidence["problems"] = "; ".join(faults)
        return Finding(
            "P1", "pair encoding", "fail",
            f"pair not encoded as a pair: {'; '.join(faults[:2])}{probe_text}",
            evidence, ids, fix, _EXPECTED_P1, page,
        )  # fmt: skip
    if type_vocab_size < 2:
        return Finding(
            "P1", "pair encoding", "n/a",
            f"not checked: the model has type_vocab_size {type_vocab_size} (RoBERTa-like), so "
            f"there are no segment ids to switch; one [CLS] per pair{probe_text}",
            evidence, ids, page=page,
        )  # fmt: skip
    if probed and probed["probe_max_abs_diff"] > SCORE_TOLERANCE:
        return Finding(
            "P1", "pair encoding", "warn",
            f"the stages record a correct pair encoding, yet the pipeline's scores differ from "
            f"the reference `tokenizer(q, d)` encoding{probe_text} (a query cut to fit "
            "max_length does this)",
            evidence, ids, fix, _EXPECTED_P1, page,
        )  # fmt: skip
    trained = "" if train_seen else " (training recorded its mode only)"
    return Finding(
        "P1", "pair encoding", "ok",
        f"pairs encoded as pairs in training and reranking{trained}: token types switch 0→1 "
        f"after the first [SEP], one [CLS]{probe_text}",
        evidence, ids, page=page,
    )  # fmt: skip


def _precision(train_config: dict[str, Any]) -> str:
    return "bf16" if train_config.get("bf16") else "fp32"


@check("P10", "train/eval mismatch")
def train_eval_mismatch(ctx: VariantContext) -> Finding:
    """max_length, truncation, pair encoding and precision of training (the finetune stage's
    config) vs reranking (the rerank stage's config), and dropout at inference (the rerank
    stage's ``training_mode`` record).

    fail: the pair encoding (hence truncation) differs, or the scoring model was in training
    mode; warn: max_length or precision differs; ok otherwise."""
    tuned = ctx.tuned_row()
    train_config = ctx.meta(tuned, ctx.training_stage(tuned)).get("config", {})
    rerank_meta = ctx.meta(tuned, "rerank")
    rerank_config = rerank_meta.get("config", {})
    train_mode = train_config.get("pair_encoding", "pair")
    rerank_mode = rerank_config.get("pair_encoding", "pair")
    train_length, rerank_length = train_config.get("max_length"), rerank_config.get("max_length")
    train_precision, rerank_precision = _precision(train_config), rerank_config.get("precision")
    training_mode = rerank_meta.get("training_mode")
    evidence: dict[str, Any] = {
        "train_max_length": train_length,
        "rerank_max_length": rerank_length,
        "train_pair_encoding": train_mode,
        "rerank_pair_encoding": rerank_mode,
        "train_truncation": TRUNCATION.get(train_mode, train_mode),
        "rerank_truncation": TRUNCATION.get(rerank_mode, rerank_mode),
        "train_precision": train_precision,
        "rerank_precision": rerank_precision or "fp32",
        "rerank_training_mode": "not recorded" if training_mode is None else training_mode,
    }
    label = ctx.finetune_label(tuned)
    page = page_link("encodings", model=label, src="from the data", maxlen=rerank_length)
    failures, warnings, fix = [], [], {}
    if train_mode != rerank_mode:
        failures.append(f"trained with pair encoding {train_mode!r}, reranked with {rerank_mode!r}")
        fix["rerank.pair_encoding"] = "pair"
    if training_mode:
        failures.append("the reranking model was in training mode: dropout was on at inference")
    if train_length is not None and rerank_length is not None and train_length != rerank_length:
        warnings.append(f"trained at max_length {train_length}, reranked at {rerank_length}")
        fix["finetune.max_length"] = rerank_length
    # onnx-fp32 is the same fp32 arithmetic (ONNX Runtime), not a precision mismatch; nor is a
    # fast precision whose top 10 is rescored in fp32 (rerank.exact_top >= 10) for nDCG@10
    exact_top = int(rerank_config.get("exact_top") or 0)
    evidence["rerank_exact_top"] = exact_top
    head_in_fp32 = train_precision == "fp32" and exact_top >= 10
    if (
        rerank_precision
        and rerank_precision.removeprefix("onnx-") != train_precision
        and not head_in_fp32
    ):
        warnings.append(f"trained in {train_precision}, reranked in {rerank_precision}")
        fix["rerank.precision"] = train_precision
    expected = (
        "the model is scored on inputs shaped as in training: nDCG@10 not lower, usually higher"
    )
    if failures or warnings:
        verdict = "fail" if failures else "warn"
        return Finding(
            "P10", "train/eval mismatch", verdict,
            "training and reranking differ: " + "; ".join(failures + warnings),
            evidence, (), fix, expected, page,
        )  # fmt: skip
    dropout = (
        "dropout off at inference"
        if training_mode is False
        else "inference mode not recorded by this rerank stage (rerun it to record it)"
    )
    return Finding(
        "P10", "train/eval mismatch", "ok",
        f"training and reranking agree: max_length {rerank_length}, pair encoding "
        f"{rerank_mode!r}, {train_precision}; {dropout}",
        evidence, (), page=page,
    )  # fmt: skip
