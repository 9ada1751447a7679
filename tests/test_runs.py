"""Run files: deterministic order under exact ties, round trip, depth, bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from inpars_core.errors import InputFormatError
from inpars_core.records import ScoredDoc
from inpars_core.runs import (
    interpolate_with_first_stage,
    normalise_run,
    read_trec_run,
    sort_ranking,
    top_k,
    untied_run,
    with_first_stage_tail,
    write_trec_run,
)


def test_exact_ties_sorted_by_doc_id_then_round_trip(tmp_path: Path) -> None:
    docs = [ScoredDoc("q", "b", 1.0), ScoredDoc("q", "c", 2.0), ScoredDoc("q", "a", 1.0)]
    assert [d.doc_id for d in sort_ranking(docs)] == ["c", "a", "b"]
    write_trec_run({"q": docs}, tmp_path / "r.run", tag="t")
    assert (tmp_path / "r.run").read_text().splitlines() == [
        "q Q0 c 1 2.000000 t",
        "q Q0 a 2 1.000000 t",
        "q Q0 b 3 1.000000 t",
    ]
    assert [d.doc_id for d in read_trec_run(tmp_path / "r.run")["q"]] == ["c", "a", "b"]


def test_top_k_and_normalise() -> None:
    run = {"q": [ScoredDoc("q", f"d{i}", float(-i)) for i in range(5)]}
    assert [d.doc_id for d in top_k(run, 2)["q"]] == ["d0", "d1"]
    duplicated = {"q": [ScoredDoc("q", "x", 1.0), ScoredDoc("q", "x", 3.0)]}
    assert normalise_run(duplicated)["q"] == [ScoredDoc("q", "x", 3.0)]
    with pytest.raises(ValueError, match="at least 1"):
        top_k(run, 0)


def test_bad_run_line_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.run"
    path.write_text("q Q0 d 1 1.0 t\nq Q0 d 2\n")
    with pytest.raises(InputFormatError, match=r"bad\.run line 2: expected 6 columns"):
        read_trec_run(path)
    path.write_text("q Q0 d 1 nan t\n")
    with pytest.raises(InputFormatError, match="field 'score'"):
        read_trec_run(path)


def test_failed_write_leaves_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "r.run"
    path.write_text("old\n")
    bad = {"q": [ScoredDoc("q", "a", 1.0), ScoredDoc("q", "b", "not-a-number")]}  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        write_trec_run(bad, path)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.run"]


def test_near_ties_keep_their_order_through_a_run_file(tmp_path: Path) -> None:
    # 0.1234561 and 0.1234559 both print as 0.123456: read back, a would come before b.
    run = {"q": [ScoredDoc("q", "a", 0.1234559), ScoredDoc("q", "b", 0.1234561)]}
    write_trec_run(run, tmp_path / "r.run")
    shown = read_trec_run(tmp_path / "r.run")
    assert [d.doc_id for d in shown["q"]] == ["b", "a"]
    assert [d.score for d in shown["q"]] == [0.1234561, 0.1234559]
    assert [line.split()[3] for line in (tmp_path / "r.run").read_text().splitlines()] == [
        "1",
        "2",
    ]


def test_untied_run_is_sort_ranking_order_with_strictly_decreasing_scores() -> None:
    docs = [ScoredDoc("q", "c", 1.0), ScoredDoc("q", "a", 1.0), ScoredDoc("q", "b", 3.0)]
    docs.append(ScoredDoc("q", "c", 0.5))  # a duplicate line: the best one counts
    assert untied_run({"q": docs})["q"] == [
        ScoredDoc("q", "b", 3.0),
        ScoredDoc("q", "a", 2.0),
        ScoredDoc("q", "c", 1.0),
    ]


def _bm25_like() -> dict[str, list[ScoredDoc]]:
    return {"q": [ScoredDoc("q", f"d{i:02d}", 30.0 - i) for i in range(30)]}


def test_first_stage_tail_follows_the_head_in_first_stage_order() -> None:
    first = _bm25_like()
    head = {"q": [ScoredDoc("q", f"d{i:02d}", float(i)) for i in range(5)]}  # reversed
    shown = with_first_stage_tail(head, first, 5)["q"]
    assert [d.doc_id for d in shown[:5]] == ["d04", "d03", "d02", "d01", "d00"]
    assert [d.doc_id for d in shown[5:]] == [f"d{i:02d}" for i in range(5, 30)]
    assert [d.score for d in shown[5:8]] == [-1.0, -2.0, -3.0]  # min(head) - 1, - 2, ...
    assert shown == sort_ranking(shown)
    assert len({d.doc_id for d in shown}) == len(shown) == 30


def test_first_stage_tail_never_repeats_a_document() -> None:
    first = _bm25_like()
    first["q"] += [ScoredDoc("q", "d20", -5.0), ScoredDoc("q", "d02", -6.0)]  # duplicates
    head = {
        "q": [ScoredDoc("q", "d02", 9.0), ScoredDoc("q", "d25", 8.0), ScoredDoc("q", "d02", 1.0)]
    }
    shown = with_first_stage_tail(head, first, 3)["q"]
    ids = [d.doc_id for d in shown]
    assert len(ids) == len(set(ids)) == 28  # d00, d01: first-stage head, not in this head
    assert ids[:2] == ["d02", "d25"]
    assert ids[2:] == [f"d{i:02d}" for i in range(3, 30) if i != 25]
    assert shown == sort_ranking(shown)
    huge = with_first_stage_tail({"q": [ScoredDoc("q", "d00", 1e20)]}, first, 1)["q"]
    assert len({d.score for d in huge}) == len(huge) and huge == sort_ranking(huge)
    assert with_first_stage_tail({}, first, 3) == {}
    with pytest.raises(ValueError, match="at least 1"):
        with_first_stage_tail(head, first, 0)


def test_interpolate_with_first_stage_by_hand() -> None:
    reranked = {"q": [ScoredDoc("q", "a", 3.0), ScoredDoc("q", "b", 1.0), ScoredDoc("q", "c", 2.0)]}
    first = {"q": [ScoredDoc("q", "a", 5.0), ScoredDoc("q", "b", 15.0), ScoredDoc("q", "x", 1.0)]}
    # model minmax over a, b, c: a 1, b 0, c 0.5; first stage over a, b: a 0, b 1, c missing 0.
    # weight 0.5: a 0.5, b 0.5, c 0.25 -> a, b (tie by doc id), c.
    fused = interpolate_with_first_stage(reranked, first, 0.5)["q"]
    assert [(d.doc_id, d.score) for d in fused] == [("a", 0.5), ("b", 0.5), ("c", 0.25)]
    assert [d.doc_id for d in interpolate_with_first_stage(reranked, first, 0.0)["q"]] == [
        "a",
        "c",
        "b",
    ]
    with pytest.raises(ValueError, match="bm25_weight"):
        interpolate_with_first_stage(reranked, first, 1.5)


def test_share_of_the_top_10_from_deep_in_the_first_stage() -> None:
    """P9's statistic on a hand-made run: 2 queries, 10 documents each; 3 of the 20 come from
    BM25 ranks 150, 151 and 400 (one in q1, two in q2), the rest from ranks <= 100 (rank 100
    itself is not deeper than 100): 3/20."""
    from inpars_core.runs import share_from_deep_ranks

    bm25 = {
        q: [ScoredDoc(q, f"{q}-r{rank}", 1000.0 - rank) for rank in range(1, 1001)]
        for q in ("q1", "q2")
    }
    top = {
        "q1": [*(f"q1-r{r}" for r in (1, 2, 3, 4, 5, 6, 7, 8, 100)), "q1-r150"],
        "q2": [*(f"q2-r{r}" for r in (10, 20, 30, 40, 50, 60, 70, 80)), "q2-r151", "q2-r400"],
    }
    reranked = {
        q: [ScoredDoc(q, d, 50.0 - i) for i, d in enumerate(docs)]
        + [ScoredDoc(q, f"{q}-r{r}", -float(r)) for r in (500, 600)]  # below the top 10
        for q, docs in top.items()
    }
    assert share_from_deep_ranks(reranked, bm25) == 3 / 20
    assert share_from_deep_ranks(reranked, bm25, beyond=99) == 4 / 20  # rank 100 counts now
    assert share_from_deep_ranks({"q1": reranked["q1"]}, bm25) == 1 / 10
    # a document BM25 never ranked for the query counts as deep; a short list counts what it has
    odd = {"q1": [ScoredDoc("q1", "q1-r1", 2.0), ScoredDoc("q1", "elsewhere", 1.0)]}
    assert share_from_deep_ranks(odd, bm25) == 1 / 2
    assert share_from_deep_ranks({}, bm25) is None
    with pytest.raises(ValueError, match="at least 1"):
        share_from_deep_ranks(odd, bm25, top=0)
