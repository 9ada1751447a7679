"""The triples and train stages: flags from their Config dataclasses, the false-negative guard
from an experiment TOML, and the runner handing the trainers exactly the settings it used before
the stage contract (so the demo's numbers do not move)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from inpars_core.cli import build_parser
from inpars_core.errors import ConfigError
from inpars_core.experiments.config import load_config
from inpars_core.experiments.runner import ExperimentRunner
from inpars_core.experiments.stages import StageResult
from inpars_core.options import flag_name, from_args
from inpars_core.records import ScoredDoc, SyntheticQuery
from inpars_core.runs import write_trec_run
from inpars_core.stages import stage_module, train, triples
from inpars_core.stages.common import load_dataset
from tests.conftest import ROOT, TINY_CORPUS, TINY_QUERIES, write_beir

QUERIES = [*TINY_QUERIES, {"_id": "q4", "text": "vitamin D winter"}]
QRELS = {"test": "q1\td1\t1\n", "train": "q2\td2\t1\nq3\td4\t1\nq4\td3\t1\n"}
REQUIRED = {
    "triples": ["--dataset", "d", "--run", "r", "--split", "train"],
    "train": ["--dataset", "d", "--triples", "t", "--base-model", "m", "--objective", "bce"],
}


def _subparser(name: str):
    (action,) = [a for a in build_parser()._actions if a.dest == "command"]
    return action.choices[name]


@pytest.mark.parametrize("name", ["triples", "train"])
def test_flags_are_generated_from_the_config_dataclasses(name: str) -> None:
    module = stage_module(name)
    options = _subparser(name)._option_string_actions
    for cls in (module.Inputs, module.Config):
        for field in dataclasses.fields(cls):
            assert flag_name(field) in options, f"{name}: no flag for {cls.__name__}.{field.name}"
    argv = [name, *REQUIRED[name], "--out", "o"]
    args = build_parser().parse_args(argv)
    required = {"objective": "bce"} if name == "train" else {}
    assert from_args(module.Config, args) == module.Config(**required)  # the dataclass defaults


def test_train_flags_reach_the_trainer_config() -> None:
    argv = ["train", *REQUIRED["train"], "--steps", "7", "--lr", "1e-4", "--bf16", "--out", "o"]
    config = from_args(train.Config, build_parser().parse_args(argv))
    trainer = config.trainer_config()
    assert (trainer.max_steps, trainer.lr, trainer.bf16, trainer.batch_size) == (7, 1e-4, True, 16)
    dense = train.Config(family="bi-encoder", objective="mnrl").trainer_config()
    assert (dense.batch_size, dense.eval_batch_size) == (32, 64)  # the bi-encoder's defaults
    with pytest.raises(ConfigError, match="expected one of mnrl, margin-mse for a bi-encoder"):
        train.Config(family="bi-encoder", objective="bce")
    with pytest.raises(ConfigError, match="bf16: a cross-encoder option"):
        train.Config(family="bi-encoder", objective="mnrl", bf16=True)


GUARD = '[negatives]\ncount = 2\nteacher = "minilm"\nfalse_negative_margin = 0.5\n'


def test_false_negative_guard_is_an_experiment_setting(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "guard.toml"
    path.write_text(GUARD)
    config = load_config(path)
    assert (config.negatives.teacher, config.negatives.false_negative_margin) == ("minilm", 0.5)
    for bad, message in [
        ('[negatives]\nteacher = "minilm"\n', "needs both negatives.teacher and"),
        ("[negatives]\nfalse_negative_margin = 0.5\n", "needs both negatives.teacher and"),
        ('[negatives]\nteacher = "m"\nfalse_negative_margin = nan\n', "expected a finite"),
        (
            GUARD + '[base_reranker]\nsource = "hf"\nmodel = "minilm"\n',
            "the guard's teacher is the base reranker",
        ),
    ]:
        path.write_text(bad)
        with pytest.raises(ConfigError, match=message):
            load_config(path)

    # the runner hands the guard to the triples stage, and keys the stage by the teacher
    runner, captured = _captured_runner(tmp_path, monkeypatch, config)
    monkeypatch.setattr(triples, "run", lambda c, i, _work: captured.update(config=c, inputs=i))
    kept = _result(tmp_path, "filter")
    queries = [_synthetic("s1", "d1", "aspirin heart"), _synthetic("s2", "d2", "statins")]
    runner.synthetic_triples(config, kept, _result(tmp_path, "bm25"), queries, None)
    assert captured["config"] == triples.Config(
        negatives=2, teacher="minilm", false_negative_margin=0.5
    )
    assert captured["inputs"].query_ids == ("s1", "s2")
    assert captured["keyed"]["teacher"] == "minilm@test"
    assert captured["params"]["false_negative_margin"] == 0.5


def _synthetic(query_id: str, doc_id: str, text: str) -> SyntheticQuery:
    return SyntheticQuery(query_id, doc_id, text, text, "inpars", "h", "test", "m", 0)


def _result(tmp_path: Path, name: str) -> StageResult:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    return StageResult(name, f"{name}-key", folder, {}, ran=True)


def _captured_runner(tmp_path: Path, monkeypatch, config) -> tuple[ExperimentRunner, dict]:
    """A runner on a tiny dataset whose store calls each build at once and records the call."""
    from inpars_core.datasets import load_beir_folder

    data = write_beir(tmp_path / "tiny", TINY_CORPUS, QUERIES, QRELS)
    runner = ExperimentRunner(config, tmp_path / "runs")
    runner._dataset = load_beir_folder(data, name="tiny")
    monkeypatch.setattr(runner, "model_key", lambda model: f"{model}@test")
    captured: dict = {}

    def run(name, params, keyed, build):
        captured.update(name=name, params=params, keyed=keyed)
        build(tmp_path / "work")
        return _result(tmp_path, name)

    monkeypatch.setattr(runner.store, "run", run)
    return runner, captured


def test_the_runner_gives_the_trainers_the_settings_it_used_before(
    tmp_path: Path, monkeypatch
) -> None:
    """The demo config's base-train, finetune and dense-finetune reach train_reranker and
    train_dense with the very configs the runner built itself before the train stage."""
    from inpars_core.dense.training import TrainDenseConfig
    from inpars_core.training.trainer import TrainingConfig

    config = load_config(ROOT / "configs" / "scifact-offline.toml")
    # the demo has no fine-tuned bi-encoder row; its dense-finetune stage is checked with mnrl
    config = dataclasses.replace(
        config, dense=dataclasses.replace(config.dense, batch_size=8, finetune_objective="mnrl")
    )
    runner, captured = _captured_runner(tmp_path, monkeypatch, config)
    stages: list[tuple[train.Config, train.Inputs]] = []
    monkeypatch.setattr(train, "run", lambda c, i, _work, _progress=None: stages.append((c, i)))
    monkeypatch.setattr(triples, "run", lambda *_args: None)
    base, finetune = config.base_reranker, config.finetune

    runner.base_model(config, _result(tmp_path, "bm25-train"), ["q2", "q3"])
    assert stages[-1][0].trainer_config() == TrainingConfig(
        objective=base.objective,
        lr=base.lr,
        epochs=base.epochs,
        max_steps=base.max_steps,
        batch_size=base.batch_size,
        max_length=base.max_length,
        bf16=base.bf16,
        seed=base.seed,
        eval_every=10**9,
    )
    assert stages[-1][1].dev_run is None

    bm25_train = _result(tmp_path, "bm25-train")
    dev = runner.dev_set(config, bm25_train, ["q4"], _result(tmp_path, "filter"), bm25_train, [])
    runner.finetune(config, _result(tmp_path, "triples"), "base", "base@key", dev)
    stage_config, inputs = stages[-1]
    assert stage_config.trainer_config() == TrainingConfig(
        objective=finetune.objective,
        lr=finetune.lr,
        epochs=finetune.epochs,
        max_steps=finetune.max_steps,
        batch_size=finetune.batch_size,
        max_length=finetune.max_length,
        warmup_ratio=finetune.warmup_ratio,
        eval_every=finetune.eval_every,
        bf16=finetune.bf16,
        seed=finetune.seed,
        keep=finetune.keep,
        pair_encoding=config.rerank.pair_encoding,
    )
    assert (stage_config.dev_depth, stage_config.dev_bm25_weight) == (
        finetune.dev_depth,
        config.rerank.bm25_weight,
    )
    assert inputs.dev_query_ids == ("q4",) and captured["params"]["dev_ids"] == ["q4"]

    runner.dense_finetune(config, _result(tmp_path, "triples"))
    assert stages[-1][0].trainer_config() == TrainDenseConfig(
        objective=config.dense.finetune_objective or "mnrl",
        lr=config.dense.lr,
        epochs=config.dense.epochs,
        batch_size=8,
        max_length=config.dense.max_length,
    )


def _tiny_run(tmp_path: Path, query_ids: list[str]) -> Path:
    docs = ["d1", "d2", "d3", "d4", "d0"]
    run = {q: [ScoredDoc(q, d, 1.0 - i / 10) for i, d in enumerate(docs)] for q in query_ids}
    folder = tmp_path / "run"
    folder.mkdir()
    write_trec_run(run, folder / "run.trec")
    return folder


def test_the_dev_set_is_the_runners(tmp_path: Path) -> None:
    """Given dev query ids, the dev set holds exactly them, in their order, judged in the dev
    split (what the runner built by hand before); without, the dev run's first judged queries."""
    from inpars_core.runs import read_trec_run

    data = write_beir(tmp_path / "tiny", TINY_CORPUS, QUERIES, QRELS)
    run_folder = _tiny_run(tmp_path, ["q4", "q3", "q1", "q2"])
    dataset = load_dataset(str(data))
    config = train.Config(objective="bce", dev_max_queries=2)
    inputs = train.Inputs(str(data), "t", "m", dev_run=str(run_folder), dev_query_ids=("q2", "q4"))
    dev = train.dev_set(config, inputs, dataset)
    run = read_trec_run(run_folder / "run.trec")
    assert list(dev.queries) == ["q2", "q4"] and dev.label == "train"
    assert dev.run == {q: run[q] for q in ("q2", "q4")}
    assert dev.qrels == {"q2": {"d2": 1}, "q4": {"d3": 1}}
    default = train.dev_set(config, dataclasses.replace(inputs, dev_query_ids=None), dataset)
    assert list(default.queries) == ["q4", "q3"]  # run order; q1 is a test query: not judged
    with pytest.raises(ConfigError, match=r"1 of 1 dev queries \(--dev-split test\)"):
        test_config = dataclasses.replace(config, dev_split="test")
        train.dev_set(test_config, dataclasses.replace(inputs, dev_query_ids=None), dataset)


