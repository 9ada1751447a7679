"""The 95 % paired-bootstrap interval of Δ (issue 14): the function, summary.json's
``delta_ci95`` written by ``summarize``, and the Δ figure the dashboard and the report share."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from inpars_core.compare import paired_bootstrap_ci
from inpars_core.errors import ConfigError


def _pairs(n: int, seed: int, shift: float) -> tuple[list[float], list[float]]:
    """``n`` per-query values before, and after = before + ``shift`` + noise, in [0, 1]."""
    rng = random.Random(seed)
    before = [rng.random() for _ in range(n)]
    after = [min(1.0, max(0.0, b + shift + rng.gauss(0, 0.15))) for b in before]
    return before, after


@pytest.mark.parametrize("seed", range(5))
def test_interval_contains_the_observed_delta(seed: int) -> None:
    before, after = _pairs(60, seed, 0.03)
    delta = sum(after) / len(after) - sum(before) / len(before)
    low, high = paired_bootstrap_ci(before, after)
    assert low < delta < high


def test_interval_is_deterministic_and_independent_of_other_calls() -> None:
    before, after = _pairs(40, 7, -0.02)
    first = paired_bootstrap_ci(before, after)
    paired_bootstrap_ci(*_pairs(40, 8, 0.1))  # another comparison on as many queries between
    assert paired_bootstrap_ci(before, after) == first


def test_identical_runs_give_zero_zero() -> None:
    values = [0.1, 0.5, 0.9, 0.0, 1.0]
    assert paired_bootstrap_ci(values, values) == (0.0, 0.0)


def test_interval_shrinks_with_more_queries() -> None:
    """The same per-query differences repeated 4 times: the standard error of a mean falls as
    1/sqrt(n), so the interval should be about half as wide; 0.7 leaves room for the
    resampling noise of 2,000 resamples (a few per cent of the width)."""
    before, after = _pairs(50, 3, 0.02)
    low, high = paired_bootstrap_ci(before, after)
    low4, high4 = paired_bootstrap_ci(before * 4, after * 4)
    assert high4 - low4 < 0.7 * (high - low)
    assert high4 - low4 > 0.3 * (high - low)


def test_bad_inputs_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="as many values after as before"):
        paired_bootstrap_ci([0.1, 0.2], [0.1])
    with pytest.raises(ConfigError, match="at least one query"):
        paired_bootstrap_ci([], [])
    with pytest.raises(ConfigError, match=r"level in \(0, 1\)"):
        paired_bootstrap_ci([0.1], [0.2], level=1.5)


def _write_run(path: Path, ranking: dict[str, list[str]]) -> Path:
    from inpars_core.records import ScoredDoc
    from inpars_core.runs import write_trec_run

    write_trec_run(
        {q: [ScoredDoc(q, d, float(len(docs) - i)) for i, d in enumerate(docs)]
         for q, docs in ranking.items()},
        path,
    )  # fmt: skip
    return path


def test_summarize_gives_each_compared_row_its_interval(tmp_path: Path) -> None:
    """30 queries, 1 relevant document each: the tuned run puts it first on 20 queries and the
    base on 10; the identical run equals the base. Each compared row gets ``delta_ci95`` per
    measure holding its Δ; the identical row [0, 0]; BM25 and the baseline none; the method is
    recorded; the block without overlap has its own intervals."""
    from inpars_core.experiments.rows import Row
    from inpars_core.experiments.summary import CI_FIELD, Overlap, summarize

    queries = [f"q{i:02d}" for i in range(30)]
    qrels = {q: {f"{q}-rel": 1} for q in queries}
    good = {q: [f"{q}-rel", "x", "y"] for q in queries}
    bad = {q: ["x", "y", f"{q}-rel"] for q in queries}
    base = {q: (good if i < 10 else bad)[q] for i, q in enumerate(queries)}
    tuned = {q: (good if i < 20 else bad)[q] for i, q in enumerate(queries)}
    rows = [
        Row("BM25", "bm25", None, _write_run(tmp_path / "bm25", bad)),
        Row("base", "supervised", 3, _write_run(tmp_path / "base", base), is_baseline=True),
        Row("tuned", "synthetic", 3, _write_run(tmp_path / "tuned", tuned)),
        Row("same", "synthetic", 3, _write_run(tmp_path / "same", base)),
    ]
    summary, _ = summarize(
        rows,
        qrels,
        measures=["RR@10", "nDCG@10"],
        depths=[3],
        holm_family="depth-measure",
        costs={},
        overlap=Overlap(30, 5, tuple(queries[:5]), ()),
        exclude_overlap=True,
    )
    bm25, baseline, better, same = summary["rows"]
    assert CI_FIELD not in bm25 and CI_FIELD not in baseline
    for measure in ("RR@10", "nDCG@10"):
        low, high = better[CI_FIELD][measure]
        assert 0 < low < better["delta"][measure] < high
        assert same[CI_FIELD][measure] == [0.0, 0.0]
    assert summary["delta_ci"]["resamples"] == 2000 and summary["delta_ci"]["level"] == 0.95
    clean = summary["no_overlap"]["rows"][2]
    assert clean[CI_FIELD]["RR@10"] != better[CI_FIELD]["RR@10"]  # 25 queries, not 30
    assert clean[CI_FIELD]["RR@10"][0] < clean["delta"]["RR@10"] < clean[CI_FIELD]["RR@10"][1]
    again, _ = summarize(
        rows,
        qrels,
        measures=["RR@10", "nDCG@10"],
        depths=[3],
        holm_family="depth-measure",
        costs={},
        overlap=Overlap(30, 5, tuple(queries[:5]), ()),
        exclude_overlap=True,
    )
    assert again["rows"][2][CI_FIELD] == better[CI_FIELD]  # the fixed seed: same summary


ROWS = [
    {"system": "bm25", "kind": "bm25", "depth": None, "measures": {"nDCG@10": 0.5}},
    {"system": "base", "kind": "supervised", "depth": 10, "baseline": True,
     "measures": {"nDCG@10": 0.6}},
    {"system": "tuned", "kind": "synthetic", "depth": 10, "measures": {"nDCG@10": 0.63},
     "delta": {"nDCG@10": 0.03}, "significant": {"nDCG@10": True}, "compared_with": "base",
     "delta_ci95": {"nDCG@10": [0.01, 0.05]}, "wins_ties_losses": {"nDCG@10": [5, 3, 2]}},
    {"system": "old", "kind": "synthetic", "depth": 10, "measures": {"nDCG@10": 0.58},
     "delta": {"nDCG@10": -0.02}, "significant": {"nDCG@10": False}, "compared_with": "base"},
]  # fmt: skip


def test_delta_figure_draws_the_interval_and_the_values_beside() -> None:
    """Bars at Δ with asymmetric error bars from ``delta_ci95`` (none for a row of an older
    summary), the values on the right panel labelled ``value (Δ*)`` on an axis not from 0."""
    from inpars_core.reporting.figures import DELTA_TITLE, delta_figure, wrapped

    figure = delta_figure(ROWS, "nDCG@10")
    bars = [t for t in figure.data if t.type == "bar"]
    (bar,) = bars  # both compared rows are "synthetic": one trace
    assert list(bar.y) == ["tuned @10", "old @10"]
    assert list(bar.x) == pytest.approx([0.03, -0.02])
    assert bar.error_x.array[0] == pytest.approx(0.02) and bar.error_x.array[1] is None
    assert bar.error_x.arrayminus[0] == pytest.approx(0.02)
    points = [t for t in figure.data if t.type == "scatter"]
    texts = {y: text for t in points for y, text in zip(t.y, t.text, strict=True)}
    assert texts == {
        "bm25 @full": "0.5000",
        "base @10": "0.6000 (baseline)",
        "tuned @10": "0.6300 (+0.0300*)",
        "old @10": "0.5800 (-0.0200)",
    }
    low, high = figure.layout.xaxis2.range
    assert 0.4 < low < 0.5 and high > 0.63  # fitted to the values, not from 0
    assert figure.layout.annotations[0].text == DELTA_TITLE.format(measure="nDCG@10")
    assert wrapped("a long system name, longer than one line of the axis @10") == (
        "a long system name, longer than one line<br>of the axis @10"
    )
    assert list(figure.layout.yaxis.categoryarray) == [
        "bm25 @full", "base @10", "tuned @10", "old @10"
    ]  # fmt: skip
