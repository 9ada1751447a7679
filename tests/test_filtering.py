"""Synthetic-query filters: exactly which queries each keeps, with hand-computed reasons/values."""

from __future__ import annotations

import ast
import math
import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from inpars_core import filtering
from inpars_core.errors import ConfigError, UnknownNameError
from inpars_core.filtering import (
    FILTERS,
    by_consistency,
    by_document_copy,
    by_duplicates,
    by_example_copy,
    by_length,
    by_logprob,
    by_reranker_score,
    by_round_trip,
    combine,
    get_filter,
)
from inpars_core.records import Document, FilterVerdict, SyntheticQuery


def _q(
    query_id: str,
    text: str = "what does p53 do",
    *,
    doc_id: str = "d1",
    mean_logprob: float | None = None,
) -> SyntheticQuery:
    """A synthetic query with dummy provenance fields."""
    return SyntheticQuery(
        query_id=query_id,
        doc_id=doc_id,
        text=text,
        raw_output=text,
        prompt_id="inpars",
        prompt_hash="abc123",
        backend="llamacpp",
        model="gemma-3-270m",
        seed=0,
        mean_logprob=mean_logprob,
    )


def _kept(verdicts: list[FilterVerdict]) -> list[str]:
    return [v.query_id for v in verdicts if v.kept]


def _by_id(verdicts: list[FilterVerdict]) -> dict[str, FilterVerdict]:
    return {v.query_id: v for v in verdicts}


# --------------------------------------------------------------------------- log-prob


def test_logprob_top_fraction_of_20_keeps_2_in_input_order() -> None:
    queries = [_q(f"q{i:02d}", mean_logprob=-(i + 1) / 10) for i in reversed(range(20))]
    verdicts = by_logprob(queries, top_fraction=0.1)
    assert [v.query_id for v in verdicts] == [q.query_id for q in queries]
    assert {v.filter for v in verdicts} == {"logprob"}
    assert _kept(verdicts) == ["q01", "q00"]
    kept = _by_id(verdicts)["q00"]
    assert (kept.reason, kept.value) == ("", -0.1)
    dropped = _by_id(verdicts)["q05"]
    assert dropped.value == pytest.approx(-0.6)
    assert dropped.reason == "mean log-prob -0.60 below the top-10% cut -0.20"


def test_logprob_fraction_rounds_up_without_float_noise() -> None:
    five = [_q(f"q{i}", mean_logprob=-float(i)) for i in range(5)]
    assert _kept(by_logprob(five, top_fraction=0.1)) == ["q0"]
    thirty = [_q(f"q{i:02d}", mean_logprob=-float(i)) for i in range(30)]
    assert _kept(by_logprob(thirty, top_fraction=0.1)) == ["q00", "q01", "q02"]  # not 4
    assert _kept(by_logprob(five, top_fraction=1.0)) == ["q0", "q1", "q2", "q3", "q4"]


def test_logprob_ties_broken_by_query_id() -> None:
    queries = [
        _q("q_b", mean_logprob=-1.0),
        _q("q_a", mean_logprob=-1.0),
        _q("q_c", mean_logprob=-0.5),
        _q("q_d", mean_logprob=-2.0),
    ]
    verdicts = _by_id(by_logprob(queries, top_k=2))
    assert [qid for qid, v in verdicts.items() if v.kept] == ["q_a", "q_c"]
    assert verdicts["q_b"].reason == (
        "mean log-prob -1.00 ties the top-2 cut; lost the tie-break on query_id"
    )
    assert verdicts["q_d"].reason == "mean log-prob -2.00 below the top-2 cut -1.00"
    # Reversing the input does not change who wins the tie.
    assert sorted(_kept(by_logprob(queries[::-1], top_k=2))) == ["q_a", "q_c"]
    # top_k above the number of queries keeps them all.
    assert len(_kept(by_logprob(queries, top_k=10))) == 4


def test_logprob_reason_shows_enough_digits_to_tell_value_from_cut() -> None:
    queries = [_q("q1", mean_logprob=-1.051), _q("q2", mean_logprob=-1.054)]
    verdict = by_logprob(queries, top_k=1)[1]
    assert verdict.reason == "mean log-prob -1.054 below the top-1 cut -1.051"


