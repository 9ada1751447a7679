"""Experiments end to end: the smoke config, caching by stage key, resume, config errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inpars_core.errors import ConfigError
from inpars_core.experiments.config import load_config
from inpars_core.experiments.runner import ExperimentRunner
from tests.conftest import ROOT, SMOKE_CONFIG

CLI = [sys.executable, "-m", "inpars_core.cli"]
ALL_STAGES = {
    "index",
    "bm25-test",
    "bm25-train",
    "base-triples",
    "base-train",
    "rerank",
    "interpolate",
    "dense-rerank",
    "generate",
    "filter",
    "synthetic-bm25",
    "triples",
    "finetune",
    "dense-finetune",
    "rrf",
}


@pytest.mark.integration
def test_smoke_config_runs_every_stage(smoke_runs_dir: Path) -> None:
    root = smoke_runs_dir / "scifact-smoke"
    summary = json.loads((root / "summary.json").read_text())
    assert set(summary["stages_ran"]) == ALL_STAGES
    base = "cross-encoder supervised on scifact train (16 queries)"
    bce = "bce: supervised base + fine-tuned on synthetic queries"
    hf = "hf-default: supervised base + fine-tuned on synthetic queries"
    systems = [(r["system"], r["kind"], r["depth"]) for r in summary["rows"]]
    assert systems == [
        ("BM25", "bm25", None),
        (base, "supervised", 10),
        (f"{base} ⊕ 0.5·BM25", "supervised", 10),
        ("bi-encoder minilm, zero-shot", "zero-shot", 10),
        ("RRF(BM25, bi-encoder minilm, zero-shot)", "zero-shot", 10),
        (bce, "synthetic", 10),
        (f"{bce} ⊕ 0.5·BM25", "synthetic", 10),
        (
            "bi-encoder minilm + fine-tuned on synthetic queries (mnrl) "
            "[same model for variants bce, hf-default]",
            "synthetic",
            10,
        ),
        (hf, "synthetic", 10),
        (f"{hf} ⊕ 0.5·BM25", "synthetic", 10),
    ]
    assert summary["baselines"] == {"10": f"{base} ⊕ 0.5·BM25"}
    for row in summary["rows"]:
        assert set(row["measures"]) == {"nDCG@10", "RR@10", "R@100"}
        assert Path(row["run"]).is_file()
    tuned = next(r for r in summary["rows"] if r["system"] == f"{bce} ⊕ 0.5·BM25")
    assert set(tuned["delta"]) == {"nDCG@10", "RR@10", "R@100"}
    assert tuned["training"]["step0_dev_ndcg10"] is not None
    assert tuned["training"]["dev"] == "train"  # SciFact has train qrels: "auto" uses them
    assert (
        f"| **{base} ⊕ 0.5·BM25** (baseline) | supervised | 10 |"
        in (root / "summary.md").read_text()
    )
    for stage in ALL_STAGES:
        folders = [p for p in (root / "stages" / stage).iterdir() if p.is_dir()]
        assert folders and all((p / "meta.json").is_file() for p in folders)


@pytest.mark.integration
def test_unchanged_rerun_runs_nothing_and_one_knob_reruns_downstream(
    smoke_runs_dir: Path, tmp_path: Path
) -> None:
    # A copy: the session's smoke experiment is read by other tests and must stay as made.
    runs = tmp_path / "runs"
    shutil.copytree(smoke_runs_dir, runs)
    config = load_config(SMOKE_CONFIG)
    again = ExperimentRunner(config, runs)
    again.run()
    assert again.store.ran == []
    changed = dataclasses.replace(config, finetune=dataclasses.replace(config.finetune, lr=2e-5))
    runner = ExperimentRunner(changed, runs)
    runner.run()
    # Only training and what depends on it: per variant, finetune, rerank, interpolate.
    assert runner.store.ran == ["finetune", "rerank", "interpolate"] * 2


@pytest.mark.integration
def test_interrupted_run_resumes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = tmp_path / "smoke-without-dense.toml"  # generation is what is interrupted
    config.write_text(SMOKE_CONFIG.read_text().replace("enabled = true", "enabled = false"))
    args = [*CLI, "run", str(config), "--runs-dir", str(runs), "--variant", "bce"]
    env = dict(os.environ)
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    generate = runs / "scifact-smoke" / "stages" / "generate"
    deadline = time.monotonic() + 240
    queries: list[Path] = []
    while time.monotonic() < deadline:
        queries = list(generate.glob("*.work/queries.jsonl")) if generate.exists() else []
        if queries and queries[0].read_text().count("\n") >= 2:
            break
        time.sleep(0.1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert queries, "the run was killed during generation"
    done_before = queries[0].read_text().count("\n")
    assert 2 <= done_before < 6
    completed = {
        p.parent.parent.name for p in (runs / "scifact-smoke" / "stages").glob("*/*/meta.json")
    }
    assert "generate" not in completed
    subprocess.run(args, check=True, capture_output=True, env=env)
    summary = json.loads((runs / "scifact-smoke" / "summary.json").read_text())
    assert "generate" in summary["stages_ran"]
    assert "index" not in summary["stages_ran"]  # finished before the kill: not run again
    (meta_path,) = generate.glob("*/meta.json")
    counts = json.loads(meta_path.read_text())["counts"]
    assert counts["resumed_done"] == done_before and counts["queries"] == 6
    lines = (meta_path.parent / "queries.jsonl").read_text().splitlines()
    assert len({json.loads(line)["doc_id"] for line in lines}) == len(lines) == 6


def test_invalid_config_names_the_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        SMOKE_CONFIG.read_text().replace('model = "gemma-3-270m"', 'modle = "gemma-3-270m"')
    )
    with pytest.raises(ConfigError, match=r"generator\.modle: unknown key"):
        load_config(bad)
    out = subprocess.run([*CLI, "run", str(bad), "--dry-run"], capture_output=True, text=True)
    assert out.returncode == 2 and "generator.modle: unknown key" in out.stderr
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[finetune]\nlr = "fast"\n')
    with pytest.raises(ConfigError, match=r"finetune\.lr: expected float, found 'fast'"):
        load_config(wrong)
    variant = tmp_path / "variant.toml"
    variant.write_text('[variants.x]\n"finetune.objectiv" = "bce"\n')
    with pytest.raises(ConfigError, match=r"variants\.x: finetune\.objectiv: unknown key"):
        load_config(variant)


def test_shipped_configs_validate_and_trec_covid_dry_run_estimates(tmp_path: Path) -> None:
    for path in sorted((ROOT / "configs").glob("*.toml")):
        load_config(path)
    out = subprocess.run(
        [*CLI, "run", str(ROOT / "configs" / "trec-covid-openai.toml"), "--dry-run"],
        capture_output=True,
        text=True,
        env={**os.environ, "INPARS_DATA_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert "ESTIMATE from published statistics" in out.stdout
    assert "171,332 documents" in out.stdout and "expected cost US$" in out.stdout
