"""``[sweep]`` (issue 13): a grid of settings expands into named variants, validated like
hand-written ones, listed by ``inpars run --dry-run`` and recorded in ``experiment.json``."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from inpars_core.artifacts import is_safe_name
from inpars_core.cli import main
from inpars_core.experiments.config import load_config
from inpars_core.experiments.sweep import MAX_SWEEP_CELLS, Sweep, expand, read_grid
from tests.bad_inputs.tree import run_cli, snapshot
from tests.conftest import SMOKE_CONFIG

#: A dataset that is never on disk here: the dry-run estimates from these published figures.
OFFLINE_DATASET = '[dataset]\nname = "scifact"\ndoc_count = 5183\nmean_doc_tokens = 300.0\n'

GRID = """
[sweep]
"finetune.objective" = ["hf-default", "bce", "lce"]
"negatives.count" = [5, 1]
"rerank.pair_encoding" = ["pair", "separate"]
"""

#: The 12 cells of GRID, in grid order (the first key varies slowest).
GRID_NAMES = [
    f"sweep-objective-{objective}-count-{count}-pair_encoding-{encoding}"
    for objective in ("hf-default", "bce", "lce")
    for count in (5, 1)
    for encoding in ("pair", "separate")
]


def _write(tmp_path: Path, body: str, name: str = "experiment.toml") -> Path:
    path = tmp_path / name
    # the body first: it may hold a top-level key (``sweep = 5``)
    path.write_text(f'{body}\n\n[experiment]\nname = "sweep-test"\n\n{OFFLINE_DATASET}')
    return path


def test_the_grid_expands_in_written_order_beside_the_hand_written_variants(
    tmp_path: Path,
) -> None:
    config = load_config(_write(tmp_path, f'[variants.mine]\n"finetune.lr" = 2e-5\n{GRID}'))
    assert list(config.variants) == ["mine", *GRID_NAMES]
    assert config.variants["mine"] == {"finetune.lr": 2e-5}
    assert config.variants["sweep-objective-lce-count-1-pair_encoding-separate"] == {
        "finetune.objective": "lce",
        "negatives.count": 1,
        "rerank.pair_encoding": "separate",
    }
    assert config.sweep == Sweep(
        {
            "finetune.objective": ("hf-default", "bce", "lce"),
            "negatives.count": (5, 1),
            "rerank.pair_encoding": ("pair", "separate"),
        },
        tuple(GRID_NAMES),
    )
    cell = config.variant("sweep-objective-lce-count-1-pair_encoding-separate")
    assert (cell.finetune.objective, cell.negatives.count, cell.rerank.pair_encoding) == (
        "lce",
        1,
        "separate",
    )
    assert cell.variants == {} and cell.sweep == Sweep()  # a variant holds no variants


def test_names_are_readable_safe_and_stable() -> None:
    grid = read_grid(
        {
            "finetune": {"lr": [2e-5, 0.5]},  # TOML's dotted keys arrive as a nested table
            "base_reranker.lr": [1e-4],
            "finetune.bf16": [True, False],
            "finetune.teacher": ["cross-encoder/ms-marco-MiniLM-L-6-v2"],
        },
        ["finetune", "base_reranker"],
    )
    assert list(grid) == ["finetune.lr", "base_reranker.lr", "finetune.bf16", "finetune.teacher"]
    names = list(expand(grid))
    # two keys end in "lr": both are named by their whole dotted key; floats as Python's
    # shortest round-trip text, booleans as in TOML, '/' replaced by '-'
    teacher = "teacher-cross-encoder-ms-marco-MiniLM-L-6-v2"
    assert names == [
        f"sweep-finetune.lr-2e-05-base_reranker.lr-0.0001-bf16-true-{teacher}",
        f"sweep-finetune.lr-2e-05-base_reranker.lr-0.0001-bf16-false-{teacher}",
        f"sweep-finetune.lr-0.5-base_reranker.lr-0.0001-bf16-true-{teacher}",
        f"sweep-finetune.lr-0.5-base_reranker.lr-0.0001-bf16-false-{teacher}",
    ]
    assert all(is_safe_name(name) for name in names)


def test_a_sweep_cell_is_the_same_config_as_the_hand_written_variant(tmp_path: Path) -> None:
    swept = load_config(
        _write(tmp_path, '[sweep]\n"finetune.objective" = ["lce"]\n"negatives.count" = [1]\n')
    )
    written = load_config(
        _write(
            tmp_path,
            '[variants.lce-1]\n"finetune.objective" = "lce"\n"negatives.count" = 1\n',
            "written.toml",
        )
    )
    direct = load_config(
        _write(tmp_path, '[finetune]\nobjective = "lce"\n[negatives]\ncount = 1\n', "direct.toml")
    )
    assert list(swept.variants) == ["sweep-objective-lce-count-1"]
    assert swept.variant("sweep-objective-lce-count-1") == written.variant("lce-1") == direct


def _bad(case: str, body: str, *says: str):
    """One refused ``[sweep]``: the TOML after the dataset, and what its error line names."""
    return pytest.param(body, list(says), id=case)


TOO_MANY = '"negatives.count" = [1, 2, 3, 4, 5, 6, 7, 8, 9]\n"finetune.lr" = [1.0, 2.0, 3.0, 4.0]'
BAD_SWEEPS = [
    _bad("scalar", '[sweep]\n"negatives.count" = 5', "sweep.negatives.count", "list"),
    _bad("empty list", '[sweep]\n"negatives.count" = []', "sweep.negatives.count", "non-empty"),
    _bad(
        "list value",
        '[sweep]\n"rerank.depths" = [[10], [20]]',
        "sweep.rerank.depths",
        "hand-written [variants.NAME]",
    ),
    _bad(
        "table value",
        '[sweep]\n"finetune.objective" = [{a = 1}]',
        "sweep.finetune.objective",
        "table",
    ),
    _bad("no section", '[sweep]\nobjective = ["bce"]', "sweep.objective", '"section.key"'),
    _bad("unknown section", '[sweep]\n"finetun.lr" = [1e-5]', "sweep.finetun.lr", "finetune"),
    _bad("three parts", '[sweep]\n"finetune.lr.x" = [1]', "sweep.finetune.lr.x", "section.key"),
    _bad("duplicate", '[sweep]\n"negatives.count" = [5, 1, 5]', "sweep.negatives.count", "twice"),
    _bad("same number", '[sweep]\n"finetune.lr" = [2, 2.0]', "sweep.finetune.lr", "as 2 and 2.0"),
    _bad(
        "bad value",
        '[sweep]\n"finetune.objective" = ["bce", "fancy"]',
        "sweep.finetune.objective",
        "variant 'sweep-objective-fancy'",
        "found 'fancy'",
    ),
    _bad(
        "out of range",
        '[sweep]\n"negatives.count" = [5, 0]',
        "sweep.negatives.count",
        "variant 'sweep-count-0'",
    ),
    _bad(
        "unknown key",
        '[sweep]\n"finetune.objectiv" = ["bce"]',
        "sweep.finetune.objectiv",
        "unknown key",
    ),
    _bad(
        "refused combination",
        '[sweep]\n"finetune.objective" = ["margin-mse"]',
        "sweep.finetune.objective",
        "finetune.teacher",
    ),
    _bad(
        "hand-written name",
        '[variants.sweep-count-5]\n"negatives.count" = 5\n[sweep]\n"negatives.count" = [5]',
        "sweep.negatives.count",
        "[variants.sweep-count-5]",
    ),
    _bad(
        "same name part",
        '[sweep]\n"finetune.teacher" = ["a/b", "a-b"]',
        "sweep.finetune.teacher",
        "'a-b'",
    ),
    _bad(
        "long name",
        f'[sweep]\n"finetune.teacher" = ["{"t" * 130}"]',
        "sweep.finetune.teacher",
        "not a folder name",
    ),
    _bad(
        "too many cells",
        f"[sweep]\n{TOO_MANY}\n[sweep.finetune]\nbf16 = [true, false]",
        "sweep.negatives.count (9) × sweep.finetune.lr (4) × sweep.finetune.bf16 (2) = 72",
        f"maximum of {MAX_SWEEP_CELLS}",
    ),
    _bad("not a table", "sweep = 5", "[sweep]", "table"),
    _bad("empty table", "[sweep]", "[sweep]", "at least one key"),
]


@pytest.mark.parametrize(("body", "says"), BAD_SWEEPS)
def test_a_bad_sweep_is_refused_in_one_line_naming_the_key_and_the_fix(
    body: str, says: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(tmp_path, body)
    before = snapshot(tmp_path)
    code = main(["run", str(config), "--dry-run", "--runs-dir", str(tmp_path / "runs")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"inpars run: error: {config}: "), lines[0]
    for text in [*says, "Fix:"]:
        assert text in lines[0], (text, lines[0])
    assert snapshot(tmp_path) == before  # nothing written, not even the runs directory


def test_a_bad_sweep_value_exits_2_from_a_real_process(tmp_path: Path) -> None:
    config = _write(tmp_path, '[sweep]\n"negatives.count" = [5, 0]\n')
    outcome = run_cli(["run", config, "--dry-run", "--runs-dir", tmp_path / "runs"], tmp_path)
    assert outcome.code == 2
    line = outcome.error_line()  # also: no traceback, one error line
    assert "sweep.negatives.count" in line and "Fix:" in line, line


def test_dry_run_lists_every_variant_with_its_overrides_before_the_estimates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INPARS_DATA_DIR", str(tmp_path / "no-datasets"))
    config = _write(tmp_path, f'[variants.mine]\n"finetune.lr" = 2e-5\n{GRID}')
    assert main(["run", str(config), "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("experiment sweep-test: dataset scifact, 13 variants,")
    assert lines[1] == (
        'sweep: finetune.objective ["hf-default", "bce", "lce"] × negatives.count [5, 1] × '
        'rerank.pair_encoding ["pair", "separate"] = 12 variants'
    )
    assert lines[2] == "  variant mine: finetune.lr = 2e-05"
    assert lines[3] == (
        "  variant sweep-objective-hf-default-count-5-pair_encoding-pair (sweep): "
        'finetune.objective = "hf-default", negatives.count = 5, rerank.pair_encoding = "pair"'
    )
    assert [line.split()[1] for line in lines[3:15]] == GRID_NAMES
    assert lines[15].startswith("generation: ")  # the estimates follow the list
    assert not (tmp_path / "runs").exists()


def test_dry_run_of_chosen_variants_lists_only_those(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INPARS_DATA_DIR", str(tmp_path / "no-datasets"))
    config = _write(tmp_path, GRID)
    chosen = GRID_NAMES[7]
    argv = ["run", str(config), "--variant", chosen, "--dry-run", "--runs-dir", str(tmp_path)]
    assert main(argv) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "  variant " in line]
    assert listed == [
        f"  variant {chosen} (sweep): finetune.objective = "
        '"bce", negatives.count = 1, rerank.pair_encoding = "separate"'
    ]


@pytest.mark.integration
def test_a_sweep_of_the_smoke_variants_reuses_their_stages_and_is_recorded(
    smoke_runs_dir: Path, tmp_path: Path
) -> None:
    """The smoke config's two hand-written variants written as a sweep: the runner (unchanged)
    runs the cells, every stage comes from the cache (same settings, same keys), and
    ``experiment.json`` records the grid and the variants it expanded to."""
    from inpars_core.experiments.runner import ExperimentRunner

    runs = tmp_path / "runs"
    shutil.copytree(smoke_runs_dir, runs)  # the session's copy stays as made
    text = SMOKE_CONFIG.read_text()
    text = text[: text.index("[variants.bce]")] + (
        '[sweep]\n"finetune.objective" = ["bce", "hf-default"]\n'
    )
    swept = tmp_path / "swept.toml"
    swept.write_text(text)
    config = load_config(swept)
    cells = ["sweep-objective-bce", "sweep-objective-hf-default"]
    assert list(config.variants) == cells
    hand_written = load_config(SMOKE_CONFIG)
    for cell, name in zip(cells, ["bce", "hf-default"], strict=True):
        assert config.variant(cell) == hand_written.variant(name)
    runner = ExperimentRunner(config, runs)
    summary = runner.run()
    assert runner.store.ran == []
    tuned = {row["variant"] for row in summary["rows"] if row.get("variant")}
    assert tuned == set(cells)
    manifest = json.loads((runs / "scifact-smoke" / "experiment.json").read_text())
    assert manifest["config"]["sweep"] == {
        "grid": {"finetune.objective": ["bce", "hf-default"]},
        "variants": cells,
    }
    assert manifest["config"]["variants"] == {
        cell: {"finetune.objective": value}
        for cell, value in zip(cells, ["bce", "hf-default"], strict=True)
    }
    assert dataclasses.asdict(config)["sweep"]["variants"] == tuple(cells)