def test_triples_stage_mines_what_the_library_mines(tmp_path: Path) -> None:
    """A subset of a split's queries, with another triples artifact appended: the triples the
    runner's base-triples and mixed triples were before the stage contract."""
    from inpars_core.negatives import NegativesConfig, mine_triples, read_triples
    from inpars_core.runs import read_trec_run

    data = write_beir(tmp_path / "tiny", TINY_CORPUS, QUERIES, QRELS)
    run_folder = _tiny_run(tmp_path, ["q2", "q3", "q4"])
    config = triples.Config(negatives=2, window=(1, 5), seed=3)
    first = triples.run(
        config,
        triples.Inputs(str(data), str(run_folder), split="train", query_ids=("q2", "q4")),
        tmp_path / "first",
    )
    dataset = load_dataset(str(data))
    expected, report = mine_triples(
        {q: dataset.queries[q].text for q in ("q2", "q4")},
        {"q2": {"d2"}, "q4": {"d3"}},
        read_trec_run(run_folder / "run.trec"),
        sorted(dataset.corpus),
        NegativesConfig(negatives=2, window=(1, 5), seed=3),
    )
    assert read_triples(first.data) == expected and first.type == "triples"
    assert first.counts["triples"] == report.triples == 4
    assert first.meta["inputs"]["query_ids"] == ["q2", "q4"]
    (tmp_path / "queries.jsonl").write_text(
        '{"query_id": "s1", "doc_id": "d1", "text": "aspirin heart", "raw_output": "x", '
        '"prompt_id": "inpars", "prompt_hash": "h", "backend": "test", "model": "m", "seed": 0}\n'
    )
    _tiny = {"s1": [ScoredDoc("s1", d, 1.0 - i / 10) for i, d in enumerate(["d1", "d4", "d2"])]}
    write_trec_run(_tiny, tmp_path / "synthetic.run")
    mixed = triples.run(
        config,
        triples.Inputs(
            str(data),
            str(tmp_path / "synthetic.run"),
            queries=str(tmp_path / "queries.jsonl"),
            add_triples=str(tmp_path / "first"),
        ),
        tmp_path / "mixed",
    )
    rows = read_triples(mixed.data)
    assert rows[2:] == expected and {t.query_id for t in rows[:2]} == {"s1"}
    assert (mixed.counts["mined"], mixed.counts["added"], mixed.counts["triples"]) == (2, 4, 6)
    assert "6 triples for 1 queries" in triples.describe(mixed)


