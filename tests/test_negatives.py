"""Negative mining: window sampling, positives never negative, random negatives, determinism,
shortfall, the false-negative guard, and the triples file format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inpars_core.errors import ConfigError, InputFormatError
from inpars_core.negatives import (
    MiningReport,
    NegativesConfig,
    mine_triples,
    positives_from_qrels,
    positives_from_synthetic,
    read_triples,
    write_triples,
)
from inpars_core.records import Run, ScoredDoc, SyntheticQuery, Triple

CORPUS = [f"d{i:02d}" for i in range(1, 41)]  # d01 … d40


def _run(query_id: str, doc_ids: list[str]) -> list[ScoredDoc]:
    """A ranking of ``doc_ids`` in the given order (scores descending)."""
    return [ScoredDoc(query_id, d, float(100 - i)) for i, d in enumerate(doc_ids)]


def _rank_map(run: Run, query_id: str) -> dict[str, int]:
    return {s.doc_id: r for r, s in enumerate(run[query_id], start=1)}


@pytest.fixture
def inputs() -> tuple[dict[str, str], dict[str, set[str]], Run]:
    """Two queries; q1's positive d03 sits at rank 3, inside every window used below."""
    queries = {"q1": "aspirin heart attack", "q2": "statins cholesterol"}
    positives = {"q1": {"d03"}, "q2": {"d20", "d21"}}
    run: Run = {
        "q1": _run("q1", CORPUS[:20]),  # d01 … d20 at ranks 1 … 20
        "q2": _run("q2", list(reversed(CORPUS))[:20]),  # d40 … d21 at ranks 1 … 20
    }
    return queries, positives, run


def test_window_sampling_stays_in_window_and_records_ranks(inputs) -> None:
    queries, positives, run = inputs
    config = NegativesConfig(negatives=4, window=(2, 8), seed=3)
    triples, report = mine_triples(queries, positives, run, CORPUS, config)
    assert len(triples) == 3 * 4  # three (query, positive) pairs, four negatives each
    for t in triples:
        assert t.neg_source == "bm25"
        assert t.window == (2, 8)
        assert 2 <= t.neg_rank <= 8
        assert _rank_map(run, t.query_id)[t.neg_doc_id] == t.neg_rank
        assert t.query_text == queries[t.query_id]
        assert t.teacher_pos_score is None and t.teacher_neg_score is None
    for query_id, pos in [("q1", "d03"), ("q2", "d20"), ("q2", "d21")]:
        negs = [t.neg_doc_id for t in triples if (t.query_id, t.pos_doc_id) == (query_id, pos)]
        assert len(negs) == len(set(negs)) == 4
    assert report == MiningReport(
        queries=2,
        positives=3,
        triples=12,
        shortfall=0,
        queries_without_run=0,
        dropped_false_negatives=0,
    )


def test_output_is_ordered_by_query_then_positive(inputs) -> None:
    queries, positives, run = inputs
    triples, _ = mine_triples(queries, positives, run, CORPUS, NegativesConfig(negatives=2))
    keys = [(t.query_id, t.pos_doc_id) for t in triples]
    assert keys == sorted(keys)


@pytest.mark.parametrize("seed", range(60))
def test_positives_are_never_negatives(seed: int) -> None:
    # The positives d02 and d04 sit inside the window, and the window holds little else, so a
    # sampler that forgot to exclude them would pick them often.
    queries = {"q": "query"}
    positives = {"q": {"d02", "d04"}}
    run = {"q": _run("q", ["d01", "d02", "d03", "d04", "d05", "d06"])}
    config = NegativesConfig(negatives=3, window=(1, 5), random_negatives=30, seed=seed)
    triples, report = mine_triples(queries, positives, run, CORPUS, config)
    assert triples
    assert all(t.neg_doc_id not in positives["q"] for t in triples)
    bm25 = [t for t in triples if t.neg_source == "bm25"]
    assert {t.neg_doc_id for t in bm25} == {"d01", "d03", "d05"}  # all that the window allows
    assert report.shortfall == 0


