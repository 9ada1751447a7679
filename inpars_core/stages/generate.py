"""generate: one synthetic query per sampled document, written by an LLM (resumable).

Every finished query is appended to ``queries.jsonl`` as it arrives (flushed and fsynced), so a
crash loses nothing: the next attempt on the same work folder skips the documents already done.
A rerun of the command onto a complete artifact resumes from its ``queries.jsonl`` too
(:data:`RESUMABLE_FILES`): queries already paid for are never requested again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from inpars_core.options import NON_NEGATIVE_FLOAT, NON_NEGATIVE_INT, POSITIVE_INT, option, validate
from inpars_core.stages.common import Progress, dataset_record, load_dataset, no_progress
from inpars_core.stages.contract import Artifact, Note, partial_dir, write_stage_meta

NAME = "generate"
HELP = "write one synthetic query per sampled document"
OUTPUT = "queries"
QUERIES_FILE = "queries.jsonl"
#: The exact prompt template and few-shot examples the queries were written from.
PROMPT_FILE = "prompt.json"
#: Files of a previous artifact a rerun starts from (see :func:`~.contract.publish`).
RESUMABLE_FILES = (QUERIES_FILE,)

logger = logging.getLogger(__name__)


def _backends() -> tuple[str, ...]:
    from inpars_core.generation.base import BACKENDS

    return tuple(BACKENDS)


@dataclass(frozen=True)
class Config:
    """The LLM writing the synthetic queries: the command line's flags and the experiment
    TOML's ``[generator]`` section."""

    backend: str = option("llamacpp", "LLM backend", choices=_backends)
    model: str = option("gemma-3-270m", "model name; gemma-3-270m = the packaged GGUF")
    prompt: str = option(
        "inpars",
        "inpars | inpars-gbq | inpars-claim | in-domain | path to a template with {document}",
    )
    num_docs: int | None = option(
        100, "documents sampled with --seed (switched off: every document)", check=POSITIVE_INT
    )
    seed: int = option(0, "seed of the document sample and of the LLM", check=NON_NEGATIVE_INT)
    max_tokens: int = option(32, "completion tokens per query, at most", check=POSITIVE_INT)
    max_document_words: int = option(
        256, "document words shown in the prompt", check=POSITIVE_INT, flag="--max-doc-words"
    )
    base_url: str | None = option(None, "OpenAI-compatible server (vLLM, llama.cpp, Ollama)")
    api: Literal["chat", "completions"] = option(
        "chat", "openai backend: Chat Completions or (legacy) Completions, for base models"
    )
    concurrency: int = option(4, "requests in flight (openai)", check=POSITIVE_INT)
    logprobs: bool = option(
        True, "openai backend: ask for log-probs (--no-logprobs: faster local servers)"
    )
    max_cost_usd: float | None = option(
        None,
        "stop before spending more than this (USD), resumed queries included",
        check=NON_NEGATIVE_FLOAT,
        flag="--max-cost",
    )
    price_table: str | None = option(
        None, 'JSON {"model": [usd_per_1M_prompt, usd_per_1M_completion]} over the built-in'
    )

    def __post_init__(self) -> None:
        validate(self)

    @property
    def chat(self) -> bool:
        """Whether prompts go out as chat messages (the openai backend's Chat Completions)."""
        return self.backend == "openai" and self.api == "chat"


@dataclass(frozen=True)
class Inputs:
    """Where the documents come from."""

    dataset: str = option(help="BEIR name (scifact, ...) or a BEIR-layout folder")


def prompt_record(prompt: Any, chat: bool) -> dict[str, Any]:
    """What the generator was asked, exactly (``prompt.json``): the template (``{document}``
    where each document goes), the system message for chat models, the few-shot examples."""
    from inpars_core.generation.prompts import DOCUMENT_PLACEHOLDER, SYSTEM_MESSAGE

    return {
        "prompt_id": prompt.prompt_id,
        "prompt_hash": prompt.prompt_hash,
        "template": prompt.text,
        "document_placeholder": DOCUMENT_PLACEHOLDER,
        "max_document_words": prompt.max_document_words,
        "chat": chat,
        "system_message": SYSTEM_MESSAGE if chat else None,
        "example_queries": list(prompt.example_queries),
        "example_query_ids": list(prompt.example_query_ids),
        "example_doc_ids": list(prompt.example_doc_ids),
    }


def _plan(config: Config, inputs: Inputs) -> tuple[Any, Any, list[Any], Any]:
    """(dataset, prompt, sampled documents, price) of a run."""
    from inpars_core.generation.pricing import load_price_table, price_for
    from inpars_core.generation.prompts import resolve_prompt
    from inpars_core.generation.stage import sample_documents

    dataset = load_dataset(inputs.dataset)
    prompt = resolve_prompt(
        config.prompt, dataset, seed=config.seed, max_document_words=config.max_document_words
    )
    documents = sample_documents(dataset, config, exclude=prompt.example_doc_ids)
    table = load_price_table(Path(config.price_table) if config.price_table else None)
    return dataset, prompt, documents, price_for(config.model, config.backend, table)


