"""The rows of an experiment's summary: one reported system each, with its kind and lineage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Row kinds: what the system was trained on (never a guess from a name).
ROW_KINDS = ("bm25", "zero-shot", "supervised", "synthetic")


@dataclass
class Row:
    """One line of the summary: a system at one depth.

    ``kind`` is one of :data:`ROW_KINDS`: ``bm25``; ``zero-shot`` (a model never trained on this
    collection); ``supervised`` (trained on this collection's train qrels); ``synthetic``
    (fine-tuned, or with ``base_reranker.source = "synthetic"`` trained, on generated queries).
    Family ``fusion`` is an RRF of two runs (its name says which). ``bm25_weight`` > 0 marks a
    row interpolated with BM25 (its name shows it); ``pure`` names the row of the same model
    without interpolation.
    ``encoding`` is the pair encoding a cross-encoder row was reranked with (None for systems
    without one: BM25, bi-encoders); a row is compared with the baseline of its encoding.
    """

    name: str
    kind: str
    depth: int | None
    run_path: Path
    family: str = "bm25"  # bm25, cross-encoder, bi-encoder, fusion
    variant: str | None = None
    variants: list[str] = field(default_factory=list)
    bm25_weight: float = 0.0
    pure: str | None = None
    is_baseline: bool = False
    stage_seconds: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    #: stage name -> artifact folder (relative to the experiment folder) this row was made from
    stages: dict[str, str] = field(default_factory=dict)
    #: evaluated on the first N test queries only (``rerank.depth_queries``); None: all of them
    queries: int | None = None
    encoding: str | None = None


def with_bm25(name: str, weight: float) -> str:
    """A row name with its interpolation shown: ``name ⊕ 0.5·BM25``."""
    return f"{name} ⊕ {weight:g}·BM25" if weight > 0 else name


def with_encoding(name: str, encoding: str) -> str:
    """A row name with its pair encoding shown when it is not the correct ``pair``:
    ``name [zero-types encoding]``."""
    return name if encoding == "pair" else f"{name} [{encoding} encoding]"


__all__ = ["ROW_KINDS", "Row", "with_bm25", "with_encoding"]
