"""The stage contract: ``run(config, inputs, out_dir) -> Artifact``.

Every pipeline arrow is one module of :mod:`inpars_core.stages` exporting a frozen ``Config``
dataclass (its options, see :mod:`inpars_core.options`), a frozen ``Inputs`` dataclass (what it
reads: a dataset name or folder, artifact folders or plain files) and ``run``. ``run`` writes its
data into ``out_dir`` plus one ``meta.json`` (:func:`write_stage_meta`) carrying the artifact's
``type`` and ``format``, the config, the inputs, versions, timings, counts and structured notes
``{code, level, text}``. Loading dispatches on ``type`` (:func:`open_input`), never on folder or
file names. The command line (:mod:`inpars_core.cli`) and the experiment runner both call ``run``;
the runner adds caching by key (:class:`~inpars_core.experiments.stages.StageStore`), the command
line publishes ``out_dir`` atomically (:func:`publish`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars_core.artifacts import META_FILE, StageMeta, atomic_text, file_fingerprint, to_jsonable
from inpars_core.errors import InputFormatError

logger = logging.getLogger(__name__)

#: Artifact type -> (format, the data file or folder inside the artifact folder).
ARTIFACT_TYPES: dict[str, tuple[str, str]] = {
    "index": ("lucene", "."),
    "run": ("trec", "run.trec"),
    "queries": ("jsonl", "queries.jsonl"),
    "triples": ("jsonl", "triples.jsonl"),
    "model": ("huggingface", "model"),
    "evaluation": ("tsv", "per_query.tsv"),
    "comparison": ("markdown", "comparison.md"),
    "dense-index": ("numpy", "embeddings.npy"),
}


#: Artifact types whose data is a folder: a plain file given for one of them is refused.
FOLDER_TYPES = frozenset({"index", "model", "dense-index"})


@dataclass(frozen=True)
class Note:
    """A structured remark on an artifact: a stable ``code``, a ``level`` and the text."""

    code: str
    level: str  # "info", "warning"
    text: str


@dataclass(frozen=True)
class Artifact:
    """A complete stage output: its folder, type, format and meta.json content."""

    path: Path
    type: str
    format: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        """The artifact's main data file or folder (``run.trec``, ``queries.jsonl``, ...)."""
        return self.path / ARTIFACT_TYPES[self.type][1]

    @property
    def counts(self) -> Mapping[str, Any]:
        """What the stage counted (queries, pairs, kept, ...)."""
        return self.meta.get("counts", {})

    @property
    def notes(self) -> list[Note]:
        """The stage's structured notes."""
        return [Note(**n) for n in self.meta.get("notes", [])]

    def file(self, name: str) -> Path:
        """Another file of the artifact folder."""
        return self.path / name


