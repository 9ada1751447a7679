"""Issue 13: the label-free InPars row (``base_reranker.source = "synthetic"``), model-based
consistency checking (InPars-light) as a filter, and the RRF rows beside them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inpars_core.cli import main
from inpars_core.errors import ConfigError
from inpars_core.experiments.config import load_config
from inpars_core.experiments.runner import ExperimentRunner
from tests.conftest import SMOKE_CONFIG

#: (query_id, source doc_id, text) over the tiny corpus of conftest (d0 and d4 are identical).
SYNTHETIC = [
    ("syn-d1", "d1", "does aspirin reduce heart attack risk"),
    ("syn-d2", "d2", "do statins lower cholesterol in adults"),
    ("syn-d3", "d3", "is vitamin d deficiency common in winter"),
    ("syn-d4", "d4", "coffee and heart rhythm"),  # d0 ties it and wins on doc id
    ("syn-d0", "d0", "heart attack risk"),
]


def _write_queries(path: Path) -> Path:
    rows = [
        {
            "query_id": q,
            "doc_id": d,
            "text": t,
            "raw_output": t,
            "prompt_id": "inpars",
            "prompt_hash": "abc",
            "backend": "llamacpp",
            "model": "gemma-3-270m",
            "seed": 0,
            "mean_logprob": -0.5,
        }
        for q, d, t in SYNTHETIC
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- config


def _smoke_with(extra: str, *, source: str = "train", variants: bool = True) -> str:
    text = SMOKE_CONFIG.read_text()
    if not variants:
        text = text[: text.index("[variants.")]
    text = text.replace('source = "train"', f'source = "{source}"')
    return text + "\n" + extra


def test_synthetic_source_is_valid_at_the_top_and_in_a_variant(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(_smoke_with("", source="synthetic", variants=False))
    assert load_config(path).base_reranker.source == "synthetic"
    path.write_text(
        _smoke_with(
            '[variants.inpars]\n"base_reranker.source" = "synthetic"\n"filters.consistency_k" = 3\n'
        )
    )
    config = load_config(path)
    assert config.base_reranker.source == "train"
    assert config.variant("inpars").base_reranker.source == "synthetic"
    assert config.variant("inpars").filters.consistency_k == 3


@pytest.mark.parametrize(
    ("text", "source", "variants", "message"),
    [
        (
            '[variants.mixed]\n"base_reranker.source" = "synthetic"\n'
            '"finetune.mix_train_qrels" = true\n',
            "train",
            True,
            r'variants\.mixed: finetune\.mix_train_qrels: base_reranker\.source = "synthetic" '
            r"trains on the synthetic queries alone \(label-free\)",
        ),
        (
            '[variants.checked]\n"filters.consistency_k" = 3\n',
            "train",
            True,
            r"variants\.checked: filters\.consistency_k: set \(3\) without "
            r"filters\.consistency_model, which only base_reranker\.source = \"synthetic\"",
        ),
        (
            '[variants.base]\n"base_reranker.source" = "hf"\n',
            "synthetic",
            False,
            r'variants\.base: base_reranker\.source = "synthetic" at the top has no base '
            r"reranker for a variant to fine-tune, found source 'hf'",
        ),
    ],
)
def test_label_free_configs_refused_with_the_fix(
    tmp_path: Path, text: str, source: str, variants: bool, message: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(_smoke_with(text, source=source, variants=variants))
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert "Fix:" in str(error.value)


def test_label_free_source_needs_no_train_qrels(tmp_path: Path, tiny_dir: Path) -> None:
    path = tmp_path / "c.toml"  # the tiny collection has test qrels only
    text = (
        '[experiment]\nname = "x"\n[dataset]\nname = "{}"\n[bm25]\nk = 5\n[rerank]\ndepths = [3]\n'
    )
    text += '[base_reranker]\nsource = "{}"\n[finetune]\ndev = "train"\n'
    path.write_text(text.format(tiny_dir, "synthetic"))
    label_free = load_config(path)
    runner = ExperimentRunner(label_free, tmp_path / "runs")
    assert not runner.has_train_qrels()
    runner.check_label_sources(label_free)  # nothing it needs is missing
    assert runner.dev_mode(label_free) == "synthetic"  # forced, whatever finetune.dev says
    assert not runner.uses_train_qrels([label_free])
    path.write_text(text.format(tiny_dir, "train"))
    supervised = load_config(path)
    with pytest.raises(ConfigError, match=r'base_reranker\.source = "train" and finetune\.dev'):
        ExperimentRunner(supervised, tmp_path / "runs").check_label_sources(supervised)


# --------------------------------------------------------------------------- the filter


@pytest.fixture(scope="module")
def seeded_model(tmp_path_factory) -> Path:
    """The packaged MiniLM backbone with a seeded 1-logit head (a fixed model), saved once."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inpars_core.models import resolve_model_path

    torch.manual_seed(11)
    path = resolve_model_path("minilm")
    folder = tmp_path_factory.mktemp("consistency-model") / "model"
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    with torch.no_grad():  # scores with some spread: no near ties between documents
        model.classifier.weight.mul_(20)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(path).save_pretrained(folder)
    return folder


