"""Dashboard render time per page, warm and cold, on a 300-query x 1,000-document run pair.

Builds a real experiment folder ``<out>/scifact-bench/`` from SciFact's BM25 run of all 300 test
queries at depth 1,000 (``--bm25-run``, else ``runs/scifact-bm25/bm25-flat/run.trec`` when present,
else retrieved here with the library) and a perturbed copy of it (Gaussian noise on the scores,
seeded): rows ``bm25``, ``base (zero-shot)`` @1000 (the BM25 ranking) and ``perturbed`` @1000,
with ``summary.json`` computed by the library (evaluate, compare, Holm). The generation,
filtering, triples and training stages of the smoke experiment (``--smoke-runs-dir``, produced
with ``inpars run configs/scifact-smoke.toml`` when missing) are linked in so that every page
has something to show; the ``perturbed`` row is attributed to the smoke experiment's first
fine-tuned model.

Then every page is rendered with ``streamlit.testing.v1.AppTest``: once cold (Streamlit's caches
cleared; the Python modules already imported) and ``--repeats`` times warm (the same view rerun,
as after a click that changes nothing heavy); the median warm time must stay under 2 s.

Run: ``.venv/bin/python benchmarks/bench_dashboard.py [--out DIR] [--repeats 5]``.
Prints one JSON line per page, and writes them to ``--json-out`` when given.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["overview", "synthetic", "encodings", "per_query", "training"]
EXPERIMENT = "scifact-bench"
DEPTH = 1000
#: page -> (selectbox key, option to pick): timed as a new selection on a warm page
INTERACTIONS = {
    "per_query": ("pq_query", lambda options: options[len(options) // 2]),
    "synthetic": ("synthetic_query", lambda options: options[-1]),
}


def _bm25_run(args: argparse.Namespace, work: Path) -> Path:
    """The BM25 run of SciFact's 300 test queries at depth 1,000."""
    if args.bm25_run:
        return Path(args.bm25_run)
    shipped = ROOT / "runs" / "scifact-bm25" / "bm25-flat" / "run.trec"
    if shipped.is_file():
        return shipped
    from inpars_core.datasets import resolve_dataset
    from inpars_core.retrieval.bm25 import BM25Retriever, IndexConfig, build_index
    from inpars_core.runs import write_trec_run

    dataset = resolve_dataset("scifact")
    index = work / "index"
    if not index.exists():
        build_index(dataset, index, IndexConfig("flat"))
    run = BM25Retriever(index).retrieve(dataset.split_queries("test"), DEPTH)
    target = work / "bm25-scifact-test.run"
    write_trec_run(run, target, tag="bm25")
    return target


def _smoke_experiment(args: argparse.Namespace, work: Path) -> Path | None:
    """The smoke experiment whose synthetic-query and training stages are linked in."""
    if args.no_smoke:
        return None
    runs_dir = Path(args.smoke_runs_dir) if args.smoke_runs_dir else work / "smoke-runs"
    experiment = runs_dir / "scifact-smoke"
    if not (experiment / "summary.json").is_file():
        print(f"producing the smoke experiment in {runs_dir} (a few minutes)", file=sys.stderr)
        config = ROOT / "configs" / "scifact-smoke.toml"
        command = [sys.executable, "-m", "inpars_core.cli", "run", str(config)]
        subprocess.run(
            [*command, "--runs-dir", str(runs_dir)], check=True, stdout=subprocess.DEVNULL
        )
    return experiment


def _stage(root: Path, stage: str, key: str, config: dict, inputs: dict, counts: dict) -> Path:
    from inpars_core.artifacts import StageMeta, finish_meta

    folder = root / "stages" / stage / key
    folder.mkdir(parents=True, exist_ok=True)
    meta = StageMeta(stage=stage, config=config, inputs=inputs)
    meta.counts.update(counts)
    meta.timings["total_s"] = 0.0
    finish_meta(meta, folder / "meta.json")
    return folder


