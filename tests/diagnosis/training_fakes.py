"""Hand-made experiment folders for the training checks' unit tests (P5, P6, P7, P11):
``experiment.json``, ``summary.json`` and only the stage files a test writes (no pipeline run)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars_core.diagnosis.context import VariantContext


def write_file(path: Path, content: Any) -> Path:
    """Write ``content``: a list as JSON lines, a dict as JSON, a str as text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, list):
        path.write_text("".join(json.dumps(item) + "\n" for item in content), encoding="utf-8")
    elif isinstance(content, dict):
        path.write_text(json.dumps(content, indent=1), encoding="utf-8")
    else:
        path.write_text(str(content), encoding="utf-8")
    return path


@dataclass
class FakeExperiment:
    """An experiment folder built by hand: add stage folders with :meth:`stage`, summary rows
    with :meth:`row`, then :meth:`write` the two JSON files and :meth:`context` a variant."""

    folder: Path
    config: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    measures: tuple[str, ...] = ("nDCG@10",)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def stage(self, stage: str, key: str, meta: dict[str, Any] | None = None, **files: Any) -> str:
        """Create ``stages/<stage>/<key>/`` with ``meta.json`` (when given) and ``files``
        (name → content, dots in names written as ``__``, e.g. ``run__trec``); returns the
        folder relative to the experiment, as rows record it."""
        folder = self.folder / "stages" / stage / key
        folder.mkdir(parents=True, exist_ok=True)
        if meta is not None:
            write_file(folder / "meta.json", meta)
        for name, content in files.items():
            write_file(folder / name.replace("__", "."), content)
        return f"stages/{stage}/{key}"

    def row(self, system: str, stages: dict[str, str], **fields: Any) -> dict[str, Any]:
        """Append a summary row (cross-encoder defaults: depth 10, pair encoding, 10 test
        queries); ``fields`` override or add keys."""
        row = {
            "row": len(self.rows),
            "system": system,
            "family": "cross-encoder",
            "kind": "synthetic",
            "baseline": False,
            "bm25_weight": 0.0,
            "depth": 10,
            "encoding": "pair",
            "test_queries": 10,
            "variant": None,
            "variants": [],
            "stages": stages,
            "measures": {},
        }
        row.update(fields)
        self.rows.append(row)
        return row

    def write(self) -> Path:
        """Write ``experiment.json`` and ``summary.json``; returns the folder."""
        name = self.folder.name
        write_file(
            self.folder / "experiment.json",
            {"experiment": name, "config": self.config, "dataset": self.dataset,
             "systems": self.rows},
        )  # fmt: skip
        write_file(
            self.folder / "summary.json",
            {"experiment": name, "measures": list(self.measures), "rows": self.rows},
        )
        return self.folder

    def context(self, variant: str, *, probe: bool = False) -> VariantContext:
        """The written folder seen from ``variant``."""
        self.write()
        return VariantContext.load(self.folder, variant, probe=probe)
