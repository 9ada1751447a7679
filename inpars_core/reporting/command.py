"""``inpars report RUNS_DIR/EXPERIMENT --out report.html``: the sub-command's flags and handler,
kept out of :mod:`inpars_core.cli` (listed in its ``COMMAND_MODULES``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_parser(sub: Any, register: Callable[[str], Callable[..., Any]]) -> None:
    """Add the ``report`` sub-parser to ``sub`` and register its handler with ``register``
    (the CLI's ``command`` decorator)."""
    p = sub.add_parser(
        "report",
        help="one self-contained HTML file of an experiment (tables, figures, diagnosis)",
        description="Write the experiment's summary tables, its Δ figures (plotly, embedded) "
        "and its diagnosis (diagnosis.json, else computed without model probes) into one HTML "
        "file that opens without network access.",
    )
    p.add_argument("experiment", help="the experiment folder, RUNS_DIR/EXPERIMENT")
    p.add_argument("--out", required=True, help="the HTML file to write (e.g. report.html)")
    register("report")(run_report)


def run_report(args: argparse.Namespace) -> int:
    """Write the report and print where it is and what it holds."""
    from inpars_core.reporting.html import write_report

    written = write_report(Path(args.experiment), Path(args.out))
    print(
        f"report: {written.path} ({written.systems} systems, {written.figures} figures, "
        f"{written.findings} findings over {written.variants} fine-tuned variants; "
        f"diagnosis {written.diagnosis_source})"
    )
    return 0
