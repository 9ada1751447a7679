"""The ``inpars`` command line: the only place configs are built, output printed, bars shown.

Every pipeline arrow is a stage module (:mod:`inpars_core.stages`): its sub-command, flags and
checks are generated from the module's ``Inputs`` and ``Config`` dataclasses, and the handler is
the same for all of them (flags -> config -> ``run`` -> published artifact). The other commands
(``run``, ``compare``, ``encode``, ``dashboard``, and those of :data:`COMMAND_MODULES`, e.g.
``diagnose``) are thin calls into the library. A bad flag or an
:class:`~inpars_core.errors.InparsError` stops the command with a one-line error and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from inpars_core.errors import InparsError, unreadable_input
from inpars_core.options import PORT, POSITIVE_INT, add_flags, from_args
from inpars_core.reranking.encoding import PAIR_ENCODINGS
from inpars_core.stages import STAGE_MODULES, stage_module

logger = logging.getLogger("inpars")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>`` and exit with code 2."""
        line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {line} (see '{self.prog} --help')\n")


Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}
#: Commands defined beside their library: each module's ``add_parser(sub, command)`` adds one.
COMMAND_MODULES = ("inpars_core.diagnosis.command",)


def command(name: str) -> Callable[[Handler], Handler]:
    """Register a sub-command handler."""

    def decorate(handler: Handler) -> Handler:
        _COMMANDS[name] = handler
        return handler

    return decorate


def _add_stage_command(sub, name: str) -> None:
    """A stage's sub-command: flags from its Inputs and Config dataclasses, ``--dry-run`` when
    the module can preview, ``--json`` when it can print its artifact as JSON, ``--out``
    optional when the module says ``OUT_REQUIRED = False``."""
    module = stage_module(name)
    p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
    add_flags(p, module.Inputs)
    add_flags(p, module.Config)
    if hasattr(module, "preview"):
        p.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    if hasattr(module, "as_json"):
        p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: when it is a terminal)",
    )
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


def _launch_rank() -> int:
    """This process's rank under ``torchrun`` / ``accelerate launch`` (0 otherwise)."""
    return int(os.environ.get("RANK", "0") or 0)


def _end_process_group() -> None:
    """Leave the process group a data-parallel launch opened (every rank has finished)."""
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _run_stage(name: str, args: argparse.Namespace) -> int:
    """flags -> config and inputs -> ``stages.<name>.run`` -> the published artifact.

    Under a data-parallel launch every rank runs the stage; rank 0 alone publishes and prints.
    Without ``--out`` (where optional) the artifact goes to a temporary folder, printed, dropped.
    """
    from inpars_core.stages.contract import partial_dir, publish, read_artifact

    module = stage_module(name)
    inputs = from_args(module.Inputs, args)
    config = from_args(module.Config, args)
    out = Path(args.out) if args.out is not None else None
    carry = getattr(module, "RESUMABLE_FILES", ())
    if getattr(args, "dry_run", False):  # a resumable stage's plan counts what --out holds
        print(module.preview(config, inputs, **({"out": out} if carry and out else {})))
        return 0
    rank = _launch_rank()
    shown = sys.stderr.isatty() if args.progress is None else args.progress
    progress = _bar_progress if shown and rank == 0 else None
    if out is None:
        with tempfile.TemporaryDirectory() as folder:
            artifact = module.run(config, inputs, Path(folder), progress=progress)
            _end_process_group()
            if rank == 0:
                _print_artifact(module, artifact, args)
        return 0
    if rank != 0:
        module.run(config, inputs, partial_dir(out), progress=None)
        _end_process_group()
        return 0
    with publish(out, module.OUTPUT, carry) as work:
        module.run(config, inputs, work, progress=progress)
    _end_process_group()
    _print_artifact(module, read_artifact(out), args)
    return 0


def _print_artifact(module, artifact, args: argparse.Namespace) -> None:
    print(module.as_json(artifact) if getattr(args, "json", False) else module.describe(artifact))


@command("compare")
def _compare(args: argparse.Namespace) -> int:
    from inpars_core.compare import compare_runs, to_csv, to_latex, to_markdown, write_comparison
    from inpars_core.stages.common import load_dataset
    from inpars_core.stages.contract import check_out

    if args.out:  # refused before anything is computed or printed
        check_out(Path(args.out), "comparison")
    dataset = load_dataset(args.dataset)
    comparison = compare_runs(dataset, args.split, args.runs, args.baseline, args.measure)
    render = {"md": to_markdown, "csv": to_csv, "latex": to_latex}
    print(render[args.format](comparison), end="")
    if args.out:
        write_comparison(comparison, Path(args.out), dataset, args.split, args.runs)
    return 0


