"""The three pair encodings (issue 13): ``zero-types`` is ``pair`` with every token type 0 and
nothing else changed; ``separate`` has two [CLS]; what :func:`encoding_stats` (a rerank stage's
meta.json) and :func:`explain_encoding` (``inpars encode``, the dashboard) say of each."""

from __future__ import annotations

from pathlib import Path

import pytest

from inpars_core.errors import ConfigError
from inpars_core.experiments.rows import Row
from inpars_core.experiments.summary import (
    Overlap,
    baseline_of,
    comparison_group,
    summarize,
    to_markdown,
)
from inpars_core.reranking.encoding import (
    PAIR_ENCODINGS,
    EncodingConfig,
    encode_pairs,
    encoding_stats,
    explain_encoding,
)

QUERIES = ["does aspirin prevent heart attacks", "vitamin D and infections"]
DOCUMENTS = [
    "Aspirin lowers the risk of myocardial infarction.",
    "Vitamin D supplements reduced respiratory infections in a trial. " * 20,  # truncated
]
MAX_LENGTH = 48
TYPE_VOCAB_SIZE = 2  # MiniLM-L6 (BERT): two token types


@pytest.fixture(scope="module")
def tokenizer():
    """The packaged MiniLM tokenizer (tests using it load transformers: integration tier)."""
    from transformers import AutoTokenizer

    from inpars_core.models import resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path("minilm"))


def encoded(tokenizer, mode: str, return_tensors: str | None = None):
    return encode_pairs(
        tokenizer,
        QUERIES,
        DOCUMENTS,
        EncodingConfig(mode, MAX_LENGTH),
        return_tensors=return_tensors,
    )


def test_modes_are_one_tuple_and_unknown_names_are_refused() -> None:
    assert PAIR_ENCODINGS == ("pair", "zero-types", "separate")
    with pytest.raises(ConfigError, match=r"one of \('pair', 'zero-types', 'separate'\)"):
        EncodingConfig("zero_types")  # type: ignore[arg-type]


@pytest.mark.integration
def test_zero_types_is_pair_with_every_type_zero(tokenizer) -> None:
    pair, zero = encoded(tokenizer, "pair"), encoded(tokenizer, "zero-types")
    assert zero["input_ids"] == pair["input_ids"]
    assert zero["attention_mask"] == pair["attention_mask"]
    assert len(pair["input_ids"][1]) == MAX_LENGTH  # the long document is cut, as in pair
    for pair_types, zero_types, mask in zip(
        pair["token_type_ids"], zero["token_type_ids"], pair["attention_mask"], strict=True
    ):
        assert set(zero_types) == {0}
        kept = [t for t, m in zip(pair_types, mask, strict=True) if m]
        assert set(kept) == {0, 1}  # pair tells query (0) and document (1) apart
    # the tensors the model gets: the same, every token type 0
    tensors = encoded(tokenizer, "zero-types", "pt")
    pair_tensors = encoded(tokenizer, "pair", "pt")
    assert tensors["input_ids"].equal(pair_tensors["input_ids"])
    assert tensors["attention_mask"].equal(pair_tensors["attention_mask"])
    assert tensors["token_type_ids"].shape == pair_tensors["token_type_ids"].shape
    assert not tensors["token_type_ids"].any() and pair_tensors["token_type_ids"].any()


@pytest.mark.integration
def test_separate_has_two_cls_and_no_pair_truncation(tokenizer) -> None:
    separate = encoded(tokenizer, "separate")
    for ids, types in zip(separate["input_ids"], separate["token_type_ids"], strict=True):
        assert ids[0] == tokenizer.cls_token_id
        assert ids.count(tokenizer.cls_token_id) == 2
        assert set(types) == {0}
    # the concatenation is cut at max_length: the long pair loses its final [SEP]
    assert len(separate["input_ids"][1]) == MAX_LENGTH
    assert separate["input_ids"][1][-1] != tokenizer.sep_token_id


