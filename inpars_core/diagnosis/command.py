"""``inpars diagnose RUNS_DIR/EXPERIMENT``: the findings of every fine-tuned variant of an
experiment (why fine-tuning helped or hurt), as a Markdown table or JSON on stdout.

The command line's share of the diagnosis: :func:`add_parser` adds the sub-command to
``inpars``'s parser and registers :func:`run_command` as its handler.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inpars_core.errors import ConfigError

NAME = "diagnose"


def add_parser(sub: Any, register: Callable[[str], Callable[..., Any]]) -> None:
    """Add ``diagnose`` to the sub-parsers ``sub`` and register its handler with ``register``
    (the CLI's ``command`` decorator)."""
    p = sub.add_parser(
        NAME,
        help="why did fine-tuning help or hurt? findings per fine-tuned variant (P1-P12)",
        description=__doc__,
    )
    p.add_argument("experiment", help="an experiment folder: RUNS_DIR/EXPERIMENT")
    p.add_argument("--variant", help="diagnose only this fine-tuned variant")
    p.add_argument("--json", action="store_true", help="print diagnosis.json's JSON")
    p.add_argument(
        "--no-probe",
        dest="probe",
        action="store_false",
        help="read the written artifacts only: load no model (probe checks say n/a)",
    )
    p.add_argument(
        "--write",
        action="store_true",
        help="also write diagnosis.json and diagnosis.md into the experiment folder",
    )
    register(NAME)(run_command)


def run_command(args: argparse.Namespace) -> int:
    """Diagnose ``args.experiment`` and print the findings (exit 0); a folder that is no
    experiment, or an unknown variant, raises an InparsError (one line, exit 2)."""
    from inpars_core.diagnosis.engine import diagnose, to_markdown, write_diagnosis

    if args.write and args.variant:
        raise ConfigError(
            "--write with --variant: expected the whole diagnosis for diagnosis.json, found "
            f"one variant ({args.variant}). Fix: drop --variant, or drop --write"
        )
    diagnosis = diagnose(Path(args.experiment), args.variant, probe=args.probe)
    print(diagnosis.to_json() if args.json else to_markdown(diagnosis), end="")
    if args.write:
        for path in write_diagnosis(Path(args.experiment), diagnosis):
            print(f"wrote {path}", file=sys.stderr)
    return 0
