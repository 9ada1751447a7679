"""The dashboard, page by page, with Streamlit's AppTest over the smoke experiment produced by the
real pipeline (``smoke_runs_dir``), and over damaged copies of it (missing files, an interrupted
run, unreadable JSON): every page renders without an exception and shows the numbers the
artifacts hold, or says which file is missing."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import urllib.parse
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
EXPERIMENT = "scifact-smoke"
PAGES = ["overview", "diagnosis", "synthetic", "encodings", "per_query", "training"]


@pytest.fixture(scope="module")
def smoke(smoke_runs_dir: Path) -> Path:
    """The smoke experiment folder."""
    folder = smoke_runs_dir / EXPERIMENT
    assert (folder / "summary.json").is_file()
    return folder


@pytest.fixture(scope="module")
def summary(smoke: Path) -> dict:
    """Its summary.json."""
    return json.loads((smoke / "summary.json").read_text())


def row(summary: dict, system: str) -> dict:
    """The summary row of one system."""
    return next(r for r in summary["rows"] if r["system"] == system)


def label(r: dict) -> str:
    """How the pages name a row: ``system @depth``."""
    return f"{r['system']} @{'full' if r['depth'] is None else r['depth']}"


def bm25_row(summary: dict) -> dict:
    """The BM25 row (the first stage, depth ``full``)."""
    (found,) = [r for r in summary["rows"] if r["kind"] == "bm25"]
    return found


def baseline_row(summary: dict, depth: int) -> dict:
    """The row the Δ at ``depth`` are computed against (named in ``baselines`` and flagged)."""
    found = row(summary, summary["baselines"][str(depth)])
    assert found["baseline"] is True and found["depth"] == depth
    return found


def tuned_row(summary: dict, variant: str, depth: int) -> dict:
    """The reported row of a variant's fine-tuned cross-encoder at ``depth``: interpolated with
    BM25 exactly when the baseline is."""
    weight = baseline_row(summary, depth)["bm25_weight"]
    (found,) = [
        r
        for r in summary["rows"]
        if r["kind"] == "synthetic"
        and r["family"] == "cross-encoder"
        and r["variant"] == variant
        and r["depth"] == depth
        and r["bm25_weight"] == weight
    ]
    assert found["training"]["model"]  # fine-tuned cross-encoder rows say what they trained
    return found


@pytest.fixture(autouse=True)
def smoke_is_not_written(request):
    """The smoke experiment is shared by the whole session: no test here may change it (a test
    that writes works on a copy). Checked around every test that uses it."""
    if "smoke_runs_dir" not in request.fixturenames:
        yield
        return
    root: Path = request.getfixturevalue("smoke_runs_dir")

    def listing() -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    before = listing()
    yield
    after = listing()
    assert after == before, sorted(set(after.items()) ^ set(before.items()))[:10]


def open_page(runs_dir: Path, page: str, monkeypatch, **params: str) -> AppTest:
    """Run the app on ``page`` with the runs dir and query parameters, asserting no exception."""
    monkeypatch.setenv("INPARS_RUNS_DIR", str(runs_dir))
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.query_params.update(params)
    app.run()
    if page != "overview":
        app.switch_page(f"app_pages/{page}.py")
        app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def metrics(app: AppTest) -> dict[str, str]:
    """Label -> shown value of every metric on the page."""
    return {m.label: m.value for m in app.metric}


def frame_with(app: AppTest, column: str):
    """The first dataframe on the page that has ``column``."""
    for element in app.dataframe:
        if column in element.value.columns:
            return element.value
    raise AssertionError(f"no dataframe with a {column!r} column")


def per_query_values(smoke: Path, row_index: int, block: str = "all") -> dict[str, float]:
    """query_id -> nDCG@10 of one summary row, read straight from per_query.tsv."""
    with open(smoke / "per_query.tsv", encoding="utf-8") as handle:
        return {
            r["query_id"]: float(r["value"])
            for r in csv.DictReader(handle, delimiter="\t")
            if r["block"] == block and int(r["row"]) == row_index and r["measure"] == "nDCG@10"
        }


def verdict_records(smoke: Path) -> dict[str, dict]:
    """query_id -> its line of the filter stage's verdicts.jsonl."""
    (path,) = (smoke / "stages" / "filter").glob("*/verdicts.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["query_id"]: r for r in lines}


def test_dashboard_imports_no_evaluation_compare_or_filtering():
    """The dashboard reads what the pipeline wrote: no module of it imports the evaluation,
    the paired comparison or the filters (checked on the syntax tree of every .py file)."""
    import ast

    banned = {"inpars_core.evaluation", "inpars_core.compare", "inpars_core.filtering"}
    files = sorted((ROOT / "dashboard").rglob("*.py"))
    assert len(files) >= 8
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Call) and "import" in ast.unparse(node.func):
                names = [a.value for a in node.args if isinstance(a, ast.Constant)]
            for name in names:
                if any(name == b or name.startswith(b + ".") for b in banned):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not found, found


def test_runs_dir_comes_from_the_cli_or_the_environment(monkeypatch):
    from dashboard import loading

    monkeypatch.setenv("INPARS_RUNS_DIR", "/from/env")
    assert loading.default_runs_dir(["--runs-dir", "/from/args"]) == "/from/args"
    assert loading.default_runs_dir([]) == "/from/env"
    monkeypatch.delenv("INPARS_RUNS_DIR")
    assert loading.default_runs_dir([]) == "runs"


def test_cli_dashboard_starts_streamlit_on_the_app(tmp_path, monkeypatch):
    from inpars_core import processes
    from inpars_core.cli import main

    calls = []
    monkeypatch.setattr(
        processes, "run_forwarding_signals", lambda cmd, env: calls.append((cmd, env)) or 0
    )
    assert main(["dashboard", "--runs-dir", str(tmp_path), "--port", "9999"]) == 0
    ((command, env),) = calls
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(APP)
    assert command[command.index("--server.port") + 1] == "9999"
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[-3:] == ["--", "--runs-dir", str(tmp_path.resolve())]
    assert env["INPARS_RUNS_DIR"] == str(tmp_path.resolve())