def _expected_ranks(model: Path, tiny_dir: Path, index: Path, depth: int) -> dict[str, int | None]:
    """The source document's rank in the model's order of each query's BM25 top ``depth``,
    computed here: BM25 searched directly, each pair scored alone (no batch padding), sorted
    by score then doc id."""
    from inpars_core.datasets import load_beir_folder
    from inpars_core.records import Query
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import load_reranker, score_pairs
    from inpars_core.retrieval.bm25 import BM25Config, BM25Retriever

    corpus = load_beir_folder(tiny_dir).corpus
    run = BM25Retriever(index, BM25Config(k1=0.9, b=0.4)).retrieve(
        {q: Query(q, t) for q, _, t in SYNTHETIC}, depth
    )
    reranker = load_reranker(str(model))
    ranks: dict[str, int | None] = {}
    for query_id, doc_id, text in SYNTHETIC:
        scored = []
        for doc in run[query_id][:depth]:
            pair = [(text, corpus[doc.doc_id].contents)]
            (score,) = score_pairs(reranker, pair, EncodingConfig(max_length=64))
            scored.append((-score, doc.doc_id))
        order = [d for _, d in sorted(scored)]
        ranks[query_id] = order.index(doc_id) + 1 if doc_id in order else None
    return ranks


#: Every other filter off: the consistency check alone decides.
ONLY_CONSISTENCY = [
    *("--min-words", "none", "--max-words", "none", "--near-duplicate-jaccard", "none"),
    *("--max-document-overlap", "none", "--example-copy-jaccard", "none"),
]


@pytest.mark.integration
def test_consistency_filter_from_the_command_line(
    seeded_model: Path, tiny_dir: Path, tmp_path: Path, capsys
) -> None:
    index = tmp_path / "index"
    assert main(["index", "--dataset", str(tiny_dir), "--out", str(index)]) == 0
    source = _write_queries(tmp_path / "generated.jsonl")
    argv = ["filter", "--queries", str(source), "--dataset", str(tiny_dir), *ONLY_CONSISTENCY]
    assert main([*argv, "--consistency-k", "2", "--out", str(tmp_path / "no-model")]) == 2
    assert "--consistency-k 2: expected --consistency-model" in capsys.readouterr().err
    argv += ["--index", str(index), "--consistency-model", str(seeded_model)]
    argv += ["--consistency-k", "2", "--consistency-depth", "4", "--consistency-max-length", "64"]
    out = tmp_path / "kept"
    assert main([*argv, "--out", str(out)]) == 0
    expected = _expected_ranks(seeded_model, tiny_dir, index, depth=4)
    rows = {r["query_id"]: r for r in _jsonl(out / "verdicts.jsonl")}
    assert [[v["filter"] for v in r["verdicts"]] for r in rows.values()] == [["consistency"]] * 5
    ranks = {q: r["verdicts"][0]["value"] for q, r in rows.items()}
    assert ranks == expected
    kept = {q for q, rank in expected.items() if rank is not None and rank <= 2}
    assert 1 <= len(kept) < len(SYNTHETIC), "the check should keep some queries and drop some"
    assert {q["query_id"] for q in _jsonl(out / "queries.jsonl")} == kept
    assert {q for q, r in rows.items() if r["kept"]} == kept
    for query_id, row in rows.items():
        (verdict,) = row["verdicts"]
        assert verdict["kept"] == (query_id in kept)
        assert (verdict["reason"] == "") == (query_id in kept)
    assert expected["syn-d4"] != 1  # d0 is d4's twin: it ties d4's score and wins on doc id
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["dropped_by"] == {"consistency": len(SYNTHETIC) - len(kept)}
    assert meta["inputs"]["consistency_fingerprint"]
    assert meta["config"]["consistency_k"] == 2 and meta["config"]["consistency_depth"] == 4
    # the same check from the queries' BM25 run instead of the index (no JVM: a GPU machine)
    run = tmp_path / "bm25"
    assert main(["retrieve", "--dataset", str(tiny_dir), "--index", str(index), "--queries",
                 str(source), "--k", "4", "--out", str(run)]) == 0  # fmt: skip
    from_run = tmp_path / "kept-from-run"
    argv_run = [a if a != str(index) else str(run) for a in argv]
    argv_run[argv_run.index("--index")] = "--run"
    assert main([*argv_run, "--out", str(from_run)]) == 0
    assert _jsonl(from_run / "verdicts.jsonl") == _jsonl(out / "verdicts.jsonl")
    assert "run" in json.loads((from_run / "meta.json").read_text())["inputs"]


