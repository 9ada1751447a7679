"""Evaluation equals pytrec_eval; comparisons, Holm correction and tables are right."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from inpars_core.compare import compare, holm_bonferroni, to_csv, to_latex, to_markdown
from inpars_core.errors import ConfigError
from inpars_core.evaluation import evaluate, parse_measures
from inpars_core.records import ScoredDoc
from inpars_core.runs import read_trec_run, sort_ranking, write_trec_run


def _random_run(qrels, corpus_ids: list[str], seed: int, depth: int = 50):
    rng = random.Random(seed)
    run = {}
    for query_id, judged in qrels.items():
        pool = rng.sample(corpus_ids, depth) + list(judged)[: rng.randint(0, len(judged))]
        run[query_id] = [ScoredDoc(query_id, d, round(rng.random(), 2)) for d in set(pool)]
    return run


def test_equals_pytrec_eval_on_a_run_with_ties(scifact) -> None:
    """Differential: per-query and mean values equal pytrec_eval's own on the same order.

    Scores are rounded, so the run has many ties. pytrec_eval breaks ties by doc id descending,
    our run files by doc id ascending; it is given the run's sort_ranking order as strictly
    decreasing scores, the order every measure of ours must see.
    """
    import pytrec_eval

    qrels = scifact.qrels("test")
    run = _random_run(qrels, sorted(scifact.corpus), seed=7)
    assert any(len({d.score for d in docs}) < len(docs) for docs in run.values()), (
        "the run must hold ties"
    )
    ours = evaluate(run, qrels, ["nDCG@10", "R@100", "RR@10", "AP"])
    evaluator = pytrec_eval.RelevanceEvaluator(
        qrels, {"ndcg_cut.10", "recall.100", "recip_rank", "map"}
    )
    shown = {
        q: {d.doc_id: float(len(docs) - i) for i, d in enumerate(sort_ranking(docs))}
        for q, docs in run.items()
    }
    theirs = evaluator.evaluate(shown)
    assert set(ours.per_query) == set(theirs)
    for query_id, values in theirs.items():
        assert ours.per_query[query_id]["nDCG@10"] == pytest.approx(values["ndcg_cut_10"])
        assert ours.per_query[query_id]["R@100"] == pytest.approx(values["recall_100"])
        assert ours.per_query[query_id]["AP"] == pytest.approx(values["map"])
    mean = sum(v["ndcg_cut_10"] for v in theirs.values()) / len(theirs)
    assert ours.aggregate["nDCG@10"] == pytest.approx(mean)


TIE_MEASURES = ["nDCG@10", "R@2", "R@5", "P@2", "P@5", "RR", "RR@10", "AP"]


def test_tied_scores_are_evaluated_in_run_file_order(tmp_path: Path) -> None:
    """Every measure sees the order the run file shows: ties by doc id ascending.

    q1: b 2.0, then a, c, d tied at 1.0, then e 0.5; relevant a and e (2 relevant).
      shown order: b a c d e -> relevant at ranks 2 and 5
      (pytrec_eval's own tie order b d c a e would put a at rank 4).
      nDCG@10 = (1/log2(3) + 1/log2(6)) / (1/log2(2) + 1/log2(3))
              = (0.6309298 + 0.3868528) / 1.6309298 = 1.0177826 / 1.6309298 = 0.6240505
      R@2 = 1/2, R@5 = 2/2 = 1, P@2 = 1/2, P@5 = 2/5 = 0.4
      RR = RR@10 = 1/2
      AP = (1/2 + 2/5) / 2 = 0.45
    q2: x, y, z all tied at 1.0; relevant z -> shown x y z, z at rank 3.
      nDCG@10 = (1/log2(4)) / 1 = 0.5, R@2 = 0, R@5 = 1, P@2 = 0, P@5 = 1/5,
      RR = RR@10 = 1/3, AP = 1/3
    """
    import math

    run = {
        "q1": [
            ScoredDoc("q1", "e", 0.5),
            ScoredDoc("q1", "d", 1.0),
            ScoredDoc("q1", "c", 1.0),
            ScoredDoc("q1", "b", 2.0),
            ScoredDoc("q1", "a", 1.0),
        ],
        "q2": [ScoredDoc("q2", d, 1.0) for d in ("z", "y", "x")],
    }
    qrels = {"q1": {"a": 1, "e": 1, "f": 0}, "q2": {"z": 1}}
    ndcg_q1 = (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    expected = {
        "q1": {
            "nDCG@10": ndcg_q1,
            "R@2": 0.5,
            "R@5": 1.0,
            "P@2": 0.5,
            "P@5": 0.4,
            "RR": 0.5,
            "RR@10": 0.5,
            "AP": 0.45,
        },
        "q2": {
            "nDCG@10": 0.5,
            "R@2": 0.0,
            "R@5": 1.0,
            "P@2": 0.0,
            "P@5": 0.2,
            "RR": 1 / 3,
            "RR@10": 1 / 3,
            "AP": 1 / 3,
        },
    }
    assert ndcg_q1 == pytest.approx(0.6240505, abs=1e-7)
    ours = evaluate(run, qrels, TIE_MEASURES)
    for query_id, values in expected.items():
        assert ours.per_query[query_id] == pytest.approx(values), query_id
    # The run file shows that order, and evaluating the file gives the same numbers.
    write_trec_run(run, tmp_path / "tied.run")
    shown = read_trec_run(tmp_path / "tied.run")
    assert [d.doc_id for d in shown["q1"]] == ["b", "a", "c", "d", "e"]
    assert evaluate(shown, qrels, TIE_MEASURES).per_query == ours.per_query
    # A duplicated line counts once (its best score), as the de-duplicated run shows it.
    duplicated = {**run, "q2": [*run["q2"], ScoredDoc("q2", "z", 0.1)]}
    assert evaluate(duplicated, qrels, TIE_MEASURES).per_query == ours.per_query


def test_latex_escape_escapes_a_backslash_once() -> None:
    from inpars_core.compare import latex_escape

    assert latex_escape("a\\b") == r"a\textbackslash{}b"
    assert latex_escape("{x}_1 & 5% $") == r"\{x\}\_1 \& 5\% \$"
    assert latex_escape("a~b^c") == r"a\textasciitilde{}b\textasciicircum{}c"
    assert latex_escape("→ Δ") == r"$\rightarrow$ $\Delta$"


def test_unanswered_judged_query_counts_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    result = evaluate({"q1": [ScoredDoc("q1", "a", 1.0)]}, qrels, ["nDCG@10"])
    assert result.per_query == {"q1": {"nDCG@10": 1.0}, "q2": {"nDCG@10": 0.0}}
    assert result.aggregate["nDCG@10"] == 0.5


def test_bad_measure_names_itself() -> None:
    with pytest.raises(ConfigError, match="'nDCG@ten' is not an ir-measures measure"):
        parse_measures(["nDCG@ten"])


def test_holm_bonferroni_by_hand() -> None:
    # p sorted: 0.01 (x3) -> 0.03, 0.02 (x2) -> 0.04, 0.04 (x1) -> 0.04; original order kept.
    assert holm_bonferroni([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # Monotone: a later smaller product is raised to the running maximum; capped at 1.
    assert holm_bonferroni([0.02, 0.011, 0.9]) == pytest.approx([0.04, 0.033, 0.9])
    assert holm_bonferroni([0.6, 0.5]) == pytest.approx([1.0, 1.0])


def _evaluation(values: dict[str, float]):
    from inpars_core.evaluation import Evaluation

    return Evaluation(
        ("nDCG@10",),
        {"nDCG@10": sum(values.values()) / len(values)},
        {q: {"nDCG@10": v} for q, v in values.items()},
    )


def test_compare_counts_tests_and_tables() -> None:
    queries = [f"q{i}" for i in range(12)]
    base = {q: 0.5 for q in queries}
    better = {q: 0.5 + (0.1 if i < 10 else 0.0) + 0.01 * i for i, q in enumerate(queries)}
    same = dict(base)
    result = compare(
        {"bm25": _evaluation(base), "better": _evaluation(better), "same": _evaluation(same)},
        "bm25",
        "nDCG@10",
    )
    row_better, row_same = result.rows
    assert (row_better.wins, row_better.ties, row_better.losses) == (12, 0, 0)
    assert (row_same.wins, row_same.ties, row_same.losses) == (0, 12, 0)
    before = [base[q] for q in sorted(queries)]
    after = [better[q] for q in sorted(queries)]
    assert row_better.t_p == pytest.approx(stats.ttest_rel(after, before).pvalue)
    assert row_better.wilcoxon_p == pytest.approx(stats.wilcoxon(after, before).pvalue)
    assert row_better.t_p_holm == pytest.approx(min(1.0, 2 * row_better.t_p))
    assert row_same.t_p == 1.0 and row_better.significant and not row_same.significant
    assert row_better.delta == pytest.approx(sum(after) / 12 - 0.5)
    markdown = to_markdown(result)
    assert "| better | " in markdown and "| * |" in markdown
    assert to_csv(result).splitlines()[0].startswith("run,measure,mean,delta,wins")
    latex = to_latex(result)
    assert latex.startswith(r"\begin{tabular}") and r"t p (Holm) & Wilcoxon" in latex


def test_compare_rejects_unknown_baseline() -> None:
    with pytest.raises(ConfigError, match="baseline 'x'"):
        compare({"a": _evaluation({"q": 1.0})}, "x", "nDCG@10")


def test_cli_compare_writes_tables(tiny_dir: Path, tmp_path: Path) -> None:
    runs = {
        "base": {
            "q1": [ScoredDoc("q1", "d2", 2.0), ScoredDoc("q1", "d1", 1.0)],
            "q2": [ScoredDoc("q2", "d2", 1.0)],
            "q3": [ScoredDoc("q3", "d4", 1.0)],
        },
        "new": {
            "q1": [ScoredDoc("q1", "d1", 2.0)],
            "q2": [ScoredDoc("q2", "d2", 1.0)],
            "q3": [ScoredDoc("q3", "d4", 1.0)],
        },
    }
    paths = []
    for name, run in runs.items():
        write_trec_run(run, tmp_path / f"{name}.run")
        paths.append(str(tmp_path / f"{name}.run"))
    cli = [sys.executable, "-m", "inpars_core.cli"]
    out = subprocess.run(
        [
            *cli,
            "compare",
            "--dataset",
            str(tiny_dir),
            "--runs",
            *paths,
            "--baseline",
            "base",
            "--measure",
            "nDCG@10",
            "--out",
            str(tmp_path / "cmp"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    # base q1: relevant d1 at rank 2 -> nDCG 1/log2(3) = 0.6309; mean (0.6309 + 1 + 1) / 3.
    assert "| new | 1.0000 | +0.1230 | 1 | 2 | 0 |" in out.stdout
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == [
        "comparison.csv",
        "comparison.md",
        "comparison.tex",
        "meta.json",
    ]
    meta = json.loads((tmp_path / "cmp" / "meta.json").read_text())
    assert meta["stage"] == "compare" and meta["config"]["baseline"] == "base"
    evaluated = subprocess.run(
        [
            *cli,
            "evaluate",
            "--dataset",
            str(tiny_dir),
            "--run",
            paths[0],
            "--measures",
            "nDCG@10",
            "RR@10",
            "--json",
            "--out",
            str(tmp_path / "eval"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(evaluated.stdout) == pytest.approx(
        {"nDCG@10": 0.8770, "RR@10": 0.8333}, abs=1e-4
    )
    per_query = (tmp_path / "eval" / "per_query.tsv").read_text().splitlines()
    assert per_query[0] == "query_id\tnDCG@10\tRR@10" and len(per_query) == 4


def test_cli_error_is_one_clear_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "inpars_core.cli",
            "evaluate",
            "--dataset",
            "nope-dataset",
            "--run",
            "x.run",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "inpars evaluate: error: unknown dataset 'nope-dataset'; known:" in out.stderr
    assert "Traceback" not in out.stderr