def test_logprob_none_and_nan_dropped_and_not_counted_in_fraction() -> None:
    queries = [
        _q("q1", mean_logprob=-1.0),
        _q("q2", mean_logprob=None),
        _q("q3", mean_logprob=-2.0),
        _q("q4", mean_logprob=-3.0),
        _q("q5", mean_logprob=math.nan),
    ]
    verdicts = _by_id(by_logprob(queries, top_fraction=0.5))  # 3 scored -> ceil(1.5) = 2
    assert [qid for qid, v in verdicts.items() if v.kept] == ["q1", "q3"]
    assert verdicts["q2"].reason == "backend gave no log-probs"
    assert verdicts["q2"].value is None
    assert verdicts["q5"].reason == "mean log-prob is NaN"
    assert verdicts["q4"].reason == "mean log-prob -3.00 below the top-50% cut -2.00"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give one of top_k"),
        ({"top_k": 5, "top_fraction": 0.1}, "give top_k or top_fraction, not both"),
        ({"top_fraction": 0.0}, r"top_fraction must be a number in \(0, 1\]"),
        ({"top_fraction": 1.5}, "top_fraction must be"),
        ({"top_fraction": 10}, r"top_fraction must be .*, got 10"),
        ({"top_fraction": math.nan}, "top_fraction must be"),
        ({"top_k": 0}, "top_k must be a whole number >= 1, got 0"),
        ({"top_k": 2.5}, "top_k must be a whole number"),
        ({"top_k": True}, "top_k must be a whole number"),
    ],
)
def test_logprob_bad_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"filter 'logprob': " + message):
        by_logprob([_q("q1", mean_logprob=-1.0)], **kwargs)


# --------------------------------------------------------------------------- reranker


RERANK_QUERIES = [_q(f"q{i}") for i in range(1, 6)]
RERANK_SCORES = {"q1": 0.9, "q2": 0.2, "q3": 0.7, "q4": 0.95}  # q5 has no score


def test_reranker_top_k_and_min_score() -> None:
    verdicts = _by_id(by_reranker_score(RERANK_QUERIES, RERANK_SCORES, top_k=3, min_score=0.75))
    assert [qid for qid, v in verdicts.items() if v.kept] == ["q1", "q4"]
    assert verdicts["q3"].reason == "reranker score 0.70 below min 0.75"  # in the top 3
    assert verdicts["q2"].reason == "reranker score 0.20 below min 0.75"
    assert verdicts["q5"].reason == "no reranker score for this query"
    assert (verdicts["q5"].value, verdicts["q4"].value) == (None, 0.95)
    assert {v.filter for v in verdicts.values()} == {"reranker"}


def test_reranker_min_score_alone_and_fraction_alone() -> None:
    assert _kept(by_reranker_score(RERANK_QUERIES, RERANK_SCORES, min_score=0.5)) == [
        "q1",
        "q3",
        "q4",
    ]
    verdicts = _by_id(by_reranker_score(RERANK_QUERIES, RERANK_SCORES, top_fraction=0.5))
    assert [qid for qid, v in verdicts.items() if v.kept] == ["q1", "q4"]  # 2 of 4 scored
    assert verdicts["q3"].reason == "reranker score 0.70 below the top-50% cut 0.90"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give top_k, top_fraction or min_score"),
        ({"top_k": 1, "top_fraction": 0.5}, "give top_k or top_fraction, not both"),
        ({"min_score": math.nan}, "min_score must be a finite number"),
        ({"min_score": "0.5"}, "min_score must be a finite number"),
        ({"top_fraction": -0.1}, "top_fraction must be"),
    ],
)
def test_reranker_bad_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"filter 'reranker': " + message):
        by_reranker_score(RERANK_QUERIES, RERANK_SCORES, **kwargs)


# --------------------------------------------------------------------------- round trip


