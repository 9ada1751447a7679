"""The reranking stage: re-score the top ``depth`` of a run with a cross-encoder.

Scores are cached per (model fingerprint, pair encoding, max_length, precision, query text,
doc id) in an append-only file flushed after every batch: reranking the same pairs twice costs
nothing, and a killed run loses at most the batch in flight.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from inpars_core.records import Document, Query, Run, ScoredDoc
from inpars_core.reranking.encoding import EncodingConfig
from inpars_core.reranking.scoring import LoadedReranker, ScoringConfig, score_pairs
from inpars_core.runs import sort_ranking, top_k

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


class ScoreCache:
    """Append-only ``key<TAB>score`` file for one model and encoding setting."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.scores: dict[str, float] = {}
        if self.path.exists():
            raw = self.path.read_text(encoding="utf-8")
            complete = raw[: raw.rfind("\n") + 1]
            if len(complete) < len(raw):
                with open(self.path, "r+", encoding="utf-8") as handle:
                    handle.truncate(len(complete.encode("utf-8")))
            for line in complete.splitlines():
                key, _, value = line.partition("\t")
                if value:
                    self.scores[key] = float(value)

    @staticmethod
    def key(query_text: str, doc_id: str) -> str:
        """Cache key of a pair."""
        return hashlib.sha1(f"{query_text}\x00{doc_id}".encode()).hexdigest()

    def add(self, items: Mapping[str, float]) -> None:
        """Append scores durably."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write("".join(f"{k}\t{v!r}\n" for k, v in items.items()))
                handle.flush()
                os.fsync(handle.fileno())
            self.scores.update(items)

    @classmethod
    def for_model(
        cls, reranker: LoadedReranker, config: RerankConfig, root: Path | None = None
    ) -> ScoreCache:
        """The cache file of this model fingerprint and encoding/precision setting."""
        name = (
            f"{reranker.fingerprint}-{config.encoding.mode}-{config.encoding.max_length}-"
            f"{reranker.precision}.tsv"
        )
        return cls((root or cache_dir()) / "scores" / name)


@dataclass
class RerankReport:
    """Pairs scored now vs served from the cache."""

    pairs: int = 0
    scored: int = 0
    cached: int = 0


def validate_encoding(reranker: LoadedReranker, encoding: EncodingConfig) -> tuple[str, ...]:
    """Encode a probe pair and check its segments: refuse a broken ``pair`` encoding, warn
    loudly for ``separate`` (the seed's bug, reproduced on purpose)."""
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
    cache: ScoreCache | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Run, RerankReport]:
    """Cross-encoder scores for the top ``depth`` documents of each query in ``run``."""
    validate_encoding(reranker, config.encoding)
    shallow = top_k(run, config.depth)
    report = RerankReport()
    wanted: list[tuple[str, str, str]] = []  # (cache key, query text, doc id)
    seen: set[str] = set()
    for query_id, docs in shallow.items():
        if query_id not in queries:
            continue
        text = queries[query_id].text
        for doc in docs:
            report.pairs += 1
            key = ScoreCache.key(text, doc.doc_id)
            if cache is not None and key in cache.scores:
                report.cached += 1
            elif key not in seen:
                seen.add(key)
                wanted.append((key, text, doc.doc_id))
    local: dict[str, float] = {}
    for start in range(0, len(wanted), config.chunk_pairs):
        chunk = wanted[start : start + config.chunk_pairs]
        pairs = [(text, documents[doc_id].contents) for _, text, doc_id in chunk]
        scores = score_pairs(reranker, pairs, config.encoding, config.scoring)
        fresh = {key: score for (key, _, _), score in zip(chunk, scores, strict=True)}
        if cache is not None:
            cache.add(fresh)
        local.update(fresh)
        report.scored += len(chunk)
        if progress:
            progress(len(chunk))
    lookup = cache.scores if cache is not None else local
    reranked: Run = {}
    for query_id, docs in shallow.items():
        if query_id not in queries:
            continue
        text = queries[query_id].text
        key_score = (
            lookup.get(ScoreCache.key(text, d.doc_id), local.get(ScoreCache.key(text, d.doc_id)))
            for d in docs
        )
        reranked[query_id] = sort_ranking(
            ScoredDoc(query_id, d.doc_id, float(s)) for d, s in zip(docs, key_score, strict=True)
        )
    return reranked, report
