"""The exact head (issue 15): a fast precision's scores with each query's top k rescored in fp32
rank that top k exactly as fp32 does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from inpars_core.errors import ConfigError
from inpars_core.records import ScoredDoc
from inpars_core.reranking.encoding import EncodingConfig
from inpars_core.reranking.exact_head import exact_head
from inpars_core.reranking.scoring import ScoringConfig, load_reranker
from inpars_core.reranking.stage import RerankConfig, ScoreCache, rerank
from tests.conftest import save_seeded_reranker


def _rankings(seed: int, queries: int, depth: int, error: float):
    """(exact scores, fast scores = exact + an error of at most ``error``) per query, with
    many near ties (scores on a grid finer than the error)."""
    rng = random.Random(seed)
    exact, fast = {}, {}
    for n in range(queries):
        scores = [round(rng.gauss(0, 0.05), 3) for _ in range(depth)]
        exact[f"q{n}"] = scores
        fast[f"q{n}"] = [s + rng.uniform(-error, error) for s in scores]
    return exact, fast


def _top(scores: list[float], k: int) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


@pytest.mark.parametrize("seed", range(5))
def test_top_k_is_the_exact_top_k_and_the_tail_is_left_alone(seed: int):
    exact, fast = _rankings(seed, queries=40, depth=100, error=0.01)
    asked: list[tuple[str, int]] = []

    def rescore(positions):
        asked.extend(positions)
        return [exact[q][i] for q, i in positions]

    merged, report = exact_head(fast, rescore, top=10)
    assert len(asked) == len(set(asked)) == report.rescored  # no pair rescored twice
    assert 400 <= report.rescored < 40 * 100 / 2  # the top 10 of each, not the whole lists
    assert 0 < report.max_error <= 0.01 and report.margin >= report.max_error
    assert report.rounds >= 2
    for query_id, scores in merged.items():
        assert _top(scores, 10) == _top(exact[query_id], 10)  # same documents, same order
        for i, score in enumerate(scores):
            assert score == (exact if (query_id, i) in asked else fast)[query_id][i]
    # the fast order alone gets some top 10 wrong: the rescoring is what makes it exact
    assert any(_top(fast[q], 10) != _top(exact[q], 10) for q in exact)


def test_the_margin_grows_until_the_errors_seen_fit():
    # the top pairs err little, a lower band more: a second and a third round widen the margin
    exact = {"q": [1.0, 0.9, 0.81, 0.74, 0.58, 0.0]}
    fast = {"q": [1.0, 0.9, 0.8, 0.77, 0.70, 0.0]}
    merged, report = exact_head(fast, lambda ps: [exact[q][i] for q, i in ps], top=3, safety=2)
    # round 1: the top 3 (largest error .01: margin .02, band >= .76); round 2: .77 (error .03:
    # margin .06, band >= .68); round 3: .70 (error .12: margin .24); 0.0 is never rescored
    assert report.rounds == 3
    assert report.rescored == 5 and report.max_error == pytest.approx(0.12)
    assert merged["q"][:5] == exact["q"][:5] and merged["q"][5] == 0.0


def test_a_query_with_fewer_pairs_than_top_is_rescored_whole_and_empty_ones_pass():
    fast = {"short": [0.3, 0.1], "empty": []}
    merged, report = exact_head(fast, lambda ps: [1.0 for _ in ps], top=10)
    assert merged == {"short": [1.0, 1.0], "empty": []} and report.rescored == 2


@pytest.mark.parametrize(("top", "safety"), [(0, 2.0), (10, 0.5)])
def test_bad_settings_are_refused(top: int, safety: float):
    with pytest.raises(ValueError, match=r"top|safety"):
        exact_head({"q": [0.0]}, lambda ps: [0.0 for _ in ps], top=top, safety=safety)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_seeded_reranker(tmp_path_factory.mktemp("exact-head") / "model")


@pytest.mark.integration
def test_bf16_with_exact_top_10_ranks_the_top_10_as_fp32_does(scifact, model_dir, tmp_path):
    queries = dict(list(scifact.split_queries("test").items())[:4])
    pool = sorted(scifact.corpus)[:40]
    run = {q: [ScoredDoc(q, d, float(-i)) for i, d in enumerate(pool)] for q in queries}
    encoding = EncodingConfig("pair", 64)
    fp32 = load_reranker(str(model_dir), ScoringConfig(device="cpu"))
    exact_config = RerankConfig(
        depth=40,
        encoding=encoding,
        scoring=ScoringConfig(device="cpu", precision="bf16"),
        exact_top=10,
    )
    bf16 = load_reranker(str(model_dir), exact_config.scoring)
    reference, _ = rerank(fp32, queries, run, scifact.corpus, RerankConfig(40, encoding))
    cache = ScoreCache(tmp_path / "scores.tsv")
    shown, report = rerank(bf16, queries, run, scifact.corpus, exact_config, cache)
    assert report.scored == 160 and 40 <= report.rescored_fp32 < 160
    for query_id, docs in reference.items():
        head = shown[query_id][:10]
        assert [d.doc_id for d in head] == [d.doc_id for d in docs[:10]]
        assert [d.score for d in head] == pytest.approx([d.score for d in docs[:10]], abs=1e-5)
    # a rerun serves the bf16 and the fp32 scores from the cache: nothing is scored again
    again, rerun = rerank(
        bf16, queries, run, scifact.corpus, exact_config, ScoreCache(tmp_path / "scores.tsv")
    )
    assert (rerun.scored, rerun.cached, rerun.rescored_fp32) == (0, 160, report.rescored_fp32)
    assert again == shown


@pytest.mark.integration
def test_exact_top_with_torch_int8_is_refused_naming_the_fix(scifact, model_dir):
    queries = dict(list(scifact.split_queries("test").items())[:1])
    run = {q: [ScoredDoc(q, d, 0.0) for d in sorted(scifact.corpus)[:3]] for q in queries}
    config = RerankConfig(
        depth=3,
        encoding=EncodingConfig("pair", 32),
        scoring=ScoringConfig(device="cpu", precision="int8"),
        exact_top=10,
    )
    int8 = load_reranker(str(model_dir), config.scoring)
    with pytest.raises(ConfigError, match=r"found int8.*fix: precision onnx-int8 or bf16"):
        rerank(int8, queries, run, scifact.corpus, config)


@pytest.mark.integration
def test_rerank_stage_records_the_exact_head_in_meta(scifact, model_dir, tmp_path):
    import json

    from inpars_core.runs import read_trec_run, write_trec_run
    from inpars_core.stages import rerank as stage

    queries = list(scifact.split_queries("test"))[:2]
    pool = sorted(scifact.corpus)[:20]
    write_trec_run(
        {q: [ScoredDoc(q, d, float(-i)) for i, d in enumerate(pool)] for q in queries},
        tmp_path / "first.trec",
    )
    config = stage.Config(depth=20, max_length=48, precision="bf16", exact_top=5, cache=False)
    inputs = stage.Inputs("scifact", str(tmp_path / "first.trec"), str(model_dir), max_queries=2)
    stage.run(config, inputs, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["config"]["exact_top"] == 5
    assert 10 <= meta["counts"]["rescored_fp32"] < 40
    assert meta["scoring"]["exact_top"] == 5 and meta["scoring"]["exact_margin"] >= 0
    assert meta["scoring"]["precision"] == "bf16"
    assert set(read_trec_run(tmp_path / "out" / "run.trec")) == set(queries)
