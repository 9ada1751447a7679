"""Helpers of the reliability suite: snapshot a folder, run the CLI, check one clean line."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CLI = [sys.executable, "-m", "inpars_core.cli"]


def snapshot(root: Path, *, ignore: Sequence[Path] = ()) -> dict[str, str]:
    """relative path -> sha256 (``dir`` for folders) of everything under ``root``, except the
    paths in ``ignore`` (a command's own output) and what lies below them."""
    skipped = [Path(p).resolve() for p in ignore]
    found: dict[str, str] = {}
    for path in sorted(Path(root).rglob("*")):
        resolved = path.resolve()
        if any(resolved == s or s in resolved.parents for s in skipped):
            continue
        key = str(path.relative_to(root))
        found[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@dataclass(frozen=True)
class Outcome:
    """What one command did: its exit code and its output."""

    code: int
    stdout: str
    stderr: str

    def error_line(self) -> str:
        """The one error line (``inpars <cmd>: error: ...``); fails on a traceback or on more
        than one non-log line."""
        assert "Traceback" not in self.stderr, self.stderr[-3000:]
        lines = [
            line
            for line in self.stderr.splitlines()
            if ": error: " in line and not line[:4].isdigit()  # not a log line (timestamp)
        ]
        assert len(lines) == 1, self.stderr[-3000:]
        return lines[0]


def run_cli(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> Outcome:
    """``inpars ARGS`` in ``cwd``, as a subprocess."""
    done = subprocess.run(
        [*CLI, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def assert_refused(
    args: Sequence[str], cwd: Path, *, says: Sequence[str], tree: Path, env=None
) -> str:
    """Run a command that must be refused: exit 2, one line naming everything in ``says``, and
    no file under ``tree`` changed. Returns the error line."""
    before = snapshot(tree)
    outcome = run_cli(args, cwd, env)
    assert outcome.code == 2, (outcome.code, outcome.stderr[-3000:])
    line = outcome.error_line()
    for text in says:
        assert text in line, (text, line)
    assert snapshot(tree) == before, "the command changed files it does not own"
    return line
