"""P8 (noisy queries), P9 (depth) and P12 (noise) on hand-made experiment folders: one test per
verdict each check can give, the evidence numbers, ids, fix and page it reports."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from inpars_core.diagnosis import MissingEvidenceError, VariantContext, diagnose
from inpars_core.diagnosis.checks.depth import depth
from inpars_core.diagnosis.checks.noise import noise
from inpars_core.diagnosis.checks.queries import noisy_queries
from tests.diagnosis.data_fakes import FakeExperiment, base_row, tuned_row

QUERIES = [f"q{i}" for i in range(12)]
EXAMPLES = ["does aspirin prevent heart attacks", "how does sleep affect memory"]


def _params(page: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page).query)


# ------------------------------------------------------------------------------------- P8


def _verdicts(texts: dict[str, str], dropped: dict[str, str], round_trip: dict[str, int] | None):
    """verdicts.jsonl records: ``dropped`` maps a query id to the filter that dropped it; with
    ``round_trip`` every query also has a round-trip verdict with that rank."""
    records = []
    for query_id, text in texts.items():
        verdicts = [{"query_id": query_id, "filter": "length", "kept": True, "value": 5}]
        if query_id in dropped:
            verdicts.append(
                {"query_id": query_id, "filter": dropped[query_id], "kept": False, "value": 1.0}
            )
        if round_trip is not None:
            rank = round_trip[query_id]
            verdicts.append(
                {"query_id": query_id, "filter": "round-trip", "kept": True, "value": rank}
            )
        records.append(
            {
                "query_id": query_id,
                "doc_id": f"d-{query_id}",
                "text": text,
                "kept": query_id not in dropped,
                "verdicts": verdicts,
            }
        )
    return records


def _queries_experiment(
    tmp_path: Path,
    texts: dict[str, str],
    trained: list[str],
    *,
    filters: dict,
    dropped: dict[str, str] | None = None,
    round_trip: dict[str, int] | None = None,
) -> Path:
    exp = FakeExperiment(tmp_path / "exp")
    dropped = dropped or {}
    counts = {
        "queries": len(texts),
        "kept": len(texts) - len(dropped),
        "dropped_by": {name: list(dropped.values()).count(name) for name in set(dropped.values())},
    }
    generate = exp.stage(
        "generate", "g0", prompt_json={"example_queries": EXAMPLES}, queries_jsonl=[]
    )
    filtered = exp.stage(
        "filter",
        "f0",
        {"config": filters, "counts": counts},
        verdicts_jsonl=_verdicts(texts, dropped, round_trip),
    )
    triples = exp.stage(
        "triples",
        "t0",
        triples_jsonl=[
            {"query_id": q, "pos_doc_id": f"d-{q}", "neg_doc_id": "x", "neg_source": "bm25"}
            for q in trained
        ],
    )
    lineage = {"generate": generate, "filter": filtered, "triples": triples}
    exp.add(tuned_row("v", stages=lineage))
    return exp.write()


FILTERS_OFF = {
    "near_duplicate_jaccard": None,
    "example_copy_jaccard": None,
    "round_trip_k": None,
    "min_words": 3,
}
FILTERS_ON = {
    "near_duplicate_jaccard": 0.9,
    "example_copy_jaccard": 0.8,
    "round_trip_k": 100,
    "min_words": 3,
}
CLEAN = {
    "a": "which genes control the cell cycle in yeast",
    "b": "does vitamin d lower blood pressure in adults",
    "c": "how do tumours escape the immune system",
    "d": "what causes insulin resistance in obesity",
}


def test_p8_fails_on_copies_and_duplicates_trained_with_the_filters_off(tmp_path: Path) -> None:
    """Two of five trained queries copy a prompt example (one verbatim, one with a different
    case and punctuation), one duplicates another: 3/5 noisy, the filters that catch them off."""
    texts = {
        **CLEAN,
        "e": "Does aspirin prevent heart attacks?",
        "f": "how does sleep affect memory",
        "g": "which genes control the cell cycle in yeast",
    }
    trained = ["a", "b", "e", "f", "g"]
    folder = _queries_experiment(tmp_path, texts, trained, filters=FILTERS_OFF)
    finding = noisy_queries(VariantContext.load(folder, "v"))
    assert finding.verdict == "fail"
    assert finding.evidence["trained_queries"] == 5
    assert finding.evidence["trained_example_copies"] == 2
    assert finding.evidence["trained_duplicates"] == 1
    assert finding.evidence["trained_noisy_share"] == pytest.approx(3 / 5)
    assert set(finding.ids) == {"e", "f", "g"}
    assert finding.fix == {
        "filters.near_duplicate_jaccard": 0.9,
        "filters.example_copy_jaccard": 0.8,
        "filters.round_trip_k": 100,
    }
    assert "copy a prompt example (2) or duplicate another query (1)" in finding.summary
    assert finding.page.startswith("synthetic?")
    assert _params(finding.page)["gen"] == ["v"]


def test_p8_fails_when_the_model_was_trained_on_a_query_a_filter_dropped(tmp_path: Path) -> None:
    folder = _queries_experiment(
        tmp_path,
        CLEAN,
        ["a", "b", "c", "d"],
        filters=FILTERS_ON,
        dropped={"c": "round-trip"},
        round_trip={"a": 1, "b": 2, "c": 1, "d": 3},
    )
    finding = noisy_queries(VariantContext.load(folder, "v"))
    assert finding.verdict == "fail"
    assert finding.evidence["trained_on_dropped"] == 1
    assert finding.ids[0] == "c"
    assert _params(finding.page)["verdict"] == ["dropped"]
    assert _params(finding.page)["q"] == ["c"]


def test_p8_ok_on_filtered_clean_queries(tmp_path: Path) -> None:
    texts = {**CLEAN, "e": "does aspirin prevent heart attacks"}
    folder = _queries_experiment(
        tmp_path,
        texts,
        ["a", "b", "c", "d"],
        filters=FILTERS_ON,
        dropped={"e": "example-copy"},
        round_trip={"a": 1, "b": 4, "c": 2, "d": 30, "e": 1},
    )
    finding = noisy_queries(VariantContext.load(folder, "v"))
    assert finding.verdict == "ok", finding.summary
    assert finding.evidence["dropped_share"] == pytest.approx(1 / 5)
    assert finding.evidence["dropped_by_example-copy"] == pytest.approx(1 / 5)
    assert finding.evidence["kept_round_trip_median_rank"] == pytest.approx(3.0)  # 1, 2, 4, 30
    assert finding.evidence["kept_round_trip_beyond_10"] == pytest.approx(1 / 4)
    assert finding.ids[0] == "d"  # the kept query least tied to its document first
    assert finding.fix == {}


def test_p8_warns_when_no_filter_checked_queries_against_their_documents(tmp_path: Path) -> None:
    filters = {**FILTERS_ON, "round_trip_k": None}
    folder = _queries_experiment(tmp_path, CLEAN, list(CLEAN), filters=filters)
    finding = noisy_queries(VariantContext.load(folder, "v"))
    assert finding.verdict == "warn"
    assert finding.summary.startswith("No filter checked that a query matches its document")
    assert finding.fix == {"filters.round_trip_k": 100}


def test_p8_is_not_applicable_without_a_filter_stage(tmp_path: Path) -> None:
    exp = FakeExperiment(tmp_path / "exp")
    exp.add(tuned_row("v"))
    folder = exp.write()
    with pytest.raises(MissingEvidenceError, match="has no filter stage"):
        noisy_queries(VariantContext.load(folder, "v"))
    finding = diagnose(folder, probe=False).variant("v").finding("P8")
    assert finding.verdict == "n/a"
    assert "has no filter stage" in finding.summary


# ------------------------------------------------------------------------------------- P9


def _depth_experiment(
    tmp_path: Path,
    tuned: dict[int, float],
    base: dict[int, float],
    negatives: list[dict],
    *,
    random: int = 0,
) -> Path:
    """Tuned and base rows at the depths given, each query scoring the depth's value except
    q0, which carries the tuned model's whole loss (so it is the worst query)."""
    exp = FakeExperiment(tmp_path / "exp")
    triples = exp.stage(
        "triples",
        "t0",
        {"config": {"window": [1, 100], "random_negatives": random}},
        triples_jsonl=negatives,
    )
    for d, value in base.items():
        exp.add(base_row(d), {q: 0.5 + value for q in QUERIES})
    shallow = min(tuned)
    for d, value in tuned.items():
        loss = (value - tuned[shallow]) * len(QUERIES)
        values = {q: 0.5 for q in QUERIES} | {"q0": 0.5 + loss}
        exp.add(tuned_row("v", d, {"triples": triples}, top10_from_bm25_beyond_100=0.3), values)
    return exp.write()


