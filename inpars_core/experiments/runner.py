"""Run an experiment: every stage of InPars into ``runs/<experiment>/``, then one summary table.

Stages (each cached by a hash of its settings and inputs, see :mod:`.stages`):
index -> bm25-test, bm25-train -> base-triples -> base-train (or a Hugging Face model)
generate -> filter -> synthetic-bm25 -> triples -> finetune (per variant)
rerank (per model and depth) ; dense-rerank (zero-shot and fine-tuned, when enabled)
Change one knob and only the stages downstream of it run again; interrupt and rerun to resume.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars_core.artifacts import atomic_text, write_json
from inpars_core.datasets.beir import Dataset
from inpars_core.experiments.config import ExperimentConfig
from inpars_core.experiments.stages import StageResult, StageStore
from inpars_core.records import Query, Run, ScoredDoc
from inpars_core.runs import read_trec_run, top_k, write_trec_run

logger = logging.getLogger(__name__)

Progress = Callable[[str, int], Callable[[int], None]]
RUN_FILE = "run.trec"
TRAINING_FIELDS = (
    "best_step",
    "kept_step",
    "final_step",
    "step0_dev_ndcg10",
    "best_dev_ndcg10",
    "best_at_step0",
)


def _no_progress(_: str, __: int) -> Callable[[int], None]:
    return lambda _n: None


def _fresh(path: Path) -> Path:
    """``path``, with whatever an interrupted attempt left there removed."""
    if path.exists():
        shutil.rmtree(path)
    return path


def _params(section: Any) -> dict[str, Any]:
    return dataclasses.asdict(section)


def interpolate(reranked: Run, first_stage: Run, alpha: float) -> Run:
    """alpha * min-max(reranker) + (1 - alpha) * min-max(first stage), per query."""

    def norm(values: dict[str, float]) -> dict[str, float]:
        low, high = min(values.values()), max(values.values())
        return {k: (v - low) / (high - low or 1.0) for k, v in values.items()}

    fused: Run = {}
    for query_id, docs in reranked.items():
        ce = norm({d.doc_id: d.score for d in docs})
        first = {d.doc_id: d.score for d in first_stage.get(query_id, []) if d.doc_id in ce}
        bm = norm(first) if first else {}
        fused[query_id] = sorted(
            (ScoredDoc(query_id, d, alpha * ce[d] + (1 - alpha) * bm.get(d, 0.0)) for d in ce),
            key=lambda s: (-s.score, s.doc_id),
        )
    return fused


@dataclass
class Row:
    """One line of the summary: a system at one depth."""

    name: str
    kind: str
    depth: int | None
    run_path: Path
    variant: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


class ExperimentRunner:
    """Executes an :class:`ExperimentConfig` (and its variants) with cached stages."""

    def __init__(
        self, config: ExperimentConfig, runs_dir: Path, progress: Progress = _no_progress
    ) -> None:
        self.config = config
        self.root = Path(runs_dir) / config.experiment.name
        self.store = StageStore(self.root)
        self.progress = progress
        self._dataset: Dataset | None = None

    # ------------------------------------------------------------------ shared inputs
    @property
    def dataset(self) -> Dataset:
        """The experiment's dataset, loaded once."""
        if self._dataset is None:
            from inpars_core.datasets import resolve_dataset

            self._dataset = resolve_dataset(self.config.dataset.name)
        return self._dataset

    def dataset_key(self) -> str:
        """Identity of the dataset for stage keys (name and corpus file size)."""
        corpus = self.dataset.path / "corpus.jsonl"
        return f"{self.dataset.name}:{corpus.stat().st_size}"

    def test_queries(self) -> dict[str, Query]:
        """Test queries (a deterministic first-N subset when max_test_queries is set)."""
        queries = self.dataset.split_queries(self.config.dataset.test_split)
        limit = self.config.dataset.max_test_queries
        return dict(list(queries.items())[:limit]) if limit else queries

    def split_train(self, dev_size: int) -> tuple[list[str], list[str]]:
        """Train-split query ids for training, and the last ``dev_size`` (sorted) kept as dev."""
        ids = sorted(
            q
            for q in self.dataset.qrels(self.config.dataset.train_split)
            if q in self.dataset.queries
        )
        return ids[: len(ids) - dev_size], ids[len(ids) - dev_size :]

    # ------------------------------------------------------------------ stages
    def index(self, config: ExperimentConfig) -> StageResult:
        """Lucene index of the corpus."""
        from inpars_core.retrieval.bm25 import IndexConfig, build_index

        def build(work: Path) -> dict:
            target = _fresh(work / "index")
            build_index(self.dataset, target, IndexConfig(config.bm25.fields))
            return {"documents": len(self.dataset.corpus)}

        return self.store.run(
            "index", {"fields": config.bm25.fields}, {"dataset": self.dataset_key()}, build
        )

    def bm25(
        self,
        config: ExperimentConfig,
        index: StageResult,
        name: str,
        queries: dict[str, Query],
        k: int,
    ) -> StageResult:
        """BM25 run of ``queries``."""
        from inpars_core.retrieval.bm25 import BM25Config, BM25Retriever

        def build(work: Path) -> dict:
            retriever = BM25Retriever(
                index.path / "index", BM25Config(k1=config.bm25.k1, b=config.bm25.b)
            )
            run = retriever.retrieve(queries, k)
            write_trec_run(run, work / RUN_FILE, tag="bm25")
            return {"queries": len(run)}

        params = {"k1": config.bm25.k1, "b": config.bm25.b, "k": k, "queries": sorted(queries)}
        return self.store.run(name, params, {"index": index}, build)

    def base_model(
        self, config: ExperimentConfig, bm25_train: StageResult, train_ids: list[str]
    ) -> tuple[str, StageResult | str, StageResult]:
        """The reranker before fine-tuning (a HF model name, or one trained here), its key, and
        the train-qrels triples (used to train it, and to mix into fine-tuning)."""
        section = config.base_reranker
        from inpars_core.negatives import NegativesConfig, mine_triples, write_triples
        from inpars_core.training.trainer import TrainingConfig, train_reranker

        ids = train_ids[: section.max_train_queries] if section.max_train_queries else train_ids
        qrels = self.dataset.qrels(config.dataset.train_split)

        def build_triples(work: Path) -> dict:
            positives = {q: {d for d, r in qrels[q].items() if r > 0} for q in ids}
            texts = {q: self.dataset.queries[q].text for q in ids}
            triples, report = mine_triples(
                texts,
                positives,
                read_trec_run(bm25_train.path / RUN_FILE),
                sorted(self.dataset.corpus),
                NegativesConfig(
                    negatives=section.negatives, window=section.window, seed=section.seed
                ),
            )
            write_triples(triples, work / "triples.jsonl", report=report)
            return {"triples": len(triples)}

        base_triples = self.store.run(
            "base-triples",
            {
                "negatives": section.negatives,
                "window": section.window,
                "seed": section.seed,
                "queries": ids,
            },
            {"bm25-train": bm25_train},
            build_triples,
        )
        if section.source == "hf":
            return section.model, f"hf:{section.model}", base_triples

        def build_model(work: Path) -> dict:
            from inpars_core.negatives import read_triples

            target = _fresh(work / "trained")
            result = train_reranker(
                read_triples(base_triples.path / "triples.jsonl"),
                self.documents(),
                TrainingConfig(
                    objective=section.objective,
                    lr=section.lr,
                    epochs=section.epochs,
                    max_steps=section.max_steps,
                    batch_size=section.batch_size,
                    max_length=section.max_length,
                    bf16=section.bf16,
                    seed=section.seed,
                    eval_every=10**9,
                ),
                target,
                dev=None,
                base_model=section.model,
            )
            return {
                "final_step": result.final_step,
                "first_loss": result.first_loss,
                "last_loss": result.last_loss,
            }

        trained = self.store.run(
            "base-train", _params(section), {"triples": base_triples}, build_model
        )
        return str(trained.path / "trained" / "model"), trained, base_triples

    def documents(self) -> dict[str, str]:
        """doc_id -> title + text."""
        return {d: doc.contents for d, doc in self.dataset.corpus.items()}

    def generate(self, config: ExperimentConfig) -> StageResult:
        """Synthetic queries (resumable: the query file lives in the work folder)."""
        from inpars_core.generation.base import get_backend
        from inpars_core.generation.pricing import load_price_table, price_for
        from inpars_core.generation.prompts import resolve_prompt
        from inpars_core.generation.stage import (
            GenerationConfig,
            generate_queries,
            sample_documents,
        )

        section = config.generator

        def build(work: Path) -> dict:
            prompt = resolve_prompt(section.prompt, self.dataset, seed=section.seed)
            chat = section.backend == "openai" and section.api == "chat"
            gen = GenerationConfig(
                backend=section.backend,
                model=section.model,
                prompt_id=prompt.prompt_id,
                num_docs=section.num_docs,
                seed=section.seed,
                max_tokens=section.max_tokens,
                max_cost_usd=section.max_cost_usd,
                chat=chat,
            )
            documents = sample_documents(self.dataset, gen, exclude=prompt.example_doc_ids)
            kwargs: dict[str, Any] = {"model": section.model}
            if section.backend == "openai":
                kwargs.update(
                    base_url=section.base_url, api=section.api, concurrency=section.concurrency
                )
            backend = get_backend(section.backend, **kwargs)
            tick = self.progress("generate", len(documents))
            report = generate_queries(
                backend,
                documents,
                prompt,
                gen,
                work / "queries.jsonl",
                price_for(section.model, section.backend, load_price_table(None)),
                on_record=lambda _r: tick(1),
            )
            return {
                "queries": report.generated + report.skipped_done,
                "resumed_done": report.skipped_done,
                "cost_usd": round(report.total_usd, 6),
                "example_queries": list(prompt.example_queries),
                "example_query_ids": list(prompt.example_query_ids),
            }

        return self.store.run("generate", _params(section), {"dataset": self.dataset_key()}, build)

    def filter(
        self, config: ExperimentConfig, generated: StageResult, index: StageResult
    ) -> StageResult:
        """Filtered synthetic queries."""
        from inpars_core.filter_stage import run_filters, source_ranks
        from inpars_core.generation.stage import read_queries, write_queries
        from inpars_core.retrieval.bm25 import BM25Retriever

        section = config.filters

        def build(work: Path) -> dict:
            queries = read_queries(generated.path / "queries.jsonl")
            ranks = None
            if section.round_trip_k is not None:
                ranks = source_ranks(
                    queries, BM25Retriever(index.path / "index"), section.round_trip_k
                )
            kept, dropped, per_filter = run_filters(
                queries,
                section,
                documents=self.dataset.corpus,
                example_queries=generated.meta["counts"].get("example_queries", []),
                ranks=ranks,
            )
            write_queries(kept, work / "kept.jsonl")
            with atomic_text(work / "dropped.jsonl") as handle:
                for query_id, verdicts in dropped.items():
                    handle.write(
                        json.dumps(
                            {
                                "query_id": query_id,
                                "verdicts": [dataclasses.asdict(v) for v in verdicts],
                            }
                        )
                        + "\n"
                    )
            return {"queries": len(queries), "kept": len(kept), "dropped_by": per_filter}

        return self.store.run(
            "filter", _params(section), {"generate": generated, "index": index}, build
        )

    def synthetic_triples(
        self,
        config: ExperimentConfig,
        kept: StageResult,
        index: StageResult,
        base_triples: StageResult | None,
    ) -> StageResult:
        """BM25 negatives for the kept synthetic queries (optionally mixed with train qrels)."""
        from inpars_core.generation.stage import read_queries
        from inpars_core.negatives import (
            NegativesConfig,
            mine_triples,
            positives_from_synthetic,
            read_triples,
            write_triples,
        )

        section = config.negatives
        queries = read_queries(kept.path / "kept.jsonl")
        texts, positives = positives_from_synthetic(queries)
        synthetic_bm25 = self.bm25(
            config,
            index,
            "synthetic-bm25",
            {q: Query(q, t) for q, t in texts.items()},
            max(section.window[1], 1),
        )
        mix = config.finetune.mix_train_qrels and base_triples is not None

        def build(work: Path) -> dict:
            triples, report = mine_triples(
                texts,
                positives,
                read_trec_run(synthetic_bm25.path / RUN_FILE),
                sorted(self.dataset.corpus),
                NegativesConfig(
                    negatives=section.count,
                    window=section.window,
                    random_negatives=section.random,
                    balanced=section.balanced,
                    seed=section.seed,
                ),
            )
            if mix:
                triples = triples + read_triples(base_triples.path / "triples.jsonl")
            write_triples(triples, work / "triples.jsonl", report=report)
            return {"triples": len(triples), "queries": len(texts), "mixed": mix}

        inputs: dict[str, StageResult | str] = {"kept": kept, "bm25": synthetic_bm25}
        if mix:
            inputs["train-triples"] = base_triples  # type: ignore[assignment]
        return self.store.run(
            "triples", {**_params(section), "mix_train_qrels": mix}, inputs, build
        )

    def finetune(
        self,
        config: ExperimentConfig,
        triples: StageResult,
        base_model: str,
        base_key: StageResult | str,
        bm25_train: StageResult,
        dev_ids: list[str],
    ) -> StageResult:
        """The base reranker fine-tuned on synthetic triples, dev-evaluated from step 0."""
        from inpars_core.negatives import read_triples
        from inpars_core.training.trainer import DevSet, TrainingConfig, train_reranker

        section = config.finetune
        qrels = self.dataset.qrels(config.dataset.train_split)
        train_run = read_trec_run(bm25_train.path / RUN_FILE)
        dev_ids = dev_ids[: section.dev_queries]

        def build(work: Path) -> dict:
            target = _fresh(work / "trained")
            dev = DevSet(
                queries={q: self.dataset.queries[q].text for q in dev_ids},
                run={q: train_run[q] for q in dev_ids if q in train_run},
                qrels={q: qrels[q] for q in dev_ids},
                documents=self.documents(),
                depth=section.dev_depth,
            )
            result = train_reranker(
                read_triples(triples.path / "triples.jsonl"),
                self.documents(),
                TrainingConfig(
                    objective=section.objective,
                    lr=section.lr,
                    epochs=section.epochs,
                    max_steps=section.max_steps,
                    batch_size=section.batch_size,
                    max_length=section.max_length,
                    warmup_ratio=section.warmup_ratio,
                    eval_every=section.eval_every,
                    bf16=section.bf16,
                    seed=section.seed,
                    keep=section.keep,
                ),
                target,
                dev=dev,
                base_model=base_model,
            )
            return {
                "best_step": result.best_step,
                "best_dev_ndcg10": result.best_dev_ndcg10,
                "step0_dev_ndcg10": result.step0_dev_ndcg10,
                "final_step": result.final_step,
                "kept_step": result.kept_step,
                "best_at_step0": result.best_at_step0,
                "notes": list(result.notes),
            }

        return self.store.run(
            "finetune",
            _params(section),
            {"triples": triples, "base": base_key, "dev": bm25_train},
            build,
        )

    def rerank(
        self,
        config: ExperimentConfig,
        model: str,
        model_key: StageResult | str,
        bm25_test: StageResult,
        depth: int,
    ) -> StageResult:
        """Cross-encoder rerank of BM25's top ``depth`` (optionally interpolated with BM25)."""
        from inpars_core.reranking.encoding import EncodingConfig
        from inpars_core.reranking.scoring import ScoringConfig, load_reranker
        from inpars_core.reranking.stage import RerankConfig, ScoreCache, rerank

        section = config.rerank

        def build(work: Path) -> dict:
            scoring = ScoringConfig(batch_size=section.batch_size, precision=section.precision)
            rerank_config = RerankConfig(
                depth=depth,
                encoding=EncodingConfig(section.pair_encoding, section.max_length),
                scoring=scoring,
            )
            reranker = load_reranker(model, scoring)
            first = read_trec_run(bm25_test.path / RUN_FILE)
            cache = ScoreCache(work / "scores.tsv")  # item-level cache: a rerun resumes here
            queries = self.test_queries()
            tick = self.progress(f"rerank@{depth}", len(queries) * depth)
            run, report = rerank(
                reranker, queries, first, self.dataset.corpus, rerank_config, cache, progress=tick
            )
            if section.interpolate_bm25 is not None:
                run = interpolate(run, top_k(first, depth), section.interpolate_bm25)
            write_trec_run(run, work / RUN_FILE, tag="rerank")
            return {"pairs": report.pairs, "scored": report.scored, "cached": report.cached}

        params = {**_params(section), "depth": depth, "queries": sorted(self.test_queries())}
        params.pop("depths")
        return self.store.run("rerank", params, {"model": model_key, "bm25": bm25_test}, build)

    def dense_rerank(
        self,
        config: ExperimentConfig,
        model: str,
        model_key: StageResult | str,
        bm25_test: StageResult,
        depth: int,
    ) -> StageResult:
        """Bi-encoder rerank of BM25's top ``depth`` (documents encoded on the fly)."""
        from inpars_core.dense.encoder import load_encoder
        from inpars_core.dense.search import rerank_with_encoder

        section = config.dense

        def build(work: Path) -> dict:
            encoder = load_encoder(model, max_length=section.max_length)
            run = rerank_with_encoder(
                encoder,
                self.test_queries(),
                read_trec_run(bm25_test.path / RUN_FILE),
                self.dataset.corpus,
                depth=depth,
            )
            write_trec_run(run, work / RUN_FILE, tag="dense")
            return {"queries": len(run)}

        return self.store.run(
            "dense-rerank",
            {
                "max_length": section.max_length,
                "depth": depth,
                "queries": sorted(self.test_queries()),
            },
            {"model": model_key, "bm25": bm25_test},
            build,
        )

    def dense_finetune(self, config: ExperimentConfig, triples: StageResult) -> StageResult:
        """The bi-encoder fine-tuned on the synthetic triples."""
        from inpars_core.dense.training import TrainDenseConfig, train_dense
        from inpars_core.negatives import read_triples

        section = config.dense

        def build(work: Path) -> dict:
            target = _fresh(work / "trained")
            result = train_dense(
                section.model,
                read_triples(triples.path / "triples.jsonl"),
                self.dataset.corpus,
                target,
                TrainDenseConfig(
                    objective=section.finetune_objective or "mnrl",
                    lr=section.lr,
                    epochs=section.epochs,
                    batch_size=section.batch_size,
                    max_length=section.max_length,
                ),
            )
            return {"final_step": result.final_step, "last_loss": result.last_loss}

        return self.store.run("dense-finetune", _params(section), {"triples": triples}, build)

    # ------------------------------------------------------------------ the whole experiment
    def run(self, variants: Sequence[str] | None = None) -> dict[str, Any]:
        """Run the baselines and every requested variant; write and return the summary."""
        from inpars_core.experiments.summary import write_summary

        started = time.perf_counter()
        config = self.config
        names = list(variants) if variants else (list(config.variants) or ["default"])
        rows: list[Row] = []
        index = self.index(config)
        test_queries = self.test_queries()
        bm25_test = self.bm25(config, index, "bm25-test", test_queries, config.bm25.k)
        rows.append(
            Row(
                "bm25",
                "baseline",
                None,
                bm25_test.path / RUN_FILE,
                stage_seconds={"index": index.seconds, "bm25-test": bm25_test.seconds},
            )
        )
        dev_size = config.finetune.dev_queries
        train_ids, dev_ids = self.split_train(dev_size)
        train_queries = {q: self.dataset.queries[q] for q in train_ids + dev_ids}
        bm25_train = self.bm25(config, index, "bm25-train", train_queries, 100)
        base_model, base_key, train_triples = self.base_model(config, bm25_train, train_ids)
        base_seconds = base_key.seconds if isinstance(base_key, StageResult) else 0.0
        for depth in config.rerank.depths:
            stage = self.rerank(config, base_model, base_key, bm25_test, depth)
            rows.append(
                Row(
                    "base (zero-shot)",
                    "zero-shot",
                    depth,
                    stage.path / RUN_FILE,
                    stage_seconds={"base-train": base_seconds, "rerank": stage.seconds},
                )
            )
        if config.dense.enabled:
            for depth in config.rerank.depths:
                stage = self.dense_rerank(
                    config, config.dense.model, f"st:{config.dense.model}", bm25_test, depth
                )
                rows.append(
                    Row(
                        "dense (zero-shot)",
                        "dense",
                        depth,
                        stage.path / RUN_FILE,
                        stage_seconds={"dense-rerank": stage.seconds},
                    )
                )
        costs: dict[str, float] = {}
        for name in names:
            variant = config if name == "default" else config.variant(name)
            generated = self.generate(variant)
            kept = self.filter(variant, generated, index)
            triples = self.synthetic_triples(variant, kept, index, train_triples)
            tuned = self.finetune(variant, triples, base_model, base_key, bm25_train, dev_ids)
            model_dir = str(tuned.path / "trained" / "model")
            costs[name] = float(generated.meta["counts"].get("cost_usd", 0.0))
            shared = {
                "generate": generated.seconds,
                "filter": kept.seconds,
                "triples": triples.seconds,
                "finetune": tuned.seconds,
            }
            for depth in variant.rerank.depths:
                stage = self.rerank(variant, model_dir, tuned, bm25_test, depth)
                rows.append(
                    Row(
                        name,
                        "fine-tuned",
                        depth,
                        stage.path / RUN_FILE,
                        variant=name,
                        stage_seconds={**shared, "rerank": stage.seconds},
                        training={
                            **{k: tuned.meta["counts"].get(k) for k in TRAINING_FIELDS},
                            "model": model_dir,
                            "kept_queries": kept.meta["counts"].get("kept"),
                            "triples": triples.meta["counts"].get("triples"),
                        },
                    )
                )
            if variant.dense.enabled and variant.dense.finetune_objective:
                dense_tuned = self.dense_finetune(variant, triples)
                for depth in variant.rerank.depths:
                    stage = self.dense_rerank(
                        variant,
                        str(dense_tuned.path / "trained" / "model"),
                        dense_tuned,
                        bm25_test,
                        depth,
                    )
                    rows.append(
                        Row(
                            f"{name} (dense)",
                            "dense-fine-tuned",
                            depth,
                            stage.path / RUN_FILE,
                            variant=name,
                            stage_seconds={
                                "dense-finetune": dense_tuned.seconds,
                                "dense-rerank": stage.seconds,
                            },
                        )
                    )
        summary = write_summary(self, rows, costs, time.perf_counter() - started)
        write_json(
            self.root / "stages_ran.json",
            {"ran": self.store.ran, "cached": self.store.cached, "events": self.store.events},
        )
        return summary
