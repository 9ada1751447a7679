"""Reading what ``inpars run`` wrote, cached: the loading layer of the dashboard.

The dashboard only reads the pipeline's artifacts: ``<runs-dir>/<experiment>/summary.json``
(rows with their measures, Δ, p-values, win/tie/loss and the stage folders that made them),
``per_query.tsv`` (every row's per-query values), ``experiment.json`` (the manifest) and the stage
folders ``stages/<stage>/<key>/`` (``queries.jsonl`` and ``prompt.json`` of a generation,
``verdicts.jsonl`` of a filter, training logs). It never evaluates, compares or filters again.

Loaders take paths (as strings) plus a ``version`` (modification times, see :func:`stamp`) so that
a rerun of the pipeline invalidates the cache (Streamlit does not hash parameters named with a
leading ``_``). ``st.cache_data`` holds DataFrames and plain values; ``st.cache_resource`` holds
only shared, read-only objects: the dataset (corpus, queries, qrels) and a reranker with its
tokenizer. A missing or unreadable file raises :class:`MissingArtifactError` or
:class:`BadArtifactError`, which the pages turn into a message naming the file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from inpars_core.diagnosis.findings import Diagnosis
from inpars_core.errors import InputFormatError
from inpars_core.stages.contract import ARTIFACT_TYPES, read_artifact
from inpars_core.stages.filter import VERDICTS_FILE
from inpars_core.stages.generate import PROMPT_FILE

logger = logging.getLogger(__name__)

RUNS_DIR_ENV = "INPARS_RUNS_DIR"
#: Set to "1" by ``inpars dashboard`` when it listens beyond this machine (``--host 0.0.0.0``):
#: the runs directory is then the command line's, and the sidebar cannot change it.
FIXED_RUNS_DIR_ENV = "INPARS_DASHBOARD_FIXED_RUNS_DIR"
SUMMARY_FILE = "summary.json"
SUMMARY_MD_FILE = "summary.md"
MANIFEST_FILE = "experiment.json"
PER_QUERY_FILE = "per_query.tsv"
DIAGNOSIS_FILE = "diagnosis.json"
META_FILE = "meta.json"
RUN_FILE = "run.trec"
WORK_SUFFIX = ".work"
NEWER_PIPELINE = "It is written by `inpars run` since version 0.2: rerun the experiment."
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


def runs_dir_is_fixed(environ: Mapping[str, str] | None = None) -> bool:
    """Whether visitors may not change the runs directory: ``inpars dashboard`` says so (in
    ``$INPARS_DASHBOARD_FIXED_RUNS_DIR``) when it listens on an address other machines reach,
    so that a visitor cannot point the app at other folders of the server."""
    value = (os.environ if environ is None else environ).get(FIXED_RUNS_DIR_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no")


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
        """Input name -> key of the input stage (or an external id such as ``<model>@<hash>``):
        the runner's ``keys`` where a stage module wrote the meta (its ``inputs`` are then the
        stage's own: paths and artifact records), else ``inputs``."""
        keys = self.meta.get("keys", self.meta.get("inputs")) or {}
        return {k: str(v) for k, v in keys.items()}

    @property
    def config(self) -> dict[str, Any]:
        """The stage's parameters: the runner's keyed ``params`` where a stage module wrote the
        meta, else ``config``."""
        return dict(self.meta.get("params", self.meta.get("config")) or {})

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
    manifest: dict[str, Any] | None = None

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
        """The dataset name recorded in the summary or the manifest (experiment.json)."""
        if self.summary and self.summary.get("dataset"):
            return str(self.summary["dataset"])
        recorded = (self.manifest or {}).get("dataset") or {}
        return str(recorded["name"]) if recorded.get("name") else None

    @property
    def dataset_path(self) -> str | None:
        """The dataset folder the run used, as summary.json (or experiment.json) records it."""
        if self.summary and self.summary.get("dataset_path"):
            return str(self.summary["dataset_path"])
        recorded = (self.manifest or {}).get("dataset") or {}
        return str(recorded["path"]) if recorded.get("path") else None

    def stage_at(self, folder: str) -> StageInfo | None:
        """The stage in ``folder`` (relative to the experiment, as ``stages`` records it)."""
        wanted = Path(self.path) / folder
        return next((s for s in self.stages if Path(s.path) == wanted), None)


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
    return stamp(root / SUMMARY_FILE, root / MANIFEST_FILE, stages, *folders)


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
    manifest = None
    if (root / MANIFEST_FILE).is_file():
        try:
            manifest = read_json(root / MANIFEST_FILE, MANIFEST_FILE)
        except BadArtifactError as exc:
            problems.append(exc.message)
        if manifest is not None and not isinstance(manifest, dict):
            problems.append(f"`{root / MANIFEST_FILE}` is not a JSON object; ignored")
            manifest = None
    experiment = Experiment(root.name, str(root), summary, tuple(stages), tuple(problems), manifest)
    unfinished = experiment.unfinished
    if unfinished:
        names = ", ".join(s.label for s in unfinished)
        experiment = Experiment(
            root.name,
            str(root),
            summary,
            tuple(stages),
            (*problems, f"unfinished stages (a `.work` folder, no meta.json): {names}"),
            manifest,
        )
    return experiment


