"""Shared fixtures: the SciFact copy in ../shared/datasets, tiny BEIR folders, loopback only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = (ROOT.parent / "shared" / "datasets").resolve()

# Tests read datasets from ../shared/datasets unless told otherwise, and never reach the network.
if "INPARS_DATA_DIR" not in os.environ and SHARED_DATASETS.is_dir():
    os.environ["INPARS_DATA_DIR"] = str(SHARED_DATASETS)
os.environ.setdefault("INPARS_BEIR_BASE_URL", "http://127.0.0.1:9/unreachable")
os.environ.pop("OPENAI_API_KEY", None)


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    """The SciFact folder (BEIR layout)."""
    path = Path(os.environ["INPARS_DATA_DIR"]) / "scifact"
    if not (path / "corpus.jsonl").is_file():
        pytest.fail(f"SciFact not found at {path}; set INPARS_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def scifact(scifact_dir: Path):
    """SciFact loaded once per session."""
    from inpars_core.datasets import load_beir_folder

    return load_beir_folder(scifact_dir, name="scifact")


def write_beir(
    folder: Path, corpus: list[dict], queries: list[dict], qrels: dict[str, str]
) -> Path:
    """Write a tiny BEIR folder; ``qrels`` maps split -> TSV body (header added)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels").mkdir(exist_ok=True)
    for split, body in qrels.items():
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + body)
    return folder


TINY_CORPUS = [
    {"_id": "d1", "title": "Aspirin", "text": "Aspirin reduces the risk of heart attack."},
    {"_id": "d2", "title": "Statins", "text": "Statins lower cholesterol in adults."},
    {"_id": "d3", "title": "Vitamin D", "text": "Vitamin D deficiency is common in winter."},
    # d4 and d0 are identical: every query scores them equally (a tie to break by doc id).
    {"_id": "d4", "title": "Coffee", "text": "Coffee drinking and heart rhythm."},
    {"_id": "d0", "title": "Coffee", "text": "Coffee drinking and heart rhythm."},
]
TINY_QUERIES = [
    {"_id": "q1", "text": "aspirin heart attack"},
    {"_id": "q2", "text": "cholesterol statins"},
    {"_id": "q3", "text": "coffee heart"},
]
TINY_QRELS = {"test": "q1\td1\t1\nq2\td2\t1\nq3\td4\t1\n"}


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """A five-document BEIR folder with three judged queries."""
    return write_beir(tmp_path / "tiny", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)


def save_seeded_reranker(folder: Path) -> Path:
    """The packaged MiniLM backbone with a 1-logit head seeded 0, saved into ``folder`` (a fixed
    model for scoring tests)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inpars_core.models import resolve_model_path

    torch.manual_seed(0)
    path = resolve_model_path("minilm")
    AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(path).save_pretrained(folder)
    return folder


SMOKE_CONFIG = ROOT / "configs" / "scifact-smoke.toml"


@pytest.fixture(scope="session")
def smoke_runs_dir(tmp_path_factory) -> Path:
    """A runs directory holding the smoke experiment, produced once by the real pipeline (once
    per session: under pytest-xdist the first worker builds it, the others wait and share it)."""
    import fcntl

    from inpars_core.experiments.config import load_config
    from inpars_core.experiments.runner import ExperimentRunner

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, above each worker's own
    runs_dir = shared / "smoke-runs"
    with open(shared / "smoke-runs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (runs_dir / "scifact-smoke" / "summary.json").is_file():
            ExperimentRunner(load_config(SMOKE_CONFIG), runs_dir).run()
    return runs_dir


#: Fixtures that start a JVM, load or train a model, run the pipeline, or start a server or a
#: browser: a test using one (directly or through another fixture) belongs to the integration tier.
INTEGRATION_FIXTURES = frozenset(
    {"smoke_runs_dir", "gguf", "checkpoint", "tiny_reranker_dir", "cached", "flat_index", "browser"}
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep `make test-fast` fast: a test using an integration fixture must be marked
    ``integration`` (or ``slow``), else collection stops naming it."""
    unmarked = [
        f"{item.nodeid} (uses {', '.join(sorted(heavy))})"
        for item in items
        if (heavy := INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        and item.get_closest_marker("integration") is None
        and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "expected @pytest.mark.integration on tests using integration fixtures, found none on: "
            + "; ".join(unmarked)
            + ". Fix: mark them (or the module, with pytestmark)"
        )
