"""Mining training triples (query, positive, negative) for reranker fine-tuning.

Negatives come from a window of BM25 ranks ``[a, b]`` (1-based, inclusive) and, optionally, from
the whole corpus at random (pitfall P9: a model that never saw easy negatives promotes junk when
reranking deep lists). A positive of a query is never one of its negatives: the InPars toolkit
forgets to exclude the source document of a synthetic query; we never do (pitfall P7). An
optional teacher guard drops negatives that a zero-shot model scores within a margin of the
positive, the likely false negatives of topical queries. The guard teacher's weights fingerprint
is recorded in every triple it scored (``Triple.teacher_fingerprint``) and in the report, so
training can refuse triples whose teacher is the model being trained.

Sampling is deterministic for a seed: each query draws from its own generator seeded with
``"{seed}:{query_id}"``, so the result depends neither on the order of the inputs nor on the
process (string hashing is randomised per process; sets are always sorted before use).
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from inpars_core.artifacts import StageMeta, atomic_text, finish_meta, sidecar_meta_path
from inpars_core.errors import ConfigError, InputFormatError
from inpars_core.records import Run, SyntheticQuery, Triple

__all__ = [
    "MiningReport",
    "NegativesConfig",
    "Teacher",
    "mine_triples",
    "positives_from_qrels",
    "positives_from_synthetic",
    "read_triples",
    "write_triples",
]

logger = logging.getLogger(__name__)

#: Scores (query_id, doc_id) pairs, one float per pair, in order (e.g. a zero-shot reranker).
#: A teacher object may carry its weights fingerprint as a ``fingerprint`` attribute.
Teacher = Callable[[Sequence[tuple[str, str]]], Sequence[float]]

#: The command that builds triples files.
TRIPLES_COMMAND = "inpars triples"

SOURCE_BM25 = "bm25"
SOURCE_RANDOM = "random"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class NegativesConfig:
    """How many negatives to mine per positive, and from where.

    Attributes:
        negatives: negatives per positive drawn from the BM25 window.
        window: 1-based inclusive range ``(a, b)`` of BM25 ranks to draw them from.
        random_negatives: extra negatives per positive drawn uniformly from the whole corpus.
        balanced: exactly one negative per positive (one triple per positive), overriding
            ``negatives`` and ``random_negatives``.
        seed: seed of the sampling.
        false_negative_margin: with a teacher, drop a negative whose teacher score exceeds the
            positive's teacher score minus this margin; None disables the guard.
    """

    negatives: int = 5
    window: tuple[int, int] = (1, 100)
    random_negatives: int = 0
    balanced: bool = False
    seed: int = 0
    false_negative_margin: float | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.negatives) or self.negatives < 1:
            raise ConfigError(f"negatives must be an integer >= 1, got {self.negatives!r}")
        window = self.window
        if (
            not isinstance(window, tuple | list)
            or len(window) != 2
            or not all(_is_int(v) for v in window)
        ):
            raise ConfigError(f"window must be two integers (a, b), got {window!r}")
        a, b = window
        if not 1 <= a <= b:
            raise ConfigError(f"window must satisfy 1 <= a <= b, got ({a}, {b})")
        object.__setattr__(self, "window", (a, b))
        if not _is_int(self.random_negatives) or self.random_negatives < 0:
            raise ConfigError(
                f"random_negatives must be an integer >= 0, got {self.random_negatives!r}"
            )
        if not isinstance(self.balanced, bool):
            raise ConfigError(f"balanced must be true or false, got {self.balanced!r}")
        if not _is_int(self.seed):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        margin = self.false_negative_margin
        if margin is not None and (not _is_number(margin) or not math.isfinite(margin)):
            raise ConfigError(f"false_negative_margin must be a finite number, got {margin!r}")

    @property
    def bm25_per_positive(self) -> int:
        """Negatives drawn from the BM25 window per positive (1 when balanced)."""
        return 1 if self.balanced else self.negatives

    @property
    def random_per_positive(self) -> int:
        """Negatives drawn from the corpus per positive (0 when balanced)."""
        return 0 if self.balanced else self.random_negatives


@dataclass(frozen=True)
class MiningReport:
    """What one mining run did.

    Attributes:
        queries: queries that had text and at least one positive.
        positives: (query, positive) pairs mined for.
        triples: triples returned.
        shortfall: negatives asked for but not found (window or corpus too small).
        queries_without_run: queries absent from the run (given random negatives only).
        dropped_false_negatives: negatives the teacher guard dropped.
        teacher_fingerprint: weights fingerprint of the guard teacher (None without a guard, or
            when the teacher did not say).
    """

    queries: int
    positives: int
    triples: int
    shortfall: int
    queries_without_run: int
    dropped_false_negatives: int
    teacher_fingerprint: str | None = None


def positives_from_qrels(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, set[str]]:
    """Positive documents per query: those judged with relevance > 0 (queries without any are
    left out)."""
    positives: dict[str, set[str]] = {}
    for query_id, judged in qrels.items():
        relevant = {doc_id for doc_id, relevance in judged.items() if relevance > 0}
        if relevant:
            positives[query_id] = relevant
    return positives


def positives_from_synthetic(
    queries: Sequence[SyntheticQuery],
) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Texts and positives of synthetic queries: each query's positive is its source document.

    Returns ``({query_id: text}, {query_id: {doc_id}})``.
    """
    texts: dict[str, str] = {}
    positives: dict[str, set[str]] = {}
    for query in queries:
        texts[query.query_id] = query.text
        positives.setdefault(query.query_id, set()).add(query.doc_id)
    return texts, positives


