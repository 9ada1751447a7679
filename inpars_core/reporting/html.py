"""``inpars report``: one self-contained HTML file of an experiment for presenting to a team.

It holds the before/after tables of ``summary.json`` (values, Δ with the 95 % paired-bootstrap
interval, Holm marks, win/tie/loss), the Δ figures of :mod:`inpars_core.reporting.figures` (the
dashboard's Overview figures) with plotly.js embedded once, and the diagnosis: ``diagnosis.json``
when the experiment has one, else computed now without model probes
(``diagnose(..., probe=False)``). Nothing is fetched when the file is opened: no script, style or
font comes from the network.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from inpars_core.artifacts import atomic_text
from inpars_core.diagnosis.context import read_json
from inpars_core.diagnosis.engine import DIAGNOSIS_JSON, check_experiment_dir
from inpars_core.diagnosis.findings import Diagnosis, Finding, VariantDiagnosis
from inpars_core.errors import InputFormatError
from inpars_core.experiments.schema import KINDS_TEXT
from inpars_core.experiments.summary import DEEP_FIELD
from inpars_core.reporting.figures import DeltaPoint, delta_figure

logger = logging.getLogger(__name__)

#: Queries or pairs listed per finding (the rest counted).
MAX_IDS = 8
#: Characters of one evidence value (lists and tables are shown as compact JSON).
MAX_VALUE_CHARS = 160

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem;
       color: #222; max-width: 1500px; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
p.meta, p.note { color: #555; font-size: 0.92rem; margin: 0.3rem 0; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.8rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; vertical-align: top; text-align: left; }
th { background: #f4f4f6; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.baseline td { background: #fbfbe8; }
table.summary td:first-child { min-width: 16rem; }
table.findings td:nth-child(4) { min-width: 18rem; }
.verdict { font-weight: 600; padding: 0.05rem 0.4rem; border-radius: 0.3rem; }
.verdict-fail { background: #fde2e1; color: #a1120b; }
.verdict-warn { background: #fff1d6; color: #8a5300; }
.verdict-ok { background: #e3f5e6; color: #1d6b2b; }
.verdict-na { background: #eee; color: #555; }
code { background: #f4f4f6; padding: 0 0.2rem; border-radius: 0.2rem; }
.figure { margin: 0.5rem 0 1.5rem; }
"""
#: What the diagnosis section says about where its findings come from.
FROM_FILE = "read from diagnosis.json"
COMPUTED = "computed now without model probes (the experiment has no diagnosis.json)"


