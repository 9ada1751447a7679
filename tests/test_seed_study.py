"""The seed study's sizing knobs: ``[profiles.NAME]`` (one file, a CPU and a full-size profile)
and ``rerank.depth_queries`` (depth 1000 on fewer queries than depth 100), each row evaluated on
the queries it reranked and compared only with rows of the same queries."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inpars_core.errors import ConfigError
from inpars_core.experiments.config import load_config
from inpars_core.experiments.rows import Row
from inpars_core.experiments.summary import Overlap, summarize, to_markdown
from tests.conftest import ROOT, SMOKE_CONFIG

CLI = [sys.executable, "-m", "inpars_core.cli"]
SEED_CONFIG = ROOT / "configs" / "scifact-seed.toml"

PROFILED = """
[experiment]
name = "study"
[rerank]
depths = [100]
[profiles.full]
"experiment.name" = "study-full"
"rerank.depths" = [100, 1000]
"rerank.depth_queries" = [300, 300]
"dataset.max_test_queries" = 300
"""


def test_a_profile_overrides_the_file_and_renames_the_experiment(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(PROFILED)
    plain = load_config(path)
    full = load_config(path, "full")
    assert plain.experiment.name == "study" and plain.rerank.depths == (100,)
    assert full.experiment.name == "study-full"
    assert full.rerank.depths == (100, 1000) and full.rerank.depth_queries == (300, 300)
    assert full.dataset.max_test_queries == 300 and plain.dataset.max_test_queries is None


@pytest.mark.parametrize(
    ("profile", "extra", "expected"),
    [
        ("gpu", "", "unknown profile 'gpu'; known: full"),
        ("full", '[profiles.bad]\n"depths" = [1]\n', 'profiles.bad.depths: expected "section.key"'),
        ("full", '[profiles.wrong]\n"rerank.depths" = [0]\n', None),
    ],
)
def test_profile_errors_name_the_profile_and_key(
    tmp_path: Path, profile: str, extra: str, expected: str | None
) -> None:
    path = tmp_path / "study.toml"
    path.write_text(PROFILED + extra)
    if expected is None:  # a bad value in an unused profile is found when it is used
        load_config(path, profile)
        with pytest.raises(ConfigError, match=r"\(profile wrong\): rerank.depths"):
            load_config(path, "wrong")
        return
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_config(path, "bad" if "bad" in expected else profile)


def test_depth_queries_needs_one_count_per_depth(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text("[rerank]\ndepths = [100, 1000]\ndepth_queries = [50]\n")
    with pytest.raises(ConfigError, match=r"rerank.depth_queries: expected one query count per"):
        load_config(path)


def test_run_cli_profile_flag_errors_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(PROFILED)
    done = subprocess.run(
        [*CLI, "run", str(path), "--profile", "nope", "--dry-run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "unknown profile 'nope'" in done.stderr and "Traceback" not in done.stderr


def _write_run(path: Path, run: dict[str, list[str]]) -> Path:
    lines = [
        f"{q} Q0 {d} {rank} {len(docs) - rank + 1} t"
        for q, docs in run.items()
        for rank, d in enumerate(docs, start=1)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rows_of_a_subset_depth_are_evaluated_and_compared_on_its_queries(tmp_path: Path) -> None:
    """Depth 5 on all 4 queries, depth 50 on the first 2: the depth-50 rows are scored on q1 and
    q2 only (not zeros for q3, q4) and compared with the depth-50 baseline on those."""
    qrels = {q: {f"{q}-rel": 1} for q in ("q1", "q2", "q3", "q4")}
    good = {q: [f"{q}-rel", "x", "y"] for q in qrels}
    bad = {q: ["x", "y", f"{q}-rel"] for q in qrels}
    rows = [
        Row("BM25", "bm25", None, _write_run(tmp_path / "bm25", bad)),
        Row("base", "supervised", 5, _write_run(tmp_path / "b5", bad), is_baseline=True),
        Row("tuned", "synthetic", 5, _write_run(tmp_path / "t5", good)),
        Row(
            "base",
            "supervised",
            50,
            _write_run(tmp_path / "b50", {q: bad[q] for q in ("q1", "q2")}),
            is_baseline=True,
            queries=2,
        ),
        Row(
            "tuned",
            "synthetic",
            50,
            _write_run(tmp_path / "t50", {q: good[q] for q in ("q1", "q2")}),
            queries=2,
        ),
    ]
    summary, per_query = summarize(
        rows,
        qrels,
        measures=["RR@10"],
        depths=[5, 50],
        holm_family="depth-measure",
        costs={},
        overlap=Overlap(test_queries=4, trained_queries=0, overlapping=(), verbatim=()),
        exclude_overlap=False,
        query_order=["q1", "q2", "q3", "q4"],
    )
    table = summary["rows"]
    assert [r["test_queries"] for r in table] == [4, 4, 4, 2, 2]
    assert table[4]["measures"]["RR@10"] == pytest.approx(1.0)  # not (1 + 1 + 0 + 0) / 4
    assert table[3]["measures"]["RR@10"] == pytest.approx(1 / 3)
    assert table[4]["delta"]["RR@10"] == pytest.approx(2 / 3)
    assert table[4]["wins_ties_losses"]["RR@10"] == [2, 0, 0]  # compared on q1, q2 only
    assert table[2]["wins_ties_losses"]["RR@10"] == [4, 0, 0]
    assert {q for _, i, q, _, _ in per_query if i == 4} == {"q1", "q2"}
    assert "| 50 (2 queries) |" in to_markdown(
        {**summary, "experiment": "x", "dataset": "d", "wall_seconds": 0, "stages_ran": []}
    )


@pytest.mark.integration
def test_runner_reranks_each_depth_on_its_queries(smoke_runs_dir: Path, tmp_path: Path) -> None:
    """The smoke experiment with depths [5, 10] on 12 and 4 queries: the depth-10 rerank
    stages hold 4 queries, their rows are scored on 4, and BM25 is also shown on those 4."""
    runs = tmp_path / "runs"
    shutil.copytree(smoke_runs_dir, runs)  # its generation, training and BM25 stay cached
    from inpars_core.experiments.runner import ExperimentRunner

    config = load_config(SMOKE_CONFIG)
    config = dataclasses.replace(
        config,
        rerank=dataclasses.replace(config.rerank, depths=(5, 10), depth_queries=(12, 4)),
        variants={"bce": config.variants["bce"]},
    )
    runner = ExperimentRunner(config, runs)
    summary = runner.run()
    assert "finetune" not in runner.store.ran and "generate" not in runner.store.ran
    rows = summary["rows"]
    deep = [r for r in rows if r["depth"] == 10]
    assert deep and all(r["test_queries"] == 4 for r in deep)
    assert all(r["test_queries"] == 12 for r in rows if r["depth"] == 5)
    for row in deep:
        stage = row["stages"].get("rerank") or row["stages"].get("dense-rerank")
        meta = json.loads((runs / "scifact-smoke" / stage / "meta.json").read_text())
        assert meta["counts"]["queries"] == 4
    subset_bm25 = [r for r in rows if r["system"] == "BM25 [first 4 test queries]"]
    assert len(subset_bm25) == 1 and subset_bm25[0]["test_queries"] == 4
    tuned = [r for r in deep if r["kind"] == "synthetic" and r["family"] == "cross-encoder"]
    assert tuned and all("delta" in r for r in tuned)


def test_seed_config_validates_in_every_profile() -> None:
    if not SEED_CONFIG.is_file():
        pytest.skip("configs/scifact-seed.toml is not there yet")
    raw = SEED_CONFIG.read_text()
    load_config(SEED_CONFIG)
    import tomllib

    for profile in tomllib.loads(raw).get("profiles", {}):
        load_config(SEED_CONFIG, profile)


@pytest.mark.integration
def test_prepare_runs_only_the_stages_that_need_no_gpu(
    smoke_runs_dir: Path, tmp_path: Path
) -> None:
    """``inpars run --prepare``: index, BM25, generation, filters and triples run, nothing that
    trains or reranks, and each lands under the key ``run`` looks for (the smoke experiment's
    own folders), so a GPU machine continues from this cache."""
    from inpars_core.experiments.runner import ExperimentRunner

    runner = ExperimentRunner(load_config(SMOKE_CONFIG), tmp_path / "runs")
    ran = runner.prepare()
    assert set(ran) == {
        "index",
        "bm25-test",
        "bm25-train",
        "base-triples",
        "generate",
        "filter",
        "synthetic-bm25",
        "triples",
    }
    mine = tmp_path / "runs" / "scifact-smoke" / "stages"
    theirs = smoke_runs_dir / "scifact-smoke" / "stages"
    for stage in set(ran):
        keys = {p.name for p in (mine / stage).iterdir() if not p.name.startswith(".")}
        assert keys <= {p.name for p in (theirs / stage).iterdir()}, stage
    done = subprocess.run(
        [*CLI, "run", str(SMOKE_CONFIG), "--prepare", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ran nothing" in done.stdout  # all cached


def test_dense_finetune_objective_none_keeps_only_the_zero_shot_dense_rows(
    tmp_path: Path,
) -> None:
    """TOML has no null: ``finetune_objective = "none"`` is how a config (the demo) keeps the
    zero-shot bi-encoder rows and drops the fine-tuned one; anything else is refused by name."""
    from inpars_core.experiments.runner import fine_tunes_bi_encoder

    demo = load_config(ROOT / "configs" / "scifact-offline.toml")
    assert demo.dense.enabled and demo.dense.finetune_objective == "none"
    assert not fine_tunes_bi_encoder(demo)
    assert fine_tunes_bi_encoder(load_config(SEED_CONFIG))
    off = dataclasses.replace(demo, dense=dataclasses.replace(demo.dense, enabled=False))
    mnrl = dataclasses.replace(off, dense=dataclasses.replace(off.dense, finetune_objective="mnrl"))
    assert not fine_tunes_bi_encoder(mnrl)
    path = tmp_path / "bad.toml"
    path.write_text(
        '[experiment]\nname = "x"\n[dense]\nenabled = true\nfinetune_objective = "no"\n'
    )
    with pytest.raises(ConfigError, match=r"dense\.finetune_objective.*none.*'no'"):
        load_config(path)


def test_a_variant_cannot_change_the_shared_base_reranker(tmp_path: Path) -> None:
    """The base is trained once from the top-level [base_reranker]: a variant's base_reranker
    override used to be ignored without a word; it is refused, except in a label-free variant
    (source = "synthetic"), which trains its own model."""
    path = tmp_path / "study.toml"
    body = '[experiment]\nname = "x"\n[base_reranker]\nsource = "train"\nepochs = 1\n'
    path.write_text(body + '[variants.longer]\n"base_reranker.epochs" = 3\n')
    with pytest.raises(ConfigError, match=r"variants\.longer: base_reranker\.epochs: .*shared"):
        load_config(path).variant("longer")
    path.write_text(
        body + '[variants.own]\n"base_reranker.source" = "synthetic"\n"base_reranker.epochs" = 3\n'
    )
    assert load_config(path).variant("own").base_reranker.epochs == 3
    path.write_text(body + '[variants.same]\n"base_reranker.epochs" = 1\n')
    assert load_config(path).variant("same").base_reranker.epochs == 1
