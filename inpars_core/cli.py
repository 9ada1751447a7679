"""The ``inpars`` command line: the only place configs are built, output printed, bars shown.

Every numeric flag is checked as it is parsed (:func:`positive_int`, :func:`non_negative_int`,
:func:`non_negative_float`, :func:`probability`, ...): a bad value stops the command with a one-line
error and exit code 2, as every :class:`~inpars_core.errors.InparsError` does.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from inpars_core.errors import InparsError
from inpars_core.stages import STAGE_MODULES, stage_module
from inpars_core.stages.common import first_queries

logger = logging.getLogger("inpars")


# --- argument types: one-line errors for bad numbers ------------------------------------------


def _parse(text: str, parse: Callable[[str], float], ok: Callable[[float], bool], expected: str):
    """``parse(text)`` when it succeeds and ``ok`` holds, else an ArgumentTypeError saying what
    was expected and what was found."""
    try:
        value = parse(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (k, depth, batch sizes, lengths, steps, counts)."""
    return _parse(text, int, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds, optional extra counts)."""
    return _parse(text, int, lambda v: v >= 0, "an integer >= 0")


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (weight decay, BM25 k1)."""
    return _parse(text, float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")


def probability(text: str) -> float:
    """A number in [0, 1] (fractions, Jaccard thresholds, interpolation weights)."""
    return _parse(text, float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535."""
    return _parse(text, int, lambda v: 1 <= v <= 65535, "a port number in [1, 65535]")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>`` and exit with code 2."""
        line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {line} (see '{self.prog} --help')\n")


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


def _run_file(path: str | Path, flag: str) -> Path:
    """The TREC run of a run artifact folder (or a plain run file)."""
    from inpars_core.stages.contract import open_input

    return open_input(path, "run", flag=flag)


def vars_of(config: object) -> dict:
    """A config dataclass as a plain dict."""
    from dataclasses import asdict

    return asdict(config)  # type: ignore[arg-type]


def _evaluate_run(
    dataset, split: str, run_path: Path, measures: Sequence[str], only: set[str] | None = None
):
    """Evaluate a run file on ``split``'s qrels (only the query ids in ``only`` when given)."""
    from inpars_core.evaluation import evaluate
    from inpars_core.runs import read_trec_run

    qrels = dataset.qrels(split)
    if only is not None:
        qrels = {q: judged for q, judged in qrels.items() if q in only}
    return evaluate(read_trec_run(_run_file(run_path, "--run")), qrels, measures)


@command("evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    from inpars_core.artifacts import StageMeta
    from inpars_core.evaluation import write_evaluation

    dataset = _dataset(args)
    only = None
    if args.max_queries is not None:
        only = set(first_queries(dataset, args.split, args.max_queries))
    evaluation = _evaluate_run(dataset, args.split, Path(args.run), args.measures, only)
    if args.out:
        meta = StageMeta(
            stage="evaluate",
            config={"measures": list(evaluation.measures), "max_queries": args.max_queries},
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


@command("encode")
def _encode(args: argparse.Namespace) -> int:
    from transformers import AutoConfig, AutoTokenizer

    from inpars_core.models import resolve_model_path
    from inpars_core.reranking.encoding import EncodingConfig, explain_encoding

    path = resolve_model_path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    type_vocab_size = int(getattr(AutoConfig.from_pretrained(path), "type_vocab_size", 1) or 1)
    config = EncodingConfig(mode=args.pair_encoding, max_length=args.max_length)
    explained = explain_encoding(tokenizer, args.query, args.doc, config, type_vocab_size)
    if args.json:
        print(json.dumps(explained))
    else:
        for token, segment in zip(explained["tokens"], explained["token_type_ids"], strict=True):
            print(f"{segment} {token}")
        for problem in explained["problems"]:
            print(f"problem: {problem}")
    return 0


@command("rerank")
def _rerank(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from inpars_core.artifacts import StageMeta, finish_meta, sidecar_meta_path
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker
    from inpars_core.reranking.stage import RerankConfig, ScoreCache, rerank
    from inpars_core.runs import read_trec_run, run_size, top_k, write_trec_run

    dataset = _dataset(args)
    config = RerankConfig(
        depth=args.depth,
        chunk_pairs=args.chunk_pairs,
        encoding=EncodingConfig(mode=args.pair_encoding, max_length=args.max_length),
        scoring=ScoringConfig(
            batch_size=args.batch_size, device=args.device, precision=args.precision
        ),
    )
    run = read_trec_run(_run_file(args.run, "--run"))
    queries = dataset.split_queries(args.split)
    reranker = load_reranker(args.model, config.scoring)
    cache = None if args.no_cache else ScoreCache.for_model(reranker, config)
    meta = StageMeta(
        stage="rerank",
        config=vars_of(config),
        inputs={
            "dataset": dataset.name,
            "split": args.split,
            "run": args.run,
            "model": args.model,
            "model_fingerprint": reranker.fingerprint,
        },
    )
    started = time.perf_counter()
    total = run_size({q: d for q, d in top_k(run, args.depth).items() if q in queries})
    with tqdm(total=total, desc="rerank", unit="pair") as bar:
        reranked, report = rerank(
            reranker, queries, run, dataset.corpus, config, cache, progress=bar.update
        )
    meta.timings["rerank_s"] = round(time.perf_counter() - started, 3)
    meta.counts.update(
        queries=len(reranked), pairs=report.pairs, scored=report.scored, cached=report.cached
    )
    write_trec_run(reranked, Path(args.out), tag=f"rerank-{Path(args.model).name}")
    finish_meta(meta, sidecar_meta_path(Path(args.out)))
    print(
        f"reranked {report.pairs} pairs ({report.cached} from cache) in "
        f"{meta.timings['rerank_s']:.1f} s -> {args.out}"
    )
    return 0


def _launch_rank() -> int:
    """This process's rank under ``torchrun`` / ``accelerate launch`` (0 otherwise)."""
    return int(os.environ.get("RANK", "0") or 0)


def _end_process_group() -> None:
    """Leave the process group a data-parallel launch opened (training has finished on every
    rank by then: its result was broadcast from rank 0)."""
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _show_progress(args: argparse.Namespace) -> bool:
    """--progress / --no-progress, else a progress bar only when stderr is a terminal."""
    flag = getattr(args, "progress", None)
    return sys.stderr.isatty() if flag is None else bool(flag)


def _progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="training progress bar with loss and ETA on stderr (default: when it is a terminal)",
    )


@command("dense-index")
def _dense_index(args: argparse.Namespace) -> int:
    import shutil

    from inpars_core.artifacts import atomic_path
    from inpars_core.dense.encoder import cached_dense_index
    from inpars_core.reranking.stage import cache_dir

    dataset = _dataset(args)
    index = cached_dense_index(
        dataset,
        args.model,
        cache_dir(),
        max_length=args.max_length,
        batch_size=args.batch_size,
        similarity=args.similarity,
    )
    with atomic_path(Path(args.out)) as staged:
        shutil.copytree(index.path, staged)
    print(
        f"dense index of {len(index.doc_ids)} documents ({args.model}, max_length "
        f"{args.max_length}, encoded in {index.encode_seconds:.1f} s, cached) -> {args.out}"
    )
    return 0


@command("dense")
def _dense(args: argparse.Namespace) -> int:
    from inpars_core.artifacts import StageMeta, finish_meta, sidecar_meta_path
    from inpars_core.dense.search import DenseRetriever
    from inpars_core.runs import read_trec_run, run_size, write_trec_run

    dataset = _dataset(args)
    queries = dataset.split_queries(args.split)
    retriever = DenseRetriever(Path(args.index))
    started = time.perf_counter()
    if args.rerank_run:
        first = read_trec_run(_run_file(args.rerank_run, "--rerank-run"))
        run = retriever.rerank(queries, first, depth=args.depth)
    else:
        run = retriever.retrieve(queries, k=args.k)
    meta = StageMeta(
        stage="dense",
        config={"k": args.k, "rerank_run": args.rerank_run, "depth": args.depth},
        inputs={"dataset": dataset.name, "split": args.split, "index": args.index},
    )
    meta.timings["search_s"] = round(time.perf_counter() - started, 3)
    meta.counts.update(queries=len(run), lines=run_size(run))
    write_trec_run(run, Path(args.out), tag="dense")
    finish_meta(meta, sidecar_meta_path(Path(args.out)))
    print(f"{run_size(run)} lines for {len(run)} queries -> {args.out}")
    return 0


@command("fuse")
def _fuse(args: argparse.Namespace) -> int:
    from inpars_core.artifacts import StageMeta, finish_meta, sidecar_meta_path
    from inpars_core.dense.fusion import normalised_score_sum, reciprocal_rank_fusion
    from inpars_core.runs import read_trec_run, write_trec_run

    runs = [read_trec_run(_run_file(p, "--runs")) for p in args.runs]
    if args.method == "rrf":
        fused = reciprocal_rank_fusion(runs, k=args.rrf_k, depth=args.depth)
    else:
        fused = normalised_score_sum(runs, depth=args.depth)
    write_trec_run(fused, Path(args.out), tag=f"fuse-{args.method}")
    meta = StageMeta(
        stage="fuse",
        config={"method": args.method, "rrf_k": args.rrf_k, "depth": args.depth},
        inputs={"runs": args.runs},
    )
    finish_meta(meta, sidecar_meta_path(Path(args.out)))
    print(f"fused {len(runs)} runs ({args.method}) -> {args.out}")
    return 0


@command("run")
def _run_experiment(args: argparse.Namespace) -> int:
    from inpars_core.experiments.config import load_config
    from inpars_core.experiments.summary import to_markdown

    config = load_config(Path(args.config))
    variants = args.variant or None
    for name in variants or []:
        config.variant(name)  # unknown names fail before anything runs
    root = Path(args.runs_dir) / config.experiment.name
    if args.dry_run:
        from inpars_core.experiments.dry_run import describe_model_selection, estimate_generation

        estimate = estimate_generation(config)
        selection = describe_model_selection(config)  # refuses label sources the data lacks
        print(
            f"experiment {config.experiment.name}: dataset {config.dataset.name}, variants "
            f"{', '.join(variants or config.variants) or 'default'}, depths "
            f"{list(config.rerank.depths)}, runs in {root}"
        )
        print(
            f"generation: {config.generator.backend}/{config.generator.model}, "
            f"{estimate['documents']} documents; {estimate['basis']}"
        )
        if "prompt_tokens" in estimate:
            print(
                f"  {estimate['prompt_tokens']:,} prompt tokens; expected cost "
                f"US${estimate['expected_cost_usd']:.4f} (at most "
                f"US${estimate['max_cost_usd']:.4f}) per variant with its own queries"
            )
        print(selection)
        return 0
    from tqdm import tqdm

    from inpars_core.experiments.runner import ExperimentRunner

    root.mkdir(parents=True, exist_ok=True)
    log_handler = logging.FileHandler(root / "run.log")
    log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(log_handler)

    def progress(name: str, total: int):
        bar = tqdm(total=total, desc=name, unit="item", leave=False)
        return bar.update

    summary = ExperimentRunner(config, Path(args.runs_dir), progress).run(variants)
    print(to_markdown(summary))
    print(f"summary: {root / 'summary.json'} and {root / 'summary.md'}")
    print(f"inspect it: .venv/bin/inpars dashboard --runs-dir {args.runs_dir}")
    return 0


def run_forwarding_signals(
    command_line: list[str], env: dict[str, str], grace_s: float = 10.0
) -> int:
    """Run ``command_line`` as a child process until it exits, forwarding SIGINT, SIGTERM and
    SIGHUP to it, so stopping this process stops the child too (no orphaned server keeps its
    port). The child runs in its own session, so a Ctrl-C in the terminal reaches it once, through
    this process. A child still running ``grace_s`` seconds after the first forwarded signal is
    killed. Returns the child's exit code, or 0 when it stopped on a forwarded signal."""
    import signal
    import subprocess

    forwarded: list[tuple[int, float]] = []  # (signal, when): one entry per signal received
    started: list[subprocess.Popen] = []

    def forward(signum: int, _frame: object) -> None:
        forwarded.append((signum, time.monotonic()))
        if started and started[0].poll() is None:
            logger.debug("forwarding signal %d to pid %d", signum, started[0].pid)
            started[0].send_signal(signum)

    # handlers first: a signal that arrives while the child starts is forwarded just after
    handled = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        child = subprocess.Popen(command_line, env=env, start_new_session=True)
        started.append(child)
        if forwarded:
            child.send_signal(forwarded[0][0])
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if forwarded and time.monotonic() - forwarded[0][1] > grace_s:
                    logger.warning(
                        "pid %d ignored the stop signal for %.0f s; killing it", child.pid, grace_s
                    )
                    child.kill()
    finally:
        for child in started:  # an exception in this process: do not leave the child behind
            if child.poll() is None:
                child.kill()
                child.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if forwarded else code


@command("dashboard")
def _dashboard(args: argparse.Namespace) -> int:
    import os

    app = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    if not app.is_file():
        raise InparsError(f"the dashboard app is not at {app}; run from a source checkout")
    runs_dir = Path(args.runs_dir).resolve()
    if not runs_dir.is_dir():
        print(f"note: {runs_dir} does not exist yet; the dashboard will say so", file=sys.stderr)
    command_line = [sys.executable, "-m", "streamlit", "run", str(app)]
    command_line += ["--server.port", str(args.port), "--server.address", args.address]
    command_line += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    command_line += ["--client.toolbarMode", "minimal"]
    command_line += ["--", "--runs-dir", str(runs_dir)]
    env = {**os.environ, "INPARS_RUNS_DIR": str(runs_dir)}
    print(
        f"dashboard on http://{args.address}:{args.port} (runs dir {runs_dir}); Ctrl-C stops it",
        flush=True,
    )
    return run_forwarding_signals(command_line, env)


def _add_stage_command(sub, name: str) -> None:
    """A sub-command of a stage module: flags from its Inputs and Config dataclasses, plus
    ``--dry-run`` when the module can preview (``preview(config, inputs) -> str``)."""
    from inpars_core.options import add_flags

    module = stage_module(name)
    p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
    add_flags(p, module.Inputs)
    add_flags(p, module.Config)
    if hasattr(module, "preview"):
        p.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    _progress_flag(p)
    p.add_argument("--out", required=True, help=f"{module.OUTPUT} artifact folder to write")
    _COMMANDS[name] = lambda args: _run_stage(name, args)


def _bar_progress(name: str, total: int) -> Callable[[int], None]:
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="item", leave=False).update


def _run_stage(name: str, args: argparse.Namespace) -> int:
    """flags -> config and inputs -> ``stages.<name>.run`` -> the published artifact.

    Under a data-parallel launch every rank runs the stage; rank 0 alone publishes and prints.
    """
    from inpars_core.options import from_args
    from inpars_core.stages.contract import partial_dir, publish, read_artifact

    module = stage_module(name)
    inputs = from_args(module.Inputs, args)
    config = from_args(module.Config, args)
    out = Path(args.out)
    carry = getattr(module, "RESUMABLE_FILES", ())
    if getattr(args, "dry_run", False):  # a resumable stage's plan counts what --out holds
        print(module.preview(config, inputs, **({"out": out} if carry else {})))
        return 0
    progress = _bar_progress if _show_progress(args) and _launch_rank() == 0 else None
    if _launch_rank() != 0:
        module.run(config, inputs, partial_dir(out), progress=None)
        _end_process_group()
        return 0
    with publish(out, module.OUTPUT, carry) as work:
        module.run(config, inputs, work, progress=progress)
    _end_process_group()
    print(module.describe(read_artifact(out)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = OneLineParser(prog="inpars", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_dataset(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dataset", required=True, help="BEIR name (scifact, ...) or folder")

    for name in STAGE_MODULES:
        _add_stage_command(sub, name)

    p = sub.add_parser("evaluate", help="evaluate a run with ir-measures")
    with_dataset(p)
    p.add_argument("--split", default="test")
    p.add_argument("--run", required=True)
    p.add_argument("--measures", nargs="+", default=["nDCG@10", "RR@10", "R@100", "R@1000"])
    p.add_argument(
        "--max-queries",
        type=positive_int,
        help="only the first N judged queries of --split (as 'inpars retrieve --max-queries')",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object measure -> value")
    p.add_argument("--out", help="folder for aggregate.json, per_query.tsv and meta.json")

    p = sub.add_parser("encode", help="show how a (query, document) pair is encoded")
    p.add_argument("--model", required=True, help="hub id, path, or minilm")
    p.add_argument("--query", required=True)
    p.add_argument("--doc", required=True)
    p.add_argument("--pair-encoding", choices=["pair", "separate"], default="pair")
    p.add_argument("--max-length", type=positive_int, default=256)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("rerank", help="rerank the top-k of a run with a cross-encoder")
    with_dataset(p)
    p.add_argument("--split", default="test")
    p.add_argument("--run", required=True)
    p.add_argument("--model", required=True, help="hub id, path, or a model we trained")
    p.add_argument("--depth", type=positive_int, default=100)
    p.add_argument("--pair-encoding", choices=["pair", "separate"], default="pair")
    p.add_argument("--max-length", type=positive_int, default=256)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16", "int8"], default="fp32")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the score cache")
    p.add_argument(
        "--chunk-pairs", type=positive_int, default=256, help="pairs scored between cache writes"
    )
    p.add_argument("--out", required=True)

    p = sub.add_parser("dense-index", help="encode a corpus with a bi-encoder (cached)")
    with_dataset(p)
    p.add_argument("--model", required=True, help="sentence-transformers id/path, or minilm")
    p.add_argument("--max-length", type=positive_int, default=256)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--similarity", choices=["cosine", "dot"], default="cosine")
    p.add_argument("--out", required=True)

    p = sub.add_parser("dense", help="exact dense retrieval, or dense reranking of a run")
    with_dataset(p)
    p.add_argument("--split", default="test")
    p.add_argument("--index", required=True)
    p.add_argument("--rerank-run", help="rerank this run's top --depth instead of retrieving")
    p.add_argument("--depth", type=positive_int, default=100)
    p.add_argument("--k", type=positive_int, default=1000)
    p.add_argument("--out", required=True)

    p = sub.add_parser("fuse", help="fuse runs: reciprocal rank fusion or normalised sum")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--method", choices=["rrf", "sum"], default="rrf")
    p.add_argument("--rrf-k", type=non_negative_int, default=60)
    p.add_argument("--depth", type=positive_int, default=1000)
    p.add_argument("--out", required=True)

    p = sub.add_parser("run", help="run an experiment config (TOML): every stage, cached")
    p.add_argument("config")
    p.add_argument("--variant", action="append", help="run only this variant (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="plan and cost estimate only")
    p.add_argument("--runs-dir", default="runs")

    p = sub.add_parser("dashboard", help="inspect experiments in a browser (Streamlit)")
    p.add_argument("--runs-dir", default="runs", help="folder holding <experiment>/ folders")
    p.add_argument("--port", type=port_number, default=8501)
    p.add_argument("--address", default="127.0.0.1", help="interface to listen on")

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
    """Entry point of the ``inpars`` console script: the exit code (2 for a bad command line
    or an :class:`InparsError`, with a one-line message on stderr)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a bad command line (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    # under a data-parallel launch only rank 0 logs progress; the other ranks only warn
    quiet = logging.INFO if _launch_rank() == 0 else logging.WARNING
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else quiet,
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
