"""ONNX Runtime reranking (``onnx-fp32``, ``onnx-int8``) against the torch fp32 scorer (issue 15).

Tolerances:
- ``onnx-fp32`` runs the same fp32 arithmetic with fused kernels (another summation order):
  differences are float32 rounding, ~1e-7 on these logits (measured 6e-8); the bound is 1e-5.
- ``onnx-int8`` quantises every weight to int8 per output channel (rounding error up to 1/254 of
  the channel's largest weight) and every activation feeding a MatMul to uint8 per tensor, through
  six layers. On this model (seeded 1-logit head, scores spread ~0.015, range ~0.06) the measured
  max difference was 0.005-0.007 over SciFact pairs at 256 tokens; the bound is 0.02 (3x that),
  with rank agreement checked separately (Spearman). The ranking quality that matters (nDCG@10
  within ±0.002 of fp32 on 100 claims) is the slow test at the end, on a cross-encoder trained
  on SciFact train claims and on a probe head fitted to them (:mod:`inpars_core.reranking.probe`):
  bf16 misses it on both (a strict xfail with the measured numbers); bf16 with ``exact_top = 10``
  meets it on both (the same top 10 as fp32 for every claim).
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path

import pytest

from inpars_core.errors import ConfigError
from inpars_core.reranking.encoding import PAIR_ENCODINGS, EncodingConfig
from inpars_core.reranking.scoring import PRECISIONS, ScoringConfig, load_reranker, score_pairs
from tests.conftest import save_seeded_reranker

pytestmark = pytest.mark.integration

FP32_TOLERANCE = 1e-5
INT8_TOLERANCE = 0.02
MIN_SPEARMAN = 0.8
NDCG_TOLERANCE = 0.002
#: The precisions whose nDCG@10 must stay within NDCG_TOLERANCE of fp32 (the slow test). Not
#: onnx-int8: measured on these 2,000 pairs it moved nDCG@10 by 0.002-0.018 depending on the
#: head (seeded random head: 0.2315 -> 0.2250), so it is offered as the fastest, not as exact.
NDCG_PRECISIONS = ("bf16",)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The packaged MiniLM backbone with a seeded 1-logit head, saved once (a fixed model)."""
    return save_seeded_reranker(tmp_path_factory.mktemp("onnx-reranker") / "model")


@pytest.fixture(scope="module")
def onnx_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def loaded(model_dir: Path, onnx_root: Path) -> dict:
    """fp32 (torch), onnx-fp32 and onnx-int8 rerankers of the same model."""
    return {
        precision: load_reranker(
            str(model_dir), ScoringConfig(precision=precision), onnx_root=onnx_root
        )
        for precision in ("fp32", "onnx-fp32", "onnx-int8")
    }


@pytest.fixture(scope="module")
def pairs(scifact) -> list[tuple[str, str]]:
    """24 SciFact pairs: each of 6 test claims with a relevant document and 3 others (long
    abstracts: most are truncated at 128 tokens, so padding and truncation are exercised)."""
    qrels = scifact.qrels("test")
    claims = [q for q in scifact.split_queries("test").values() if q.query_id in qrels][:6]
    docs = list(scifact.corpus.values())
    out = []
    for n, claim in enumerate(claims):
        relevant = next(iter(qrels[claim.query_id]))
        out.append((claim.text, scifact.corpus[relevant].contents))
        out.extend((claim.text, docs[(n * 97 + k * 31) % len(docs)].contents) for k in range(3))
    return out


def _spearman(a: list[float], b: list[float]) -> float:
    rank_a = {i: r for r, i in enumerate(sorted(range(len(a)), key=a.__getitem__))}
    rank_b = {i: r for r, i in enumerate(sorted(range(len(b)), key=b.__getitem__))}
    return statistics.correlation(
        [rank_a[i] for i in range(len(a))], [rank_b[i] for i in range(len(b))]
    )


@pytest.mark.parametrize("mode", PAIR_ENCODINGS)
def test_onnx_scores_match_torch_fp32_in_every_pair_encoding(loaded, pairs, mode) -> None:
    encoding = EncodingConfig(mode, 128)
    reference = score_pairs(loaded["fp32"], pairs, encoding, ScoringConfig(batch_size=8))
    fp32 = score_pairs(loaded["onnx-fp32"], pairs, encoding, ScoringConfig(batch_size=8))
    int8 = score_pairs(loaded["onnx-int8"], pairs, encoding, ScoringConfig(batch_size=8))
    assert max(abs(a - b) for a, b in zip(fp32, reference, strict=True)) <= FP32_TOLERANCE
    assert max(abs(a - b) for a, b in zip(int8, reference, strict=True)) <= INT8_TOLERANCE
    assert _spearman(int8, reference) >= MIN_SPEARMAN
    assert loaded["onnx-int8"].onnx.input_names == ("input_ids", "attention_mask", "token_type_ids")


