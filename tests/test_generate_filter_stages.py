"""The generate and filter stages: their flags come from their Config dataclasses; the filter
writes an artifact and never touches its input; the reranker-score filter is reachable from the
command line and from an experiment TOML; a rerun of generate onto a complete artifact asks
the LLM for nothing it already answered."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from inpars_core.cli import build_parser, main
from inpars_core.errors import ConfigError
from inpars_core.experiments.config import load_config
from inpars_core.options import NON_NEGATIVE_FLOAT, flag_name, option
from inpars_core.stages import filter as filter_stage
from inpars_core.stages import generate
from tests.llm_servers import CountingProxy, document_key

#: (query_id, doc_id, text, mean log-prob) over the tiny corpus of conftest.
SYNTHETIC = [
    ("syn-d1-s0", "d1", "does aspirin reduce heart attack risk", -0.2),
    ("syn-d2-s0", "d2", "do statins lower cholesterol", -0.5),
    ("syn-d3-s0", "d3", "sunlight", -0.1),  # one word: the length filter drops it
    ("syn-d4-s0", "d4", "does aspirin reduce heart attack risk", -0.3),  # duplicate of d1's
    ("syn-d0-s0", "d0", "coffee drinking and heart rhythm", -0.4),  # its document, copied
]


def _write_queries(path: Path) -> Path:
    rows = [
        {
            "query_id": qid,
            "doc_id": doc,
            "text": text,
            "raw_output": text,
            "prompt_id": "inpars",
            "prompt_hash": "abc",
            "backend": "llamacpp",
            "model": "gemma-3-270m",
            "seed": 0,
            "mean_logprob": logprob,
        }
        for qid, doc, text, logprob in SYNTHETIC
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _options(name: str) -> dict:
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return action.choices[name]._option_string_actions


@pytest.mark.parametrize("module", [generate, filter_stage])
def test_every_option_is_a_flag_made_from_the_dataclass(module) -> None:
    options = _options(module.NAME)
    for cls in (module.Inputs, module.Config):
        for field in dataclasses.fields(cls):
            assert flag_name(field) in options, f"{module.NAME}: {field.name} has no flag"
    assert "--dry-run" in options if hasattr(module, "preview") else True


@pytest.mark.parametrize("module", [generate, filter_stage])
def test_a_new_config_field_becomes_a_checked_flag(module, monkeypatch, capsys) -> None:
    @dataclasses.dataclass(frozen=True)
    class Wider(module.Config):
        temperature: float = option(0.0, "a new setting", check=NON_NEGATIVE_FLOAT)

    monkeypatch.setattr(module, "Config", Wider)
    required = {"generate": ["--dataset", "x"], "filter": ["--queries", "q"]}[module.NAME]
    args = build_parser().parse_args([module.NAME, *required, "--temperature", "0.5", "--out", "o"])
    assert args.temperature == 0.5
    assert main([module.NAME, *required, "--temperature", "-1", "--out", "o"]) == 2
    assert "argument --temperature: expected a number >= 0" in capsys.readouterr().err


def test_filter_writes_an_artifact_and_leaves_its_input_alone(
    tiny_dir: Path, tmp_path: Path, capsys
) -> None:
    source = _write_queries(tmp_path / "generated.jsonl")
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    out = tmp_path / "kept"
    assert (
        main(["filter", "--queries", str(source), "--dataset", str(tiny_dir), "--out", str(out)])
        == 0
    )
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before
    assert "kept 2 of 5 queries" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["type"] == "queries" and meta["stage"] == "filter"
    assert meta["counts"] == {
        "queries": 5,
        "kept": 2,
        "dropped_by": {"length": 1, "duplicates": 1, "document-copy": 1},
    }
    assert [n["code"] for n in meta["notes"]] == ["filter-skipped"]  # no few-shot examples
    assert [q["query_id"] for q in _jsonl(out / "queries.jsonl")] == ["syn-d1-s0", "syn-d2-s0"]
    verdicts = _jsonl(out / "verdicts.jsonl")
    assert [r["query_id"] for r in verdicts] == [q[0] for q in SYNTHETIC]
    for row in verdicts:  # kept queries too, every filter in the order they ran
        assert [v["filter"] for v in row["verdicts"]] == ["length", "duplicates", "document-copy"]
    by_id = {r["query_id"]: r for r in verdicts}
    assert by_id["syn-d3-s0"]["verdicts"][0]["value"] == 1 and not by_id["syn-d3-s0"]["kept"]
    dropped = {
        r["query_id"]: [v["filter"] for v in r["verdicts"]] for r in _jsonl(out / "dropped.jsonl")
    }
    assert dropped == {
        "syn-d3-s0": ["length"],
        "syn-d4-s0": ["duplicates"],
        "syn-d0-s0": ["document-copy"],
    }
    # a filter artifact is a queries input too: filter again, by log-prob
    again = tmp_path / "top"
    assert main(["filter", "--queries", str(out), "--top-k", "1", "--out", str(again)]) == 0
    assert [q["query_id"] for q in _jsonl(again / "queries.jsonl")] == ["syn-d1-s0"]
    recorded = json.loads((again / "meta.json").read_text())["inputs"]["queries"]
    assert recorded["type"] == "queries" and recorded["stage"] == "filter"


def test_filter_examples_come_from_the_generate_artifact(tiny_dir: Path, tmp_path: Path) -> None:
    """The example-copy filter reads the few-shot examples from the input's prompt.json."""
    folder = tmp_path / "generated"
    folder.mkdir()
    _write_queries(folder / "queries.jsonl")
    (folder / "prompt.json").write_text(
        json.dumps({"example_queries": ["do statins lower cholesterol"]})
    )
    (folder / "meta.json").write_text(json.dumps({"type": "queries", "stage": "generate"}))
    out = tmp_path / "kept"
    assert main(["filter", "--queries", str(folder), "--min-words", "1", "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["dropped_by"]["example-copy"] == 1
    assert meta["inputs"]["example_queries"] == ["do statins lower cholesterol"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--reranker-top-k", "2"], "no reranker_model scores the queries"),
        (["--reranker-model", "minilm"], "expected one of reranker_top_k"),
        (["--round-trip-k", "5"], "--round-trip-k 5: expected --index"),
        (["--top-k", "2", "--top-fraction", "0.5"], "expected one of them"),
    ],
)
def test_filter_settings_that_cannot_run_stop_before_writing(
    extra: list[str], message: str, tiny_dir: Path, tmp_path: Path, capsys
) -> None:
    source = _write_queries(tmp_path / "generated.jsonl")
    out = tmp_path / "kept"
    argv = ["filter", "--queries", str(source), "--dataset", str(tiny_dir), *extra]
    assert main([*argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_generator_and_filters_sections_are_the_stage_configs(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text(
        "[generator]\nmax_document_words = 64\nlogprobs = false\n"
        '[filters]\nreranker_model = "m"\nreranker_top_fraction = 0.5\n'
        "[bm25]\nk1 = 1.2\n"
    )
    loaded = load_config(config)
    assert (
        isinstance(loaded.generator, generate.Config) and loaded.generator.max_document_words == 64
    )
    assert isinstance(loaded.filters, filter_stage.Config)
    assert loaded.filters.reranker_model == "m" and loaded.filters.bm25_k1 == 1.2  # from [bm25]
    refused = {
        '[generator]\napi = "legacy"': r"generator\.api: expected one of chat, completions",
        "[generator]\nnum_docs = 0": r"generator\.num_docs: expected an integer >= 1",
        "[filters]\nreranker_top_k = 3": r"filters\.reranker_top_k: set, but no reranker_model",
        "[filters]\nbm25_k1 = 3": r"filters\.bm25_k1: .*set \[bm25\] k1",
    }
    for text, message in refused.items():
        config.write_text(text + "\n")
        with pytest.raises(ConfigError, match=message):
            load_config(config)


# --------------------------------------------------------------------------- reranker filter


@pytest.fixture(scope="module")
def seeded_reranker(tmp_path_factory) -> Path:
    """The packaged MiniLM backbone with a seeded 1-logit head (a fixed model), saved once."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inpars_core.models import resolve_model_path

    torch.manual_seed(7)
    path = resolve_model_path("minilm")
    folder = tmp_path_factory.mktemp("filter-reranker") / "model"
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    with torch.no_grad():  # scores with some spread: no ties
        model.classifier.weight.mul_(20)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(path).save_pretrained(folder)
    return folder


def _expected_scores(model: Path, tiny_dir: Path) -> dict[str, float]:
    from inpars_core.datasets import load_beir_folder
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import load_reranker, score_pairs

    corpus = load_beir_folder(tiny_dir).corpus
    pairs = [(text, corpus[doc].contents) for _, doc, text, _ in SYNTHETIC]
    scores = score_pairs(load_reranker(str(model)), pairs, EncodingConfig(max_length=256))
    return {qid: s for (qid, *_), s in zip(SYNTHETIC, scores, strict=True)}


#: Every other filter off: the reranker alone decides.
ONLY_RERANKER = ["--min-words", "none", "--max-words", "none", "--near-duplicate-jaccard", "none",
                 "--max-document-overlap", "none", "--example-copy-jaccard", "none"]  # fmt: skip


@pytest.mark.integration
def test_reranker_filter_from_the_command_line(
    seeded_reranker: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    source = _write_queries(tmp_path / "generated.jsonl")
    out = tmp_path / "kept"
    argv = ["filter", "--queries", str(source), "--dataset", str(tiny_dir), *ONLY_RERANKER]
    argv += ["--reranker-model", str(seeded_reranker), "--reranker-top-k", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    expected = _expected_scores(seeded_reranker, tiny_dir)
    rows = _jsonl(out / "verdicts.jsonl")
    assert [[v["filter"] for v in r["verdicts"]] for r in rows] == [["reranker"]] * 5
    values = {r["query_id"]: r["verdicts"][0]["value"] for r in rows}
    assert values == pytest.approx(expected)
    best = sorted(expected, key=lambda q: -expected[q])[:2]
    assert {q["query_id"] for q in _jsonl(out / "queries.jsonl")} == set(best)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["dropped_by"] == {"reranker": 3}
    assert meta["inputs"]["reranker_fingerprint"]


@pytest.mark.integration
def test_reranker_filter_from_an_experiment_config(
    seeded_reranker: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    from inpars_core.experiments.runner import ExperimentRunner
    from inpars_core.experiments.stages import StageResult

    toml = tmp_path / "exp.toml"
    toml.write_text(
        f'[experiment]\nname = "reranker-filter"\n[dataset]\nname = "{tiny_dir}"\n'
        f'[filters]\nreranker_model = "{seeded_reranker}"\nreranker_top_fraction = 0.4\n'
        "min_words = 1\nnear_duplicate_jaccard = 1.0\nmax_document_overlap = 1.0\n"
    )
    config = load_config(toml)
    generated = tmp_path / "generated"
    generated.mkdir()
    _write_queries(generated / "queries.jsonl")
    runner = ExperimentRunner(config, tmp_path / "runs")
    result = runner.filter(
        config,
        StageResult("generate", "g", generated, {}, ran=False),
        StageResult("index", "i", tmp_path / "no-index", {}, ran=False),  # no round trip
    )
    expected = _expected_scores(seeded_reranker, tiny_dir)
    rows = {r["query_id"]: r for r in _jsonl(result.path / "verdicts.jsonl")}
    for qid, score in expected.items():
        (reranker,) = [v for v in rows[qid]["verdicts"] if v["filter"] == "reranker"]
        assert reranker["value"] == pytest.approx(score)
    assert result.meta["counts"]["dropped_by"]["reranker"] == 3  # 0.4 of 5 rounds up to 2 kept
    assert result.meta["config"]["reranker_model"] == str(seeded_reranker)


# --------------------------------------------------------------------------- generate resumes


class FakeCompletions:
    """A loopback OpenAI-compatible server answering Completions with a canned query made of
    the document's first words (no model: the test is about what is asked, not answered)."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                words = document_key(body).split()[1:4]
                payload = json.dumps(
                    {
                        "id": "cmpl-test",
                        "object": "text_completion",
                        "created": 0,
                        "model": body.get("model", "fake"),
                        "choices": [
                            {
                                "text": " what about " + " ".join(words),
                                "index": 0,
                                "logprobs": None,
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def test_generate_rerun_onto_a_complete_artifact_asks_nothing_twice(
    tiny_dir: Path, tmp_path: Path, capsys
) -> None:
    upstream = FakeCompletions()
    proxy = CountingProxy(upstream.port)
    template = tmp_path / "t.txt"
    template.write_text("Document: {document}\nQuery:")
    out = tmp_path / "queries"

    def generate_cli(num_docs: int, *extra: str) -> int:
        return main(
            ["generate", "--dataset", str(tiny_dir), "--backend", "openai", "--api", "completions",
             "--model", "fake-model", "--base-url", proxy.base_url, "--prompt", str(template),
             "--num-docs", str(num_docs), "--no-logprobs", "--concurrency", "1", *extra,
             "--no-progress", "--out", str(out)]
        )  # fmt: skip

    try:
        assert generate_cli(3) == 0
        first = (out / "queries.jsonl").read_text()
        assert sum(proxy.attempts.values()) == 3
        capsys.readouterr()
        assert generate_cli(3, "--dry-run") == 0
        assert "3 documents (3 already done)" in capsys.readouterr().out
        assert generate_cli(3) == 0  # the same command again: nothing to ask
        assert sum(proxy.attempts.values()) == 3
        assert (out / "queries.jsonl").read_text() == first
        assert "0 queries written" in capsys.readouterr().out
        assert generate_cli(5) == 0  # more documents: only the new ones are asked
    finally:
        proxy.stop()
        upstream.stop()
    assert sum(proxy.attempts.values()) == 5  # 3, then the 2 new documents only
    records = _jsonl(out / "queries.jsonl")
    assert sorted(r["doc_id"] for r in records) == ["d0", "d1", "d2", "d3", "d4"]
    assert (out / "queries.jsonl").read_text().startswith(first)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["type"] == "queries" and meta["counts"]["resumed_done"] == 3
    assert meta["counts"]["generated_now"] == 2 and meta["counts"]["queries"] == 5
    prompt = json.loads((out / "prompt.json").read_text())
    assert prompt["template"] == "Document: {document}\nQuery:" and prompt["chat"] is False
    assert not list(tmp_path.glob(".queries.*")), "no work folder left behind"