@pytest.mark.integration
def test_encoding_stats_say_what_each_mode_looks_like(tokenizer) -> None:
    stats = {
        mode: encoding_stats(
            tokenizer, QUERIES, DOCUMENTS, EncodingConfig(mode, MAX_LENGTH), TYPE_VOCAB_SIZE
        )
        for mode in PAIR_ENCODINGS
    }
    pair, zero, separate = stats["pair"], stats["zero-types"], stats["separate"]
    assert pair["pairs_checked"] == zero["pairs_checked"] == separate["pairs_checked"] == 2
    assert 0.0 < pair["type1_share"] < 1.0 and not pair["all_zero_types"]
    assert pair["cls_per_pair"] == 1.0 and pair["problems"] == []
    assert zero["type1_share"] == 0.0 and zero["all_zero_types"] and zero["cls_per_pair"] == 1.0
    assert zero["mean_length"] == pair["mean_length"]  # nothing but the types changed
    assert any("not told apart" in p for p in zero["problems"])
    assert separate["type1_share"] == 0.0 and separate["all_zero_types"]
    assert separate["cls_per_pair"] == 2.0
    assert any("2 [CLS] tokens" in p for p in separate["problems"])
    # the share is of real tokens: the pair's type-1 tokens over its unpadded tokens
    batch = encoded(tokenizer, "pair")
    type1 = sum(
        sum(t for t, m in zip(ts, ms, strict=True) if m)
        for ts, ms in zip(batch["token_type_ids"], batch["attention_mask"], strict=True)
    )
    assert pair["type1_share"] == pytest.approx(type1 / sum(map(sum, batch["attention_mask"])))


@pytest.mark.integration
def test_explain_encoding_of_the_three_modes(tokenizer) -> None:
    explained = {
        mode: explain_encoding(
            tokenizer, QUERIES[1], DOCUMENTS[1], EncodingConfig(mode, MAX_LENGTH), TYPE_VOCAB_SIZE
        )
        for mode in PAIR_ENCODINGS
    }
    assert [explained[m]["cls_count"] for m in PAIR_ENCODINGS] == [1, 1, 2]
    assert explained["pair"]["type1_tokens"] > 0
    assert explained["zero-types"]["type1_tokens"] == explained["separate"]["type1_tokens"] == 0
    assert explained["zero-types"]["tokens"] == explained["pair"]["tokens"]
    assert all(e["length"] == MAX_LENGTH and e["truncated"] for e in explained.values())
    query = len(tokenizer(QUERIES[1])["input_ids"])
    document = len(tokenizer(DOCUMENTS[1])["input_ids"])
    # separate: both texts with their own [CLS] and [SEP]; pair: one [CLS], two [SEP]
    assert explained["separate"]["untruncated_length"] == query + document
    assert explained["pair"]["untruncated_length"] == query + document - 1


# ----------------------------------------------------------------- the summary's 2x2 table

N_QUERIES = 30


def _row(tmp_path: Path, name: str, ranks: list[int], **fields) -> Row:
    """A row whose run ranks each query's relevant document at the given rank (of 5)."""
    from inpars_core.records import ScoredDoc
    from inpars_core.runs import write_trec_run

    run = {
        f"q{q}": [
            ScoredDoc(f"q{q}", "rel" if r == rank else f"n{r}", 10.0 - r) for r in range(1, 6)
        ]
        for q, rank in enumerate(ranks)
    }
    path = tmp_path / f"{len(list(tmp_path.glob('*.trec')))}.trec"
    write_trec_run(run, path)
    return Row(name, fields.pop("kind", "synthetic"), 5, path, **fields)


