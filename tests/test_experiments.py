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
    _assert_diagnosed(root)


def _assert_diagnosed(root: Path) -> None:
    """The run's last stage: diagnosis.json parses, one diagnosis per fine-tuned smoke variant
    with one finding per registered check; diagnosis.md beside it; stages_ran.json lists it."""
    from inpars_core.diagnosis import Diagnosis
    from inpars_core.diagnosis.engine import registered_checks

    diagnosis = Diagnosis.from_dict(json.loads((root / "diagnosis.json").read_text()))
    assert [v.variant for v in diagnosis.variants] == ["bce", "hf-default"]
    codes = sorted(check.code for check in registered_checks())
    for item in diagnosis.variants:
        assert sorted(f.code for f in item.findings) == codes
        assert item.system == f"{item.variant}: supervised base + fine-tuned on synthetic queries"
    assert (root / "diagnosis.md").read_text().startswith("# Diagnosis of scifact-smoke")
    assert "diagnose" in json.loads((root / "stages_ran.json").read_text())["ran"]


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


#: Stages of the smoke run that only run before its generation (BM25 of the test and train
#: claims, the base reranker's triples and training), whichever the variant.
BEFORE_GENERATION = ("bm25-test", "bm25-train", "base-triples", "base-train")


def seed_stages_before_generation(smoke_root: Path, root: Path) -> list[str]:
    """Copy the session smoke run's :data:`BEFORE_GENERATION` stage folders into ``root`` (not
    the index, whose finishing before the kill the test checks): the killed run then reaches
    generation without retraining the base. Their keys are the ones a config that differs from
    the smoke only in ``[dense]`` computes, so the runs find them cached. Returns the folders
    copied (``stages/<stage>/<key>``)."""
    copied = []
    for stage in BEFORE_GENERATION:
        for folder in sorted((smoke_root / "stages" / stage).iterdir()):
            if (folder / "meta.json").is_file():
                relative = folder.relative_to(smoke_root)
                shutil.copytree(folder, root / relative)
                copied.append(str(relative))
    return copied


