"""One definition per option: stage Config fields give the CLI flags, TOML keys and checks."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from inpars_core.cli import build_parser, main
from inpars_core.errors import ConfigError
from inpars_core.experiments import config as experiment_config
from inpars_core.experiments.config import load_config
from inpars_core.options import (
    POSITIVE_INT,
    PROBABILITY,
    RANK_WINDOW,
    add_flags,
    flag_name,
    from_args,
    option,
    section,
    validate,
)
from inpars_core.stages import STAGE_MODULES, stage_module


@dataclass(frozen=True)
class Toy:
    """A config exercising every kind of field."""

    name: str = option(help="required text")
    depth: int = option(10, "a depth", check=POSITIVE_INT)
    weight: float | None = option(0.5, "a weight", check=PROBABILITY)
    window: tuple[int, int] = option((1, 100), "ranks", check=RANK_WINDOW)
    measures: tuple[str, ...] = option(("a", "b"), "several")
    mode: Literal["x", "y"] = option("x", "a choice")
    on: bool = option(False, "a switch")

    def __post_init__(self) -> None:
        validate(self)


def _parse(*argv: str) -> Toy:
    parser = argparse.ArgumentParser()
    add_flags(parser, Toy)
    return from_args(Toy, parser.parse_args(list(argv)))


def test_flags_come_from_the_fields() -> None:
    toy = _parse("--name", "n", "--depth", "3", "--window", "2:5", "--measures", "p", "q")
    assert toy == Toy("n", 3, 0.5, (2, 5), ("p", "q"), "x", False)
    assert _parse("--name", "n", "--weight", "none", "--on", "--mode", "y").weight is None
    assert _parse("--name", "n", "--no-on").on is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "n", "--depth", "0"], "expected an integer >= 1, got '0'"),
        (["--name", "n", "--weight", "2"], "expected a number in [0, 1], got '2'"),
        (["--name", "n", "--window", "5:2"], "expected A:B with 1 <= A <= B"),
        (["--name", "n", "--mode", "z"], "invalid choice"),
        ([], "the following arguments are required: --name"),
    ],
)
def test_bad_flags_are_refused_at_parse_time(argv, message, capsys) -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, Toy)
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    assert message in capsys.readouterr().err


def test_the_dataclass_checks_python_callers_too() -> None:
    with pytest.raises(ConfigError, match=r"^depth: expected an integer >= 1, found 0$"):
        Toy("n", depth=0)
    with pytest.raises(ConfigError, match=r"^mode: expected one of x, y, found 'z'$"):
        Toy("n", mode="z")  # type: ignore[arg-type]


def test_every_stage_config_field_is_a_flag_of_its_command() -> None:
    """A new Config or Inputs field is a flag of ``inpars <stage>`` without any other code."""
    commands = {
        action.dest: action
        for action in build_parser()._subparsers._group_actions  # type: ignore[union-attr]
    }["command"].choices
    assert set(STAGE_MODULES) <= set(commands)
    for name in STAGE_MODULES:
        module = stage_module(name)
        flags = commands[name]._option_string_actions
        for cls in (module.Inputs, module.Config):
            for field in dataclasses.fields(cls):
                if field.metadata.get("cli", True):
                    assert flag_name(field) in flags, f"inpars {name}: {flag_name(field)} missing"
                    assert field.metadata.get("help"), f"{name}.{field.name} has no help"


SECTIONS = (
    "BM25Section",
    "NegativesSection",
    "BaseRerankerSection",
    "FinetuneSection",
    "RerankSection",
    "DenseSection",
    "EvaluationSection",
)


@pytest.mark.parametrize("name", SECTIONS)
def test_toml_sections_are_made_of_stage_fields(name: str) -> None:
    """A section field taken from a stage keeps that field's help and check (one definition);
    the rest are the experiment's own (depths, dev, source, ...)."""
    cls = getattr(experiment_config, name)
    from_stages = [f for f in dataclasses.fields(cls) if "stage_field" in f.metadata]
    assert from_stages, f"{name} has no field from a stage Config"
    for field in dataclasses.fields(cls):
        assert field.metadata.get("help"), f"{name}.{field.name} has no help"


def test_section_checks_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    for text, message in [
        ("[bm25]\nk = 0\n", "bm25.k: expected an integer >= 1, found 0"),
        ("[negatives]\nwindow = [5, 2]\n", "negatives.window: expected A:B with 1 <= A <= B"),
        ("[finetune]\nlr = -1.0\n", "finetune.lr: expected a number > 0, found -1.0"),
        ('[finetune]\ndev = "test"\n', "finetune.dev: expected one of auto, synthetic"),
        ("[rerank]\ndepths = [0]\n", "rerank.depths: expected an integer >= 1, found 0"),
        ('[evaluation]\nholm_family = "x"\n', "evaluation.holm_family: expected one of"),
    ]:
        bad.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_config(bad)
        assert message in str(caught.value), (text, str(caught.value))


def test_toml_none_switches_an_optional_setting_off(tmp_path: Path) -> None:
    """TOML has no null: "none" (or "off") switches an optional setting off, at the top and in
    a variant, as on the command line; a setting whose own values include "none" keeps it, and
    a required setting refuses it."""
    path = tmp_path / "off.toml"
    path.write_text(
        '[filters]\nexample_copy_jaccard = "none"\nmin_words = "OFF"\n'
        '[dense]\nfinetune_objective = "none"\n'
        '[variants.v]\n"filters.max_document_overlap" = "none"\n'
    )
    config = load_config(path)
    assert config.filters.example_copy_jaccard is None and config.filters.min_words is None
    assert config.filters.max_document_overlap == 0.8
    assert config.variant("v").filters.max_document_overlap is None
    assert config.dense.finetune_objective == "none"
    path.write_text('[finetune]\nlr = "none"\n')
    with pytest.raises(ConfigError, match=r"finetune\.lr: expected float, found 'none'"):
        load_config(path)


def test_a_section_can_rename_and_redefault_a_stage_field() -> None:
    from inpars_core.stages import triples

    made = section(
        "Made",
        "doc",
        (triples.Config, (("negatives", "count"), "window")),
        defaults={"count": 2},
    )
    assert made().count == 2 and made().window == (1, 100)
    with pytest.raises(ConfigError, match="count: expected an integer >= 1"):
        made(count=0)


def test_cli_stage_errors_name_the_flag(tmp_path: Path, capsys) -> None:
    """A cross-field check of a stage config names the flags (no traceback, exit 2)."""
    code = main(
        [
            "retrieve",
            "--dataset",
            str(tmp_path),
            "--index",
            str(tmp_path),
            "--queries",
            "q",
            "--max-queries",
            "2",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "expected --max-queries only with --split" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
