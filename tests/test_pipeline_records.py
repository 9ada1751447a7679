"""The pipeline writes down what a reader needs: every filter verdict, the exact prompt, the
per-query values of every row and which stages made each row (experiment.json)."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # reads the smoke experiment made by the real pipeline


@pytest.fixture(scope="module")
def smoke_root(smoke_runs_dir: Path) -> Path:
    return smoke_runs_dir / "scifact-smoke"


def _only(root: Path, stage: str) -> Path:
    folders = [p for p in (root / "stages" / stage).iterdir() if (p / "meta.json").is_file()]
    assert len(folders) == 1, folders
    return folders[0]


def test_filter_stage_writes_every_verdict_with_its_value(smoke_root: Path) -> None:
    folder = _only(smoke_root, "filter")
    generated = _only(smoke_root, "generate")
    queries = [json.loads(line) for line in (generated / "queries.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in (folder / "verdicts.jsonl").read_text().splitlines()]
    assert [r["query_id"] for r in rows] == [q["query_id"] for q in queries]
    kept = {
        json.loads(line)["query_id"] for line in (folder / "queries.jsonl").read_text().splitlines()
    }
    assert {r["query_id"] for r in rows if r["kept"]} == kept
    filters = {v["filter"] for r in rows for v in r["verdicts"]}
    assert {"length", "duplicates", "document-copy"} <= filters
    for row in rows:
        assert {v["filter"] for v in row["verdicts"]} == filters  # kept queries too
        assert row["kept"] == all(v["kept"] for v in row["verdicts"])
        length = next(v for v in row["verdicts"] if v["filter"] == "length")
        # The measured value: runs of letters and digits ("PTEN-null" is two words).
        assert length["value"] == len(re.findall(r"[^\W_]+", row["text"]))


def test_generate_stage_records_the_exact_prompt(smoke_root: Path) -> None:
    import hashlib

    folder = _only(smoke_root, "generate")
    prompt = json.loads((folder / "prompt.json").read_text())
    assert prompt["document_placeholder"] in prompt["template"]
    assert hashlib.sha256(prompt["template"].encode()).hexdigest()[:16] == prompt["prompt_hash"]
    first = json.loads((folder / "queries.jsonl").read_text().splitlines()[0])
    assert first["prompt_hash"] == prompt["prompt_hash"]
    assert prompt["example_queries"] and all(
        q in prompt["template"] for q in prompt["example_queries"]
    )


def test_per_query_values_average_to_the_summary(smoke_root: Path) -> None:
    summary = json.loads((smoke_root / "summary.json").read_text())
    values: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    with open(smoke_root / summary["per_query_file"], encoding="utf-8") as handle:
        for line in csv.DictReader(handle, delimiter="\t"):
            values[(line["block"], int(line["row"]), line["measure"])].append(float(line["value"]))
    for block, table in (("all", summary["rows"]), ("no-overlap", summary["no_overlap"]["rows"])):
        for row in table:
            for measure, mean in row["measures"].items():
                got = values[(block, row["row"], measure)]
                assert len(got) == (
                    summary["test_queries"]
                    if block == "all"
                    else summary["no_overlap"]["test_queries"]
                )
                assert sum(got) / len(got) == pytest.approx(mean, abs=1e-12)


def test_manifest_names_the_stages_of_every_system(smoke_root: Path) -> None:
    manifest = json.loads((smoke_root / "experiment.json").read_text())
    summary = json.loads((smoke_root / "summary.json").read_text())
    assert manifest["dataset"]["path"] == summary["dataset_path"]
    assert len(manifest["dataset"]["content_hash"]) == 16
    assert [s["system"] for s in manifest["systems"]] == [r["system"] for r in summary["rows"]]
    for system in manifest["systems"]:
        for stage, folder in system["stages"].items():
            assert (smoke_root / folder / "meta.json").is_file(), (system["system"], stage)
        made_by = str(Path(system["run"]).parent.relative_to(smoke_root))
        assert made_by in system["stages"].values()
        if system["kind"] == "synthetic" and system["family"] == "cross-encoder":
            assert {"generate", "filter", "triples", "finetune", "rerank"} <= set(system["stages"])
        if system["bm25_weight"] > 0:
            assert "interpolate" in system["stages"]