def _free_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads child processes from /proc")
@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_stopping_the_cli_stops_the_streamlit_server(tmp_path, signum):
    """``inpars dashboard`` forwards SIGTERM/SIGINT: no orphaned server keeps the port."""
    import signal
    import subprocess
    import sys
    import time

    port = _free_port()
    command = [sys.executable, "-m", "inpars_core.cli", "dashboard"]
    command += ["--runs-dir", str(tmp_path), "--port", str(port), "--address", "127.0.0.1"]
    log = (tmp_path / "cli.log").open("w")
    cli = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while not _accepts(port):
            assert cli.poll() is None, (tmp_path / "cli.log").read_text()
            assert time.monotonic() < deadline, "the dashboard did not open its port in 90 s"
            time.sleep(0.2)
        children = _children(cli.pid)
        assert children, "the CLI runs the server as its child"
        cli.send_signal(getattr(signal, signum))
        code = cli.wait(timeout=20)
        deadline = time.monotonic() + 10
        while _accepts(port) or any(_alive(pid) for pid in children):
            assert time.monotonic() < deadline, f"port {port} still open or alive: {children}"
            time.sleep(0.2)
        assert code == 0, (tmp_path / "cli.log").read_text()
    finally:
        for pid in [*children, cli.pid]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        cli.wait()
        log.close()