@dataclass(frozen=True)
class WrittenReport:
    """What :func:`write_report` wrote: the file and what it holds."""

    path: Path
    systems: int
    figures: int
    variants: int
    findings: int
    diagnosis_source: str


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]], cls: str = "") -> str:
    """An HTML table; each cell is (HTML content, CSS class), each row may carry a row class
    as its first cell's class prefixed with ``row:``."""
    out = [f'<table class="{cls}">' if cls else "<table>", "<thead><tr>"]
    out += [f"<th>{_e(h)}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for cells in rows:
        row_class = ""
        if cells and cells[0][1].startswith("row:"):
            row_class = cells[0][1][4:]
            cells = [(cells[0][0], ""), *cells[1:]]
        out.append(f'<tr class="{row_class}">' if row_class else "<tr>")
        out += [f'<td class="{c}">{body}</td>' if c else f"<td>{body}</td>" for body, c in cells]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# --------------------------------------------------------------------------- summary tables


def summary_table(rows: Sequence[Mapping[str, Any]], measures: Sequence[str]) -> str:
    """The before/after table: per measure the value, Δ (``*``: significant after Holm) and its
    95 % interval; win/tie/loss and Holm p-values on the first measure; the baseline compared
    with; the share of the top 10 from BM25 beyond rank 100; the model kept. Blank cells where
    the summary has no value."""
    first = measures[0] if measures else ""
    header = ["system", "kind", "depth"]
    for m in measures:
        header += [m, f"Δ {m}", f"Δ {m} 95% CI"]
    header += [
        f"W/T/L {first}",
        f"t p (Holm) {first}",
        f"Wilcoxon p (Holm) {first}",
        "compared with",
        "top-10 from BM25 >100",
        "model kept (step/steps)",
        "test queries",
    ]
    body = []
    for row in rows:
        cells: list[tuple[str, str]] = [
            (_e(row.get("system")), "row:baseline" if row.get("baseline") else ""),
            (_e(row.get("kind")), ""),
            (_e("full" if row.get("depth") is None else row.get("depth")), "num"),
        ]
        for m in measures:
            point = DeltaPoint.of(row, m)
            cells += [
                (_number(point.value), "num"),
                (_e(point.delta_text), "num"),
                (_e(point.interval_text), "num"),
            ]
        wtl = (row.get("wins_ties_losses") or {}).get(first)
        p_values = (row.get("p_values") or {}).get(first) or {}
        share = row.get(DEEP_FIELD)
        training = row.get("training") or {}
        kept = training.get("kept_step", training.get("best_step"))
        final = training.get("final_step")
        cells += [
            ("/".join(map(str, wtl)) if wtl else "", "num"),
            (_p(p_values.get("t_holm")), "num"),
            (_p(p_values.get("wilcoxon_holm")), "num"),
            (_e(row.get("compared_with")), ""),
            ("" if share is None else f"{share:.1%}", "num"),
            ("" if final is None else f"{'' if kept is None else kept}/{final}", "num"),
            (_number(row.get("test_queries")), "num"),
        ]
        body.append(cells)
    return _table(header, body, "summary")


def _p(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.2e}" if 0 < value < 1e-3 else f"{value:.4f}"


def _notes(summary: Mapping[str, Any]) -> str:
    baselines = summary.get("baselines") or {}
    base = "; ".join(f"depth {d}: {name}" for d, name in baselines.items()) or "none"
    ci = summary.get("delta_ci") or {}
    ci_text = (
        f"95 % CI: {ci.get('method')}, {ci.get('resamples')} resamples, seed {ci.get('seed')}."
        if ci
        else "This summary was written before Δ intervals were computed: the CI columns are blank."
    )
    notes = [
        f"Δ vs the baseline at the same depth ({base}); * = paired t-test and Wilcoxon both "
        "< 0.05 after Holm–Bonferroni.",
        ci_text,
        str(summary.get("holm_family_text") or ""),
        KINDS_TEXT,
        str((summary.get("overlap") or {}).get("text") or ""),
    ]
    return "".join(f'<p class="note">{_e(n)}</p>' for n in notes if n)


# --------------------------------------------------------------------------- figures


class _Figures:
    """Figures as HTML ``<div>``s (plotly.js is embedded once, in the page's head)."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, rows: Sequence[Mapping[str, Any]], measure: str, title: str) -> str:
        """One Δ figure (:func:`~inpars_core.reporting.figures.delta_figure`) as a div."""
        self.count += 1
        figure = delta_figure(rows, measure, title=title)
        div = figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"figure-{self.count}",
            config={"displaylogo": False, "responsive": True},
        )
        return f'<div class="figure">{div}</div>'


def plotly_script() -> str:
    """plotly.js itself, inline (no CDN: the file opens offline)."""
    from plotly.offline import get_plotlyjs

    return (
        '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};</script>'
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
    )


# --------------------------------------------------------------------------- diagnosis


def load_diagnosis(experiment_dir: Path) -> tuple[Diagnosis, str]:
    """The experiment's diagnosis and where it came from: ``diagnosis.json`` when present, else
    computed now with :func:`~inpars_core.diagnosis.diagnose` (``probe=False``: no model is
    loaded)."""
    path = Path(experiment_dir) / DIAGNOSIS_JSON
    if path.is_file():
        data = read_json(path)
        try:
            return Diagnosis.from_dict(data), FROM_FILE
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFormatError(
                path,
                f"expected a diagnosis (experiment, variants with findings), found a problem "
                f"with {exc}",
                fix="rerun `inpars diagnose` on the experiment, or delete the file",
            ) from None
    from inpars_core.diagnosis import diagnose

    return diagnose(experiment_dir, probe=False), COMPUTED


def _value(value: Any) -> str:
    if isinstance(value, float):
        return _number(value) if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"
    nested = isinstance(value, list | tuple | dict)
    text = json.dumps(value, default=str) if nested else str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _evidence(finding: Finding) -> str:
    return "<br>".join(
        f"<code>{_e(key)}</code> {_e(_value(value))}" for key, value in finding.evidence.items()
    )


def _ids(finding: Finding) -> str:
    shown = ", ".join(finding.ids[:MAX_IDS])
    more = len(finding.ids) - MAX_IDS
    return _e(shown + (f" … and {more} more" if more > 0 else ""))


def _fix(finding: Finding) -> str:
    from inpars_core.experiments.sweep import describe_overrides

    return f"<code>{_e(describe_overrides(finding.fix))}</code>" if finding.fix else ""


def findings_table(item: VariantDiagnosis) -> str:
    """One variant's findings, most severe first: code, check, verdict, what was found, the
    evidence, the queries or pairs that show it, the fix (a config diff), the expected
    direction and the dashboard page that shows it."""
    header = ["code", "check", "verdict", "finding", "evidence", "ids", "fix", "expected", "page"]
    body = []
    for f in item.findings:
        css = "na" if f.verdict == "n/a" else f.verdict
        body.append(
            [
                (f"<b>{_e(f.code)}</b>", ""),
                (_e(f.title), ""),
                (f'<span class="verdict verdict-{css}">{_e(f.verdict)}</span>', ""),
                (_e(f.summary), ""),
                (_evidence(f), ""),
                (_ids(f), ""),
                (_fix(f), ""),
                (_e(f.expected), ""),
                (f"<code>{_e(f.page)}</code>" if f.page else "", ""),
            ]
        )
    return _table(header, body, "findings")


def diagnosis_section(diagnosis: Diagnosis, source: str) -> str:
    """The diagnosis: per fine-tuned variant its counts and findings table."""
    out = ['<section id="diagnosis"><h2>Diagnosis: why fine-tuning helped or hurt</h2>']
    out.append(f'<p class="note">Findings {_e(source)}; pitfall codes P1–P12.</p>')
    if not diagnosis.variants:
        out.append("<p>No fine-tuned variant in this experiment: nothing to diagnose.</p>")
    for item in diagnosis.variants:
        counts = item.counts()
        out.append(f"<h3>{_e(item.variant)}: {_e(item.system)}</h3>")
        out.append(
            f'<p class="meta">Compared with {_e(item.baseline or "(none)")}. '
            + ", ".join(f"{counts[v]} {_e(v)}" for v in ("fail", "warn", "ok", "n/a"))
            + "</p>"
        )
        if item.findings:
            out.append(findings_table(item))
        else:
            out.append("<p>No check ran on this variant.</p>")
    out.append("</section>")
    return "".join(out)


# --------------------------------------------------------------------------- the page


def build_report(experiment_dir: Path) -> tuple[str, WrittenReport]:
    """The report's HTML and what it holds (``path`` left as the experiment folder)."""
    experiment_dir = check_experiment_dir(Path(experiment_dir))
    summary = read_json(experiment_dir / "summary.json")
    rows = summary.get("rows")
    if not isinstance(rows, list):
        raise InputFormatError(
            experiment_dir / "summary.json",
            "expected a `rows` list (the before/after table), found none",
            fix="rerun `inpars run` on the experiment's config to finish it",
        )
    measures = [str(m) for m in summary.get("measures") or []]
    name = str(summary.get("experiment") or experiment_dir.name)
    figures = _Figures()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>InPars Lab report: {_e(name)}</title>",
        f"<style>{STYLE}</style>",
        plotly_script(),
        "</head><body>",
        f"<h1>{_e(name)}</h1>",
        f'<p class="meta">Dataset {_e(summary.get("dataset"))}; {_e(summary.get("test_queries"))} '
        f"test queries; {len(rows)} systems; measures {_e(', '.join(measures))}. Written by "
        "<code>inpars report</code> from the experiment's summary.json and diagnosis.</p>",
        '<section id="summary"><h2>Before / after</h2>',
        _notes(summary),
        summary_table(rows, measures),
    ]
    for measure in measures:
        parts.append(figures.html(rows, measure, f"Δ {measure} vs the baseline, every depth"))
    parts.append("</section>")
    block = summary.get("no_overlap") or {}
    if isinstance(block.get("rows"), list):
        parts += [
            '<section id="no-overlap">',
            f"<h2>Only the {_e(block.get('test_queries'))} test queries without overlap</h2>",
            '<p class="note">The same systems without the test queries that share a relevant '
            "document with a query the reranker was trained or selected on; Δ against the same "
            "baselines.</p>",
            summary_table(block["rows"], measures),
        ]
        if measures:
            parts.append(
                figures.html(block["rows"], measures[0], f"Δ {measures[0]}, without overlap")
            )
        parts.append("</section>")
    diagnosis, source = load_diagnosis(experiment_dir)
    parts += [diagnosis_section(diagnosis, source), "</body></html>"]
    facts = WrittenReport(
        path=experiment_dir,
        systems=len(rows),
        figures=figures.count,
        variants=len(diagnosis.variants),
        findings=sum(len(v.findings) for v in diagnosis.variants),
        diagnosis_source=source,
    )
    logger.info("report of %s: %d systems, %d figures", name, len(rows), figures.count)
    return "\n".join(parts) + "\n", facts


def write_report(experiment_dir: Path, out: Path) -> WrittenReport:
    """Write the report of ``experiment_dir`` to the file ``out`` (atomically: a reader never
    sees half a file; an existing file is replaced, a folder is refused)."""
    out = Path(out)
    if out.is_dir():
        raise InputFormatError(
            out,
            "expected a file name for the HTML report, found a folder",
            fix=f"give a file, e.g. --out {out / 'report.html'}",
        )
    text, facts = build_report(experiment_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_text(out) as handle:
        handle.write(text)
    return replace(facts, path=out)
