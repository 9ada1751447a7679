"""fuse: several runs into one: reciprocal rank fusion, a normalised score sum, or a reranked run
interpolated with its first stage.

``rrf`` and ``sum`` fuse each run's top ``depth``; with ``tail`` the last run's documents below
the fused head follow it (reranked runs fused at their rerank depth keep BM25's tail, so the
fused ranking is the whole list, as every reranked row is). ``interpolate`` takes two runs,
the reranked run then its first stage, and scores the reranked head (its top ``depth``)
``(1 - w) * model + w * first stage``, both min-max normalised per query over that head
(:func:`~inpars_core.runs.interpolate_with_first_stage`); the first stage's tail stays below it
(:func:`~inpars_core.runs.with_first_stage_tail`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inpars_core.errors import ConfigError, InputFormatError
from inpars_core.options import NON_NEGATIVE_INT, POSITIVE_INT, PROBABILITY, option, validate
from inpars_core.records import Run
from inpars_core.stages.common import Progress
from inpars_core.stages.contract import (
    Artifact,
    input_artifact,
    open_input,
    read_artifact,
    write_stage_meta,
)

NAME = "fuse"
HELP = "fuse runs: reciprocal rank fusion, normalised sum, or interpolation with the first stage"
OUTPUT = "run"
RUN_FILE = "run.trec"
#: rrf and sum: documents of each run fused, and kept, per query unless --depth says otherwise.
DEFAULT_DEPTH = 1000


@dataclass(frozen=True)
class Config:
    """The fusion method and its settings."""

    method: Literal["rrf", "sum", "interpolate"] = option(
        "rrf",
        "rrf: reciprocal rank fusion; sum: sum of min-max normalised scores; interpolate: "
        "--runs RERANKED FIRST_STAGE, (1 - w) * model + w * first stage over the head",
    )
    rrf_k: int = option(60, "rrf: the k of 1 / (k + rank)", check=NON_NEGATIVE_INT)
    depth: int | None = option(
        None,
        f"rrf, sum: documents of each run fused and kept (default {DEFAULT_DEPTH}); interpolate: "
        "the reranked head (default: the depth in the reranked run's meta.json)",
        check=POSITIVE_INT,
    )
    weight: float | None = option(
        None, "interpolate: w, the weight of the first stage (0: the pure model)", check=PROBABILITY
    )
    tail: bool = option(
        False,
        "rrf, sum: below the fused top --depth, keep the last run's documents in its order (the "
        "first stage's tail of reranked runs: the ranking as shown, as a reranked run keeps it)",
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.method == "interpolate" and self.tail:
            raise ConfigError(
                "expected --tail only with --method rrf or sum, found it with --method "
                "interpolate, which always keeps the first stage's tail. Fix: drop --tail"
            )
        if self.method == "interpolate" and self.weight is None:
            raise ConfigError(
                "expected --weight W with --method interpolate, found none. Fix: give the "
                "weight of the first stage, e.g. --weight 0.5"
            )
        if self.method != "interpolate" and self.weight is not None:
            raise ConfigError(
                f"expected --weight only with --method interpolate, found it with --method "
                f"{self.method}. Fix: drop --weight"
            )


@dataclass(frozen=True)
class Inputs:
    """The runs fused."""

    runs: tuple[str, ...] = option(
        help="run artifacts or TREC files; interpolate: the reranked run, then its first stage"
    )

    def __post_init__(self) -> None:
        validate(self)


def run(
    config: Config, inputs: Inputs, out_dir: Path, progress: Progress | None = None
) -> Artifact:
    """Fuse ``inputs.runs`` and write ``run.trec`` into ``out_dir``."""
    from inpars_core.dense.fusion import normalised_score_sum, reciprocal_rank_fusion
    from inpars_core.runs import read_trec_run, run_size, write_trec_run

    started = time.perf_counter()
    runs = [read_trec_run(open_input(path, "run", flag="--runs")) for path in inputs.runs]
    depth = config.depth
    if config.method == "interpolate":
        depth = depth or _rerank_depth(inputs)
        fused = interpolate(runs, depth, config.weight)
    elif config.method == "rrf":
        depth = depth or DEFAULT_DEPTH
        fused = reciprocal_rank_fusion(runs, k=config.rrf_k, depth=depth)
    else:
        depth = depth or DEFAULT_DEPTH
        fused = normalised_score_sum(runs, depth=depth)
    if config.tail:
        from inpars_core.runs import with_first_stage_tail

        fused = with_first_stage_tail(fused, runs[-1], depth)
    write_trec_run(fused, Path(out_dir) / RUN_FILE, tag=f"fuse-{config.method}")
    return write_stage_meta(
        out_dir,
        stage=NAME,
        type=OUTPUT,
        config={**vars(config), "depth": depth},
        inputs={**_shared_dataset(inputs), "runs": [input_artifact(path) for path in inputs.runs]},
        counts={"runs": len(runs), "queries": len(fused), "lines": run_size(fused)},
        started=started,
    )


def interpolate(runs: list[Run], depth: int, weight: float) -> Run:
    """``runs = [reranked, first stage]``: the reranked head (top ``depth``) interpolated with
    the first stage, the first stage's tail below it."""
    from inpars_core.runs import interpolate_with_first_stage, top_k, with_first_stage_tail

    if len(runs) != 2:
        raise ConfigError(
            f"expected two --runs with --method interpolate (the reranked run, then its first "
            f"stage), found {len(runs)}"
        )
    reranked, first = runs
    fused = interpolate_with_first_stage(top_k(reranked, depth), first, weight)
    return with_first_stage_tail(fused, first, depth)