def test_round_trip_keeps_source_within_k() -> None:
    queries = [_q(f"q{i}") for i in range(1, 6)]
    ranks = {"q1": 1, "q2": 20, "q3": 21, "q4": None}  # q5 missing
    verdicts = _by_id(by_round_trip(queries, ranks, k=20))
    assert [qid for qid, v in verdicts.items() if v.kept] == ["q1", "q2"]
    assert (verdicts["q2"].value, verdicts["q2"].reason) == (20, "")
    assert verdicts["q3"].reason == "source document not in BM25 top-20 (rank 21)"
    assert verdicts["q3"].value == 21
    for missing in ("q4", "q5"):
        assert verdicts[missing].reason == "source document not in BM25 top-20 (not retrieved)"
        assert verdicts[missing].value is None
    assert {v.filter for v in verdicts.values()} == {"round-trip"}


def test_round_trip_bad_k_and_bad_rank() -> None:
    with pytest.raises(ConfigError, match="filter 'round-trip': k must be a whole number >= 1"):
        by_round_trip([_q("q1")], {"q1": 1}, k=0)
    with pytest.raises(ValueError, match="'q1' has source rank 0; ranks are 1-based"):
        by_round_trip([_q("q1")], {"q1": 0}, k=5)


# --------------------------------------------------------------------------- consistency


def test_consistency_keeps_source_within_the_models_top_k() -> None:
    queries = [_q(f"q{i}") for i in range(1, 6)]
    ranks = {"q1": 1, "q2": 3, "q3": 4, "q4": None}  # q5 missing: not in the BM25 list either
    verdicts = _by_id(by_consistency(queries, ranks, k=3))
    assert [qid for qid, v in verdicts.items() if v.kept] == ["q1", "q2"]
    assert (verdicts["q2"].value, verdicts["q2"].reason) == (3, "")
    assert verdicts["q3"].reason == "the model ranks the source document 4, not in its top-3"
    assert verdicts["q3"].value == 4
    for missing in ("q4", "q5"):
        assert verdicts[missing].reason == "source document not in the BM25 list the model reranked"
        assert verdicts[missing].value is None
    assert {v.filter for v in verdicts.values()} == {"consistency"}
    with pytest.raises(ConfigError, match="filter 'consistency': k must be a whole number >= 1"):
        by_consistency(queries, ranks, k=0)
    with pytest.raises(ValueError, match="'q1' has source rank 0; ranks are 1-based"):
        by_consistency(queries, {"q1": 0}, k=3)


# --------------------------------------------------------------------------- duplicates


def test_duplicates_exact_vs_near() -> None:
    queries = [
        _q("q1", "How does p53 regulate the cell cycle in human tumours?"),  # 10 words
        _q("q2", "how does P53 regulate the cell-cycle in  human tumours"),  # exact
        _q("q3", "how does p53 regulate the cell cycle in human breast tumours"),  # 10/11
        _q("q4", "In human tumours, how does p53 regulate the cell cycle?"),  # same set
        _q("q5", "what causes statin myopathy"),
        _q("q6", "what causes statin induced myopathy"),  # 4/5 = 0.8 to q5
        _q("q7", "how does p53 regulate the cell cycle in human breast tumours"),  # = q3, dropped
    ]
    verdicts = _by_id(by_duplicates(queries))
    assert [qid for qid, v in verdicts.items() if v.kept] == ["q1", "q5", "q6"]
    assert (verdicts["q2"].reason, verdicts["q2"].value) == ("exact duplicate of q1", 1.0)
    assert verdicts["q3"].reason == "near duplicate of q1 (Jaccard 0.91)"
    assert verdicts["q3"].value == pytest.approx(10 / 11)
    assert (verdicts["q4"].reason, verdicts["q4"].value) == (
        "near duplicate of q1 (Jaccard 1.00)",
        1,
    )
    # q7 repeats the dropped q3 exactly, so it is named after the kept q1 it nearly duplicates.
    assert verdicts["q7"].reason == "near duplicate of q1 (Jaccard 0.91)"
    assert verdicts["q1"].value is None
    assert {v.filter for v in verdicts.values()} == {"duplicates"}

    looser = _by_id(by_duplicates(queries, near_jaccard=0.8))
    assert looser["q6"].reason == "near duplicate of q5 (Jaccard 0.80)"