def write_stage_meta(
    out_dir: Path,
    *,
    stage: str,
    type: str,
    config: Any,
    inputs: Mapping[str, Any],
    counts: Mapping[str, Any] | None = None,
    timings: Mapping[str, float] | None = None,
    notes: list[Note] | None = None,
    started: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Artifact:
    """Write ``out_dir/meta.json`` for a finished stage and return the artifact.

    ``started`` (a ``time.perf_counter()`` value) adds ``timings.total_s``.
    """
    meta = StageMeta(stage=stage, config=to_jsonable(config), inputs=dict(to_jsonable(inputs)))
    meta.counts.update(counts or {})
    meta.timings.update(timings or {})
    if started is not None:
        meta.timings.setdefault("total_s", round(time.perf_counter() - started, 3))
    record = json.loads(meta.to_json())
    record.update(
        type=type,
        format=ARTIFACT_TYPES[type][0],
        data=ARTIFACT_TYPES[type][1],
        notes=[to_jsonable(n) for n in notes or []],
        finished_at=time.time(),
        **(extra or {}),
    )
    record["timings"].setdefault("total_s", round(record["finished_at"] - meta.started_at, 3))
    with atomic_text(Path(out_dir) / META_FILE) as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return Artifact(Path(out_dir), type, ARTIFACT_TYPES[type][0], record)


def read_artifact(folder: Path) -> Artifact | None:
    """The artifact in ``folder`` (None when there is no complete one: no meta.json with a
    type)."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFormatError(
            path, f"expected InPars Lab's meta.json, found invalid JSON ({exc})"
        ) from None
    kind = meta.get("type")
    if kind not in ARTIFACT_TYPES:
        return None
    return Artifact(Path(folder), kind, meta.get("format", ARTIFACT_TYPES[kind][0]), meta)


def open_input(path: str | Path, expected: str, *, flag: str) -> Path:
    """The data file (or folder) of an input given on the command line or by the runner: an
    artifact folder whose meta.json says ``type = expected``, or a plain file of that kind
    (a TREC run, a queries JSONL). Anything else stops with an error naming ``flag``."""
    path = Path(path)
    if path.is_dir():
        artifact = read_artifact(path)
        if artifact is not None:
            if artifact.type != expected:
                raise InputFormatError(
                    path,
                    f"expected a {expected} artifact for {flag}, found a {artifact.type} "
                    f"artifact (written by 'inpars {artifact.meta.get('stage', '?')}')",
                    fix=f"give {flag} the output folder of the stage that writes {expected}",
                )
            return artifact.data
        data = path / ARTIFACT_TYPES[expected][1]
        if data.exists():
            return data
        if expected == "model":  # a Hugging Face model folder
            return path
        raise InputFormatError(
            path,
            f"expected a {expected} artifact folder (with meta.json) or file for {flag}, found a "
            "folder without one",
            fix=f"give {flag} the --out folder of the stage that writes {expected}",
        )
    if not path.exists():
        raise InputFormatError(path, f"{flag}: not found", fix="check the path")
    if expected in FOLDER_TYPES:
        raise InputFormatError(
            path,
            f"expected {_a(expected)} folder for {flag}, found a file",
            fix=f"give {flag} the --out folder of the stage that writes {expected}",
        )
    if expected in _TEXT_TYPES:
        _check_text_file(path, expected, flag)
    return path


def _a(noun: str) -> str:
    """``noun`` with its indefinite article (an index, a run)."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def check_same_corpus(path: str | Path, dataset: Any, flag: str) -> None:
    """Refuse an artifact made for another corpus than ``dataset``'s: its meta.json records the
    corpus hash (``inputs.corpus_sha256``, see :func:`~.common.dataset_record`) and it differs.
    Plain files and artifacts that record no hash are accepted."""
    path = Path(path)
    artifact = read_artifact(path) if path.is_dir() else None
    if artifact is None:
        return
    recorded = artifact.meta.get("inputs") or {}
    made_for = recorded.get("corpus_sha256")
    if made_for is None or made_for == dataset.corpus_hash():
        return
    raise InputFormatError(
        path,
        f"{flag}: expected {_a(artifact.type)} made for dataset {dataset.name!r} (corpus "
        f"{dataset.corpus_hash()}), found one made for {recorded.get('dataset')!r} "
        f"(corpus {made_for}, {recorded.get('dataset_path')})",
        fix=f"give {flag} an artifact built from this dataset, or pass the dataset it was "
        "built from",
    )


#: Artifact types whose plain-file form is a text file (checked cheaply before it is read).
_TEXT_TYPES = ("run", "queries", "triples")


def _check_text_file(path: Path, expected: str, flag: str) -> None:
    """Refuse an empty file, naming ``flag`` (bad bytes are named, with their line, by the
    reader: :mod:`inpars_core.textio`)."""
    fix = f"give {flag} a {expected} file or the --out folder of the stage that writes {expected}"
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if not head.strip():
        raise InputFormatError(
            path, f"{flag}: expected a {expected} file, found an empty file", fix=fix
        )


def input_artifact(path: str | Path) -> dict[str, Any]:
    """How an input is recorded in meta.json: its path; for an artifact folder, its type, stage
    and key (what lineage is built from); and the sha256 of the data file read (a plain file,
    or the artifact's data when that is one file), which pins the exact content used."""
    artifact = read_artifact(Path(path)) if Path(path).is_dir() else None
    record: dict[str, Any] = {"path": str(path)}
    if artifact is not None:
        record.update(type=artifact.type, stage=artifact.meta.get("stage"))
        if "key" in artifact.meta:
            record["key"] = artifact.meta["key"]
    data = artifact.data if artifact is not None else Path(path)
    if data.is_file():
        record["sha256"] = file_fingerprint(data)["sha256"]
    return record


def discard_torn_writes(work: Path) -> None:
    """Remove what a process killed inside an atomic write (``artifacts.atomic_path``) left in a
    work folder: its temporary ``.*.tmp`` folders hold no complete file to resume from and must
    never be published with the artifact."""
    for stale in Path(work).glob(".*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def partial_dir(out: Path) -> Path:
    """Where ``out`` is built before it is published: ``.<name>.partial`` beside it; it
    survives a crash so the next attempt resumes from its item-level files."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def check_out(out: Path, expected_type: str) -> Artifact | None:
    """Refuse an ``--out`` that names something this tool may not replace: an existing file,
    or a folder without InPars Lab's meta.json of ``expected_type``. Returns the previous
    artifact of that type (None when ``out`` does not exist)."""
    out = Path(out)
    if not out.exists():
        return None
    existing = read_artifact(out) if out.is_dir() else None
    if existing is None or existing.type != expected_type:
        found = (
            f"a {existing.type} artifact"
            if existing
            else "a file"
            if out.is_file()
            else "a folder InPars Lab did not write"
        )
        raise InputFormatError(
            out,
            f"--out: expected a new folder or a {expected_type} artifact to replace, found {found}",
            fix="name a new folder for --out (nothing is deleted)",
        )
    return existing


@contextlib.contextmanager
def publish(out: Path, expected_type: str, carry: Sequence[str] = ()) -> Iterator[Path]:
    """Yield the folder a stage writes into; on success it replaces ``out`` in one rename.

    ``out`` may be absent or a previous artifact of the same type (replaced atomically); any
    other existing file or folder is refused, never deleted. ``carry`` names files of that
    previous artifact copied into the work folder first (when it has none of its own), so a
    resumable stage (a module's ``RESUMABLE_FILES``) resumes from them instead of redoing, or
    paying again for, what they hold.
    """
    out = Path(out)
    existing = check_out(out, expected_type)
    work = partial_dir(out)
    if work.exists():
        logger.info("resuming from %s", work)
        discard_torn_writes(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in carry if existing is not None else ():
        if (out / name).is_file() and not (work / name).exists():
            shutil.copy2(out / name, work / name)
            logger.info("resuming from %s", out / name)
    try:
        yield work
    except BaseException:
        if not any(work.iterdir()):  # nothing to resume from
            work.rmdir()
        raise
    if not (work / META_FILE).is_file():
        raise RuntimeError(f"the stage wrote no {META_FILE} into {work}")
    if out.exists():
        old = out.with_name(f".{out.name}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(work, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(work, out)