def test_source_document_of_a_synthetic_query_is_not_its_negative() -> None:
    synthetic = [
        SyntheticQuery("syn-d01-s0", "d01", "first query", "", "p", "h", "b", "m", 0),
        SyntheticQuery("syn-d05-s0", "d05", "second query", "", "p", "h", "b", "m", 0),
    ]
    texts, positives = positives_from_synthetic(synthetic)
    assert texts == {"syn-d01-s0": "first query", "syn-d05-s0": "second query"}
    assert positives == {"syn-d01-s0": {"d01"}, "syn-d05-s0": {"d05"}}
    run = {q: _run(q, CORPUS[:5]) for q in texts}  # each source document ranks in the window
    config = NegativesConfig(negatives=10, window=(1, 5))
    triples, report = mine_triples(texts, positives, run, CORPUS, config)
    for t in triples:
        assert t.neg_doc_id != t.pos_doc_id
    assert len(triples) == 2 * 4  # five in the window minus the source document
    assert report.shortfall == 2 * 6


def test_positives_from_qrels_keeps_relevance_above_zero() -> None:
    qrels = {"q1": {"d1": 1, "d2": 0, "d3": 2}, "q2": {"d4": 0}}
    assert positives_from_qrels(qrels) == {"q1": {"d1", "d3"}}


def test_balanced_gives_one_negative_per_positive(inputs) -> None:
    queries, positives, run = inputs
    config = NegativesConfig(negatives=5, random_negatives=3, balanced=True)
    triples, report = mine_triples(queries, positives, run, CORPUS, config)
    pairs = [(t.query_id, t.pos_doc_id) for t in triples]
    assert pairs == [("q1", "d03"), ("q2", "d20"), ("q2", "d21")]
    assert all(t.neg_source == "bm25" for t in triples)
    assert report.triples == report.positives == 3


def test_random_negatives_are_distinct_not_positive_and_marked(inputs) -> None:
    queries, positives, run = inputs
    config = NegativesConfig(negatives=3, window=(1, 10), random_negatives=6, seed=7)
    triples, report = mine_triples(queries, positives, run, CORPUS, config)
    for query_id, pos in [("q1", "d03"), ("q2", "d20"), ("q2", "d21")]:
        mine = [t for t in triples if (t.query_id, t.pos_doc_id) == (query_id, pos)]
        assert [t.neg_source for t in mine] == ["bm25"] * 3 + ["random"] * 6
        negs = [t.neg_doc_id for t in mine]
        assert len(set(negs)) == 9
        assert not set(negs) & positives[query_id]
        ranks = _rank_map(run, query_id)
        for t in mine:
            assert t.neg_doc_id in CORPUS
            if t.neg_source == "random":
                assert t.window is None
                assert t.neg_rank == ranks.get(t.neg_doc_id)
    assert report.shortfall == 0


def test_random_negatives_from_a_tiny_corpus_take_all_and_count_the_rest() -> None:
    queries = {"q": "query"}
    run = {"q": _run("q", ["a", "b"])}
    config = NegativesConfig(negatives=1, window=(1, 1), random_negatives=5)
    triples, report = mine_triples(queries, {"q": {"b"}}, run, ["a", "b", "c", "d"], config)
    assert [t.neg_doc_id for t in triples if t.neg_source == "bm25"] == ["a"]
    assert sorted(t.neg_doc_id for t in triples if t.neg_source == "random") == ["c", "d"]
    assert report.shortfall == 3


def test_same_seed_same_triples_other_seed_different(inputs) -> None:
    queries, positives, run = inputs

    def mine(seed: int) -> list[Triple]:
        config = NegativesConfig(negatives=3, window=(1, 20), random_negatives=3, seed=seed)
        return mine_triples(queries, positives, run, CORPUS, config)[0]

    assert mine(1) == mine(1)
    assert mine(1) != mine(2)
    # The order of the input mappings does not matter either.
    reordered = dict(reversed(list(queries.items())))
    config = NegativesConfig(negatives=3, window=(1, 20), random_negatives=3, seed=1)
    assert mine_triples(reordered, positives, run, CORPUS, config)[0] == mine(1)


def test_window_shortfall_is_counted(inputs) -> None:
    queries, positives, run = inputs
    config = NegativesConfig(negatives=5, window=(18, 30))  # ranks 18 … 20 exist
    triples, report = mine_triples(queries, positives, run, CORPUS, config)
    # q1: d18, d19, d20 (3 of 5); q2: ranks 18 … 20 are d23, d22, d21, and d21 is a positive,
    # so 2 of 5 for each of its two positives.
    assert len(triples) == 3 + 2 + 2
    assert report.shortfall == 2 + 3 + 3
    assert all(18 <= t.neg_rank <= 20 for t in triples)


