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

PAIRS = [
    ("does aspirin prevent heart attacks", "Aspirin lowers the risk of myocardial infarction."),
    ("vitamin D and infections", "Vitamin D supplements reduced respiratory infections " * 30),
    ("sleep and memory", "Sleep deprivation impairs hippocampal memory consolidation."),
]


@pytest.fixture(scope="module")
def tiny_reranker_dir(tmp_path_factory) -> Path:
    """The packaged MiniLM backbone with a seeded 1-logit head, saved once (a fixed model)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inpars_core.models import resolve_model_path

    torch.manual_seed(0)
    path = resolve_model_path("minilm")
    folder = tmp_path_factory.mktemp("reranker") / "model"
    AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(path).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reranker(tiny_reranker_dir: Path):
    return load_reranker(str(tiny_reranker_dir))


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


def test_rerank_warns_for_separate_encoding(scifact, reranker, caplog) -> None:
    from inpars_core.reranking.stage import validate_encoding

    problems = validate_encoding(reranker, EncodingConfig("separate", 48))
    assert any("all token_type_ids are 0" in p for p in problems)
    assert "all token_type_ids are 0" in caplog.text
    assert validate_encoding(reranker, EncodingConfig("pair", 48)) == ()


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


def test_bf16_and_int8_stay_close(tiny_reranker_dir: Path, reranker) -> None:
    fp32 = score_pairs(reranker, PAIRS, EncodingConfig("pair", 64))
    for precision, tolerance in (("bf16", 0.05), ("int8", 0.1)):
        other = load_reranker(str(tiny_reranker_dir), ScoringConfig(precision=precision))
        scores = score_pairs(other, PAIRS, EncodingConfig("pair", 64))
        assert scores == pytest.approx(fp32, abs=tolerance)


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
    assert all(len(docs) == 4 for docs in first.values())
    assert all(docs == sorted(docs, key=lambda d: (-d.score, d.doc_id)) for docs in first.values())


def test_truncation_statistics(reranker) -> None:
    stats = truncation_stats(reranker.tokenizer, [PAIRS[0][1], PAIRS[1][1]], max_length=48)
    assert stats["documents"] == 2 and stats["truncated_fraction"] == 0.5


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
        [*args, "--out", str(tmp_path / "a.run")],
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
    assert not (tmp_path / "a.run").exists(), "the run file appears only when complete"
    cached_before = files[0].read_text().count("\n")
    assert 16 <= cached_before < 96
    resumed = subprocess.run(
        [*args, "--out", str(tmp_path / "a.run")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    meta = json.loads((tmp_path / "a.run.meta.json").read_text())
    assert meta["counts"]["cached"] == cached_before
    assert meta["counts"]["scored"] == 96 - cached_before
    fresh = subprocess.run(
        [*args, "--no-cache", "--out", str(tmp_path / "b.run")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == fresh.returncode == 0
    resumed_run, fresh_run = read_trec_run(tmp_path / "a.run"), read_trec_run(tmp_path / "b.run")
    assert {q: [d.doc_id for d in v] for q, v in resumed_run.items()} == {
        q: [d.doc_id for d in v] for q, v in fresh_run.items()
    }
    for q in fresh_run:
        assert [d.score for d in resumed_run[q]] == pytest.approx(
            [d.score for d in fresh_run[q]], abs=1e-5
        )