#: What a run artifact's meta.json records of its dataset (see ``common.dataset_record``).
_DATASET_KEYS = ("dataset", "dataset_path", "dataset_hash", "corpus_sha256")


def _shared_dataset(inputs: Inputs) -> dict[str, object]:
    """The dataset record the input run artifacts agree on, carried into the fused run's meta
    (so the fused run is checked like any other against the dataset it is used with). Runs of
    two different corpora are refused; plain run files record nothing."""
    found: dict[str, dict[str, object]] = {}
    for path in inputs.runs:
        artifact = read_artifact(Path(path)) if Path(path).is_dir() else None
        recorded = (artifact.meta.get("inputs") or {}) if artifact else {}
        if recorded.get("corpus_sha256"):
            found[str(path)] = {k: recorded.get(k) for k in _DATASET_KEYS if k in recorded}
    corpora = {record["corpus_sha256"] for record in found.values()}
    if len(corpora) > 1:
        listed = "; ".join(
            f"{p}: {r.get('dataset')} ({r['corpus_sha256']})" for p, r in found.items()
        )
        raise InputFormatError(
            inputs.runs[0],
            f"--runs: expected runs of one corpus, found runs of {len(corpora)} ({listed})",
            fix="fuse runs retrieved from the same dataset",
        )
    return next(iter(found.values()), {})


def _rerank_depth(inputs: Inputs) -> int:
    """The depth the reranked run (the first of ``--runs``) was reranked to, from its meta."""
    artifact = read_artifact(Path(inputs.runs[0])) if Path(inputs.runs[0]).is_dir() else None
    depth = (artifact.meta.get("config") or {}).get("depth") if artifact else None
    if not isinstance(depth, int):
        raise ConfigError(
            f"expected --depth with --method interpolate: {inputs.runs[0]} records no rerank "
            "depth. Fix: give --depth, the depth the run was reranked to"
        )
    return depth


def describe(artifact: Artifact) -> str:
    """The line the command prints."""
    return (
        f"fused {artifact.counts['runs']} runs ({artifact.meta['config']['method']}) into "
        f"{artifact.counts['lines']} lines for {artifact.counts['queries']} queries -> "
        f"{artifact.data}"
    )