@pytest.mark.integration
def test_cached_experiment_follows_the_files(smoke, tmp_path):
    from dashboard import loading

    folder = tmp_path / "runs" / "copy"
    folder.mkdir(parents=True)
    summary = json.loads((smoke / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps(summary))
    assert loading.get_experiment(str(tmp_path / "runs"), "copy").summary == summary
    summary["test_queries"] = 99
    (folder / "summary.json").write_text(json.dumps(summary))
    later = (folder / "summary.json").stat().st_mtime + 5
    os.utime(folder / "summary.json", (later, later))
    assert loading.get_experiment(str(tmp_path / "runs"), "copy").summary["test_queries"] == 99


@pytest.mark.integration
def test_dataset_comes_from_the_folder_the_run_used(smoke, summary, tmp_path, monkeypatch):
    from dashboard import loading

    assert Path(summary["dataset_path"]).is_dir()
    runs = tmp_path / "runs"
    _copy(smoke, runs / EXPERIMENT)
    # no dataset under $INPARS_DATA_DIR: the dashboard still finds the folder the run used
    monkeypatch.setenv("INPARS_DATA_DIR", str(tmp_path / "no-datasets"))
    loading.load_dataset.clear()
    try:
        experiment = loading.get_experiment(str(runs), EXPERIMENT)
        assert loading.dataset_source(experiment) == summary["dataset_path"]
        assert len(loading.dataset_for(experiment).corpus) > 0
        app = open_page(runs, "per_query", monkeypatch, exp=EXPERIMENT)
        assert "missing" not in _messages(app)
        base = baseline_row(summary, summary["depths"][0])
        assert metrics(app)["nDCG@10 A"] == f"{base['measures']['nDCG@10']:.4f}"
        # an older summary (no dataset_path) falls back to the name, looked up in the data dir
        older = {k: v for k, v in summary.items() if k != "dataset_path"}
        (runs / EXPERIMENT / "summary.json").write_text(json.dumps(older))
        later = (runs / EXPERIMENT / "summary.json").stat().st_mtime + 5
        os.utime(runs / EXPERIMENT / "summary.json", (later, later))
        experiment = loading.get_experiment(str(runs), EXPERIMENT)
        # experiment.json (the manifest) still records the folder
        assert loading.dataset_source(experiment) == summary["dataset_path"]
        (runs / EXPERIMENT / "experiment.json").unlink()  # older runs wrote no manifest
        experiment = loading.get_experiment(str(runs), EXPERIMENT)
        assert loading.dataset_source(experiment) == summary["dataset"]
        with pytest.raises(loading.MissingArtifactError, match="Dataset 'scifact' is missing"):
            loading.dataset_for(experiment)
    finally:
        loading.load_dataset.clear()


def test_older_summaries_keep_their_baseline_and_tuned_rows():
    from dashboard import loading, views

    legacy = {
        "dataset": "scifact",
        "depths": [10],
        "measures": ["nDCG@10"],
        "rows": [
            {"system": "bm25", "kind": "bm25", "depth": None, "measures": {"nDCG@10": 0.5}},
            {"system": "base (zero-shot)", "kind": "zero-shot", "depth": 10,
             "measures": {"nDCG@10": 0.6}},
            {"system": "bce", "kind": "fine-tuned", "depth": 10, "variant": "bce",
             "measures": {"nDCG@10": 0.7}, "delta": {"nDCG@10": 0.1},
             "significant": {"nDCG@10": False}},
        ],
    }  # fmt: skip
    experiment = loading.Experiment("old", "/nowhere/old", legacy, (), ())
    assert views.baselines(experiment) == {"10": "base (zero-shot)"}
    assert views.default_pair(experiment) == ("base (zero-shot) @10", "bce @10")
    display, _ = views.overview_frames(experiment, "10")
    assert list(display["baseline"]) == ["", "✓", ""]
    assert list(display["nDCG@10"]) == ["0.5000", "0.6000", "0.7000 (+0.1000)"]
    # a new summary names its baseline: a row called "base (zero-shot)" is not one by name
    renamed = {**legacy, "baselines": {}}
    assert views.baselines(loading.Experiment("new", "/nowhere/new", renamed, (), ())) == {}


# --------------------------------------------------------------------------- the pages


@pytest.mark.integration
def test_overview_shows_the_summary_numbers(smoke_runs_dir, summary, monkeypatch):
    from dashboard import views

    app = open_page(smoke_runs_dir, "overview", monkeypatch, exp=EXPERIMENT)
    shown = metrics(app)
    assert shown["Test queries"] == str(summary["test_queries"])
    assert shown["Systems"] == str(len(summary["rows"]))
    table = frame_with(app, "system")
    depth = summary["depths"][0]
    at_depth = [r for r in summary["rows"] if r["depth"] in (None, depth)]
    assert list(table["system"]) == [r["system"] for r in at_depth]
    assert list(table["kind"]) == [r["kind"] for r in at_depth]
    assert set(table["kind"]) == {"bm25", "supervised", "synthetic", "zero-shot"}
    base = baseline_row(summary, depth)
    by_system = table.set_index("system")
    assert list(table[table["baseline"] == "✓"]["system"]) == [base["system"]]
    assert by_system.loc[base["system"], "nDCG@10"] == f"{base['measures']['nDCG@10']:.4f}"
    bm25 = bm25_row(summary)
    assert by_system.loc[bm25["system"], "nDCG@10"] == f"{bm25['measures']['nDCG@10']:.4f}"
    tuned = tuned_row(summary, "bce", depth)
    cell = by_system.loc[tuned["system"], "nDCG@10"]
    assert cell.startswith(f"{tuned['measures']['nDCG@10']:.4f} (")
    assert f"({tuned['delta']['nDCG@10']:+.4f}" in cell
    assert cell.endswith("*)") == tuned["significant"]["nDCG@10"]
    training = tuned["training"]
    kept = by_system.loc[tuned["system"], views.MODEL_KEPT]
    assert kept.startswith(f"{training['kept_step']}/{training['final_step']} ")
    assert f"@ {training['best_step']}; {training['dev']} dev)" in kept
    # how to read the table: the baseline, the Holm family and the overlap, as the summary says
    captions = " ".join(c.value for c in app.caption)
    assert f"depth {depth}: `{base['system']}`" in captions
    assert summary["holm_family_text"] and summary["holm_family_text"] in captions
    assert summary["overlap"]["text"] and summary["overlap"]["text"] in captions
    # the block without the overlapping test queries (the smoke config asks for it)
    block = summary["no_overlap"]
    assert block["test_queries"] == summary["test_queries"] - len(summary["overlap"]["overlapping"])
    assert any(
        f"Only the {block['test_queries']} test queries without overlap" in h.value
        for h in app.subheader
    )
    tables = [e.value for e in app.dataframe if "system" in e.value.columns]
    assert len(tables) == 2
    clean = tables[1].set_index("system")
    clean_rows = [r for r in block["rows"] if r["depth"] in (None, depth)]
    assert list(clean.index) == [r["system"] for r in clean_rows]
    for r in clean_rows:
        assert clean.loc[r["system"], "nDCG@10"].startswith(f"{r['measures']['nDCG@10']:.4f}")
    # the paired tests are the pipeline's, as summary.json records them
    paired = frame_with(app, "Wilcoxon p").set_index("run")
    assert paired.index[0] == base["system"]
    assert paired.loc[tuned["system"], "delta"] == pytest.approx(
        tuned["delta"]["nDCG@10"], abs=1e-9
    )
    assert [paired.loc[tuned["system"], k] for k in ("win", "tie", "loss")] == tuned[
        "wins_ties_losses"
    ]["nDCG@10"]
    assert summary["holm_family"] == "depth-measure"  # the same family: the same verdicts
    for r in summary["rows"]:
        if r["depth"] == depth and not r["baseline"]:
            assert paired.loc[r["system"], "delta"] == pytest.approx(
                r["delta"]["nDCG@10"], abs=1e-9
            )
            assert (paired.loc[r["system"], "significant"] == "*") == r["significant"]["nDCG@10"]
            p_values = r["p_values"]["nDCG@10"]
            assert paired.loc[r["system"], "t p"] == pytest.approx(p_values["t"], nan_ok=True)
            assert paired.loc[r["system"], "Wilcoxon p"] == pytest.approx(
                p_values["wilcoxon"], nan_ok=True
            )
    app.toggle(key="overview_paired_clean").set_value(True).run()  # without the overlap
    assert not app.exception
    paired = frame_with(app, "Wilcoxon p").set_index("run")
    clean_base = next(r for r in block["rows"] if r["system"] == base["system"])
    assert paired.loc[base["system"], "mean"] == pytest.approx(clean_base["measures"]["nDCG@10"])
    variants = frame_with(app, "objective").set_index("variant")
    assert set(variants.index) == {"bce", "hf-default"}
    assert variants.loc["hf-default", "objective"] == "hf-default"
    kept = json.loads(
        next((smoke_runs_dir / EXPERIMENT).glob("stages/filter/*/meta.json")).read_text()
    )
    assert (variants["kept"] == kept["counts"]["kept"]).all()
    assert app.query_params["exp"] == EXPERIMENT
    app.radio(key="overview_depth").set_value("all").run()
    assert not app.exception
    assert len(frame_with(app, "system")) == len(summary["rows"])
    assert app.query_params["depth"] == "all"


@pytest.mark.integration
def test_overview_exports(smoke_runs_dir, summary):
    from dashboard import export, loading, views
    from inpars_core.compare import latex_escape

    experiment = loading.get_experiment(str(smoke_runs_dir), EXPERIMENT)
    display, raw = views.overview_frames(experiment, "all")
    bm25 = bm25_row(summary)
    markdown = export.summary_markdown(experiment)  # the pipeline's own summary.md
    assert markdown == (smoke_runs_dir / EXPERIMENT / "summary.md").read_text()
    assert f"| {bm25['system']} | bm25 | full |" in markdown
    latex = export.table_latex(display)
    assert latex.startswith(r"\begin{tabular}") and latex.rstrip().endswith(r"\end{tabular}")
    assert r"\toprule" in latex
    base = baseline_row(summary, summary["depths"][0])
    assert latex_escape(base["system"]) in latex
    tricky = "a\\b & c_d {x} ~^ → Δ $5 #1 %"
    assert export.latex_escape(tricky) == latex_escape(tricky)  # the library's escaping
    assert r"cost US\$" in latex and "cost US$" not in latex  # special characters escaped
    assert latex.count(r" \\") == len(display) + 1  # the header and one line per row
    rows = list(csv.DictReader(io.StringIO(export.table_csv(raw))))
    assert [r["system"] for r in rows] == [r["system"] for r in summary["rows"]]
    assert [r["kind"] for r in rows] == [r["kind"] for r in summary["rows"]]
    assert [r["baseline"] == "True" for r in rows] == [r["baseline"] for r in summary["rows"]]
    assert float(rows[0]["nDCG@10"]) == pytest.approx(bm25["measures"]["nDCG@10"])
    tuned = tuned_row(summary, "bce", summary["depths"][0])
    (tuned_csv,) = [r for r in rows if r["system"] == tuned["system"]]
    assert float(tuned_csv["t p nDCG@10"]) == pytest.approx(tuned["p_values"]["nDCG@10"]["t"])
    assert int(tuned_csv["best_step"]) == tuned["training"]["best_step"]
    _, clean_raw = views.overview_frames(experiment, "all", without_overlap=True)
    assert list(clean_raw["nDCG@10"]) == pytest.approx(
        [r["measures"]["nDCG@10"] for r in summary["no_overlap"]["rows"]]
    )
    # the paired tests on the queries without overlap agree with that block of the summary
    depth = summary["depths"][0]
    clean = views.paired_frame(experiment, str(depth), "nDCG@10", without_overlap=True)
    clean = clean.set_index("run")
    base_name = summary["baselines"][str(depth)]
    assert clean.index[0] == base_name
    clean_rows = {r["system"]: r for r in summary["no_overlap"]["rows"] if r["depth"] == depth}
    assert clean.loc[base_name, "mean"] == pytest.approx(
        clean_rows[base_name]["measures"]["nDCG@10"]
    )
    assert len(clean) == len(clean_rows)
    for name, r in clean.iloc[1:].iterrows():
        assert r["delta"] == pytest.approx(clean_rows[name]["delta"]["nDCG@10"], abs=1e-9)
        assert [r["win"], r["tie"], r["loss"]] == clean_rows[name]["wins_ties_losses"]["nDCG@10"]
    table_md = export.table_markdown(clean.reset_index())
    assert table_md.count("\n") == len(clean) + 2 and f"| {base_name} |" in table_md
    png = export.table_png(display, "smoke")
    assert png.startswith(b"\x89PNG") and len(png) > 5000


@pytest.mark.integration
def test_synthetic_queries_page(smoke_runs_dir, smoke, monkeypatch):
    app = open_page(smoke_runs_dir, "synthetic", monkeypatch, exp=EXPERIMENT)
    generated = (next((smoke / "stages" / "generate").iterdir()) / "queries.jsonl").read_text()
    lines = [json.loads(line) for line in generated.splitlines() if line.strip()]
    filter_meta = json.loads(next((smoke / "stages" / "filter").glob("*/meta.json")).read_text())
    shown = metrics(app)
    assert shown["Generated"] == str(len(lines))
    assert shown["Kept"] == str(filter_meta["counts"]["kept"])
    assert shown["Dropped"] == str(len(lines) - filter_meta["counts"]["kept"])
    table = frame_with(app, "verdict")
    dropped = table[table["verdict"] == "dropped"]
    dropped_by = filter_meta["counts"]["dropped_by"]
    assert len(dropped) == len(lines) - filter_meta["counts"]["kept"] >= 1
    assert (dropped["reasons"] != "").all()
    for filter_name, count in dropped_by.items():
        assert (dropped["dropped by"].str.contains(filter_name)).sum() == count
    # the copy filters' drops are highlighted as copies: every one the stage made is checked
    checked = {"example-copy": 0, "document-copy": 0}
    for _, r in dropped.iterrows():
        if "example-copy" in r["dropped by"]:
            assert "few-shot" in r["flags"]
            checked["example-copy"] += 1
        if "document-copy" in r["dropped by"]:
            assert "copies document" in r["flags"]
            checked["document-copy"] += 1
    assert checked == {name: dropped_by.get(name, 0) for name in checked}
    assert sum(checked.values()) >= 1, "the smoke run dropped no copy: nothing was checked"
    # search narrows the table; choosing a query mirrors it into the URL
    word = lines[0]["text"].split()[-1]
    app.text_input(key="synthetic_search").set_value(word).run()
    assert not app.exception
    narrowed = frame_with(app, "verdict")
    assert 1 <= len(narrowed) <= len(lines)
    assert all(word.casefold() in t.casefold() for t in narrowed["text"])
    assert app.query_params["search"] == word
    kept = table[table["verdict"] == "kept"]["query_id"].iloc[0]
    app.text_input(key="synthetic_search").set_value("").run()
    app.selectbox(key="synthetic_query").set_value(kept).run()
    assert app.query_params["q"] == kept
    negatives = frame_with(app, "neg_doc_id")
    mined = [
        json.loads(line)
        for line in next((smoke / "stages" / "triples").glob("*/triples.jsonl"))
        .read_text()
        .splitlines()
    ]
    expected = {(t["neg_doc_id"], t["neg_rank"]) for t in mined if t["query_id"] == kept}
    assert set(zip(negatives["neg_doc_id"], negatives["neg_rank"], strict=True)) == expected
    # the verdicts and the measured values are those of verdicts.jsonl, the prompt is the
    # prompt.json template filled with the query's document cut to max_document_words words
    from inpars_core.datasets import load_beir_folder

    records = verdict_records(smoke)
    assert set(records) == {line["query_id"] for line in lines}
    (prompt_path,) = (smoke / "stages" / "generate").glob("*/prompt.json")
    prompt = json.loads(prompt_path.read_text())
    corpus = load_beir_folder(
        Path(json.loads((smoke / "summary.json").read_text())["dataset_path"])
    )
    dropped_id = dropped["query_id"].iloc[0]
    for query_id in (kept, dropped_id):
        app.selectbox(key="synthetic_query").set_value(query_id).run()
        assert not app.exception
        shown_verdicts = frame_with(app, "reason")
        expected_verdicts = records[query_id]["verdicts"]
        assert list(shown_verdicts["filter"]) == [v["filter"] for v in expected_verdicts]
        assert list(shown_verdicts["kept"]) == [v["kept"] for v in expected_verdicts]
        assert list(shown_verdicts["reason"]) == [v["reason"] or "" for v in expected_verdicts]
        assert list(shown_verdicts["value"]) == pytest.approx(
            [float("nan") if v["value"] is None else v["value"] for v in expected_verdicts],
            nan_ok=True,
        )
        row = table.set_index("query_id").loc[query_id]
        assert row["verdict"] == ("kept" if records[query_id]["kept"] else "dropped")
        document = corpus.corpus[records[query_id]["doc_id"]].contents
        body = " ".join(document.split()[: prompt["max_document_words"]])
        filled = prompt["template"].replace(prompt["document_placeholder"], body)
        codes = [c.value for c in app.code]
        assert filled in codes and "{document}" not in filled
        if prompt["chat"]:
            assert prompt["system_message"] in codes


@pytest.mark.integration
def test_encodings_page(smoke_runs_dir, monkeypatch):
    from dashboard import loading, views
    from inpars_core.reranking.encoding import PAIR_ENCODINGS, EncodingConfig, explain_encoding
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs

    app = open_page(smoke_runs_dir, "encodings", monkeypatch, exp=EXPERIMENT)
    experiment = loading.get_experiment(str(smoke_runs_dir), EXPERIMENT)
    model = views.rerank_models(experiment)[app.selectbox(key="enc_model").value]
    query, _doc_id, document = views.sample_pairs(experiment)[app.selectbox(key="enc_pair").value]
    max_length = int(app.number_input(key="enc_max_length").value)
    assert max_length == views.default_max_length(experiment)
    reranker = load_reranker(model, ScoringConfig(device="cpu"))
    scores = [
        score_pairs(reranker, [(query, document)], EncodingConfig(mode, max_length))[0]
        for mode in PAIR_ENCODINGS
    ]
    shown = [m.value for m in app.metric if m.label == "Score"]
    assert shown == [f"{s:.4f}" for s in scores]  # pair, zero-types, separate, side by side
    assert [m.value for m in app.metric if m.label == "[CLS]"] == ["1", "1", "2"]
    type1 = [m.value for m in app.metric if m.label == "Type-1 tokens"]
    assert int(type1[0]) > 0 and type1[1:] == ["0", "0"]  # zero-types: every type 0
    assert any("2 [CLS] tokens" in e.value for e in app.error)  # the separate encoding's bug
    assert any("not told apart" in e.value for e in app.error)  # zero-types and separate
    assert any("switch 0 → 1" in s.value for s in app.success)  # the pair encoding is right
    side = frame_with(app, "untruncated length").set_index("encoding")
    assert list(side.index) == list(PAIR_ENCODINGS)
    for mode in PAIR_ENCODINGS:  # the tokenizer's own account of the same pair
        explained = explain_encoding(
            reranker.tokenizer, query, document, EncodingConfig(mode, max_length), 2
        )
        assert side.loc[mode, "length"] == sum(explained["attention_mask"])
        assert side.loc[mode, "truncated"] == explained["truncated"]
    assert side.loc["zero-types", "length"] == side.loc["pair", "length"]
    # what each rerank stage recorded in its meta.json: the smoke experiment reranks with pair
    recorded = frame_with(app, "type-1 share")
    assert set(recorded["encoding"]) == {"pair"} and (recorded["type-1 share"] > 0).all()
    assert (recorded["[CLS] per pair"] == 1.0).all() and not recorded["all types 0"].any()
    total = len(loading.dataset_for(experiment).corpus)
    assert metrics(app)["Documents"] == f"{min(loading.CORPUS_SAMPLE, total)} of {total}"
    app.radio(key="enc_source").set_value("typed").run()
    app.text_input(key="enc_query").set_value("does aspirin prevent heart attacks").run()
    assert not app.exception
    assert app.query_params["src"] == "typed"
    assert len([m for m in app.metric if m.label == "Score"]) == len(PAIR_ENCODINGS)


@pytest.mark.integration
def test_per_query_page(smoke_runs_dir, smoke, summary, monkeypatch):
    app = open_page(smoke_runs_dir, "per_query", monkeypatch, exp=EXPERIMENT)
    depth = summary["depths"][0]
    base, tuned = baseline_row(summary, depth), tuned_row(summary, "bce", depth)
    # the defaults: the baseline before, the first variant's reported fine-tuned row after
    assert app.selectbox(key="pq_a").value == label(base)
    assert app.selectbox(key="pq_b").value == label(tuned)
    shown = metrics(app)
    assert [shown["Wins"], shown["Ties"], shown["Losses"]] == [
        str(v) for v in tuned["wins_ties_losses"]["nDCG@10"]
    ]
    assert shown["nDCG@10 A"] == f"{base['measures']['nDCG@10']:.4f}"
    assert shown["nDCG@10 B"] == f"{tuned['measures']['nDCG@10']:.4f}"
    # the per-query Δ are the differences of the two rows' values in per_query.tsv
    before, after = per_query_values(smoke, base["row"]), per_query_values(smoke, tuned["row"])
    assert set(before) == set(after) == set(summary["test_query_ids"])
    options = app.selectbox(key="pq_query").options
    assert len(options) == len(before)
    for option in options:
        query_id, delta_text = option.split(" — ")[:2]
        assert delta_text == f"Δ {after[query_id] - before[query_id]:+.3f}"
    from dashboard import loading, views

    experiment = loading.get_experiment(str(smoke_runs_dir), EXPERIMENT)
    frame = views.per_query_delta(experiment, base, tuned)
    for query_id, r in frame.iterrows():
        assert r["before"] == before[query_id] and r["after"] == after[query_id]
        assert r["delta"] == after[query_id] - before[query_id]
    movement = frame_with(app, "moved up by")
    assert len(movement) >= 1 and (movement["rel"] > 0).all()
    assert len(frame_with(app, "synthetic query")) >= 1
    assert any("Among the kept queries of bce" in c.value for c in app.caption)
    other = tuned_row(summary, "hf-default", depth)
    app.selectbox(key="pq_b").set_value(label(other)).run()
    assert not app.exception
    assert metrics(app)["nDCG@10 B"] == f"{other['measures']['nDCG@10']:.4f}"
    assert app.query_params["b"] == label(other)
    assert any("Among the kept queries of" in c.value and "hf-default" in c.value
               for c in app.caption)  # fmt: skip


@pytest.mark.integration
def test_per_query_view_opens_from_a_shared_link(smoke_runs_dir, summary, monkeypatch):
    depth = summary["depths"][0]
    bm25, other = bm25_row(summary), tuned_row(summary, "hf-default", depth)
    app = open_page(
        smoke_runs_dir, "per_query", monkeypatch, exp=EXPERIMENT, a=label(bm25), b=label(other)
    )
    assert app.selectbox(key="pq_a").value == label(bm25) == "BM25 @full"
    assert app.selectbox(key="pq_b").value == label(other)
    assert metrics(app)["nDCG@10 A"] == f"{bm25['measures']['nDCG@10']:.4f}"
    assert metrics(app)["nDCG@10 B"] == f"{other['measures']['nDCG@10']:.4f}"


@pytest.mark.integration
def test_training_page(smoke_runs_dir, smoke, monkeypatch):
    app = open_page(smoke_runs_dir, "training", monkeypatch, exp=EXPERIMENT)
    table = frame_with(app, "objective").set_index("run")
    assert set(table.index) == {"bce", "hf-default"}
    for meta_path in (smoke / "stages" / "finetune").glob("*/meta.json"):
        meta = json.loads(meta_path.read_text())
        label = meta["config"]["objective"]
        step0 = table.loc[label, "dev nDCG@10 step 0"]
        assert step0 == pytest.approx(meta["counts"]["step0_dev_ndcg10"])
        assert table.loc[label, "best step"] == meta["counts"]["best_step"]
        # the pairs trained on, as the trainer counted them in the stage's meta.json
        counts = meta["counts"]
        assert table.loc[label, "positives"] == counts["positives"] > 0
        assert table.loc[label, "negatives"] == counts["negatives"] >= counts["positives"]
        assert table.loc[label, "pos:neg"] == counts["pos_neg_ratio"]
        per_epoch = ", ".join(map(str, counts["pairs_per_epoch"]))
        assert table.loc[label, "pairs per epoch"] == per_epoch
    assert table.loc["hf-default", "problem_type"] == "regression"  # the silent MSE (P2)
    assert table.loc["bce", "problem_type"] == "multi_label_classification"
    assert any("hf-default" in e.value and "P2" in e.value for e in app.error)
    assert len(app.get("plotly_chart")) >= 5
    app.multiselect(key="train_runs").set_value(["bce"]).run()
    assert not app.exception
    assert list(frame_with(app, "objective")["run"]) == ["bce"]
    assert app.query_params["runs"] == "bce"


# --------------------------------------------------------------------------- bad runs dirs


def _copy(smoke: Path, target: Path) -> Path:
    """A copy without model weights and the Lucene index (not read by the dashboard)."""
    shutil.copytree(smoke, target, ignore=shutil.ignore_patterns("*.safetensors", "index"))
    return target


@pytest.fixture(scope="module")
def damaged_runs(smoke: Path, tmp_path_factory) -> Path:
    """A runs dir with an interrupted experiment, a corrupt one and an empty one."""
    runs = tmp_path_factory.mktemp("damaged")
    broken = _copy(smoke, runs / "interrupted")
    (broken / "summary.json").unlink()
    stages = broken / "stages"
    tuned = next(
        p
        for p in (stages / "finetune").iterdir()
        if json.loads((p / "meta.json").read_text())["config"]["objective"] == "hf-default"
    )
    work = tuned.rename(tuned.with_name(tuned.name + ".work"))
    (work / "meta.json").unlink()
    next((stages / "filter").glob("*/queries.jsonl")).unlink()  # the kept queries
    queries = next((stages / "generate").glob("*/queries.jsonl"))
    queries.write_text(queries.read_text() + '{"query_id": "syn-half')
    old = _copy(smoke, runs / "old")  # written before the pipeline recorded these files
    for name in ("verdicts.jsonl", "prompt.json"):
        next(old.glob(f"stages/*/*/{name}")).unlink()
    (old / "per_query.tsv").unlink()
    corrupt = _copy(smoke, runs / "corrupt")
    (corrupt / "summary.json").write_text('{"rows": [')
    (runs / "empty" / "stages").mkdir(parents=True)
    return runs


def _messages(app: AppTest) -> str:
    return " ".join(m.value for m in [*app.main.warning, *app.main.error, *app.main.info])


@pytest.mark.parametrize("page", PAGES)
def test_missing_runs_dir_says_so(tmp_path, page, monkeypatch):
    app = open_page(tmp_path / "nowhere", page, monkeypatch)
    assert "runs directory is missing" in " ".join(w.value for w in app.sidebar.warning)
    assert str(tmp_path / "nowhere") in _messages(app)


@pytest.mark.integration
def test_interrupted_experiment_says_what_is_missing(damaged_runs, monkeypatch):
    expected = {
        "overview": ["summary.json` is missing", "unfinished stages", "finetune/"],
        "synthetic": ["No filter stage is recorded"],  # summary.json links the stages
        "encodings": ["weights is missing", "model.safetensors"],
        "per_query": ["summary.json is missing"],  # per-query values come with the summary
        "training": [],
    }
    for page, needles in expected.items():
        app = open_page(damaged_runs, page, monkeypatch, exp="interrupted")
        text = _messages(app)
        for needle in needles:
            assert needle in text, (page, needle, text)
        if page == "training":
            labels = app.multiselect(key="train_runs").options
            assert any("(unfinished)" in label for label in labels)
        if page == "synthetic":  # the queries written so far are still shown
            assert metrics(app)["Generated"] != "0"


@pytest.mark.integration
def test_old_runs_name_the_missing_record(damaged_runs, monkeypatch):
    from dashboard import loading, views

    app = open_page(damaged_runs, "synthetic", monkeypatch, exp="old")
    assert "verdicts.jsonl is missing" in _messages(app)
    assert "/stages/filter/" in _messages(app)
    app = open_page(damaged_runs, "per_query", monkeypatch, exp="old")
    assert "per_query.tsv is missing" in _messages(app)
    assert str(damaged_runs / "old" / "per_query.tsv") in _messages(app)
    app = open_page(damaged_runs, "overview", monkeypatch, exp="old")
    assert len(frame_with(app, "system")) >= 1  # the summary itself still reads
    experiment = loading.get_experiment(str(damaged_runs), "old")
    (generation,) = views.generations(experiment).values()
    with pytest.raises(loading.MissingArtifactError, match=r"prompt\.json is missing"):
        views.prompt_of(experiment, generation, "any")


@pytest.mark.integration
def test_corrupt_and_empty_experiments(damaged_runs, monkeypatch):
    app = open_page(damaged_runs, "overview", monkeypatch, exp="corrupt")
    assert "summary.json` cannot be read: not valid JSON" in _messages(app)
    for page in PAGES:
        app = open_page(damaged_runs, page, monkeypatch, exp="empty")
        assert "is missing" in _messages(app), page


def test_half_written_jsonl_line_is_skipped(tmp_path):
    from dashboard import loading

    path = tmp_path / "queries.jsonl"
    path.write_text('{"query_id": "a"}\n{"query_id": "b"}\n{"query_')
    rows, bad = loading.read_jsonl(path, "queries.jsonl")
    assert [r["query_id"] for r in rows] == ["a", "b"] and bad == 1
    with pytest.raises(loading.MissingArtifactError, match=r"nothing\.jsonl"):
        loading.read_jsonl(tmp_path / "nothing.jsonl", "nothing.jsonl")


# --------------------------------------------------------------------------- diagnosis


def diagnosis_findings() -> dict[str, list]:
    """Hand-made findings per variant (unsorted, as a writer may list them)."""
    from inpars_core.diagnosis.findings import Finding

    return {
        "hf-default": [
            Finding("P1", "pair encoding", "ok", "One [CLS]; types switch after [SEP]."),
            Finding(
                "P7",
                "false negatives",
                "warn",
                "40 % of negatives from BM25 top-5.",
                evidence={"top5_share": 0.4, "outscored": 3},
                ids=("q1/d9",),
                fix={"negatives.window": [30, 100]},
                expected="fewer false negatives",
                page="synthetic?verdict=dropped",
            ),
            Finding(
                "P2",
                "silent MSE",
                "fail",
                "Regression on 0/1 labels: probe std collapsed.",
                evidence={"first_loss": 0.25, "probe_std": [2.0, 1.0, 0.1], "steps": [0, 2, 4]},
                ids=("q1", "q2"),
                fix={"finetune.objective": "bce"},
                expected="nDCG@10 back to at least the base",
                page="training?runs=hf-default",
            ),
            Finding("P12", "noise", "n/a", "not checked: one seed only"),
            Finding(
                "P5",
                "lr and length",
                "warn",
                "lr 10× the recipe.",
                evidence={"lr": 1e-4, "dev": {"0": 0.5, "2": 0.45}},
                fix={"finetune.lr": 2e-6, "finetune.objective": "lce"},
            ),
        ],
        "bce": [Finding("P1", "pair encoding", "ok", "Fine.")],
    }


def write_diagnosis_json(folder: Path, systems: dict[str, tuple[str, str]]) -> object:
    """``diagnosis.json`` in ``folder`` from :func:`diagnosis_findings`; ``systems``: variant ->
    (its tuned system, its baseline system)."""
    from inpars_core.diagnosis.findings import Diagnosis, VariantDiagnosis

    diagnosis = Diagnosis(
        folder.name,
        tuple(
            VariantDiagnosis(name, *systems[name], tuple(findings))
            for name, findings in diagnosis_findings().items()
        ),
    )
    (folder / "diagnosis.json").write_text(diagnosis.to_json())
    return Diagnosis.from_dict(json.loads((folder / "diagnosis.json").read_text()))


@pytest.fixture
def diagnosed_runs(tmp_path: Path) -> Path:
    """A runs dir with one hand-made experiment: the summary.json and experiment.json the
    pipeline writes for the smoke config (no stage folders) and a hand-made diagnosis.json."""
    import dataclasses

    from inpars_core.artifacts import to_jsonable
    from inpars_core.experiments.config import load_config

    config = to_jsonable(dataclasses.asdict(load_config(ROOT / "configs" / "scifact-smoke.toml")))
    folder = tmp_path / "runs" / EXPERIMENT
    folder.mkdir(parents=True)
    (folder / "experiment.json").write_text(json.dumps({"config": config}))
    rows = [
        {"system": "base", "variant": None, "depth": 10, "baseline": True},
        {"system": "tuned hf", "variant": "hf-default", "depth": 10, "kind": "synthetic"},
        {"system": "tuned bce", "variant": "bce", "depth": 10, "kind": "synthetic"},
    ]
    summary = {"experiment": EXPERIMENT, "rows": rows, "test_query_ids": ["q1", "q2"]}
    (folder / "summary.json").write_text(json.dumps(summary))
    write_diagnosis_json(folder, {"hf-default": ("tuned hf", "base"), "bce": ("tuned bce", "base")})
    return tmp_path / "runs"


def shown_findings(app: AppTest) -> list[tuple[str, str, str]]:
    """(code, title, verdict) of every finding expander on the page, in page order."""
    found = []
    for expander in app.main.expander:
        head, verdict = expander.label.rsplit(" — ", 1)
        code, title = head.split(" ", 1)[1].split(" · ", 1)
        found.append((code, title, verdict))
    return found


def test_diagnosis_page_shows_the_findings_of_diagnosis_json(diagnosed_runs, monkeypatch):
    from inpars_core.diagnosis.findings import Diagnosis

    diagnosis = Diagnosis.from_dict(
        json.loads((diagnosed_runs / EXPERIMENT / "diagnosis.json").read_text())
    )
    app = open_page(diagnosed_runs, "diagnosis", monkeypatch, exp=EXPERIMENT)
    assert app.title[0].value == "Diagnosis"
    item = diagnosis.variant("hf-default")
    assert app.selectbox(key="diag_variant").value == "hf-default"  # the first variant
    assert shown_findings(app) == [(f.code, f.title, f.verdict) for f in item.findings]
    assert [f.code for f in item.findings] == ["P2", "P5", "P7", "P1", "P12"]  # by severity
    assert {m.label.split()[-1]: m.value for m in app.main.metric} == {
        "fail": "1", "warn": "2", "ok": "1", "n/a": "1"
    }  # fmt: skip
    text = " ".join(m.value for m in app.main.markdown)
    for finding in item.findings:
        assert finding.summary in text
    # the ids of P2 are test queries: links to the per-query comparison of tuned vs base
    assert "[`q1`](per-query?exp=scifact-smoke&a=base&b=tuned+hf&query=q1)" in text
    assert "`q1/d9`" in text  # a training pair: no page lists it, shown as text
    assert "**Expected:** nDCG@10 back to at least the base" in text
    assert '"finetune.objective" = "bce"' in [c.value for c in app.main.code]
    # P2's probe std per step is a chart; its first loss is in the evidence table
    assert len(app.get("plotly_chart")) == 2  # P2's probe_std, P5's dev per step
    evidence = app.main.dataframe[0].value
    assert dict(zip(evidence["name"], evidence["value"], strict=True)) == {"first_loss": "0.25"}
    # the other variant, from the selectbox, mirrored into ?variant=
    app.selectbox(key="diag_variant").set_value("bce").run()
    assert not app.exception
    assert shown_findings(app) == [("P1", "pair encoding", "ok")]
    assert app.query_params["variant"] == "bce"
    assert "No fail or warn finding" in _messages(app)


def test_diagnosis_page_opens_on_the_variant_of_a_link(diagnosed_runs, monkeypatch):
    app = open_page(diagnosed_runs, "diagnosis", monkeypatch, exp=EXPERIMENT, variant="bce")
    assert app.selectbox(key="diag_variant").value == "bce"
    assert shown_findings(app) == [("P1", "pair encoding", "ok")]


def test_diagnosis_fix_button_writes_a_loadable_config(diagnosed_runs, monkeypatch):
    from inpars_core.experiments.config import load_config

    app = open_page(diagnosed_runs, "diagnosis", monkeypatch, exp=EXPERIMENT)
    preview = frame_with(app, "from finding")
    assert list(preview["setting"]) == ["finetune.objective", "finetune.lr", "negatives.window"]
    assert list(preview["from finding"]) == ["P2", "P5", "P7"]
    assert "P5 sets finetune.objective" in _messages(app)  # the conflict, said
    target = diagnosed_runs / EXPERIMENT / f"{EXPERIMENT}.fixed.toml"
    assert not target.exists()
    app.button(key="diag_fix_hf-default").click().run()
    assert not app.exception
    config = load_config(target)
    fixed = config.variant("hf-default-fixed")
    assert fixed.finetune.objective == "bce" and fixed.finetune.lr == 2e-6
    assert list(fixed.negatives.window) == [30, 100]
    assert config.variants["bce"] == {"finetune.objective": "bce"}  # the others unchanged
    assert str(target) in " ".join(s.value for s in app.main.success)
    command = f"inpars run {target} --runs-dir {diagnosed_runs} --variant hf-default-fixed"
    assert command in [c.value for c in app.main.code]


def test_diagnosis_fix_button_is_off_when_served(diagnosed_runs, monkeypatch):
    monkeypatch.setenv("INPARS_DASHBOARD_FIXED_RUNS_DIR", "1")
    app = open_page(diagnosed_runs, "diagnosis", monkeypatch, exp=EXPERIMENT)
    assert app.button(key="diag_fix_hf-default").disabled
    assert shown_findings(app)[0] == ("P2", "silent MSE", "fail")


def test_diagnosis_page_without_diagnosis_json_says_how(diagnosed_runs, monkeypatch):
    (diagnosed_runs / EXPERIMENT / "diagnosis.json").unlink()
    app = open_page(diagnosed_runs, "diagnosis", monkeypatch, exp=EXPERIMENT)
    (info,) = app.main.info
    assert f"diagnosis.json is missing: `{diagnosed_runs / EXPERIMENT / 'diagnosis.json'}`" in (
        info.value
    )
    assert f"inpars diagnose {diagnosed_runs / EXPERIMENT}" in info.value
    assert "`inpars run` writes it" in info.value
    assert not app.main.expander


def test_diagnosis_page_names_an_unreadable_diagnosis_json(diagnosed_runs, monkeypatch):
    (diagnosed_runs / EXPERIMENT / "diagnosis.json").write_text('{"experiment": "x"}')
    app = open_page(diagnosed_runs, "diagnosis", monkeypatch, exp=EXPERIMENT)
    assert "diagnosis.json` cannot be read: not a diagnosis" in _messages(app)


def test_diagnosis_evidence_and_page_links():
    """Evidence split into a table, series and records; ``Finding.page`` into a page and its
    query parameters."""
    from dashboard import ui, views

    table, series, records = views.evidence_parts(
        {
            "lr": 1e-4, "objective": "hf-default", "ratio": {"a": 1, "b": None},
            "probe_std": [2.0, 0.5], "steps": [0, 100], "dev": {"0": 0.5, "100": 0.4},
            "pairs": [{"query_id": "q", "doc_id": "d"}], "worst": ["q1", "q2"],
        }
    )  # fmt: skip
    assert dict(zip(table["name"], table["value"], strict=True)) == {
        "lr": "0.0001", "objective": "hf-default", "ratio.a": "1", "ratio.b": "",
        "worst": "q1, q2",
    }  # fmt: skip
    assert series["probe_std"].to_dict("list") == {"step": [0, 100], "probe_std": [2.0, 0.5]}
    assert series["dev"].to_dict("list") == {"step": [0.0, 100.0], "dev": [0.5, 0.4]}
    assert records["pairs"].to_dict("records") == [{"query_id": "q", "doc_id": "d"}]
    assert ui.page_target("training?runs=finetune/ab&runs=base-train/cd") == (
        "app_pages/training.py", {"runs": ["finetune/ab", "base-train/cd"]}
    )  # fmt: skip
    assert ui.page_target("per-query?a=x&query=q1") == (
        "app_pages/per_query.py", {"a": "x", "query": "q1"}
    )  # fmt: skip
    assert ui.page_target("nowhere?x=1") is None


def mirror_experiment(experiment: Path, target: Path) -> Path:
    """``experiment`` seen through symbolic links (nothing copied, nothing of it written), minus
    its diagnosis.json: a test adds its own there."""
    target.mkdir(parents=True)
    for child in experiment.iterdir():
        if child.name != "diagnosis.json":
            (target / child.name).symlink_to(child)
    return target


@pytest.mark.integration
def test_diagnosis_links_open_the_pages_that_show_them(smoke, summary, tmp_path, monkeypatch):
    """On the smoke experiment: the diagnosis page renders, and every page a finding links to
    opens on what the link names: a training run by its stage folder, a row by its system
    name, a query set by its variant, a model by its stage and a pair by its query id."""
    from dashboard import ui

    depth = summary["depths"][0]
    pure = [r for r in summary["rows"] if r["kind"] == "synthetic" and not r["bm25_weight"]]
    tuned = next(r for r in pure if r["variant"] == "hf-default" and r["depth"] == depth)
    base = baseline_row(summary, depth)
    finetune = tuned["stages"]["finetune"].rsplit("/", 2)
    key = finetune[-1]
    query_id = str(summary["test_query_ids"][0])
    folder = mirror_experiment(smoke, tmp_path / "runs" / EXPERIMENT)
    write_diagnosis_json(
        folder,
        {"hf-default": (tuned["system"], base["system"]), "bce": (tuned["system"], "")},
    )
    pages = {
        f"training?runs=finetune/{key}": ("training", "train_runs", ["hf-default"]),
        f"training?runs=finetune/{key[:8]}": ("training", "train_runs", ["hf-default"]),
        "per-query?"
        + urllib.parse.urlencode({"a": base["system"], "b": tuned["system"], "query": query_id}): (
            "per_query",
            "pq_b",
            label(tuned),
        ),
        "synthetic?gen=hf-default&verdict=dropped": (
            "synthetic",
            "synthetic_verdict",
            ["dropped"],
        ),
        f"encodings?model=finetune/{key}&pair={query_id}": ("encodings", "enc_model", "hf-default"),
    }
    app = open_page(tmp_path / "runs", "diagnosis", monkeypatch, exp=EXPERIMENT)
    assert shown_findings(app)[0] == ("P2", "silent MSE", "fail")
    for page, (script, key_name, expected) in pages.items():
        target = ui.page_target(page)
        assert target is not None and target[0] == f"app_pages/{script}.py", page
        app = open_page(tmp_path / "runs", script, monkeypatch, exp=EXPERIMENT, **target[1])
        widget = app.multiselect if isinstance(expected, list) else app.selectbox
        assert widget(key=key_name).value == expected, page
        if script == "per_query":
            assert app.selectbox(key="pq_a").value == label(base)
            assert app.selectbox(key="pq_query").value == query_id
        if script == "synthetic":
            assert "hf-default" in app.selectbox(key="synthetic_gen").value
        if script == "encodings":
            assert app.selectbox(key="enc_pair").value.startswith(f"test {query_id}: ")
