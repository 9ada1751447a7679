"""Run every registered check on every fine-tuned variant of an experiment folder, and write
``diagnosis.json`` / ``diagnosis.md`` beside its ``summary.json``."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from inpars_core.artifacts import atomic_text
from inpars_core.diagnosis.context import (
    MissingEvidenceError,
    VariantContext,
    read_json,
    training_stage_name,
)
from inpars_core.diagnosis.findings import (
    Diagnosis,
    Finding,
    VariantDiagnosis,
    code_number,
    sort_findings,
)
from inpars_core.errors import InputFormatError, UnknownNameError

logger = logging.getLogger(__name__)

DIAGNOSIS_JSON = "diagnosis.json"
DIAGNOSIS_MD = "diagnosis.md"


def registered_checks():
    """Every check, by pitfall number (importing the check modules registers them)."""
    import inpars_core.diagnosis.checks  # noqa: F401  (registers the checks)
    from inpars_core.diagnosis.registry import CHECKS

    return [CHECKS[code] for code in sorted(CHECKS, key=code_number)]


def check_experiment_dir(experiment_dir: Path) -> Path:
    """``experiment_dir`` if it holds ``experiment.json`` and ``summary.json``; else one error
    naming what is missing and the fix."""
    experiment_dir = Path(experiment_dir)
    for name in ("experiment.json", "summary.json"):
        if not (experiment_dir / name).is_file():
            raise InputFormatError(
                experiment_dir,
                f"expected an experiment folder holding {name} (written by `inpars run`), "
                "found none",
                fix="give RUNS_DIR/EXPERIMENT, e.g. runs/scifact-offline, after `inpars run` "
                "has finished",
            )
    return experiment_dir


def fine_tuned_variants(experiment_dir: Path) -> list[str]:
    """The variants with a cross-encoder row trained on synthetic queries (a fine-tuned base, or
    a label-free variant's backbone trained on its queries), in row order."""
    summary = read_json(Path(experiment_dir) / "summary.json")
    names: list[str] = []
    for row in summary.get("rows", []):
        name = row.get("variant")
        if (
            name
            and name not in names
            and row.get("kind") == "synthetic"
            and training_stage_name(row) is not None
            and row.get("family", "cross-encoder") == "cross-encoder"
        ):
            names.append(name)
    return names


def diagnose_variant(context: VariantContext) -> VariantDiagnosis:
    """Every check on one variant; a check without its evidence gives ``n/a`` with the reason.
    A fix is written where the variant sets it (``base_reranker.*`` for a label-free variant's
    training options: :meth:`VariantContext.setting_key`)."""
    tuned = context.tuned_row()
    findings: list[Finding] = []
    for check in registered_checks():
        try:
            finding = check.run(context)
        except MissingEvidenceError as exc:
            finding = Finding(check.code, check.title, "n/a", f"not checked: {exc}")
        except Exception as exc:  # one broken check must not hide the other findings
            logger.exception("check %s failed on variant %s", check.code, context.variant)
            finding = Finding(
                check.code,
                check.title,
                "n/a",
                f"not checked: the check failed ({type(exc).__name__}: {exc}); this is a bug "
                "of the check, the log has its traceback",
            )
        if finding.fix:
            fix = {context.setting_key(tuned, key): value for key, value in finding.fix.items()}
            finding = dataclasses.replace(finding, fix=fix)
        findings.append(finding)
    try:
        baseline = context.baseline_row(tuned)["system"]
    except MissingEvidenceError:
        baseline = ""
    return VariantDiagnosis(context.variant, tuned["system"], baseline, sort_findings(findings))


def diagnose(experiment_dir: Path, variant: str | None = None, *, probe: bool = True) -> Diagnosis:
    """The diagnosis of ``variant`` (or of every fine-tuned variant) of an experiment folder."""
    experiment_dir = check_experiment_dir(experiment_dir)
    known = fine_tuned_variants(experiment_dir)
    if variant is not None and variant not in known:
        raise UnknownNameError("fine-tuned variant", variant, known)
    chosen = [variant] if variant is not None else known
    results = []
    for name in chosen:
        logger.info("diagnosing variant %s", name)
        context = VariantContext.load(experiment_dir, name, probe=probe)
        results.append(diagnose_variant(context))
    experiment = read_json(experiment_dir / "summary.json").get("experiment", experiment_dir.name)
    return Diagnosis(str(experiment), tuple(results))


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _evidence_text(finding: Finding, limit: int = 4) -> str:
    parts = []
    for key, value in list(finding.evidence.items())[:limit]:
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, list | tuple | dict):
            continue
        parts.append(f"{key} {value}")
    return "; ".join(parts)


def _fix_text(finding: Finding) -> str:
    from inpars_core.experiments.sweep import describe_overrides

    return describe_overrides(finding.fix) if finding.fix else ""


def to_markdown(diagnosis: Diagnosis) -> str:
    """The findings as Markdown: one table per variant, most severe first."""
    lines = [f"# Diagnosis of {diagnosis.experiment}", ""]
    if not diagnosis.variants:
        lines.append("No fine-tuned variant in this experiment: nothing to diagnose.")
    for item in diagnosis.variants:
        counts = item.counts()
        lines += [
            f"## {item.variant}: {item.system}",
            "",
            f"Compared with: {item.baseline or '(none)'}. "
            + ", ".join(f"{counts[v]} {v}" for v in ("fail", "warn", "ok", "n/a")),
            "",
            "| code | check | verdict | finding | evidence | fix | expected |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in item.findings:
            lines.append(
                "| "
                + " | ".join(
                    _cell(x)
                    for x in (
                        f.code,
                        f.title,
                        f.verdict,
                        f.summary,
                        _evidence_text(f),
                        _fix_text(f),
                        f.expected,
                    )
                )
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


def write_diagnosis(experiment_dir: Path, diagnosis: Diagnosis) -> tuple[Path, Path]:
    """Write ``diagnosis.json`` and ``diagnosis.md`` into ``experiment_dir`` (atomically)."""
    experiment_dir = Path(experiment_dir)
    json_path, md_path = experiment_dir / DIAGNOSIS_JSON, experiment_dir / DIAGNOSIS_MD
    with atomic_text(json_path) as handle:
        handle.write(diagnosis.to_json())
    with atomic_text(md_path) as handle:
        handle.write(to_markdown(diagnosis))
    return json_path, md_path
