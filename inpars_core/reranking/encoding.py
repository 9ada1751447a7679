"""Encoding (query, document) pairs for a cross-encoder — the one function training and inference
share — and the seed's bug reproduced on purpose.

``pair`` (default): ``tokenizer(query, doc, truncation="only_second", max_length=L)``; for models
with ``type_vocab_size >= 2`` token_type_ids are 0 for ``[CLS] query [SEP]`` and 1 for
``doc [SEP]``. ``separate``: query and document tokenised apart and concatenated, every token type
0, two [CLS] — what made the seed's nDCG@10 fall from 0.7131 to 0.2949.

In both modes a query of ``L - 3`` word-pieces or more (``L`` minus the special tokens of a
pair) is cut to ``L - 4`` with a warning before encoding (:func:`query_token_budget`): the
document is what gets truncated, and an over-long query must neither crash the tokenizer
("Sequence to truncate too short") nor push out the [SEP].
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from inpars_core.errors import ConfigError

logger = logging.getLogger(__name__)

PairEncoding = Literal["pair", "separate"]
PAIR_ENCODINGS: tuple[str, ...] = ("pair", "separate")
_warned_separate = False


@dataclass(frozen=True)
class EncodingConfig:
    """How pairs are encoded."""

    mode: PairEncoding = "pair"
    max_length: int = 256

    def __post_init__(self) -> None:
        if self.mode not in PAIR_ENCODINGS:
            raise ConfigError(f"pair encoding must be one of {PAIR_ENCODINGS}, got {self.mode!r}")
        if self.max_length < 8:
            raise ConfigError(f"max_length must be at least 8, got {self.max_length}")


def _warn_separate() -> None:
    global _warned_separate
    if not _warned_separate:
        _warned_separate = True
        logger.warning(
            "pair encoding 'separate' reproduces the token_type_ids bug on purpose: query and "
            "document are encoded apart, every token type is 0 and there are two [CLS]; "
            "use 'pair' for real work"
        )


def query_token_budget(tokenizer: Any, max_length: int) -> int:
    """Most word-pieces a query keeps at ``max_length``: ``max_length`` minus the special tokens
    of a pair (3 for BERT: [CLS] query [SEP] document [SEP]) minus one, so at least one document
    word-piece is left (the tokenizer refuses to truncate a document to nothing)."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    return max(1, max_length - specials - 1)


def _cut_query(tokenizer: Any, query: str, budget: int, offsets: Sequence[Any] | None) -> str:
    """The longest prefix of ``query`` (at a word-piece boundary) that tokenises to at most
    ``budget`` word-pieces."""
    keep = budget
    while keep > 0:
        if offsets is not None:
            text = query[: offsets[keep - 1][1]]
        else:
            ids = tokenizer(query, add_special_tokens=False)["input_ids"]
            text = tokenizer.decode(ids[:keep])
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= budget:
            return text
        keep -= 1
    return ""


def fit_queries(tokenizer: Any, queries: Sequence[str], max_length: int) -> list[str]:
    """``queries`` with each one longer than :func:`query_token_budget` word-pieces cut to that
    budget (at a word-piece boundary), with one warning per call naming how many were cut."""
    budget = query_token_budget(tokenizer, max_length)
    fast = bool(getattr(tokenizer, "is_fast", False))
    encoded = tokenizer(list(queries), add_special_tokens=False, return_offsets_mapping=fast)
    fitted = list(queries)
    cut = []
    for i, ids in enumerate(encoded["input_ids"]):
        if len(ids) > budget:
            offsets = encoded["offset_mapping"][i] if fast else None
            fitted[i] = _cut_query(tokenizer, queries[i], budget, offsets)
            cut.append(len(ids))
    if cut:
        logger.warning(
            "%d queries longer than %d word-pieces (longest %d; max_length %d minus the special "
            "tokens and one document word-piece) were truncated to %d: their documents are "
            "cut to almost nothing; raise max_length or shorten the queries",
            len(cut),
            budget,
            max(cut),
            max_length,
            budget,
        )
    return fitted


def encode_pairs(
    tokenizer: Any,
    queries: Sequence[str],
    documents: Sequence[str],
    config: EncodingConfig = EncodingConfig(),
    *,
    return_tensors: str | None = "pt",
) -> Any:
    """Encode a batch of pairs (padded to the longest) as the model will see them.

    A query longer than :func:`query_token_budget` is cut to it first (with a warning, see
    :func:`fit_queries`) in every mode; then the document is truncated to fit ``max_length``.
    """
    if len(queries) != len(documents):
        raise ValueError(f"{len(queries)} queries for {len(documents)} documents")
    queries = fit_queries(tokenizer, queries, config.max_length)
    if config.mode == "pair":
        return tokenizer(
            list(queries),
            list(documents),
            truncation="only_second",
            max_length=config.max_length,
            padding=True,
            return_tensors=return_tensors,
        )
    _warn_separate()
    rows = []
    for query, document in zip(queries, documents, strict=True):
        q = tokenizer(query, add_special_tokens=True)["input_ids"]
        d = tokenizer(document, add_special_tokens=True)["input_ids"]
        rows.append((q + d)[: config.max_length])
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id or 0
    features = {
        "input_ids": [r + [pad] * (width - len(r)) for r in rows],
        "token_type_ids": [[0] * width for _ in rows],
        "attention_mask": [[1] * len(r) + [0] * (width - len(r)) for r in rows],
    }
    from transformers import BatchEncoding

    return BatchEncoding(features, tensor_type=return_tensors)


