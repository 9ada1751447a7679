"""Run files: deterministic order under exact ties, round trip, depth, bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from inpars_core.errors import InputFormatError
from inpars_core.records import ScoredDoc
from inpars_core.runs import normalise_run, read_trec_run, sort_ranking, top_k, write_trec_run


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
