"""Experiment configs (TOML), validated with errors that name the bad key and the fix.

Each section maps to a frozen dataclass; unknown keys and values of the wrong type are refused
with the dotted key path (``finetune.lr``). Variants are named sets of dotted overrides applied
on top of the base config (``[variants.balanced] "negatives.count" = 1``). A ``[sweep]`` table
expands a grid of values into more such variants (:mod:`inpars_core.experiments.sweep`), each
validated exactly like a hand-written one.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inpars_core.errors import ConfigError
from inpars_core.experiments.sweep import (
    Sweep,
    describe_overrides,
    expand,
    read_grid,
    sweep_keys,
    toml_value,
)
from inpars_core.options import (
    OFF_WORDS,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    PROBABILITY,
    hints,
    option,
    section,
    validate,
)
from inpars_core.stages import evaluate, index, rerank, retrieve, train, triples
from inpars_core.stages import filter as filter_stage
from inpars_core.stages import generate as generate_stage


@dataclass(frozen=True)
class ExperimentSection:
    """Name and where runs go."""

    name: str = "experiment"
    description: str = ""


@dataclass(frozen=True)
class DatasetSection:
    """Which dataset and splits; ``max_test_queries`` evaluates a deterministic subset.

    ``train_split`` names the qrels of the collection's own training queries (used only by a base
    trained here, ``[finetune] dev = "train"`` and ``mix_train_qrels``); it must differ from
    ``test_split``. A collection without it (TREC-COVID, most users' corpora) is fine: the
    pipeline is label-free there (synthetic dev set, a Hugging Face base).
    """

    name: str = option("scifact", "BEIR name (scifact, ...) or a folder in BEIR layout")
    test_split: str = option("test", "qrels split the table reports")
    train_split: str = option("train", "qrels split of the collection's own training queries")
    max_test_queries: int | None = option(
        None, "evaluate the first N judged test queries only", check=POSITIVE_INT
    )
    doc_count: int | None = option(
        None, "published corpus size, for dry-run estimates without the corpus", check=POSITIVE_INT
    )
    mean_doc_tokens: float | None = option(
        None, "published mean document tokens, for dry-run estimates", check=POSITIVE_FLOAT
    )

    def __post_init__(self) -> None:
        validate(self)


BM25Section = section(
    "BM25Section",
    "BM25 settings: the index's field layout and the retrieval parameters of every BM25 search.",
    (index.Config, ("fields",)),
    (retrieve.Config, ("k1", "b", "k")),
)


NegativesSection = section(
    "NegativesSection",
    """BM25 negatives for the synthetic queries (:mod:`inpars_core.stages.triples`).

    ``teacher`` and ``false_negative_margin`` (both, or neither) switch on the false-negative
    guard: a negative the teacher cross-encoder scores above the positive's score minus the
    margin is dropped, and the teacher's scores are stored in the triples.""",
    (
        triples.Config,
        (
            ("negatives", "count"),
            "window",
            ("random_negatives", "random"),
            "balanced",
            "seed",
            "teacher",
            "false_negative_margin",
        ),
    ),
)

#: The train stage's options a [base_reranker] or [finetune] section sets, same names.
_TRAINING = ("objective", "lr", "epochs", "max_steps", "batch_size", "max_length")

BaseRerankerSection = section(
    "BaseRerankerSection",
    """The reranker before fine-tuning: a Hugging Face model (``source = "hf"``, reported as
    zero-shot: it must not have been trained on this collection), or trained here from a backbone
    on the dataset's train qrels (``source = "train"``, reported as *supervised*: the offline
    stand-in for an MS MARCO reranker), on the first ``max_train_queries`` train queries with
    ``negatives`` BM25 negatives each from ``window``.

    ``source = "synthetic"``: no base at all; the backbone is trained with these training options
    on the synthetic triples alone (label-free: dev = the held-out synthetic slice of
    ``[finetune]``, whatever ``finetune.dev`` says; ``mix_train_qrels`` refused), and that model
    is the InPars model (no second fine-tuning). With ``[filters] consistency_k`` (and no
    ``consistency_model``) it is trained again on the queries whose source document it ranks in
    its top k (InPars-light's consistency checking): both models get rows.""",
    (train.Config, (*_TRAINING, "bf16", "seed")),
    (triples.Config, ("negatives", "window")),
    defaults={
        "objective": "lce",
        "lr": 1e-4,
        "batch_size": 16,
        "max_length": 128,
        "bf16": True,
        "negatives": 3,
    },
    extra=(
        (
            "source",
            Literal["hf", "train", "synthetic"],
            option(
                "train",
                "hf: a model trained elsewhere (zero-shot); train: trained here on train qrels; "
                "synthetic: trained here on the synthetic queries only (label-free)",
            ),
        ),
        ("model", str, option("minilm", "Hugging Face id or folder of the base (or backbone)")),
        (
            "max_train_queries",
            int | None,
            option(None, "train the base on the first N train queries", check=POSITIVE_INT),
        ),
    ),
)

