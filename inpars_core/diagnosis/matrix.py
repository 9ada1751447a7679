"""The proof of the diagnosis: faults planted on purpose must be found.

``configs/diagnosis-faults.toml`` is one smoke-scale experiment with one variant per fine-tuning
pitfall, each inducing its fault (:data:`PLANTED`), and a ``healthy`` variant. The fault matrix
is the diagnosis of that experiment as pitfall × variant → verdict; it *passes* when every
planted fault is reported as ``fail`` or ``warn`` under its own code and the healthy variant has
no ``fail``. ``benchmarks/diagnosis_matrix.py`` prints and writes it;
``tests/diagnosis/test_fault_matrix.py`` asserts it.

P4 (a loss of exactly 0: one label trained with single-label cross-entropy) is not planted: no
objective of the pipeline trains that way (``hf-default`` is MSE, ``ce2`` has two labels), so
no config can induce it; its check is proven on hand-made artifacts only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars_core.diagnosis.findings import Diagnosis, code_number

#: The experiment config holding the planted faults (relative to the repository root).
FAULTS_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "diagnosis-faults.toml"

#: The variant that plants nothing: ``warn`` findings are allowed (small-scale noise), ``fail`` not.
HEALTHY = "healthy"

#: Variant of the faults config → the pitfall codes it plants (and what it does to plant them).
PLANTED: dict[str, tuple[str, ...]] = {
    "zero-types": ("P1",),  # every token_type_id 0, in training and reranking
    "separate": ("P1",),  # query and document tokenised apart: two [CLS], all types 0
    "hf-default": ("P2",),  # MSE onto 0/1 labels on a base with large logits
    "reinit-head": ("P3",),  # ce2: the trained 1-logit head replaced by a new 2-label head
    "high-lr": ("P5", "P6"),  # lr 1e-3, 30 steps, no warm-up, final step kept: scores drift
    "top3-negatives": ("P7",),  # negatives from BM25's top 3, no guard, no random ones
    "unfiltered": ("P8",),  # every filter off: example copies, document copies, duplicates
    "deep-hard": ("P9",),  # hard negatives only (top 10), reranked 10 and 200 deep
    "length-mismatch": ("P10",),  # trained at 32 word-pieces, reranked at 128
    "no-dev": ("P11",),  # no dev set: the final step is kept blindly
    "noise": ("P12",),  # the healthy recipe with another seed: a change within noise
}

#: Verdicts that count as "reported".
REPORTED = ("fail", "warn")


@dataclass(frozen=True)
class FaultMatrix:
    """Pitfall code × variant → verdict (and the finding's summary), with what was planted."""

    experiment: str
    codes: tuple[str, ...]
    variants: tuple[str, ...]
    verdicts: Mapping[str, Mapping[str, str]]  # variant → code → verdict
    summaries: Mapping[str, Mapping[str, str]]  # variant → code → the finding's summary
    planted: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(PLANTED))
    healthy: str = HEALTHY

    def verdict(self, variant: str, code: str) -> str:
        """The verdict of ``code`` for ``variant`` ("missing" when no finding has that code)."""
        return self.verdicts.get(variant, {}).get(code, "missing")

    def problems(self) -> list[str]:
        """Why the matrix fails, one line each (empty: every planted fault found, healthy clean).

        A planted variant absent from the diagnosis, a planted fault not reported as fail or
        warn under its own code, a healthy variant absent or with a ``fail`` are problems.
        """
        found: list[str] = []
        for variant, codes in self.planted.items():
            if variant not in self.verdicts:
                found.append(f"{variant}: no diagnosis (the variant has no fine-tuned row)")
                continue
            for code in codes:
                verdict = self.verdict(variant, code)
                if verdict not in REPORTED:
                    summary = self.summaries.get(variant, {}).get(code, "")
                    found.append(
                        f"{variant}: planted {code} reported as {verdict}, expected fail or "
                        f"warn ({summary})"
                    )
        if self.healthy not in self.verdicts:
            found.append(f"{self.healthy}: no diagnosis (the variant has no fine-tuned row)")
        else:
            for code, verdict in self.verdicts[self.healthy].items():
                if verdict == "fail":
                    summary = self.summaries[self.healthy].get(code, "")
                    found.append(f"{self.healthy}: {code} is fail, expected no fail ({summary})")
        return found

    def cell(self, variant: str, code: str) -> str:
        """One Markdown cell: the verdict; a planted cell in bold, marked ✗ when missed; a
        fail of the healthy variant marked ✗."""
        verdict = self.verdict(variant, code)
        if code in self.planted.get(variant, ()):
            return f"**{verdict}**" + ("" if verdict in REPORTED else " ✗")
        if variant == self.healthy and verdict == "fail":
            return f"{verdict} ✗"
        return verdict

    def to_markdown(self) -> str:
        """The matrix as Markdown: one row per pitfall, one column per variant."""
        problems = self.problems()
        lines = [
            f"# Fault matrix: {self.experiment}",
            "",
            "Each variant of `configs/diagnosis-faults.toml` plants the pitfalls in bold; a "
            "planted fault must be reported as fail or warn, the healthy variant must have no "
            "fail (✗: not so).",
            "",
            "| code | " + " | ".join(self.variants) + " |",
            "|---|" + "---|" * len(self.variants),
        ]
        for code in self.codes:
            cells = [self.cell(variant, code) for variant in self.variants]
            lines.append(f"| {code} | " + " | ".join(cells) + " |")
        lines += ["", "Planted:", ""]
        for variant, codes in self.planted.items():
            lines.append(f"- `{variant}`: {', '.join(codes)}")
        lines += [
            f"- `{self.healthy}`: none (no fail allowed)",
            "- P4 (a loss of exactly 0) is planted by no variant: no objective of the pipeline "
            "trains one label with single-label cross-entropy.",
            "",
        ]
        if problems:
            lines += ["Problems:", "", *[f"- {p}" for p in problems], ""]
        else:
            lines += [
                "Every planted fault is reported under its own code; healthy has no fail.",
                "",
            ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``problems`` included)."""
        return {
            "experiment": self.experiment,
            "codes": list(self.codes),
            "variants": list(self.variants),
            "planted": {k: list(v) for k, v in self.planted.items()},
            "healthy": self.healthy,
            "verdicts": {k: dict(v) for k, v in self.verdicts.items()},
            "summaries": {k: dict(v) for k, v in self.summaries.items()},
            "problems": self.problems(),
        }


def fault_matrix(
    diagnosis: Diagnosis,
    planted: Mapping[str, tuple[str, ...]] | None = None,
    healthy: str = HEALTHY,
) -> FaultMatrix:
    """The fault matrix of a diagnosis of the faults experiment (columns: healthy first, then
    the planted variants in :data:`PLANTED` order, then any other variant)."""
    planted = dict(PLANTED if planted is None else planted)
    verdicts = {
        item.variant: {f.code: f.verdict for f in item.findings} for item in diagnosis.variants
    }
    summaries = {
        item.variant: {f.code: f.summary for f in item.findings} for item in diagnosis.variants
    }
    order = [healthy, *planted]
    variants = [v for v in order if v in verdicts] + [v for v in verdicts if v not in order]
    codes = sorted(
        {code for item in verdicts.values() for code in item}
        | {code for codes in planted.values() for code in codes},
        key=code_number,
    )
    return FaultMatrix(
        diagnosis.experiment,
        tuple(codes),
        tuple(variants),
        verdicts,
        summaries,
        planted,
        healthy,
    )


def faults_diagnosis(experiment_dir: Path, *, probe: bool = True) -> Diagnosis:
    """The diagnosis of a finished experiment: the ``diagnosis.json`` its run's ``diagnose``
    stage wrote (which probes models) when ``probe``, else (or when the stage left none)
    :func:`~inpars_core.diagnosis.diagnose` run now."""
    import json

    from inpars_core.diagnosis.engine import DIAGNOSIS_JSON, diagnose

    written = Path(experiment_dir) / DIAGNOSIS_JSON
    if probe and written.is_file():
        return Diagnosis.from_dict(json.loads(written.read_text(encoding="utf-8")))
    return diagnose(experiment_dir, probe=probe)