def _sample_random(
    rng: random.Random, corpus: Sequence[str], members: Set[str], exclude: Set[str], k: int
) -> list[str]:
    """Up to ``k`` distinct ids of ``corpus`` (deduplicated; ``members`` is its set) not in
    ``exclude``, uniformly at random.

    Rejection sampling when most of the corpus is eligible (no copy of a large corpus per
    positive); an explicit candidate list otherwise.
    """
    if k <= 0:
        return []
    eligible = len(corpus) - sum(1 for doc_id in exclude if doc_id in members)
    if eligible <= 0:
        return []
    if eligible >= len(corpus) / 2 and k <= eligible / 2:
        chosen: list[str] = []
        seen = set(exclude)
        while len(chosen) < k:
            doc_id = corpus[rng.randrange(len(corpus))]
            if doc_id not in seen:
                seen.add(doc_id)
                chosen.append(doc_id)
        return chosen
    candidates = [doc_id for doc_id in corpus if doc_id not in exclude]
    return rng.sample(candidates, min(k, len(candidates)))


@dataclass
class _Draft:
    """A negative chosen for one (query, positive), before the teacher guard."""

    query_id: str
    pos_doc_id: str
    neg_doc_id: str
    neg_source: str
    neg_rank: int | None
    window: tuple[int, int] | None


