"""The fix of a diagnosis as a new variant: ``<experiment>.fixed.toml`` written from
``experiment.json``'s config, loadable by ``load_config``, with the new variant = the variant's
own overrides + the union of its fail/warn fixes (the more severe finding winning a conflict)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from inpars_core.artifacts import to_jsonable
from inpars_core.diagnosis.findings import Finding, VariantDiagnosis
from inpars_core.diagnosis.fixes import (
    config_toml,
    fixed_config_path,
    union_of_fixes,
    write_fixed_config,
)
from inpars_core.errors import ConfigError, InputFormatError
from inpars_core.experiments.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ["scifact-smoke.toml", "scifact-offline.toml", "scifact-seed.toml"]


def manifest_config(name: str) -> dict:
    """``experiment.json``'s ``config`` as ``inpars run`` writes it for ``configs/<name>``."""
    config = load_config(ROOT / "configs" / name)
    return json.loads(json.dumps(to_jsonable(dataclasses.asdict(config))))


def experiment_folder(tmp_path: Path, name: str = "scifact-smoke.toml") -> Path:
    """An experiment folder holding only the experiment.json the fix reads."""
    config = manifest_config(name)
    folder = tmp_path / config["experiment"]["name"]
    folder.mkdir()
    (folder / "experiment.json").write_text(json.dumps({"config": config}))
    return folder


def diagnosed(variant: str = "hf-default") -> VariantDiagnosis:
    """A variant with two failing fixes, a warning that conflicts with one, an ok and an n/a
    finding whose fixes must be ignored."""
    findings = [
        Finding("P1", "pair encoding", "ok", "fine", fix={"rerank.pair_encoding": "separate"}),
        Finding(
            "P5", "lr", "warn", "lr high", fix={"finetune.lr": 2e-6, "finetune.objective": "lce"}
        ),
        Finding("P2", "silent MSE", "fail", "regression", fix={"finetune.objective": "bce"}),
        Finding("P11", "no dev", "fail", "no dev", fix={"finetune.dev": "synthetic"}),
        Finding("P12", "noise", "n/a", "not checked", fix={"finetune.seed": 3}),
    ]
    return VariantDiagnosis(variant, "tuned", "base", tuple(findings))


def test_union_of_fixes_most_severe_first():
    overrides, sources, conflicts = union_of_fixes(diagnosed())
    assert overrides == {
        "finetune.objective": "bce",
        "finetune.dev": "synthetic",
        "finetune.lr": 2e-6,
    }
    assert sources == {"finetune.objective": "P2", "finetune.dev": "P11", "finetune.lr": "P5"}
    assert conflicts == ('P5 sets finetune.objective = "lce", kept "bce" from P2',)


@pytest.mark.parametrize("name", CONFIGS)
def test_written_config_loads_and_equals_the_experiment(tmp_path, name):
    """Every section and variant of the experiment comes back unchanged through the TOML;
    the new variant resolves (validated) with the fixes applied."""
    folder = experiment_folder(tmp_path, name)
    config = manifest_config(name)
    variant = next(iter(config["variants"]))
    written = write_fixed_config(folder, diagnosed(variant))
    assert written.path == fixed_config_path(folder, config["experiment"]["name"])
    assert written.variant == f"{variant}-fixed"
    loaded = load_config(written.path)
    back = json.loads(json.dumps(to_jsonable(dataclasses.asdict(loaded))))
    for section, values in config.items():
        if section not in ("variants", "sweep"):
            assert back[section] == values, section
    expected = {**config["variants"][variant], **union_of_fixes(diagnosed(variant))[0]}
    assert back["variants"] == {**config["variants"], f"{variant}-fixed": expected}
    resolved = loaded.variant(f"{variant}-fixed")
    assert resolved.finetune.objective == "bce" and resolved.finetune.dev == "synthetic"
    assert resolved.finetune.lr == 2e-6
    assert written.command("runs") == (
        f"inpars run {written.path} --runs-dir runs --variant {variant}-fixed"
    )


def test_earlier_fixed_variants_are_kept(tmp_path):
    folder = experiment_folder(tmp_path)
    write_fixed_config(folder, diagnosed("hf-default"))
    written = write_fixed_config(folder, diagnosed("bce"))
    variants = load_config(written.path).variants
    assert {"hf-default-fixed", "bce-fixed"} <= set(variants)
    assert variants["bce-fixed"]["finetune.objective"] == "bce"


def test_a_fix_that_does_not_validate_writes_nothing(tmp_path):
    folder = experiment_folder(tmp_path)
    bad = VariantDiagnosis(
        "hf-default",
        "t",
        "b",
        (Finding("P2", "x", "fail", "s", fix={"finetune.objective": "mse"}),),
    )
    with pytest.raises(
        ConfigError, match=r"hf-default-fixed .*finetune.objective.*nothing was written"
    ):
        write_fixed_config(folder, bad)
    assert not fixed_config_path(folder).exists()
    assert [p.name for p in folder.iterdir()] == ["experiment.json"]  # no staged leftovers


def test_unknown_variant_and_missing_manifest_say_so(tmp_path):
    folder = experiment_folder(tmp_path)
    with pytest.raises(ConfigError, match=r"variant 'nope': expected one of .*hf-default"):
        write_fixed_config(folder, diagnosed("nope"))
    with pytest.raises(InputFormatError, match=r"experiment\.json"):
        write_fixed_config(tmp_path / "elsewhere", diagnosed())


def test_toml_quotes_what_is_not_a_bare_key(tmp_path):
    text = config_toml(
        {"experiment": {"name": "x", "description": None}},
        {"sweep-weight-0.5": {"finetune.lr": 1e-05}, "v": {"negatives.window": [30, 100]}},
    )
    assert text.splitlines() == [
        "[experiment]",
        'name = "x"',
        "",
        '[variants."sweep-weight-0.5"]',
        '"finetune.lr" = 1e-05',
        "",
        "[variants.v]",
        '"negatives.window" = [30, 100]',
    ]