def test_query_without_run_gets_random_negatives_only(inputs) -> None:
    queries, positives, run = inputs
    queries = {**queries, "q3": "no run for me"}
    positives = {**positives, "q3": {"d10"}}
    config = NegativesConfig(negatives=2, random_negatives=1, seed=5)
    triples, report = mine_triples(queries, positives, run, CORPUS, config)
    mine = [t for t in triples if t.query_id == "q3"]
    assert len(mine) == 3  # its whole quota, drawn at random
    assert all(t.neg_source == "random" and t.neg_rank is None for t in mine)
    assert len({t.neg_doc_id for t in mine}) == 3
    assert "d10" not in {t.neg_doc_id for t in mine}
    assert report.queries_without_run == 1
    assert report.shortfall == 0


def test_queries_without_text_or_positive_are_skipped(inputs) -> None:
    queries, positives, run = inputs
    triples, report = mine_triples(
        {**queries, "q9": "no positive"},
        {**positives, "q8": {"d01"}},
        run,
        CORPUS,
        NegativesConfig(negatives=1),
    )
    assert {t.query_id for t in triples} == {"q1", "q2"}
    assert report.queries == 2


def test_false_negative_guard_drops_negatives_close_to_the_positive() -> None:
    queries = {"q": "query"}
    positives = {"q": {"p"}}
    run = {"q": _run("q", ["n1", "n2", "n3", "n4", "p"])}
    scores = {"p": 5.0, "n1": 6.0, "n2": 4.5, "n3": 3.9, "n4": -2.0}
    calls: list[list[tuple[str, str]]] = []

    def teacher(pairs):
        calls.append(list(pairs))
        return [scores[doc_id] for _, doc_id in pairs]

    config = NegativesConfig(negatives=4, window=(1, 4), false_negative_margin=1.0)
    triples, report = mine_triples(queries, positives, run, ["p", "n1", "n2"], config, teacher)
    # Kept when score <= 5.0 - 1.0: n3 (3.9) and n4 (-2.0); n1 and n2 are dropped.
    assert sorted(t.neg_doc_id for t in triples) == ["n3", "n4"]
    assert report.dropped_false_negatives == 2
    assert report.triples == 2
    for t in triples:
        assert t.teacher_pos_score == 5.0
        assert t.teacher_neg_score == scores[t.neg_doc_id]
    assert len(calls) == 1  # one batch, every pair scored once
    assert sorted(calls[0]) == [("q", d) for d in ["n1", "n2", "n3", "n4", "p"]]


def test_guard_is_off_without_a_margin() -> None:
    run = {"q": _run("q", ["n1", "p"])}
    triples, report = mine_triples(
        {"q": "query"},
        {"q": {"p"}},
        run,
        ["n1", "p"],
        NegativesConfig(negatives=1),
        teacher=lambda pairs: [100.0 for _ in pairs],
    )
    assert [t.neg_doc_id for t in triples] == ["n1"]
    assert triples[0].teacher_neg_score is None
    assert report.dropped_false_negatives == 0


def test_write_read_round_trip(tmp_path: Path, inputs) -> None:
    queries, positives, run = inputs
    config = NegativesConfig(negatives=2, window=(1, 10), random_negatives=2, seed=4)
    triples, report = mine_triples(queries, positives, run, CORPUS, config)
    triples.append(Triple("q1", "q", "d03", "d09", "bm25", 9, (1, 10), 1.5, -0.25))
    path = tmp_path / "triples" / "triples.jsonl"
    write_triples(triples, path, config=config, report=report)
    assert read_triples(path) == triples
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first["window"] == [1, 10]
    meta = json.loads((tmp_path / "triples" / "triples.jsonl.meta.json").read_text())
    assert meta["stage"] == "negatives"
    assert meta["config"]["window"] == [1, 10]
    assert meta["counts"]["triples"] == len(triples)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers


GOOD = {
    "query_id": "q1",
    "query_text": "text",
    "pos_doc_id": "d1",
    "neg_doc_id": "d2",
    "neg_source": "bm25",
    "neg_rank": 3,
    "window": [1, 100],
    "teacher_pos_score": None,
    "teacher_neg_score": None,
}