def mine_triples(
    queries: Mapping[str, str],
    positives: Mapping[str, Set[str]],
    run: Run,
    corpus_ids: Sequence[str],
    config: NegativesConfig,
    teacher: Teacher | None = None,
    teacher_fingerprint: str | None = None,
) -> tuple[list[Triple], MiningReport]:
    """Mine training triples: for each query and each of its positives, negatives from the
    BM25 window and, optionally, random ones from the corpus.

    Args:
        queries: query_id -> query text.
        positives: query_id -> positive doc ids (a synthetic query's source document, or the
            relevance > 0 documents of train qrels). No positive of a query is ever one of its
            negatives.
        run: the BM25 run, best first; a document's rank is its 1-based position in the list.
        corpus_ids: every document id, for random negatives.
        config: how many negatives, from which window, with which seed.
        teacher: optional scorer of (query_id, doc_id) pairs for the false-negative guard,
            used together with ``config.false_negative_margin``.
        teacher_fingerprint: the guard teacher's weights fingerprint (default: the teacher's
            ``fingerprint`` attribute), recorded in every guarded triple and in the report;
            training refuses triples whose teacher is the model being trained
            (:func:`inpars_core.training.teachers.check_triples_teacher`).

    For each positive, ``bm25_per_positive`` distinct documents are sampled from the ranks in
    the window (``neg_source="bm25"``, ``neg_rank`` and ``window`` recorded), then
    ``random_per_positive`` distinct documents from the corpus, never already chosen
    (``neg_source="random"``, ``neg_rank`` their rank in the run or None). A query absent from
    the run gets its whole quota (both counts) at random. A window or corpus holding fewer
    candidates than asked gives what it has; the missing ones are counted as shortfall.
    Queries with positives but no text, or text but no positives, are skipped with a warning.

    Returns:
        The triples ordered by query id then positive doc id, and a :class:`MiningReport`.
    """
    guard = teacher is not None and config.false_negative_margin is not None
    if (teacher is None) != (config.false_negative_margin is None):
        logger.warning(
            "the false-negative guard needs both a teacher and false_negative_margin; "
            "it is off (teacher %s, margin %s)",
            "given" if teacher is not None else "missing",
            config.false_negative_margin,
        )
    fingerprint: str | None = None
    if guard:
        fingerprint = teacher_fingerprint or getattr(teacher, "fingerprint", None)
        if not fingerprint:
            logger.warning(
                "the false-negative guard's teacher has no fingerprint: training cannot check "
                "that it is not the model being trained; pass teacher_fingerprint"
            )
    a, b = config.window
    corpus = list(dict.fromkeys(corpus_ids))
    members = set(corpus)
    no_text = sorted(q for q, docs in positives.items() if docs and q not in queries)
    if no_text:
        logger.warning(
            "%d queries have positives but no text and are skipped (first: %s)",
            len(no_text),
            no_text[0],
        )
    query_ids = sorted(q for q, docs in positives.items() if docs and q in queries)
    skipped_no_positive = sum(1 for q in queries if not positives.get(q))
    if skipped_no_positive:
        logger.warning("%d queries have no positive and are skipped", skipped_no_positive)

    drafts: list[_Draft] = []
    shortfall = 0
    without_run = 0
    pairs = 0
    for query_id in query_ids:
        rng = random.Random(f"{config.seed}:{query_id}")
        own_positives = set(positives[query_id])
        ranking = run.get(query_id)
        rank_of: dict[str, int] = {}
        for rank, scored in enumerate(ranking or (), start=1):
            rank_of.setdefault(scored.doc_id, rank)
        window_candidates = [
            doc_id
            for doc_id, rank in rank_of.items()
            if a <= rank <= b and doc_id not in own_positives
        ]
        if ranking:
            bm25_k, random_k = config.bm25_per_positive, config.random_per_positive
        else:
            without_run += 1
            bm25_k, random_k = 0, config.bm25_per_positive + config.random_per_positive
        for pos_doc_id in sorted(own_positives):
            pairs += 1
            chosen = rng.sample(window_candidates, min(bm25_k, len(window_candidates)))
            drafts.extend(
                _Draft(query_id, pos_doc_id, doc_id, SOURCE_BM25, rank_of[doc_id], (a, b))
                for doc_id in chosen
            )
            extra = _sample_random(rng, corpus, members, own_positives | set(chosen), random_k)
            drafts.extend(
                _Draft(query_id, pos_doc_id, doc_id, SOURCE_RANDOM, rank_of.get(doc_id), None)
                for doc_id in extra
            )
            shortfall += (bm25_k - len(chosen)) + (random_k - len(extra))

    scores: dict[tuple[str, str], float] = {}
    dropped = 0
    if teacher is not None and config.false_negative_margin is not None and drafts:
        scores = _teacher_scores(teacher, drafts)
        margin = config.false_negative_margin
        kept = [
            d
            for d in drafts
            if scores[(d.query_id, d.neg_doc_id)] <= scores[(d.query_id, d.pos_doc_id)] - margin
        ]
        dropped = len(drafts) - len(kept)
        drafts = kept

    triples = [
        Triple(
            query_id=d.query_id,
            query_text=queries[d.query_id],
            pos_doc_id=d.pos_doc_id,
            neg_doc_id=d.neg_doc_id,
            neg_source=d.neg_source,
            neg_rank=d.neg_rank,
            window=d.window,
            teacher_pos_score=scores[(d.query_id, d.pos_doc_id)] if guard else None,
            teacher_neg_score=scores[(d.query_id, d.neg_doc_id)] if guard else None,
            teacher_fingerprint=fingerprint,
        )
        for d in drafts
    ]
    report = MiningReport(
        queries=len(query_ids),
        positives=pairs,
        triples=len(triples),
        shortfall=shortfall,
        queries_without_run=without_run,
        dropped_false_negatives=dropped,
        teacher_fingerprint=fingerprint,
    )
    if shortfall:
        logger.warning(
            "%d negatives short: the window %s or the corpus held fewer candidates than asked",
            shortfall,
            config.window,
        )
    if without_run:
        logger.warning(
            "%d queries are absent from the run and got random negatives only", without_run
        )
    logger.info(
        "mined %d triples for %d positives of %d queries (%d false negatives dropped)",
        report.triples,
        report.positives,
        report.queries,
        report.dropped_false_negatives,
    )
    return triples, report


def _teacher_scores(teacher: Teacher, drafts: Sequence[_Draft]) -> dict[tuple[str, str], float]:
    """Score every distinct (query, positive) and (query, negative) pair once, in sorted order."""
    wanted: set[tuple[str, str]] = set()
    for d in drafts:
        wanted.add((d.query_id, d.pos_doc_id))
        wanted.add((d.query_id, d.neg_doc_id))
    pairs = sorted(wanted)
    values = list(teacher(pairs))
    if len(values) != len(pairs):
        raise ValueError(f"the teacher returned {len(values)} scores for {len(pairs)} pairs")
    return {pair: float(value) for pair, value in zip(pairs, values, strict=True)}


