"""Query generation with real models: llama.cpp in process, an OpenAI-compatible server on
127.0.0.1 (llama-cpp-python[server] with the same GGUF), fault injection, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inpars_core.datasets import load_beir_folder
from inpars_core.errors import ConfigError
from inpars_core.generation.base import GenerationError, get_backend, resolve_gguf
from inpars_core.generation.pricing import DEFAULT_PRICES, FREE, Price, count_tokens
from inpars_core.generation.prompts import inpars_prompt, prompt_from_file, resolve_prompt
from inpars_core.generation.stage import (
    QueryFile,
    estimate_cost,
    generate_queries,
    read_queries,
    sample_documents,
)
from inpars_core.stages import generate
from inpars_core.stages.contract import partial_dir
from tests.llm_servers import CountingProxy, LlamaServer

CLI = [sys.executable, "-m", "inpars_core.cli"]


@pytest.fixture(scope="module")
def gguf() -> str:
    return resolve_gguf("gemma-3-270m")


@pytest.fixture(scope="module")
def server(gguf: str, tmp_path_factory) -> LlamaServer:
    started = LlamaServer(gguf, tmp_path_factory.mktemp("server") / "server.log")
    yield started
    started.stop()


@pytest.fixture
def short_prompt(tmp_path: Path):
    """A short completion template (fast on a server computing log-probs for every token)."""
    path = tmp_path / "short.txt"
    path.write_text("Query: what is aspirin\n\nDocument: {document}\nQuery:")
    return resolve_prompt(str(path), max_document_words=25)


def _config(backend: str, prompt, *, chat: bool = False, **kwargs) -> generate.Config:
    """Generation settings (``prompt`` is passed to generate_queries itself)."""
    api = "chat" if chat else "completions"
    return generate.Config(backend=backend, model="gemma-3-270m", api=api, **kwargs)


@pytest.mark.integration
def test_llamacpp_records_complete_and_deterministic(
    scifact, scifact_dir: Path, gguf: str, tmp_path: Path
) -> None:
    """generate_queries and the generate stage, each with a fresh model instance and the same
    seed, write the same records; the stage's meta.json and prompt.json say how."""
    prompt = inpars_prompt()
    config = _config("llamacpp", prompt, num_docs=3, seed=3, max_tokens=24)
    documents = sample_documents(scifact, config)
    assert [d.doc_id for d in documents] == [d.doc_id for d in sample_documents(scifact, config)]
    backend = get_backend("llamacpp", model="gemma-3-270m")
    report = generate_queries(backend, documents, prompt, config, tmp_path / "q0.jsonl", FREE)
    assert report.generated == 3
    artifact = generate.run(config, generate.Inputs(str(scifact_dir)), tmp_path / "stage")
    assert artifact.counts["generated_now"] == 3
    first, second = read_queries(tmp_path / "q0.jsonl"), read_queries(artifact.data)
    strip = lambda q: (q.query_id, q.doc_id, q.text, q.mean_logprob, q.completion_tokens)  # noqa: E731
    assert [strip(q) for q in first] == [strip(q) for q in second]
    for query in first:
        assert query.text and query.raw_output and query.prompt_hash == prompt.prompt_hash
        assert query.backend == "llamacpp" and query.seed == 3 and query.prompt_id == "inpars"
        assert query.mean_logprob is not None and query.mean_logprob < 0
        assert query.sum_logprob == pytest.approx(query.mean_logprob * query.completion_tokens)
        assert query.prompt_tokens > 300 and 0 < query.completion_tokens <= 24
        assert query.latency_s > 0 and query.cost_usd == 0.0
    meta = json.loads((tmp_path / "stage" / "meta.json").read_text())
    assert meta["stage"] == "generate" and meta["counts"]["generated_now"] == 3
    assert meta["type"] == "queries"
    assert meta["inputs"]["example_queries"] == list(prompt.example_queries)
    recorded = json.loads((tmp_path / "stage" / "prompt.json").read_text())
    assert recorded["prompt_hash"] == prompt.prompt_hash and recorded["template"] == prompt.text


