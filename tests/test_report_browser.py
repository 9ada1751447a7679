"""The HTML report in a real browser, offline: headless Debian Chromium (``apt-get install
chromium``) through Playwright opens the ``file://`` report of the smoke experiment with every
non-file request aborted, and must attempt none, render every plotly figure and show the
findings of diagnosis.json. A screenshot is saved under ``test-output/screenshots/``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from inpars_core.diagnosis import Diagnosis
from tests.test_report import EXPERIMENT, smoke_copy

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.integration,  # a headless browser over the smoke experiment
    pytest.mark.skipif(
        not CHROMIUM.is_file(), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium (Playwright's own browser download cannot work here)."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def test_report_opens_offline_with_its_figures_and_findings(
    browser, smoke_runs_dir: Path, tmp_path: Path
) -> None:
    from inpars_core.reporting.html import write_report

    folder = smoke_copy(smoke_runs_dir / EXPERIMENT, tmp_path / EXPERIMENT)
    written = write_report(folder, tmp_path / "report.html")
    diagnosis = Diagnosis.from_dict(json.loads((folder / "diagnosis.json").read_text()))
    summary = json.loads((folder / "summary.json").read_text())

    context = browser.new_context(viewport={"width": 1500, "height": 1000}, offline=True)
    attempted: list[str] = []

    def refuse(route) -> None:
        attempted.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith("file:"), refuse)
    page = context.new_page()
    page.on("request", lambda r: None if r.url.startswith("file:") else attempted.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(written.path.as_uri())
    page.wait_for_selector("svg.main-svg", timeout=60_000)
    sync_api.expect(page.locator(".plotly")).to_have_count(written.figures)
    assert page.locator("svg.main-svg").count() >= written.figures
    first = summary["measures"][0]
    sync_api.expect(page.get_by_text(f"Δ {first} vs its baseline").first).to_be_visible()
    for item in diagnosis.variants:
        table = page.locator("table.findings").filter(has_text=item.findings[0].summary)
        sync_api.expect(table).to_have_count(1)
        for finding in item.findings:
            sync_api.expect(table.get_by_text(finding.summary, exact=True)).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "report.png"), full_page=True)
    context.close()
    assert not attempted, attempted
    assert not errors, errors