HARD = [{"query_id": "s1", "neg_source": "bm25", "neg_rank": r} for r in (2, 5, 40)]


def test_p9_fails_when_a_model_trained_on_hard_negatives_loses_depth(tmp_path: Path) -> None:
    folder = _depth_experiment(tmp_path, {100: 0.0, 1000: -0.04}, {100: 0.0, 1000: 0.0}, HARD)
    finding = depth(VariantContext.load(folder, "v"))
    assert finding.verdict == "fail"
    assert finding.evidence["delta_nDCG@10_deep_minus_shallow"] == pytest.approx(-0.04)
    assert finding.evidence["base_delta_nDCG@10_deep_minus_shallow"] == pytest.approx(0.0)
    assert finding.evidence["random_negative_share"] == 0.0
    assert finding.evidence["top10_from_bm25_beyond_100"] == 0.3
    assert finding.ids == ("q0",)
    assert finding.fix == {"negatives.random": 1, "rerank.depths": [100]}
    params = _params(finding.page)
    assert params["a"] == ["v: fine-tuned @100"] and params["b"] == ["v: fine-tuned @1000"]
    assert params["query"] == ["q0"]


def test_p9_warns_on_a_depth_loss_despite_random_negatives(tmp_path: Path) -> None:
    mixed = [*HARD, {"query_id": "s1", "neg_source": "random", "neg_rank": None}]
    folder = _depth_experiment(
        tmp_path, {100: 0.0, 1000: -0.04}, {100: 0.0, 1000: 0.0}, mixed, random=1
    )
    finding = depth(VariantContext.load(folder, "v"))
    assert finding.verdict == "warn"
    assert finding.evidence["random_negative_share"] == pytest.approx(0.25)
    assert "with easy negatives in training" in finding.summary