def test_duplicates_names_the_most_similar_kept_query_earliest_on_ties() -> None:
    queries = [
        _q("qa", "a b c d e f g h i j"),
        _q("qb", "a b c d e f g h k l"),  # 8/12 to qa: kept
        _q("qc", "a b c d e f g h i j k l"),  # 10/12 to both: the earlier qa
        _q("qd", "a b c d e f g h k l i"),  # 9/12 to qa, 10/11 to qb
    ]
    verdicts = _by_id(by_duplicates(queries, near_jaccard=0.8))
    assert _kept(list(verdicts.values())) == ["qa", "qb"]
    assert verdicts["qc"].reason == "near duplicate of qa (Jaccard 0.83)"
    assert verdicts["qd"].reason == "near duplicate of qb (Jaccard 0.91)"


def _reference_duplicates(
    queries: list[SyntheticQuery], threshold: float
) -> list[tuple[bool, str | None, float | None]]:
    """All-pairs greedy deduplication, to check the prefix-filtered implementation."""
    kept: list[tuple[str, tuple[str, ...], frozenset[str]]] = []
    out: list[tuple[bool, str | None, float | None]] = []
    for query in queries:
        words = tuple(re.findall(r"[^\W_]+", query.text.casefold()))
        exact = [qid for qid, key, _ in kept if key == words]
        if exact:
            out.append((False, exact[0], 1.0))
            continue
        best: tuple[float, str] | None = None
        for qid, _, word_set in kept:
            union = len(set(words) | word_set)
            similarity = len(set(words) & word_set) / union if union else 1.0
            if similarity >= threshold and (best is None or similarity > best[0]):
                best = (similarity, qid)
        if best is not None:
            out.append((False, best[1], best[0]))
        else:
            kept.append((query.query_id, words, frozenset(words)))
            out.append((True, None, None))
    return out


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.75, 0.9, 1.0])
def test_duplicates_prefix_filter_equals_all_pairs(threshold: float) -> None:
    rng = random.Random(7)
    vocabulary = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    queries = [
        _q(f"q{i:03d}", " ".join(rng.choices(vocabulary, k=rng.randint(1, 6)))) for i in range(300)
    ]
    actual = []
    for verdict in by_duplicates(queries, near_jaccard=threshold):
        named = re.search(r"of (\S+)", verdict.reason)
        actual.append((verdict.kept, named.group(1) if named else None, verdict.value))
    expected = _reference_duplicates(queries, threshold)
    assert actual == expected
    assert 0 < sum(kept for kept, _, _ in expected) < len(queries)


@pytest.mark.parametrize("bad", [0, 0.0, 1.01, -1, math.nan, "0.9"])
def test_duplicates_bad_threshold(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"filter 'duplicates': near_jaccard must be"):
        by_duplicates([_q("q1")], near_jaccard=bad)


# --------------------------------------------------------------------------- length


def test_length_bounds_and_empty() -> None:
    queries = [
        _q("q1", ""),
        _q("q2", " ?! "),
        _q("q3", "p53?"),
        _q("q4", "p53 in mice"),
        _q("q5", " ".join(["word"] * 41)),
        _q("q6", " ".join(["word"] * 40)),
        _q("q7", "p53 mice"),
    ]
    verdicts = _by_id(by_length(queries))
    assert [qid for qid, v in verdicts.items() if v.kept] == ["q4", "q6"]
    assert (verdicts["q1"].reason, verdicts["q1"].value) == ("empty query (no words)", 0)
    assert verdicts["q2"].reason == "empty query (no words)"
    assert (verdicts["q3"].reason, verdicts["q3"].value) == ("1 word, below min 3", 1)
    assert verdicts["q7"].reason == "2 words, below min 3"
    assert (verdicts["q5"].reason, verdicts["q5"].value) == ("41 words, above max 40", 41)
    assert verdicts["q4"].value == 3
    assert by_length([_q("q", "one two three four")], min_words=5)[0].reason == (
        "4 words, below min 5"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_words": 0}, "min_words must be a whole number >= 1, got 0"),
        ({"min_words": 5, "max_words": 4}, "max_words must be a whole number >= 5, got 4"),
        ({"max_words": 10.0}, "max_words must be a whole number"),
    ],
)
def test_length_bad_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"filter 'length': " + message):
        by_length([_q("q1")], **kwargs)