def test_each_encoding_is_compared_with_its_own_base(tmp_path: Path) -> None:
    """The seed's story in miniature: the zero-types base is poor, fine-tuning lifts it; the
    pair base is good, fine-tuning lowers it. Each Δ is against the base of its encoding; the
    dense row is against the pair base (the main baseline)."""
    n = N_QUERIES
    ce = {"family": "cross-encoder"}
    rows = [
        _row(tmp_path, "BM25", [3] * n, kind="bm25", family="bm25"),
        _row(tmp_path, "base", [1] * n, kind="supervised", is_baseline=True, encoding="pair", **ce),
        _row(
            tmp_path,
            "base [zero-types encoding]",
            [5] * n,
            kind="supervised",
            is_baseline=True,
            encoding="zero-types",
            **ce,
        ),
        _row(tmp_path, "dense", [1] * 15 + [2] * 15, kind="zero-shot", family="bi-encoder"),
        _row(tmp_path, "pair: tuned", [1] * 20 + [2] * 10, variant="pair", encoding="pair", **ce),
        _row(
            tmp_path,
            "zero-types: tuned [zero-types encoding]",
            [1] * 25 + [5] * 5,
            variant="zero-types",
            encoding="zero-types",
            **ce,
        ),
    ]
    rows[0].depth = None
    assert comparison_group(rows[2]) == (5, None, "zero-types")
    assert baseline_of(rows) == {3: 1, 4: 1, 5: 2}
    qrels = {f"q{q}": {"rel": 1} for q in range(n)}
    summary, _ = summarize(
        rows,
        qrels,
        measures=["nDCG@10", "RR@10"],
        depths=[5],
        holm_family="depth-measure",
        costs={},
        overlap=Overlap(n, 0, (), ()),
        exclude_overlap=False,
        finetuning={"pair": "bce", "zero-types": "bce"},
    )
    assert summary["baselines"] == {"5": "base"}  # the pair base is the main baseline
    entries = {e["system"]: e for e in summary["rows"]}
    measures = {name: e["measures"]["nDCG@10"] for name, e in entries.items()}
    for tuned, base in [
        ("pair: tuned", "base"),
        ("zero-types: tuned [zero-types encoding]", "base [zero-types encoding]"),
        ("dense", "base"),
    ]:
        assert entries[tuned]["compared_with"] == base
        assert entries[tuned]["delta"]["nDCG@10"] == pytest.approx(measures[tuned] - measures[base])
    assert entries["base [zero-types encoding]"]["encoding"] == "zero-types"
    assert entries["dense"]["encoding"] is None and "delta" not in entries["BM25"]
    table = summary["encoding_table"]
    assert table["encodings"] == ["pair", "zero-types"] and table["columns"] == ["bce"]
    pair, zero = table["rows"]
    assert (pair["encoding"], zero["encoding"]) == ("pair", "zero-types")
    assert pair["before"]["system"] == "base"
    assert pair["after"]["bce"]["system"] == "pair: tuned"
    assert zero["before"]["measures"]["nDCG@10"] == measures["base [zero-types encoding]"]
    lifted = zero["after"]["bce"]
    assert lifted["delta"]["nDCG@10"] > 0 > pair["after"]["bce"]["delta"]["nDCG@10"]
    assert lifted["significant"]["nDCG@10"]  # 25 of 30 queries up from rank 5 to rank 1
    text = to_markdown({**summary, "experiment": "x", "dataset": "d", "wall_seconds": 0,
                        "stages_ran": []})  # fmt: skip
    assert "## Pair encoding × fine-tuning" in text
    row = f"| `zero-types` | 5 | {measures['base [zero-types encoding]']:.4f} | "
    row += f"{lifted['measures']['nDCG@10']:.4f} | {lifted['delta']['nDCG@10']:+.4f}* |"
    assert row in text


def test_one_encoding_keeps_one_baseline_and_no_encoding_table(tmp_path: Path) -> None:
    n = N_QUERIES
    ce = {"family": "cross-encoder", "encoding": "separate"}
    rows = [
        _row(tmp_path, "base [separate encoding]", [4] * n, is_baseline=True, **ce),
        _row(tmp_path, "dense", [2] * 10 + [4] * 20, kind="zero-shot", family="bi-encoder"),
        _row(tmp_path, "tuned", [1] * 20 + [4] * 10, variant="v", **ce),
    ]
    assert baseline_of(rows) == {1: 0, 2: 0}  # no pair base: the only one is the main one
    summary, _ = summarize(
        rows,
        {f"q{q}": {"rel": 1} for q in range(n)},
        measures=["nDCG@10"],
        depths=[5],
        holm_family="depth-measure",
        costs={},
        overlap=Overlap(n, 0, (), ()),
        exclude_overlap=False,
    )
    assert summary["baselines"] == {"5": "base [separate encoding]"}
    assert "encoding_table" not in summary