@pytest.mark.parametrize(
    ("bad_line", "field", "problem"),
    [
        ("{not json", None, "not valid JSON"),
        ("[1, 2]", None, "expected a JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "neg_doc_id"}), "neg_doc_id", "missing"),
        (json.dumps({**GOOD, "query_id": 7}), "query_id", "expected a string"),
        (json.dumps({**GOOD, "neg_rank": "3"}), "neg_rank", "expected a rank"),
        (json.dumps({**GOOD, "neg_rank": True}), "neg_rank", "expected a rank"),
        (json.dumps({**GOOD, "window": [1]}), "window", "expected [a, b]"),
        (json.dumps({**GOOD, "teacher_neg_score": "high"}), "teacher_neg_score", "a number"),
        (json.dumps({**GOOD, "neg_rnk": 3}), "neg_rnk", "unknown field"),
    ],
)
def test_read_errors_name_line_and_field(
    tmp_path: Path, bad_line: str, field: str | None, problem: str
) -> None:
    path = tmp_path / "triples.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + bad_line + "\n", encoding="utf-8")
    with pytest.raises(InputFormatError) as caught:
        read_triples(path)
    error = caught.value
    assert error.path == str(path)
    assert error.line == 3
    assert error.field == field
    assert problem in error.problem
    assert error.fix
    assert f"{path} line 3" in str(error)
    if field:
        assert f"field '{field}'" in str(error)


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="not found"):
        read_triples(tmp_path / "absent.jsonl")


def test_read_restores_window_as_tuple(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    rows = [GOOD, {**GOOD, "neg_source": "random", "neg_rank": None, "window": None}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    first, second = read_triples(path)
    assert first.window == (1, 100)
    assert second.window is None and second.neg_rank is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"negatives": 0}, "negatives"),
        ({"window": (0, 10)}, "window"),
        ({"window": (10, 5)}, "window"),
        ({"window": (1, 2, 3)}, "window"),
        ({"random_negatives": -1}, "random_negatives"),
        ({"false_negative_margin": float("nan")}, "false_negative_margin"),
    ],
)
def test_bad_config_raises_config_error_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        NegativesConfig(**kwargs)


def test_config_accepts_a_window_list_and_stores_a_tuple() -> None:
    assert NegativesConfig(window=[5, 50]).window == (5, 50)  # type: ignore[arg-type]


def test_guard_records_the_teacher_fingerprint_in_triples_report_and_meta(tmp_path: Path) -> None:
    run = {"q": _run("q", ["n1", "n2", "p"])}
    scores = {"p": 5.0, "n1": 1.0, "n2": 0.0}

    def teacher(pairs):
        return [scores[doc_id] for _, doc_id in pairs]

    config = NegativesConfig(negatives=2, window=(1, 3), false_negative_margin=0.5)
    triples, report = mine_triples(
        {"q": "query"}, {"q": {"p"}}, run, ["p", "n1", "n2"], config, teacher, "abc123"
    )
    assert [t.teacher_fingerprint for t in triples] == ["abc123", "abc123"]
    assert report.teacher_fingerprint == "abc123"
    path = tmp_path / "triples.jsonl"
    write_triples(triples, path, config=config, report=report)
    assert read_triples(path) == triples
    meta = json.loads((tmp_path / "triples.jsonl.meta.json").read_text())
    assert meta["inputs"]["teacher_fingerprint"] == "abc123"
    assert "teacher_fingerprint" not in meta["counts"]

    teacher.fingerprint = "from-attribute"  # type: ignore[attr-defined]
    triples, report = mine_triples({"q": "query"}, {"q": {"p"}}, run, ["p"], config, teacher)
    assert {t.teacher_fingerprint for t in triples} == {"from-attribute"}
    # Without a guard nothing is recorded.
    triples, report = mine_triples({"q": "query"}, {"q": {"p"}}, run, ["p"], NegativesConfig())
    assert {t.teacher_fingerprint for t in triples} == {None}
    assert report.teacher_fingerprint is None


def test_triples_errors_name_the_command_that_builds_them(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError) as missing:
        read_triples(tmp_path / "absent.jsonl")
    path = tmp_path / "bad.jsonl"
    path.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(InputFormatError) as bad:
        read_triples(path)
    for error in (missing.value, bad.value):
        assert "'inpars triples'" in str(error)
        assert "inpars negatives" not in str(error)
