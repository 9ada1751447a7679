"""Numbers out of range are refused when the command line or the experiment TOML is read —
``inpars run --dry-run`` included — with exit 2 and one line naming the flag or the dotted key,
before anything (paid) runs. The cases are generated from the option declarations, so a new
numeric option is covered by the same test."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from inpars_core import options
from inpars_core.cli import main
from inpars_core.experiments import config as experiment_config
from inpars_core.stages import STAGE_MODULES, stage_module
from inpars_core.stages.filter import FRACTION
from tests.bad_inputs.tree import snapshot

#: One value each check refuses: (command-line text, TOML literal).
BAD = {
    id(options.POSITIVE_INT): ("0", "0"),
    id(options.NON_NEGATIVE_INT): ("-1", "-1"),
    id(options.POSITIVE_FLOAT): ("-1", "-1.0"),
    id(options.NON_NEGATIVE_FLOAT): ("-0.5", "-0.5"),
    id(options.PROBABILITY): ("1.5", "1.5"),
    id(options.WARMUP_FRACTION): ("1", "1.0"),
    id(options.FINITE): ("nan", "nan"),
    id(options.RANK_WINDOW): ("5:2", "[5, 2]"),
    id(options.PORT): ("0", "0"),
    id(FRACTION): ("0", "0.0"),
}


def _checked_fields(cls: type):
    for field in dataclasses.fields(cls):
        check = field.metadata.get("check")
        if check is not None:
            yield field, check


def _cli_cases() -> list:
    cases = []
    for name in STAGE_MODULES:
        module = stage_module(name)
        for cls in (module.Inputs, module.Config):
            for field, check in _checked_fields(cls):
                if not field.metadata.get("cli", True):
                    continue
                flag = options.flag_name(field)
                bad = BAD[id(check)][0]
                cases.append(pytest.param([name, flag, bad], flag, id=f"{name} {flag} {bad}"))
    cases += [
        pytest.param(["encode", "--max-length", "0"], "--max-length", id="encode --max-length 0"),
        pytest.param(["dashboard", "--port", "0"], "--port", id="dashboard --port 0"),
        pytest.param(["dashboard", "--port", "70000"], "--port", id="dashboard --port 70000"),
    ]
    return cases


def _toml_cases() -> list:
    cases = []
    skipped = set(experiment_config._FROM_BM25.values())  # [filters] keys set from [bm25]
    sections = options.hints(experiment_config.ExperimentConfig)
    for section, annotation in sections.items():
        if section in experiment_config._NOT_SECTIONS:  # [variants.*] and [sweep]
            continue
        for field, check in _checked_fields(annotation):
            if section == "filters" and field.name in skipped:
                continue
            bad = BAD[id(check)][1]
            if options.hints(annotation)[field.name] == tuple[int, ...]:
                bad = f"[{bad}]"
            cases.append(
                pytest.param(section, field.name, bad, id=f"{section}.{field.name} = {bad}")
            )
    # the issue's own examples, by name (also covered above)
    cases += [
        pytest.param("dataset", "max_test_queries", "-3", id="issue: max_test_queries = -3"),
        pytest.param("finetune", "lr", "-1", id="issue: finetune lr = -1"),
        pytest.param("finetune", "epochs", "0", id="issue: finetune epochs = 0"),
        pytest.param("base_reranker", "batch_size", "0", id="issue: base batch_size = 0"),
        pytest.param("negatives", "window", "[30, 1]", id="issue: reversed negatives window"),
        pytest.param("dataset", "max_test_queries", "0", id="max_test_queries = 0"),
        pytest.param("dataset", "doc_count", "-5", id="dataset.doc_count = -5"),
        pytest.param("dataset", "doc_count", "0", id="dataset.doc_count = 0"),
        pytest.param("dataset", "mean_doc_tokens", "-1.0", id="dataset.mean_doc_tokens = -1"),
        pytest.param("dataset", "mean_doc_tokens", "inf", id="dataset.mean_doc_tokens = inf"),
    ]
    return cases


def _one_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    out, err = capsys.readouterr()
    assert code == 2, (code, out[-2000:], err[-2000:])
    assert "Traceback" not in err and out == "", (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(("argv", "flag"), _cli_cases())
def test_a_bad_number_on_the_command_line_is_refused_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_line(capsys, main(argv))
    assert line.startswith(f"inpars {argv[0]}: error: ")
    assert flag in line and "expected" in line, line


@pytest.mark.parametrize(("section", "key", "bad"), _toml_cases())
def test_a_bad_number_in_the_toml_is_refused_before_a_dry_run(
    section: str, key: str, bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "experiment.toml"
    config.write_text(f'[experiment]\nname = "numbers"\n\n[{section}]\n{key} = {bad}\n')
    before = snapshot(tmp_path)
    code = main(["run", str(config), "--dry-run", "--runs-dir", str(tmp_path / "runs")])
    line = _one_line(capsys, code)
    assert line.startswith("inpars run: error: ")
    assert str(config) in line and f"{section}.{key}" in line and "expected" in line, line
    assert snapshot(tmp_path) == before  # nothing written, not even the runs directory


def test_the_bad_values_are_really_refused_by_their_checks() -> None:
    """Guard of the table above: each bad value fails its check (and a new check needs one)."""
    for check in (
        options.POSITIVE_INT,
        options.NON_NEGATIVE_INT,
        options.POSITIVE_FLOAT,
        options.NON_NEGATIVE_FLOAT,
        options.PROBABILITY,
        options.WARMUP_FRACTION,
        options.FINITE,
        options.RANK_WINDOW,
        options.PORT,
        FRACTION,
    ):
        text = BAD[id(check)][0]
        value = check.parse(text)
        assert not (check.ok(value) and not (isinstance(value, float) and math.isnan(value)))