# --------------------------------------------------------------------------- document copy

DOCUMENTS = {
    "d1": Document("d1", "P53 and the cell cycle", "The protein p53 regulates the cell cycle.")
}


def test_document_copy_trigram_fractions() -> None:
    queries = [
        _q("q1", "P53 regulates the cell cycle."),  # 3/3 trigrams copied
        _q("q2", "the protein p53 regulates the cell growth"),  # 4/5: at the max, kept
        _q("q3", "does p53 regulate the cell cycle in mice"),  # 1/6
        _q("q4", "P53, cycle?"),  # 2 words: unigrams, 2/2
        _q("q5", "p53 mice"),  # unigrams, 1/2
        _q("q6", "p53 and the"),  # a title trigram
        _q("q7", "what does p53 do", doc_id="d9"),
        _q("q8", "?"),
    ]
    verdicts = _by_id(by_document_copy(queries, DOCUMENTS))
    assert [qid for qid, v in verdicts.items() if v.kept] == ["q2", "q3", "q5", "q8"]
    assert verdicts["q1"].reason == ("100% of its 3-grams copied from the document, above max 80%")
    assert verdicts["q1"].value == 1.0
    assert verdicts["q2"].value == pytest.approx(0.8)
    assert verdicts["q3"].value == pytest.approx(1 / 6)
    assert verdicts["q4"].reason == (
        "100% of its words (query shorter than 3 words) copied from the document, above max 80%"
    )
    assert verdicts["q5"].value == 0.5
    assert verdicts["q6"].value == 1.0
    assert (verdicts["q7"].reason, verdicts["q7"].value) == ("source document 'd9' not found", None)
    assert (verdicts["q8"].reason, verdicts["q8"].value) == ("", None)
    assert {v.filter for v in verdicts.values()} == {"document-copy"}


def test_document_copy_thresholds_and_unigrams() -> None:
    query = _q("q1", "p53 regulates the cell cycle today")  # 3 of 4 trigrams copied
    assert by_document_copy([query], DOCUMENTS)[0].kept
    strict = by_document_copy([query], DOCUMENTS, max_overlap=0.7)[0]
    assert strict.reason == "75% of its 3-grams copied from the document, above max 70%"
    close = by_document_copy([query], DOCUMENTS, max_overlap=0.745)[0]
    assert close.reason == "75.0% of its 3-grams copied from the document, above max 74.5%"
    unigram = by_document_copy([_q("q2", "p53 mice")], DOCUMENTS, n=1, max_overlap=0.4)[0]
    assert unigram.reason == "50% of its words copied from the document, above max 40%"
    with pytest.raises(ConfigError, match="filter 'document-copy': n must be a whole number"):
        by_document_copy([query], DOCUMENTS, n=0)
    with pytest.raises(ConfigError, match=r"max_overlap must be a number in \[0, 1\]"):
        by_document_copy([query], DOCUMENTS, max_overlap=1.2)


# --------------------------------------------------------------------------- example copy

EXAMPLES = ["What is the function of p53?", "How do statins lower cholesterol?", "  ...  "]


def test_example_copy_ignores_case_and_punctuation() -> None:
    queries = [
        _q("q1", "what is the FUNCTION of P53", mean_logprob=-0.05),  # verbatim, confident
        _q("q2", "How do statins lower cholesterol levels"),  # 5/6 to example 2
        _q("q3", "does aspirin prevent stroke"),
        _q("q4", "what is the function of tp53"),  # 5/7 to example 1
        _q("q5", "of p53, the function is what"),  # example 1's words, another order
        _q("q6", ""),  # the empty example 3 is ignored
    ]
    verdicts = _by_id(by_example_copy(queries, EXAMPLES))
    assert [qid for qid, v in verdicts.items() if v.kept] == ["q3", "q4", "q6"]
    assert (verdicts["q1"].reason, verdicts["q1"].value) == ("copy of few-shot example 1", 1.0)
    assert verdicts["q2"].reason == "near copy of few-shot example 2 (Jaccard 0.83)"
    assert verdicts["q2"].value == pytest.approx(5 / 6)
    assert verdicts["q3"].value == 0.0
    assert verdicts["q4"].value == pytest.approx(5 / 7)
    assert verdicts["q5"].reason == "near copy of few-shot example 1 (Jaccard 1.00)"
    assert verdicts["q6"].value == 0.0
    assert {v.filter for v in verdicts.values()} == {"example-copy"}
    # The log-prob filter alone would keep the copy: it is the most confident query.
    assert _kept(by_logprob(queries, top_k=1)) == ["q1"]
    assert "HIGH log-prob" in (by_example_copy.__doc__ or "")