@pytest.mark.integration
def test_interrupted_run_resumes(smoke_runs_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = tmp_path / "smoke-without-dense.toml"  # generation is what is interrupted
    config.write_text(SMOKE_CONFIG.read_text().replace("enabled = true", "enabled = false"))
    seeded = seed_stages_before_generation(smoke_runs_dir / "scifact-smoke", runs / "scifact-smoke")
    assert any("base-train" in folder for folder in seeded)
    assert not any("index" in folder for folder in seeded)
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
    ran = json.loads((runs / "scifact-smoke" / "stages_ran.json").read_text())["events"]
    ran_folders = {str(Path("stages") / e["stage"] / e["key"]) for e in ran if e.get("key")}
    assert not set(seeded) & ran_folders  # the seeded stages were found cached
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


def test_summary_gives_deep_reranked_rows_the_share_of_top_10_from_bm25_beyond_100(
    tmp_path: Path,
) -> None:
    """P9's column on hand-made runs: BM25 ranks 1000 documents for 2 queries; the depth-1000
    rerank puts 3 documents from BM25 ranks 150, 151 and 400 in the top 10s (3 of 20), its
    interpolated row 1 (1 of 20); the depth-100 rerank and BM25 have no value."""
    from inpars_core.experiments.rows import Row
    from inpars_core.experiments.summary import (
        DEEP_FIELD,
        DEEP_HEADER,
        Overlap,
        summarize,
        to_markdown,
    )
    from inpars_core.records import ScoredDoc
    from inpars_core.runs import write_trec_run

    queries = ("q1", "q2")

    def ranked(order: dict[str, list[int]]) -> dict[str, list[ScoredDoc]]:
        """Each query's documents named by BM25 rank, in the given order."""
        return {
            q: [ScoredDoc(q, f"{q}-r{rank}", 1000.0 - i) for i, rank in enumerate(ranks)]
            for q, ranks in order.items()
        }

    bm25_order = list(range(1, 1001))
    bm25 = ranked({q: bm25_order for q in queries})
    deep_top = {"q1": [150, *range(1, 10)], "q2": [151, 400, *range(1, 9)]}
    rest = {q: [r for r in range(1, 1001) if r not in deep_top[q]] for q in queries}
    runs = {
        "bm25": bm25,
        "deep": ranked({q: deep_top[q] + rest[q] for q in queries}),
        # the interpolated row keeps BM25's order but for q1's rank 150, moved up to 10th
        "fused": ranked(
            {"q1": [*range(1, 10), 150, *range(10, 150), *range(151, 1001)], "q2": bm25_order}
        ),
        "shallow": ranked({q: [100, *range(1, 100), *range(101, 1001)] for q in queries}),
    }
    for name, run in runs.items():
        write_trec_run(run, tmp_path / f"{name}.trec")
    rows = [
        Row("BM25", "bm25", None, tmp_path / "bm25.trec"),
        Row("model", "synthetic", 1000, tmp_path / "deep.trec", family="cross-encoder"),
        Row("model ⊕ 0.5·BM25", "synthetic", 1000, tmp_path / "fused.trec", bm25_weight=0.5),
        Row("model", "synthetic", 100, tmp_path / "shallow.trec", family="cross-encoder"),
    ]
    qrels = {q: {f"{q}-r1": 1} for q in queries}
    summary, _ = summarize(
        rows,
        qrels,
        measures=["nDCG@10"],
        depths=[100, 1000],
        holm_family="depth-measure",
        costs={},
        overlap=Overlap(2, 0, (), ()),
        exclude_overlap=False,
    )
    shares = [row[DEEP_FIELD] for row in summary["rows"]]
    assert shares == [None, 3 / 20, 1 / 20, None]
    summary.update(experiment="e", dataset="d", wall_seconds=1.0, stages_ran=[])
    table = [line for line in to_markdown(summary).splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    column = header.index(DEEP_HEADER)
    cells = [[c.strip() for c in line.strip("|").split("|")][column] for line in table[2:]]
    assert cells == ["", "15.0%", "5.0%", ""]


def test_own_data_only_and_with_train_qrels_are_two_named_variants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``"finetune.mix_train_qrels" = true`` beside a variant without: two rows whose names
    say what each was fine-tuned on, built from two different triples stages (the mixed one
    appends the train-qrels triples)."""
    from inpars_core.datasets import load_beir_folder
    from inpars_core.experiments.stages import StageResult
    from inpars_core.stages import triples as triples_stage
    from tests.conftest import TINY_CORPUS, TINY_QUERIES, write_beir

    path = tmp_path / "own.toml"
    path.write_text(
        SMOKE_CONFIG.read_text()
        + '\n[variants.own]\n"finetune.objective" = "bce"\n'
        + '\n[variants.mixed]\n"finetune.objective" = "bce"\n"finetune.mix_train_qrels" = true\n'
    )
    config = load_config(path)
    own, mixed = config.variant("own"), config.variant("mixed")
    assert (own.finetune.mix_train_qrels, mixed.finetune.mix_train_qrels) == (False, True)
    data = write_beir(
        tmp_path / "tiny",
        TINY_CORPUS,
        TINY_QUERIES,
        {"train": "q1\td1\t1\n", "test": "q2\td2\t1\n"},
    )
    runner = ExperimentRunner(config, tmp_path / "runs")
    runner._dataset = load_beir_folder(data, name="tiny")
    for variant in (own, mixed):
        runner.check_label_sources(variant)  # the collection has train qrels: both allowed
    names = [runner.finetuned_name(n, v, "supervised") for n, v in (("own", own), ("mixed", mixed))]
    assert names == [
        "own: supervised base + fine-tuned on synthetic queries",
        "mixed: supervised base + fine-tuned on synthetic queries and tiny train qrels",
    ]
    calls: list[tuple[dict, object]] = []

    def store_run(name, params, keyed, build):
        calls.append((params, keyed))
        return StageResult(name, name, tmp_path, {}, ran=False)

    monkeypatch.setattr(runner.store, "run", store_run)
    monkeypatch.setattr(triples_stage, "run", lambda *_args: None)
    result = StageResult("x", "x", tmp_path, {}, ran=False)
    for variant in (own, mixed):
        runner.synthetic_triples(variant, result, result, [], result)
    (own_params, own_keyed), (mixed_params, mixed_keyed) = calls
    assert (own_params["mix_train_qrels"], mixed_params["mix_train_qrels"]) == (False, True)
    assert "train-triples" in mixed_keyed and "train-triples" not in own_keyed


@pytest.mark.integration
def test_pair_encodings_give_the_seed_2x2_table(smoke_runs_dir: Path, tmp_path: Path) -> None:
    """Issue 13: variants `pair` and `zero-types` give the base rows once per encoding (the base
    trained once, with `pair`), fine-tuned rows that inherit their variant's encoding in both
    finetune and rerank, and the 2x2 block; each rerank meta.json says what the model saw."""
    runs = tmp_path / "runs"
    shutil.copytree(smoke_runs_dir, runs)  # the pair variant is the smoke's bce: all cached
    path = tmp_path / "encodings.toml"
    path.write_text(
        SMOKE_CONFIG.read_text().split("[variants.bce]")[0]
        + '[variants.pair]\n"rerank.pair_encoding" = "pair"\n\n'
        + '[variants.zero-types]\n"rerank.pair_encoding" = "zero-types"\n'
    )
    runner = ExperimentRunner(load_config(path), runs)
    summary = runner.run()
    root = runs / "scifact-smoke"
    assert set(runner.store.ran) == {"rerank", "interpolate", "finetune"}
    assert runner.store.ran.count("finetune") == 1  # only the zero-types variant trains anew

    def meta(row: dict, stage: str) -> dict:
        return json.loads((root / row["stages"][stage] / "meta.json").read_text())

    rows = summary["rows"]
    base = "cross-encoder supervised on scifact train (16 queries)"
    bases = [r for r in rows if r["kind"] == "supervised" and r["bm25_weight"] == 0]
    assert [(r["system"], r["encoding"]) for r in bases] == [
        (base, "pair"),
        (f"{base} [zero-types encoding]", "zero-types"),
    ]
    assert len({r["stages"]["base-train"] for r in bases}) == 1  # trained once ...
    assert meta(bases[0], "base-train")["config"]["pair_encoding"] == "pair"  # ... with pair
    pair_seen, zero_seen = (meta(r, "rerank")["encoding"] for r in bases)
    assert meta(bases[1], "rerank")["config"]["pair_encoding"] == "zero-types"
    assert zero_seen["all_zero_types"] and zero_seen["type1_share"] == 0.0
    assert not pair_seen["all_zero_types"] and 0.0 < pair_seen["type1_share"] < 1.0
    assert pair_seen["cls_per_pair"] == zero_seen["cls_per_pair"] == 1.0
    assert pair_seen["mean_length"] == zero_seen["mean_length"]  # only the types differ
    runs_of = [(root / r["stages"]["rerank"] / "run.trec").read_text() for r in bases]
    assert runs_of[0] != runs_of[1]  # the bug changes the scores
    reported = {r["system"]: r for r in rows if r["baseline"]}
    assert summary["baselines"] == {"10": f"{base} ⊕ 0.5·BM25"}  # pair: the main baseline
    assert set(reported) == {f"{base} ⊕ 0.5·BM25", f"{base} [zero-types encoding] ⊕ 0.5·BM25"}
    for variant in ("pair", "zero-types"):
        tuned = [r for r in rows if r["variant"] == variant and r["family"] == "cross-encoder"]
        assert {r["encoding"] for r in tuned} == {variant}
        assert meta(tuned[0], "finetune")["config"]["pair_encoding"] == variant
        assert meta(tuned[0], "rerank")["config"]["pair_encoding"] == variant
        assert meta(tuned[0], "rerank")["encoding"]["all_zero_types"] == (variant != "pair")
        (row,) = [r for r in tuned if r["bm25_weight"] == 0.5]
        assert reported[row["compared_with"]]["encoding"] == variant
    dense = [r for r in rows if r["family"] == "bi-encoder"]
    assert dense and {r["compared_with"] for r in dense} == {f"{base} ⊕ 0.5·BM25"}
    table = summary["encoding_table"]
    assert table["encodings"] == ["pair", "zero-types"]
    assert table["columns"] == ["pair / zero-types"]  # the variants differ only by encoding
    for entry, encoding in zip(table["rows"], ("pair", "zero-types"), strict=True):
        assert entry["encoding"] == encoding and entry["before"]["system"] in reported
        after = entry["after"]["pair / zero-types"]
        assert after["variant"] == encoding and set(after["delta"]) == set(summary["measures"])
    assert "## Pair encoding × fine-tuning" in (root / "summary.md").read_text()
    assert json.loads((root / "summary.json").read_text())["encoding_table"] == table
