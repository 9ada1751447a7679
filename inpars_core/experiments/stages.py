"""Cached, resumable stage execution for experiments.

A stage is keyed by a hash of its parameters and the keys of its inputs. Its artifact folder
``<root>/stages/<name>/<key>/`` is complete when it holds ``meta.json``. Work happens in
``<key>.work/`` beside it, which survives a crash (generation and reranking resume from the
item-level files kept there), and is renamed to the final folder once meta.json is written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars_core.artifacts import (
    META_FILE,
    StageMeta,
    finish_meta,
    stable_hash,
    to_jsonable,
    write_json,
)
from inpars_core.stages.contract import Artifact, discard_torn_writes

logger = logging.getLogger(__name__)


def installed_version() -> str:
    """The installed ``inpars-lab`` version (part of every stage key: a new release never
    serves an artifact an older one computed)."""
    from importlib import metadata

    try:
        return metadata.version("inpars-lab")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class StageResult:
    """A complete stage artifact."""

    name: str
    key: str
    path: Path
    meta: dict[str, Any]
    ran: bool

    @property
    def seconds(self) -> float:
        """Wall seconds the stage took when it ran."""
        return float(self.meta.get("timings", {}).get("total_s", 0.0))


@dataclass
class StageStore:
    """Runs stages once per key under ``root/stages`` and remembers what ran this time."""

    root: Path
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def run(
        self,
        name: str,
        params: dict[str, Any],
        inputs: dict[str, StageResult | str],
        build: Callable[[Path], Any],
    ) -> StageResult:
        """Return the stage's artifact, building it with ``build(work_dir)`` when missing.

        ``build`` is a stage's ``run`` (it writes its own meta.json, to which the key and the
        input keys are added) or returns counts for a meta.json written here."""
        input_keys = {k: (v.key if isinstance(v, StageResult) else v) for k, v in inputs.items()}
        key = stable_hash(
            {
                "stage": name,
                "params": to_jsonable(params),
                "inputs": input_keys,
                "inpars-lab": installed_version(),
            }
        )
        folder = self.root / "stages" / name / key
        meta_path = folder / META_FILE
        if meta_path.is_file():
            self.cached.append(name)
            logger.info("stage %s: cached (%s)", name, key)
            return StageResult(name, key, folder, json.loads(meta_path.read_text()), ran=False)
        work = folder.with_name(key + ".work")
        resumed = work.exists()
        if resumed:
            discard_torn_writes(work)
        work.mkdir(parents=True, exist_ok=True)
        logger.info("stage %s: %s (%s)", name, "resuming" if resumed else "running", key)
        meta = StageMeta(stage=name, config=params, inputs=input_keys)
        started = time.perf_counter()
        (work / META_FILE).unlink(missing_ok=True)  # an earlier attempt's stage meta
        built = build(work)
        if isinstance(built, Artifact):
            record = dict(built.meta)
            record.update(key=key, step=name, params=to_jsonable(params), keys=input_keys)
            write_json(work / META_FILE, record)
        else:
            meta.counts.update(built or {})
            meta.timings["total_s"] = round(time.perf_counter() - started, 3)
            finish_meta(meta, work / META_FILE)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(work, folder)
        self.ran.append(name)
        result = StageResult(name, key, folder, json.loads(meta_path.read_text()), ran=True)
        self.events.append({"stage": name, "key": key, "seconds": result.seconds})
        return result
