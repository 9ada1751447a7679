"""The dashboard in a real browser: ``streamlit run`` on 127.0.0.1 over the smoke experiment,
driven by headless Debian Chromium (``apt-get install chromium``) through Playwright. Every page
is visited, one widget per page is used, no exception may show, and a screenshot of each page
is saved under ``test-output/screenshots/``."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-output" / "screenshots"
EXPERIMENT = "scifact-smoke"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
RUNNING = '[data-testid="stApp"][data-test-script-state="running"]'

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.integration,  # a Streamlit server and a headless browser
    pytest.mark.skipif(
        not CHROMIUM.is_file(), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hand_made_diagnosis(experiment: Path) -> dict:
    """A diagnosis.json for the smoke experiment: the hf-default variant with a failing finding
    that links to its training run, a warning, an ok and an n/a finding (unsorted)."""
    summary = json.loads((experiment / "summary.json").read_text())
    tuned = next(
        r for r in summary["rows"] if r.get("variant") == "hf-default" and "finetune" in r["stages"]
    )
    key = tuned["stages"]["finetune"].rsplit("/", 1)[-1]
    finding = {"evidence": {}, "ids": [], "fix": {}, "expected": "", "page": ""}
    findings = [
        {**finding, "code": "P1", "title": "pair encoding", "verdict": "ok", "summary": "Fine."},
        {**finding, "code": "P12", "title": "noise", "verdict": "n/a", "summary": "One seed."},
        {
            **finding, "code": "P2", "title": "silent MSE", "verdict": "fail",
            "summary": "Regression on 0/1 labels.", "fix": {"finetune.objective": "bce"},
            "evidence": {"probe_std": [2.0, 1.0, 0.2], "steps": [0, 1, 2], "first_loss": 0.3},
            "ids": [str(summary["test_query_ids"][0])], "page": f"training?runs=finetune/{key}",
        },
        {**finding, "code": "P7", "title": "false negatives", "verdict": "warn",
         "summary": "Top-5."},
    ]  # fmt: skip
    return {
        "experiment": EXPERIMENT,
        "variants": [
            {
                "variant": "hf-default",
                "system": tuned["system"],
                "baseline": "",
                "findings": findings,
            }
        ],
    }


@pytest.fixture(scope="module")
def served_runs(smoke_runs_dir: Path, tmp_path_factory) -> Path:
    """The smoke experiment seen through symbolic links (the shared folder is never written)
    plus a hand-made ``diagnosis.json`` for the Diagnosis page."""
    runs = tmp_path_factory.mktemp("served")
    folder = runs / EXPERIMENT
    folder.mkdir()
    for child in (smoke_runs_dir / EXPERIMENT).iterdir():
        if child.name != "diagnosis.json":
            (folder / child.name).symlink_to(child)
    (folder / "diagnosis.json").write_text(json.dumps(hand_made_diagnosis(folder)))
    return runs


@pytest.fixture(scope="module")
def server(served_runs: Path, tmp_path_factory) -> Iterator[str]:
    """``streamlit run dashboard/app.py -- --runs-dir <served runs>`` on a free local port."""
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal",
        "--", "--runs-dir", str(served_runs),
    ]  # fmt: skip
    with open(log, "w") as handle:
        process = subprocess.Popen(
            command, cwd=ROOT, env=dict(os.environ), stdout=handle, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium (Playwright's own browser download cannot work here)."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def wait_idle(page, after_action: bool = False) -> None:
    """Wait for the script run to finish (after an action, first for the rerun to start)."""
    if after_action:
        with contextlib.suppress(sync_api.TimeoutError):  # the rerun may be quicker
            page.wait_for_selector(RUNNING, timeout=3_000)
    page.wait_for_selector(IDLE, timeout=120_000)


def use_overview(page, runs_dir: Path) -> None:
    page.locator('[data-testid="stRadio"]').get_by_text("all", exact=True).click()
    wait_idle(page, after_action=True)
    page.wait_for_url("**depth=all**", timeout=30_000)
    sync_api.expect(page.get_by_text("Before / after")).to_be_visible()


def shown_findings(page) -> list[tuple[str, str, str]]:
    """(code, title, verdict) of the finding expanders, in page order."""
    found = []
    for text in page.locator('[data-testid="stExpander"] summary').all_inner_texts():
        head, verdict = text.strip().rsplit(" — ", 1)
        code, title = head.split(" ", 1)[1].split(" · ", 1)
        found.append((code, title, verdict.strip()))
    return found


def use_diagnosis(page, runs_dir: Path) -> None:
    from inpars_core.diagnosis.findings import Diagnosis

    recorded = json.loads((runs_dir / EXPERIMENT / "diagnosis.json").read_text())
    item = Diagnosis.from_dict(recorded).variants[0]
    sync_api.expect(page.locator('[data-testid="stExpander"]').first).to_be_visible()
    assert shown_findings(page) == [(f.code, f.title, f.verdict) for f in item.findings]
    for finding in item.findings:
        if finding.verdict == "fail":  # expanded: its summary shows
            sync_api.expect(page.get_by_text(finding.summary)).to_be_visible()
    page.wait_for_url("**variant=hf-default**", timeout=30_000)


def use_synthetic(page, runs_dir: Path) -> None:
    box = page.get_by_label("Search (text or id)")
    box.fill("syn-")
    box.press("Enter")
    wait_idle(page, after_action=True)
    page.wait_for_url("**search=syn-**", timeout=30_000)
    sync_api.expect(page.get_by_text("Source document").first).to_be_visible()


def use_encodings(page, runs_dir: Path) -> None:
    sync_api.expect(page.get_by_text("(the seed's bug)")).to_be_visible()
    page.locator('[data-testid="stRadio"]').get_by_text("typed", exact=True).click()
    wait_idle(page, after_action=True)
    sync_api.expect(page.get_by_label("Query", exact=True)).to_be_visible()
    page.wait_for_url("**src=typed**", timeout=30_000)


def hf_default_label(runs_dir: Path) -> str:
    """``system @depth`` of the hf-default variant's reported fine-tuned row (interpolated with
    BM25 exactly when the baseline is), as the per-query page names it."""
    summary = json.loads((runs_dir / EXPERIMENT / "summary.json").read_text())
    depth = summary["depths"][0]
    base = next(r for r in summary["rows"] if r["system"] == summary["baselines"][str(depth)])
    tuned = next(
        r
        for r in summary["rows"]
        if r["kind"] == "synthetic"
        and r["family"] == "cross-encoder"
        and r["variant"] == "hf-default"
        and r["depth"] == depth
        and r["bm25_weight"] == base["bm25_weight"]
    )
    return f"{tuned['system']} @{depth}"


def use_per_query(page, runs_dir: Path) -> None:
    # opened from a shared link: run B comes from ?b=
    sync_api.expect(page.get_by_text(hf_default_label(runs_dir)).first).to_be_visible()
    slider = page.get_by_role("slider").first
    slider.focus()
    slider.press("ArrowRight")
    wait_idle(page, after_action=True)
    sync_api.expect(page.get_by_role("slider").first).to_have_value("25")


def use_training(page, runs_dir: Path) -> None:
    page.get_by_text("Log-scale loss").click()
    wait_idle(page, after_action=True)
    sync_api.expect(page.get_by_role("switch", name="Log-scale loss")).to_be_checked()


VISITS: list[tuple[str, str, str, Callable]] = [
    ("1-overview", "", "Overview", use_overview),
    ("1b-diagnosis", "diagnosis", "Diagnosis", use_diagnosis),
    ("2-synthetic", "synthetic", "Synthetic queries", use_synthetic),
    ("3-encodings", "encodings", "Encodings", use_encodings),
    ("4-per-query", "per-query", "Per-query comparison", use_per_query),
    ("5-training", "training", "Training", use_training),
]


def test_every_page_in_a_real_browser(server: str, browser, served_runs: Path) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for name, path, title, use in VISITS:
        query = f"exp={EXPERIMENT}"
        if path == "per-query":
            query += "&b=" + urllib.parse.quote(hf_default_label(served_runs))
        page.goto(f"{server}/{path}?{query}")
        wait_idle(page)
        sync_api.expect(page.locator("h1").first).to_have_text(title, timeout=60_000)
        use(page, served_runs)
        assert page.locator('[data-testid="stException"]').count() == 0, name
        assert "exp=scifact-smoke" in page.url, page.url
        page.set_viewport_size({"width": 1400, "height": 2400})  # the app scrolls inside
        page.wait_for_timeout(500)  # let the charts lay out again
        page.screenshot(path=str(SHOTS / f"{name}.png"))
        page.set_viewport_size({"width": 1400, "height": 1000})
    # a finding's link opens the page that shows it, on what it names
    page.goto(f"{server}/diagnosis?exp={EXPERIMENT}")
    wait_idle(page)
    page.locator('[data-testid="stPageLink"] a').first.click()
    wait_idle(page, after_action=True)
    sync_api.expect(page.locator("h1").first).to_have_text("Training", timeout=60_000)
    page.wait_for_url("**runs=hf-default**", timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    # the sidebar navigation keeps the experiment
    page.get_by_role("link", name="Overview").click()
    wait_idle(page, after_action=True)
    sync_api.expect(page.locator("h1").first).to_have_text("Overview")
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()
    assert not errors, errors
    assert {f"{v[0]}.png" for v in VISITS} <= {p.name for p in SHOTS.glob("*.png")}
