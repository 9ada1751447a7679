"""The training CLI contract end to end on a tiny corpus: triples, train, rerank, evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_CORPUS, TINY_QUERIES, write_beir

pytestmark = pytest.mark.integration  # index, train, rerank through the CLI

CLI = [sys.executable, "-m", "inpars_core.cli"]


def _run(*args: str) -> str:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_triples_train_rerank_evaluate(tmp_path: Path) -> None:
    queries = [*TINY_QUERIES, {"_id": "q4", "text": "vitamin D winter"}]
    qrels = {"test": "q1\td1\t1\nq2\td2\t1\n", "train": "q3\td4\t1\nq4\td3\t1\n"}
    data = write_beir(tmp_path / "tiny", TINY_CORPUS, queries, qrels)
    _run("index", "--dataset", str(data), "--out", str(tmp_path / "index"))
    for split in ("train", "test"):
        _run(
            "retrieve",
            "--dataset",
            str(data),
            "--index",
            str(tmp_path / "index"),
            "--split",
            split,
            "--k",
            "5",
            "--out",
            str(tmp_path / f"{split}-bm25"),
        )
    out = _run(
        "triples",
        "--dataset",
        str(data),
        "--split",
        "train",
        "--run",
        str(tmp_path / "train-bm25"),
        "--negatives",
        "2",
        "--window",
        "1:5",
        "--out",
        str(tmp_path / "triples"),
    )
    # q4 matches only its own positive in BM25: both of its negatives are a shortfall.
    assert "2 triples for 2 queries" in out and "shortfall 2" in out
    triples_file = tmp_path / "triples" / "triples.jsonl"
    triples = [json.loads(line) for line in triples_file.read_text().splitlines()]
    assert all(t["neg_doc_id"] != t["pos_doc_id"] for t in triples) and len(triples) == 2
    out = _run(
        "train",
        "--dataset",
        str(data),
        "--triples",
        str(tmp_path / "triples"),
        "--base-model",
        "minilm",
        "--objective",
        "bce",
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--max-length",
        "32",
        "--lr",
        "1e-4",
        "--eval-every",
        "2",
        "--dev-run",  # dev queries from train (the default --dev-split), never from test
        str(tmp_path / "train-bm25"),
        "--dev-depth",
        "5",
        "--out",
        str(tmp_path / "model"),
    )
    assert "dev nDCG@10 step 0" in out and "newly initialised head" in out
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert meta["stage"] == "train" and meta["type"] == "model"
    assert (tmp_path / "model" / "model" / "config.json").is_file()
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "model" / "eval_log.jsonl").read_text().splitlines()
    ]
    assert steps[0] == 0 and steps[-1] == 3
    for mode in ("pair", "separate"):
        _run(
            "rerank",
            "--dataset",
            str(data),
            "--run",
            str(tmp_path / "test-bm25"),
            "--model",
            str(tmp_path / "model" / "model"),
            "--depth",
            "5",
            "--max-length",
            "32",
            "--pair-encoding",
            mode,
            "--out",
            str(tmp_path / f"{mode}"),
        )
    pair = json.loads(
        _run(
            "evaluate",
            "--dataset",
            str(data),
            "--run",
            str(tmp_path / "pair"),
            "--measures",
            "nDCG@10",
            "--json",
        )
    )
    assert 0.0 < pair["nDCG@10"] <= 1.0
    pair_lines = (tmp_path / "pair" / "run.trec").read_text().splitlines()
    separate_lines = (tmp_path / "separate" / "run.trec").read_text().splitlines()
    assert len(pair_lines) == len(separate_lines) == 4  # BM25 matched 3 + 1 documents
    assert pair_lines != separate_lines  # the bug changes the scores
