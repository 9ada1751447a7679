"""The repository's files are named after what they hold, never after an issue number."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ISSUE_NAME = re.compile(r"issue[-_ ]?\d", re.IGNORECASE)


def test_no_file_is_named_after_an_issue():
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    named = [path for path in listed if ISSUE_NAME.search(Path(path).name)]
    assert not named, (
        f"expected file names saying what they hold, found names after an issue: {named}; "
        "fix: git mv them and update every reference"
    )
