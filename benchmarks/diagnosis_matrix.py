"""The fault matrix (issue 14): run the planted-faults experiment, diagnose it, and print
pitfall × variant → verdict.

Run: ``.venv/bin/python benchmarks/diagnosis_matrix.py [--runs-dir DIR] [--no-probe]``.

``configs/diagnosis-faults.toml`` plants one fine-tuning pitfall per variant at the smoke scale
(see :mod:`inpars_core.diagnosis.matrix` for which); the experiment runs through the pipeline's
cache in ``--runs-dir`` (default: a temporary folder, removed at the end), so a second run with
the same folder only diagnoses. The matrix is printed as Markdown and written to
``benchmarks/results/diagnosis-matrix.md`` and ``.json`` (``--out-dir``). Exit status 1 when a
planted fault is not reported as fail or warn under its own code or the healthy variant gets a
fail (the problems are listed), else 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


def build_matrix(config_path: Path, runs_dir: Path, *, probe: bool):
    """Run (or reuse from the cache) the faults experiment in ``runs_dir`` and return its
    :class:`~inpars_core.diagnosis.matrix.FaultMatrix`, the seconds the run took (with its
    ``diagnose`` stage, which probes models), those of any diagnosis after it (``probe=False``:
    the artifacts alone, diagnosed again) and the number of stages taken from the cache."""
    from inpars_core.diagnosis.matrix import fault_matrix, faults_diagnosis
    from inpars_core.experiments.config import load_config
    from inpars_core.experiments.runner import ExperimentRunner

    config = load_config(config_path)
    started = time.perf_counter()
    summary = ExperimentRunner(config, runs_dir).run()
    ran = time.perf_counter() - started
    diagnosis = faults_diagnosis(runs_dir / config.experiment.name, probe=probe)
    cached = len(summary.get("stages_cached", []))
    return fault_matrix(diagnosis), ran, time.perf_counter() - started - ran, cached


def main(argv: list[str] | None = None) -> int:
    """Build, print and write the matrix; 1 when it does not pass."""
    from inpars_core.diagnosis.matrix import FAULTS_CONFIG

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=FAULTS_CONFIG)
    parser.add_argument("--runs-dir", type=Path, help="runs folder (default: a temporary one)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--no-probe", action="store_true", help="diagnose from the artifacts only (no model)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if "INPARS_DATA_DIR" not in os.environ and SHARED_DATASETS.is_dir():
        os.environ["INPARS_DATA_DIR"] = str(SHARED_DATASETS)

    with tempfile.TemporaryDirectory(prefix="diagnosis-matrix-") as scratch:
        runs_dir = args.runs_dir or Path(scratch)
        matrix, ran, diagnosed, cached = build_matrix(
            args.config, runs_dir, probe=not args.no_probe
        )
    text = matrix.to_markdown()
    text += (
        f"\nExperiment {ran:.0f} s ({cached} stages reused from the cache; its diagnose stage "
        "probes models), "
        f"diagnosis after it {diagnosed:.0f} s "
        f"({'read from diagnosis.json' if not args.no_probe else 'again, without probes'}).\n"
    )
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    import json

    from inpars_core.artifacts import atomic_text

    with atomic_text(args.out_dir / "diagnosis-matrix.md") as handle:
        handle.write(text)
    with atomic_text(args.out_dir / "diagnosis-matrix.json") as handle:
        handle.write(json.dumps(matrix.to_dict(), indent=1) + "\n")
    problems = matrix.problems()
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
