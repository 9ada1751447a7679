"""The ``inpars`` command line: the only place configs are built, output printed, bars shown.

Every numeric flag is checked as it is parsed (:func:`positive_int`, :func:`non_negative_int`,
:func:`positive_float`, :func:`probability`, ...): a bad value stops the command with a one-line
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


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, budgets)."""
    return _parse(text, float, lambda v: math.isfinite(v) and v > 0, "a number > 0")


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (weight decay, BM25 k1)."""
    return _parse(text, float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")


def probability(text: str) -> float:
    """A number in [0, 1] (fractions, Jaccard thresholds, interpolation weights)."""
    return _parse(text, float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")


def warmup_fraction(text: str) -> float:
    """A number in [0, 1): the fraction of updates spent warming up."""
    return _parse(text, float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def finite_float(text: str) -> float:
    """Any finite number (e.g. a score margin)."""
    return _parse(text, float, math.isfinite, "a finite number")


def port_number(text: str) -> int:
    """A TCP port, 1 to 65535."""
    return _parse(text, int, lambda v: 1 <= v <= 65535, "a port number in [1, 65535]")


def rank_window(text: str) -> tuple[int, int]:
    """``A:B``: a 1-based inclusive window of ranks, 1 <= A <= B."""
    expected = "A:B with 1 <= A <= B (1-based BM25 ranks)"
    try:
        first, last = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not 1 <= first <= last:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return first, last


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


@command("compare")
def _compare(args: argparse.Namespace) -> int:
    from inpars_core.compare import compare_runs, to_csv, to_latex, to_markdown, write_comparison

    dataset = _dataset(args)
    comparison = compare_runs(dataset, args.split, args.runs, args.baseline, args.measure)
    render = {"md": to_markdown, "csv": to_csv, "latex": to_latex}
    print(render[args.format](comparison), end="")
    if args.out:
        write_comparison(comparison, Path(args.out), dataset, args.split, args.runs)
    return 0


@command("generate")
def _generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from inpars_core.generation.base import get_backend
    from inpars_core.generation.pricing import load_price_table, price_for
    from inpars_core.generation.prompts import resolve_prompt
    from inpars_core.generation.stage import (
        GenerationConfig,
        QueryFile,
        estimate_cost,
        generate_queries,
        sample_documents,
    )

    dataset = _dataset(args)
    prompt = resolve_prompt(
        args.prompt, dataset, seed=args.seed, max_document_words=args.max_doc_words
    )
    chat = args.backend == "openai" and args.api == "chat"
    config = GenerationConfig(
        backend=args.backend,
        model=args.model,
        prompt_id=prompt.prompt_id,
        num_docs=args.num_docs,
        seed=args.seed,
        max_tokens=args.max_tokens,
        max_cost_usd=args.max_cost,
        chat=chat,
    )
    documents = sample_documents(dataset, config, exclude=prompt.example_doc_ids)
    price = price_for(args.model, args.backend, load_price_table(args.price_table))
    out = Path(args.out)
    done = list(QueryFile(out).records) if out.exists() else []
    if args.dry_run or args.max_cost is not None:
        estimate = estimate_cost(documents, prompt, config, price, done)
        print(
            f"dry run: {estimate.documents} documents ({estimate.already_done} already done), "
            f"{estimate.prompt_tokens:,} prompt tokens ({estimate.method}), "
            f"~{estimate.expected_completion_tokens:,} completion tokens expected "
            f"(at most {estimate.max_completion_tokens:,}); "
            f"expected cost US${estimate.expected_cost_usd:.4f}, "
            f"at most US${estimate.max_cost_usd:.4f} "
            f"at US${price.prompt_per_million}/{price.completion_per_million} per 1M tokens"
        )
        if args.dry_run:
            return 0
    kwargs: dict = {"model": args.model}
    if args.backend == "openai":
        kwargs.update(
            base_url=args.base_url,
            api=args.api,
            concurrency=args.concurrency,
            logprobs=not args.no_logprobs,
        )
    backend = get_backend(args.backend, **kwargs)
    with tqdm(total=len(documents), initial=len(done), desc="generate", unit="query") as bar:
        report = generate_queries(
            backend, documents, prompt, config, out, price, on_record=lambda _: bar.update(1)
        )
    print(
        f"{report.generated} queries written to {out} ({report.skipped_done} already there) "
        f"in {report.seconds:.1f} s; cost US${report.spent_usd:.4f} "
        f"(file total US${report.total_usd:.4f})"
        + ("; stopped by --max-cost" if report.stopped_by_budget else "")
    )
    return 0


@command("filter")
def _filter(args: argparse.Namespace) -> int:
    from inpars_core.artifacts import StageMeta, read_meta_file, sidecar_meta_path
    from inpars_core.filter_stage import FilterConfig, run_filters, source_ranks, write_filtered
    from inpars_core.generation.stage import read_queries

    queries = read_queries(Path(args.queries))
    generation_meta = read_meta_file(sidecar_meta_path(Path(args.queries))) or {}
    examples = generation_meta.get("inputs", {}).get("example_queries", [])
    config = FilterConfig(
        top_fraction=args.top_fraction,
        top_k=args.top_k,
        round_trip_k=args.round_trip_k,
        near_duplicate_jaccard=args.near_duplicate_jaccard,
        min_words=args.min_words,
        max_words=args.max_words,
        max_document_overlap=args.max_document_overlap,
        example_copy_jaccard=None if args.keep_example_copies else args.example_copy_jaccard,
    )
    documents = ranks = None
    if args.dataset:
        documents = _dataset(args).corpus
    if args.round_trip_k is not None:
        if not args.index:
            raise InparsError("--round-trip-k needs --index (a BM25 index of the dataset)")
        from inpars_core.retrieval.bm25 import BM25Retriever

        ranks = source_ranks(queries, BM25Retriever(Path(args.index)), args.round_trip_k)
    kept, dropped, per_filter = run_filters(
        queries, config, documents=documents, example_queries=examples, ranks=ranks
    )
    meta = StageMeta(
        stage="filter",
        config=vars_of(config),
        inputs={"queries": args.queries, "dataset": args.dataset, "index": args.index},
        counts={"queries": len(queries), "kept": len(kept), "dropped_by": per_filter},
    )
    write_filtered(kept, dropped, Path(args.out), meta)
    total = max(1, len(queries))
    for name, count in per_filter.items():
        print(f"{name:>14}: drops {count:4d} of {len(queries)} ({100 * count / total:.1f}%)")
    print(f"kept {len(kept)} of {len(queries)} queries -> {args.out}")
    return 0


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


@command("triples")
def _triples(args: argparse.Namespace) -> int:
    from inpars_core.generation.stage import read_queries
    from inpars_core.negatives import (
        NegativesConfig,
        mine_triples,
        positives_from_qrels,
        positives_from_synthetic,
        write_triples,
    )
    from inpars_core.runs import read_trec_run

    dataset = _dataset(args)
    if bool(args.queries) == bool(args.split):
        raise InparsError("give exactly one of --queries (synthetic) or --split (qrels)")
    if args.queries:
        texts, positives = positives_from_synthetic(read_queries(Path(args.queries)))
    else:
        positives = positives_from_qrels(dataset.qrels(args.split))
        texts = {q: dataset.queries[q].text for q in positives if q in dataset.queries}
    if (args.teacher is None) != (args.false_negative_margin is None):
        raise InparsError(
            "the false-negative guard needs both --teacher and --false-negative-margin"
        )
    config = NegativesConfig(
        negatives=args.negatives,
        window=args.window,
        random_negatives=args.random_negatives,
        balanced=args.balanced,
        seed=args.seed,
        false_negative_margin=args.false_negative_margin,
    )
    teacher = fingerprint = None
    if args.teacher is not None:
        from inpars_core.training.teachers import teacher_fingerprint

        teacher = _guard_teacher(args, texts, dataset)
        fingerprint = teacher_fingerprint(args.teacher)
    triples, report = mine_triples(
        texts,
        positives,
        read_trec_run(_run_file(args.run, "--run")),
        sorted(dataset.corpus),
        config,
        teacher,
        teacher_fingerprint=fingerprint,
    )
    write_triples(triples, Path(args.out), config=config, report=report)
    print(
        f"{report.triples} triples for {report.queries} queries -> {args.out} "
        f"(shortfall {report.shortfall}, queries without run {report.queries_without_run}"
        + (
            f", {report.dropped_false_negatives} false negatives dropped by {args.teacher}"
            if args.teacher
            else ""
        )
        + ")"
    )
    return 0


def _guard_teacher(args: argparse.Namespace, texts: dict[str, str], dataset):
    """A scorer of (query_id, doc_id) pairs with the cross-encoder ``--teacher``."""
    from inpars_core.reranking.encoding import EncodingConfig
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker, score_pairs

    scoring = ScoringConfig(batch_size=args.teacher_batch_size, device=args.device)
    reranker = load_reranker(args.teacher, scoring)
    encoding = EncodingConfig(max_length=args.teacher_max_length)

    def teacher(pairs: Sequence[tuple[str, str]]) -> list[float]:
        texts_of = [(texts[q], dataset.corpus[d].contents) for q, d in pairs]
        return score_pairs(reranker, texts_of, encoding, scoring)

    return teacher


def _dev_split_checked(dataset, dev_ids: Sequence[str], dev_split: str, eval_split: str) -> None:
    """Stop when a dev query is judged in the evaluated split: picking the checkpoint on it
    would leak the evaluation labels into model selection."""
    if eval_split not in dataset.splits():
        logger.warning(
            "--eval-split %s has no qrels in %s: the dev/evaluation overlap is not checked",
            eval_split,
            dataset.name,
        )
        return
    evaluated = dataset.qrels(eval_split)
    overlap = [q for q in dev_ids if q in evaluated]
    if overlap:
        raise InparsError(
            f"{len(overlap)} of {len(dev_ids)} dev queries (--dev-split {dev_split}) are judged "
            f"in the evaluated split {eval_split!r} (e.g. {', '.join(overlap[:3])}): choosing "
            "the checkpoint on them uses the evaluation labels. Fix: give --dev-run a run of "
            f"queries from another split (--dev-split train), or set --eval-split to the split "
            "you report"
        )


@command("train")
def _train(args: argparse.Namespace) -> int:
    from inpars_core.negatives import read_triples
    from inpars_core.training.trainer import DevSet, TrainingConfig, train_reranker

    dataset = _dataset(args)
    documents = {doc_id: doc.contents for doc_id, doc in dataset.corpus.items()}
    config = TrainingConfig(
        objective=args.objective,
        lr=args.lr,
        warmup_ratio=args.warmup_ratio,
        epochs=args.epochs,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        weight_decay=args.weight_decay,
        seed=args.seed,
        eval_every=args.eval_every,
        bf16=args.bf16,
        pair_encoding=args.pair_encoding,
        device=args.device,
        keep=args.keep,
        teacher_model=args.teacher,
    )
    dev = None
    if args.dev_run:
        query_ids, run, qrels = _dev_queries(
            dataset, args.dev_run, args.dev_split, args.dev_max_queries
        )
        _dev_split_checked(dataset, query_ids, args.dev_split, args.eval_split)
        dev = DevSet(
            queries={q: dataset.queries[q].text for q in query_ids},
            run={q: run[q] for q in query_ids},
            qrels={q: qrels[q] for q in query_ids},
            documents=documents,
            depth=args.dev_depth,
            bm25_weight=args.dev_bm25_weight,
        )
    result = train_reranker(
        read_triples(Path(args.triples)),
        documents,
        config,
        Path(args.out),
        dev=dev,
        base_model=args.base_model,
        progress=_show_progress(args) and _launch_rank() == 0,
    )
    _end_process_group()
    if _launch_rank() != 0:
        return 0  # rank 0 reports for the launch
    step0 = "n/a" if result.step0_dev_ndcg10 is None else f"{result.step0_dev_ndcg10:.4f}"
    best = "n/a" if result.best_dev_ndcg10 is None else f"{result.best_dev_ndcg10:.4f}"
    print(
        f"trained {result.final_step} steps; dev nDCG@10 step 0 {step0}, best {best} at step "
        f"{result.best_step}"
        + (" (the starting model: fine-tuning did not help)" if result.best_at_step0 else "")
        + f"; model -> {result.model_dir}"
    )
    for note in result.notes:
        print(f"note: {note}")
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


def _dev_queries(dataset, run_path: str, split: str, limit: int):
    from inpars_core.runs import read_trec_run

    run = read_trec_run(_run_file(run_path, "--dev-run"))
    qrels = dataset.qrels(split)
    query_ids = [q for q in run if q in qrels and q in dataset.queries][:limit]
    return query_ids, run, qrels


@command("train-dense")
def _train_dense(args: argparse.Namespace) -> int:
    from inpars_core.dense.training import DenseDevSet, TrainDenseConfig, train_dense
    from inpars_core.negatives import read_triples

    dataset = _dataset(args)
    config = TrainDenseConfig(
        objective=args.objective,
        lr=args.lr,
        epochs=args.epochs,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        eval_every=args.eval_every,
        teacher=args.teacher,
        keep=args.keep,
    )
    dev = None
    if args.dev_run:
        query_ids, run, qrels = _dev_queries(
            dataset, args.dev_run, args.dev_split, args.dev_max_queries
        )
        _dev_split_checked(dataset, query_ids, args.dev_split, args.eval_split)
        dev = DenseDevSet(
            queries={q: dataset.queries[q] for q in query_ids},
            qrels={q: qrels[q] for q in query_ids},
            run={q: run[q] for q in query_ids},
            documents=dataset.corpus,
            depth=args.dev_depth,
            bm25_weight=args.dev_bm25_weight,
        )
    result = train_dense(
        args.base_model,
        read_triples(Path(args.triples)),
        dataset.corpus,
        Path(args.out),
        config,
        dev,
        progress=_show_progress(args),
    )
    step0 = "n/a" if result.step0_dev_ndcg10 is None else f"{result.step0_dev_ndcg10:.4f}"
    best = "n/a" if result.best_dev_ndcg10 is None else f"{result.best_dev_ndcg10:.4f}"
    print(
        f"trained {result.final_step} steps; dev nDCG@10 step 0 {step0}, best {best} at step "
        f"{result.best_step}; model -> {result.model_dir}"
    )
    for note in result.notes:
        print(f"note: {note}")
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


def _dev_flags(p: argparse.ArgumentParser) -> None:
    """The dev-set flags of ``train`` and ``train-dense``: never the evaluated split."""
    p.add_argument("--dev-run", help="first-stage run of dev queries to rerank at every eval")
    p.add_argument(
        "--dev-split",
        default="train",
        help="qrels split of the dev queries (never the split you report: see --eval-split)",
    )
    p.add_argument(
        "--eval-split",
        default="test",
        help="the split results are reported on: no dev query may be judged in it",
    )
    p.add_argument("--dev-depth", type=positive_int, default=30)
    p.add_argument("--dev-max-queries", type=positive_int, default=100)
    p.add_argument(
        "--dev-bm25-weight",
        type=probability,
        default=0.0,
        help="weight of the first-stage score in the dev system (0: the pure model); use the "
        "interpolation weight you report",
    )
    p.add_argument(
        "--keep",
        choices=["best", "final"],
        default="best",
        help="model/ holds the best dev checkpoint (may be step 0) or the final one",
    )


def _add_stage_command(sub, name: str) -> None:
    """A sub-command of a stage module: flags from its Inputs and Config dataclasses, plus
    ``--dry-run`` when the module can preview (``preview(config, inputs) -> str``), ``--json``
    when it can print its artifact as JSON (``as_json``), an optional ``--out`` when the module
    says ``OUT_REQUIRED = False``."""
    from inpars_core.options import add_flags

    module = stage_module(name)
    p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
    add_flags(p, module.Inputs)
    add_flags(p, module.Config)
    if hasattr(module, "preview"):
        p.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    if hasattr(module, "as_json"):
        p.add_argument("--json", action="store_true", help="print one JSON object")
    _progress_flag(p)
    required = getattr(module, "OUT_REQUIRED", True)
    p.add_argument(
        "--out",
        required=required,
        help=f"{module.OUTPUT} artifact folder to write" + ("" if required else " (optional)"),
    )
    _COMMANDS[name] = lambda args: _run_stage(name, args)


def _bar_progress(name: str, total: int) -> Callable[[int], None]:
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="item", leave=False).update


def _run_stage(name: str, args: argparse.Namespace) -> int:
    """flags -> config and inputs -> ``stages.<name>.run`` -> the published artifact.

    Under a data-parallel launch every rank runs the stage; rank 0 alone publishes and prints.
    Without ``--out`` (where optional) the artifact is written to a temporary folder, printed
    and dropped.
    """
    import tempfile

    from inpars_core.options import from_args
    from inpars_core.stages.contract import partial_dir, publish, read_artifact

    module = stage_module(name)
    inputs = from_args(module.Inputs, args)
    config = from_args(module.Config, args)
    if getattr(args, "dry_run", False):
        print(module.preview(config, inputs))
        return 0
    rank = _launch_rank()
    progress = _bar_progress if _show_progress(args) and rank == 0 else None
    if args.out is None:
        with tempfile.TemporaryDirectory() as folder:
            artifact = module.run(config, inputs, Path(folder), progress=progress)
            _end_process_group()
            if rank == 0:
                _print_artifact(module, artifact, args)
        return 0
    out = Path(args.out)
    if rank != 0:
        module.run(config, inputs, partial_dir(out), progress=None)
        _end_process_group()
        return 0
    with publish(out, module.OUTPUT) as work:
        module.run(config, inputs, work, progress=progress)
    _end_process_group()
    _print_artifact(module, read_artifact(out), args)
    return 0


def _print_artifact(module, artifact, args: argparse.Namespace) -> None:
    print(module.as_json(artifact) if getattr(args, "json", False) else module.describe(artifact))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = OneLineParser(prog="inpars", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_dataset(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dataset", required=True, help="BEIR name (scifact, ...) or folder")

    for name in STAGE_MODULES:
        _add_stage_command(sub, name)

    p = sub.add_parser("generate", help="write one synthetic query per sampled document")
    with_dataset(p)
    p.add_argument("--backend", choices=["openai", "llamacpp", "hf"], required=True)
    p.add_argument("--model", required=True, help="model name; gemma-3-270m = packaged GGUF")
    p.add_argument("--base-url", help="OpenAI-compatible server (vLLM, llama.cpp, Ollama)")
    p.add_argument(
        "--api",
        choices=["chat", "completions"],
        default="chat",
        help="openai backend: Chat Completions or (legacy) Completions",
    )
    p.add_argument(
        "--prompt",
        default="inpars",
        help="inpars | inpars-gbq | in-domain | path to a template with {document}",
    )
    p.add_argument("--num-docs", type=positive_int, help="documents to sample (default: all)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--max-tokens", type=positive_int, default=48)
    p.add_argument("--max-doc-words", type=positive_int, default=256)
    p.add_argument(
        "--concurrency", type=positive_int, default=4, help="requests in flight (openai)"
    )
    p.add_argument(
        "--no-logprobs",
        action="store_true",
        help="openai backend: do not ask for log-probs (faster local servers)",
    )
    p.add_argument("--dry-run", action="store_true", help="estimate tokens and cost, send nothing")
    p.add_argument(
        "--max-cost", type=non_negative_float, help="stop before spending more than this (USD)"
    )
    p.add_argument("--price-table", help='JSON {"model": [usd_per_1M_prompt, completion]}')
    p.add_argument("--out", required=True, help="queries JSONL (appended; reruns resume)")

    p = sub.add_parser("filter", help="filter synthetic queries (log-prob, round trip, copies)")
    p.add_argument("--queries", required=True, help="JSONL written by 'inpars generate'")
    p.add_argument("--dataset", help="needed by the document-copy filter and --round-trip-k")
    p.add_argument("--index", help="BM25 index of the dataset, for --round-trip-k")
    p.add_argument(
        "--top-fraction", type=probability, help="keep the top fraction by mean log-prob"
    )
    p.add_argument("--top-k", type=positive_int, help="keep the top k by mean log-prob")
    p.add_argument(
        "--round-trip-k", type=positive_int, help="keep if the source doc is in BM25 top-k"
    )
    p.add_argument("--near-duplicate-jaccard", type=probability, default=0.9)
    p.add_argument("--min-words", type=non_negative_int, default=3)
    p.add_argument("--max-words", type=positive_int, default=40)
    p.add_argument(
        "--max-document-overlap",
        type=probability,
        default=0.8,
        help="drop when more of the query's 3-grams come from the document",
    )
    p.add_argument("--example-copy-jaccard", type=probability, default=0.8)
    p.add_argument("--keep-example-copies", action="store_true")
    p.add_argument("--out", required=True, help="kept queries JSONL")

    p = sub.add_parser("encode", help="show how a (query, document) pair is encoded")
    p.add_argument("--model", required=True, help="hub id, path, or minilm")
    p.add_argument("--query", required=True)
    p.add_argument("--doc", required=True)
    p.add_argument("--pair-encoding", choices=["pair", "separate"], default="pair")
    p.add_argument("--max-length", type=positive_int, default=256)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("triples", help="mine BM25 negatives: (query, positive, negative)")
    with_dataset(p)
    p.add_argument("--queries", help="synthetic queries JSONL (positive = source document)")
    p.add_argument("--split", help="or a qrels split (e.g. train): supervised triples")
    p.add_argument("--run", required=True, help="BM25 run of those queries")
    p.add_argument("--negatives", type=positive_int, default=5)
    p.add_argument(
        "--window", type=rank_window, default=(1, 100), help="BM25 rank window A:B to sample from"
    )
    p.add_argument("--random-negatives", type=non_negative_int, default=0)
    p.add_argument("--balanced", action="store_true", help="one negative per positive")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument(
        "--teacher",
        help="cross-encoder of the false-negative guard (never the model you will train); its "
        "scores are stored in the triples, for margin-mse",
    )
    p.add_argument(
        "--false-negative-margin",
        type=finite_float,
        help="with --teacher: drop a negative scored above the positive's score minus this",
    )
    p.add_argument("--teacher-max-length", type=positive_int, default=256)
    p.add_argument("--teacher-batch-size", type=positive_int, default=32)
    p.add_argument("--device", default="auto", help="device of the --teacher")
    p.add_argument("--out", required=True)

    p = sub.add_parser("train", help="fine-tune a cross-encoder reranker on triples")
    with_dataset(p)
    p.add_argument("--triples", required=True)
    p.add_argument("--base-model", required=True, help="hub id, path, or minilm (new head)")
    p.add_argument(
        "--objective", choices=["hf-default", "bce", "ce2", "lce", "margin-mse"], required=True
    )
    p.add_argument(
        "--teacher",
        help="margin-mse: cross-encoder whose score margins are distilled (not --base-model)",
    )
    p.add_argument("--lr", type=positive_float, default=2e-5)
    p.add_argument("--warmup-ratio", type=warmup_fraction, default=0.1)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--steps", type=positive_int, help="optimizer steps (overrides --epochs)")
    group.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--batch-size", type=positive_int, default=16, help="triples per step")
    p.add_argument("--max-length", type=positive_int, default=256)
    p.add_argument("--weight-decay", type=non_negative_float, default=0.01)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--eval-every", type=positive_int, default=50)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for training")
    p.add_argument("--pair-encoding", choices=["pair", "separate"], default="pair")
    p.add_argument("--device", default="auto")
    _dev_flags(p)
    _progress_flag(p)
    p.add_argument("--out", required=True, help="model folder to create")

    p = sub.add_parser("train-dense", help="fine-tune a bi-encoder (mnrl or margin-mse)")
    with_dataset(p)
    p.add_argument("--triples", required=True)
    p.add_argument("--base-model", required=True)
    p.add_argument("--objective", choices=["mnrl", "margin-mse"], required=True)
    p.add_argument("--teacher", help="cross-encoder scoring (q, pos) and (q, neg) for margin-mse")
    p.add_argument("--lr", type=positive_float, default=2e-5)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--steps", type=positive_int)
    group.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--max-length", type=positive_int, default=256)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--eval-every", type=positive_int, default=50)
    _dev_flags(p)
    _progress_flag(p)
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