@pytest.mark.integration
def test_openai_completions_on_local_server(
    scifact, server: LlamaServer, short_prompt, tmp_path: Path
) -> None:
    config = _config("openai", short_prompt, num_docs=2, max_tokens=6)
    backend = get_backend(
        "openai", model="gemma-3-270m", base_url=server.base_url, api="completions"
    )
    report = generate_queries(
        backend, sample_documents(scifact, config), short_prompt, config, tmp_path / "q.jsonl", FREE
    )
    assert report.generated == 2
    for query in read_queries(tmp_path / "q.jsonl"):
        assert query.raw_output.strip()
        assert query.mean_logprob is not None and query.mean_logprob <= 0
        assert query.prompt_tokens > 10 and 0 < query.completion_tokens <= 6


@pytest.mark.integration
def test_openai_chat_on_local_server(
    scifact, server: LlamaServer, short_prompt, tmp_path: Path, caplog
) -> None:
    """Chat Completions round trip; a base model answers chat with empty text, and we say so."""
    config = _config("openai", short_prompt, num_docs=1, max_tokens=6, chat=True)
    backend = get_backend("openai", model="gemma-3-270m", base_url=server.base_url, api="chat")
    generate_queries(
        backend, sample_documents(scifact, config), short_prompt, config, tmp_path / "q.jsonl", FREE
    )
    (query,) = read_queries(tmp_path / "q.jsonl")
    assert query.prompt_tokens > 10  # token usage reported by the server
    assert query.raw_output == "" and "use --api completions" in caplog.text


@pytest.mark.integration
def test_faults_are_retried_and_each_document_succeeds_once(
    scifact, server: LlamaServer, short_prompt, tmp_path: Path
) -> None:
    proxy = CountingProxy(server.port, faults=lambda key, n: {1: 429, 2: 500}.get(n))
    try:
        config = _config("openai", short_prompt, num_docs=3, max_tokens=4)
        backend = get_backend(
            "openai",
            model="gemma-3-270m",
            base_url=proxy.base_url,
            api="completions",
            logprobs=False,
            concurrency=2,
        )
        report = generate_queries(
            backend,
            sample_documents(scifact, config),
            short_prompt,
            config,
            tmp_path / "q.jsonl",
            FREE,
        )
    finally:
        proxy.stop()
    assert report.generated == 3
    assert proxy.injected == {429: 3, 500: 3}
    assert sorted(proxy.passed.values()) == [1, 1, 1]
    assert len(read_queries(tmp_path / "q.jsonl")) == 3


@pytest.mark.parametrize(("status", "message"), [(401, "401 unauthorised"), (404, "404 for")])
def test_auth_and_missing_model_fail_at_once(
    status: int, message: str, short_prompt, scifact, tmp_path: Path
) -> None:
    proxy = CountingProxy(9, faults=lambda key, n: status)
    try:
        backend = get_backend(
            "openai",
            model="gemma-3-270m",
            base_url=proxy.base_url,
            api="completions",
        )
        config = _config("openai", short_prompt, num_docs=1)
        with pytest.raises(GenerationError, match=message) as info:
            generate_queries(
                backend,
                sample_documents(scifact, config),
                short_prompt,
                config,
                tmp_path / "q.jsonl",
                FREE,
            )
    finally:
        proxy.stop()
    assert "gemma-3-270m" in str(info.value) and proxy.base_url in str(info.value)
    assert sum(proxy.attempts.values()) == 1


def test_refused_connection_fails_fast_naming_the_url(short_prompt, scifact, tmp_path: Path):
    """Nothing listens at the base URL: one clear error within seconds, not minutes of retries."""
    from tests.llm_servers import free_port

    base_url = f"http://127.0.0.1:{free_port()}/v1"
    backend = get_backend("openai", model="gemma-3-270m", base_url=base_url, api="completions")
    config = _config("openai", short_prompt, num_docs=1)
    started = time.monotonic()
    with pytest.raises(GenerationError, match="connection refused") as info:
        generate_queries(
            backend,
            sample_documents(scifact, config),
            short_prompt,
            config,
            tmp_path / "q.jsonl",
            FREE,
        )
    assert time.monotonic() - started < 10
    assert base_url in str(info.value) and "gemma-3-270m" in str(info.value)