FinetuneSection = section(
    "FinetuneSection",
    """Fine-tuning the base reranker on the (filtered) synthetic queries.

    ``dev`` picks what selects the kept step: "synthetic" (a held-out slice of ``dev_queries``
    kept synthetic queries, never trained on, each judged by its source document, reranked over
    its own BM25 list; label-free), "train" (the collection's train qrels), "none" (keep the
    final step), or "auto": "train" when the collection has train qrels, else "synthetic".
    ``teacher`` is the cross-encoder of ``objective = "margin-mse"`` (never the model being
    fine-tuned): its score margins are the targets.""",
    (
        train.Config,
        (*_TRAINING, "warmup_ratio", "eval_every", "keep", "teacher", "dev_depth", "bf16", "seed"),
    ),
    defaults={
        "objective": "bce",
        "lr": 7e-6,
        "batch_size": 16,
        "max_length": 128,
        "eval_every": 50,
        "dev_depth": 20,
        "bf16": True,
    },
    extra=(
        (
            "mix_train_qrels",
            bool,
            option(False, "add the train-qrels triples to the synthetic ones"),
        ),
        (
            "dev",
            Literal["auto", "synthetic", "train", "none"],
            option("auto", "what selects the kept step (see the section's doc)"),
        ),
        (
            "dev_queries",
            int,
            option(50, "dev queries (synthetic slice or train queries)", check=POSITIVE_INT),
        ),
    ),
)

RerankSection = section(
    "RerankSection",
    """Reranking BM25's top-k of the test queries at each of ``depths``. ``bm25_weight`` is the
    weight of the (min-max normalised) BM25 score in ``(1 - w) * model + w * BM25`` (the fuse
    stage's interpolation); 0 is the pure reranker. With w > 0 the summary shows both rows, and
    the dev criterion that picks the fine-tuned step interpolates the same way.
    ``depth_queries`` (one count per depth) reranks only the first N test queries at a depth
    (e.g. depth 1000 on 50 queries: 10x the pairs of depth 100); every row at that depth is
    evaluated on those queries.""",
    (rerank.Config, ("max_length", "batch_size", "precision", "exact_top", "pair_encoding")),
    defaults={"max_length": 128},
    extra=(
        (
            "depths",
            tuple[int, ...],
            option((100,), "rerank depths (one row each)", check=POSITIVE_INT),
        ),
        (
            "bm25_weight",
            float,
            option(0.0, "weight of BM25 in the interpolated rows (0: none)", check=PROBABILITY),
        ),
        (
            "depth_queries",
            tuple[int, ...],
            option(
                (),
                "rerank only the first N test queries at each depth (one N per depth; empty: all)",
                check=POSITIVE_INT,
            ),
        ),
    ),
)

DenseSection = section(
    "DenseSection",
    "Dense rows: a zero-shot bi-encoder, and one fine-tuned on the synthetic triples.",
    (train.Config, ("max_length", "lr", "epochs", "batch_size")),
    defaults={"batch_size": 16},
    extra=(
        ("enabled", bool, option(False, "add the dense rows")),
        ("model", str, option("minilm", "sentence-transformers id or folder")),
        (
            "finetune_objective",
            Literal["mnrl", "margin-mse", "none"] | None,
            option("mnrl", 'bi-encoder objective of the fine-tuned row ("none": no such row)'),
        ),
    ),
)

