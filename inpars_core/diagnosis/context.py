"""What a check reads: one experiment folder (``experiment.json``, ``summary.json``,
``per_query.tsv``, the stage folders its rows name) seen from one fine-tuned variant.

Checks never guess from names: every number comes from an artifact the pipeline wrote. A check
that lacks its evidence raises :class:`MissingEvidenceError` with the reason; the engine turns it
into an ``n/a`` finding that says so.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from inpars_core.errors import InputFormatError
from inpars_core.experiments.schema import SYNTHETIC_TRAINING_STAGES, TRAINING_OPTIONS


class MissingEvidenceError(Exception):
    """A check cannot run on this experiment; the message is the reason shown as ``n/a``."""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file (InputFormatError naming the file when it is not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFormatError(
            path, f"not JSON ({exc})", fix="rerun the stage that wrote it"
        ) from None
    if not isinstance(data, dict):
        raise InputFormatError(path, "expected a JSON object", fix="rerun the stage that wrote it")
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; a torn last line (a killed writer) is skipped."""
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``config`` (section → key → value) with ``"section.key"`` overrides applied (a copy)."""
    merged = {section: dict(values) for section, values in config.items()}
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        merged.setdefault(section, {})[key] = value
    return merged


@dataclass
class VariantContext:
    """One experiment folder seen from variant ``variant``.

    ``probe``: checks may load the variant's models for small probe scorings (a few dozen
    pairs); with ``False`` they use the written artifacts only and say ``n/a`` where a probe was
    needed.
    """

    experiment_dir: Path
    variant: str
    probe: bool = True
    manifest: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, experiment_dir: Path, variant: str, *, probe: bool = True) -> VariantContext:
        """Read ``experiment.json`` and ``summary.json`` of ``experiment_dir``."""
        experiment_dir = Path(experiment_dir)
        return cls(
            experiment_dir,
            variant,
            probe,
            read_json(experiment_dir / "experiment.json"),
            read_json(experiment_dir / "summary.json"),
        )

    # ------------------------------------------------------------------ config
    @cached_property
    def config(self) -> dict[str, Any]:
        """The experiment config with this variant's overrides applied (section → key → value)."""
        config = {k: v for k, v in self.manifest.get("config", {}).items() if isinstance(v, dict)}
        config.pop("variants", None)
        config.pop("sweep", None)
        # sweep cells are expanded into [variants] before the manifest is written
        overrides = self.manifest.get("config", {}).get("variants", {}).get(self.variant, {})
        return apply_overrides(config, overrides)

    def setting(self, dotted: str, default: Any = None) -> Any:
        """One ``"section.key"`` value of :attr:`config`."""
        section, _, key = dotted.partition(".")
        return self.config.get(section, {}).get(key, default)

    # ------------------------------------------------------------------ rows
    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row of ``summary.json`` (all test queries block)."""
        return list(self.summary.get("rows", []))

    def row(self, system: str, depth: Any = None) -> dict[str, Any]:
        """The row named ``system`` (at ``depth`` when given)."""
        for row in self.rows:
            if row["system"] == system and (depth is None or row.get("depth") == depth):
                return row
        raise MissingEvidenceError(f"no row named {system!r} in summary.json")

    def tuned_rows(self) -> list[dict[str, Any]]:
        """This variant's pure cross-encoder rows trained on synthetic queries (one per depth
        and model: a fine-tuned base, or a label-free variant's backbone trained on its queries),
        shallowest first, in row order within a depth."""
        rows = [
            row
            for row in self.rows
            if row.get("variant") == self.variant
            and row.get("family", "cross-encoder") == "cross-encoder"
            and row.get("kind") == "synthetic"
            and not row.get("bm25_weight")
            and training_stage_name(row) is not None
        ]
        return sorted(rows, key=lambda row: depth_number(row.get("depth")))

    def training_stage(self, row: dict[str, Any]) -> str:
        """The name of the stage that trained ``row``'s model on synthetic queries
        (:data:`~inpars_core.experiments.schema.SYNTHETIC_TRAINING_STAGES`)."""
        name = training_stage_name(row)
        if name is None:
            raise MissingEvidenceError(f"{row['system']!r} was not trained on synthetic queries")
        return name

    def triples_stage(self, row: dict[str, Any]) -> str:
        """The name of the stage whose triples trained ``row``'s model (``consistency-triples``
        for a consistency-checked label-free model, else ``triples``)."""
        return TRIPLES_OF_TRAINING[self.training_stage(row)]

    def from_backbone(self, row: dict[str, Any]) -> bool:
        """Whether ``row``'s model was trained from the backbone (a label-free variant), not
        fine-tuned from a base reranker: its head is new by design and no row holds the model
        it started from."""
        return self.training_stage(row) != "finetune"

    def setting_key(self, row: dict[str, Any], dotted: str) -> str:
        """Where ``"finetune.KEY"`` is set for ``row``'s training: ``base_reranker.KEY`` for a
        label-free variant's training options (its model takes them from ``[base_reranker]``),
        else ``dotted`` itself."""
        section, _, key = dotted.partition(".")
        if section == "finetune" and key in TRAINING_OPTIONS and self.from_backbone(row):
            return f"base_reranker.{key}"
        return dotted

    def tuned_row(self) -> dict[str, Any]:
        """The shallowest fine-tuned row (MissingEvidenceError when the variant has none)."""
        rows = self.tuned_rows()
        if not rows:
            raise MissingEvidenceError(
                f"variant {self.variant!r} has no fine-tuned cross-encoder row"
            )
        return rows[0]

    def base_row(self, tuned: dict[str, Any]) -> dict[str, Any]:
        """The starting model's pure row reranking the same lists (same depth, queries and
        encoding) as ``tuned`` (MissingEvidenceError for a model trained from the backbone: the
        backbone is no reranker and has no row)."""
        if self.from_backbone(tuned):
            raise MissingEvidenceError(
                f"{tuned['system']!r} was trained from the backbone (no cross-encoder to start "
                "from): no row of its starting model"
            )
        for row in self.rows:
            if (
                row.get("baseline") is not None
                and row.get("family", "cross-encoder") == "cross-encoder"
                and row.get("kind") in ("supervised", "zero-shot")
                and not row.get("bm25_weight")
                and row.get("depth") == tuned.get("depth")
                and row.get("encoding", "pair") == tuned.get("encoding", "pair")
                and row.get("test_queries") == tuned.get("test_queries")
                and "rerank" in row.get("stages", {})
                and training_stage_name(row) is None
            ):
                return row
        raise MissingEvidenceError(
            f"no base cross-encoder row at depth {tuned.get('depth')} to compare "
            f"{tuned['system']!r} with"
        )

    def baseline_row(self, tuned: dict[str, Any]) -> dict[str, Any]:
        """The row ``tuned`` is compared with in the summary (``compared_with``)."""
        name = tuned.get("compared_with")
        if not name:
            raise MissingEvidenceError(f"{tuned['system']!r} is compared with no row")
        return self.row(name, tuned.get("depth"))

    # ------------------------------------------------------------------ stages
    def stage_dir(self, row: dict[str, Any], stage: str) -> Path:
        """The folder of stage ``stage`` in ``row``'s lineage (MissingEvidenceError when absent)."""
        relative = row.get("stages", {}).get(stage)
        if not relative:
            raise MissingEvidenceError(f"{row['system']!r} has no {stage} stage")
        path = self.experiment_dir / relative
        if not path.is_dir():
            raise MissingEvidenceError(f"stage folder {path} is gone (rerun the experiment)")
        return path

    def meta(self, row: dict[str, Any], stage: str) -> dict[str, Any]:
        """``meta.json`` of stage ``stage`` of ``row`` (MissingEvidenceError when the stage
        never finished: its folder has no meta.json)."""
        path = self.stage_dir(row, stage) / "meta.json"
        if not path.is_file():
            raise MissingEvidenceError(f"{path} is missing (the stage did not finish)")
        return read_json(path)

    def stage_jsonl(self, row: dict[str, Any], stage: str, name: str) -> list[dict[str, Any]]:
        """The records of ``name`` (e.g. ``eval_log.jsonl``) in a stage folder of ``row``."""
        path = self.stage_dir(row, stage) / name
        if not path.is_file():
            raise MissingEvidenceError(f"{path} is missing")
        return read_jsonl(path)

    # ------------------------------------------------------------------ per query
    @cached_property
    def _per_query(self) -> dict[tuple[int, str], dict[str, float]]:
        path = self.experiment_dir / "per_query.tsv"
        table: dict[tuple[int, str], dict[str, float]] = {}
        if not path.is_file():
            return table
        with path.open(encoding="utf-8", newline="") as handle:
            for record in csv.DictReader(handle, delimiter="\t"):
                if record.get("block") != "all":
                    continue
                key = (int(record["row"]), record["measure"])
                table.setdefault(key, {})[record["query_id"]] = float(record["value"])
        return table

    def per_query(self, row: dict[str, Any], measure: str = "nDCG@10") -> dict[str, float]:
        """``row``'s value of ``measure`` per test query (from ``per_query.tsv``)."""
        values = self._per_query.get((int(row["row"]), measure))
        if not values:
            raise MissingEvidenceError(f"per_query.tsv has no {measure} of {row['system']!r}")
        return values

    # ------------------------------------------------------------------ texts and labels
    def dataset(self) -> Any:
        """The experiment's dataset (queries, corpus, qrels): the folder the run used when it
        is still there, else the dataset's name (MissingEvidenceError when neither loads)."""
        from inpars_core.errors import InparsError
        from inpars_core.stages.common import load_dataset

        recorded = self.manifest.get("dataset", {})
        path = self.summary.get("dataset_path") or recorded.get("path")
        name = self.summary.get("dataset") or recorded.get("name")
        source = path if path and Path(path).expanduser().is_dir() else name
        if not source:
            raise MissingEvidenceError("the experiment names no dataset")
        try:
            return load_dataset(source)
        except InparsError as exc:
            raise MissingEvidenceError(f"dataset {source!r} could not be loaded ({exc})") from None

    def finetune_label(self, row: dict[str, Any]) -> str:
        """The label of ``row``'s training stage on the dashboard's Training and Encodings
        pages: the variants whose rows use that stage, in row order, joined by `` = `` (and the
        stage's name in parentheses for a label-free variant's model)."""
        name = training_stage_name(row)
        stage = row.get("stages", {}).get(name) if name else None
        names: list[str] = []
        for other in self.rows:
            if stage and other.get("stages", {}).get(name) == stage:
                for variant in [other.get("variant"), *(other.get("variants") or [])]:
                    if variant and str(variant) not in names:
                        names.append(str(variant))
        label = " = ".join(names) or self.variant
        return label if name in (None, "finetune") else f"{label} ({name})"