def test_p9_ok_when_depth_costs_nothing(tmp_path: Path) -> None:
    folder = _depth_experiment(tmp_path, {100: 0.0, 1000: 0.02}, {100: 0.0, 1000: 0.0}, HARD)
    finding = depth(VariantContext.load(folder, "v"))
    assert finding.verdict == "ok"
    assert finding.evidence["delta_nDCG@10_deep_minus_shallow"] == pytest.approx(0.02)
    assert finding.fix == {}


def test_p9_warns_on_one_deep_depth_filled_from_deep_bm25_ranks(tmp_path: Path) -> None:
    """Only depth 1000: no Δ to measure, but 30% of the top 10 came from BM25 beyond 100 and
    the model saw no easy negative."""
    folder = _depth_experiment(tmp_path, {1000: 0.0}, {1000: 0.0}, HARD)
    finding = depth(VariantContext.load(folder, "v"))
    assert finding.verdict == "warn"
    assert "30% of the top 10 came from BM25 beyond rank 100" in finding.summary
    assert finding.fix == {"negatives.random": 1, "rerank.depths": [100]}


def test_p9_is_not_applicable_with_one_shallow_depth(tmp_path: Path) -> None:
    folder = _depth_experiment(tmp_path, {20: 0.0}, {20: 0.0}, HARD)
    with pytest.raises(MissingEvidenceError, match=r"one depth \(20\) of at most 100"):
        depth(VariantContext.load(folder, "v"))
    assert diagnose(folder, probe=False).variant("v").finding("P9").verdict == "n/a"


# ------------------------------------------------------------------------------------ P12


def _noise_experiment(tmp_path: Path, deltas: dict[str, list[float]], **variants) -> Path:
    """One base row and, per variant, a fine-tuned row whose nDCG@10 is the base's plus the
    given delta per query."""
    exp = FakeExperiment(tmp_path / "exp", {"finetune": {"seed": 0}}, variants)
    exp.add(base_row(), {q: 0.5 for q in QUERIES})
    for name, values in deltas.items():
        exp.add(tuned_row(name), {q: 0.5 + d for q, d in zip(QUERIES, values, strict=True)})
    return exp.write()


