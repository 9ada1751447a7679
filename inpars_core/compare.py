"""Compare runs on the same qrels: per-query deltas, win/tie/loss, paired tests, Holm correction."""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inpars_core.errors import ConfigError
from inpars_core.evaluation import Evaluation
from inpars_core.latex import latex_escape

if TYPE_CHECKING:
    from inpars_core.datasets.beir import Dataset

TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ComparisonRow:
    """One run against the baseline on one measure."""

    run: str
    mean: float
    delta: float
    wins: int
    ties: int
    losses: int
    t_p: float
    wilcoxon_p: float
    t_p_holm: float
    wilcoxon_p_holm: float

    @property
    def significant(self) -> bool:
        """Both Holm-corrected paired tests below 0.05."""
        return self.t_p_holm < 0.05 and self.wilcoxon_p_holm < 0.05


@dataclass(frozen=True)
class Comparison:
    """A table of runs compared to one baseline on one measure."""

    measure: str
    baseline: str
    baseline_mean: float
    queries: int
    rows: tuple[ComparisonRow, ...]
    alpha: float = 0.05


def holm_bonferroni(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for position, index in enumerate(order):
        value = min(1.0, (m - position) * p_values[index])
        running = max(running, value)
        adjusted[index] = running
    return adjusted


def paired_tests(before: Sequence[float], after: Sequence[float]) -> tuple[float, float]:
    """Two-sided paired t-test and Wilcoxon signed-rank p-values (1.0 when all deltas are 0)."""
    from scipy import stats

    deltas = [a - b for a, b in zip(after, before, strict=True)]
    if len(deltas) < 2 or all(abs(d) <= TIE_TOLERANCE for d in deltas):
        return 1.0, 1.0
    t_p = float(stats.ttest_rel(after, before).pvalue)
    if math.isnan(t_p):
        t_p = 1.0
    wilcoxon_p = float(stats.wilcoxon(after, before, zero_method="wilcox").pvalue)
    return t_p, wilcoxon_p


#: The paired bootstrap of the mean Δ (:func:`paired_bootstrap_ci`): resamples, seed and level.
#: Fixed, so that one summary gives the same intervals on every run and machine.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 14
CI_LEVEL = 0.95


@functools.lru_cache(maxsize=8)
def _resample_counts(queries: int, resamples: int, seed: int):
    """How often each of ``queries`` queries is drawn in each resample (``resamples`` ×
    ``queries`` counts, each row summing to ``queries``): one plan per query count, shared by
    every comparison on that many queries (read-only)."""
    import numpy as np

    rng = np.random.default_rng([seed, queries])
    counts = rng.multinomial(queries, np.full(queries, 1.0 / queries), size=resamples)
    counts = counts.astype(np.float64)
    counts.flags.writeable = False
    return counts


def paired_bootstrap_ci(
    before: Sequence[float],
    after: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = CI_LEVEL,
) -> tuple[float, float]:
    """The percentile interval of the mean per-query difference ``after - before`` under a
    paired bootstrap: the queries (pairs of values) are resampled with replacement
    ``resamples`` times from a fixed ``seed``; the interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the resampled means. Vectorised: one matrix-vector product
    per comparison. ``(0.0, 0.0)`` when every difference is 0."""
    import numpy as np

    if len(before) != len(after):
        raise ConfigError(
            f"paired bootstrap: expected as many values after as before, found {len(after)} "
            f"and {len(before)}; compare runs evaluated on the same queries"
        )
    if not before:
        raise ConfigError("paired bootstrap: expected at least one query, found none")
    if not 0 < level < 1:
        raise ConfigError(f"paired bootstrap: expected a level in (0, 1), found {level}")
    deltas = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    means = _resample_counts(len(deltas), resamples, seed) @ deltas / len(deltas)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low) + 0.0, float(high) + 0.0  # + 0.0: no "-0.0" in summary.json


def compare(evaluations: Mapping[str, Evaluation], baseline: str, measure: str) -> Comparison:
    """Compare every run in ``evaluations`` with ``baseline`` on ``measure``."""
    if baseline not in evaluations:
        raise ConfigError(f"baseline {baseline!r} is not among the runs: {list(evaluations)}")
    base = evaluations[baseline]
    if measure not in base.measures:
        raise ConfigError(f"measure {measure!r} was not evaluated; evaluated: {base.measures}")
    base_values = base.values(measure)
    query_ids = sorted(base_values)
    partial = []
    for name, evaluation in evaluations.items():
        if name == baseline:
            continue
        values = evaluation.values(measure)
        if sorted(values) != query_ids:
            raise ConfigError(f"run {name!r} was evaluated on other queries than {baseline!r}")
        before = [base_values[q] for q in query_ids]
        after = [values[q] for q in query_ids]
        deltas = [a - b for a, b in zip(after, before, strict=True)]
        t_p, w_p = paired_tests(before, after)
        partial.append((name, sum(after) / len(after), deltas, t_p, w_p))
    t_holm = holm_bonferroni([row[3] for row in partial])
    w_holm = holm_bonferroni([row[4] for row in partial])
    base_mean = sum(base_values.values()) / len(base_values) if base_values else 0.0
    rows = tuple(
        ComparisonRow(
            run=name,
            mean=mean,
            delta=mean - base_mean,
            wins=sum(d > TIE_TOLERANCE for d in deltas),
            ties=sum(abs(d) <= TIE_TOLERANCE for d in deltas),
            losses=sum(d < -TIE_TOLERANCE for d in deltas),
            t_p=t_p,
            wilcoxon_p=w_p,
            t_p_holm=th,
            wilcoxon_p_holm=wh,
        )
        for (name, mean, deltas, t_p, w_p), th, wh in zip(partial, t_holm, w_holm, strict=True)
    )
    return Comparison(
        measure=measure,
        baseline=baseline,
        baseline_mean=base_mean,
        queries=len(query_ids),
        rows=rows,
    )