# --------------------------------------------------------------------------- the experiment

LABEL_FREE = (
    '[variants.labelfree]\n"base_reranker.source" = "synthetic"\n'
    '"filters.consistency_k" = 8\n"filters.consistency_depth" = 10\n'
    '"filters.consistency_max_length" = 64\n'
)
#: The top-level label-free config: its [filters] gain the consistency check.
TOP_FILTERS = "[filters]\nconsistency_k = 8\nconsistency_depth = 10\nconsistency_max_length = 64\n"


def _stage_meta(root: Path, row: dict, stage: str) -> dict:
    return json.loads((root / row["stages"][stage] / "meta.json").read_text())


@pytest.mark.integration
def test_label_free_variant_and_top_level_rows(
    smoke_runs_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    runs = tmp_path / "runs"  # a copy: the session's smoke experiment must stay as made
    shutil.copytree(smoke_runs_dir, runs)
    variant_toml = tmp_path / "variant.toml"
    variant_toml.write_text(_smoke_with(LABEL_FREE))
    runner = ExperimentRunner(load_config(variant_toml), runs)
    summary = runner.run(["labelfree"])
    root = runner.root
    dataset = runner.dataset
    labelled = set(dataset.qrels("train")) | set(dataset.qrels("test"))

    model = "labelfree: cross-encoder minilm trained on synthetic queries only (label-free"
    first, checked = f"{model})", f"{model}, consistency-checked (top-8))"
    expected = []
    for name in (first, checked):
        expected += [
            (name, "synthetic", "cross-encoder"),
            (f"{name} ⊕ 0.5·BM25", "synthetic", "cross-encoder"),
            (f"RRF(BM25, {name})", "synthetic", "fusion"),
            (f"RRF({name}, bi-encoder minilm zero-shot)", "synthetic", "fusion"),
        ]
    rows = [r for r in summary["rows"] if r["variant"] == "labelfree"]
    assert [(r["system"], r["kind"], r["family"]) for r in rows] == expected
    zero_shot = [r for r in summary["rows"] if r["family"] == "fusion" and r["variant"] is None]
    assert [(r["system"], r["kind"]) for r in zero_shot] == [
        ("RRF(BM25, bi-encoder minilm, zero-shot)", "zero-shot")
    ]
    bm25 = next(r for r in summary["rows"] if r["kind"] == "bm25")
    for row in [*rows, *zero_shot]:
        assert row["depth"] == 10 and "nDCG@10" in row["delta"]  # against the supervised base
        # every fused run keeps BM25's tail: recall of the whole list, as every reranked row
        assert row["measures"]["R@100"] == pytest.approx(bm25["measures"]["R@100"], abs=1e-12)
        # label-free: no stage that read train qrels is in any row's lineage
        assert not {"base-train", "base-triples", "bm25-train", "finetune"} & set(row["stages"])
    for row in rows[:2] + rows[4:6]:
        assert row["training"]["dev"] == "synthetic" and row["training"]["label_free"]
    # the training and dev inputs of both models hold synthetic queries only
    for row, triples_stage, train_stage in (
        (rows[0], "triples", "synthetic-base-train"),
        (rows[4], "consistency-triples", "consistency-train"),
    ):
        triples = _stage_meta(root, row, triples_stage)
        trained_ids = set(triples["inputs"]["query_ids"])
        assert trained_ids and all(q.startswith("syn-") for q in trained_ids)
        assert not trained_ids & labelled and triples["params"]["mix_train_qrels"] is False
        assert triples["inputs"].get("add_triples") is None
        train = _stage_meta(root, row, train_stage)
        dev_ids = set(train["params"]["dev_ids"])
        assert dev_ids and set(train["inputs"]["dev_query_ids"]) == dev_ids
        assert not dev_ids & trained_ids and not dev_ids & labelled
        assert set(train["keys"]) == {"triples", "backbone", "dev"}
        assert train["keys"]["dev"] == _stage_meta(root, row, "synthetic-bm25")["key"]
    # the consistency check: kept iff model 1 ranks the source document in its top 8
    verdicts = _jsonl(root / rows[4]["stages"]["consistency"] / "verdicts.jsonl")
    for record in verdicts:
        (verdict,) = record["verdicts"]
        rank = verdict["value"]
        assert record["kept"] == (rank is not None and rank <= 8)
    checked_ids = set(_stage_meta(root, rows[4], "consistency-triples")["inputs"]["query_ids"])
    first_ids = set(_stage_meta(root, rows[0], "triples")["inputs"]["query_ids"])
    assert checked_ids == first_ids & {r["query_id"] for r in verdicts if r["kept"]}
    consistency = _stage_meta(root, rows[4], "consistency")
    assert consistency["keys"]["model"] == _stage_meta(root, rows[0], "synthetic-base-train")["key"]

    # the run's diagnosis covers the label-free model (trained from the backbone: no starting
    # reranker for P6; fixes of its training options name [base_reranker])
    diagnosis = json.loads((root / "diagnosis.json").read_text())
    (labelfree,) = [v for v in diagnosis["variants"] if v["variant"] == "labelfree"]
    assert labelfree["system"] == first
    found = {f["code"]: f for f in labelfree["findings"]}
    assert found["P6"]["verdict"] == "n/a" and "trained from the backbone" in found["P6"]["summary"]
    assert found["P13"]["verdict"] in ("ok", "warn")
    assert found["P13"]["evidence"]["trained_queries"] == len(first_ids)
    assert not any(k.startswith("finetune.lr") for f in found.values() for k in f["fix"])

    # the same, as the whole (top-level) config: BM25 is the baseline, no train qrels read
    top_toml = tmp_path / "top.toml"
    top_toml.write_text(
        _smoke_with("", source="synthetic", variants=False).replace("[filters]\n", TOP_FILTERS, 1)
    )
    top = ExperimentRunner(load_config(top_toml), runs)
    summary = top.run()
    assert "bm25-train" not in summary["stages_ran"] + summary["stages_cached"]
    for stage in ("synthetic-base-train", "consistency", "consistency-train", "rrf"):
        assert stage in summary["stages_cached"]  # the variant's models, reused as they are
    baseline = "BM25 (baseline: no base reranker, label-free experiment)"
    assert summary["baselines"] == {"10": baseline}
    names = [r["system"] for r in summary["rows"] if r["variant"] == "default"]
    assert names == [name.replace("labelfree:", "default:") for name, *_ in expected]
    assert not [r for r in summary["rows"] if r["kind"] == "supervised"]

    # the Synthetic queries page shows the consistency verdicts of the default queries
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("INPARS_RUNS_DIR", str(runs))
    app = AppTest.from_file(
        str(Path(__file__).parents[1] / "dashboard" / "app.py"), default_timeout=180
    )
    app.query_params.update({"exp": "scifact-smoke"})
    app.run()
    app.switch_page("app_pages/synthetic.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    shown = {m.label: m.value for m in app.metric}
    kept = sum(r["kept"] for r in verdicts)
    assert shown["Checked"] == str(len(verdicts))
    assert shown["Consistent (kept)"] == str(kept)
    assert shown["Inconsistent (dropped)"] == str(len(verdicts) - kept)
    (table,) = [e.value for e in app.dataframe if "source rank (model)" in e.value.columns]
    by_id = {r["query_id"]: r for r in verdicts}
    for _, line in table.iterrows():
        record = by_id[line["query_id"]]
        assert line["verdict"] == ("kept" if record["kept"] else "dropped")
        rank = record["verdicts"][0]["value"]
        assert (rank is None and line["source rank (model)"] != line["source rank (model)"]) or (
            line["source rank (model)"] == rank
        )

    # the Training page lists both label-free models, by variant and stage, chosen by default
    app.switch_page("app_pages/training.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    (runs_picker,) = [m for m in app.multiselect if m.label == "Runs"]
    assert {"default (synthetic-base-train)", "default (consistency-train)"} <= set(
        runs_picker.value
    )