def test_onnx_keeps_the_token_type_bug_reproducible(loaded, pairs) -> None:
    """zero-types and separate change the scores in ONNX exactly as in torch: token types (and
    the second [CLS]) reach the exported graph."""
    scores = {
        mode: score_pairs(loaded["onnx-fp32"], pairs, EncodingConfig(mode, 128))
        for mode in PAIR_ENCODINGS
    }
    for mode in ("zero-types", "separate"):
        change = max(abs(a - b) for a, b in zip(scores[mode], scores["pair"], strict=True))
        assert change > 100 * FP32_TOLERANCE, mode


def test_onnx_graph_is_cached_and_reused(model_dir: Path, onnx_root: Path, loaded, caplog) -> None:
    first = loaded["onnx-int8"].onnx_file
    assert first is not None and first.parent == onnx_root / "onnx" and first.is_file()
    assert first != loaded["onnx-fp32"].onnx_file  # keyed by precision
    before = first.stat()
    with caplog.at_level(logging.INFO, logger="inpars_core.reranking.onnx_backend"):
        again = load_reranker(
            str(model_dir), ScoringConfig(precision="onnx-int8"), onnx_root=onnx_root
        )
    assert again.onnx_file == first
    after = first.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "reusing the onnx-int8 graph" in caplog.text and "exporting" not in caplog.text
    # atomic writes: no temporary export folder or file is left behind
    assert sorted(p.name for p in (onnx_root / "onnx").iterdir()) == sorted(
        p.name for p in (loaded["onnx-fp32"].onnx_file, first)
    )


