"""Honest numbers in experiments: no test labels in model selection, recall of the whole list,
rows named for what they are, stage keys that hash content."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inpars_core.errors import ConfigError
from inpars_core.experiments.config import load_config
from inpars_core.experiments.runner import ExperimentRunner, Row, synthetic_dev_split
from inpars_core.experiments.summary import Overlap, _comparisons, holm_family_text
from inpars_core.records import ScoredDoc, SyntheticQuery
from inpars_core.runs import write_trec_run
from tests.conftest import ROOT, SMOKE_CONFIG, write_beir

CLI = [sys.executable, "-m", "inpars_core.cli"]
TREC_COVID = ROOT / "configs" / "trec-covid-openai.toml"


# ----------------------------------------------------------------- model selection


def test_train_split_equal_to_the_evaluated_split_is_refused(tmp_path: Path) -> None:
    edited = tmp_path / "trec-covid.toml"
    edited.write_text(
        TREC_COVID.read_text().replace(
            'test_split = "test"', 'test_split = "test"\ntrain_split = "test"'
        )
    )
    with pytest.raises(ConfigError, match=r"dataset\.train_split: 'test' is the evaluated split"):
        load_config(edited)
    out = subprocess.run(
        [*CLI, "run", str(edited), "--dry-run"],
        capture_output=True,
        text=True,
        env={**os.environ, "INPARS_DATA_DIR": str(tmp_path)},
    )
    assert out.returncode == 2
    assert "dataset.train_split" in out.stderr and "Fix:" in out.stderr
    assert "Traceback" not in out.stderr


def test_trec_covid_dry_run_validates_with_the_synthetic_dev_set(tmp_path: Path) -> None:
    out = subprocess.run(
        [*CLI, "run", str(TREC_COVID), "--dry-run"],
        capture_output=True,
        text=True,
        env={**os.environ, "INPARS_DATA_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert "model selection: dev = synthetic: 100 held-out synthetic queries" in out.stdout
    config = load_config(TREC_COVID)
    assert config.finetune.dev == "synthetic" and config.finetune.keep == "best"


def test_renamed_interpolation_key_is_refused_with_the_new_name(tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text("[rerank]\ninterpolate_bm25 = 0.5\n")
    with pytest.raises(
        ConfigError, match=r"rerank\.interpolate_bm25: renamed to rerank\.bm25_weight"
    ):
        load_config(old)
    variant = tmp_path / "variant.toml"
    variant.write_text('[rerank]\nbm25_weight = 0.5\n[variants.pure]\n"rerank.bm25_weight" = 0.0\n')
    config = load_config(variant)
    assert config.rerank.bm25_weight == 0.5
    assert config.variant("pure").rerank.bm25_weight == 0.0  # a variant switches it off
    bad = tmp_path / "bad.toml"
    bad.write_text("[rerank]\nbm25_weight = 1.5\n")
    with pytest.raises(
        ConfigError, match=r"rerank\.bm25_weight: expected a number in \[0, 1\], found 1.5"
    ):
        load_config(bad)


def test_synthetic_dev_split_holds_out_queries_never_trained_on() -> None:
    queries = [
        SyntheticQuery(f"s{i}", f"d{i}", f"query {i}", f"query {i}", "inpars", "h", "b", "m", 0)
        for i in range(20)
    ]
    train, dev = synthetic_dev_split(queries, 5, seed=0)
    assert len(dev) == 5 and len(train) == 15
    assert not {q.query_id for q in train} & {q.query_id for q in dev}
    _, again_dev = synthetic_dev_split(list(reversed(queries)), 5, seed=0)
    assert {q.query_id for q in again_dev} == {q.query_id for q in dev}  # order-independent
    _, capped = synthetic_dev_split(queries, 50, seed=0)
    assert len(capped) == 5  # at most a quarter held out
    with pytest.raises(ConfigError, match="at least 2 kept synthetic queries"):
        synthetic_dev_split(queries[:1], 5, seed=0)


TEST_ONLY_CONFIG = """
[experiment]
name = "test-only"
[dataset]
name = "{path}"
[bm25]
k = 20
[generator]
backend = "llamacpp"
model = "gemma-3-270m"
prompt = "inpars"
num_docs = 8
max_tokens = 16
[filters]
min_words = 1
near_duplicate_jaccard = 0.99
max_document_overlap = 1.0
example_copy_jaccard = 1.0
[negatives]
count = 1
window = [1, 10]
[base_reranker]
source = "{source}"
model = "minilm"
[finetune]
objective = "bce"
lr = 1e-5
max_steps = 2
batch_size = 2
max_length = 48
eval_every = 1
dev_queries = 2
dev_depth = 5
bf16 = false
[rerank]
depths = [5]
max_length = 48
[evaluation]
measures = ["nDCG@10", "R@100"]
"""


@pytest.fixture
def test_only_collection(tmp_path: Path, scifact) -> Path:
    """Twelve SciFact documents and the test queries judging them: no train qrels at all."""
    test_qrels = scifact.qrels("test")
    query_ids = [q for q in list(test_qrels)[:4]]
    doc_ids = sorted({d for q in query_ids for d in test_qrels[q]})
    doc_ids += [d for d in sorted(scifact.corpus) if d not in doc_ids][: 12 - len(doc_ids)]
    corpus = [
        {"_id": d, "title": scifact.corpus[d].title, "text": scifact.corpus[d].text[:600]}
        for d in doc_ids
    ]
    queries = [{"_id": q, "text": scifact.queries[q].text} for q in query_ids]
    body = "".join(f"{q}\t{d}\t{r}\n" for q in query_ids for d, r in test_qrels[q].items())
    return write_beir(tmp_path / "own-corpus", corpus, queries, {"test": body})


@pytest.mark.integration
def test_a_collection_without_train_qrels_runs_label_free(
    test_only_collection: Path, tmp_path: Path
) -> None:
    refused = tmp_path / "refused.toml"
    refused.write_text(TEST_ONLY_CONFIG.format(path=test_only_collection, source="train"))
    runner = ExperimentRunner(load_config(refused), tmp_path / "runs")
    with pytest.raises(ConfigError) as error:
        runner.run()
    message = str(error.value)
    assert 'base_reranker.source = "train"' in message and "train qrels" in message
    assert "Base sources that need train qrels: 'train'" in message
    assert not (tmp_path / "runs" / "test-only" / "stages").exists()  # refused before any stage

    config_path = tmp_path / "label-free.toml"
    config_path.write_text(TEST_ONLY_CONFIG.format(path=test_only_collection, source="hf"))
    runner = ExperimentRunner(load_config(config_path), tmp_path / "runs")
    summary = runner.run()
    (tuned,) = [r for r in summary["rows"] if r["kind"] == "synthetic"]
    assert tuned["training"]["dev"] == "synthetic"
    assert tuned["training"]["dev_queries"] >= 1
    (finetune_meta,) = (runner.root / "stages" / "finetune").glob("*/meta.json")
    meta = json.loads(finetune_meta.read_text())
    dev_ids = set(meta["params"]["dev_ids"])
    assert set(meta["inputs"]["dev_query_ids"]) == dev_ids  # what the train stage evaluated
    assert dev_ids and not dev_ids & set(runner.test_queries())
    (triples_meta,) = (runner.root / "stages" / "triples").glob("*/meta.json")
    triples_record = json.loads(triples_meta.read_text())
    trained_ids = set(triples_record["params"]["train_queries"])
    assert set(triples_record["inputs"]["query_ids"]) == trained_ids  # what the stage mined
    assert trained_ids and not dev_ids & trained_ids  # the dev slice is never trained on
    base = next(r for r in summary["rows"] if r["baseline"])
    assert base["kind"] == "zero-shot"
    assert summary["overlap"]["trained_queries"] == 0


# ----------------------------------------------------------------- the smoke summary


@pytest.fixture(scope="module")
def smoke_summary(smoke_runs_dir: Path) -> dict:
    return json.loads((smoke_runs_dir / "scifact-smoke" / "summary.json").read_text())


@pytest.mark.integration
def test_rows_say_what_they_are(smoke_summary: dict) -> None:
    rows = smoke_summary["rows"]
    kinds = {r["system"]: r["kind"] for r in rows}
    assert kinds["BM25"] == "bm25"
    base = [r for r in rows if r["family"] == "cross-encoder" and r["variant"] is None]
    assert {r["kind"] for r in base} == {"supervised"}  # trained on SciFact train claims
    assert all("supervised on scifact train" in r["system"] for r in base)
    pure, fused = base
    assert fused["bm25_weight"] == 0.5 and fused["system"].endswith("⊕ 0.5·BM25")
    assert fused["pure_system"] == pure["system"] and fused["baseline"]
    assert pure["bm25_weight"] == 0.0 and "⊕" not in pure["system"]
    for row in rows:
        if row["bm25_weight"] > 0:  # every interpolated row stands beside its pure-model row
            assert row["pure_system"] in kinds
    tuned = [r for r in rows if r["kind"] == "synthetic" and r["family"] == "cross-encoder"]
    assert {r["variant"] for r in tuned} == {"bce", "hf-default"} and len(tuned) == 4
    dense_tuned = [r for r in rows if r["family"] == "bi-encoder" and r["kind"] == "synthetic"]
    assert len(dense_tuned) == 1  # one model (it does not depend on the variant): one row
    assert dense_tuned[0]["variants"] == ["bce", "hf-default"]
    assert {r["kind"] for r in rows if r["family"] == "bi-encoder"} == {"zero-shot", "synthetic"}


@pytest.mark.integration
def test_reranked_recall_is_recall_of_the_whole_list(smoke_summary: dict) -> None:
    bm25 = next(r for r in smoke_summary["rows"] if r["kind"] == "bm25")
    for row in smoke_summary["rows"]:
        assert row["depth"] is None or row["depth"] <= 100
        assert row["measures"]["R@100"] == pytest.approx(bm25["measures"]["R@100"], abs=1e-12)


@pytest.mark.integration
def test_summary_states_overlap_and_holm_family(smoke_runs_dir: Path, smoke_summary: dict) -> None:
    overlap = smoke_summary["overlap"]
    assert overlap["trained_queries"] >= 16
    assert overlap["test_queries"] == smoke_summary["test_queries"]
    assert 0 <= len(overlap["overlapping"]) <= overlap["test_queries"]
    text = (smoke_runs_dir / "scifact-smoke" / "summary.md").read_text()
    assert overlap["text"] in text and "test queries share a relevant document" in text
    assert "Holm–Bonferroni family: per depth and measure" in text
    block = smoke_summary["no_overlap"]
    assert block["test_queries"] == smoke_summary["test_queries"] - len(overlap["overlapping"])
    assert len(block["rows"]) == len(smoke_summary["rows"])
    assert "test queries without overlap" in text


def test_overlap_counts_shared_positive_documents(tmp_path: Path) -> None:
    from inpars_core.datasets import load_beir_folder

    corpus = [{"_id": f"d{i}", "title": "", "text": f"text {i}"} for i in range(4)]
    queries = [
        {"_id": "t1", "text": "same text"},
        {"_id": "t2", "text": "other"},
        {"_id": "t3", "text": "third"},
        {"_id": "r1", "text": "Same text "},
        {"_id": "r2", "text": "unrelated"},
    ]
    qrels = {
        "test": "t1\td0\t1\nt2\td1\t1\nt3\td2\t0\n",
        "train": "r1\td3\t1\nr2\td1\t1\nr2\td2\t1\n",
    }
    dataset = load_beir_folder(write_beir(tmp_path / "o", corpus, queries, qrels))
    overlap = Overlap.measure(dataset, "test", ["t1", "t2", "t3"], ["r1", "r2"])
    assert overlap.overlapping == ("t2",)  # t3 judges d2 non-relevant: no overlap
    assert overlap.verbatim == ("t1",)
    assert overlap.trained_queries == 2
    assert "1 of 3 test queries" in overlap.describe()


def _row_files(tmp_path: Path, values: dict[str, list[int]]) -> list[Row]:
    """One run per system: each query has its relevant document at the given rank."""
    rows = []
    for i, (name, ranks) in enumerate(values.items()):
        run = {
            f"q{q}": [
                ScoredDoc(f"q{q}", "rel" if r == rank else f"n{r}", 10.0 - r) for r in range(1, 6)
            ]
            for q, rank in enumerate(ranks)
        }
        path = tmp_path / f"{name}.trec"
        write_trec_run(run, path)
        rows.append(Row(name, "synthetic", 5, path, family="cross-encoder", is_baseline=i == 0))
    return rows


def test_holm_family_is_configurable(tmp_path: Path) -> None:
    from inpars_core.evaluation import evaluate
    from inpars_core.runs import read_trec_run

    n = 30
    rows = _row_files(
        tmp_path,
        {
            "base": [5] * n,
            "better": [1] * 20 + [5] * 10,
            "slightly": [1] * 6 + [5] * (n - 6),
        },
    )
    qrels = {f"q{q}": {"rel": 1} for q in range(n)}
    evaluations = {
        i: evaluate(read_trec_run(row.run_path), qrels, ["nDCG@10", "RR@10"])
        for i, row in enumerate(rows)
    }
    per = _comparisons(evaluations, rows, [5], ["nDCG@10", "RR@10"], "depth-measure")
    table = _comparisons(evaluations, rows, [5], ["nDCG@10", "RR@10"], "table")
    assert set(per) == set(table) == {(i, m, 5) for i in (1, 2) for m in ("nDCG@10", "RR@10")}
    for key in per:
        assert per[key][0].t_p == table[key][0].t_p  # same raw p-values
    assert per[(1, "nDCG@10", 5)][1] and table[(1, "nDCG@10", 5)][1]
    # A larger family corrects more: the weak system's p-value rises with the family size.
    from inpars_core.compare import holm_bonferroni

    raw = [table[k][0].t_p for k in table]
    assert max(holm_bonferroni(raw)) >= max(holm_bonferroni(raw[:2]))
    assert [table[k][0].t_p_holm for k in table] == holm_bonferroni(raw)  # one family
    for depth_measure in (("nDCG@10",), ("RR@10",)):
        keys = [k for k in per if k[1] in depth_measure]
        adjusted = holm_bonferroni([per[k][0].t_p for k in keys])
        assert [per[k][0].t_p_holm for k in keys] == adjusted  # a family per depth and measure
    assert "whole table" in holm_family_text("table", [5], ["nDCG@10"])


# ----------------------------------------------------------------- stage keys hash content


@pytest.mark.integration
def test_stage_keys_hash_content_not_names(tmp_path: Path, tiny_dir: Path) -> None:
    from inpars_core.datasets import load_beir_folder

    config = dataclasses.replace(
        load_config(SMOKE_CONFIG),
        dataset=dataclasses.replace(load_config(SMOKE_CONFIG).dataset, name=str(tiny_dir)),
    )
    runner = ExperimentRunner(config, tmp_path / "runs")
    before = runner.dataset_key()
    corpus = tiny_dir / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    lines[0] = lines[0].replace("reduces", "raises")  # same size class, other content
    corpus.write_text("\n".join(lines) + "\n")
    runner._dataset = load_beir_folder(tiny_dir)
    assert runner.dataset_key() != before
    index = runner.index(config)
    from inpars_core.experiments.stages import StageResult
    from inpars_core.generation.stage import write_queries
    from inpars_core.records import SyntheticQuery

    def queries_artifact(folder: str, texts: dict[str, str]) -> StageResult:
        path = tmp_path / folder
        path.mkdir()
        records = [
            SyntheticQuery(q, "d1", text, text, "inpars", "h", "llamacpp", "gemma", 0)
            for q, text in texts.items()
        ]
        write_queries(records, path / "queries.jsonl")
        # the same upstream key for both: only the content tells them apart
        return StageResult("filter", "same-upstream-key", path, {}, ran=False)

    same_ids_a = queries_artifact("a", {"s1": "aspirin heart", "s2": "coffee"})
    same_ids_b = queries_artifact("b", {"s1": "statins cholesterol", "s2": "coffee"})
    first = runner.bm25(config, index, "synthetic-bm25", 5, queries=same_ids_a)
    second = runner.bm25(config, index, "synthetic-bm25", 5, queries=same_ids_b)
    assert first.key != second.key and second.ran  # other texts: not served from the cache
    assert runner.bm25(config, index, "synthetic-bm25", 5, queries=same_ids_a).ran is False


@pytest.mark.integration
def test_round_trip_filter_uses_the_experiment_bm25_parameters(tmp_path: Path) -> None:
    """A short and a long document both match the query; with b = 0 (no length normalisation)
    the long one, which repeats the term, ranks first; with b = 1 the short one does. The
    round-trip filter (k = 1) keeps or drops the query accordingly."""
    from inpars_core.experiments.stages import StageResult
    from inpars_core.generation.stage import write_queries

    filler = " ".join(f"word{i}" for i in range(200))
    corpus = [
        {"_id": "short", "title": "", "text": "melatonin sleep"},
        {"_id": "long", "title": "", "text": f"melatonin {filler} melatonin {filler} melatonin"},
        {"_id": "other", "title": "", "text": "statins cholesterol"},
    ]
    folder = write_beir(
        tmp_path / "ds", corpus, [{"_id": "q", "text": "x"}], {"test": "q\tshort\t1\n"}
    )
    generated_dir = tmp_path / "generated"
    generated_dir.mkdir()
    write_queries(
        [SyntheticQuery("s1", "short", "melatonin", "melatonin", "inpars", "h", "b", "m", 0)],
        generated_dir / "queries.jsonl",
    )
    generated = StageResult("generate", "g", generated_dir, {"counts": {}}, ran=False)
    base = load_config(SMOKE_CONFIG)
    kept = {}
    for b in (0.0, 1.0):
        config = dataclasses.replace(
            base,
            dataset=dataclasses.replace(base.dataset, name=str(folder)),
            bm25=dataclasses.replace(base.bm25, k1=1.2, b=b),
            filters=dataclasses.replace(
                base.filters, round_trip_k=1, min_words=1, max_document_overlap=None
            ),
        )
        runner = ExperimentRunner(config, tmp_path / "runs")
        index = runner.index(config)
        result = runner.filter(config, generated, index)
        kept[b] = result.meta["counts"]["kept"]
    assert kept == {0.0: 0, 1.0: 1}