HEADER = ("run", "mean", "delta", "win", "tie", "loss", "t p (Holm)", "Wilcoxon p (Holm)", "sig")


def _cells(comparison: Comparison) -> list[list[str]]:
    base = [comparison.baseline, f"{comparison.baseline_mean:.4f}", "", "", "", "", "", "", "base"]
    rows = [base]
    for r in comparison.rows:
        rows.append(
            [
                r.run,
                f"{r.mean:.4f}",
                f"{r.delta:+.4f}",
                str(r.wins),
                str(r.ties),
                str(r.losses),
                f"{r.t_p:.4f} ({r.t_p_holm:.4f})",
                f"{r.wilcoxon_p:.4f} ({r.wilcoxon_p_holm:.4f})",
                "*" if r.significant else "",
            ]
        )
    return rows


def to_markdown(comparison: Comparison) -> str:
    """The comparison as a Markdown table with a caption line."""
    lines = [
        f"{comparison.measure} on {comparison.queries} queries, baseline {comparison.baseline}; "
        "* = both paired tests significant at 0.05 after Holm–Bonferroni",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _cells(comparison)]
    return "\n".join(lines) + "\n"


def to_csv(comparison: Comparison) -> str:
    """The comparison as CSV with raw (unrounded) numbers."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "run",
            "measure",
            "mean",
            "delta",
            "wins",
            "ties",
            "losses",
            "t_p",
            "t_p_holm",
            "wilcoxon_p",
            "wilcoxon_p_holm",
            "significant",
        ]
    )
    writer.writerow(
        [
            comparison.baseline,
            comparison.measure,
            comparison.baseline_mean,
            0.0,
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
    )
    for r in comparison.rows:
        writer.writerow(
            [
                r.run,
                comparison.measure,
                r.mean,
                r.delta,
                r.wins,
                r.ties,
                r.losses,
                r.t_p,
                r.t_p_holm,
                r.wilcoxon_p,
                r.wilcoxon_p_holm,
                r.significant,
            ]
        )
    return out.getvalue()


def to_latex(comparison: Comparison) -> str:
    """The comparison as a LaTeX ``tabular`` (booktabs rules)."""
    lines = [
        r"\begin{tabular}{lrrrrrrrl}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in HEADER) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in _cells(comparison)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def run_names(paths: Sequence[str]) -> dict[str, str]:
    """Short, unique display names for runs: the file or artifact folder names without their
    suffix, or the paths when those clash."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return dict(zip(paths, stems, strict=True))
    return {p: p for p in paths}


def compare_runs(
    dataset: Dataset, split: str, runs: Sequence[str], baseline: str, measure: str
) -> Comparison:
    """Evaluate run artifacts (or TREC files) on ``split`` and compare them with ``baseline``
    (one of ``runs``, by path or display name, see :func:`run_names`)."""
    from inpars_core.stages.evaluate import evaluate_run

    names = run_names(runs)
    chosen = names.get(baseline) or Path(baseline).stem
    if chosen not in names.values():
        raise ConfigError(
            f"--baseline: expected one of --runs {list(runs)} (a path or its name "
            f"{', '.join(names.values())}), found {baseline!r}"
        )
    evaluations = {
        names[path]: evaluate_run(dataset, split, path, [measure], flag="--runs") for path in runs
    }
    return compare(evaluations, chosen, evaluations[chosen].measures[0])


def write_comparison(
    comparison: Comparison, out: Path, dataset: Dataset, split: str, runs: Sequence[str]
) -> None:
    """``comparison.{md,csv,tex}`` and ``meta.json`` into the folder ``out``, published
    atomically; ``out`` must be new or a previous comparison (anything else is refused, never
    deleted)."""
    from inpars_core.artifacts import atomic_text
    from inpars_core.stages.contract import input_artifact, publish, write_stage_meta

    with publish(Path(out), "comparison") as staged:
        for suffix, function in (("md", to_markdown), ("csv", to_csv), ("tex", to_latex)):
            with atomic_text(staged / f"comparison.{suffix}") as handle:
                handle.write(function(comparison))
        write_stage_meta(
            staged,
            stage="compare",
            type="comparison",
            config={"measure": comparison.measure, "baseline": comparison.baseline},
            inputs={
                "dataset": dataset.name,
                "split": split,
                "runs": {name: input_artifact(path) for path, name in run_names(runs).items()},
            },
        )