def test_remote_server_without_key_is_refused(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="set the environment variable OPENAI_API_KEY"):
        get_backend("openai", model="gpt-3.5-turbo", base_url="https://api.example.invalid/v1")


@pytest.mark.integration
def test_kill_and_resume_loses_nothing_and_asks_nothing_twice(
    scifact_dir: Path, server, tmp_path: Path
) -> None:
    proxy = CountingProxy(server.port)
    template = tmp_path / "t.txt"
    template.write_text("Document: {document}\nQuery:")
    out = tmp_path / "q"
    work = partial_dir(out) / "queries.jsonl"  # where the run writes until it is complete
    args = [
        *CLI,
        "generate",
        "--dataset",
        str(scifact_dir),
        "--backend",
        "openai",
        "--api",
        "completions",
        "--model",
        "gemma-3-270m",
        "--base-url",
        proxy.base_url,
        "--prompt",
        str(template),
        "--max-doc-words",
        "20",
        "--max-tokens",
        "4",
        "--num-docs",
        "8",
        "--concurrency",
        "1",
        "--no-logprobs",
        "--out",
        str(out),
    ]
    try:
        first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if work.exists() and work.read_text().count("\n") >= 3:
                break
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        done_before = {
            json.loads(line)["doc_id"]
            for line in work.read_text().splitlines()
            if line.endswith("}")
        }
        assert 3 <= len(done_before) < 8, "the kill must land mid-run"
        subprocess.run(args, check=True, capture_output=True)
    finally:
        proxy.stop()
    assert not work.parent.exists()  # published as out
    records = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    doc_ids = [r["doc_id"] for r in records]
    assert len(doc_ids) == 8 and len(set(doc_ids)) == 8, "no duplicate, no lost query"

    def key(doc_id: str) -> str:
        words = scifact_corpus[doc_id].contents.split()[:20]
        return "Document: " + " ".join(words)

    scifact_corpus = load_beir_folder(scifact_dir).corpus
    assert set(proxy.passed) == {key(d) for d in doc_ids}
    # Finished before the kill: asked exactly once in total. At most one was in flight.
    assert all(proxy.passed[key(d)] == 1 for d in done_before)
    assert sum(proxy.passed.values()) <= 9


def test_torn_last_line_is_dropped_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    good = {
        "query_id": "syn-a-s0",
        "doc_id": "a",
        "text": "t",
        "raw_output": "t",
        "prompt_id": "p",
        "prompt_hash": "h",
        "backend": "llamacpp",
        "model": "m",
        "seed": 0,
    }
    path.write_text(json.dumps(good) + "\n" + '{"query_id": "syn-b-s0", "doc_')
    store = QueryFile(path, repair=True)  # the generation stage, appending to it
    assert list(store.records) == ["a"]
    assert path.read_text() == json.dumps(good) + "\n"


