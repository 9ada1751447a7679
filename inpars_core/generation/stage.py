"""Generating queries: sample documents, prompt an LLM, append one record per query.

The settings are those of :class:`inpars_core.stages.generate.Config` (the command line's and
the experiment TOML's ``[generator]``); :mod:`inpars_core.stages.generate` runs this as a stage.

A backend with ``complete_many`` (llama.cpp in process) gets ``batch_size`` documents per call
and returns their completions together; the others get one document per call.

Crash safety: each finished query is appended to the output JSONL as one line, flushed and
fsynced before the next result is accepted. A rerun reads the file (dropping a torn last line
left by a kill), skips every document already done, and never sends a request for it again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from inpars_core.datasets.beir import Dataset
from inpars_core.errors import ConfigError, InputFormatError
from inpars_core.generation.base import Completion, LLMBackend
from inpars_core.generation.pricing import Price, count_tokens
from inpars_core.generation.prompts import PromptTemplate
from inpars_core.records import Document, SyntheticQuery

if TYPE_CHECKING:
    from inpars_core.stages.generate import Config as GenerationConfig

logger = logging.getLogger(__name__)

#: Completion tokens assumed per query for the expected-cost estimate (a query is ~10-25 tokens).
EXPECTED_COMPLETION_TOKENS = 24


def query_id_for(doc_id: str, seed: int) -> str:
    """The id of the synthetic query written for ``doc_id`` (one query per document and seed)."""
    return f"syn-{doc_id}-s{seed}"


def sample_documents(
    dataset: Dataset, config: GenerationConfig, exclude: Sequence[str] = ()
) -> list[Document]:
    """A deterministic sample of ``num_docs`` documents (all when None), excluding some ids.

    ``num_docs`` larger than what is left logs a warning with the real number (every document
    is taken)."""
    excluded = set(exclude)
    ids = sorted(d for d in dataset.corpus if d not in excluded)
    if config.num_docs is not None and config.num_docs > len(ids):
        logger.warning(
            "--num-docs %d: %s has only %d documents to sample from (%d in the corpus, %d "
            "used as few-shot examples); taking all %d",
            config.num_docs,
            dataset.name,
            len(ids),
            len(dataset.corpus),
            len(dataset.corpus) - len(ids),
            len(ids),
        )
    if config.num_docs is not None and config.num_docs < len(ids):
        ids = random.Random(config.seed).sample(ids, config.num_docs)
    return [dataset.corpus[d] for d in ids]


def clean_query(raw: str) -> str:
    """First non-empty line of a completion, without list markers, labels or wrapping quotes."""
    for line in raw.splitlines():
        line = line.strip()
        line = re.sub(
            r"^(?:relevant query|good question|query|question)\s*:\s*", "", line, flags=re.I
        )
        line = line.strip().strip("\"'“”‘’").strip()
        if line:
            return line
    return ""


class QueryFile:
    """An append-only JSONL of :class:`SyntheticQuery`, safe against kills.

    ``repair=True`` is for the one process appending to the file (the generation stage): a
    final line that an interrupted run left without its newline and that does not parse is cut
    off before appending. Readers (``repair=False``, the default) never modify the file: a
    final line without a newline that parses is a complete record and is kept; one that does
    not parse is skipped with a warning (the writer is still running or was killed).
    """

    def __init__(self, path: Path, *, repair: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._repair = repair
        self.records: dict[str, SyntheticQuery] = {}
        if self.path.exists():
            self._load()

    def _torn_tail(self, raw: bytes) -> int:
        """Where the records to read end: ``len(raw)``, or the start of a torn final line."""
        end = raw.rfind(b"\n") + 1
        if end == len(raw) or not raw[end:].strip():
            return len(raw)
        try:
            json.loads(raw[end:].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
        else:  # a complete record without its newline
            if self._repair:
                with open(self.path, "ab") as handle:
                    handle.write(b"\n")
            return len(raw)
        if self._repair:
            logger.warning(
                "%s: dropping a torn last line (%d bytes) left by an interrupted run",
                self.path,
                len(raw) - end,
            )
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
        else:
            logger.warning(
                "%s: ignoring an incomplete last line (%d bytes): the run writing it was "
                "interrupted or is still running",
                self.path,
                len(raw) - end,
            )
        return end

    def _load(self) -> None:
        raw = self.path.read_bytes()
        end = self._torn_tail(raw)
        names = {f.name for f in fields(SyntheticQuery)}
        required = {
            f.name
            for f in fields(SyntheticQuery)
            if f.default is MISSING and f.default_factory is MISSING
        }
        for number, line in enumerate(raw[:end].decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(
                    self.path,
                    f"not valid JSON ({exc.msg})",
                    line=number,
                    fix="repair or delete the line, then rerun",
                ) from None
            missing = required - set(row) if isinstance(row, dict) else required
            if missing:
                raise InputFormatError(
                    self.path,
                    "missing",
                    line=number,
                    field=sorted(missing)[0],
                    fix="this file was not written by 'inpars generate'",
                )
            record = SyntheticQuery(**{k: v for k, v in row.items() if k in names})
            self.records[record.doc_id] = record

    def append(self, record: SyntheticQuery) -> None:
        """Append one record durably (a single write of a whole line, then fsync)."""
        line = json.dumps(asdict(record), ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self.records[record.doc_id] = record


def read_queries(path: Path) -> list[SyntheticQuery]:
    """Read a synthetic query file written by the generation stage, or the ``queries.jsonl`` of
    a queries artifact folder (``inpars generate``/``inpars filter --out``)."""
    if Path(path).is_dir():
        from inpars_core.stages.contract import open_input

        path = open_input(path, "queries", flag="--queries")
    from inpars_core.textio import check_file, not_utf8

    path = check_file(Path(path), "a synthetic queries", "run 'inpars generate' first")
    try:
        return list(QueryFile(path).records.values())
    except UnicodeDecodeError as exc:
        raise not_utf8(path, exc.object, exc) from None


def write_queries(queries: Sequence[SyntheticQuery], path: Path) -> None:
    """Write synthetic queries atomically (for filtered subsets)."""
    from inpars_core.artifacts import atomic_text

    with atomic_text(Path(path)) as handle:
        for record in queries:
            handle.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")


@dataclass(frozen=True)
class CostEstimate:
    """What a generation run would send and cost, before anything is sent."""

    documents: int
    already_done: int
    prompt_tokens: int
    expected_completion_tokens: int
    max_completion_tokens: int
    expected_cost_usd: float
    max_cost_usd: float
    method: str


def estimate_cost(
    documents: Sequence[Document],
    prompt: PromptTemplate,
    config: GenerationConfig,
    price: Price,
    done: Sequence[str] = (),
) -> CostEstimate:
    """Token counts of every prompt still to send, and the expected and worst-case cost."""
    todo = [d for d in documents if d.doc_id not in set(done)]
    prompt_tokens = 0
    method = "none"
    for document in todo:
        rendered = prompt.render(document, chat=config.chat)
        text = (
            rendered.text
            if not rendered.messages
            else "\n".join(m["content"] for m in rendered.messages)
        )
        tokens, method = count_tokens(text, config.model)
        prompt_tokens += tokens + (7 * len(rendered.messages) if rendered.messages else 0)
    expected_completion = EXPECTED_COMPLETION_TOKENS * len(todo)
    max_completion = config.max_tokens * len(todo)
    return CostEstimate(
        documents=len(documents),
        already_done=len(documents) - len(todo),
        prompt_tokens=prompt_tokens,
        expected_completion_tokens=expected_completion,
        max_completion_tokens=max_completion,
        expected_cost_usd=price.cost(prompt_tokens, expected_completion),
        max_cost_usd=price.cost(prompt_tokens, max_completion),
        method=method,
    )


def _mean(values: Sequence[float] | None) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return sum(values) / len(values), sum(values)


def _record(
    document: Document,
    completion: Completion,
    prompt: PromptTemplate,
    config: GenerationConfig,
    price: Price,
) -> SyntheticQuery:
    mean, total = _mean(completion.token_logprobs)
    return SyntheticQuery(
        query_id=query_id_for(document.doc_id, config.seed),
        doc_id=document.doc_id,
        text=clean_query(completion.text),
        raw_output=completion.text,
        prompt_id=prompt.prompt_id,
        prompt_hash=prompt.prompt_hash,
        backend=config.backend,
        model=config.model,
        seed=config.seed,
        mean_logprob=mean,
        sum_logprob=total,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        cost_usd=price.cost(completion.prompt_tokens, completion.completion_tokens),
        latency_s=round(completion.latency_s, 4),
    )


def _check_compatible(store: QueryFile, prompt: PromptTemplate, config: GenerationConfig) -> None:
    for record in store.records.values():
        mine = (config.backend, config.model, prompt.prompt_hash, config.seed)
        theirs = (record.backend, record.model, record.prompt_hash, record.seed)
        if mine != theirs:
            raise ConfigError(
                f"{store.path} holds queries from backend/model/prompt/seed {theirs}, this run "
                f"uses {mine}; resume only with the same settings, or write to another --out"
            )
        return


@dataclass
class GenerationReport:
    """What a generation run did."""

    generated: int
    skipped_done: int
    stopped_by_budget: bool
    spent_usd: float
    total_usd: float
    seconds: float
    #: Queries in the file now (resumed ones included).
    total: int = 0


def generate_queries(
    backend: LLMBackend,
    documents: Sequence[Document],
    prompt: PromptTemplate,
    config: GenerationConfig,
    out_path: Path,
    price: Price,
    on_record: Callable[[SyntheticQuery], None] | None = None,
) -> GenerationReport:
    """Write one query per document to ``out_path``, resuming where a previous run stopped."""
    store = QueryFile(out_path, repair=True)
    _check_compatible(store, prompt, config)
    todo = [d for d in documents if d.doc_id not in store.records]
    skipped = len(documents) - len(todo)
    already_spent = sum(r.cost_usd for r in store.records.values())
    if skipped:
        logger.info("%s: %d documents already done, %d to go", out_path, skipped, len(todo))
    spent = 0.0
    committed = 0.0  # worst-case cost of requests in flight
    stopped = False
    started = time.perf_counter()

    def worst_case(document: Document) -> float:
        tokens, _ = count_tokens(prompt.render(document, chat=config.chat).text, config.model)
        return price.cost(tokens + 16, config.max_tokens)

    many = getattr(backend, "complete_many", None)
    per_call = max(1, int(getattr(backend, "batch_size", 1))) if many else 1

    def run_batch(batch: list[Document]) -> list[SyntheticQuery]:
        prompts = [prompt.render(d, chat=config.chat) for d in batch]
        if many is not None:
            completions = many(prompts, seed=config.seed, max_tokens=config.max_tokens)
        else:
            completions = [
                backend.complete(p, seed=config.seed, max_tokens=config.max_tokens) for p in prompts
            ]
        return [
            _record(d, c, prompt, config, price) for d, c in zip(batch, completions, strict=True)
        ]

    warned_empty = False
    pending = iter(todo)
    in_flight: dict[Future[list[SyntheticQuery]], float] = {}
    with ThreadPoolExecutor(max_workers=backend.max_concurrency) as pool:

        def submit_next() -> bool:
            nonlocal committed, stopped
            batch: list[Document] = []
            reserved = 0.0
            while len(batch) < per_call:
                document = next(pending, None)
                if document is None:
                    break
                reserve = (
                    worst_case(document)
                    if config.max_cost_usd is not None and price.cost(1, 1) > 0
                    else 0.0
                )
                if (
                    config.max_cost_usd is not None
                    and already_spent + spent + committed + reserved + reserve > config.max_cost_usd
                ):
                    logger.warning(
                        "stopping before the budget of US$%.4f would be exceeded (spent US$%.4f)",
                        config.max_cost_usd,
                        already_spent + spent,
                    )
                    stopped = True
                    break
                batch.append(document)
                reserved += reserve
            if not batch:
                return False
            committed += reserved
            in_flight[pool.submit(run_batch, batch)] = reserved
            return not stopped

        while len(in_flight) < backend.max_concurrency and submit_next():
            pass
        try:
            while in_flight:
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                for future in done:
                    committed -= in_flight.pop(future)
                    for record in future.result():
                        store.append(record)
                        if config.chat and not record.raw_output.strip() and not warned_empty:
                            warned_empty = True
                            logger.warning(
                                "%s returned an empty chat completion for document %s: base "
                                "(not chat-tuned) models answer chat requests with nothing; "
                                "use --api completions for them",
                                config.model,
                                record.doc_id,
                            )
                        spent += record.cost_usd
                        if on_record:
                            on_record(record)
                    if not stopped:
                        submit_next()
        finally:
            for future in in_flight:
                future.cancel()
    seconds = time.perf_counter() - started
    generated = len(store.records) - skipped
    return GenerationReport(
        generated, skipped, stopped, spent, already_spent + spent, seconds, len(store.records)
    )


def iter_documents(dataset: Dataset, doc_ids: Sequence[str]) -> Iterator[Document]:
    """Documents of ``dataset`` by id (for callers holding ids)."""
    for doc_id in doc_ids:
        yield dataset.corpus[doc_id]