@command("encode")
def _encode(args: argparse.Namespace) -> int:
    from inpars_core.reranking.encoding import EncodingConfig, explain_model_encoding

    config = EncodingConfig(mode=args.pair_encoding, max_length=args.max_length)
    explained = explain_model_encoding(args.model, args.query, args.doc, config)
    if args.json:
        print(json.dumps(explained))
        return 0
    for token, segment in zip(explained["tokens"], explained["token_type_ids"], strict=True):
        print(f"{segment} {token}")
    for problem in explained["problems"]:
        print(f"problem: {problem}")
    return 0


@command("run")
def _run_experiment(args: argparse.Namespace) -> int:
    from inpars_core.experiments.config import load_config
    from inpars_core.experiments.summary import to_markdown

    config = load_config(Path(args.config), args.profile)
    variants = args.variant or None
    for name in variants or []:
        config.variant(name)  # unknown names fail before anything runs
    root = Path(args.runs_dir) / config.experiment.name
    if args.dry_run:
        from inpars_core.experiments.dry_run import plan_text

        print(plan_text(config, variants, root))
        return 0
    from inpars_core.experiments.lock import experiment_session
    from inpars_core.experiments.runner import ExperimentRunner

    with experiment_session(root):  # the lock (one writer, refused at once) and run.log
        runner = ExperimentRunner(config, Path(args.runs_dir), _bar_progress)
        if args.prepare:  # the stages that need no GPU, e.g. before copying the runs to one
            print(f"prepared {root}: ran {', '.join(runner.prepare(variants)) or 'nothing'}")
            return 0
        summary = runner.run(variants)
    print(to_markdown(summary))
    print(f"summary: {root / 'summary.json'} and {root / 'summary.md'}")
    print(f"inspect it: .venv/bin/inpars dashboard --runs-dir {args.runs_dir}")
    return 0


@command("dashboard")
def _dashboard(args: argparse.Namespace) -> int:
    from inpars_core.processes import dashboard_launch, run_forwarding_signals

    command_line, env, notes = dashboard_launch(Path(args.runs_dir), args.port, args.address)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"dashboard on http://{args.address}:{args.port} (runs dir {env['INPARS_RUNS_DIR']}); "
        "Ctrl-C stops it",
        flush=True,
    )
    return run_forwarding_signals(command_line, env)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = OneLineParser(prog="inpars", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGE_MODULES:
        _add_stage_command(sub, name)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub, command)

    p = sub.add_parser("run", help="run an experiment config (TOML): every stage, cached")
    p.add_argument("config")
    p.add_argument("--variant", action="append", help="run only this variant (repeatable)")
    p.add_argument("--profile", help="apply the config's [profiles.NAME] (e.g. cpu, full)")
    p.add_argument("--prepare", action="store_true", help="run only the stages needing no GPU")
    p.add_argument("--dry-run", action="store_true", help="plan and cost estimate only")
    p.add_argument("--runs-dir", default="runs")

    p = sub.add_parser("compare", help="paired comparison of runs against a baseline")
    p.add_argument("--dataset", required=True, help="BEIR name (scifact, ...) or folder")
    p.add_argument("--split", default="test")
    p.add_argument("--runs", nargs="+", required=True, help="run artifact folders or files")
    p.add_argument("--baseline", required=True, help="one of --runs (path or name)")
    p.add_argument("--measure", default="nDCG@10")
    p.add_argument("--format", choices=["md", "csv", "latex"], default="md")
    p.add_argument("--out", help="folder for comparison.{md,csv,tex} and meta.json")

    p = sub.add_parser("encode", help="show how a (query, document) pair is encoded")
    p.add_argument("--model", required=True, help="hub id, path, or minilm")
    p.add_argument("--query", required=True)
    p.add_argument("--doc", required=True)
    p.add_argument("--pair-encoding", choices=PAIR_ENCODINGS, default="pair")
    p.add_argument("--max-length", type=POSITIVE_INT.from_text, default=256)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("dashboard", help="inspect experiments in a browser (Streamlit)")
    p.add_argument("--runs-dir", default="runs", help="folder holding <experiment>/ folders")
    p.add_argument("--port", type=PORT.from_text, default=8501)
    p.add_argument(
        "--address",
        "--host",
        dest="address",
        default="127.0.0.1",
        help="interface to listen on (default 127.0.0.1: this machine only; another address "
        "fixes the runs directory, the sidebar cannot change it)",
    )
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
    except (OSError, UnicodeDecodeError) as exc:  # a path of the wrong kind not caught earlier
        print(f"inpars {args.command}: error: {unreadable_input(exc)}", file=sys.stderr)
        logger.debug("unexpected input error", exc_info=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