def test_resume_with_other_settings_is_refused(scifact, tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    good = {
        "query_id": "syn-a-s0",
        "doc_id": "a",
        "text": "t",
        "raw_output": "t",
        "prompt_id": "inpars",
        "prompt_hash": "other",
        "backend": "llamacpp",
        "model": "gemma-3-270m",
        "seed": 0,
    }
    path.write_text(json.dumps(good) + "\n")
    prompt = inpars_prompt()
    config = _config("llamacpp", prompt, num_docs=1)
    with pytest.raises(ConfigError, match="resume only with the same settings"):
        generate_queries(None, sample_documents(scifact, config), prompt, config, path, FREE)  # type: ignore[arg-type]


def test_dry_run_estimates_without_sending(scifact_dir: Path, scifact, tmp_path: Path) -> None:
    proxy = CountingProxy(9)
    out = tmp_path / "q"
    try:
        result = subprocess.run(
            [
                *CLI,
                "generate",
                "--dataset",
                str(scifact_dir),
                "--backend",
                "openai",
                "--model",
                "gpt-3.5-turbo",
                "--base-url",
                proxy.base_url,
                "--num-docs",
                "1000",
                "--dry-run",
                "--out",
                str(out),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        proxy.stop()
    assert sum(proxy.attempts.values()) == 0 and not out.exists()
    prompt = inpars_prompt()
    config = generate.Config(backend="openai", model="gpt-3.5-turbo", num_docs=1000, api="chat")
    documents = sample_documents(scifact, config)
    estimate = estimate_cost(documents, prompt, config, DEFAULT_PRICES["gpt-3.5-turbo"])
    assert estimate.documents == 1000 and estimate.method == "tiktoken:cl100k_base"
    by_hand = sum(
        count_tokens(
            "\n".join(m["content"] for m in prompt.render(d, chat=True).messages), "gpt-3.5-turbo"
        )[0]
        + 14
        for d in documents
    )
    assert estimate.prompt_tokens == by_hand
    assert estimate.expected_cost_usd == pytest.approx((by_hand * 0.5 + 24_000 * 1.5) / 1e6)
    assert f"{estimate.prompt_tokens:,} prompt tokens" in result.stdout
    assert f"US${estimate.expected_cost_usd:.4f}" in result.stdout


@pytest.mark.integration
def test_max_cost_stops_before_the_budget(scifact, server, short_prompt, tmp_path: Path) -> None:
    price = Price(2000.0, 2000.0)  # so each short request costs ~US$0.1
    config = _config("openai", short_prompt, num_docs=6, max_tokens=3, max_cost_usd=0.25)
    backend = get_backend(
        "openai",
        model="gemma-3-270m",
        base_url=server.base_url,
        api="completions",
        logprobs=False,
        concurrency=1,
    )
    report = generate_queries(
        backend,
        sample_documents(scifact, config),
        short_prompt,
        config,
        tmp_path / "q.jsonl",
        price,
    )
    assert report.stopped_by_budget and 1 <= report.generated < 6
    assert report.total_usd <= 0.25


@pytest.mark.integration
def test_prompt_files_and_in_domain_examples(scifact, tmp_path: Path) -> None:
    from inpars_core.errors import InputFormatError

    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholder here")
    with pytest.raises(InputFormatError, match=r"bad\.txt: holds 0 '\{document\}'"):
        prompt_from_file(bad)
    good = tmp_path / "good.txt"
    good.write_text("Document: x\nQuery: what is x\n\nDocument: {document}\nQuery:")
    assert prompt_from_file(good).example_queries == ("what is x",)
    in_domain = resolve_prompt("in-domain", scifact, seed=1)
    assert len(in_domain.example_query_ids) == 3
    assert all(q in scifact.qrels("train") for q in in_domain.example_query_ids)
    config = generate.Config(model="m", num_docs=None)  # every document
    sampled = {
        d.doc_id for d in sample_documents(scifact, config, exclude=in_domain.example_doc_ids)
    }
    assert not sampled & set(in_domain.example_doc_ids)
    chat = inpars_prompt().render(scifact.corpus["4983"], chat=True)
    assert chat.messages[0]["role"] == "system" and "Relevant Query:" in chat.messages[1]["content"]


@pytest.mark.integration
@pytest.mark.slow
def test_hf_backend_with_gguf_through_transformers(scifact, tmp_path: Path) -> None:
    prompt = inpars_prompt()
    config = _config("hf", prompt, num_docs=1, max_tokens=16)
    backend = get_backend("hf", model="gemma-3-270m")
    generate_queries(
        backend, sample_documents(scifact, config), prompt, config, tmp_path / "q.jsonl", FREE
    )
    (query,) = read_queries(tmp_path / "q.jsonl")
    assert query.text and query.mean_logprob is not None and query.completion_tokens > 0
