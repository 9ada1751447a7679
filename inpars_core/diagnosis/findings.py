"""The records of a diagnosis: one :class:`Finding` per pitfall code and fine-tuned variant,
gathered in a :class:`VariantDiagnosis` per variant and a :class:`Diagnosis` per experiment.

A finding is plain data (numbers, ids, a config diff) so that ``diagnosis.json``, the
``inpars diagnose`` table, the dashboard's Diagnosis page and the HTML report all show the same
thing. Pitfall codes P1–P12 are those of the fine-tuning pitfalls note shipped in the README;
P13 (query form vs the test queries) is ours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: What a check concluded: ``fail`` (the fault is there and explains a loss), ``warn`` (a risk
#: or a weak sign), ``ok`` (checked, nothing wrong), ``n/a`` (could not be checked: the summary
#: says why).
Verdict = Literal["fail", "warn", "ok", "n/a"]
VERDICTS: tuple[Verdict, ...] = ("fail", "warn", "ok", "n/a")
#: Sort order of verdicts, most severe first.
SEVERITY: dict[str, int] = {verdict: rank for rank, verdict in enumerate(VERDICTS)}


@dataclass(frozen=True)
class Finding:
    """What one check found for one fine-tuned variant.

    ``evidence`` holds the numbers that show it (names → numbers or short strings), ``ids`` the
    queries or pairs (``query_id`` or ``query_id/doc_id``) that show it best, ``fix`` the change
    of the experiment config that removes it (``"section.key"`` → value, the form of a
    ``[variants.NAME]`` table), ``expected`` the direction the fix should move the numbers, and
    ``page`` the dashboard page (URL path and query string) that shows the evidence.
    """

    code: str
    title: str
    verdict: Verdict
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    ids: tuple[str, ...] = ()
    fix: Mapping[str, Any] = field(default_factory=dict)
    expected: str = ""
    page: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, found {self.verdict!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``ids`` as a list)."""
        return {
            "code": self.code,
            "title": self.title,
            "verdict": self.verdict,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "ids": list(self.ids),
            "fix": dict(self.fix),
            "expected": self.expected,
            "page": self.page,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """The inverse of :meth:`to_dict`."""
        return cls(
            code=str(data["code"]),
            title=str(data["title"]),
            verdict=data["verdict"],
            summary=str(data["summary"]),
            evidence=dict(data.get("evidence", {})),
            ids=tuple(data.get("ids", ())),
            fix=dict(data.get("fix", {})),
            expected=str(data.get("expected", "")),
            page=str(data.get("page", "")),
        )


def code_number(code: str) -> int:
    """``"P10"`` → 10 (unknown shapes sort last)."""
    digits = code.lstrip("P")
    return int(digits) if digits.isdigit() else 99


def sort_findings(findings: list[Finding] | tuple[Finding, ...]) -> tuple[Finding, ...]:
    """Most severe first, then by pitfall number."""
    return tuple(sorted(findings, key=lambda f: (SEVERITY[f.verdict], code_number(f.code))))


@dataclass(frozen=True)
class VariantDiagnosis:
    """The findings of one fine-tuned variant (``system``: its pure fine-tuned row's name at the
    first depth; ``baseline``: the row it is compared with)."""

    variant: str
    system: str
    baseline: str
    findings: tuple[Finding, ...]

    def counts(self) -> dict[str, int]:
        """Number of findings per verdict."""
        return {v: sum(f.verdict == v for f in self.findings) for v in VERDICTS}

    def finding(self, code: str) -> Finding:
        """The finding of pitfall ``code`` (KeyError when the check did not run)."""
        for item in self.findings:
            if item.code == code:
                return item
        raise KeyError(code)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "variant": self.variant,
            "system": self.system,
            "baseline": self.baseline,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VariantDiagnosis:
        """The inverse of :meth:`to_dict`."""
        return cls(
            variant=str(data["variant"]),
            system=str(data["system"]),
            baseline=str(data.get("baseline", "")),
            findings=sort_findings([Finding.from_dict(f) for f in data["findings"]]),
        )


@dataclass(frozen=True)
class Diagnosis:
    """Every fine-tuned variant's findings for one experiment folder."""

    experiment: str
    variants: tuple[VariantDiagnosis, ...]

    def variant(self, name: str) -> VariantDiagnosis:
        """The diagnosis of variant ``name`` (KeyError when it has none)."""
        for item in self.variants:
            if item.variant == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``diagnosis.json`` holds)."""
        return {"experiment": self.experiment, "variants": [v.to_dict() for v in self.variants]}

    def to_json(self) -> str:
        """``diagnosis.json``'s text."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=False, default=float) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Diagnosis:
        """The inverse of :meth:`to_dict`."""
        return cls(
            experiment=str(data["experiment"]),
            variants=tuple(VariantDiagnosis.from_dict(v) for v in data["variants"]),
        )
