"""Filters for LLM-written synthetic queries (InPars, InPars-v2, Promptagator).

Every filter is a pure function: it takes the queries (plus what it needs, computed elsewhere)
and returns one :class:`~inpars_core.records.FilterVerdict` per input query, in input order.
A verdict names the filter by its registered name, says whether the query was kept, carries the
measured number in ``value`` and, when the query was dropped, a human ``reason`` that names
query ids and numbers but never quotes query text. :func:`combine` turns several verdict lists
into the surviving queries and, for each dropped query, the verdicts that dropped it.

Text is compared through one normalisation: case-folded and split into words, a word being a
maximal run of letters and digits, so case, whitespace and punctuation never matter: "What is
p53?" and "what is  P53" are the same query, and "cell-cycle" is the two words "cell cycle".

Only the standard library is used; nothing here reads files, logs or touches the network.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from inpars_core.errors import ConfigError, UnknownNameError
from inpars_core.records import Document, FilterVerdict, SyntheticQuery

__all__ = [
    "FILTERS",
    "by_consistency",
    "by_document_copy",
    "by_duplicates",
    "by_example_copy",
    "by_length",
    "by_logprob",
    "by_reranker_score",
    "by_round_trip",
    "combine",
    "get_filter",
]

_WORD = re.compile(r"[^\W_]+")


# --------------------------------------------------------------------------- helpers


def _words(text: str) -> list[str]:
    """Case-folded words of ``text`` (maximal runs of letters and digits)."""
    return _WORD.findall(text.casefold())


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Word-set Jaccard similarity; two empty sets count as identical."""
    if not a and not b:
        return 1.0
    overlap = len(a & b)
    return overlap / (len(a) + len(b) - overlap)


def _compare(a: float, b: float) -> int:
    """-1, 0 or 1 as ``a`` is below, equal to or above ``b``."""
    return (a > b) - (a < b)


def _shown(
    value: float, limit: float, *, digits: int = 2, scale: float = 1.0, exact_limit: bool = False
) -> tuple[str, str]:
    """Format a measured value and the limit it is compared with, for a reason.

    Uses the fewest decimals (``digits`` or more) at which the two printed numbers compare the
    way the real ones do, so a reason never reads "-1.05 below -1.05"; with ``exact_limit`` (a
    threshold the user set) also enough to print the limit exactly, so 0.745 is not shown as 74%.
    """
    value, limit = value * scale, limit * scale
    for places in range(digits, digits + 7):
        shown = f"{value:.{places}f}", f"{limit:.{places}f}"
        same_order = _compare(float(shown[0]), float(shown[1])) == _compare(value, limit)
        if same_order and (not exact_limit or math.isclose(float(shown[1]), limit)):
            break
    return shown


def _similarity(jaccard: float) -> str:
    """A Jaccard for a reason: two decimals, more when that would round a near match to 1.00."""
    return "1.00" if jaccard == 1 else _shown(jaccard, 1.0)[0]


