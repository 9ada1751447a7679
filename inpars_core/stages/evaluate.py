"""evaluate: a run on a split's qrels with ir-measures: ``aggregate.json`` and ``per_query.tsv``.

Like ``trec_eval -c``: a judged query the run does not answer counts as 0 (see
:func:`inpars_core.evaluation.evaluate`). ``--max-queries N`` evaluates on the first N judged
queries of the split only, as ``inpars retrieve --max-queries N`` retrieves them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inpars_core.artifacts import atomic_text, write_json
from inpars_core.errors import InputFormatError
from inpars_core.options import POSITIVE_INT, option, validate
from inpars_core.stages.common import Progress, dataset_record, first_queries, load_dataset
from inpars_core.stages.contract import (
    Artifact,
    check_same_corpus,
    input_artifact,
    open_input,
    write_stage_meta,
)

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from inpars_core.datasets.beir import Dataset
    from inpars_core.evaluation import Evaluation

NAME = "evaluate"
HELP = "evaluate a run with ir-measures"
OUTPUT = "evaluation"
#: Without --out the evaluation is printed only (written to a temporary folder).
OUT_REQUIRED = False
AGGREGATE_FILE = "aggregate.json"
PER_QUERY_FILE = "per_query.tsv"


@dataclass(frozen=True)
class Config:
    """The measures computed."""

    measures: tuple[str, ...] = option(
        ("nDCG@10", "RR@10", "R@100", "R@1000"), "ir-measures names (nDCG@10, RR@10, R@100, AP)"
    )

    def __post_init__(self) -> None:
        from inpars_core.evaluation import parse_measures

        validate(self)
        parse_measures(self.measures)  # an unknown measure stops here, naming itself


@dataclass(frozen=True)
class Inputs:
    """The run and the qrels it is evaluated on."""

    dataset: str = option(help="BEIR name (scifact, ...) or a BEIR-layout folder")
    run: str = option(help="the --out of 'inpars retrieve', 'rerank' or 'fuse' (or a TREC file)")
    split: str = option("test", "qrels split the run is evaluated on")
    max_queries: int | None = option(
        None,
        "only the first N judged queries of --split (as 'inpars retrieve --max-queries')",
        check=POSITIVE_INT,
    )

    def __post_init__(self) -> None:
        validate(self)


def evaluate_run(
    dataset: Dataset,
    split: str,
    run_path: str | Path,
    measures: Sequence[str],
    max_queries: int | None = None,
    *,
    flag: str = "--run",
) -> Evaluation:
    """Evaluate a run artifact (or TREC file) on ``split``'s qrels, on its first
    ``max_queries`` judged queries when given."""
    from inpars_core.evaluation import evaluate
    from inpars_core.runs import read_trec_run

    qrels = dataset.qrels(split)
    if max_queries is not None:
        only = first_queries(dataset, split, max_queries)
        qrels = {q: judged for q, judged in qrels.items() if q in only}
    check_same_corpus(run_path, dataset, flag)
    run = read_trec_run(open_input(run_path, "run", flag=flag))
    unjudged = [query_id for query_id in run if query_id not in qrels]
    if len(unjudged) == len(run):
        found = f"none of its {len(run)} queries" if run else "no query at all"
        raise InputFormatError(
            run_path,
            f"{flag}: expected a run of the queries judged in split {split!r} of "
            f"{dataset.name!r}, found {found}" + (f" (first: {unjudged[0]!r})" if unjudged else ""),
            field="query_id",
            fix="evaluate on the --split (and --dataset) the run was retrieved for",
        )
    if unjudged:
        logger.warning(
            "%s: %d of the run's %d queries are not judged in %s split %r (first: %r); "
            "they are left out of the evaluation",
            run_path,
            len(unjudged),
            len(run),
            dataset.name,
            split,
            unjudged[0],
        )
    return evaluate(run, qrels, measures)


def run(
    config: Config, inputs: Inputs, out_dir: Path, progress: Progress | None = None
) -> Artifact:
    """Evaluate and write ``aggregate.json``, ``per_query.tsv`` and ``meta.json``."""
    started = time.perf_counter()
    dataset = load_dataset(inputs.dataset)
    evaluation = evaluate_run(
        dataset, inputs.split, inputs.run, config.measures, inputs.max_queries
    )
    write_json(Path(out_dir) / AGGREGATE_FILE, evaluation.aggregate)
    with atomic_text(Path(out_dir) / PER_QUERY_FILE) as handle:
        handle.write("query_id\t" + "\t".join(evaluation.measures) + "\n")
        for query_id, values in evaluation.per_query.items():
            row = "\t".join(f"{values[m]:.6f}" for m in evaluation.measures)
            handle.write(f"{query_id}\t{row}\n")
    return write_stage_meta(
        out_dir,
        stage=NAME,
        type=OUTPUT,
        config={"measures": list(evaluation.measures)},
        inputs=dataset_record(
            dataset,
            split=inputs.split,
            max_queries=inputs.max_queries,
            run=input_artifact(inputs.run),
        ),
        counts={"queries": len(evaluation.per_query)},
        started=started,
    )


def aggregate(artifact: Artifact) -> dict[str, float]:
    """measure -> mean value, in the order the measures were asked for."""
    values = json.loads(artifact.file(AGGREGATE_FILE).read_text(encoding="utf-8"))
    return {name: values[name] for name in artifact.meta["config"]["measures"]}


def as_json(artifact: Artifact) -> str:
    """One JSON object measure -> value (what ``--json`` prints)."""
    return json.dumps(aggregate(artifact))


def describe(artifact: Artifact) -> str:
    """The lines the command prints: one measure a line."""
    return "\n".join(f"{name:>12}  {value:.4f}" for name, value in aggregate(artifact).items())