EvaluationSection = section(
    "EvaluationSection",
    """Measures of the summary table and how significance is corrected.

    ``holm_family``: "depth-measure" corrects across the systems compared at one depth on one
    measure; "table" across every comparison of the table (all depths and measures).
    ``exclude_overlap`` adds a block of rows evaluated only on the test queries that share no
    relevant document with any query the reranker was trained or selected on.""",
    (evaluate.Config, ("measures",)),
    defaults={"measures": ("nDCG@10", "RR@10", "R@100")},
    extra=(
        (
            "holm_family",
            Literal["depth-measure", "table"],
            option("depth-measure", "what one Holm-Bonferroni correction covers"),
        ),
        ("exclude_overlap", bool, option(False, "add the block without overlapping queries")),
    ),
)


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment.

    ``variants`` maps each variant's name to its dotted overrides: the hand-written
    ``[variants.NAME]`` tables first, then the cells of ``[sweep]`` in grid order; ``sweep``
    keeps the grid as written and the names of the variants it expanded to.
    """

    experiment: ExperimentSection = field(default_factory=ExperimentSection)
    dataset: DatasetSection = field(default_factory=DatasetSection)
    bm25: BM25Section = field(default_factory=BM25Section)
    generator: generate_stage.Config = field(default_factory=generate_stage.Config)
    filters: filter_stage.Config = field(default_factory=filter_stage.Config)
    negatives: NegativesSection = field(default_factory=NegativesSection)
    base_reranker: BaseRerankerSection = field(default_factory=BaseRerankerSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    rerank: RerankSection = field(default_factory=RerankSection)
    dense: DenseSection = field(default_factory=DenseSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    sweep: Sweep = field(default_factory=Sweep)

    def variant(self, name: str) -> ExperimentConfig:
        """This config with a variant's overrides applied (no variants or sweep inside)."""
        if name not in self.variants:
            raise ConfigError(f"unknown variant {name!r}; known: {', '.join(self.variants)}")
        raw = dataclasses.asdict(self)
        raw.pop("variants")
        raw.pop("sweep")
        for key in _FROM_BM25.values():  # set from [bm25] again below
            raw["filters"].pop(key)
        for dotted, value in self.variants[name].items():
            section, _, key = dotted.partition(".")
            raw[section][key] = value
        try:
            built = _build(raw, f"variants.{name}")
        except ConfigError as exc:
            raise ConfigError(f"variants.{name}: {exc}") from None
        shared = [
            dotted
            for dotted, value in self.variants[name].items()
            if dotted.startswith("base_reranker.")
            and value != getattr(self.base_reranker, dotted.partition(".")[2])
        ]
        top_level_label_free = self.base_reranker.source == "synthetic"  # refused elsewhere
        if shared and built.base_reranker.source != "synthetic" and not top_level_label_free:
            raise ConfigError(
                f"variants.{name}: {shared[0]}: the base reranker is trained once from the "
                "top-level [base_reranker] and shared by every variant, so a variant cannot "
                'change it (only a label-free variant, base_reranker.source = "synthetic", '
                "trains its own). Fix: set it in [base_reranker] (or a [profiles.NAME]), or "
                "run the variant from its own config"
            )
        return built


#: Tables of an experiment TOML that are not a section of settings.
_NOT_SECTIONS = ("variants", "sweep")
_SECTIONS = {
    name: annotation
    for name, annotation in hints(ExperimentConfig).items()
    if name not in _NOT_SECTIONS
}