#: Training stage → the stage that mined its triples.
TRIPLES_OF_TRAINING = {
    "finetune": "triples",
    "consistency-train": "consistency-triples",
    "synthetic-base-train": "triples",
}


def training_stage_name(row: dict[str, Any]) -> str | None:
    """The first of :data:`~inpars_core.experiments.schema.SYNTHETIC_TRAINING_STAGES` in
    ``row``'s lineage (None: not trained on synthetic queries)."""
    stages = row.get("stages") or {}
    return next((name for name in SYNTHETIC_TRAINING_STAGES if name in stages), None)


def depth_number(depth: Any) -> float:
    """Sort key of a row depth (``"full"`` and None last)."""
    return float(depth) if isinstance(depth, int | float) else float("inf")


def iter_scores(path: Path) -> Iterator[tuple[str, str, float]]:
    """``(query_id, doc_id, score)`` of a TREC run file (a rerank stage's ``run.trec``)."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3:
                yield parts[0], parts[1], float(parts[2])
            elif len(parts) >= 6:
                yield parts[0], parts[2], float(parts[4])


def local_path(experiment_dir: Path, recorded: str | None) -> Path | None:
    """A path a stage recorded in its ``meta.json`` (relative to the runner's working
    directory, e.g. ``runs/EXP/stages/finetune/KEY/model``), found inside ``experiment_dir``
    (the experiment folder may have been moved or copied); an absolute path that exists is
    kept. None when it is in neither place (a hub id such as ``cross-encoder/...``, or
    ``minilm``, is no path)."""
    if not recorded:
        return None
    path = Path(recorded)
    parts = path.parts
    if "stages" in parts:
        start = len(parts) - 1 - parts[::-1].index("stages")
        candidate = Path(experiment_dir).joinpath(*parts[start:])
        if candidate.exists():
            return candidate
    if path.is_absolute() and path.exists():
        return path
    return None


def stage_label(experiment_dir: Path, stage_dir: Path) -> str:
    """``"<stage>/<key>"`` of a stage folder (what the Training page's ``runs`` parameter
    takes)."""
    return Path(stage_dir).relative_to(Path(experiment_dir) / "stages").as_posix()


def model_folder(experiment_dir: Path, recorded: str) -> Path | None:
    """The local folder of a model a stage recorded: a stage folder of this experiment, a path,
    the packaged ``minilm``, or a hub id's local cache; None when it is not on this machine."""
    from inpars_core.models import _local_snapshot, resolve_model_path

    folder = local_path(experiment_dir, recorded)
    if folder is not None or "stages" in Path(recorded).parts:
        return folder
    try:
        candidate = Path(resolve_model_path(recorded))
    except Exception:  # the packaged model's package missing: not on this machine
        candidate = None
    if candidate is not None and candidate.is_dir():
        return candidate
    return None if Path(recorded).is_absolute() else _local_snapshot(recorded)