def build_experiment(args: argparse.Namespace, out: Path) -> Path:
    """Write ``out/scifact-bench`` (a complete experiment folder) and return it."""
    from inpars_core.compare import compare
    from inpars_core.datasets import resolve_dataset
    from inpars_core.evaluation import evaluate
    from inpars_core.records import ScoredDoc
    from inpars_core.runs import read_trec_run, write_trec_run

    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    root = out / EXPERIMENT
    shutil.rmtree(root, ignore_errors=True)
    dataset = resolve_dataset("scifact")
    bm25 = read_trec_run(_bm25_run(args, work))
    queries = sorted(bm25)
    rng = random.Random(args.seed)
    perturbed = {}
    for query_id, docs in bm25.items():
        scores = [d.score for d in docs]
        spread = statistics.pstdev(scores) if len(scores) > 1 else 1.0
        perturbed[query_id] = [
            ScoredDoc(query_id, d.doc_id, d.score + rng.gauss(0.0, args.noise * spread))
            for d in docs
        ]
    smoke = _smoke_experiment(args, work)
    tuned_key, base_key = "bench-finetune", "bench-base"
    if smoke is not None:
        shutil.copytree(smoke / "stages", root / "stages")
        for stage in ("bm25-test", "rerank", "dense-rerank"):
            shutil.rmtree(root / "stages" / stage, ignore_errors=True)
        finetunes = sorted((root / "stages" / "finetune").iterdir())
        tuned_key = finetunes[0].name
        base_key = next((root / "stages" / "base-train").iterdir()).name
    bm25_dir = _stage(
        root, "bm25-test", "bench0bm25", {"k": DEPTH, "queries": queries}, {}, {"queries": 300}
    )
    write_trec_run(bm25, bm25_dir / "run.trec", tag="bm25")
    base_dir = _stage(
        root, "rerank", "bench0base", {"depth": DEPTH, "max_length": 64},
        {"model": base_key, "bm25": "bench0bm25"}, {},
    )  # fmt: skip
    write_trec_run(bm25, base_dir / "run.trec", tag="base")
    tuned_dir = _stage(
        root, "rerank", "bench0tuned", {"depth": DEPTH, "max_length": 64},
        {"model": tuned_key, "bm25": "bench0bm25"}, {},
    )  # fmt: skip
    write_trec_run(perturbed, tuned_dir / "run.trec", tag="perturbed")

    measures = ["nDCG@10", "RR@10", "R@100"]
    qrels = {q: j for q, j in dataset.qrels("test").items() if q in set(queries)}
    systems = [
        ("bm25", "baseline", None, bm25_dir, None),
        ("base (zero-shot)", "zero-shot", DEPTH, base_dir, None),
        ("perturbed", "fine-tuned", DEPTH, tuned_dir, "perturbed"),
    ]
    evaluations = {
        name: evaluate(read_trec_run(folder / "run.trec"), qrels, measures)
        for name, *_rest, folder, _variant in systems
    }
    at_depth = {k: v for k, v in evaluations.items() if k != "bm25"}
    rows = []
    for name, kind, depth, folder, variant in systems:
        row = {
            "system": name,
            "kind": kind,
            "depth": depth,
            "variant": variant,
            "run": str(folder / "run.trec"),
            "measures": evaluations[name].aggregate,
            "stage_seconds": {"bench": 0.0},
        }
        if name == "perturbed":
            row["delta"], row["significant"], row["wins_ties_losses"] = {}, {}, {}
            for measure in measures:
                result = compare(at_depth, "base (zero-shot)", measure).rows[0]
                row["delta"][measure] = result.delta
                row["significant"][measure] = result.significant
                row["wins_ties_losses"][measure] = [result.wins, result.ties, result.losses]
            row["generation_cost_usd"] = 0.0
        rows.append(row)
    summary = {
        "experiment": EXPERIMENT,
        "dataset": "scifact",
        "test_queries": len(qrels),
        "measures": measures,
        "depths": [DEPTH],
        "rows": rows,
        "wall_seconds": 0.0,
        "stages_ran": [],
        "stages_cached": [],
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    return root


def measure_pages(runs_dir: Path, repeats: int) -> list[dict]:
    """Cold and warm AppTest render times of every page."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["INPARS_RUNS_DIR"] = str(runs_dir)
    app = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=600)
    app.query_params["exp"] = EXPERIMENT
    app.run()
    results = []
    for page in PAGES:
        st.cache_data.clear()  # cold: nothing cached, as after a restart of the server
        st.cache_resource.clear()
        app.switch_page(f"app_pages/{page}.py")
        started = time.perf_counter()
        app.run()
        cold = time.perf_counter() - started
        warm = []
        for _ in range(repeats):
            started = time.perf_counter()
            app.run()
            warm.append(time.perf_counter() - started)
        problems = [e.value for e in app.exception] + [w.value for w in app.main.warning]
        interaction = None
        if page in INTERACTIONS:  # a new selection on a warm page (e.g. another query)
            key, pick = INTERACTIONS[page]
            widget = app.selectbox(key=key)
            widget.set_value(pick(widget.options).split(" — ", 1)[0])  # shown as "id — text"
            started = time.perf_counter()
            app.run()
            interaction = round(time.perf_counter() - started, 3)
        results.append(
            {
                "page": page,
                "cold_s": round(cold, 3),
                "warm_median_s": round(statistics.median(warm), 3),
                "warm_max_s": round(max(warm), 3),
                "new_selection_s": interaction,
                "under_2s": statistics.median(warm) < 2.0,
                "exceptions": len(app.exception),
                "messages": [str(p)[:120] for p in problems],
            }
        )
    return results


def main() -> None:
    """Build the experiment, render every page, print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/inpars-bench-dashboard")
    parser.add_argument("--bm25-run", help="TREC run of SciFact test queries (depth 1000)")
    parser.add_argument("--smoke-runs-dir", help="runs dir holding scifact-smoke/")
    parser.add_argument("--no-smoke", action="store_true", help="only the run pair")
    parser.add_argument("--noise", type=float, default=1.0, help="noise, in score std units")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json-out", help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    shared = ROOT.parent / "shared" / "datasets"  # as the Makefile and the tests do
    if "INPARS_DATA_DIR" not in os.environ and shared.is_dir():
        os.environ["INPARS_DATA_DIR"] = str(shared.resolve())
    out = Path(args.out)
    started = time.perf_counter()
    experiment = build_experiment(args, out)
    text = (experiment / "stages" / "rerank" / "bench0tuned" / "run.trec").read_text()
    lines = text.count("\n")
    print(
        f"experiment {experiment} built in {time.perf_counter() - started:.0f} s "
        f"({lines} lines per run)",
        file=sys.stderr,
    )
    results = measure_pages(out, args.repeats)
    for result in results:
        print(json.dumps(result))
    if args.json_out:
        Path(args.json_out).write_text("".join(json.dumps(r) + "\n" for r in results))


if __name__ == "__main__":
    main()
