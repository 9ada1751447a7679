"""``inpars diagnose RUNS_DIR/EXPERIMENT``: Markdown or JSON on stdout (exit 0), one-line errors
(exit 2) for a folder that is no experiment or an unknown variant, ``--write``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inpars_core.cli import main
from inpars_core.diagnosis import Diagnosis
from inpars_core.diagnosis.registry import CHECKS
from tests.diagnosis.data_fakes import FakeExperiment, base_row, tuned_row

QUERIES = [f"q{i}" for i in range(8)]


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    """Two fine-tuned variants over one base (only summary rows and per-query values)."""
    exp = FakeExperiment(
        tmp_path / "runs" / "exp",
        variants={"bce": {"finetune.objective": "bce"}, "lce": {"finetune.objective": "lce"}},
    )
    exp.add(base_row(), {q: 0.5 for q in QUERIES})
    exp.add(tuned_row("bce"), {q: 0.5 + (0.1 if i % 2 else -0.1) for i, q in enumerate(QUERIES)})
    exp.add(tuned_row("lce"), {q: 0.8 + 0.01 * i for i, q in enumerate(QUERIES)})
    return exp.write()


def test_markdown_table_of_every_fine_tuned_variant(experiment: Path, capsys) -> None:
    assert main(["diagnose", str(experiment), "--no-probe"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Diagnosis of exp\n")
    assert "## bce: bce: fine-tuned" in out and "## lce: lce: fine-tuned" in out
    assert "| code | check | verdict | finding | evidence | fix | expected |" in out
    # P12 on these values: bce's ±0.1 per query is noise, lce's gain of 0.3+ on every query is not
    assert "| P12 | noise | warn | Δ nDCG@10 +0.0000 against base" in out
    assert "| P12 | noise | ok | Δ nDCG@10 +0.3350 against base" in out
    assert not (experiment / "diagnosis.json").exists()  # printing writes nothing


def test_json_of_one_variant_has_one_finding_per_registered_check(experiment: Path, capsys) -> None:
    assert main(["diagnose", str(experiment), "--variant", "lce", "--json", "--no-probe"]) == 0
    diagnosis = Diagnosis.from_dict(json.loads(capsys.readouterr().out))
    assert [v.variant for v in diagnosis.variants] == ["lce"]
    codes = sorted(f.code for f in diagnosis.variants[0].findings)
    assert codes == sorted(CHECKS)
    assert diagnosis.variant("lce").finding("P12").verdict == "ok"


def test_write_puts_diagnosis_files_beside_the_summary(experiment: Path, capsys) -> None:
    assert main(["diagnose", str(experiment), "--no-probe", "--write", "--json"]) == 0
    captured = capsys.readouterr()
    written = Diagnosis.from_dict(json.loads((experiment / "diagnosis.json").read_text()))
    assert written == Diagnosis.from_dict(json.loads(captured.out))
    assert (experiment / "diagnosis.md").read_text().startswith("# Diagnosis of exp")
    assert f"wrote {experiment / 'diagnosis.json'}" in captured.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--variant", "nope"], "unknown fine-tuned variant 'nope'; known: bce, lce"),
        (["--variant", "bce", "--write"], "--write with --variant: expected the whole diagnosis"),
    ],
)
def test_unknown_variant_or_partial_write_is_one_line_and_exit_2(
    experiment: Path, capsys, extra: list[str], message: str
) -> None:
    assert main(["diagnose", str(experiment), "--no-probe", *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("inpars diagnose: error: ")
    assert message in errors[0]


def test_a_folder_that_is_no_experiment_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["diagnose", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"inpars diagnose: error: {tmp_path}: expected an experiment folder")
    assert "Fix: give RUNS_DIR/EXPERIMENT" in err


def test_the_runner_stage_writes_the_diagnosis_and_survives_its_failure(
    experiment: Path, caplog
) -> None:
    """``inpars run``'s last stage on a finished experiment folder: diagnosis.json and .md, and
    its event; with a summary.json it cannot read, a warning naming the command that redoes it,
    no stale diagnosis left behind, and no exception (the summary stays the run's result)."""
    from inpars_core.experiments.config import load_config
    from inpars_core.experiments.runner import ExperimentRunner
    from tests.conftest import SMOKE_CONFIG

    runner = ExperimentRunner(load_config(SMOKE_CONFIG), experiment.parent)
    runner.root = experiment  # the hand-made folder stands for the finished run
    event = runner.diagnose()
    assert event is not None and event["stage"] == "diagnose"
    written = Diagnosis.from_dict(json.loads((experiment / "diagnosis.json").read_text()))
    assert [v.variant for v in written.variants] == ["bce", "lce"]
    assert (experiment / "diagnosis.md").is_file()

    (experiment / "summary.json").write_text("{not json")
    with caplog.at_level("WARNING", logger="inpars_core.experiments.runner"):
        assert runner.diagnose() is None
    assert not (experiment / "diagnosis.json").exists()
    assert not (experiment / "diagnosis.md").exists()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "stage diagnose: failed (InputFormatError" in warning
    assert f"the summary is complete. Fix: rerun `inpars diagnose {experiment} --write`" in warning