def _resolve_type(annotation: Any) -> Any:
    return eval(annotation, globals()) if isinstance(annotation, str) else annotation


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a field annotation (TOML arrays become tuples)."""
    annotation = _resolve_type(annotation)
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        # TOML has no null: "none" (or "off") switches an optional setting off, as on the
        # command line; a setting whose own values include "none" keeps it (tried above)
        if type(None) in options and isinstance(value, str) and value.lower() in OFF_WORDS:
            return None
        raise ConfigError(errors[0])
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value in allowed:
            return value
        raise ConfigError(
            f"{where}: expected one of {', '.join(map(str, allowed))}, found {value!r}"
        )
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, found {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, found {len(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is typing.Any or (
        isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))
    ):
        return value
    name = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"{where}: expected {name}, found {value!r} ({type(value).__name__})")


#: [filters] settings an experiment takes from [bm25]: the round trip searches with its BM25.
_FROM_BM25 = {"k1": "bm25_k1", "b": "bm25_b"}

#: Keys that were renamed or are set elsewhere, with what to write instead.
RENAMED_KEYS = {
    "filters.bm25_k1": "the round trip searches with the experiment's BM25: set [bm25] k1",
    "filters.bm25_b": "the round trip searches with the experiment's BM25: set [bm25] b",
    "rerank.interpolate_bm25": (
        "renamed to rerank.bm25_weight, the weight of BM25 (0 = pure reranker): "
        "interpolate_bm25 = a is bm25_weight = 1 - a"
    ),
}


def _build_section(cls: Any, raw: dict[str, Any], where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table, found {raw!r}")
    known = hints(cls)
    for key in raw:
        if f"{where.split('.')[-1]}.{key}" in RENAMED_KEYS:
            raise ConfigError(f"{where}.{key}: {RENAMED_KEYS[where.split('.')[-1] + '.' + key]}")
        if key not in known:
            raise ConfigError(
                f"{where}.{key}: unknown key; known keys of [{where.split('.')[-1]}]: "
                f"{', '.join(known)}"
            )
    values = {key: _coerce(value, known[key], f"{where}.{key}") for key, value in raw.items()}
    try:
        return cls(**values)
    except ConfigError as exc:  # a stage Config's own check: name the section
        if getattr(exc, "key", None) in known or str(exc).split(":")[0] in known:
            raise ConfigError(f"{where}.{exc}") from None
        raise ConfigError(f"{where}: {exc}") from None


def _build(raw: dict[str, Any], where: str = "") -> ExperimentConfig:
    prefix = f"{where}: " if where else ""
    sections = {}
    for name, value in raw.items():
        if name in _NOT_SECTIONS:
            continue
        if name not in _SECTIONS:
            raise ConfigError(
                f"{prefix}[{name}]: unknown section; known: "
                f"{', '.join([*_SECTIONS, *_NOT_SECTIONS])}"
            )
        sections[name] = _build_section(_resolve_type(_SECTIONS[name]), value, name)
    variants = raw.get("variants", {})
    if not isinstance(variants, dict):
        raise ConfigError("[variants]: expected tables such as [variants.NAME]")
    bm25 = sections.get("bm25", BM25Section())
    sections["filters"] = dataclasses.replace(
        sections.get("filters", filter_stage.Config()),
        **{key: getattr(bm25, name) for name, key in _FROM_BM25.items()},
    )
    grid = read_grid(raw["sweep"], _SECTIONS) if "sweep" in raw else {}
    cells = expand(grid)
    for name, overrides in cells.items():
        if name in variants:
            raise ConfigError(
                f"{sweep_keys(overrides)}: the cell {describe_overrides(overrides)} is named "
                f"{name!r}, like the "
                f"hand-written [variants.{name}]. Fix: rename [variants.{name}] (names starting "
                "with 'sweep-' are the sweep's)"
            )
    config = ExperimentConfig(
        **sections,
        variants={**{k: dict(v) for k, v in variants.items()}, **cells},
        sweep=Sweep(grid, tuple(cells)),
    )
    _validate(config)
    for name, overrides in variants.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f'variants.{name}: expected a table of "section.key" = value')
        for dotted in overrides:
            section, _, key = dotted.partition(".")
            if section not in _SECTIONS or not key:
                raise ConfigError(
                    f'variants.{name}.{dotted}: expected "section.key" with a '
                    f"section among {', '.join(_SECTIONS)}"
                )
        _check_source(config, name, config.variant(name))  # validates the overrides
    for name, overrides in cells.items():
        _check_cell(config, name, overrides)
        _check_source(config, name, config.variant(name))
    return config


def _check_source(config: ExperimentConfig, name: str, variant: ExperimentConfig) -> None:
    """A label-free top level (``base_reranker.source = "synthetic"``) has no base reranker for
    a variant of another source to fine-tune."""
    if config.base_reranker.source == "synthetic" != variant.base_reranker.source:
        raise ConfigError(
            f'variants.{name}: base_reranker.source = "synthetic" at the top has no base '
            f"reranker for a variant to fine-tune, found source "
            f"{variant.base_reranker.source!r} in the variant. Fix: set the other source at "
            'the top and "base_reranker.source" = "synthetic" in the label-free variants'
        )


def _check_cell(config: ExperimentConfig, name: str, overrides: dict[str, Any]) -> None:
    """Validate one sweep cell exactly as a hand-written variant; the error names the sweep key
    it mentions (every key of the cell when it mentions none, e.g. a combination refused)."""
    try:
        config.variant(name)
    except ConfigError as exc:
        text = str(exc).removeprefix(f"variants.{name}: ")
        blamed = [key for key in overrides if key in text] or list(overrides)
        if "Fix:" not in text:
            values = " or ".join(f"{toml_value(overrides[k])} in sweep.{k}" for k in blamed)
            text += f". Fix: correct or remove {values}"
        raise ConfigError(
            f"{sweep_keys(blamed)}: variant {name!r} ({describe_overrides(overrides)}): {text}"
        ) from None


def _validate(config: ExperimentConfig) -> None:
    from inpars_core.evaluation import parse_measures

    checks = [
        (
            bool(config.rerank.depths),
            "rerank.depths: expected one or more depths, found none",
        ),
        (
            config.dataset.train_split != config.dataset.test_split,
            f"dataset.train_split: {config.dataset.train_split!r} is the evaluated split "
            "(dataset.test_split): training or dev queries would come from the test queries "
            "and pick the model on test labels. Fix: remove train_split (a collection without "
            'train qrels uses the label-free [finetune] dev = "synthetic") or name another split',
        ),
        (
            config.finetune.objective != "margin-mse" or config.finetune.teacher is not None,
            "finetune.teacher: objective 'margin-mse' distils a teacher's score margins and needs "
            "a teacher that is not the model being fine-tuned. Fix: finetune.teacher = "
            '"cross-encoder/ms-marco-MiniLM-L-12-v2" (or a stronger reranker folder)',
        ),
        (
            config.finetune.teacher is None
            or config.finetune.teacher != config.base_reranker.model
            or config.base_reranker.source != "hf",
            "finetune.teacher: the teacher is the base reranker being fine-tuned (the loss "
            "would be 0 at step 0 and the labels never used). Fix: name a stronger, different "
            "cross-encoder",
        ),
        (
            (config.negatives.teacher is None) == (config.negatives.false_negative_margin is None),
            "negatives.teacher: the false-negative guard needs both negatives.teacher and "
            f"negatives.false_negative_margin, found teacher {config.negatives.teacher!r} and "
            f"margin {config.negatives.false_negative_margin!r}. Fix: set both (e.g. teacher = "
            '"cross-encoder/ms-marco-MiniLM-L-6-v2", false_negative_margin = 0.1) or neither',
        ),
        (
            config.negatives.teacher is None
            or config.negatives.teacher != config.base_reranker.model
            or config.base_reranker.source != "hf",
            "negatives.teacher: the guard's teacher is the base reranker being fine-tuned (its "
            "scores would decide which negatives it learns from). Fix: name another "
            "cross-encoder",
        ),
        (
            config.base_reranker.source != "synthetic" or not config.finetune.mix_train_qrels,
            'finetune.mix_train_qrels: base_reranker.source = "synthetic" trains on the '
            "synthetic queries alone (label-free), found mix_train_qrels = true, which adds the "
            'train-qrels triples. Fix: mix_train_qrels = false, or base_reranker.source = "train"',
        ),
        (
            config.filters.consistency_k is None
            or config.filters.consistency_model is not None
            or config.base_reranker.source == "synthetic",
            f"filters.consistency_k: set ({config.filters.consistency_k}) without "
            'filters.consistency_model, which only base_reranker.source = "synthetic" '
            f"supplies (its model trained on the synthetic queries checks them), found source "
            f"{config.base_reranker.source!r}. Fix: set it in a variant with "
            '"base_reranker.source" = "synthetic", or name filters.consistency_model',
        ),
        (config.bm25.k >= max(config.rerank.depths), "bm25.k: must be >= the largest rerank depth"),
        (
            not config.rerank.depth_queries
            or len(config.rerank.depth_queries) == len(config.rerank.depths),
            f"rerank.depth_queries: expected one query count per depth {list(config.rerank.depths)}"
            f", found {list(config.rerank.depth_queries)}. Fix: e.g. depths = [100, 1000] with "
            "depth_queries = [100, 50], or remove depth_queries (every depth on every query)",
        ),
        (
            config.finetune.objective in ("hf-default", "bce", "ce2", "lce", "margin-mse"),
            "finetune.objective: expected hf-default, bce, ce2, lce or margin-mse",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    _check_names(config)
    parse_measures(config.evaluation.measures)


def _check_names(config: ExperimentConfig) -> None:
    """``experiment.name`` is one folder of the runs directory and ``dataset.name`` a dataset
    name or an existing folder: neither may lead out of its directory."""
    from inpars_core.artifacts import SAFE_NAME_TEXT, is_safe_name

    name = config.experiment.name
    if not is_safe_name(name):
        raise ConfigError(
            f"experiment.name: expected one folder name ({SAFE_NAME_TEXT}), found {name!r}, "
            'which would leave the runs directory. Fix: name = "my-experiment" (choose where '
            "runs go with --runs-dir)"
        )
    dataset = config.dataset.name
    if not is_safe_name(dataset) and not Path(dataset).expanduser().is_dir():
        raise ConfigError(
            f"dataset.name: expected a dataset name ({SAFE_NAME_TEXT}) or an existing BEIR "
            f'folder, found {dataset!r}. Fix: name = "scifact" or the path of a BEIR-layout '
            "folder"
        )


def apply_profile(raw: dict[str, Any], profile: str | None, where: str) -> dict[str, Any]:
    """``raw`` without its ``[profiles]`` table, with ``[profiles.<profile>]``'s dotted
    overrides (``"rerank.depths" = [100, 1000]``) applied when ``profile`` is given.

    A profile is a whole-experiment size or setting (e.g. ``cpu`` vs ``full``) kept in the same
    file; it usually renames the experiment so both profiles' runs live side by side."""
    raw = dict(raw)
    profiles = raw.pop("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigError(
            f'{where}: [profiles]: expected tables such as [profiles.NAME] of "section.key" = value'
        )
    if profile is None:
        return raw
    if profile not in profiles:
        known = ", ".join(profiles) or "none (the file has no [profiles.NAME] table)"
        raise ConfigError(
            f"{where}: unknown profile {profile!r}; known: {known}. Fix: --profile with one of "
            "those, or leave --profile out for the file's own settings"
        )
    for dotted, value in profiles[profile].items():
        section, _, key = dotted.partition(".")
        if section not in _SECTIONS or not key:
            raise ConfigError(
                f'{where}: profiles.{profile}.{dotted}: expected "section.key" with a section '
                f"among {', '.join(_SECTIONS)}"
            )
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{section}]: expected a table, found {table!r}")
        raw[section] = {**table, key: value}
    return raw


def load_config(path: Path, profile: str | None = None) -> ExperimentConfig:
    """Read and validate an experiment TOML file (with ``[profiles.<profile>]`` applied when
    ``profile`` is given); errors name the file and the key."""
    path = Path(path)
    fix = "give an experiment TOML file such as configs/scifact-smoke.toml"
    if path.is_dir():
        raise ConfigError(f"{path}: expected an experiment TOML file, found a folder. Fix: {fix}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found. Fix: {fix}") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: expected a TOML text file, found binary data. Fix: {fix}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    if not raw:
        raise ConfigError(
            f"{path}: expected an experiment config, found an empty file (a run would use "
            f"every default). Fix: {fix}, with at least [experiment] name"
        )
    raw = apply_profile(raw, profile, str(path))
    try:
        return _build(raw)
    except ConfigError as exc:
        where = f"{path} (profile {profile})" if profile else str(path)
        raise ConfigError(f"{where}: {exc}") from None
