"""What an experiment would do and cost, before anything runs or is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inpars_core.experiments.config import ExperimentConfig
from inpars_core.experiments.sweep import describe_overrides, toml_value


def estimate_generation(config: ExperimentConfig) -> dict[str, Any]:
    """Token and cost estimate of the generation stage.

    When the corpus is on disk, every prompt is rendered and counted (tiktoken). Otherwise the
    estimate comes from the dataset's published statistics (``dataset.doc_count`` and
    ``dataset.mean_doc_tokens`` in the config), and says so.
    """
    from inpars_core.datasets import resolve_dataset
    from inpars_core.errors import InparsError
    from inpars_core.generation.pricing import count_tokens, load_price_table, price_for
    from inpars_core.generation.prompts import DOCUMENT_PLACEHOLDER, resolve_prompt
    from inpars_core.generation.stage import (
        EXPECTED_COMPLETION_TOKENS,
        estimate_cost,
        sample_documents,
    )

    section = config.generator
    table = load_price_table(Path(section.price_table) if section.price_table else None)
    price = price_for(section.model, section.backend, table)
    chat = section.chat
    try:
        dataset = resolve_dataset(config.dataset.name, download=False)
    except InparsError:
        dataset = None
    if dataset is not None:
        prompt = resolve_prompt(
            section.prompt,
            dataset,
            seed=section.seed,
            max_document_words=section.max_document_words,
        )
        documents = sample_documents(dataset, section, exclude=prompt.example_doc_ids)
        estimate = estimate_cost(documents, prompt, section, price)
        return {
            "basis": f"real token counts of {len(documents)} sampled documents ({estimate.method})",
            "documents": len(documents),
            "prompt_tokens": estimate.prompt_tokens,
            "expected_cost_usd": estimate.expected_cost_usd,
            "max_cost_usd": estimate.max_cost_usd,
        }
    if config.dataset.mean_doc_tokens is None:
        return {
            "basis": "unavailable: the corpus is not on disk and the config gives no "
            "dataset.mean_doc_tokens",
            "documents": section.num_docs,
        }
    prompt = resolve_prompt(
        section.prompt, None, seed=section.seed, max_document_words=section.max_document_words
    )
    template_tokens, method = count_tokens(
        prompt.text.replace(DOCUMENT_PLACEHOLDER, ""), section.model
    )
    per_doc = min(config.dataset.mean_doc_tokens, prompt.max_document_words * 1.3)
    sizes = [n for n in (section.num_docs, config.dataset.doc_count) if n is not None]
    if not sizes:
        return {
            "basis": "unavailable: generator.num_docs is none (every document) and the config "
            "gives no dataset.doc_count",
            "documents": None,
        }
    documents = min(sizes)
    prompt_tokens = round(documents * (template_tokens + per_doc + (14 if chat else 0)))
    expected = price.cost(prompt_tokens, EXPECTED_COMPLETION_TOKENS * documents)
    worst = price.cost(prompt_tokens, section.max_tokens * documents)
    return {
        "basis": "ESTIMATE from published statistics, corpus not on disk: "
        f"{config.dataset.doc_count:,} documents, ~{config.dataset.mean_doc_tokens:.0f} "
        f"tokens per document (truncated at {prompt.max_document_words} words); template "
        f"{template_tokens} tokens ({method})",
        "documents": documents,
        "prompt_tokens": prompt_tokens,
        "expected_cost_usd": expected,
        "max_cost_usd": worst,
    }


def describe_model_selection(config: ExperimentConfig) -> str:
    """How the fine-tuned step will be picked (never on test labels), checked against the
    dataset when it is on disk; refuses what would need train qrels the collection lacks."""
    from inpars_core.datasets import resolve_dataset
    from inpars_core.errors import InparsError

    section = config.finetune
    try:
        dataset = resolve_dataset(config.dataset.name, download=False)
    except InparsError:
        dataset = None
    mode = "synthetic" if config.base_reranker.source == "synthetic" else section.dev
    if dataset is not None:
        from inpars_core.experiments.runner import ExperimentRunner

        runner = ExperimentRunner(config, Path("."))
        runner._dataset = dataset
        runner.check_label_sources(config)
        for name in config.variants:
            runner.check_label_sources(config.variant(name))
        mode = runner.dev_mode(config)
    weight = config.rerank.bm25_weight
    system = f"the reranker ⊕ {weight:g}·BM25" if weight > 0 else "the pure reranker"
    if mode == "synthetic":
        what = (
            f"{section.dev_queries} held-out synthetic queries (label-free: never trained on, "
            "each judged by its source document, reranked over its own BM25 top "
            f"{section.dev_depth})"
        )
    elif mode == "train":
        what = f"{section.dev_queries} queries of qrels/{config.dataset.train_split}.tsv"
    elif mode == "none":
        what = "no dev set: the final step is kept"
    else:
        what = (
            "'auto': the collection's train qrels if it has them, else held-out synthetic "
            "queries (decided when the dataset is on disk)"
        )
    return f"model selection: dev = {mode}: {what}; scored as {system}; keep = {section.keep}"


def variant_lines(config: ExperimentConfig, variants: list[str] | None) -> list[str]:
    """One line per variant that would run (``variants``, else all of them), with its overrides;
    a sweep's cells are marked, after a line giving the grid."""
    lines = []
    if config.sweep.grid:
        grid = " × ".join(f"{key} {toml_value(list(v))}" for key, v in config.sweep.grid.items())
        lines.append(f"sweep: {grid} = {len(config.sweep.variants)} variants")
    for name in variants or config.variants:
        mark = " (sweep)" if name in config.sweep.variants else ""
        lines.append(f"  variant {name}{mark}: {describe_overrides(config.variants[name])}")
    return lines


def _variant_count(config: ExperimentConfig, variants: list[str] | None) -> str:
    count = len(variants or config.variants)
    return f"{count} variant{'s' if count > 1 else ''}" if count else "variant default"


def plan_text(config: ExperimentConfig, variants: list[str] | None, root: object) -> str:
    """What ``inpars run --dry-run`` prints: the plan, each variant with its overrides (a
    sweep's cells too), the generation estimate and how the fine-tuned step is selected
    (refusing label sources the data lacks)."""
    estimate = estimate_generation(config)
    selection = describe_model_selection(config)
    lines = [
        f"experiment {config.experiment.name}: dataset {config.dataset.name}, "
        f"{_variant_count(config, variants)}, depths {list(config.rerank.depths)}, "
        f"runs in {root}",
        *variant_lines(config, variants),
        f"generation: {config.generator.backend}/{config.generator.model}, "
        f"{estimate['documents']} documents; {estimate['basis']}",
    ]
    if "prompt_tokens" in estimate:
        lines.append(
            f"  {estimate['prompt_tokens']:,} prompt tokens; expected cost "
            f"US${estimate['expected_cost_usd']:.4f} (at most "
            f"US${estimate['max_cost_usd']:.4f}) per variant with its own queries"
        )
    lines.append(selection)
    return "\n".join(lines)
