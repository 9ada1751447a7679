"""The ``inpars`` command line: the only place configs are built, output printed, bars shown."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from inpars_core.errors import InparsError

logger = logging.getLogger("inpars")

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    """Register a sub-command handler."""

    def decorate(handler: Handler) -> Handler:
        _COMMANDS[name] = handler
        return handler

    return decorate


def _download_progress() -> Callable[[int, int | None], None]:
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int | None) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, unit="B", unit_scale=True, desc="download")
        bar["bar"].update(done - bar["bar"].n)

    return update


def _dataset(args: argparse.Namespace):
    from inpars_core.datasets import resolve_dataset

    return resolve_dataset(args.dataset, progress=_download_progress())


@command("index")
def _index(args: argparse.Namespace) -> int:
    from inpars_core.retrieval.bm25 import IndexConfig, build_index

    config = IndexConfig(fields=args.fields, threads=args.threads)
    build_index(_dataset(args), Path(args.out), config)
    print(f"index written to {args.out}")
    return 0


@command("retrieve")
def _retrieve(args: argparse.Namespace) -> int:
    from inpars_core.artifacts import StageMeta, finish_meta, sidecar_meta_path
    from inpars_core.retrieval.bm25 import BM25Config, BM25Retriever
    from inpars_core.runs import run_size, write_trec_run

    dataset = _dataset(args)
    config = BM25Config(k1=args.k1, b=args.b, threads=args.threads)
    queries = dataset.split_queries(args.split)
    meta = StageMeta(
        stage="retrieve",
        config={"retriever": "bm25", "k": args.k, **vars_of(config)},
        inputs={"dataset": dataset.name, "split": args.split, "index": args.index},
    )
    started = time.perf_counter()
    run = BM25Retriever(Path(args.index), config).retrieve(queries, args.k)
    meta.timings["retrieve_s"] = round(time.perf_counter() - started, 3)
    meta.counts.update(queries=len(run), lines=run_size(run))
    write_trec_run(run, Path(args.out), tag=f"bm25-{dataset.name}")
    finish_meta(meta, sidecar_meta_path(Path(args.out)))
    print(
        f"{run_size(run)} lines for {len(run)} queries written to {args.out} "
        f"in {meta.timings['retrieve_s']:.1f} s"
    )
    return 0


def vars_of(config: object) -> dict:
    """A config dataclass as a plain dict."""
    from dataclasses import asdict

    return asdict(config)  # type: ignore[arg-type]


def _evaluate_run(dataset, split: str, run_path: Path, measures: Sequence[str]):
    from inpars_core.evaluation import evaluate
    from inpars_core.runs import read_trec_run

    return evaluate(read_trec_run(run_path), dataset.qrels(split), measures)


@command("evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    from inpars_core.artifacts import StageMeta
    from inpars_core.evaluation import write_evaluation

    dataset = _dataset(args)
    evaluation = _evaluate_run(dataset, args.split, Path(args.run), args.measures)
    if args.out:
        meta = StageMeta(
            stage="evaluate",
            config={"measures": list(evaluation.measures)},
            inputs={"dataset": dataset.name, "split": args.split, "run": args.run},
        )
        write_evaluation(evaluation, Path(args.out), meta)
    if args.json:
        print(json.dumps(evaluation.aggregate))
    else:
        for name, value in evaluation.aggregate.items():
            print(f"{name:>12}  {value:.4f}")
    return 0


@command("compare")
def _compare(args: argparse.Namespace) -> int:
    from inpars_core.artifacts import META_FILE, StageMeta, atomic_path, atomic_text, finish_meta
    from inpars_core.compare import compare, to_csv, to_latex, to_markdown

    dataset = _dataset(args)
    names = _run_names(args.runs)
    baseline = names.get(args.baseline) or Path(args.baseline).stem
    if baseline not in names.values():
        raise InparsError(f"--baseline {args.baseline!r} is not one of --runs {args.runs}")
    evaluations = {
        names[path]: _evaluate_run(dataset, args.split, Path(path), [args.measure])
        for path in args.runs
    }
    measure = evaluations[baseline].measures[0]
    comparison = compare(evaluations, baseline, measure)
    render = {"md": to_markdown, "csv": to_csv, "latex": to_latex}
    print(render[args.format](comparison), end="")
    if args.out:
        with atomic_path(Path(args.out)) as staged:
            staged.mkdir()
            for suffix, function in (("md", to_markdown), ("csv", to_csv), ("tex", to_latex)):
                with atomic_text(staged / f"comparison.{suffix}") as handle:
                    handle.write(function(comparison))
            meta = StageMeta(
                stage="compare",
                config={"measure": measure, "baseline": baseline},
                inputs={
                    "dataset": dataset.name,
                    "split": args.split,
                    "runs": dict(zip(names.values(), names, strict=True)),
                },
            )
            finish_meta(meta, staged / META_FILE)
    return 0


def _run_names(paths: Sequence[str]) -> dict[str, str]:
    """Short, unique display names for run files (their stems, or paths when stems clash)."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return dict(zip(paths, stems, strict=True))
    return {p: p for p in paths}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="inpars", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_dataset(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dataset", required=True, help="BEIR name (scifact, ...) or folder")

    p = sub.add_parser("index", help="build a Lucene index of a dataset")
    with_dataset(p)
    p.add_argument("--fields", choices=["flat", "multifield"], default="flat")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True, help="index folder to create")

    p = sub.add_parser("retrieve", help="BM25 top-k for a split, as a TREC run")
    with_dataset(p)
    p.add_argument("--index", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--k1", type=float, default=0.9)
    p.add_argument("--b", type=float, default=0.4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True, help="run file to write")

    p = sub.add_parser("evaluate", help="evaluate a run with ir-measures")
    with_dataset(p)
    p.add_argument("--split", default="test")
    p.add_argument("--run", required=True)
    p.add_argument("--measures", nargs="+", default=["nDCG@10", "RR@10", "R@100", "R@1000"])
    p.add_argument("--json", action="store_true", help="print one JSON object measure -> value")
    p.add_argument("--out", help="folder for aggregate.json, per_query.tsv and meta.json")

    p = sub.add_parser("compare", help="paired comparison of runs against a baseline")
    with_dataset(p)
    p.add_argument("--split", default="test")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--baseline", required=True, help="one of --runs (path or file stem)")
    p.add_argument("--measure", default="nDCG@10")
    p.add_argument("--format", choices=["md", "csv", "latex"], default="md")
    p.add_argument("--out", help="folder for comparison.{md,csv,tex} and meta.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inpars`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return _COMMANDS[args.command](args)
    except InparsError as exc:
        print(f"inpars {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