def get_experiment(runs_dir: str, name: str) -> Experiment:
    """The experiment ``name`` under ``runs_dir`` (cached until a file changes)."""
    exp_dir = str(Path(runs_dir).expanduser() / name)
    return load_experiment(exp_dir, experiment_stamp(exp_dir))


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


@st.cache_data(show_spinner=False, max_entries=16)
def triples_frame(triples_dir: str, version: tuple[int, ...] = ()) -> pd.DataFrame:
    """The training triples of a stage as a DataFrame."""
    rows, _ = read_jsonl(Path(triples_dir) / "triples.jsonl", "triples.jsonl")
    columns = [
        "query_id", "query_text", "pos_doc_id", "neg_doc_id", "neg_source", "neg_rank",
        "teacher_pos_score", "teacher_neg_score",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


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


def training_folder(stage_dir: str | Path) -> Path:
    """Where a training stage keeps ``model/``, ``train_log.jsonl`` and ``eval_log.jsonl``: the
    stage folder itself (a "model" artifact), or ``trained/`` inside it (runs written before the
    stage contract)."""
    stage = Path(stage_dir)
    legacy = stage / "trained"
    return legacy if legacy.is_dir() and not (stage / "train_log.jsonl").is_file() else stage


@st.cache_data(show_spinner=False, max_entries=64)
def training_logs(
    stage_dir: str, version: tuple[int, ...] = ()
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``train_log.jsonl``, ``eval_log.jsonl`` and ``meta.json`` of a training stage."""
    trained = training_folder(stage_dir)
    if not (trained / "train_log.jsonl").is_file():
        raise MissingArtifactError(trained / "train_log.jsonl", "The training log")
    train_rows, _ = read_jsonl(trained / "train_log.jsonl", "train_log.jsonl")
    eval_path = trained / "eval_log.jsonl"
    eval_rows = read_jsonl(eval_path, "eval_log.jsonl")[0] if eval_path.is_file() else []
    meta_path = trained / META_FILE
    meta = read_json(meta_path, "meta.json") if meta_path.is_file() else {}
    train = pd.DataFrame(train_rows)
    evals = pd.DataFrame(eval_rows)
    for frame, cols in ((train, ["step", "loss", "lr", "grad_norm", "param_drift"]),
                        (evals, ["step", "nDCG@10", "probe_mean", "probe_std", "probe_pos_mean",
                                 "probe_neg_mean"])):  # fmt: skip
        for col in cols:
            if col not in frame.columns:
                frame[col] = pd.Series(dtype="float64")
    return train, evals, meta


# --------------------------------------------------------------------------- new records


@st.cache_data(show_spinner="Reading per-query values…", max_entries=16)
def per_query_table(path: str, version: tuple[int, ...] = ()) -> pd.DataFrame:
    """``per_query.tsv`` as the pipeline wrote it: block (``all`` / ``no-overlap``), row index,
    system, depth, query_id, measure, value: every evaluated row's per-query values."""
    if not Path(path).is_file():
        raise MissingArtifactError(path, PER_QUERY_FILE, NEWER_PIPELINE)
    try:
        frame = pd.read_csv(
            path,
            sep="\t",
            dtype={"block": str, "row": "int64", "system": str, "depth": str,
                   "query_id": str, "measure": str, "value": "float64"},
            keep_default_na=False,
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError) as exc:
        raise BadArtifactError(path, f"not a per-query table ({exc})") from None
    wanted = {"block", "row", "system", "depth", "query_id", "measure", "value"}
    if not wanted <= set(frame.columns):
        raise BadArtifactError(path, f"columns {sorted(wanted - set(frame.columns))} missing")
    return frame


@st.cache_data(show_spinner="Reading filter verdicts…", max_entries=16)
def verdict_rows(filter_dir: str, version: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """``verdicts.jsonl`` of a filter stage: every generated query with ``kept`` and each
    filter's verdict (filter, kept, reason, value), as the filter stage decided it."""
    rows, _ = read_jsonl(Path(filter_dir) / VERDICTS_FILE, VERDICTS_FILE)
    return rows


def artifact_data(folder: str | Path, kind: str) -> Path:
    """The data file of a stage folder: the one its ``meta.json`` names, or (an unfinished
    ``.work`` folder, an unreadable meta) the usual file of an artifact of type ``kind``."""
    try:
        artifact = read_artifact(Path(folder))
    except (InputFormatError, OSError):  # an unreadable meta.json: still worth showing
        artifact = None
    if artifact is not None and artifact.type == kind:
        return artifact.data
    return Path(folder) / ARTIFACT_TYPES[kind][1]


@st.cache_data(show_spinner=False, max_entries=16)
def query_rows(generate_dir: str, version: tuple[int, ...] = ()) -> tuple[list[dict], int]:
    """The queries (``queries.jsonl``) of a generate stage and the number of unreadable
    lines."""
    path = artifact_data(generate_dir, "queries")
    return read_jsonl(path, path.name)


@st.cache_data(show_spinner=False, max_entries=16)
def prompt_record(generate_dir: str, version: tuple[int, ...] = ()) -> dict[str, Any]:
    """``prompt.json`` of a generate stage: the exact template, placeholder, document word limit,
    chat flag, system message and few-shot examples."""
    path = Path(generate_dir) / PROMPT_FILE
    if not path.is_file():
        raise MissingArtifactError(path, PROMPT_FILE, NEWER_PIPELINE)
    record = read_json(path, PROMPT_FILE)
    if not isinstance(record, dict) or not isinstance(record.get("template"), str):
        raise BadArtifactError(path, "no `template` string")
    return record


def summary_markdown_text(experiment: Experiment) -> str:
    """``summary.md`` as the pipeline rendered it."""
    return read_text(Path(experiment.path) / SUMMARY_MD_FILE, SUMMARY_MD_FILE)


def read_text(path: Path, what: str) -> str:
    """A text file, or :class:`MissingArtifactError`."""
    if not Path(path).is_file():
        raise MissingArtifactError(path, what)
    return Path(path).read_text(encoding="utf-8")


@st.cache_data(show_spinner=False, max_entries=16)
def diagnosis_record(path: str, version: tuple[int, ...] = ()) -> Diagnosis:
    """``diagnosis.json`` as ``inpars diagnose`` (or the last stage of ``inpars run``) wrote it:
    per fine-tuned variant, the findings of every check. The dashboard never diagnoses."""
    if not Path(path).is_file():
        raise MissingArtifactError(
            path,
            DIAGNOSIS_FILE,
            f"Write it with `inpars diagnose {Path(path).parent}` (add `--variant NAME` for "
            "one variant); `inpars run` writes it at the end of an experiment.",
        )
    data = read_json(Path(path), DIAGNOSIS_FILE)
    try:
        return Diagnosis.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadArtifactError(
            path, f"not a diagnosis ({type(exc).__name__}: {exc}); rerun `inpars diagnose`"
        ) from None


def diagnosis_for(experiment: Experiment) -> Diagnosis:
    """The experiment's ``diagnosis.json`` (cached until the file changes)."""
    path = Path(experiment.path) / DIAGNOSIS_FILE
    return diagnosis_record(str(path), stamp(path))
