"""Everything the dashboard reads and derives from a runs directory, cached.

The dashboard only reads what ``inpars run`` wrote (``<runs-dir>/<experiment>/summary.json`` and
``stages/<stage>/<key>/``); it never trains, generates or reranks. Loaders take paths (as
strings) plus a ``version`` (modification times, see :func:`stamp`) so that a rerun of the
pipeline invalidates the cache (Streamlit does not hash parameters named with a leading ``_``).
``st.cache_data`` holds DataFrames and plain values; ``st.cache_resource`` holds only shared,
read-only objects: the dataset (corpus, queries, qrels) and a reranker with its tokenizer.

A missing or unreadable file raises :class:`MissingArtifactError` or :class:`BadArtifactError`,
which the pages turn into a message naming the file instead of a traceback.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from inpars_core.compare import latex_escape

RUNS_DIR_ENV = "INPARS_RUNS_DIR"
SUMMARY_FILE = "summary.json"
META_FILE = "meta.json"
RUN_FILE = "run.trec"
WORK_SUFFIX = ".work"
LEGACY_BASELINE = "base (zero-shot)"  # summaries written before rows named their baseline
PER_QUERY_MEASURE = "nDCG@10"
TIE_TOLERANCE = 1e-9
_WORD = re.compile(r"[^\W_]+")


# --------------------------------------------------------------------------- errors


class MissingArtifactError(Exception):
    """A file or folder the page needs is not there (yet)."""

    def __init__(self, path: object, what: str, hint: str = "") -> None:
        self.path = str(path)
        self.what = what
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """One line for the page: what is missing, where, and what to do."""
        text = f"{self.what} is missing: `{self.path}`"
        return f"{text}. {self.hint}" if self.hint else text


class BadArtifactError(Exception):
    """A file is there but cannot be read (truncated JSON, wrong shape)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """One line for the page naming the file and the problem."""
        return f"`{self.path}` cannot be read: {self.problem}"


# --------------------------------------------------------------------------- small readers


