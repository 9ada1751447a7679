"""The dense CLI contract on a tiny corpus: dense-index (cached), dense, rerank mode, fuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inpars_core.records import ScoredDoc
from inpars_core.runs import read_trec_run, write_trec_run

pytestmark = pytest.mark.integration  # MiniLM encodes through the CLI

CLI = [sys.executable, "-m", "inpars_core.cli"]


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_dense_index_search_rerank_and_fuse(tiny_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "INPARS_CACHE_DIR": str(tmp_path / "cache")}
    first = _run(
        env,
        "dense-index",
        "--dataset",
        str(tiny_dir),
        "--model",
        "minilm",
        "--max-length",
        "64",
        "--out",
        str(tmp_path / "idx"),
    )
    again = _run(
        env,
        "dense-index",
        "--dataset",
        str(tiny_dir),
        "--model",
        "minilm",
        "--max-length",
        "64",
        "--out",
        str(tmp_path / "idx2"),
    )
    assert "encoding 5 documents" in first.stderr
    assert "reusing dense index" in again.stderr and "encoding 5 documents" not in again.stderr
    assert json.loads((tmp_path / "idx" / "doc_ids.json").read_text()) == json.loads(
        (tmp_path / "idx2" / "doc_ids.json").read_text()
    )
    _run(
        env,
        "dense",
        "--dataset",
        str(tiny_dir),
        "--index",
        str(tmp_path / "idx"),
        "--k",
        "3",
        "--out",
        str(tmp_path / "dense.run"),
    )
    dense = read_trec_run(tmp_path / "dense.run")
    assert dense["q1"][0].doc_id == "d1" and dense["q2"][0].doc_id == "d2"
    assert all(len(docs) == 3 for docs in dense.values())
    bm25 = {
        q: [ScoredDoc(q, d, float(5 - i)) for i, d in enumerate(["d3", "d2", "d1", "d0"])]
        for q in ("q1", "q2", "q3")
    }
    write_trec_run(bm25, tmp_path / "bm25.run")
    _run(
        env,
        "dense",
        "--dataset",
        str(tiny_dir),
        "--index",
        str(tmp_path / "idx"),
        "--rerank-run",
        str(tmp_path / "bm25.run"),
        "--depth",
        "3",
        "--out",
        str(tmp_path / "reranked.run"),
    )
    reranked = read_trec_run(tmp_path / "reranked.run")
    assert {d.doc_id for d in reranked["q1"][:3]} == {"d3", "d2", "d1"}
    assert reranked["q1"][0].doc_id == "d1" and reranked["q1"][3].doc_id == "d0"
    _run(
        env,
        "fuse",
        "--runs",
        str(tmp_path / "bm25.run"),
        str(tmp_path / "dense.run"),
        "--method",
        "rrf",
        "--out",
        str(tmp_path / "fused.run"),
    )
    fused = read_trec_run(tmp_path / "fused.run")
    # q1: d1 is BM25 rank 3 and dense rank 1: 1/63 + 1/61 beats d3 (1/61 from BM25 only).
    scores = {d.doc_id: d.score for d in fused["q1"]}
    assert scores["d1"] > scores["d3"]
