"""Artifact folders and files, written atomically.

A stage writes into a temporary sibling and renames it when complete, so "meta.json exists"
means "the artifact is complete" and a crash never leaves a half-written artifact behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

logger = logging.getLogger(__name__)

META_FILE = "meta.json"

#: Packages whose versions are recorded in every meta.json (those installed, at least).
TRACKED_PACKAGES = (
    "inpars-lab",
    "pyserini",
    "ir-measures",
    "pytrec-eval-terrier",
    "torch",
    "transformers",
    "sentence-transformers",
    "openai",
    "llama-cpp-python",
    "numpy",
    "scipy",
)


#: What an experiment or dataset name may be: it becomes one folder name, never a path.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SAFE_NAME_TEXT = "letters, digits, '.', '_' and '-', starting with a letter or digit"


def is_safe_name(name: str) -> bool:
    """Whether ``name`` is one plain folder name (no separators, no ``..``, not absolute)."""
    return SAFE_NAME.fullmatch(name) is not None


def package_versions() -> dict[str, str]:
    """Versions of the tracked packages that are installed, plus Python's."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses and paths to plain JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def stable_hash(value: Any, length: int = 16) -> str:
    """A short, order-independent hash of a JSON-able value (for artifact keys)."""
    text = json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_fingerprint(path: Path) -> dict[str, Any]:
    """Size, modification time and sha256 of a file, to record an input in meta.json."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    stat = path.stat()
    return {"path": str(path), "bytes": stat.st_size, "sha256": digest.hexdigest()}


@dataclass
class StageMeta:
    """What ``meta.json`` records about one stage run."""

    stage: str
    config: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=package_versions)
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def to_json(self) -> str:
        """Serialise as indented JSON."""
        return json.dumps(to_jsonable(self), indent=2, sort_keys=True) + "\n"


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    Works for files and folders. On an exception the temporary path is removed and ``target``
    is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if not staged.exists():
            raise FileNotFoundError(f"nothing was written to {staged} for {target}")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_text(target: Path) -> Iterator[TextIO]:
    """Open a text file for writing that only appears at ``target`` once fully written."""
    with atomic_path(target) as staged, open(staged, "w", encoding="utf-8") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_json(target: Path, value: Any) -> None:
    """Write JSON atomically."""
    with atomic_text(target) as handle:
        json.dump(to_jsonable(value), handle, indent=2, sort_keys=True)
        handle.write("\n")


def read_meta(folder: Path) -> dict[str, Any] | None:
    """The meta.json of a complete artifact folder, or None when absent (incomplete)."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def read_meta_file(path: Path) -> dict[str, Any] | None:
    """A meta JSON file's content, or None when it does not exist."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def sidecar_meta_path(file_path: Path) -> Path:
    """Where the meta of a single-file artifact (a run file) lives: ``<file>.meta.json``."""
    file_path = Path(file_path)
    return file_path.with_name(file_path.name + ".meta.json")


def finish_meta(meta: StageMeta, target: Path) -> None:
    """Stamp the end time and write ``meta`` to ``target`` atomically."""
    meta.finished_at = time.time()
    meta.timings.setdefault("total_s", round(meta.finished_at - meta.started_at, 3))
    with atomic_text(target) as handle:
        handle.write(meta.to_json())
    logger.debug("wrote %s", target)