def starting_model(context: VariantContext, tuned: dict[str, Any]) -> tuple[str, Path | None]:
    """The model the training of row ``tuned`` started from, as its training stage's meta.json
    records it (``base_model``), and its local folder (:func:`model_folder`; None when it is not
    on this machine)."""
    stage = context.training_stage(tuned)
    meta = context.meta(tuned, stage)
    recorded = meta.get("base_model") or meta.get("inputs", {}).get("base_model")
    if not recorded:
        raise MissingEvidenceError(f"the {stage} stage's meta.json records no base_model")
    return str(recorded), model_folder(context.experiment_dir, str(recorded))


def row_label(row: dict[str, Any]) -> str:
    """How the dashboard names a summary row (``system @depth``, ``full`` for a first-stage
    run): the value the Per-query page's ``a`` and ``b`` parameters take."""
    depth = row.get("depth")
    return f"{row.get('system')} @{'full' if depth is None else depth}"


def page_link(page: str, **params: Any) -> str:
    """A :attr:`Finding.page`: ``page?key=value&...``, e.g. ``page_link("per-query", a=...,
    b=..., query="12")``; values URL-quoted with ``/`` kept (stage labels such as
    ``finetune/KEY``), None left out, a list repeated as ``key=a&key=b``."""
    from urllib.parse import quote, urlencode

    given = {name: value for name, value in params.items() if value is not None}
    query = urlencode(given, doseq=True, quote_via=quote, safe="/")
    return f"{page}?{query}" if query else page