def test_example_copy_without_examples_and_bad_threshold() -> None:
    verdict = by_example_copy([_q("q1")], [])[0]
    assert (verdict.kept, verdict.value) == (True, None)
    assert by_example_copy([_q("q4", "what is the function of tp53")], EXAMPLES, near_jaccard=0.7)[
        0
    ].reason == ("near copy of few-shot example 1 (Jaccard 0.71)")
    with pytest.raises(ConfigError, match="filter 'example-copy': near_jaccard must be"):
        by_example_copy([_q("q1")], EXAMPLES, near_jaccard=0)


# --------------------------------------------------------------------------- combine


def test_combine_lists_every_dropping_verdict() -> None:
    queries = [
        _q("q1", "What is the function of p53?"),  # example copy only
        _q("q2", "P53 function!"),  # too short and an example copy
        _q("q3", "does aspirin prevent stroke in adults"),
    ]
    length = by_length(queries)
    copies = by_example_copy(queries, ["what is the function of p53", "p53 function"])
    kept, dropped = combine(queries, [length, copies])
    assert kept == [queries[2]]
    assert list(dropped) == ["q1", "q2"]
    assert dropped["q1"] == [copies[0]]
    assert [(v.filter, v.reason) for v in dropped["q2"]] == [
        ("length", "2 words, below min 3"),
        ("example-copy", "copy of few-shot example 2"),
    ]
    assert combine(queries, []) == (queries, {})


def test_combine_rejects_mismatched_verdicts() -> None:
    queries = [_q("q1"), _q("q2")]
    verdicts = by_length(queries)
    with pytest.raises(ValueError, match="filter 'length': 1 verdicts for 2 queries"):
        combine(queries, [verdicts[:1]])
    with pytest.raises(ValueError, match="position 0 is query 'q2', expected 'q1'"):
        combine(queries, [verdicts[::-1]])


# --------------------------------------------------------------------------- registry

ARGUMENTS: dict[str, dict[str, Any]] = {
    "logprob": {"top_k": 1},
    "reranker": {"scores": {"q1": 1.0}, "top_k": 1},
    "round-trip": {"source_ranks": {"q1": 1}, "k": 1},
    "consistency": {"model_ranks": {"q1": 1}, "k": 1},
    "duplicates": {},
    "length": {},
    "document-copy": {"documents": DOCUMENTS},
    "example-copy": {"examples": EXAMPLES},
}


def test_registry_names_match_verdicts() -> None:
    assert set(FILTERS) == set(ARGUMENTS)
    queries = [_q("q1", mean_logprob=-1.0)]
    for name, arguments in ARGUMENTS.items():
        function = get_filter(name)
        assert function is FILTERS[name]
        assert function.__doc__
        assert function(queries, **arguments)[0].filter == name
        assert function([], **arguments) == []
    assert get_filter("logprob") is by_logprob


def test_unknown_filter_lists_known_ones() -> None:
    with pytest.raises(UnknownNameError) as caught:
        get_filter("bm25")
    assert str(caught.value) == (
        "unknown filter 'bm25'; known: consistency, document-copy, duplicates, example-copy, "
        "length, logprob, reranker, round-trip"
    )
    assert isinstance(caught.value, KeyError)


def test_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(filtering.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"inpars_core"}
    assert all(symbol.__doc__ for symbol in (combine, get_filter, filtering))