def _estimate_line(config: Config, prompt: Any, documents: list[Any], price: Any, done) -> str:
    from inpars_core.generation.stage import estimate_cost

    estimate = estimate_cost(documents, prompt, config, price, done)
    return (
        f"dry run: {estimate.documents} documents ({estimate.already_done} already done), "
        f"{estimate.prompt_tokens:,} prompt tokens ({estimate.method}), "
        f"~{estimate.expected_completion_tokens:,} completion tokens expected "
        f"(at most {estimate.max_completion_tokens:,}); "
        f"expected cost US${estimate.expected_cost_usd:.4f}, "
        f"at most US${estimate.max_cost_usd:.4f} "
        f"at US${price.prompt_per_million}/{price.completion_per_million} per 1M tokens"
    )


def _done(path: Path) -> list[str]:
    """Document ids already in a queries file (none when it is absent)."""
    from inpars_core.generation.stage import QueryFile

    return list(QueryFile(path).records) if path.is_file() else []


def preview(config: Config, inputs: Inputs, out: Path | None = None) -> str:
    """The cost estimate of a run, sending nothing: prompt tokens of every request still to
    send (those already in ``out``, or in its unfinished work folder, are not counted)."""
    _, prompt, documents, price = _plan(config, inputs)
    done: list[str] = []
    if out is not None:
        work = partial_dir(Path(out)) / QUERIES_FILE
        done = _done(work if work.is_file() else Path(out) / QUERIES_FILE)
    return _estimate_line(config, prompt, documents, price, done)


def backend_arguments(config: Config) -> dict[str, Any]:
    """The keyword arguments of the configured backend."""
    kwargs: dict[str, Any] = {"model": config.model}
    if config.backend == "openai":
        kwargs.update(
            base_url=config.base_url,
            api=config.api,
            concurrency=config.concurrency,
            logprobs=config.logprobs,
        )
    return kwargs


def run(
    config: Config, inputs: Inputs, out_dir: Path, progress: Progress | None = None
) -> Artifact:
    """Generate into ``out_dir`` (``queries.jsonl``, ``prompt.json``, ``meta.json``), resuming
    from the ``queries.jsonl`` already there."""
    from inpars_core.artifacts import write_json
    from inpars_core.generation.base import get_backend
    from inpars_core.generation.stage import generate_queries

    started = time.perf_counter()
    out_dir = Path(out_dir)
    path = out_dir / QUERIES_FILE
    dataset, prompt, documents, price = _plan(config, inputs)
    done = set(_done(path))
    if config.max_cost_usd is not None:
        logger.info("%s", _estimate_line(config, prompt, documents, price, sorted(done)))
    write_json(out_dir / PROMPT_FILE, prompt_record(prompt, config.chat))
    backend = get_backend(config.backend, **backend_arguments(config))
    tick = (progress or no_progress)(NAME, len(documents))
    tick(sum(d.doc_id in done for d in documents))
    report = generate_queries(
        backend, documents, prompt, config, path, price, on_record=lambda _r: tick(1)
    )
    notes = []
    if config.num_docs is not None and config.num_docs > len(documents):
        notes.append(
            Note(
                "fewer-documents",
                "warning",
                f"--num-docs {config.num_docs} asked for more documents than {dataset.name} "
                f"offers: {len(documents)} were sampled (every document not used as a "
                "few-shot example)",
            )
        )
    if report.stopped_by_budget:
        notes.append(
            Note(
                "stopped-by-budget",
                "warning",
                f"stopped before the budget of US${config.max_cost_usd} would be exceeded: "
                f"{report.total} of {len(documents)} documents have a query (rerun with a "
                "larger --max-cost to go on)",
            )
        )
    return write_stage_meta(
        out_dir,
        stage=NAME,
        type=OUTPUT,
        config=config,
        inputs={
            **dataset_record(dataset),
            "prompt_id": prompt.prompt_id,
            "prompt_hash": prompt.prompt_hash,
            "example_query_ids": list(prompt.example_query_ids),
            "example_queries": list(prompt.example_queries),
            "example_doc_ids": list(prompt.example_doc_ids),
        },
        counts={
            "documents": len(documents),
            "queries": report.total,
            "generated_now": report.generated,
            "resumed_done": report.skipped_done,
            "stopped_by_budget": report.stopped_by_budget,
            "spent_usd_now": round(report.spent_usd, 6),
            "cost_usd": round(report.total_usd, 6),
        },
        timings={"generate_s": round(report.seconds, 3)},
        notes=notes,
        started=started,
    )


def describe(artifact: Artifact) -> str:
    """The line the command prints."""
    counts = artifact.counts
    return (
        f"{counts['generated_now']} queries written to {artifact.data} "
        f"({counts['resumed_done']} already there) in "
        f"{artifact.meta['timings']['generate_s']:.1f} s; cost US${counts['spent_usd_now']:.4f} "
        f"(file total US${counts['cost_usd']:.4f})"
        + ("; stopped by --max-cost" if counts["stopped_by_budget"] else "")
    )