NOISE = [0.1, -0.1, 0.05, -0.05, 0.02, -0.03, 0.0, 0.04, -0.04, 0.01, -0.01, 0.0]
GAIN = [0.2, 0.1, 0.15, 0.3, 0.05, 0.2, 0.1, 0.25, 0.1, 0.2, 0.15, 0.1]


def test_p12_warns_plainly_when_the_change_is_within_noise(tmp_path: Path) -> None:
    folder = _noise_experiment(tmp_path, {"v": NOISE}, v={"finetune.objective": "bce"})
    finding = noise(VariantContext.load(folder, "v"))
    assert finding.verdict == "warn"
    assert "not significant: within noise, do not read it as a change" in finding.summary
    assert finding.evidence["queries_vs_base"] == 12
    assert finding.evidence["wins_ties_losses_vs_base"] == "5/2/5"
    assert finding.evidence["delta_vs_base"] == pytest.approx(sum(NOISE) / 12, abs=1e-4)
    assert finding.evidence["t_holm_vs_base"] > 0.05
    assert finding.fix == {"finetune.seed": 1}
    assert finding.ids[:2] == ("q0", "q1")  # the largest per-query changes first
    assert _params(finding.page)["a"] == ["base @100"]


def test_p12_says_when_no_query_changed(tmp_path: Path) -> None:
    folder = _noise_experiment(tmp_path, {"v": [0.0] * 12}, v={"finetune.objective": "bce"})
    finding = noise(VariantContext.load(folder, "v"))
    assert finding.verdict == "warn"
    assert "do not read it as a change (no query changed at all)" in finding.summary
    assert finding.evidence["t_holm_vs_base"] == 1.0  # all deltas 0: paired_tests gives 1


def test_p12_ok_when_the_change_is_significant(tmp_path: Path) -> None:
    folder = _noise_experiment(tmp_path, {"v": GAIN}, v={"finetune.objective": "bce"})
    finding = noise(VariantContext.load(folder, "v"))
    assert finding.verdict == "ok"
    # 12 of 12 queries win: exact Wilcoxon p = 2 / 2**12; one measure, so Holm changes nothing
    assert finding.evidence["wilcoxon_holm_vs_base"] == pytest.approx(2 / 2**12)
    assert finding.evidence["wins_ties_losses_vs_base"] == "12/0/0"
    assert "significant; one seed only" in finding.summary
    assert finding.fix == {}


def test_p12_warns_when_seed_replicates_disagree_on_the_sign(tmp_path: Path) -> None:
    folder = _noise_experiment(
        tmp_path,
        {"s0": GAIN, "s1": [-d for d in GAIN]},
        s0={"finetune.objective": "bce", "finetune.seed": 0},
        s1={"finetune.objective": "bce", "finetune.seed": 1},
    )
    finding = noise(VariantContext.load(folder, "s0"))
    assert finding.verdict == "warn"
    assert "the seeds disagree on its sign" in finding.summary
    assert finding.evidence["seeds"] == 2
    assert finding.evidence["seed_delta_min"] == pytest.approx(-sum(GAIN) / 12, abs=1e-4)
    assert finding.fix == {"finetune.seed": 2}


def test_p12_reads_the_recorded_test_without_a_base_row(tmp_path: Path) -> None:
    exp = FakeExperiment(tmp_path / "exp")
    exp.add(
        tuned_row(
            "v",
            compared_with="baseline",
            delta={"nDCG@10": 0.01},
            p_values={"nDCG@10": {"t": 0.3, "t_holm": 0.6, "wilcoxon": 0.2, "wilcoxon_holm": 0.4}},
            significant={"nDCG@10": False},
            wins_ties_losses={"nDCG@10": [4, 3, 5]},
        )
    )
    finding = noise(VariantContext.load(exp.write(), "v"))
    assert finding.verdict == "warn"
    assert "against baseline on 12 test queries (wins/ties/losses 4/3/5" in finding.summary
    assert finding.evidence["t_holm_vs_compared"] == 0.6


def test_p12_is_not_applicable_without_any_comparison(tmp_path: Path) -> None:
    exp = FakeExperiment(tmp_path / "exp")
    exp.add(tuned_row("v"))
    with pytest.raises(MissingEvidenceError, match="neither a base row"):
        noise(VariantContext.load(exp.write(), "v"))