@dataclass(frozen=True)
class SegmentCheck:
    """What a pair encoding looks like, and whether it is right for the model."""

    cls_count: int
    first_sep: int | None
    type_switch: int | None
    all_zero_types: bool
    problems: tuple[str, ...]


def check_segments(
    input_ids: Sequence[int],
    token_type_ids: Sequence[int] | None,
    tokenizer: Any,
    type_vocab_size: int,
) -> SegmentCheck:
    """Exactly one [CLS]; token types 0 up to the first [SEP] and 1 right after (when the model
    has ``type_vocab_size >= 2``)."""
    ids = list(input_ids)
    cls_count = ids.count(tokenizer.cls_token_id) if tokenizer.cls_token_id is not None else 0
    sep = tokenizer.sep_token_id
    first_sep = ids.index(sep) if sep in ids else None
    types = list(token_type_ids) if token_type_ids is not None else [0] * len(ids)
    switch = next((i for i, t in enumerate(types) if t == 1), None)
    problems = []
    if cls_count != 1:
        problems.append(f"{cls_count} [CLS] tokens, expected 1")
    if type_vocab_size >= 2:
        if not any(types):
            problems.append(
                "all token_type_ids are 0 for a model with type_vocab_size "
                f"{type_vocab_size}: query and document are not told apart"
            )
        elif first_sep is not None and switch != first_sep + 1:
            problems.append(
                f"token types switch to 1 at {switch}, expected {first_sep + 1} "
                "(right after the first [SEP])"
            )
    return SegmentCheck(cls_count, first_sep, switch, not any(types), tuple(problems))


def explain_encoding(
    tokenizer: Any, query: str, document: str, config: EncodingConfig, type_vocab_size: int
) -> dict[str, Any]:
    """Tokens, ids, token types, attention mask, truncation and checks of one pair (for the
    ``encode`` command and the dashboard)."""
    encoded = encode_pairs(tokenizer, [query], [document], config, return_tensors=None)
    ids = encoded["input_ids"][0]
    types = encoded.get("token_type_ids", [[0] * len(ids)])[0]
    full = len(tokenizer(query, document)["input_ids"])
    query_pieces = len(tokenizer(query, add_special_tokens=False)["input_ids"])
    check = check_segments(ids, types, tokenizer, type_vocab_size)
    return {
        "pair_encoding": config.mode,
        "max_length": config.max_length,
        "tokens": tokenizer.convert_ids_to_tokens(ids),
        "input_ids": list(ids),
        "token_type_ids": list(types),
        "attention_mask": list(encoded["attention_mask"][0]),
        "truncated": full > config.max_length,
        "untruncated_length": full,
        "query_truncated": query_pieces > query_token_budget(tokenizer, config.max_length),
        "problems": list(check.problems),
    }


def truncation_stats(
    tokenizer: Any, documents: Sequence[str], max_length: int, query_tokens: int = 20
) -> dict[str, float]:
    """How many documents a pair encoding truncates at ``max_length`` (with a typical query)."""
    lengths = [
        len(ids) for ids in tokenizer(list(documents), add_special_tokens=False)["input_ids"]
    ]
    budget = max_length - query_tokens - 3
    return {
        "documents": len(lengths),
        "max_length": max_length,
        "mean_tokens": statistics.fmean(lengths) if lengths else 0.0,
        "median_tokens": statistics.median(lengths) if lengths else 0.0,
        "truncated_fraction": sum(n > budget for n in lengths) / len(lengths) if lengths else 0.0,
        "mean_tokens_lost": statistics.fmean(max(0, n - budget) for n in lengths)
        if lengths
        else 0.0,
    }


def explain_model_encoding(model: str, query: str, document: str, config: EncodingConfig) -> dict:
    """:func:`explain_encoding` of one pair with the tokenizer and type vocabulary of ``model``
    (a hub id, a folder, or ``minilm``): what ``inpars encode`` shows."""
    from transformers import AutoConfig, AutoTokenizer

    from inpars_core.models import resolve_model_folder

    path = resolve_model_folder(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    type_vocab_size = int(getattr(AutoConfig.from_pretrained(path), "type_vocab_size", 1) or 1)
    return explain_encoding(tokenizer, query, document, config, type_vocab_size)