@pytest.mark.integration
def test_false_negative_guard_from_the_toml_runs(tmp_path: Path, monkeypatch) -> None:
    """The stage config the runner builds from ``[negatives]`` drops false negatives with the
    teacher and stores its scores (a margin of -100 keeps every negative: all are scored)."""
    pytest.importorskip("torch")
    from inpars_core.negatives import read_triples

    path = tmp_path / "guard.toml"
    path.write_text(GUARD.replace("0.5", "-100.0"))
    config = load_config(path)
    runner, captured = _captured_runner(tmp_path, monkeypatch, config)
    monkeypatch.setattr(triples, "run", lambda c, i, _work: captured.update(config=c, inputs=i))
    runner.synthetic_triples(
        config, _result(tmp_path, "filter"), _result(tmp_path, "bm25"), [], None
    )
    stage_config = dataclasses.replace(captured["config"], teacher_max_length=32)
    monkeypatch.undo()
    data = tmp_path / "tiny"
    run_folder = _tiny_run(tmp_path, ["q2", "q4"])
    inputs = triples.Inputs(str(data), str(run_folder), split="train", query_ids=("q2", "q4"))
    artifact = triples.run(stage_config, inputs, tmp_path / "guarded")
    rows = read_triples(artifact.data)
    assert len(rows) == 4 and all(isinstance(t.teacher_neg_score, float) for t in rows)
    assert artifact.counts["dropped_false_negatives"] == 0
    assert "false negatives dropped by minilm" in triples.describe(artifact)


