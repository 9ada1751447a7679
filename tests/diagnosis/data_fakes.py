"""Hand-made experiment folders for the data and CLI diagnosis tests (P8, P9, P12,
`inpars diagnose`): only the files a check reads.

``FakeExperiment`` writes ``experiment.json``, ``summary.json``, ``per_query.tsv`` and stage
folders (``stages/<stage>/<key>/meta.json`` plus JSON-lines files) the way ``inpars run`` lays
them out, from a few rows given as dicts. ``tuned_row`` / ``base_row`` give the minimal summary
rows :class:`~inpars_core.diagnosis.context.VariantContext` recognises as a variant's fine-tuned
row and its starting model's row.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def tuned_row(variant: str, depth: int = 100, stages: dict[str, str] | None = None, **extra):
    """A pure fine-tuned cross-encoder row of ``variant`` at ``depth``."""
    return {
        "system": f"{variant}: fine-tuned",
        "variant": variant,
        "variants": [variant],
        "kind": "synthetic",
        "family": "cross-encoder",
        "baseline": False,
        "bm25_weight": 0.0,
        "encoding": "pair",
        "depth": depth,
        "test_queries": extra.pop("test_queries", 12),
        "stages": {"finetune": "stages/finetune/f0", "rerank": f"stages/rerank/t{depth}"}
        | (stages or {}),
        **extra,
    }


def base_row(depth: int = 100, **extra):
    """The starting model's pure cross-encoder row at ``depth``."""
    return {
        "system": "base",
        "variant": None,
        "variants": [],
        "kind": "zero-shot",
        "family": "cross-encoder",
        "baseline": True,
        "bm25_weight": 0.0,
        "encoding": "pair",
        "depth": depth,
        "test_queries": extra.pop("test_queries", 12),
        "stages": {"rerank": f"stages/rerank/b{depth}"},
        **extra,
    }


@dataclass
class FakeExperiment:
    """An experiment folder under construction (``write`` puts it on disk)."""

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    per_query: list[tuple[int, str, str, float]] = field(default_factory=list)

    def stage(
        self,
        stage: str,
        key: str,
        meta: dict[str, Any] | None = None,
        **files: list[dict[str, Any]] | dict[str, Any],
    ) -> str:
        """Write ``stages/<stage>/<key>/`` with ``meta.json`` and each ``name=records`` as
        ``name`` with dots for underscores (``verdicts_jsonl=[...]`` → ``verdicts.jsonl``; a
        dict is written as one JSON object). Returns the folder relative to the experiment."""
        folder = self.path / "stages" / stage / key
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.json").write_text(json.dumps({"stage": stage, **(meta or {})}))
        for name, records in files.items():
            target = folder / name.replace("_", ".")
            if isinstance(records, dict):
                target.write_text(json.dumps(records))
            else:
                target.write_text("".join(json.dumps(r) + "\n" for r in records))
        return f"stages/{stage}/{key}"

    def add(self, row: dict[str, Any], values: dict[str, float] | None = None) -> dict[str, Any]:
        """Append a summary row (numbered), with its nDCG@10 per query when given (its
        ``measures`` mean is set from them unless the row has one)."""
        row = {"row": len(self.rows), **row}
        if values:
            row.setdefault("measures", {"nDCG@10": sum(values.values()) / len(values)})
            for query_id, value in values.items():
                self.per_query.append((row["row"], query_id, "nDCG@10", value))
        row.setdefault("measures", {"nDCG@10": 0.0})
        self.rows.append(row)
        return row

    def write(self) -> Path:
        """Write experiment.json, summary.json and per_query.tsv; the experiment folder."""
        self.path.mkdir(parents=True, exist_ok=True)
        config = {**self.config, "variants": self.variants}
        manifest = {"experiment": self.path.name, "config": config, "systems": self.rows}
        (self.path / "experiment.json").write_text(json.dumps(manifest))
        summary = {"experiment": self.path.name, "rows": self.rows}
        (self.path / "summary.json").write_text(json.dumps(summary))
        with (self.path / "per_query.tsv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="\t")
            writer.writerow(["block", "row", "system", "depth", "query_id", "measure", "value"])
            for row_index, query_id, measure, value in self.per_query:
                row = self.rows[row_index]
                writer.writerow(
                    ["all", row_index, row["system"], row["depth"], query_id, measure, value]
                )
        return self.path
