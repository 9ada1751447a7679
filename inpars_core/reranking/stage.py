"""The reranking stage: re-score the top ``depth`` of a run with a cross-encoder.

The result is the ranking as shown: the reranked head, then the first stage's tail.

Scores are cached per (model fingerprint, pair encoding, max_length, precision, query text,
document text) in an append-only file flushed after every batch: reranking the same pairs
twice costs nothing, a changed document or model is scored afresh, and a killed run loses at
most the batch in flight.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inpars_core.artifacts import stable_hash
from inpars_core.errors import InputFormatError
from inpars_core.records import Document, Query, Run, ScoredDoc
from inpars_core.reranking.encoding import EncodingConfig
from inpars_core.reranking.scoring import LoadedReranker, ScoringConfig, score_pairs
from inpars_core.runs import normalise_run, sort_ranking, top_k, with_first_stage_tail

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / "data" / "cache"


def cache_dir() -> Path:
    """``$INPARS_CACHE_DIR`` or ``data/cache`` in the project."""
    configured = os.environ.get("INPARS_CACHE_DIR")
    return Path(configured).expanduser() if configured else DEFAULT_CACHE_DIR


@dataclass(frozen=True)
class RerankConfig:
    """How deep to rerank and how pairs are encoded and scored."""

    depth: int = 100
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    chunk_pairs: int = 256
    #: > 0: the top ``exact_top`` of each query rescored in fp32 after a faster precision
    #: (:mod:`inpars_core.reranking.exact_head`); 0: every score at ``scoring.precision``.
    exact_top: int = 0


#: Version of the cache key schema, written as the first line of every cache file.
CACHE_SCHEMA = "inpars-score-cache/2"
CACHE_HEADER = (
    f"#{CACHE_SCHEMA}\tkey=sha256(model fingerprint, pair encoding, max_length, precision, "
    "query text, sha256(document text))\n"
)


@dataclass(frozen=True)
class ScoreSetting:
    """Everything besides the two texts that decides a cross-encoder score."""

    model_fingerprint: str
    pair_encoding: str
    max_length: int
    precision: str

    @classmethod
    def of(cls, reranker: LoadedReranker, config: RerankConfig) -> ScoreSetting:
        """The setting of ``reranker`` under ``config``."""
        return cls(
            reranker.fingerprint,
            config.encoding.mode,
            config.encoding.max_length,
            reranker.precision,
        )

    def key(self, query_text: str, document_text: str) -> str:
        """Cache key of a (query text, document text) pair under this setting (sha256 hex)."""
        document = hashlib.sha256(document_text.encode("utf-8")).hexdigest()
        fields = (
            CACHE_SCHEMA,
            self.model_fingerprint,
            self.pair_encoding,
            str(self.max_length),
            self.precision,
            query_text,
            document,
        )
        return hashlib.sha256("\x00".join(fields).encode("utf-8")).hexdigest()


class ScoreCache:
    """Append-only ``key<TAB>score`` file, first line :data:`CACHE_HEADER`.

    A key (:meth:`ScoreSetting.key`) covers the model fingerprint, the pair encoding,
    ``max_length``, the precision, the query text and a hash of the document text, so a cache
    never serves a score computed for another model, setting or document text. A file written
    under another key schema (no header, or another version) is not mixed in: it is moved
    aside to ``<name>.stale-<n>`` with a warning, and the cache starts empty.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.scores: dict[str, float] = {}
        if self.path.exists():
            raw = self.path.read_text(encoding="utf-8")
            complete = raw[: raw.rfind("\n") + 1]
            if complete and not complete.startswith(CACHE_HEADER):
                self._move_aside(complete.partition("\n")[0])
                return
            if len(complete) < len(raw):
                with open(self.path, "r+", encoding="utf-8") as handle:
                    handle.truncate(len(complete.encode("utf-8")))
            for line in complete.splitlines()[1:]:
                key, _, value = line.partition("\t")
                if value:
                    self.scores[key] = float(value)

    def _move_aside(self, first_line: str) -> None:
        number = 1
        while (stale := self.path.with_name(f"{self.path.name}.stale-{number}")).exists():
            number += 1
        self.path.rename(stale)
        logger.warning(
            "score cache %s was written under another key schema (first line %r, expected "
            "%r); it is not used and was moved to %s: delete it when no older version needs it",
            self.path,
            first_line[:60],
            CACHE_HEADER.rstrip("\n"),
            stale,
        )

    @staticmethod
    def key(setting: ScoreSetting, query_text: str, document_text: str) -> str:
        """Cache key of a pair (see :meth:`ScoreSetting.key`)."""
        return setting.key(query_text, document_text)

    def add(self, items: Mapping[str, float]) -> None:
        """Append scores durably (the header first when the file is new or empty)."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                if handle.tell() == 0:
                    handle.write(CACHE_HEADER)
                handle.write("".join(f"{k}\t{v!r}\n" for k, v in items.items()))
                handle.flush()
                os.fsync(handle.fileno())
            self.scores.update(items)

    @classmethod
    def for_model(
        cls, reranker: LoadedReranker, config: RerankConfig, root: Path | None = None
    ) -> ScoreCache:
        """The cache file of this model fingerprint and encoding/precision setting."""
        setting = ScoreSetting.of(reranker, config)
        name = (
            f"{stable_hash(dataclasses.asdict(setting))[:16]}-{setting.pair_encoding}-"
            f"{setting.max_length}-{setting.precision}.tsv"
        )
        return cls((root or cache_dir()) / "scores" / name)


class ScoreCaches:
    """Several :class:`ScoreCache` files used as one: a key held by any of them is served, and
    new scores are appended to every one (the stage's own ``scores.tsv``, from which a crashed
    run resumes, and the per-model cache shared by every run)."""

    def __init__(self, caches: Sequence[ScoreCache]) -> None:
        self.caches = list(caches)
        self.scores: Mapping[str, float] = ChainMap(*(c.scores for c in self.caches))

    def add(self, items: Mapping[str, float]) -> None:
        """Append scores durably to every cache."""
        for cache in self.caches:
            cache.add(items)


@dataclass
class RerankReport:
    """Pairs scored now vs served from the cache."""

    pairs: int = 0
    scored: int = 0
    cached: int = 0
    #: The exact head's pairs rescored in fp32 and its final margin (``exact_top`` > 0).
    rescored_fp32: int = 0
    exact_margin: float | None = None


def validate_encoding(reranker: LoadedReranker, encoding: EncodingConfig) -> tuple[str, ...]:
    """Encode a probe pair and check its segments: refuse a broken ``pair`` encoding, warn
    loudly for ``zero-types`` and ``separate`` (the seed's bug, reproduced on purpose)."""
    from inpars_core.errors import ConfigError
    from inpars_core.reranking.encoding import check_segments, encode_pairs

    probe = encode_pairs(
        reranker.tokenizer, ["probe query"], ["probe document text"], encoding, return_tensors=None
    )
    types = probe.get("token_type_ids")
    check = check_segments(
        probe["input_ids"][0],
        types[0] if types else None,
        reranker.tokenizer,
        reranker.type_vocab_size,
    )
    if check.problems and encoding.mode == "pair":
        raise ConfigError(
            f"model {reranker.name}: pair encoding is broken: {'; '.join(check.problems)}"
        )
    if check.problems:
        logger.warning(
            "model %s with '%s' encoding: %s",
            reranker.name,
            encoding.mode,
            "; ".join(check.problems),
        )
    return check.problems


def rerank(
    reranker: LoadedReranker,
    queries: Mapping[str, Query],
    run: Run,
    documents: Mapping[str, Document],
    config: RerankConfig,
    cache: ScoreCache | ScoreCaches | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Run, RerankReport]:
    """The ranking as shown after reranking: cross-encoder scores for the top ``depth``
    documents of each query in ``run``, then the rest of ``run`` in its first-stage order
    (:func:`~inpars_core.runs.with_first_stage_tail`), so R@100 of a depth-20 rerank is the
    recall of the whole list. Every (query, document) appears once; queries without text are
    left out. ``top_k(result, depth)`` is the reranked head alone.

    Pairs are keyed by :class:`ScoreSetting` (model fingerprint, encoding, max_length,
    precision, query text, document text): a pair already in ``cache`` is not scored again,
    and equal texts are scored once. ``config.exact_top`` > 0 after a faster precision: each
    query's top ``exact_top`` (and every pair near it) is rescored in fp32, so that top ranks
    as fp32 ranks it (:mod:`inpars_core.reranking.exact_head`; ``report.rescored_fp32``).
    """
    validate_encoding(reranker, config.encoding)
    if config.exact_top:
        fp32_twin(reranker)  # refuse a precision without fp32 weights before scoring anything
    setting = ScoreSetting.of(reranker, config)
    untexted = [q for q in run if q not in queries]
    if untexted:
        logger.warning(
            "%d queries of the run have no text (e.g. %s); they are left out",
            len(untexted),
            ", ".join(untexted[:3]),
        )
    first_stage = normalise_run({q: docs for q, docs in run.items() if q in queries})
    shallow = top_k(first_stage, config.depth)
    report = RerankReport()
    keys: dict[str, list[str]] = {}  # query_id -> cache key of each head document
    wanted: list[tuple[str, str, str]] = []  # (cache key, query text, document text)
    seen: set[str] = set()
    for query_id, docs in shallow.items():
        text = queries[query_id].text
        keys[query_id] = []
        for doc in docs:
            report.pairs += 1
            if doc.doc_id not in documents:
                raise InputFormatError(
                    "run",
                    f"document {doc.doc_id!r} (query {query_id!r}, top {config.depth}) "
                    "has no text in the corpus",
                    field="doc_id",
                    fix="rerank a run of this dataset's corpus",
                )
            contents = documents[doc.doc_id].contents
            key = setting.key(text, contents)
            keys[query_id].append(key)
            if cache is not None and key in cache.scores:
                report.cached += 1
            elif key not in seen:
                seen.add(key)
                wanted.append((key, text, contents))
    local = _score_wanted(reranker, wanted, config, cache, report, progress)
    stored = cache.scores if cache is not None else {}
    fast = {
        query_id: [local[k] if k in local else stored[k] for k in keys[query_id]]
        for query_id in shallow
    }
    if config.exact_top and reranker.precision != "fp32":
        fast = _exact_head_scores(
            reranker, queries, shallow, documents, config, cache, fast, report
        )
    head: Run = {
        query_id: sort_ranking(
            ScoredDoc(query_id, d.doc_id, float(s))
            for d, s in zip(docs, fast[query_id], strict=True)
        )
        for query_id, docs in shallow.items()
    }
    return with_first_stage_tail(head, first_stage, config.depth), report


def _score_wanted(
    reranker: LoadedReranker,
    wanted: Sequence[tuple[str, str, str]],
    config: RerankConfig,
    cache: ScoreCache | ScoreCaches | None,
    report: RerankReport,
    progress: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Score ``(cache key, query text, document text)`` items in chunks of
    ``config.chunk_pairs``, each chunk appended to ``cache`` as soon as it is scored."""
    local: dict[str, float] = {}
    for start in range(0, len(wanted), config.chunk_pairs):
        chunk = wanted[start : start + config.chunk_pairs]
        pairs = [(text, contents) for _, text, contents in chunk]
        scores = score_pairs(reranker, pairs, config.encoding, config.scoring)
        fresh = {key: score for (key, _, _), score in zip(chunk, scores, strict=True)}
        if cache is not None:
            cache.add(fresh)
        local.update(fresh)
        report.scored += len(chunk)
        if progress:
            progress(len(chunk))
    return local


def fp32_twin(reranker: LoadedReranker) -> LoadedReranker:
    """The same model scoring in fp32: bf16/fp16 autocast and the ONNX graphs keep the fp32
    torch weights beside them; torch int8 quantised them in place, so it has no twin."""
    from inpars_core.errors import ConfigError

    if reranker.precision == "int8":
        raise ConfigError(
            "exact_top: expected a precision that keeps the fp32 weights (bf16, fp16, onnx-fp32, "
            "onnx-int8), found int8 (torch dynamic quantisation replaces them); fix: precision "
            "onnx-int8 or bf16, or exact_top 0"
        )
    return dataclasses.replace(reranker, precision="fp32", onnx=None)


def _exact_head_scores(
    reranker: LoadedReranker,
    queries: Mapping[str, Query],
    shallow: Run,
    documents: Mapping[str, Document],
    config: RerankConfig,
    cache: ScoreCache | ScoreCaches | None,
    fast: dict[str, list[float]],
    report: RerankReport,
) -> dict[str, list[float]]:
    """``fast`` with each query's head rescored in fp32 (:func:`exact_head`; fp32 scores are
    cached under their own :class:`ScoreSetting`, so a rerun resumes them too)."""
    from inpars_core.reranking.exact_head import exact_head

    twin = fp32_twin(reranker)
    setting = ScoreSetting.of(twin, config)
    fp32_config = dataclasses.replace(
        config, scoring=dataclasses.replace(config.scoring, precision="fp32")
    )

    def rescore(positions: list[tuple[str, int]]) -> list[float]:
        items = []
        for query_id, i in positions:
            text = queries[query_id].text
            contents = documents[shallow[query_id][i].doc_id].contents
            items.append((setting.key(text, contents), text, contents))
        stored = cache.scores if cache is not None else {}
        missing = list({item[0]: item for item in items if item[0] not in stored}.values())
        local = _score_wanted(twin, missing, fp32_config, cache, RerankReport())
        return [local[key] if key in local else stored[key] for key, _, _ in items]

    merged, head = exact_head(fast, rescore, config.exact_top)
    report.rescored_fp32, report.exact_margin = head.rescored, float(head.margin)
    return merged