def default_runs_dir(argv: Sequence[str] | None = None) -> str:
    """The runs directory given to the app: ``-- --runs-dir DIR``, then ``$INPARS_RUNS_DIR``,
    then ``runs``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs-dir")
    known, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return known.runs_dir or os.environ.get(RUNS_DIR_ENV) or "runs"


def stamp(*paths: str | Path) -> tuple[int, ...]:
    """Modification times (ns) of ``paths`` (0 for a missing one): part of every cache key."""
    out = []
    for path in paths:
        try:
            out.append(Path(path).stat().st_mtime_ns)
        except OSError:
            out.append(0)
    return tuple(out)


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file, or raise :class:`MissingArtifactError` / :class:`BadArtifactError`."""
    path = Path(path)
    if not path.is_file():
        raise MissingArtifactError(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadArtifactError(path, f"not valid JSON ({exc})") from None


def read_jsonl(path: Path, what: str) -> tuple[list[dict[str, Any]], int]:
    """Rows of a JSONL file and the number of unreadable lines (a half-written last line of an
    interrupted stage is skipped, not fatal)."""
    path = Path(path)
    if not path.is_file():
        raise MissingArtifactError(path, what)
    rows, bad = [], 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad += 1
    return rows, bad


def words(text: str) -> list[str]:
    """Case-folded words (runs of letters and digits), as the filters count them."""
    return _WORD.findall(text.casefold())


# --------------------------------------------------------------------------- experiments


@dataclass(frozen=True)
class StageInfo:
    """One stage folder: complete (``meta.json`` present) or unfinished (``<key>.work``)."""

    stage: str
    key: str
    path: str
    complete: bool
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> dict[str, str]:
        """Input name -> key of the input stage (or an external id such as ``<model>@<hash>``)."""
        return {k: str(v) for k, v in (self.meta.get("inputs") or {}).items()}

    @property
    def config(self) -> dict[str, Any]:
        """The stage's parameters."""
        return dict(self.meta.get("config") or {})

    @property
    def counts(self) -> dict[str, Any]:
        """The stage's counts (what it produced)."""
        return dict(self.meta.get("counts") or {})

    @property
    def seconds(self) -> float | None:
        """Wall seconds of the stage, when complete."""
        value = (self.meta.get("timings") or {}).get("total_s")
        return float(value) if value is not None else None

    @property
    def label(self) -> str:
        """``stage/key`` with a short key, marked when unfinished."""
        return f"{self.stage}/{self.key[:8]}" + ("" if self.complete else " (unfinished)")


@dataclass(frozen=True)
class Experiment:
    """What an experiment folder holds: the summary (if the run finished) and its stages."""

    name: str
    path: str
    summary: dict[str, Any] | None
    stages: tuple[StageInfo, ...]
    problems: tuple[str, ...]

    @property
    def by_key(self) -> dict[str, StageInfo]:
        """Stage key -> stage (keys are hashes that include the stage name: unique)."""
        return {s.key: s for s in self.stages}

    def of(self, stage: str, *, complete_only: bool = True) -> list[StageInfo]:
        """The folders of one stage."""
        return [s for s in self.stages if s.stage == stage and (s.complete or not complete_only)]

    @property
    def unfinished(self) -> list[StageInfo]:
        """Stages with a ``.work`` folder and no complete twin (interrupted or running)."""
        done = {(s.stage, s.key) for s in self.stages if s.complete}
        return [s for s in self.stages if not s.complete and (s.stage, s.key) not in done]

    @property
    def dataset(self) -> str | None:
        """The dataset name recorded in the summary (or guessed from the index stage)."""
        if self.summary and self.summary.get("dataset"):
            return str(self.summary["dataset"])
        for stage in self.of("index") + self.of("generate"):
            name = str(stage.inputs.get("dataset", ""))
            if name:
                return name.split(":", 1)[0]
        return None

    @property
    def dataset_path(self) -> str | None:
        """The dataset folder the run used, as summary.json records it (newer summaries)."""
        if self.summary and self.summary.get("dataset_path"):
            return str(self.summary["dataset_path"])
        return None


def list_experiments(runs_dir: str) -> list[str]:
    """Experiment folders under ``runs_dir`` (those with a summary, stages or a run log)."""
    root = Path(runs_dir).expanduser()
    if not root.is_dir():
        raise MissingArtifactError(
            root,
            "The runs directory",
            "Run `inpars run CONFIG --runs-dir DIR` first, or type another folder in the sidebar.",
        )
    found = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and any(
            (child / name).exists() for name in (SUMMARY_FILE, "stages", "run.log")
        ):
            found.append(child.name)
    return found


def experiment_stamp(exp_dir: str) -> tuple[int, ...]:
    """Cache key of an experiment: the summary and every stage folder's modification time."""
    root = Path(exp_dir)
    stages = root / "stages"
    folders = sorted(p for p in stages.iterdir() if p.is_dir()) if stages.is_dir() else []
    return stamp(root / SUMMARY_FILE, stages, *folders)


@st.cache_data(show_spinner=False, max_entries=32)
def load_experiment(exp_dir: str, version: tuple[int, ...] = ()) -> Experiment:
    """Read ``summary.json`` (if any) and every stage's ``meta.json``; list what is missing."""
    root = Path(exp_dir)
    if not root.is_dir():
        raise MissingArtifactError(root, "The experiment folder")
    problems: list[str] = []
    summary = None
    try:
        summary = read_json(root / SUMMARY_FILE, "summary.json")
        if not isinstance(summary, dict) or not isinstance(summary.get("rows"), list):
            problems.append(f"`{root / SUMMARY_FILE}` has no `rows` list; ignored")
            summary = None
    except MissingArtifactError:
        problems.append(
            f"`{root / SUMMARY_FILE}` is missing: the experiment has not finished (interrupted "
            "or still running); rerun `inpars run` to resume it. Pages show what the finished "
            "stages hold."
        )
    except BadArtifactError as exc:
        problems.append(exc.message)
    stages: list[StageInfo] = []
    stage_root = root / "stages"
    if stage_root.is_dir():
        for stage_dir in sorted(p for p in stage_root.iterdir() if p.is_dir()):
            for folder in sorted(p for p in stage_dir.iterdir() if p.is_dir()):
                if folder.name.startswith("."):
                    continue
                work = folder.name.endswith(WORK_SUFFIX)
                key = folder.name[: -len(WORK_SUFFIX)] if work else folder.name
                meta: dict[str, Any] = {}
                if not work:
                    try:
                        meta = read_json(folder / META_FILE, "meta.json")
                    except MissingArtifactError:
                        problems.append(f"`{folder / META_FILE}` is missing; stage ignored")
                        continue
                    except BadArtifactError as exc:
                        problems.append(exc.message)
                        continue
                    if not isinstance(meta, dict):
                        problems.append(f"`{folder / META_FILE}` is not a JSON object; ignored")
                        continue
                stages.append(StageInfo(stage_dir.name, key, str(folder), not work, meta))
    elif summary is None:
        problems.append(f"`{stage_root}` is missing: nothing of this experiment has run yet")
    experiment = Experiment(root.name, str(root), summary, tuple(stages), tuple(problems))
    unfinished = experiment.unfinished
    if unfinished:
        names = ", ".join(s.label for s in unfinished)
        experiment = Experiment(
            root.name,
            str(root),
            summary,
            tuple(stages),
            (*problems, f"unfinished stages (a `.work` folder, no meta.json): {names}"),
        )
    return experiment


def get_experiment(runs_dir: str, name: str) -> Experiment:
    """The experiment ``name`` under ``runs_dir`` (cached until a file changes)."""
    exp_dir = str(Path(runs_dir).expanduser() / name)
    return load_experiment(exp_dir, experiment_stamp(exp_dir))


def stages_frame(experiment: Experiment) -> pd.DataFrame:
    """One row per stage folder: status, seconds, counts."""
    rows = []
    for s in experiment.stages:
        counts = {k: v for k, v in s.counts.items() if isinstance(v, int | float | str | bool)}
        rows.append(
            {
                "stage": s.stage,
                "key": s.key,
                "status": "complete" if s.complete else "unfinished",
                "seconds": s.seconds,
                "counts": ", ".join(f"{k} {v}" for k, v in counts.items()),
            }
        )
    return pd.DataFrame(rows, columns=["stage", "key", "status", "seconds", "counts"])


# --------------------------------------------------------------------------- lineage


def resolve_path(experiment: Experiment, recorded: str) -> Path:
    """A path recorded in summary.json, re-rooted in this experiment folder (which may have been
    moved or copied since the pipeline wrote it)."""
    path = Path(recorded)
    parts = path.parts
    if "stages" in parts:
        index = len(parts) - 1 - parts[::-1].index("stages")
        local = Path(experiment.path).joinpath(*parts[index:])
    else:
        local = path if path.is_absolute() else Path(experiment.path) / path
    return local if local.exists() or not path.exists() else path


def stage_of_run(experiment: Experiment, run_path: str) -> StageInfo | None:
    """The stage folder a run file lives in."""
    folder = resolve_path(experiment, run_path).parent
    for stage in experiment.stages:
        if Path(stage.path) == folder:
            return stage
    return None


def upstream(experiment: Experiment, stage: StageInfo) -> dict[str, StageInfo]:
    """Every stage ``stage`` was built from, by stage name (nearest first)."""
    by_key = experiment.by_key
    found: dict[str, StageInfo] = {}
    queue = [stage]
    while queue:
        current = queue.pop(0)
        for value in current.inputs.values():
            parent = by_key.get(value)
            if parent is not None and parent.stage not in found:
                found[parent.stage] = parent
                queue.append(parent)
    return found


def summary_rows(experiment: Experiment) -> list[dict[str, Any]]:
    """The rows of summary.json (empty when the experiment has not finished)."""
    return list((experiment.summary or {}).get("rows") or [])


def no_overlap_rows(experiment: Experiment) -> list[dict[str, Any]]:
    """The rows evaluated on the test queries without overlap (``no_overlap``), if any."""
    block = (experiment.summary or {}).get("no_overlap") or {}
    return list(block.get("rows") or [])


def depth_label(depth: Any) -> str:
    """A row's depth as shown: the number, or ``full`` for a first-stage run."""
    return "full" if depth is None else str(depth)


def row_label(row: Mapping[str, Any]) -> str:
    """``system @depth``: how the pages name a row (unique within one summary)."""
    return f"{row.get('system')} @{depth_label(row.get('depth'))}"


def is_tuned_cross_encoder(row: Mapping[str, Any]) -> bool:
    """A cross-encoder fine-tuned on synthetic queries (kind ``synthetic``, family
    ``cross-encoder``; ``fine-tuned`` in summaries written before the kinds were renamed)."""
    if row.get("kind") == "fine-tuned":
        return True
    return row.get("kind") == "synthetic" and row.get("family", "cross-encoder") == "cross-encoder"


def baselines(experiment: Experiment) -> dict[str, str]:
    """Depth (as a string) -> system name of the row the Δ are computed against there:
    ``summary["baselines"]``, else the rows marked ``baseline``, else (older summaries) the row
    named ``base (zero-shot)``."""
    summary = experiment.summary or {}
    found = {str(d): str(name) for d, name in (summary.get("baselines") or {}).items() if name}
    rows = summary_rows(experiment)
    for row in rows:
        if row.get("baseline") and row.get("depth") is not None:
            found.setdefault(str(row["depth"]), str(row.get("system")))
    if not found and "baselines" not in summary:
        for row in rows:
            if row.get("system") == LEGACY_BASELINE and row.get("depth") is not None:
                found.setdefault(str(row["depth"]), LEGACY_BASELINE)
    return found


def baseline_row(experiment: Experiment, depth: str) -> dict[str, Any] | None:
    """The baseline row at ``depth``, or None."""
    name = baselines(experiment).get(str(depth))
    return next(
        (
            r
            for r in summary_rows(experiment)
            if r.get("system") == name and str(r.get("depth")) == str(depth)
        ),
        None,
    )


def rerank_stage_of_row(experiment: Experiment, row: Mapping[str, Any]) -> StageInfo | None:
    """The rerank (or dense-rerank) stage behind a row: the stage of its run, or, for a row
    interpolated with BM25, the reranked run that the interpolate stage fused."""
    if not row.get("run"):
        return None
    stage = stage_of_run(experiment, str(row["run"]))
    if stage is not None and stage.stage == "interpolate":
        stage = experiment.by_key.get(stage.inputs.get("rerank", ""))
    return stage


def finetune_of_row(experiment: Experiment, row: Mapping[str, Any]) -> StageInfo | None:
    """The finetune stage of a fine-tuned cross-encoder row (from its training's model folder,
    else from the lineage of its run)."""
    if not is_tuned_cross_encoder(row):
        return None
    model = (row.get("training") or {}).get("model")
    if model:
        folder = resolve_path(experiment, str(model)).parent.parent  # <key>/trained/model
        for stage in experiment.of("finetune"):
            if Path(stage.path) == folder:
                return stage
    rerank = rerank_stage_of_row(experiment, row)
    tune = experiment.by_key.get(rerank.inputs.get("model", "")) if rerank else None
    return tune if tune is not None and tune.stage == "finetune" else None


def variant_of_finetune(experiment: Experiment) -> dict[str, list[str]]:
    """finetune stage key -> variant names that used it (from the summary rows)."""
    out: dict[str, list[str]] = {}
    for row in summary_rows(experiment):
        if not row.get("variant"):
            continue
        tune = finetune_of_row(experiment, row)
        if tune is not None and str(row["variant"]) not in out.get(tune.key, []):
            out.setdefault(tune.key, []).append(str(row["variant"]))
    return out


def training_stages(experiment: Experiment) -> dict[str, StageInfo]:
    """Label -> cross-encoder training stage (``finetune`` per variant, and ``base-train``),
    unfinished ones included when they already wrote a log."""
    names = variant_of_finetune(experiment)
    out: dict[str, StageInfo] = {}
    for stage in experiment.stages:
        if stage.stage not in ("finetune", "base-train"):
            continue
        if not stage.complete and not (Path(stage.path) / "trained").is_dir():
            continue
        objective = stage.config.get("objective")
        if objective is None:  # unfinished: the trainer may already have written its meta
            trained_meta = Path(stage.path) / "trained" / META_FILE
            try:
                objective = (read_json(trained_meta, "meta.json").get("config") or {}).get(
                    "objective"
                )
            except (MissingArtifactError, BadArtifactError, AttributeError):
                objective = None
        objective = objective or "objective unknown"
        if stage.stage == "base-train":
            label = f"base-train ({objective})"
        elif stage.key in names:
            label = " = ".join(names[stage.key])
        else:
            label = f"finetune {objective}"
        if label in out or not stage.complete:
            label = f"{label} · {stage.key[:8]}" + ("" if stage.complete else " (unfinished)")
        out[label] = stage
    return out


def rerank_models(experiment: Experiment) -> dict[str, str]:
    """Label -> model folder or hub id of every cross-encoder this experiment has: the base
    reranker (trained here or a Hugging Face id) and each fine-tuned variant."""
    out: dict[str, str] = {}
    for label, stage in training_stages(experiment).items():
        model = Path(stage.path) / "trained" / "model"
        if stage.complete and (model / "config.json").is_file():
            out[label] = str(model)
    by_key = experiment.by_key
    for stage in experiment.of("rerank"):
        model = stage.inputs.get("model", "")
        if not model or model in by_key:
            continue  # a model trained in this experiment: listed above
        # an outside model: ``hf:<id>`` (older runs) or ``<id or folder>@<fingerprint>``
        name = model[3:] if model.startswith("hf:") else model.rsplit("@", 1)[0]
        out.setdefault(name, name)
    return out


@dataclass(frozen=True)
class Generation:
    """One set of synthetic queries and the stages that used it."""

    generate: StageInfo
    filter: StageInfo | None
    triples: StageInfo | None
    synthetic_bm25: StageInfo | None
    variants: tuple[str, ...]

    @property
    def label(self) -> str:
        """The variants it fed (or the stage key), marked when unfinished."""
        name = ", ".join(self.variants) if self.variants else self.generate.label
        if self.variants and not self.generate.complete:
            name += " (unfinished)"
        return name


def generations(experiment: Experiment) -> dict[str, Generation]:
    """Label -> synthetic query set (complete or still being written) with its filter,
    triples and BM25-of-synthetic-queries stages, when they exist."""
    variants = variant_of_finetune(experiment)
    out: dict[str, Generation] = {}
    for gen in experiment.of("generate", complete_only=False):
        if not (Path(gen.path) / "queries.jsonl").is_file():
            continue
        filt = next(
            (s for s in experiment.of("filter") if s.inputs.get("generate") == gen.key), None
        )
        triples = None
        if filt is not None:
            triples = next(
                (s for s in experiment.of("triples") if s.inputs.get("kept") == filt.key), None
            )
        sbm25 = experiment.by_key.get(triples.inputs.get("bm25", "")) if triples else None
        names: list[str] = []
        if triples is not None:
            for tune in experiment.of("finetune"):
                if tune.inputs.get("triples") == triples.key:
                    names += variants.get(tune.key, [])
        generation = Generation(gen, filt, triples, sbm25, tuple(dict.fromkeys(names)))
        label = generation.label
        if label in out:
            label = f"{label} · {gen.key[:8]}"
        out[label] = generation
    return out


def generation_of_run(experiment: Experiment, run_label: str) -> Generation | None:
    """The synthetic query set a run's model was fine-tuned on (a ``system @depth`` label of a
    row fine-tuned on synthetic queries), or None."""
    row = next((r for r in summary_rows(experiment) if row_label(r) == run_label), None)
    if row is None:
        return None
    names = [str(v) for v in [row.get("variant"), *(row.get("variants") or [])] if v]
    gens = generations(experiment).values()
    return next((g for name in names for g in gens if name in g.variants), None)


def comparable_runs(experiment: Experiment) -> dict[str, str]:
    """Label -> TREC run file of every system: the summary rows (``system @depth``), then any
    other complete stage holding a run (for an experiment without a summary)."""
    out: dict[str, str] = {}
    for row in summary_rows(experiment):
        path = resolve_path(experiment, str(row.get("run", "")))
        if path.is_file():
            out[row_label(row)] = str(path)
    listed = set(out.values())
    for stage in experiment.stages:
        if not stage.complete or stage.stage in ("bm25-train", "synthetic-bm25"):
            continue
        path = Path(stage.path) / RUN_FILE
        if path.is_file() and str(path) not in listed:
            depth = stage.config.get("depth")
            out[f"{stage.stage}/{stage.key[:8]}" + (f" @{depth}" if depth else "")] = str(path)
    return out


def default_pair(experiment: Experiment) -> tuple[str | None, str | None]:
    """The runs the per-query page compares first (``system @depth`` labels): the baseline at
    the first depth that has one (else BM25), and a row fine-tuned on synthetic queries at
    that depth, preferably a cross-encoder interpolated with BM25 like the baseline."""
    rows = summary_rows(experiment)
    depths = [d for d in summary_depths(experiment) if d in baselines(experiment)]
    depths += [d for d in baselines(experiment) if d not in depths]
    base = baseline_row(experiment, depths[0]) if depths else None
    if base is None:
        base = next((r for r in rows if r.get("kind") == "bm25"), None)
    weight = (base or {}).get("bm25_weight") or 0
    depth = None if base is None else base.get("depth")

    def rank(row: Mapping[str, Any]) -> tuple[int, int, int]:
        return (
            0 if depth is None or row.get("depth") == depth else 1,
            0 if is_tuned_cross_encoder(row) else 1,
            0 if (row.get("bm25_weight") or 0) == weight else 1,
        )

    synthetic = [r for r in rows if r.get("kind") in ("synthetic", "fine-tuned")]
    tuned = min(synthetic, key=rank) if synthetic else None  # min keeps the first of equals
    return (
        None if base is None else row_label(base),
        None if tuned is None else row_label(tuned),
    )


def test_query_ids(experiment: Experiment) -> tuple[str, ...] | None:
    """The experiment's test queries: ``summary["test_query_ids"]`` when the summary lists them,
    else those the ``bm25-test`` stage lists (older runs) or retrieved for (its run file; newer
    stages record only a hash of the query set). None when none of these is there."""
    listed = (experiment.summary or {}).get("test_query_ids")
    if isinstance(listed, list) and listed:
        return tuple(str(q) for q in listed)
    for stage in experiment.of("bm25-test"):
        queries = stage.config.get("queries")
        if isinstance(queries, list) and queries:
            return tuple(str(q) for q in queries)
        run = Path(stage.path) / RUN_FILE
        if run.is_file():
            frame = run_frame(str(run), stamp(run))
            return tuple(sorted(frame["query_id"].astype(str).unique()))
    return None


# --------------------------------------------------------------------------- dataset


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def load_dataset(source: str) -> Any:
    """The dataset (corpus, queries, qrels) from a BEIR folder or, for a name, from
    ``$INPARS_DATA_DIR``: shared and never mutated by the dashboard."""
    from inpars_core.datasets import load_beir_folder, resolve_dataset
    from inpars_core.errors import InparsError

    folder = Path(source).expanduser()
    try:
        if folder.is_dir():
            return load_beir_folder(folder)
        return resolve_dataset(source, download=False)
    except InparsError as exc:
        where = folder if folder.is_absolute() else data_folder() / source
        raise MissingArtifactError(
            where,
            f"Dataset {source!r}",
            f"Set $INPARS_DATA_DIR to the folder that holds it ({exc}).",
        ) from None


def data_folder() -> Path:
    """Where a dataset named (not given as a folder) is looked up."""
    from inpars_core.datasets import data_dir

    return data_dir()


def dataset_source(experiment: Experiment) -> str:
    """What :func:`load_dataset` loads for this experiment: the folder the run used
    (``summary["dataset_path"]``) when it is still there, else the dataset's name (older
    summaries, interrupted runs, or a runs folder moved to another machine)."""
    path = experiment.dataset_path
    if path and Path(path).expanduser().is_dir():
        return path
    name = experiment.dataset
    if not name:
        raise MissingArtifactError(
            Path(experiment.path) / SUMMARY_FILE,
            "The dataset name (summary.json or an index stage)",
        )
    return name


def dataset_for(experiment: Experiment) -> Any:
    """The experiment's dataset, or :class:`MissingArtifactError` naming what is unknown."""
    return load_dataset(dataset_source(experiment))


def document_text(dataset: Any, doc_id: str) -> tuple[str, str]:
    """(title, text) of a document, or a note when the corpus lacks it."""
    doc = dataset.corpus.get(doc_id)
    if doc is None:
        return "", f"(document {doc_id} is not in the corpus)"
    return doc.title, doc.text


# --------------------------------------------------------------------------- runs


@st.cache_data(show_spinner="Reading the run…", max_entries=16)
def run_frame(run_path: str, version: tuple[int, ...] = ()) -> pd.DataFrame:
    """A TREC run as a DataFrame (query_id, doc_id, rank, score), ranked by the library's
    ``read_trec_run`` (score descending, doc id on ties)."""
    from inpars_core.errors import InparsError
    from inpars_core.runs import read_trec_run

    if not Path(run_path).is_file():
        raise MissingArtifactError(run_path, "The run file")
    try:
        run = read_trec_run(Path(run_path))
    except InparsError as exc:
        raise BadArtifactError(run_path, str(exc)) from None
    qids, dids, ranks, scores = [], [], [], []
    for query_id, docs in run.items():
        for rank, doc in enumerate(docs, start=1):
            qids.append(query_id)
            dids.append(doc.doc_id)
            ranks.append(rank)
            scores.append(doc.score)
    return pd.DataFrame(
        {
            "query_id": pd.Categorical(qids),
            "doc_id": pd.Categorical(dids),
            "rank": pd.array(ranks, dtype="int32"),
            "score": pd.array(scores, dtype="float64"),
        }
    )


def _run_dict(frame: pd.DataFrame) -> dict[str, list[Any]]:
    from ir_measures import ScoredDoc

    run: dict[str, list[Any]] = {}
    for qid, did, score in zip(
        frame["query_id"].astype(str), frame["doc_id"].astype(str), frame["score"], strict=True
    ):
        run.setdefault(qid, []).append(ScoredDoc(qid, did, float(score)))
    return run


@st.cache_data(show_spinner="Evaluating…", max_entries=32)
def per_query_values(
    run_path: str,
    dataset: str,
    query_ids: tuple[str, ...] | None,
    measures: tuple[str, ...],
    split: str = "test",
    version: tuple[int, ...] = (),
) -> pd.DataFrame:
    """Per-query values of ``measures`` for one run (index: query_id), via
    ``inpars_core.evaluation.evaluate`` on the experiment's test queries."""
    from inpars_core.evaluation import evaluate

    qrels = load_dataset(dataset).qrels(split)
    if query_ids is not None:
        wanted = set(query_ids)
        qrels = {q: j for q, j in qrels.items() if q in wanted}
    run = _run_dict(run_frame(run_path, stamp(run_path)))
    evaluation = evaluate(run, qrels, list(measures))
    frame = pd.DataFrame.from_dict(evaluation.per_query, orient="index")
    frame.index.name = "query_id"
    return frame.sort_index()


def run_values(
    experiment: Experiment, run_path: str, measures: Sequence[str] = (PER_QUERY_MEASURE,)
) -> pd.DataFrame:
    """Per-query values of one run of this experiment."""
    source = dataset_source(experiment)
    load_dataset(source)
    return per_query_values(
        run_path, source, test_query_ids(experiment), tuple(measures), "test", stamp(run_path)
    )


def per_query_delta(
    experiment: Experiment, run_a: str, run_b: str, measure: str = PER_QUERY_MEASURE
) -> pd.DataFrame:
    """Per query: before (run A), after (run B), Δ and win/tie/loss, sorted by Δ, with the
    query text."""
    a = run_values(experiment, run_a, (measure,))[measure]
    b = run_values(experiment, run_b, (measure,))[measure]
    frame = pd.DataFrame({"before": a, "after": b}).fillna(0.0)
    frame["delta"] = frame["after"] - frame["before"]
    frame["outcome"] = [
        "win" if d > TIE_TOLERANCE else "loss" if d < -TIE_TOLERANCE else "tie"
        for d in frame["delta"]
    ]
    queries = dataset_for(experiment).queries
    frame["query"] = [queries[q].text if q in queries else "" for q in frame.index]
    frame = frame.sort_values(["delta", "before"], ascending=[False, True], kind="stable")
    frame.index.name = "query_id"
    return frame


def win_tie_loss(frame: pd.DataFrame) -> dict[str, int]:
    """Counts of wins, ties and losses of run B over run A."""
    counts = frame["outcome"].value_counts()
    return {k: int(counts.get(k, 0)) for k in ("win", "tie", "loss")}


def ranking(experiment: Experiment, run_path: str, query_id: str) -> pd.DataFrame:
    """One query's ranking of one run (rank, doc_id, score)."""
    frame = run_frame(run_path, stamp(run_path))
    rows = frame[frame["query_id"] == query_id]
    return rows[["rank", "doc_id", "score"]].assign(doc_id=lambda f: f["doc_id"].astype(str))


def side_by_side(
    experiment: Experiment, run_a: str, run_b: str, query_id: str, top: int = 20
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Both rankings of one query (top ``top``) with relevance labels and the rank the other
    run gives each document, and the rank movement of every relevant document."""
    dataset = dataset_for(experiment)
    judged = dataset.qrels("test").get(query_id, {})
    a = ranking(experiment, run_a, query_id)
    b = ranking(experiment, run_b, query_id)
    rank_a = dict(zip(a["doc_id"], a["rank"], strict=True))
    rank_b = dict(zip(b["doc_id"], b["rank"], strict=True))

    def view(rows: pd.DataFrame, other: dict[str, int]) -> pd.DataFrame:
        rows = rows.head(top)
        return pd.DataFrame(
            {
                "rank": rows["rank"].astype(int).to_numpy(),
                "doc_id": rows["doc_id"].to_numpy(),
                "rel": [judged.get(d, 0) for d in rows["doc_id"]],
                "score": rows["score"].to_numpy(),
                "other rank": [other.get(d) for d in rows["doc_id"]],
                "title": [document_text(dataset, d)[0][:90] for d in rows["doc_id"]],
            }
        )

    movement = []
    for doc_id, rel in sorted(judged.items()):
        if rel <= 0:
            continue
        ra, rb = rank_a.get(doc_id), rank_b.get(doc_id)
        moved = None if ra is None or rb is None else ra - rb
        movement.append(
            {
                "doc_id": doc_id,
                "rel": rel,
                "rank A": ra,
                "rank B": rb,
                "moved up by": moved,
                "title": document_text(dataset, doc_id)[0][:90],
            }
        )
    columns = ["doc_id", "rel", "rank A", "rank B", "moved up by", "title"]
    return view(a, rank_b), view(b, rank_a), pd.DataFrame(movement, columns=columns)


# --------------------------------------------------------------------------- overview


def show(value: Any, spec: str = "", missing: str = "n/a") -> str:
    """``format(value, spec)``, or ``missing`` for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


TRAINING_FIELDS = (
    "best_step",
    "kept_step",
    "final_step",
    "step0_dev_ndcg10",
    "best_dev_ndcg10",
    "best_at_step0",
)
KINDS_TEXT = (
    "Kinds: bm25; zero-shot = never trained on this collection; supervised = trained on its "
    "train qrels; synthetic = fine-tuned on generated queries. `⊕ w·BM25` = (1 − w)·model + "
    "w·BM25 (min-max per query); the pure model's row stands beside it."
)


def training_of_row(experiment: Experiment, row: Mapping[str, Any]) -> dict[str, Any]:
    """Training facts of a fine-tuned row: summary's own, else the finetune stage's counts."""
    if row.get("training"):
        return dict(row["training"])
    tune = finetune_of_row(experiment, row)
    if tune is None:
        return {}
    counts = tune.counts
    return {k: counts.get(k) for k in (*TRAINING_FIELDS, "dev", "dev_queries")}


def kept_model_text(training: Mapping[str, Any]) -> str:
    """``kept/final (dev step 0 → best @ step; which dev)``, as summary.md writes it."""
    best = training.get("best_step")
    kept = training.get("kept_step")
    kept = best if kept is None else kept
    dev = f"; {training['dev']} dev" if training.get("dev") else ""
    if best is not None and training.get("best_dev_ndcg10") is not None:
        return (
            f"{kept}/{training.get('final_step')} "
            f"({_fmt(training.get('step0_dev_ndcg10'), 3)} → "
            f"{_fmt(training.get('best_dev_ndcg10'), 3)} @ {best}{dev})"
        )
    final = training.get("final_step")
    if final is not None:
        return f"{final}/{final} (no dev set)"
    return ""


def overlap_of(experiment: Experiment) -> dict[str, Any]:
    """``summary["overlap"]`` (test queries sharing a relevant document with the queries the
    reranker was trained or selected on); empty for older summaries."""
    return dict((experiment.summary or {}).get("overlap") or {})


def summary_notes(experiment: Experiment) -> list[str]:
    """The sentences that say how to read the table: the baseline of each depth, the
    Holm–Bonferroni family, the kinds, and the overlap with the training queries."""
    summary = experiment.summary or {}
    base = baselines(experiment)
    base_text = "; ".join(f"depth {d}: `{name}`" for d, name in base.items()) or "none"
    notes = [
        f"Δ vs the baseline at the same depth ({base_text}); * = paired t-test and Wilcoxon "
        "both < 0.05 after Holm–Bonferroni.",
        str(summary.get("holm_family_text") or ""),
        KINDS_TEXT,
        str(overlap_of(experiment).get("text") or ""),
    ]
    return [n for n in notes if n]


MODEL_KEPT = "model kept: step/steps (dev nDCG@10 step 0 → best @ step)"


def overview_frames(
    experiment: Experiment, depth: str = "all", *, without_overlap: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The before/after table: a display frame (value (Δ*) strings, like summary.md) and a raw
    frame with every number, for one depth (``"all"`` for every depth; BM25 always shown).
    ``without_overlap``: the block evaluated on the test queries without overlap."""
    if experiment.summary is None:
        raise MissingArtifactError(
            Path(experiment.path) / SUMMARY_FILE,
            "summary.json",
            "The experiment has not finished; rerun `inpars run CONFIG` to complete it.",
        )
    measures = list(experiment.summary.get("measures") or [])
    rows = no_overlap_rows(experiment) if without_overlap else summary_rows(experiment)
    base = baselines(experiment)
    display, raw = [], []
    for row in rows:
        row_depth = row.get("depth")
        if depth != "all" and row_depth is not None and str(row_depth) != depth:
            continue
        values = row.get("measures") or {}
        deltas = row.get("delta") or {}
        marks = row.get("significant") or {}
        p_values = row.get("p_values") or {}
        wtl = (row.get("wins_ties_losses") or {}).get(PER_QUERY_MEASURE)
        training = training_of_row(experiment, row)
        seconds = {k: float(v) for k, v in (row.get("stage_seconds") or {}).items()}
        is_base = bool(row.get("baseline")) or (
            row_depth is not None and base.get(str(row_depth)) == row.get("system")
        )
        shown: dict[str, Any] = {
            "system": row.get("system"),
            "kind": row.get("kind"),
            "depth": depth_label(row_depth),
            "baseline": "✓" if is_base else "",
        }
        numbers: dict[str, Any] = {
            **shown,
            "baseline": is_base,
            "family": row.get("family"),
            "variant": row.get("variant"),
            "variants": ", ".join(str(v) for v in row.get("variants") or []),
            "bm25_weight": row.get("bm25_weight"),
            "pure_system": row.get("pure_system"),
        }
        for m in measures:
            value, delta = values.get(m), deltas.get(m)
            text = _fmt(value)
            if delta is not None:
                text += f" ({delta:+.4f}{'*' if marks.get(m) else ''})"
            shown[m] = text
            numbers[m] = value
            numbers[f"delta {m}"] = delta
            numbers[f"significant {m}"] = marks.get(m)
            numbers[f"t p {m}"] = (p_values.get(m) or {}).get("t")
            numbers[f"wilcoxon p {m}"] = (p_values.get(m) or {}).get("wilcoxon")
        shown["W/T/L nDCG@10"] = "/".join(map(str, wtl)) if wtl else ""
        numbers["wins/ties/losses nDCG@10"] = "/".join(map(str, wtl)) if wtl else ""
        shown[MODEL_KEPT] = kept_model_text(training)
        for k in (*TRAINING_FIELDS, "dev", "dev_queries", "kept_queries", "triples"):
            numbers[k] = training.get(k)
        cost = row.get("generation_cost_usd")
        shown["cost US$"] = "" if cost is None else f"{cost:.4f}"
        numbers["generation_cost_usd"] = cost
        shown["seconds"] = f"{sum(seconds.values()):.0f}"
        shown["stage seconds"] = ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
        numbers["seconds"] = sum(seconds.values())
        numbers.update({f"seconds {k}": v for k, v in seconds.items()})
        display.append(shown)
        raw.append(numbers)
    numbers_frame = pd.DataFrame(raw)
    for column in ("best_step", "kept_step", "final_step", "dev_queries", "kept_queries",
                   "triples"):  # fmt: skip
        if column in numbers_frame:  # whole numbers stay whole in the CSV beside empty cells
            numbers_frame[column] = numbers_frame[column].astype("Int64")
    return pd.DataFrame(display), numbers_frame


def variants_frame(experiment: Experiment) -> pd.DataFrame:
    """One row per fine-tuned model: the variants that used it, its objective and learning
    rate, and the synthetic queries and triples it was trained on (from the stage lineage)."""
    names = variant_of_finetune(experiment)
    rows = []
    for tune in experiment.of("finetune"):
        parents = upstream(experiment, tune)
        config, counts = tune.config, tune.counts
        rows.append(
            {
                "variant": ", ".join(names.get(tune.key, [])) or f"({tune.key[:8]})",
                "objective": config.get("objective"),
                "lr": config.get("lr"),
                "max_steps": config.get("max_steps"),
                "generated": parents["generate"].counts.get("queries")
                if "generate" in parents
                else None,
                "kept": parents["filter"].counts.get("kept") if "filter" in parents else None,
                "triples": parents["triples"].counts.get("triples")
                if "triples" in parents
                else None,
                "dev": counts.get("dev"),
                "best step": counts.get("best_step"),
                "final step": counts.get("final_step"),
                "finetune key": tune.key,
            }
        )
    return pd.DataFrame(rows)


def summary_depths(experiment: Experiment) -> list[str]:
    """Rerank depths in the summary, as strings."""
    return [str(d) for d in (experiment.summary or {}).get("depths") or []]


def stage_seconds_frame(experiment: Experiment) -> pd.DataFrame:
    """Long frame (system, depth, stage, seconds) for the stage-time chart."""
    rows = []
    for row in summary_rows(experiment):
        for stage_name, seconds in (row.get("stage_seconds") or {}).items():
            rows.append(
                {
                    "system": row_label(row),
                    "stage": stage_name,
                    "seconds": float(seconds),
                }
            )
    return pd.DataFrame(rows, columns=["system", "stage", "seconds"])


def summary_markdown(experiment: Experiment) -> str:
    """The before/after table as Markdown (the pipeline's own ``summary.md`` renderer)."""
    from inpars_core.experiments.summary import to_markdown

    if experiment.summary is None:
        raise MissingArtifactError(Path(experiment.path) / SUMMARY_FILE, "summary.json")
    return to_markdown(experiment.summary)


def table_csv(frame: pd.DataFrame) -> str:
    """A frame as CSV (raw numbers)."""
    out = io.StringIO()
    frame.to_csv(out, index=False, quoting=csv.QUOTE_MINIMAL)
    return out.getvalue()


def table_latex(frame: pd.DataFrame, caption: str = "") -> str:
    """A display frame as a booktabs LaTeX ``tabular`` (text columns left, others right)."""
    columns = list(frame.columns)
    text = ("system", "kind", "baseline", "stage seconds", MODEL_KEPT)
    align = "".join("l" if c in text else "r" for c in columns)
    lines = []
    if caption:
        lines.append(f"% {caption}")
    lines += [
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(latex_escape(str(c)) for c in columns) + r" \\",
        r"\midrule",
    ]
    for _, row in frame.iterrows():
        lines.append(" & ".join(latex_escape(str(row[c])) for c in columns) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def table_png(frame: pd.DataFrame, title: str = "") -> bytes:
    """A display frame drawn as a table (matplotlib), PNG bytes for slides."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    columns = [str(c) for c in frame.columns]
    cells = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [
        max([len(c), *(len(r[i]) for r in cells)]) if cells else len(c)
        for i, c in enumerate(columns)
    ]
    total = max(sum(widths), 1)
    figure = Figure(figsize=(min(max(total * 0.085, 6), 30), 0.45 * (len(cells) + 2) + 0.4))
    axes = figure.add_subplot()
    axes.axis("off")
    if title:
        axes.set_title(title, fontsize=11, loc="left")
    table = axes.table(
        cellText=cells or [[""] * len(columns)],
        colLabels=columns,
        colWidths=[w / total for w in widths],
        loc="center",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.4)
    for (row, _col), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e8eef7")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=200, bbox_inches="tight")
    return buffer.getvalue()


@st.cache_data(show_spinner="Paired tests…", max_entries=32)
def _paired(
    runs: tuple[tuple[str, str], ...],
    baseline: str,
    dataset: str,
    query_ids: tuple[str, ...] | None,
    measure: str,
    version: tuple[int, ...] = (),
) -> Any:
    from inpars_core.compare import compare
    from inpars_core.evaluation import Evaluation

    evaluations = {}
    for name, path in runs:
        frame = per_query_values(path, dataset, query_ids, (measure,), "test", stamp(path))
        per_query = {q: {measure: float(v)} for q, v in frame[measure].items()}
        evaluations[name] = Evaluation(
            (measure,), {measure: float(frame[measure].mean())}, per_query
        )
    return compare(evaluations, baseline, measure)


def paired_comparison(
    experiment: Experiment, depth: str, measure: str, *, without_overlap: bool = False
) -> Any:
    """``inpars_core.compare.compare`` of every system at ``depth`` against that depth's
    baseline (paired t-test and Wilcoxon, Holm-corrected over the systems at this depth and
    this measure), on the test queries (``without_overlap``: minus the overlapping ones), or
    None when there is no baseline or nothing to compare it with."""
    baseline = baselines(experiment).get(str(depth))
    runs = []
    for row in summary_rows(experiment):
        if str(row.get("depth")) != depth:
            continue
        path = resolve_path(experiment, str(row.get("run", "")))
        if not path.is_file():
            raise MissingArtifactError(path, f"The run of {row_label(row)}")
        runs.append((str(row.get("system")), str(path)))
    if baseline is None or baseline not in dict(runs) or len(runs) < 2:
        return None
    source = dataset_source(experiment)
    query_ids = test_query_ids(experiment)
    if without_overlap:
        if query_ids is None:
            query_ids = tuple(load_dataset(source).qrels("test"))
        excluded = set(overlap_of(experiment).get("overlapping") or [])
        query_ids = tuple(q for q in query_ids if q not in excluded)
    load_dataset(source)
    paths = [p for _, p in runs]
    return _paired(tuple(runs), baseline, source, query_ids, measure, stamp(*paths))


def comparison_frame(comparison: Any) -> pd.DataFrame:
    """A ``Comparison`` as a DataFrame (one row per run, baseline first)."""
    rows = [{"run": comparison.baseline, "mean": comparison.baseline_mean}]
    for r in comparison.rows:
        rows.append(
            {
                "run": r.run,
                "mean": r.mean,
                "delta": r.delta,
                "win": r.wins,
                "tie": r.ties,
                "loss": r.losses,
                "t p (Holm)": r.t_p_holm,
                "Wilcoxon p (Holm)": r.wilcoxon_p_holm,
                "significant": "*" if r.significant else "",
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- synthetic queries


_QUERY_FIELDS = (
    "query_id",
    "doc_id",
    "text",
    "raw_output",
    "prompt_id",
    "prompt_hash",
    "backend",
    "model",
    "seed",
    "mean_logprob",
    "sum_logprob",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_s",
)


def _synthetic_queries(rows: Iterable[Mapping[str, Any]]) -> list[Any]:
    from inpars_core.records import SyntheticQuery

    out = []
    for row in rows:
        if not isinstance(row.get("query_id"), str) or not isinstance(row.get("doc_id"), str):
            continue
        values = {k: row[k] for k in _QUERY_FIELDS if k in row}
        values.setdefault("text", "")
        for name in ("raw_output", "prompt_id", "prompt_hash", "backend", "model"):
            values.setdefault(name, "")
        values.setdefault("seed", 0)
        out.append(SyntheticQuery(**values))
    return out


@st.cache_data(show_spinner="Reading synthetic queries…", max_entries=16)
def synthetic_frame(
    generate_dir: str,
    filter_dir: str | None,
    bm25_dir: str | None,
    dataset: str,
    examples: tuple[str, ...],
    thresholds: tuple[float, float, float],
    version: tuple[int, ...] = (),
) -> tuple[pd.DataFrame, int]:
    """Every generated query with its log-prob, length, filter verdict and reasons, and flags
    recomputed with the pipeline's own filters: duplicate, copy of the document, copy of a
    few-shot example; plus the BM25 rank of its source document. Also returns the number of
    unreadable lines."""
    from inpars_core import filtering

    rows, bad = read_jsonl(Path(generate_dir) / "queries.jsonl", "queries.jsonl")
    queries = _synthetic_queries(rows)
    corpus = load_dataset(dataset).corpus
    dup_j, doc_max, example_j = thresholds
    duplicates = {v.query_id: v for v in filtering.by_duplicates(queries, near_jaccard=dup_j)}
    doc_copy = {
        v.query_id: v for v in filtering.by_document_copy(queries, corpus, max_overlap=doc_max)
    }
    example_copy = {}
    if examples:
        verdicts = filtering.by_example_copy(queries, examples, near_jaccard=example_j)
        example_copy = {v.query_id: v for v in verdicts}
    kept_ids: set[str] | None = None
    reasons: dict[str, list[tuple[str, str]]] = {}
    if filter_dir is not None:
        kept_rows, _ = read_jsonl(Path(filter_dir) / "kept.jsonl", "kept.jsonl")
        kept_ids = {str(r.get("query_id")) for r in kept_rows}
        dropped_path = Path(filter_dir) / "dropped.jsonl"
        if dropped_path.is_file():
            for row in read_jsonl(dropped_path, "dropped.jsonl")[0]:
                reasons[str(row.get("query_id"))] = [
                    (str(v.get("filter")), str(v.get("reason") or ""))
                    for v in row.get("verdicts") or []
                    if not v.get("kept", True)
                ]
    source_rank: dict[str, int] = {}
    if bm25_dir is not None and (Path(bm25_dir) / RUN_FILE).is_file():
        frame = run_frame(str(Path(bm25_dir) / RUN_FILE), stamp(Path(bm25_dir) / RUN_FILE))
        by_query = {q.query_id: q.doc_id for q in queries}
        source_of_row = frame["query_id"].astype(str).map(by_query).to_numpy()
        hits = frame[frame["doc_id"].astype(str).to_numpy() == source_of_row]
        source_rank = dict(zip(hits["query_id"].astype(str), hits["rank"].astype(int), strict=True))
    records = []
    for q in queries:
        flags = []
        if duplicates.get(q.query_id) is not None and not duplicates[q.query_id].kept:
            flags.append("duplicate")
        doc = doc_copy.get(q.query_id)
        if doc is not None and not doc.kept:
            flags.append("copies document")
        ex = example_copy.get(q.query_id)
        if ex is not None and not ex.kept:
            flags.append("copies few-shot example")
        if kept_ids is None:
            verdict = "not filtered"
        else:
            verdict = "kept" if q.query_id in kept_ids else "dropped"
        why = reasons.get(q.query_id, [])
        records.append(
            {
                "query_id": q.query_id,
                "doc_id": q.doc_id,
                "text": q.text,
                "words": len(words(q.text)),
                "mean_logprob": q.mean_logprob,
                "sum_logprob": q.sum_logprob,
                "completion_tokens": q.completion_tokens,
                "verdict": verdict,
                "dropped by": ", ".join(f for f, _ in why),
                "reasons": "; ".join(r for _, r in why),
                "flags": ", ".join(flags),
                "doc overlap": None if doc is None else doc.value,
                "example jaccard": None if ex is None else ex.value,
                "source rank": source_rank.get(q.query_id),
                "cost_usd": q.cost_usd,
                "latency_s": q.latency_s,
                "raw_output": q.raw_output,
            }
        )
    columns = [
        "query_id", "doc_id", "text", "words", "mean_logprob", "sum_logprob",
        "completion_tokens", "verdict", "dropped by", "reasons", "flags", "doc overlap",
        "example jaccard", "source rank", "cost_usd", "latency_s", "raw_output",
    ]  # fmt: skip
    return pd.DataFrame(records, columns=columns), bad


def synthetic_for(experiment: Experiment, generation: Generation) -> tuple[pd.DataFrame, int]:
    """The synthetic-query table of one generation (see :func:`synthetic_frame`)."""
    source = dataset_source(experiment)
    load_dataset(source)
    config = generation.filter.config if generation.filter else {}
    thresholds = (
        float(config.get("near_duplicate_jaccard") or 0.9),
        float(config.get("max_document_overlap") or 0.8),
        float(config.get("example_copy_jaccard") or 0.8),
    )
    examples = tuple(str(e) for e in generation.generate.counts.get("example_queries") or [])
    gen_file = Path(generation.generate.path) / "queries.jsonl"
    paths = [gen_file]
    if generation.filter:
        paths.append(Path(generation.filter.path) / "kept.jsonl")
    return synthetic_frame(
        generation.generate.path,
        generation.filter.path if generation.filter else None,
        generation.synthetic_bm25.path if generation.synthetic_bm25 else None,
        source,
        examples,
        thresholds,
        stamp(*paths),
    )


def filter_queries(
    frame: pd.DataFrame,
    search: str = "",
    verdicts: Sequence[str] = (),
    flagged_only: bool = False,
    logprob_range: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Rows matching a case-insensitive search (query text, ids), the chosen verdicts, only
    flagged rows, and a mean log-prob range."""
    mask = pd.Series(True, index=frame.index)
    if search:
        needle = search.casefold()
        mask &= (
            frame["text"].str.casefold().str.contains(needle, regex=False)
            | frame["query_id"].str.casefold().str.contains(needle, regex=False)
            | frame["doc_id"].str.casefold().str.contains(needle, regex=False)
        )
    if verdicts:
        mask &= frame["verdict"].isin(list(verdicts))
    if flagged_only:
        mask &= frame["flags"] != ""
    if logprob_range is not None:
        lp = frame["mean_logprob"]
        mask &= lp.isna() | lp.between(logprob_range[0], logprob_range[1])
    return frame[mask]


@st.cache_data(show_spinner=False, max_entries=16)
def triples_frame(triples_dir: str, version: tuple[int, ...] = ()) -> pd.DataFrame:
    """The training triples of a stage as a DataFrame."""
    rows, _ = read_jsonl(Path(triples_dir) / "triples.jsonl", "triples.jsonl")
    columns = [
        "query_id", "query_text", "pos_doc_id", "neg_doc_id", "neg_source", "neg_rank",
        "teacher_pos_score", "teacher_neg_score",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def negatives_for(experiment: Experiment, generation: Generation, query_id: str) -> pd.DataFrame:
    """The negatives mined for one synthetic query: BM25 rank, source, teacher scores, title."""
    if generation.triples is None:
        raise MissingArtifactError(
            Path(experiment.path) / "stages" / "triples",
            "The triples stage of this generation",
            "Negatives are mined after filtering; rerun the experiment to get there.",
        )
    path = Path(generation.triples.path) / "triples.jsonl"
    frame = triples_frame(generation.triples.path, stamp(path))
    rows = frame[frame["query_id"] == query_id].copy()
    dataset = dataset_for(experiment)
    rows["neg title"] = [document_text(dataset, d)[0][:90] for d in rows["neg_doc_id"]]
    return rows[
        ["neg_doc_id", "neg_source", "neg_rank", "teacher_pos_score", "teacher_neg_score",
         "neg title"]
    ].reset_index(drop=True)  # fmt: skip


def closest_synthetic(
    experiment: Experiment, query_text: str, generation: Generation | None, k: int = 5
) -> pd.DataFrame:
    """The kept synthetic training queries closest to a test query by word-set Jaccard."""
    gens = [generation] if generation is not None else list(generations(experiment).values())
    target = set(words(query_text))
    rows = []
    for gen in gens:
        frame, _ = synthetic_for(experiment, gen)
        if "kept" in set(frame["verdict"]):
            frame = frame[frame["verdict"] == "kept"]
        for qid, doc_id, text in frame[["query_id", "doc_id", "text"]].itertuples(index=False):
            other = set(words(text))
            union = target | other
            score = len(target & other) / len(union) if union else 0.0
            rows.append({"overlap": score, "synthetic query": text, "query_id": qid,
                         "source doc": doc_id})  # fmt: skip
    frame = pd.DataFrame(rows, columns=["overlap", "synthetic query", "query_id", "source doc"])
    frame = frame.sort_values("overlap", ascending=False, kind="stable")
    return frame.head(k).reset_index(drop=True)


# --------------------------------------------------------------------------- encodings


@st.cache_resource(show_spinner="Loading the reranker…", max_entries=4)
def load_model(model: str) -> Any:
    """A reranker and its tokenizer for inference (shared, read-only, CPU)."""
    from inpars_core.reranking.scoring import ScoringConfig, load_reranker

    folder = Path(model)
    if folder.is_absolute() or folder.exists():
        if not (folder / "config.json").is_file():
            raise MissingArtifactError(folder / "config.json", "The model's config.json")
        if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
            raise MissingArtifactError(
                folder / "model.safetensors",
                "The model's weights",
                "The training stage did not finish writing the model; rerun the experiment.",
            )
    try:
        return load_reranker(model, ScoringConfig(batch_size=8, device="cpu"))
    except (OSError, ValueError) as exc:
        raise BadArtifactError(model, f"the model cannot be loaded ({exc})") from None


@st.cache_data(show_spinner=False, max_entries=256)
def explain_pair(model: str, query: str, document: str, mode: str, max_length: int) -> dict:
    """``explain_encoding`` of one pair plus the model's score under that encoding."""
    from inpars_core.reranking.encoding import EncodingConfig, explain_encoding
    from inpars_core.reranking.scoring import score_pairs

    reranker = load_model(model)
    config = EncodingConfig(mode, max_length)  # type: ignore[arg-type]
    explained = explain_encoding(
        reranker.tokenizer, query, document, config, reranker.type_vocab_size
    )
    explained["score"] = score_pairs(reranker, [(query, document)], config)[0]
    explained["type_vocab_size"] = reranker.type_vocab_size
    return explained


CORPUS_SAMPLE = 2000


def corpus_sample(dataset: str, limit: int = CORPUS_SAMPLE) -> list[str]:
    """Up to ``limit`` documents (title and text), evenly spaced over the corpus in id order, so
    statistics stay quick on large corpora; every document when ``limit`` is 0."""
    docs = [d.contents for d in load_dataset(dataset).corpus.values()]
    if limit <= 0 or limit >= len(docs):
        return docs
    step = len(docs) / limit
    return [docs[int(i * step)] for i in range(limit)]


@st.cache_data(show_spinner="Tokenising the corpus…", max_entries=32)
def truncation(
    model: str, dataset: str, max_length: int, limit: int = CORPUS_SAMPLE
) -> dict[str, float]:
    """``truncation_stats`` at ``max_length`` over :func:`corpus_sample`."""
    from inpars_core.reranking.encoding import truncation_stats

    docs = corpus_sample(dataset, limit)
    return truncation_stats(load_model(model).tokenizer, docs, max_length)


@st.cache_data(show_spinner="Tokenising the corpus…", max_entries=8)
def document_lengths(model: str, dataset: str, limit: int = CORPUS_SAMPLE) -> list[int]:
    """Token count of every sampled document (no special tokens), for the length histogram."""
    docs = corpus_sample(dataset, limit)
    tokenizer = load_model(model).tokenizer
    return [len(ids) for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]]


def tokens_html(explained: Mapping[str, Any]) -> str:
    """Tokens as coloured chips: token type 0 blue, 1 orange; padding (mask 0) grey and struck
    through; a scissors mark where truncation cut the document."""
    chips = []
    for token, kind, mask in zip(
        explained["tokens"], explained["token_type_ids"], explained["attention_mask"], strict=True
    ):
        colour = "#f3f3f3" if not mask else ("#d6e6ff" if kind == 0 else "#ffe0b8")
        style = (
            f"background:{colour};border-radius:3px;padding:1px 3px;margin:1px;"
            "display:inline-block;font-family:monospace;font-size:0.85em"
        )
        if not mask:
            style += ";text-decoration:line-through;color:#999"
        chips.append(
            f'<span title="type {kind} · mask {mask}" style="{style}">{html.escape(token)}</span>'
        )
    if explained.get("truncated"):
        chips.append(
            '<span style="color:#c00;font-weight:bold;margin-left:4px">✂ truncated at '
            f"{explained['max_length']} (of {explained['untruncated_length']} tokens)</span>"
        )
    return '<div style="line-height:1.9">' + "".join(chips) + "</div>"


def tokens_frame(explained: Mapping[str, Any]) -> pd.DataFrame:
    """Position, token, id, token type and attention mask of every position."""
    return pd.DataFrame(
        {
            "token": explained["tokens"],
            "input_id": explained["input_ids"],
            "token_type_id": explained["token_type_ids"],
            "attention_mask": explained["attention_mask"],
        }
    )


def default_max_length(experiment: Experiment) -> int:
    """The max_length the experiment's rerank (or fine-tune) stage used, else 256."""
    for stage in experiment.of("rerank") + experiment.of("finetune"):
        value = stage.config.get("max_length")
        if isinstance(value, int) and value >= 8:
            return value
    return 256


def sample_pairs(experiment: Experiment, limit: int = 50) -> dict[str, tuple[str, str, str]]:
    """Label -> (query, document id, document) pairs from the data: test queries with their
    first relevant document and synthetic queries with their source document."""
    dataset = dataset_for(experiment)
    out: dict[str, tuple[str, str, str]] = {}
    ids = test_query_ids(experiment) or tuple(dataset.qrels("test"))
    qrels = dataset.qrels("test")
    for qid in ids[:limit]:
        relevant = [d for d, r in qrels.get(qid, {}).items() if r > 0 and d in dataset.corpus]
        if qid in dataset.queries and relevant:
            text = dataset.queries[qid].text
            doc = dataset.corpus[relevant[0]]
            out[f"test {qid}: {text[:60]}"] = (text, doc.doc_id, doc.contents)
    for gen in generations(experiment).values():
        try:
            frame, _ = synthetic_for(experiment, gen)
        except (MissingArtifactError, BadArtifactError):
            continue  # the synthetic-queries page says what is missing
        rows = frame[["query_id", "doc_id", "text"]].head(limit).itertuples(index=False)
        for qid, doc_id, text in rows:
            if doc_id in dataset.corpus:
                doc = dataset.corpus[doc_id]
                out[f"synthetic {qid}: {text[:60]}"] = (text, doc_id, doc.contents)
    return out


# --------------------------------------------------------------------------- training


@st.cache_data(show_spinner=False, max_entries=64)
def training_logs(
    stage_dir: str, version: tuple[int, ...] = ()
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``train_log.jsonl``, ``eval_log.jsonl`` and ``trained/meta.json`` of a training stage."""
    trained = Path(stage_dir) / "trained"
    if not trained.is_dir():
        raise MissingArtifactError(trained, "The training folder")
    train_rows, _ = read_jsonl(trained / "train_log.jsonl", "train_log.jsonl")
    eval_path = trained / "eval_log.jsonl"
    eval_rows = read_jsonl(eval_path, "eval_log.jsonl")[0] if eval_path.is_file() else []
    meta_path = trained / META_FILE
    meta = read_json(meta_path, "trained/meta.json") if meta_path.is_file() else {}
    train = pd.DataFrame(train_rows)
    evals = pd.DataFrame(eval_rows)
    for frame, cols in ((train, ["step", "loss", "lr", "grad_norm", "param_drift"]),
                        (evals, ["step", "nDCG@10", "probe_mean", "probe_std", "probe_pos_mean",
                                 "probe_neg_mean"])):  # fmt: skip
        for col in cols:
            if col not in frame.columns:
                frame[col] = pd.Series(dtype="float64")
    return train, evals, meta


TrainingView = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[tuple[str, str]]]


def training_for(labels: Sequence[str], stages: Mapping[str, StageInfo]) -> TrainingView:
    """Long train and eval frames (column ``run``) for the chosen training stages, a table of
    what each run did (first/last loss, step-0 vs best dev nDCG@10, probe spread, drift), and
    the notes and pitfall warnings the trainer recorded."""
    trains, evals, table, notes = [], [], [], []
    for label in labels:
        stage = stages[label]
        trained = Path(stage.path) / "trained"
        train, ev, meta = training_logs(
            stage.path, stamp(trained / "train_log.jsonl", trained / "eval_log.jsonl")
        )
        trains.append(train.assign(run=label))
        evals.append(ev.assign(run=label))
        config = meta.get("config") or stage.config
        results = {**stage.counts, **(meta.get("results") or {})}
        best = None
        if len(ev) and ev["nDCG@10"].notna().any():
            best = ev.loc[ev["nDCG@10"].idxmax()]
        best_step = results.get("best_step", None if best is None else int(best["step"]))
        kept_step = results.get("kept_step")
        step0 = ev[ev["step"] == 0]
        first = ev.iloc[0] if len(ev) else None
        last = ev.iloc[-1] if len(ev) else None
        table.append(
            {
                "run": label,
                "objective": config.get("objective"),
                "lr": config.get("lr"),
                "steps": int(train["step"].max()) if len(train) else 0,
                "first loss": float(train["loss"].iloc[0]) if len(train) else None,
                "last loss": float(train["loss"].iloc[-1]) if len(train) else None,
                "dev nDCG@10 step 0": float(step0["nDCG@10"].iloc[0]) if len(step0) else None,
                "best dev nDCG@10": None if best is None else float(best["nDCG@10"]),
                "best step": best_step,
                "kept step": best_step if kept_step is None else kept_step,
                "problem_type": results.get("problem_type"),
                "probe std first → last": (
                    f"{first['probe_std']:.3f} → {last['probe_std']:.3f}"
                    if first is not None and pd.notna(first["probe_std"])
                    else ""
                ),
                "param drift": float(train["param_drift"].iloc[-1]) if len(train) else None,
                "complete": stage.complete,
            }
        )
        for note in meta.get("notes") or stage.counts.get("notes") or []:
            notes.append((label, str(note)))
    train_long = pd.concat(trains, ignore_index=True) if trains else pd.DataFrame()
    eval_long = pd.concat(evals, ignore_index=True) if evals else pd.DataFrame()
    return train_long, eval_long, pd.DataFrame(table), notes


def marked_points(eval_long: pd.DataFrame, table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The evaluation of each run at the step named in ``table[column]`` (``best step`` or
    ``kept step``), when that step was evaluated."""
    if eval_long.empty or table.empty or eval_long["nDCG@10"].isna().all():
        return eval_long.head(0)
    steps = dict(zip(table["run"], table[column], strict=True))
    wanted = eval_long.apply(lambda r: steps.get(r["run"]) == r["step"], axis=1)
    return eval_long[wanted.astype(bool)].dropna(subset=["nDCG@10"])


_PITFALL = re.compile(r"\bP(\d+)\b")


def classify_notes(notes: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(run, note, level): ``error`` for the silent-MSE pitfall (P2, a regression loss on 0/1
    labels), ``warning`` for any other named pitfall, ``info`` for the rest."""
    out = []
    for label, note in notes:
        pitfalls = set(_PITFALL.findall(note))
        if "2" in pitfalls or "'regression'" in note:
            level = "error"
        elif pitfalls:
            level = "warning"
        else:
            level = "info"
        out.append((label, note, level))
    return out