def write_triples(
    triples: Sequence[Triple],
    path: Path,
    *,
    config: NegativesConfig | None = None,
    report: MiningReport | None = None,
    sidecar: bool = True,
) -> None:
    """Write triples atomically as JSONL (one :func:`dataclasses.asdict` per line, the window as
    a 2-list), then (``sidecar``) a ``<file>.meta.json`` with the config and counts when given
    (a triples artifact folder has its own ``meta.json`` instead: :mod:`inpars_core.stages`)."""
    path = Path(path)
    meta = StageMeta(stage="negatives", config=asdict(config) if config else {})
    with atomic_text(path) as handle:
        for triple in triples:
            row = asdict(triple)
            if row["window"] is not None:
                row["window"] = list(row["window"])
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    if not sidecar:
        return
    if report is not None:
        counts = asdict(report)
        fingerprint = counts.pop("teacher_fingerprint")
        meta.counts.update(counts)
        if fingerprint:
            meta.inputs["teacher_fingerprint"] = fingerprint
    meta.counts["triples"] = len(triples)  # what the file holds
    finish_meta(meta, sidecar_meta_path(path))
    logger.debug("wrote %d triples to %s", len(triples), path)


_REQUIRED_STR = ("query_id", "query_text", "pos_doc_id", "neg_doc_id", "neg_source")
_FIELDS = tuple(f.name for f in fields(Triple))
_FIX = f"build the file with '{TRIPLES_COMMAND}' (or write_triples), or repair the line"


def _triple_from_row(row: Any, path: Path, number: int) -> Triple:
    """Validate one parsed line and build its :class:`Triple`."""

    def fail(problem: str, field: str | None = None) -> InputFormatError:
        return InputFormatError(path, problem, line=number, field=field, fix=_FIX)

    if not isinstance(row, dict):
        raise fail(f"expected a JSON object, found {type(row).__name__}")
    for name in _REQUIRED_STR:
        if name not in row:
            raise fail("missing", name)
        if not isinstance(row[name], str):
            raise fail(f"expected a string, found {json.dumps(row[name])}", name)
    unknown = sorted(set(row) - set(_FIELDS))
    if unknown:
        raise fail(f"unknown field (known: {', '.join(_FIELDS)})", unknown[0])
    neg_rank = row.get("neg_rank")
    if neg_rank is not None and (not _is_int(neg_rank) or neg_rank < 1):
        raise fail(f"expected a rank >= 1 or null, found {json.dumps(neg_rank)}", "neg_rank")
    window = row.get("window")
    if window is not None:
        if not isinstance(window, list) or len(window) != 2 or not all(_is_int(v) for v in window):
            raise fail(
                f"expected [a, b] (two integers) or null, found {json.dumps(window)}", "window"
            )
        window = (window[0], window[1])
    for name in ("teacher_pos_score", "teacher_neg_score"):
        value = row.get(name)
        if value is not None and not _is_number(value):
            raise fail(f"expected a number or null, found {json.dumps(value)}", name)
    fingerprint = row.get("teacher_fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise fail(
            f"expected a string or null, found {json.dumps(fingerprint)}", "teacher_fingerprint"
        )
    return Triple(
        query_id=row["query_id"],
        query_text=row["query_text"],
        pos_doc_id=row["pos_doc_id"],
        neg_doc_id=row["neg_doc_id"],
        neg_source=row["neg_source"],
        neg_rank=neg_rank,
        window=window,
        teacher_pos_score=row.get("teacher_pos_score"),
        teacher_neg_score=row.get("teacher_neg_score"),
        teacher_fingerprint=fingerprint,
    )


def read_triples(path: Path) -> list[Triple]:
    """Read a triples JSONL written by :func:`write_triples`, validating every line.

    Raises:
        InputFormatError: naming the file, the line and the field, for a missing file, bad
            JSON, a missing or unknown field, or a value of the wrong type.
    """
    from inpars_core.textio import read_lines

    path = Path(path)
    triples: list[Triple] = []
    fix = f"build the triples first with '{TRIPLES_COMMAND}'"
    for number, line in read_lines(path, "a triples", fix):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFormatError(
                path, f"not valid JSON ({exc.msg})", line=number, fix=_FIX
            ) from None
        triples.append(_triple_from_row(row, path, number))
    return triples
