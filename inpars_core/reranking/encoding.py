"""Encoding (query, document) pairs for a cross-encoder — the one function training and inference
share — and the seed's bug reproduced on purpose.

Three modes (:data:`PAIR_ENCODINGS`), each named for what it does:

- ``pair`` (default, correct): ``tokenizer(query, doc, truncation="only_second",
  max_length=L)``; for models with ``type_vocab_size >= 2`` token_type_ids are 0 for
  ``[CLS] query [SEP]`` and 1 for ``doc [SEP]``.
- ``zero-types``: exactly the ``pair`` encoding (same input_ids, attention mask and truncation)
  with every token_type_id set to 0 — the seed's literal bug (query and document not told apart
  by token types; nDCG@10 0.2949 instead of 0.7131), nothing else changed.
- ``separate``: query and document tokenised apart and concatenated: two [CLS], every token type
  0, and no pair-aware truncation (the concatenation is cut at ``L``).

In every mode a query of ``L - 3`` word-pieces or more (``L`` minus the special tokens of a
pair) is cut to ``L - 4`` with a warning before encoding (:func:`query_token_budget`): the
document is what gets truncated, and an over-long query must neither crash the tokenizer
("Sequence to truncate too short") nor push out the [SEP].
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from inpars_core.errors import ConfigError

logger = logging.getLogger(__name__)

#: How a (query, document) pair is encoded: the one definition every option's choices come from.
PairEncoding = Literal["pair", "zero-types", "separate"]
#: The names of :data:`PairEncoding`, in that order (``pair``, the correct one, first).
PAIR_ENCODINGS: tuple[str, ...] = get_args(PairEncoding)
#: What each buggy mode does, for the one warning it logs per process.
_BUGS = {
    "zero-types": "the pair encoding with every token_type_id set to 0 (query and document are "
    "not told apart by token types)",
    "separate": "query and document are encoded apart, every token type is 0 and there are "
    "two [CLS]",
}
_warned: set[str] = set()


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


def _warn_bug(mode: str) -> None:
    """One warning per process and buggy mode: it reproduces the seed's bug on purpose."""
    if mode in _BUGS and mode not in _warned:
        _warned.add(mode)
        logger.warning(
            "pair encoding %r reproduces the token_type_ids bug on purpose: %s; use 'pair' for "
            "real work",
            mode,
            _BUGS[mode],
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
    _warn_bug(config.mode)
    if config.mode in ("pair", "zero-types"):
        encoded = tokenizer(
            list(queries),
            list(documents),
            truncation="only_second",
            max_length=config.max_length,
            padding=True,
            return_tensors=None if config.mode == "zero-types" else return_tensors,
        )
        if config.mode == "pair":
            return encoded
        from transformers import BatchEncoding

        features = dict(encoded)
        if "token_type_ids" in features:  # a model without token types has nothing to zero
            features["token_type_ids"] = [[0] * len(row) for row in features["token_type_ids"]]
        return BatchEncoding(features, tensor_type=return_tensors)
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
    """Tokens, ids, token types, attention mask, [CLS] count, length, truncation and checks of
    one pair (for the ``encode`` command and the dashboard). ``untruncated_length`` is what the
    mode would give without ``max_length`` (``separate``: both texts with their own special
    tokens)."""
    encoded = encode_pairs(tokenizer, [query], [document], config, return_tensors=None)
    ids = encoded["input_ids"][0]
    types = encoded.get("token_type_ids", [[0] * len(ids)])[0]
    if config.mode == "separate":
        full = len(tokenizer(query)["input_ids"]) + len(tokenizer(document)["input_ids"])
    else:
        full = len(tokenizer(query, document)["input_ids"])
    query_pieces = len(tokenizer(query, add_special_tokens=False)["input_ids"])
    check = check_segments(ids, types, tokenizer, type_vocab_size)
    mask = list(encoded["attention_mask"][0])
    return {
        "pair_encoding": config.mode,
        "max_length": config.max_length,
        "tokens": tokenizer.convert_ids_to_tokens(ids),
        "input_ids": list(ids),
        "token_type_ids": list(types),
        "attention_mask": mask,
        "length": sum(mask),
        "cls_count": check.cls_count,
        "type1_tokens": sum(t == 1 for t, m in zip(types, mask, strict=True) if m),
        "truncated": full > config.max_length,
        "untruncated_length": full,
        "query_truncated": query_pieces > query_token_budget(tokenizer, config.max_length),
        "problems": list(check.problems),
    }


def encoding_stats(
    tokenizer: Any,
    queries: Sequence[str],
    documents: Sequence[str],
    config: EncodingConfig,
    type_vocab_size: int,
) -> dict[str, Any]:
    """What ``config`` makes of these pairs, as the model sees them: the share of (unpadded)
    tokens with token_type_id 1, the mean [CLS] count per pair, whether every token type is 0,
    the mean length, and the distinct :func:`check_segments` problems. A rerank stage records
    this in its meta.json (key ``encoding``), so a run says which encoding it really used."""
    encoded = encode_pairs(tokenizer, queries, documents, config, return_tensors=None)
    ids_rows = encoded["input_ids"]
    types_rows = encoded.get("token_type_ids") or [[0] * len(row) for row in ids_rows]
    tokens = type1 = cls = 0
    all_zero = True
    problems: set[str] = set()
    for ids, types, mask in zip(ids_rows, types_rows, encoded["attention_mask"], strict=True):
        kept = [(i, t) for i, t, m in zip(ids, types, mask, strict=True) if m]
        check = check_segments(
            [i for i, _ in kept], [t for _, t in kept], tokenizer, type_vocab_size
        )
        tokens += len(kept)
        type1 += sum(t == 1 for _, t in kept)
        cls += check.cls_count
        all_zero = all_zero and check.all_zero_types
        problems.update(check.problems)
    pairs = len(ids_rows)
    return {
        "pair_encoding": config.mode,
        "max_length": config.max_length,
        "type_vocab_size": type_vocab_size,
        "pairs_checked": pairs,
        "type1_share": type1 / tokens if tokens else 0.0,
        "cls_per_pair": cls / pairs if pairs else 0.0,
        "all_zero_types": all_zero,
        "mean_length": tokens / pairs if pairs else 0.0,
        "problems": sorted(problems)[:5],
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
