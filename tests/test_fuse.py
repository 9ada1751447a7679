"""``inpars fuse``: one stage for reciprocal rank fusion, the normalised sum and the interpolation
of a reranked run with its first stage, the same ``run`` the experiment runner calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inpars_core.cli import main
from inpars_core.dense.fusion import normalised_score_sum, reciprocal_rank_fusion
from inpars_core.experiments.config import load_config
from inpars_core.experiments.runner import ExperimentRunner
from inpars_core.records import Run, ScoredDoc
from inpars_core.runs import (
    interpolate_with_first_stage,
    read_trec_run,
    top_k,
    with_first_stage_tail,
    write_trec_run,
)
from inpars_core.stages.contract import write_stage_meta
from tests.conftest import ROOT

DEPTH, WEIGHT = 3, 0.5


def _runs() -> tuple[Run, Run]:
    """(a depth-3 rerank shown with its tail, its first stage) for two queries."""
    first = {
        "q1": [ScoredDoc("q1", f"d{i}", 20.0 - i) for i in range(7)],
        "q2": [ScoredDoc("q2", f"d{i}", 9.0 - i * 0.5) for i in range(2, 8)],
    }
    head = {
        "q1": [ScoredDoc("q1", "d2", 0.9), ScoredDoc("q1", "d0", 0.4), ScoredDoc("q1", "d1", 0.1)],
        "q2": [ScoredDoc("q2", "d4", 3.0), ScoredDoc("q2", "d3", 3.0), ScoredDoc("q2", "d2", -1)],
    }
    return with_first_stage_tail(head, first, DEPTH), first


def _stage(runner: ExperimentRunner, name: str, run: Run, depth: int | None = None):
    def build(work: Path):
        write_trec_run(run, work / "run.trec")
        config = {"depth": depth} if depth else {}
        return write_stage_meta(work, stage=name, type="run", config=config, inputs={})

    return runner.store.run(name, {"test": name}, {}, build)


def test_fuse_interpolate_equals_the_runners_interpolated_run(tmp_path: Path, capsys) -> None:
    reranked_run, first_run = _runs()
    runner = ExperimentRunner(load_config(ROOT / "configs" / "scifact-smoke.toml"), tmp_path)
    reranked = _stage(runner, "rerank", reranked_run, depth=DEPTH)
    bm25 = _stage(runner, "bm25-test", first_run)
    by_runner = read_trec_run(runner.interpolate(reranked, bm25, DEPTH, WEIGHT).path / "run.trec")

    runs = [str(reranked.path), str(bm25.path)]
    argv = ["fuse", "--method", "interpolate", "--runs", *runs, "--weight", str(WEIGHT)]
    assert main([*argv, "--out", str(tmp_path / "fused")]) == 0  # depth from the rerank's meta
    assert "fused 2 runs (interpolate)" in capsys.readouterr().out
    by_cli = read_trec_run(tmp_path / "fused" / "run.trec")
    assert by_cli == by_runner

    # the same from plain TREC files, with the depth given
    write_trec_run(reranked_run, tmp_path / "reranked.trec")
    write_trec_run(first_run, tmp_path / "first.trec")
    files = ["--runs", str(tmp_path / "reranked.trec"), str(tmp_path / "first.trec")]
    argv = ["fuse", "--method", "interpolate", *files, "--weight", str(WEIGHT), "--depth", "3"]
    assert main([*argv, "--out", str(tmp_path / "from-files")]) == 0
    assert read_trec_run(tmp_path / "from-files" / "run.trec") == by_runner

    # and what the runner computed before the stage existed, by hand
    fused = interpolate_with_first_stage(top_k(reranked_run, DEPTH), first_run, WEIGHT)
    assert by_cli == read_trec_run(
        _written(with_first_stage_tail(fused, first_run, DEPTH), tmp_path)
    )
    # model alone: d2 d0 d1; with half the first stage: d0 0.6875, d2 0.5, d1 0.25
    assert [d.doc_id for d in by_cli["q1"]] == ["d0", "d2", "d1", "d3", "d4", "d5", "d6"]
    meta = json.loads((tmp_path / "fused" / "meta.json").read_text())
    assert meta["type"] == "run" and meta["stage"] == "fuse"
    assert meta["config"] == {
        "method": "interpolate",
        "rrf_k": 60,
        "depth": 3,
        "weight": 0.5,
        "tail": False,
    }
    assert [r.get("type") for r in meta["inputs"]["runs"]] == ["run", "run"]


def _written(run: Run, folder: Path) -> Path:
    write_trec_run(run, folder / "reference.trec")
    return folder / "reference.trec"


def test_interpolate_without_a_rerank_depth_asks_for_one(tmp_path: Path, capsys) -> None:
    reranked_run, first_run = _runs()
    write_trec_run(reranked_run, tmp_path / "reranked.trec")
    write_trec_run(first_run, tmp_path / "first.trec")
    files = [str(tmp_path / "reranked.trec"), str(tmp_path / "first.trec")]
    argv = ["fuse", "--method", "interpolate", "--runs", *files, "--weight", "0.5"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert "expected --depth with --method interpolate" in capsys.readouterr().err
    argv = ["fuse", "--method", "interpolate", "--runs", files[0], "--weight", "0.5"]
    assert main([*argv, "--depth", "3", "--out", str(tmp_path / "out")]) == 2
    assert "expected two --runs with --method interpolate" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method", ["rrf", "sum"])
def test_fuse_rrf_and_sum_are_the_library_functions(method: str, tmp_path: Path) -> None:
    reranked_run, first_run = _runs()
    write_trec_run(reranked_run, tmp_path / "a.trec")
    write_trec_run(first_run, tmp_path / "b.trec")
    runs = [str(tmp_path / "a.trec"), str(tmp_path / "b.trec")]
    assert main(["fuse", "--method", method, "--runs", *runs, "--out", str(tmp_path / "f")]) == 0
    a, b = read_trec_run(tmp_path / "a.trec"), read_trec_run(tmp_path / "b.trec")
    expected = reciprocal_rank_fusion([a, b]) if method == "rrf" else normalised_score_sum([a, b])
    assert read_trec_run(tmp_path / "f" / "run.trec") == read_trec_run(_written(expected, tmp_path))


def test_evaluate_and_compare_read_run_artifacts(tiny_dir: Path, tmp_path: Path, capsys) -> None:
    """An artifact folder (run.trec + meta.json) is an input wherever a run file is."""
    good = {"q1": [ScoredDoc("q1", "d1", 2.0)], "q2": [ScoredDoc("q2", "d2", 1.0)]}
    bad = {"q1": [ScoredDoc("q1", "d0", 2.0), ScoredDoc("q1", "d1", 1.0)]}
    for name, run in (("good", good), ("bad", bad)):
        (tmp_path / name).mkdir()
        write_trec_run(run, tmp_path / name / "run.trec")
        write_stage_meta(tmp_path / name, stage="fuse", type="run", config={}, inputs={})
    data = ["--dataset", str(tiny_dir)]
    assert main(["evaluate", *data, "--run", str(tmp_path / "good"), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert list(figures) == ["nDCG@10", "RR@10", "R@100", "R@1000"]
    assert figures["RR@10"] == pytest.approx(2 / 3)  # q3 is judged and unanswered: 0
    argv = ["evaluate", *data, "--run", str(tmp_path / "good"), "--max-queries", "2"]
    assert main([*argv, "--measures", "RR@10", "--out", str(tmp_path / "ev")]) == 0
    assert capsys.readouterr().out.split() == ["RR@10", "1.0000"]
    meta = json.loads((tmp_path / "ev" / "meta.json").read_text())
    assert meta["type"] == "evaluation" and meta["inputs"]["run"]["type"] == "run"
    assert json.loads((tmp_path / "ev" / "aggregate.json").read_text()) == {"RR@10": 1.0}
    runs = [str(tmp_path / "good"), str(tmp_path / "bad")]
    argv = ["compare", *data, "--runs", *runs, "--baseline", "good", "--measure", "RR@10"]
    assert main(argv) == 0
    assert "| bad | 0.1667 | -0.5000 |" in capsys.readouterr().out
    assert main(["evaluate", *data, "--run", str(tmp_path / "ev")]) == 2
    assert "expected a run artifact for --run, found a evaluation artifact" in (
        capsys.readouterr().err
    )


def _run_artifact(folder: Path, run: Run, corpus: str) -> Path:
    folder.mkdir()
    write_trec_run(run, folder / "run.trec")
    record = {"dataset": f"d-{corpus}", "corpus_sha256": corpus}
    write_stage_meta(folder, stage="retrieve", type="run", config={}, inputs=record)
    return folder


def test_fuse_carries_the_corpus_of_its_runs_and_refuses_two_corpora(
    tmp_path: Path, capsys
) -> None:
    """A fused run is checked against the dataset it is used with like any run: it records
    the corpus its inputs share, and runs of two corpora are not fused."""
    reranked_run, first_run = _runs()
    a = _run_artifact(tmp_path / "a", reranked_run, "c1")
    b = _run_artifact(tmp_path / "b", first_run, "c1")
    assert main(["fuse", "--runs", str(a), str(b), "--out", str(tmp_path / "ab")]) == 0
    meta = json.loads((tmp_path / "ab" / "meta.json").read_text())
    assert meta["inputs"]["corpus_sha256"] == "c1" and meta["inputs"]["dataset"] == "d-c1"
    other = _run_artifact(tmp_path / "other", first_run, "c2")
    capsys.readouterr()
    assert main(["fuse", "--runs", str(a), str(other), "--out", str(tmp_path / "bad")]) == 2
    assert "expected runs of one corpus, found runs of 2" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_rrf_with_tail_fuses_the_heads_and_keeps_the_last_runs_tail(tmp_path: Path, capsys) -> None:
    reranked_run, first_run = _runs()
    write_trec_run(first_run, tmp_path / "first.trec")
    write_trec_run(reranked_run, tmp_path / "reranked.trec")
    runs = [str(tmp_path / "first.trec"), str(tmp_path / "reranked.trec")]
    argv = ["fuse", "--method", "rrf", "--runs", *runs, "--depth", str(DEPTH), "--tail"]
    assert main([*argv, "--out", str(tmp_path / "f")]) == 0
    fused = read_trec_run(tmp_path / "f" / "run.trec")
    head = reciprocal_rank_fusion([first_run, reranked_run], depth=DEPTH)
    assert fused == read_trec_run(
        _written(with_first_stage_tail(head, reranked_run, DEPTH), tmp_path)
    )
    # q1: first stage d0 d1 d2, reranked d2 d0 d1: d0 1/61 + 1/62, d2 1/63 + 1/61, d1 2/62...
    assert [d.doc_id for d in fused["q1"]] == ["d0", "d2", "d1", "d3", "d4", "d5", "d6"]
    for query_id, ranking in fused.items():  # the whole list, each document once
        assert sorted(d.doc_id for d in ranking) == sorted(d.doc_id for d in first_run[query_id])
    argv = ["fuse", "--method", "interpolate", "--runs", *runs, "--weight", "0.5", "--tail"]
    assert main([*argv, "--depth", "3", "--out", str(tmp_path / "g")]) == 2
    assert "expected --tail only with --method rrf or sum" in capsys.readouterr().err
