"""Cross-encoder pair encoding, the seed's separate-encoding bug, scoring, cache, kill/resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inpars_core.records import ScoredDoc
from inpars_core.reranking.encoding import (
    EncodingConfig,
    check_segments,
    encode_pairs,
    truncation_stats,
)
from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs
from inpars_core.reranking.stage import RerankConfig, ScoreCache, rerank
from inpars_core.runs import read_trec_run, write_trec_run
from tests.conftest import save_seeded_reranker

PAIRS = [
    ("does aspirin prevent heart attacks", "Aspirin lowers the risk of myocardial infarction."),
    ("vitamin D and infections", "Vitamin D supplements reduced respiratory infections " * 30),
    ("sleep and memory", "Sleep deprivation impairs hippocampal memory consolidation."),
]


@pytest.fixture(scope="module")
def tiny_reranker_dir(tmp_path_factory) -> Path:
    """The packaged MiniLM backbone with a seeded 1-logit head, saved once (a fixed model)."""
    return save_seeded_reranker(tmp_path_factory.mktemp("reranker") / "model")


@pytest.fixture(scope="module")
def reranker(tiny_reranker_dir: Path):
    return load_reranker(str(tiny_reranker_dir))


@pytest.mark.integration
def test_pair_encoding_segments(reranker) -> None:
    config = EncodingConfig("pair", max_length=48)
    batch = encode_pairs(
        reranker.tokenizer,
        [q for q, _ in PAIRS],
        [d for _, d in PAIRS],
        config,
        return_tensors=None,
    )
    for ids, types, mask in zip(
        batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], strict=True
    ):
        length = sum(mask)
        ids, types = ids[:length], types[:length]
        check = check_segments(ids, types, reranker.tokenizer, reranker.type_vocab_size)
        assert check.problems == () and check.cls_count == 1
        assert set(types[: check.first_sep + 1]) == {0}
        assert set(types[check.first_sep + 1 :]) == {1}, "segment 1 right after the first [SEP]"
        assert ids[-1] == reranker.tokenizer.sep_token_id
    assert len(batch["input_ids"][1]) == 48  # the long document is truncated, the query kept


@pytest.mark.integration
def test_separate_encoding_reproduces_the_bug(reranker, caplog) -> None:
    config = EncodingConfig("separate", max_length=48)
    batch = encode_pairs(
        reranker.tokenizer, [PAIRS[0][0]], [PAIRS[0][1]], config, return_tensors=None
    )
    check = check_segments(
        batch["input_ids"][0],
        batch["token_type_ids"][0],
        reranker.tokenizer,
        reranker.type_vocab_size,
    )
    assert check.all_zero_types and check.cls_count == 2
    assert any("not told apart" in p for p in check.problems)
    pair_scores = score_pairs(reranker, PAIRS, EncodingConfig("pair", 48))
    separate_scores = score_pairs(reranker, PAIRS, config)
    assert all(abs(a - b) > 1e-4 for a, b in zip(pair_scores, separate_scores, strict=True))


@pytest.mark.integration
def test_rerank_warns_for_separate_encoding(scifact, reranker, caplog) -> None:
    from inpars_core.reranking.stage import validate_encoding

    problems = validate_encoding(reranker, EncodingConfig("separate", 48))
    assert any("all token_type_ids are 0" in p for p in problems)
    assert "all token_type_ids are 0" in caplog.text
    assert validate_encoding(reranker, EncodingConfig("pair", 48)) == ()


@pytest.mark.integration
def test_scores_equal_sentence_transformers_cross_encoder(
    tiny_reranker_dir: Path, reranker
) -> None:
    """Differential: our scorer vs sentence_transformers.CrossEncoder.predict, same pairs."""
    import torch
    from sentence_transformers import CrossEncoder

    ours = score_pairs(reranker, PAIRS, EncodingConfig("pair", 64), ScoringConfig(batch_size=2))
    reference = CrossEncoder(
        str(tiny_reranker_dir), max_length=64, device="cpu", activation_fn=torch.nn.Identity()
    )
    theirs = reference.predict(PAIRS, batch_size=2, convert_to_numpy=True).tolist()
    assert ours == pytest.approx(theirs, abs=1e-5)


@pytest.mark.integration
def test_bf16_and_int8_stay_close(tiny_reranker_dir: Path, reranker) -> None:
    fp32 = score_pairs(reranker, PAIRS, EncodingConfig("pair", 64))
    for precision, tolerance in (("bf16", 0.05), ("int8", 0.1)):
        other = load_reranker(str(tiny_reranker_dir), ScoringConfig(precision=precision))
        scores = score_pairs(other, PAIRS, EncodingConfig("pair", 64))
        assert scores == pytest.approx(fp32, abs=tolerance)


@pytest.mark.integration
def test_rerank_uses_the_cache_and_is_deterministic(scifact, reranker, tmp_path: Path) -> None:
    queries = dict(list(scifact.split_queries("test").items())[:3])
    run = {
        q: [ScoredDoc(q, d, float(-i)) for i, d in enumerate(list(scifact.corpus)[:6])]
        for q in queries
    }
    config = RerankConfig(depth=4, encoding=EncodingConfig("pair", 48))
    cache = ScoreCache(tmp_path / "cache.tsv")
    first, report = rerank(reranker, queries, run, scifact.corpus, config, cache)
    assert (report.pairs, report.scored, report.cached) == (12, 12, 0)
    again, report = rerank(
        reranker, queries, run, scifact.corpus, config, ScoreCache(tmp_path / "cache.tsv")
    )
    assert (report.scored, report.cached) == (0, 12)
    assert again == first
    for query_id, docs in first.items():
        assert len(docs) == 6  # the reranked 4, then the first stage's 2 below depth 4
        assert {d.doc_id for d in docs[:4]} == {d.doc_id for d in run[query_id][:4]}
        assert [d.doc_id for d in docs[4:]] == [d.doc_id for d in run[query_id][4:]]
    assert all(docs == sorted(docs, key=lambda d: (-d.score, d.doc_id)) for docs in first.values())


def _first_stage_with_relevant_deep(scifact, queries, ranks: list[int], size: int = 200):
    """A first-stage run per query: ``size`` corpus documents with the query's relevant
    documents placed at ``ranks[n]`` (1-based), scores size, size - 1, ...; plus two duplicate
    lines (one in the head, one in the tail) at lower scores."""
    qrels = scifact.qrels("test")
    pool = sorted(scifact.corpus)
    run = {}
    for n, query_id in enumerate(queries):
        relevant = sorted(d for d, rel in qrels[query_id].items() if rel > 0)
        others = [d for d in pool[n * size : (n + 2) * size] if d not in relevant][: size - 1]
        ranking = others[: ranks[n] - 1] + relevant + others[ranks[n] - 1 :]
        docs = [ScoredDoc(query_id, d, float(size - i)) for i, d in enumerate(ranking)]
        docs += [ScoredDoc(query_id, ranking[3], -1.0), ScoredDoc(query_id, ranking[150], -2.0)]
        run[query_id] = docs
    return run


@pytest.mark.integration
def test_depth_20_rerank_keeps_the_first_stage_tail(scifact, reranker) -> None:
    from inpars_core.evaluation import evaluate
    from inpars_core.runs import normalise_run, top_k

    queries = dict(list(scifact.split_queries("test").items())[:3])
    # Relevant documents at rank 50 (kept by R@100 only via the tail), 10 (in the reranked
    # head) and 150 (beyond 100).
    first = _first_stage_with_relevant_deep(scifact, queries, [50, 10, 150])
    config = RerankConfig(depth=20, encoding=EncodingConfig("pair", 48))
    shown, report = rerank(reranker, queries, first, scifact.corpus, config)
    assert report.pairs == 60  # the head alone is scored, the duplicate line is not
    measures = ["R@100", "R@1000"]
    qrels = scifact.qrels("test")
    judged = {q: qrels[q] for q in queries}
    before = evaluate(first, judged, measures)
    after = evaluate(shown, judged, measures)
    assert after.per_query == before.per_query  # recall of the whole list, exactly
    assert 0 < before.aggregate["R@100"] < before.aggregate["R@1000"]
    unique = normalise_run(first)
    for query_id, docs in shown.items():
        ids = [d.doc_id for d in docs]
        assert len(ids) == len(set(ids)), "no (query, doc) twice"
        assert set(ids) == {d.doc_id for d in unique[query_id]}
        assert set(ids[:20]) == {d.doc_id for d in unique[query_id][:20]}
        assert ids[20:] == [d.doc_id for d in unique[query_id][20:]]  # first-stage order
        assert docs == sorted(docs, key=lambda d: (-d.score, d.doc_id))
        assert docs[20].score < docs[19].score
    # The head alone is what top_k gives back (the experiment runner interpolates it).
    assert all(len(docs) == 20 for docs in top_k(shown, 20).values())


@pytest.mark.integration
def test_cache_rescores_a_pair_whose_document_text_changed(
    scifact, reranker, tmp_path: Path, caplog
) -> None:
    from inpars_core.records import Document
    from inpars_core.reranking.stage import CACHE_SCHEMA

    queries = dict(list(scifact.split_queries("test").items())[:2])
    doc_ids = list(scifact.corpus)[:5]
    run = {q: [ScoredDoc(q, d, float(-i)) for i, d in enumerate(doc_ids)] for q in queries}
    config = RerankConfig(depth=5, encoding=EncodingConfig("pair", 48))
    path = tmp_path / "cache.tsv"
    first, report = rerank(reranker, queries, run, scifact.corpus, config, ScoreCache(path))
    assert (report.scored, report.cached) == (10, 0)
    assert path.read_text().startswith(f"#{CACHE_SCHEMA}\t")

    changed_id = doc_ids[2]
    corpus = dict(scifact.corpus)
    corpus[changed_id] = Document(changed_id, "Volcanoes", "Lava flows from Icelandic volcanoes.")
    again, report = rerank(reranker, queries, run, corpus, config, ScoreCache(path))
    assert (report.scored, report.cached) == (2, 8)  # the changed pair of each query only
    for query_id in queries:
        old = {d.doc_id: d.score for d in first[query_id]}
        new = {d.doc_id: d.score for d in again[query_id]}
        assert new[changed_id] != pytest.approx(old[changed_id], abs=1e-4)
        assert {d: s for d, s in new.items() if d != changed_id} == {
            d: s for d, s in old.items() if d != changed_id
        }
    fresh = score_pairs(
        reranker,
        [(queries[q].text, corpus[changed_id].contents) for q in queries],
        config.encoding,
    )
    assert [{d.doc_id: d.score for d in again[q]}[changed_id] for q in queries] == pytest.approx(
        fresh, abs=1e-5
    )

    # Another max_length is another setting: nothing is served from the cache.
    longer = RerankConfig(depth=5, encoding=EncodingConfig("pair", 64))
    _, report = rerank(reranker, queries, run, corpus, longer, ScoreCache(path))
    assert (report.scored, report.cached) == (10, 0)


def test_old_schema_cache_is_not_mixed_in(tmp_path: Path, caplog) -> None:
    path = tmp_path / "scores.tsv"
    path.write_text("0123456789abcdef0123456789abcdef01234567\t0.5\n")  # v1: sha1 keys
    cache = ScoreCache(path)
    assert cache.scores == {}
    assert "another key schema" in caplog.text
    assert not path.exists() and (tmp_path / "scores.tsv.stale-1").is_file()
    cache.add({"k": 1.5})
    assert ScoreCache(path).scores == {"k": 1.5}


@pytest.mark.integration
def test_a_new_head_is_part_of_the_fingerprint() -> None:
    import torch

    torch.manual_seed(0)
    first = load_reranker("minilm").fingerprint
    torch.manual_seed(0)
    same = load_reranker("minilm").fingerprint
    torch.manual_seed(1)
    other = load_reranker("minilm").fingerprint
    assert first == same != other
    assert first.split("+init:")[0] == other.split("+init:")[0]


@pytest.mark.integration
def test_over_long_query_is_truncated_never_a_crash(caplog) -> None:
    from transformers import AutoTokenizer

    from inpars_core.models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    query = " ".join(f"word{i % 50}" for i in range(500))
    document = "Aspirin lowers the risk of myocardial infarction."
    for mode in ("pair", "separate"):
        caplog.clear()
        batch = encode_pairs(
            tokenizer,
            [query, "short query"],
            [document, document],
            EncodingConfig(mode, max_length=32),
            return_tensors=None,
        )
        assert "truncated to 28" in caplog.text, mode
        ids = batch["input_ids"][0]
        assert len(ids) == 32 and sum(batch["attention_mask"][0]) == 32
        assert ids[0] == tokenizer.cls_token_id
        assert ids[29] == tokenizer.sep_token_id  # [CLS] + 28 query word-pieces + [SEP]
        if mode == "pair":  # + one document word-piece + [SEP]
            assert ids[30] == tokenizer.encode(document, add_special_tokens=False)[0]
            assert ids[31] == tokenizer.sep_token_id
            assert batch["token_type_ids"][0] == [0] * 30 + [1] * 2
        short = batch["input_ids"][1][: sum(batch["attention_mask"][1])]
        assert tokenizer.decode(short[1:3]) == "short query"
    caplog.clear()
    encode_pairs(
        tokenizer, ["short query"], [document], EncodingConfig("pair", 32), return_tensors=None
    )
    assert "truncated" not in caplog.text


@pytest.mark.integration
def test_truncation_statistics(reranker) -> None:
    stats = truncation_stats(reranker.tokenizer, [PAIRS[0][1], PAIRS[1][1]], max_length=48)
    assert stats["documents"] == 2 and stats["truncated_fraction"] == 0.5


@pytest.mark.integration
def test_cli_encode_json(tiny_reranker_dir: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "inpars_core.cli",
            "encode",
            "--model",
            str(tiny_reranker_dir),
            "--query",
            "q one",
            "--doc",
            "the doc",
            "--max-length",
            "16",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    shown = json.loads(out.stdout)
    assert shown["tokens"] == ["[CLS]", "q", "one", "[SEP]", "the", "doc", "[SEP]"]
    assert shown["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    assert shown["attention_mask"] == [1] * 7 and shown["input_ids"][0] == 101


@pytest.mark.integration
def test_rerank_kill_and_resume_loses_nothing(
    scifact_dir: Path, scifact, tiny_reranker_dir, tmp_path: Path
) -> None:
    queries = list(scifact.split_queries("test"))[:12]
    docs = list(scifact.corpus)[:8]
    run = {q: [ScoredDoc(q, d, float(-i)) for i, d in enumerate(docs)] for q in queries}
    write_trec_run(run, tmp_path / "in.run")
    env = {**os.environ, "INPARS_CACHE_DIR": str(tmp_path / "cache")}
    args = [
        sys.executable,
        "-m",
        "inpars_core.cli",
        "rerank",
        "--dataset",
        str(scifact_dir),
        "--run",
        str(tmp_path / "in.run"),
        "--model",
        str(tiny_reranker_dir),
        "--depth",
        "8",
        "--max-length",
        "64",
        "--chunk-pairs",
        "8",
        "--batch-size",
        "8",
    ]
    first = subprocess.Popen(
        [*args, "--out", str(tmp_path / "a")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cache_files = tmp_path / "cache" / "scores"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        files = list(cache_files.glob("*.tsv")) if cache_files.exists() else []
        if files and files[0].read_text().count("\n") >= 16:
            break
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert not (tmp_path / "a").exists(), "the run artifact appears only when complete"
    cached_before = files[0].read_text().count("\n") - 1  # the schema header line
    assert 16 <= cached_before < 96
    # the artifact's own item-level cache, kept in the partial folder, holds what was scored
    partial = (tmp_path / ".a.partial" / "scores.tsv").read_text().count("\n") - 1
    assert cached_before - 8 <= partial <= cached_before
    resumed = subprocess.run(
        [*args, "--out", str(tmp_path / "a")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["type"] == "run" and meta["counts"]["pairs"] == 96
    assert meta["counts"]["cached"] == cached_before
    assert meta["counts"]["scored"] == 96 - cached_before
    assert not (tmp_path / ".a.partial").exists()
    fresh = subprocess.run(
        [*args, "--no-cache", "--out", str(tmp_path / "b")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == fresh.returncode == 0
    assert json.loads((tmp_path / "b" / "meta.json").read_text())["counts"]["scored"] == 96
    assert files[0].read_text().count("\n") - 1 == 96  # --no-cache: the shared cache untouched
    resumed_run = read_trec_run(tmp_path / "a" / "run.trec")
    fresh_run = read_trec_run(tmp_path / "b" / "run.trec")
    assert {q: [d.doc_id for d in v] for q, v in resumed_run.items()} == {
        q: [d.doc_id for d in v] for q, v in fresh_run.items()
    }
    for q in fresh_run:
        assert [d.score for d in resumed_run[q]] == pytest.approx(
            [d.score for d in fresh_run[q]], abs=1e-5
        )