#: Eight documents: two judged positives (d1 for q1, d2 for q2) and enough others for 5
#: negatives per positive.
EIGHT_DOCS = [
    {"_id": f"d{i}", "title": title, "text": text}
    for i, (title, text) in enumerate(
        [
            ("Aspirin", "Aspirin reduces the risk of heart attack."),
            ("Statins", "Statins lower cholesterol in adults."),
            ("Vitamin D", "Vitamin D deficiency is common in winter."),
            ("Coffee", "Coffee drinking and heart rhythm."),
            ("Sleep", "Exercise improves sleep in older adults."),
            ("Flu", "Influenza vaccines reduce hospital admissions."),
            ("Probiotics", "Probiotics shorten antibiotic diarrhoea."),
            ("Metformin", "Metformin is the first drug for type 2 diabetes."),
        ],
        start=1,
    )
]


@pytest.mark.integration
def test_inpars_train_counts_the_positives_and_negatives_it_trained_on(tmp_path: Path) -> None:
    """``inpars triples --negatives 5`` then ``inpars train`` (pointwise bce, one epoch):
    meta.json counts 5 negatives per positive (pos:neg 1:5), each positive trained once;
    ``--balanced``: 1:1. The counts are those of the rows trained (train_log.jsonl)."""
    import json

    from inpars_core.cli import main

    queries = [{"_id": "q1", "text": "aspirin heart attack"}, {"_id": "q2", "text": "statins"}]
    data = write_beir(tmp_path / "eight", EIGHT_DOCS, queries, {"train": "q1\td1\t1\nq2\td2\t1\n"})
    docs = [d["_id"] for d in EIGHT_DOCS]
    run = {q: [ScoredDoc(q, d, 1.0 - i / 10) for i, d in enumerate(docs)] for q in ("q1", "q2")}
    write_trec_run(run, tmp_path / "train.run")
    common = ["--dataset", str(data), "--split", "train", "--run", str(tmp_path / "train.run")]
    for name, count, flags in (("five", 5, ["--negatives", "5"]), ("balanced", 1, ["--balanced"])):
        triples_dir = tmp_path / f"triples-{name}"
        argv = ["triples", *common, *flags, "--window", "1:8", "--out", str(triples_dir)]
        assert main(argv) == 0
        mined = json.loads((triples_dir / "meta.json").read_text())["counts"]["triples"]
        assert mined == 2 * count  # count triples per (query, positive)
        model_dir = tmp_path / f"model-{name}"
        argv = [
            "train", "--dataset", str(data), "--triples", str(triples_dir), "--base-model",
            "minilm", "--objective", "bce", "--epochs", "1", "--batch-size", "4",
            "--max-length", "24", "--lr", "1e-4", "--probe-size", "4", "--device", "cpu",
            "--no-progress", "--out", str(model_dir),
        ]  # fmt: skip
        assert main(argv) == 0
        meta = json.loads((model_dir / "meta.json").read_text())
        counts = meta["counts"]
        assert (counts["positives"], counts["negatives"]) == (2, 2 * count)
        # the training encoding, recorded as a rerank stage records its own (diagnosis P1)
        assert meta["encoding"]["pair_encoding"] == "pair"
        assert meta["encoding"]["pairs_checked"] == counts["pairs_seen"]
        assert meta["encoding"]["cls_per_pair"] == 1.0 and meta["encoding"]["type1_share"] > 0
        assert counts["pos_neg_ratio"] == f"1:{count}"
        assert counts["pairs_per_epoch"] == [2 + 2 * count] == [counts["pairs_seen"]]
        steps = [json.loads(line) for line in (model_dir / "train_log.jsonl").open()]
        assert len(steps) == -(-2 * count // 4)  # one epoch of batches of 4 triples
        assert sum(s["positives"] for s in steps) == 2
        assert [s["negatives"] for s in steps] == [
            min(4, 2 * count - 4 * i) for i in range(len(steps))
        ]