def test_bad_precision_is_one_clear_error(model_dir: Path, tmp_path: Path) -> None:
    from inpars_core.experiments.config import load_config
    from inpars_core.stages import rerank

    assert {"onnx-fp32", "onnx-int8"} <= set(PRECISIONS)
    with pytest.raises(
        ConfigError, match=r"precision: expected one of fp32, .*onnx-int8, found 'onnx-fp8'"
    ):
        ScoringConfig(precision="onnx-fp8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"precision: expected one of .*onnx-int8, found 'int4'"):
        rerank.Config(precision="int4")  # type: ignore[arg-type]
    bad = tmp_path / "bad.toml"
    bad.write_text('[rerank]\nprecision = "onnx-fp8"\n')
    with pytest.raises(ConfigError, match=r"rerank\.precision: expected one of .*onnx-int8"):
        load_config(bad)
    good = tmp_path / "good.toml"
    good.write_text('[rerank]\nprecision = "onnx-int8"\n')
    assert load_config(good).rerank.precision == "onnx-int8"
    with pytest.raises(ConfigError, match=r"runs on the CPU.*got device 'cuda'"):
        load_reranker(str(model_dir), ScoringConfig(device="cuda", precision="onnx-int8"))


def test_rerank_stage_records_the_precision_used(
    tiny_dir: Path, model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from inpars_core.stages import rerank

    monkeypatch.setenv("INPARS_CACHE_DIR", str(tmp_path / "cache"))
    first = tmp_path / "bm25.trec"
    from inpars_core.datasets import load_beir_folder

    dataset = load_beir_folder(tiny_dir, name="tiny")
    lines = [
        f"{query_id} Q0 {doc_id} {rank + 1} {10.0 - rank} bm25"
        for query_id in dataset.split_queries("test")
        for rank, doc_id in enumerate(sorted(dataset.corpus))
    ]
    first.write_text("\n".join(lines) + "\n")
    artifact = rerank.run(
        rerank.Config(depth=3, max_length=64, precision="onnx-fp32", cache=False),
        rerank.Inputs(dataset=str(tiny_dir), run=str(first), model=str(model_dir)),
        tmp_path / "out",
    )
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    scoring = meta["scoring"]
    assert meta["config"]["precision"] == scoring["precision"] == "onnx-fp32"
    assert scoring["backend"] == "onnxruntime" and scoring["threads"] >= 1
    assert Path(scoring["onnx_file"]).parent == tmp_path / "cache" / "onnx"
    assert artifact.counts["scored"] == artifact.counts["pairs"] > 0


@pytest.fixture(scope="module")
def test_head(scifact, tmp_path_factory) -> dict:
    """A flat BM25 index, the first 100 test claims, their BM25 top-20 and their judgements."""
    from inpars_core.retrieval.bm25 import BM25Retriever, IndexConfig, build_index

    index = build_index(scifact, tmp_path_factory.mktemp("bm25") / "index", IndexConfig("flat"))
    queries = dict(list(scifact.split_queries("test").items())[:100])
    qrels = scifact.qrels("test")
    return {
        "index": index,
        "queries": queries,
        "first": BM25Retriever(index).retrieve(queries, k=20),
        "judged": {q: qrels[q] for q in queries if q in qrels},
    }


def _ndcg_by_precision(scifact, model: Path, test_head: dict, cache: Path) -> dict[str, float]:
    """nDCG@10 of the 100 claims' BM25 top-20 reranked by ``model`` at fp32 and each of
    :data:`NDCG_PRECISIONS` (max_length 256)."""
    from inpars_core.evaluation import evaluate
    from inpars_core.reranking.stage import RerankConfig, rerank
    from inpars_core.runs import top_k

    ndcg = {}
    for precision in ("fp32", *NDCG_PRECISIONS):
        scoring = ScoringConfig(precision=precision)
        reranker = load_reranker(str(model), scoring, onnx_root=cache)
        config = RerankConfig(depth=20, encoding=EncodingConfig("pair", 256), scoring=scoring)
        run, report = rerank(
            reranker, test_head["queries"], test_head["first"], scifact.corpus, config
        )
        assert report.scored == report.pairs == 2000
        ndcg[precision] = evaluate(top_k(run, 20), test_head["judged"], ["nDCG@10"]).aggregate[
            "nDCG@10"
        ]
    return ndcg


#: Measured here (idle 2-core Xeon with AMX, 2026-11-27, benchmarks/bench_rerank.py): fp32 vs bf16
#: nDCG@10 on the 100 claims, BM25 top-20, 256 tokens. A 100-claim nDCG@10 moves by ~0.004 when
#: one query swaps its relevant document between ranks 1 and 2, so ±0.002 allows no such swap.
BF16_MEASURED = {
    "trained": "cross-encoder trained on 300 train claims: fp32 0.3798, bf16 0.3707 (|Δ| 0.0090; "
    "max |Δ score| 0.011)",
    "probe": "linear probe head on the frozen bi-encoder backbone: fp32 0.3694, bf16 0.3640 "
    "(|Δ| 0.0054; max |Δ score| 0.062)",
}


@pytest.fixture(scope="module")
def quality_scorer(scifact, model_dir: Path, test_head: dict, tmp_path_factory):
    """``quality_scorer(name)``: the folder of the ``trained`` cross-encoder or the ``probe``
    head, each built once per module (training takes ~1.5 min)."""
    from inpars_core.reranking.probe import (
        fit_probe_head,
        probe_pairs,
        train_claims_cross_encoder,
    )

    built: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in built:
            folder = tmp_path_factory.mktemp(name)
            if name == "trained":
                built[name] = train_claims_cross_encoder(scifact, test_head["index"], folder)
            else:  # a head fitted on train claims: a random head ranks near chance (probe.py)
                built[name] = fit_probe_head(model_dir, folder, *probe_pairs(scifact, "train"))
        return built[name]

    return build


@pytest.mark.slow  # a model (trained ~1.5 min, or a probe head) and 2,000 pairs at 256, twice
@pytest.mark.xfail(
    strict=True,
    reason="bf16 autocast is not within ±0.002 nDCG@10 of fp32 on either model: "
    + "; ".join(BF16_MEASURED.values())
    + ". The speed rows of make bench say so too (issue 15)",
)
@pytest.mark.parametrize("model", list(BF16_MEASURED))
def test_bf16_ndcg_within_0002_of_fp32_on_100_claims(
    scifact, model: str, quality_scorer, test_head: dict, tmp_path: Path
) -> None:
    ndcg = _ndcg_by_precision(scifact, quality_scorer(model), test_head, tmp_path / "cache")
    assert ndcg["fp32"] > 0.3, ndcg  # a model that ranks (a random head: ~0.23)
    for precision in NDCG_PRECISIONS:
        assert abs(ndcg[precision] - ndcg["fp32"]) <= NDCG_TOLERANCE, ndcg


@pytest.mark.slow  # the same models and pairs: fp32, then bf16 with ~half the pairs rescored
@pytest.mark.parametrize("model", list(BF16_MEASURED))
def test_bf16_with_an_exact_top_10_ranks_the_100_claims_as_fp32(
    scifact, model: str, quality_scorer, test_head: dict
) -> None:
    """Where bf16 alone misses ±0.002 (above), ``exact_top = 10`` gives fp32's top 10 for every
    claim, hence fp32's nDCG@10 (inpars_core/reranking/exact_head.py)."""
    from inpars_core.evaluation import evaluate
    from inpars_core.reranking.stage import RerankConfig, rerank
    from inpars_core.runs import top_k

    runs, reports = {}, {}
    for precision, exact_top in (("fp32", 0), ("bf16", 10)):
        scoring = ScoringConfig(precision=precision)
        reranker = load_reranker(str(quality_scorer(model)), scoring)
        config = RerankConfig(20, EncodingConfig("pair", 256), scoring, exact_top=exact_top)
        runs[precision], reports[precision] = rerank(
            reranker, test_head["queries"], test_head["first"], scifact.corpus, config
        )
    assert 1000 <= reports["bf16"].rescored_fp32 <= 2000  # the top 10 of each, and pairs near it
    for query_id, docs in runs["fp32"].items():
        assert [d.doc_id for d in runs["bf16"][query_id][:10]] == [d.doc_id for d in docs[:10]]
    ndcg = {
        precision: evaluate(top_k(run, 20), test_head["judged"], ["nDCG@10"]).aggregate["nDCG@10"]
        for precision, run in runs.items()
    }
    assert ndcg["bf16"] == pytest.approx(ndcg["fp32"], abs=1e-12) and ndcg["fp32"] > 0.3
