"""The dense CLI contract on a tiny corpus: dense-index (cached), retrieve --retriever dense,
rerank --family bi-encoder, fuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inpars_core.datasets import load_beir_folder
from inpars_core.dense.search import DenseRetriever
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
    # fp32 (the default, named here) so that documents encoded on the fly by the bi-encoder
    # rerank (fp32) score alike; bf16 is compared with fp32 in test_dense.py.
    encode = ["dense-index", "--dataset", str(tiny_dir), "--model", "minilm", "--max-length", "64"]
    encode += ["--precision", "fp32"]
    first = _run(env, *encode, "--out", str(tmp_path / "idx"))
    again = _run(env, *encode, "--out", str(tmp_path / "idx2"))
    assert "encoding 5 documents" in first.stderr
    assert "reusing dense index" in again.stderr and "encoding 5 documents" not in again.stderr
    assert "reused from the cache" in again.stdout
    assert json.loads((tmp_path / "idx" / "doc_ids.json").read_text()) == json.loads(
        (tmp_path / "idx2" / "doc_ids.json").read_text()
    )
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert meta["type"] == "dense-index" and meta["model"] == "minilm"
    assert meta["counts"] == {"documents": 5, "dimension": 384} and meta["max_length"] == 64
    assert meta["precision"] == "fp32" and meta["config"]["precision"] == "fp32"
    _run(
        env,
        "retrieve",
        "--retriever",
        "dense",
        "--dataset",
        str(tiny_dir),
        "--index",
        str(tmp_path / "idx"),
        "--k",
        "3",
        "--out",
        str(tmp_path / "dense"),
    )
    dense = read_trec_run(tmp_path / "dense" / "run.trec")
    assert dense["q1"][0].doc_id == "d1" and dense["q2"][0].doc_id == "d2"
    assert all(len(docs) == 3 for docs in dense.values())
    # the run the removed 'inpars dense' command wrote: DenseRetriever over the index folder
    queries = load_beir_folder(tiny_dir).split_queries("test")
    write_trec_run(DenseRetriever(tmp_path / "idx").retrieve(queries, k=3), tmp_path / "old.run")
    assert (tmp_path / "dense" / "run.trec").read_text().replace("dense-tiny", "dense") == (
        tmp_path / "old.run"
    ).read_text().replace("inpars", "dense")
    assert json.loads((tmp_path / "dense" / "meta.json").read_text())["config"]["retriever"] == (
        "dense"
    )
    bm25 = {
        q: [ScoredDoc(q, d, float(5 - i)) for i, d in enumerate(["d3", "d2", "d1", "d0"])]
        for q in ("q1", "q2", "q3")
    }
    write_trec_run(bm25, tmp_path / "bm25.run")
    _run(
        env,
        "rerank",
        "--family",
        "bi-encoder",
        "--dataset",
        str(tiny_dir),
        "--run",
        str(tmp_path / "bm25.run"),
        "--model",
        "minilm",
        "--max-length",
        "64",
        "--depth",
        "3",
        "--out",
        str(tmp_path / "reranked"),
    )
    reranked = read_trec_run(tmp_path / "reranked" / "run.trec")
    assert {d.doc_id for d in reranked["q1"][:3]} == {"d3", "d2", "d1"}
    assert reranked["q1"][0].doc_id == "d1" and reranked["q1"][3].doc_id == "d0"
    # documents encoded on the fly score as the dense index does
    from_index = DenseRetriever(tmp_path / "idx").rerank(queries, bm25, depth=3)
    for query_id, docs in from_index.items():
        assert [d.doc_id for d in reranked[query_id]] == [d.doc_id for d in docs]
        assert [d.score for d in reranked[query_id]] == pytest.approx(
            [d.score for d in docs], abs=1e-5
        )
    _run(
        env,
        "fuse",
        "--runs",
        str(tmp_path / "bm25.run"),
        str(tmp_path / "dense"),
        "--method",
        "rrf",
        "--out",
        str(tmp_path / "fused"),
    )
    fused = read_trec_run(tmp_path / "fused" / "run.trec")
    # q1: d1 is BM25 rank 3 and dense rank 1: 1/63 + 1/61 beats d3 (1/61 from BM25 only).
    scores = {d.doc_id: d.score for d in fused["q1"]}
    assert scores["d1"] > scores["d3"]