def _plural(count: int, noun: str) -> str:
    """``"1 word"``, ``"4 words"``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _config(name: str, problem: str) -> ConfigError:
    """A ConfigError that names the filter."""
    return ConfigError(f"filter {name!r}: {problem}")


def _is_number(value: object) -> bool:
    """Whether ``value`` is an int or float (bools excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_whole(name: str, param: str, value: object, *, minimum: int) -> None:
    """Raise ConfigError unless ``value`` is an int of at least ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _config(name, f"{param} must be a whole number >= {minimum}, got {value!r}")


def _check_share(name: str, param: str, value: object, *, allow_zero: bool, hint: str) -> None:
    """Raise ConfigError unless ``value`` is a number in (0, 1] (or [0, 1] with ``allow_zero``)."""
    low = "[0" if allow_zero else "(0"
    if not isinstance(value, int | float) or isinstance(value, bool):
        in_range = False
    else:  # written so that NaN is out of range
        in_range = (value >= 0 if allow_zero else value > 0) and value <= 1
    if not in_range:
        raise _config(name, f"{param} must be a number in {low}, 1] ({hint}), got {value!r}")


def _check_top(name: str, top_k: int | None, top_fraction: float | None, *, required: bool) -> None:
    """Validate the top-k / top-fraction pair: at most one, exactly one when ``required``."""
    if top_k is not None and top_fraction is not None:
        raise _config(
            name, f"give top_k or top_fraction, not both (got {top_k!r} and {top_fraction!r})"
        )
    if required and top_k is None and top_fraction is None:
        raise _config(name, "give one of top_k (e.g. 1000) or top_fraction (e.g. 0.1)")
    if top_k is not None:
        _check_whole(name, "top_k", top_k, minimum=1)
    if top_fraction is not None:
        _check_share(
            name, "top_fraction", top_fraction, allow_zero=False, hint="0.1 keeps the top 10%"
        )


def _select_top(
    queries: Sequence[SyntheticQuery],
    values: Sequence[float | None],
    *,
    name: str,
    measure: str,
    missing: str,
    top_k: int | None,
    top_fraction: float | None,
    min_value: float | None = None,
) -> list[FilterVerdict]:
    """Keep the best-valued queries: top ``top_k`` / ``top_fraction`` and at least ``min_value``.

    Queries without a value (None or NaN) are dropped with ``missing`` (or a NaN reason) and do
    not count towards the fraction. Ranking is by value descending, then query_id ascending.
    """
    verdicts: list[FilterVerdict | None] = [None] * len(queries)
    scored: list[tuple[float, str, int]] = []
    for index, (query, value) in enumerate(zip(queries, values, strict=True)):
        if value is None:
            verdicts[index] = FilterVerdict(query.query_id, name, False, missing)
        elif math.isnan(value):
            verdicts[index] = FilterVerdict(query.query_id, name, False, f"{measure} is NaN", value)
        else:
            scored.append((value, query.query_id, index))
    scored.sort(key=lambda item: (-item[0], item[1], item[2]))

    if top_k is not None:
        keep, label = min(top_k, len(scored)), f"top-{top_k}"
    elif top_fraction is not None:
        # Rounded up (a tolerance absorbs float noise such as 0.1 * 30 = 3.0000000000000004).
        keep = math.ceil(round(top_fraction * len(scored), 9))
        label = f"top-{top_fraction * 100:.4g}%"
    else:
        keep, label = len(scored), ""
    cut = scored[keep - 1][0] if keep else math.nan

    for rank, (value, query_id, index) in enumerate(scored):
        reason = ""
        if min_value is not None and value < min_value:
            shown, limit = _shown(value, min_value, exact_limit=True)
            reason = f"{measure} {shown} below min {limit}"
        elif rank >= keep and value == cut:
            reason = f"{measure} {value:.2f} ties the {label} cut; lost the tie-break on query_id"
        elif rank >= keep:
            shown, limit = _shown(value, cut)
            reason = f"{measure} {shown} below the {label} cut {limit}"
        verdicts[index] = FilterVerdict(query_id, name, not reason, reason, value)
    return [verdict for verdict in verdicts if verdict is not None]


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The word n-grams of ``words``, in order, repeats included."""
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


# --------------------------------------------------------------------------- filters


def by_logprob(
    queries: Sequence[SyntheticQuery],
    *,
    top_k: int | None = None,
    top_fraction: float | None = None,
) -> list[FilterVerdict]:
    """Keep the queries the generator was most confident in (InPars-v1).

    Ranks by ``mean_logprob`` (higher is better) and keeps the top ``top_k`` queries or the top
    ``top_fraction`` of them (InPars-v1 keeps the top 10%: ``top_fraction=0.1``); a fraction is
    rounded up, so 0.1 of 20 keeps 2 and 0.1 of 5 keeps 1. Exactly one of the two must be given.
    Equal log-probs are broken by query_id (ascending), so the result is deterministic.

    Queries whose ``mean_logprob`` is None (the backend returned no log-probs) or NaN are
    dropped and do not count towards the fraction. A high log-prob does not prove a good query:
    small generators copy a few-shot example with high confidence (see :func:`by_example_copy`).

    ``value`` is the query's mean log-prob.

    Raises:
        ConfigError: neither or both of ``top_k`` and ``top_fraction``; ``top_k`` < 1;
            ``top_fraction`` outside (0, 1].
    """
    _check_top("logprob", top_k, top_fraction, required=True)
    return _select_top(
        queries,
        [query.mean_logprob for query in queries],
        name="logprob",
        measure="mean log-prob",
        missing="backend gave no log-probs",
        top_k=top_k,
        top_fraction=top_fraction,
    )


def by_reranker_score(
    queries: Sequence[SyntheticQuery],
    scores: Mapping[str, float],
    *,
    top_k: int | None = None,
    top_fraction: float | None = None,
    min_score: float | None = None,
) -> list[FilterVerdict]:
    """Keep the queries a strong reranker finds most relevant to their source document (InPars-v2).

    ``scores`` maps query_id to a reranker's score of (query, source document), computed
    elsewhere (InPars-v2 uses monoT5-3B). Selection is as in :func:`by_logprob` (top ``top_k`` or
    top ``top_fraction``, rounded up, ties by query_id), and ``min_score`` additionally drops any
    query scoring below that absolute threshold. At most one of ``top_k`` / ``top_fraction`` may
    be given, and at least one of the three. Queries with no score (or a NaN score) are dropped
    and do not count towards the fraction.

    ``value`` is the reranker score.

    Raises:
        ConfigError: no selection given; both ``top_k`` and ``top_fraction``; ``top_k`` < 1;
            ``top_fraction`` outside (0, 1]; ``min_score`` not a finite number.
    """
    _check_top("reranker", top_k, top_fraction, required=False)
    if min_score is not None and (not _is_number(min_score) or not math.isfinite(min_score)):
        raise _config("reranker", f"min_score must be a finite number, got {min_score!r}")
    if top_k is None and top_fraction is None and min_score is None:
        raise _config("reranker", "give top_k, top_fraction or min_score")
    return _select_top(
        queries,
        [scores.get(query.query_id) for query in queries],
        name="reranker",
        measure="reranker score",
        missing="no reranker score for this query",
        top_k=top_k,
        top_fraction=top_fraction,
        min_value=min_score,
    )


def by_round_trip(
    queries: Sequence[SyntheticQuery],
    source_ranks: Mapping[str, int | None],
    *,
    k: int,
) -> list[FilterVerdict]:
    """Keep a query when BM25 finds its source document again (Promptagator round-trip).

    ``source_ranks`` maps query_id to the 1-based rank of the query's source document in the
    BM25 ranking retrieved with the query text, computed elsewhere; None or a missing query_id
    means the document was not retrieved at all. A query is kept when its rank is at most ``k``.

    ``value`` is the rank, or None when the document was not retrieved.

    Raises:
        ConfigError: ``k`` < 1.
        ValueError: a rank below 1 (ranks are 1-based).
    """
    _check_whole("round-trip", "k", k, minimum=1)
    verdicts = []
    for query in queries:
        rank = source_ranks.get(query.query_id)
        if rank is None:
            reason = f"source document not in BM25 top-{k} (not retrieved)"
            verdicts.append(FilterVerdict(query.query_id, "round-trip", False, reason))
            continue
        if rank < 1:
            raise ValueError(
                f"filter 'round-trip': query {query.query_id!r} has source rank {rank}; "
                "ranks are 1-based (the best document has rank 1)"
            )
        reason = "" if rank <= k else f"source document not in BM25 top-{k} (rank {rank})"
        verdicts.append(FilterVerdict(query.query_id, "round-trip", not reason, reason, rank))
    return verdicts


def by_consistency(
    queries: Sequence[SyntheticQuery],
    model_ranks: Mapping[str, int | None],
    *,
    k: int,
) -> list[FilterVerdict]:
    """Keep a query when a reranker trained on the queries ranks its source document in its top
    ``k`` (InPars-light's consistency checking, Boytsov et al., 2023).

    ``model_ranks`` maps query_id to the 1-based rank of the query's source document when the
    model reranks the query's first-stage (BM25) list, computed elsewhere; None or a missing
    query_id means the source document was not in that list (the model never saw it: dropped).
    A query is kept when its rank is at most ``k``.

    ``value`` is the model's rank of the source document, or None when it was not in the list.

    Raises:
        ConfigError: ``k`` < 1.
        ValueError: a rank below 1 (ranks are 1-based).
    """
    name = "consistency"
    _check_whole(name, "k", k, minimum=1)
    verdicts = []
    for query in queries:
        rank = model_ranks.get(query.query_id)
        if rank is None:
            reason = "source document not in the BM25 list the model reranked"
            verdicts.append(FilterVerdict(query.query_id, name, False, reason))
            continue
        if rank < 1:
            raise ValueError(
                f"filter 'consistency': query {query.query_id!r} has source rank {rank}; "
                "ranks are 1-based (the best document has rank 1)"
            )
        reason = (
            "" if rank <= k else f"the model ranks the source document {rank}, not in its top-{k}"
        )
        verdicts.append(FilterVerdict(query.query_id, name, not reason, reason, rank))
    return verdicts


def by_duplicates(
    queries: Sequence[SyntheticQuery],
    *,
    near_jaccard: float = 0.9,
) -> list[FilterVerdict]:
    """Drop exact and near duplicates, keeping the first occurrence in input order.

    Two queries are exact duplicates when their normalised word sequences are equal (case,
    whitespace and punctuation ignored), and near duplicates when the Jaccard similarity of their
    word sets is at least ``near_jaccard``. Queries are taken in input order and compared with
    the queries kept so far only, so every dropped query names a kept one: the exact duplicate,
    or else the near duplicate with the highest Jaccard (the earliest one on ties).

    ``value`` is 1.0 for an exact duplicate, the Jaccard for a near duplicate and None for a kept
    query. Near duplicates are found with prefix filtering (rare words first), so the cost stays
    well below comparing all pairs.

    Raises:
        ConfigError: ``near_jaccard`` outside (0, 1].
    """
    name = "duplicates"
    _check_share(
        name, "near_jaccard", near_jaccard, allow_zero=False, hint="1 keeps only word-set twins"
    )
    token_lists = [_words(query.text) for query in queries]
    frequency = Counter(word for words in token_lists for word in set(words))

    exact: dict[tuple[str, ...], str] = {}
    kept_sets: list[frozenset[str]] = []
    kept_ids: list[str] = []
    index: dict[str, list[int]] = {}  # word -> kept queries with the word in their prefix
    verdicts = []
    for query, words in zip(queries, token_lists, strict=True):
        key = tuple(words)
        if key in exact:
            reason = f"exact duplicate of {exact[key]}"
            verdicts.append(FilterVerdict(query.query_id, name, False, reason, 1.0))
            continue
        word_set = frozenset(words)
        ordered = sorted(word_set, key=lambda word: (frequency[word], word))
        # Jaccard >= t forces an overlap of at least ceil(t * |set|) words, so two such sets
        # share a word among their |set| - ceil(t * |set|) + 1 rarest ones.
        prefix = ordered[: len(ordered) - math.ceil(near_jaccard * len(ordered) - 1e-9) + 1]
        best, best_position = 0.0, -1
        for position in sorted({p for word in prefix for p in index.get(word, ())}):
            similarity = _jaccard(word_set, kept_sets[position])
            if similarity >= near_jaccard and similarity > best:
                best, best_position = similarity, position
        if best_position >= 0:
            kept_id = kept_ids[best_position]
            reason = f"near duplicate of {kept_id} (Jaccard {_similarity(best)})"
            verdicts.append(FilterVerdict(query.query_id, name, False, reason, best))
            continue
        exact[key] = query.query_id
        for word in prefix:
            index.setdefault(word, []).append(len(kept_ids))
        kept_sets.append(word_set)
        kept_ids.append(query.query_id)
        verdicts.append(FilterVerdict(query.query_id, name, True))
    return verdicts


def by_length(
    queries: Sequence[SyntheticQuery],
    *,
    min_words: int = 3,
    max_words: int = 40,
) -> list[FilterVerdict]:
    """Drop queries with fewer than ``min_words`` or more than ``max_words`` words.

    Words are counted after normalisation (runs of letters and digits), so an empty query or one
    made only of punctuation has 0 words and is always dropped. Catches truncated outputs and
    generators that ramble on instead of stopping after the query.

    ``value`` is the word count.

    Raises:
        ConfigError: ``min_words`` < 1 or ``max_words`` < ``min_words``.
    """
    name = "length"
    _check_whole(name, "min_words", min_words, minimum=1)
    _check_whole(name, "max_words", max_words, minimum=min_words)
    verdicts = []
    for query in queries:
        count = len(_words(query.text))
        if count == 0:
            reason = "empty query (no words)"
        elif count < min_words:
            reason = f"{_plural(count, 'word')}, below min {min_words}"
        elif count > max_words:
            reason = f"{_plural(count, 'word')}, above max {max_words}"
        else:
            reason = ""
        verdicts.append(FilterVerdict(query.query_id, name, not reason, reason, count))
    return verdicts


def by_document_copy(
    queries: Sequence[SyntheticQuery],
    documents: Mapping[str, Document],
    *,
    n: int = 3,
    max_overlap: float = 0.8,
) -> list[FilterVerdict]:
    """Drop queries that mostly copy their source document instead of asking about it.

    Measures the fraction of the query's word n-grams (normalised, repeats counted) that occur in
    its source document's title and text; queries with fewer than ``n`` words are measured on
    single words instead. A query is dropped when the fraction is above ``max_overlap``. Copied
    queries make training too easy: the reranker learns lexical matching, which BM25 already does.

    ``value`` is the fraction, or None for a query with no words (left to :func:`by_length`) or
    whose source document is missing from ``documents`` (such a query is dropped).

    Raises:
        ConfigError: ``n`` < 1 or ``max_overlap`` outside [0, 1].
    """
    name = "document-copy"
    _check_whole(name, "n", n, minimum=1)
    _check_share(
        name, "max_overlap", max_overlap, allow_zero=True, hint="0.8 drops queries over 80% copied"
    )
    document_ngrams: dict[tuple[str, int], set[tuple[str, ...]]] = {}
    verdicts = []
    for query in queries:
        document = documents.get(query.doc_id)
        if document is None:
            reason = f"source document {query.doc_id!r} not found"
            verdicts.append(FilterVerdict(query.query_id, name, False, reason))
            continue
        words = _words(query.text)
        if not words:
            verdicts.append(FilterVerdict(query.query_id, name, True))
            continue
        size = n if len(words) >= n else 1
        if (query.doc_id, size) not in document_ngrams:
            document_ngrams[query.doc_id, size] = set(_ngrams(_words(document.contents), size))
        grams = _ngrams(words, size)
        copied = sum(gram in document_ngrams[query.doc_id, size] for gram in grams)
        fraction = copied / len(grams)
        reason = ""
        if fraction > max_overlap:
            shown, limit = _shown(fraction, max_overlap, digits=0, scale=100, exact_limit=True)
            if n == 1:
                what = "words"
            elif size == n:
                what = f"{n}-grams"
            else:
                what = f"words (query shorter than {n} words)"
            reason = f"{shown}% of its {what} copied from the document, above max {limit}%"
        verdicts.append(FilterVerdict(query.query_id, name, not reason, reason, fraction))
    return verdicts


def by_example_copy(
    queries: Sequence[SyntheticQuery],
    examples: Sequence[str],
    *,
    near_jaccard: float = 0.8,
) -> list[FilterVerdict]:
    """Drop queries that repeat one of the prompt's few-shot example queries.

    Small generators (seen with Gemma 3 270M) often return an example query from the prompt
    verbatim for documents it has nothing to do with, and with a HIGH log-prob, because copying
    from the context is easy: :func:`by_logprob` keeps exactly these, so run this filter too.

    A query is dropped when it equals an example after normalisation (case, whitespace and
    punctuation ignored) or when the Jaccard similarity of their word sets is at least
    ``near_jaccard``. Examples are numbered from 1 in the reasons, in the order given; examples
    with no words are ignored.

    ``value`` is the highest Jaccard with any example (1.0 for an exact copy), or None when there
    are no examples.

    Raises:
        ConfigError: ``near_jaccard`` outside (0, 1].
    """
    name = "example-copy"
    _check_share(
        name, "near_jaccard", near_jaccard, allow_zero=False, hint="0.8 drops close paraphrases"
    )
    example_sets = [
        (number, words, frozenset(words))
        for number, words in enumerate(map(_words, examples), start=1)
        if words
    ]
    verdicts = []
    for query in queries:
        words = _words(query.text)
        word_set = frozenset(words)
        reason, best, best_number = "", None, 0
        for number, example_words, example_set in example_sets:
            if words == example_words:
                reason, best = f"copy of few-shot example {number}", 1.0
                break
            similarity = _jaccard(word_set, example_set)
            if best is None or similarity > best:
                best, best_number = similarity, number
        if not reason and best is not None and best >= near_jaccard:
            reason = f"near copy of few-shot example {best_number} (Jaccard {_similarity(best)})"
        verdicts.append(FilterVerdict(query.query_id, name, not reason, reason, best))
    return verdicts


# --------------------------------------------------------------------------- combining


def combine(
    queries: Sequence[SyntheticQuery],
    verdict_lists: Iterable[Sequence[FilterVerdict]],
) -> tuple[list[SyntheticQuery], dict[str, list[FilterVerdict]]]:
    """Apply several filters' verdicts at once.

    Each verdict list must hold one verdict per query, in the order of ``queries`` (as every
    filter here returns). Returns the queries kept by every filter, in input order, and for each
    dropped query_id the verdicts that dropped it, in the order of ``verdict_lists``.

    Raises:
        ValueError: a verdict list whose length or query ids do not match ``queries``.
    """
    lists = [list(verdicts) for verdicts in verdict_lists]
    for verdicts in lists:
        label = f"verdicts of filter {verdicts[0].filter!r}" if verdicts else "a verdict list"
        if len(verdicts) != len(queries):
            raise ValueError(
                f"{label}: {len(verdicts)} verdicts for {len(queries)} queries; "
                "give one verdict per query, in query order"
            )
        for position, (query, verdict) in enumerate(zip(queries, verdicts, strict=True)):
            if verdict.query_id != query.query_id:
                raise ValueError(
                    f"{label}: position {position} is query {verdict.query_id!r}, expected "
                    f"{query.query_id!r}; give one verdict per query, in query order"
                )
    kept: list[SyntheticQuery] = []
    dropped: dict[str, list[FilterVerdict]] = {}
    for position, query in enumerate(queries):
        against = [verdicts[position] for verdicts in lists if not verdicts[position].kept]
        if against:
            dropped.setdefault(query.query_id, []).extend(against)
        else:
            kept.append(query)
    return kept, dropped


#: Registered filter name -> filter function (the name each filter writes in its verdicts).
FILTERS: dict[str, Callable[..., list[FilterVerdict]]] = {
    "logprob": by_logprob,
    "reranker": by_reranker_score,
    "round-trip": by_round_trip,
    "consistency": by_consistency,
    "duplicates": by_duplicates,
    "length": by_length,
    "document-copy": by_document_copy,
    "example-copy": by_example_copy,
}


def get_filter(name: str) -> Callable[..., list[FilterVerdict]]:
    """The filter registered as ``name``; unknown names list the known ones."""
    if name not in FILTERS:
        raise UnknownNameError("filter", name, list(FILTERS))
    return FILTERS[name]
