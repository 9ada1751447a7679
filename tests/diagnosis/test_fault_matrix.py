"""The proof of the diagnosis (issue 14): the planted-faults experiment
(``configs/diagnosis-faults.toml``) is run by the real pipeline at the smoke scale and diagnosed;
each planted fault must be reported as fail or warn under its own code, and the healthy variant
must get no fail. The matrix logic itself is tested first on hand-made diagnoses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inpars_core.diagnosis.findings import Diagnosis, Finding, VariantDiagnosis
from inpars_core.diagnosis.matrix import FAULTS_CONFIG, HEALTHY, PLANTED, REPORTED, fault_matrix


def _variant(name: str, verdicts: dict[str, str]) -> VariantDiagnosis:
    findings = tuple(
        Finding(code, f"check {code}", verdict, f"{code} of {name} is {verdict}")
        for code, verdict in verdicts.items()
    )
    return VariantDiagnosis(name, f"{name}: cross-encoder", "base", findings)


def test_matrix_passes_when_every_planted_fault_is_reported_and_healthy_is_clean():
    diagnosis = Diagnosis(
        "faults",
        (
            _variant("healthy", {"P1": "ok", "P12": "warn"}),
            _variant("broken", {"P1": "fail", "P12": "warn"}),
            _variant("risky", {"P1": "ok", "P12": "warn"}),
        ),
    )
    matrix = fault_matrix(diagnosis, {"broken": ("P1",), "risky": ("P12",)}, "healthy")
    assert matrix.problems() == []
    assert matrix.variants == ("healthy", "broken", "risky")
    assert matrix.codes == ("P1", "P12")
    text = matrix.to_markdown()
    assert "| P1 | ok | **fail** | ok |" in text
    assert "| P12 | warn | warn | **warn** |" in text
    table = text.split("| code |")[1].split("Planted:")[0]
    assert "✗" not in table
    assert "Problems:" not in text


def test_matrix_names_a_missed_fault_an_unchecked_code_and_a_healthy_fail():
    diagnosis = Diagnosis(
        "faults",
        (
            _variant("healthy", {"P1": "fail", "P2": "ok"}),
            _variant("broken", {"P1": "n/a", "P2": "ok"}),
        ),
    )
    matrix = fault_matrix(diagnosis, {"broken": ("P1", "P9"), "gone": ("P2",)}, "healthy")
    problems = matrix.problems()
    assert problems == [
        "broken: planted P1 reported as n/a, expected fail or warn (P1 of broken is n/a)",
        "broken: planted P9 reported as missing, expected fail or warn ()",
        "gone: no diagnosis (the variant has no fine-tuned row)",
        "healthy: P1 is fail, expected no fail (P1 of healthy is fail)",
    ]
    text = matrix.to_markdown()
    assert "| P1 | fail ✗ | **n/a** ✗ |" in text
    assert "| P9 | missing | **missing** ✗ |" in text
    assert matrix.to_dict()["problems"] == problems


def test_the_matrix_reads_the_diagnosis_the_run_wrote(tmp_path: Path):
    from inpars_core.diagnosis.engine import DIAGNOSIS_JSON
    from inpars_core.diagnosis.matrix import faults_diagnosis

    written = Diagnosis("faults", (_variant("healthy", {"P7": "warn", "P1": "ok"}),))  # sorted
    (tmp_path / DIAGNOSIS_JSON).write_text(written.to_json())
    assert faults_diagnosis(tmp_path, probe=True) == written


def test_every_planted_variant_exists_in_the_faults_config():
    from inpars_core.experiments.config import load_config

    config = load_config(FAULTS_CONFIG)
    assert set(config.variants) == {HEALTHY, *PLANTED}
    codes = {code for codes in PLANTED.values() for code in codes}
    # every pitfall but P4 (no objective trains a 1-label head with cross-entropy) is planted
    assert codes == {f"P{n}" for n in range(1, 13)} - {"P4"}


@pytest.fixture(scope="session")
def faults_experiment(tmp_path_factory) -> Path:
    """The planted-faults experiment run once per session by the real pipeline (under
    pytest-xdist the first worker builds it, the others wait on the lock and share it)."""
    import fcntl

    from inpars_core.experiments.config import load_config
    from inpars_core.experiments.runner import ExperimentRunner

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    runs_dir = shared / "fault-matrix-runs"
    config = load_config(FAULTS_CONFIG)
    with open(shared / "fault-matrix-runs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (runs_dir / config.experiment.name / "summary.json").is_file():
            ExperimentRunner(config, runs_dir).run()
    return runs_dir / config.experiment.name


@pytest.fixture(scope="module")
def matrix(faults_experiment: Path):
    """The fault matrix of the experiment, diagnosed with model probes (by the run's own
    ``diagnose`` stage)."""
    from inpars_core.diagnosis.matrix import faults_diagnosis

    return fault_matrix(faults_diagnosis(faults_experiment, probe=True))


# The planted-fault experiment trains and reranks 12 variants at the smoke scale (3 min 23 s from
# nothing on 2 idle cores): default tier, integration; `python benchmarks/diagnosis_matrix.py`
# runs the same experiment and prints the matrix.
@pytest.mark.integration
@pytest.mark.parametrize(
    ("variant", "code"), [(v, c) for v, codes in PLANTED.items() for c in codes]
)
def test_planted_fault_is_reported_under_its_own_code(matrix, variant: str, code: str):
    verdict = matrix.verdict(variant, code)
    assert verdict in REPORTED, (
        f"{variant}: planted {code} reported as {verdict}: "
        f"{matrix.summaries.get(variant, {}).get(code, '(no finding)')}"
    )


@pytest.mark.integration
def test_healthy_variant_gets_no_fail(matrix):
    fails = {
        code: matrix.summaries[HEALTHY][code]
        for code, verdict in matrix.verdicts[HEALTHY].items()
        if verdict == "fail"
    }
    assert fails == {}
    assert matrix.problems() == []
