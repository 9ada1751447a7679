"""The resume machinery both trainers share (:mod:`inpars_core.training.resume`), on folders
laid out as a killed run leaves them. The kill -9 tests themselves (a real trainer killed and
rerun) are in tests/bad_inputs/test_outputs_and_faults.py and tests/test_training_distributed.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inpars_core.errors import InputFormatError
from inpars_core.training.resume import (
    CHECKPOINT_FILES,
    CHECKPOINTS_DIR,
    EVAL_LOG,
    RESUME_FILE,
    TRAIN_LOG,
    KeptModel,
    logged_until,
    resume_point,
    staging,
    staging_dir,
    take_up,
)


def _checkpoint(staged: Path, step: int, complete: bool = True) -> Path:
    folder = staged / CHECKPOINTS_DIR / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    for name in CHECKPOINT_FILES if complete else CHECKPOINT_FILES[:1]:
        (folder / name).write_text("x")
    return folder


def _log(path: Path, steps: list[int], torn: str = "") -> None:
    path.write_text("".join(json.dumps({"step": s, "loss": s / 10}) + "\n" for s in steps) + torn)


def test_the_newest_complete_checkpoint_of_the_same_run_is_resumed(tmp_path: Path) -> None:
    staged = tmp_path / ".out.staging"
    assert resume_point(staged, "run-a") is None  # a first run: the marker is written
    assert (staged / RESUME_FILE).read_text() == "run-a\n"
    _checkpoint(staged, 4)
    _checkpoint(staged, 10)
    _checkpoint(staged, 12, complete=False)  # the kill cut it short
    assert resume_point(staged, "run-a") == staged / CHECKPOINTS_DIR / "checkpoint-10"


def test_another_run_or_no_complete_checkpoint_starts_over(tmp_path: Path) -> None:
    staged = tmp_path / ".out.staging"
    resume_point(staged, "run-a")
    _checkpoint(staged, 2)
    _log(staged / TRAIN_LOG, [1, 2])
    assert resume_point(staged, "run-b") is None  # other settings: everything cleared
    assert sorted(p.name for p in staged.iterdir()) == [RESUME_FILE]
    assert (staged / RESUME_FILE).read_text() == "run-b\n"
    _checkpoint(staged, 2, complete=False)
    assert resume_point(staged, "run-b") is None
    assert not (staged / CHECKPOINTS_DIR).exists()


def test_logs_are_cut_back_to_the_checkpoint_and_a_torn_line_dropped(tmp_path: Path) -> None:
    log = tmp_path / TRAIN_LOG
    _log(log, [1, 2, 3, 4, 5])
    assert [r["step"] for r in logged_until(log, 4)] == [1, 2, 3, 4]
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4]
    _log(log, [1, 2], torn='{"step": 3, "lo')
    assert [r["step"] for r in logged_until(log, 4)] == [1, 2]
    assert log.read_text().endswith("\n") and log.read_text().count("\n") == 2
    assert logged_until(tmp_path / "absent.jsonl", 2) == []


def test_take_up_in_one_process_gives_the_checkpoint_and_the_logs(tmp_path: Path) -> None:
    staged = tmp_path / ".out.staging"
    fresh = take_up(staged, "run-a", total=6)
    assert (fresh.checkpoint, fresh.step, fresh.note, fresh.resume_from) == (None, 0, None, None)
    assert fresh.checkpoints == staged / CHECKPOINTS_DIR
    checkpoint = _checkpoint(staged, 2)
    _log(staged / TRAIN_LOG, [1, 2, 3])
    _log(staged / EVAL_LOG, [0, 2])
    resumed = take_up(staged, "run-a", total=6)
    assert resumed.checkpoint == checkpoint and resumed.resume_from == str(checkpoint)
    assert resumed.step == 2
    assert resumed.note == "resumed from the checkpoint of step 2 left by an interrupted run"
    assert [r["step"] for r in resumed.train_records] == [1, 2]
    assert [r["step"] for r in resumed.eval_records] == [0, 2]


def _saver(folder: Path) -> None:
    folder.mkdir()
    (folder / "weights").write_text(folder.name)


def test_the_best_logged_model_survives_a_kill_between_keeping_and_logging(
    tmp_path: Path,
) -> None:
    kept = KeptModel(tmp_path, _saver)
    kept.keep(0)
    kept.keep(4)  # step 0's folder stays until step 4's evaluation is logged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept-0", "kept-4"]
    kept.keep(6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept-4", "kept-6"]
    # killed before step 6's evaluation line: the rerun's best logged step is 4
    again = KeptModel(tmp_path, _saver)
    again.restore(4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept-4"]
    again.publish(tmp_path / "model")
    assert (tmp_path / "model" / "weights").read_text() == ".kept-4.tmp"  # written, then renamed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_missing_kept_model_is_named_and_dropping_it_leaves_nothing(tmp_path: Path) -> None:
    kept = KeptModel(tmp_path, _saver)
    with pytest.raises(InputFormatError, match=r"kept model of step 2 .* in kept-2/, found none"):
        kept.restore(2)
    kept.restore(None)
    kept.keep(0)
    (tmp_path / ".kept-3.tmp").mkdir()  # a save the kill cut short
    kept.publish(tmp_path / "model", use=False)
    assert list(tmp_path.iterdir()) == []


def test_staging_publishes_without_checkpoints_and_keeps_everything_after_an_error(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staging(out) as staged:
        take_up(staged, "run-a")
        _checkpoint(staged, 2)
        raise RuntimeError("killed")
    assert (staging_dir(out) / CHECKPOINTS_DIR / "checkpoint-2").is_dir() and not out.exists()
    with staging(out) as staged:
        assert take_up(staged, "run-a").step == 2
        (staged / "meta.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == [
        "eval_log.jsonl",
        "meta.json",
        "train_log.jsonl",
    ]


def test_other_ranks_write_into_a_private_folder_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staging(out, main=False) as private:
        private.mkdir()
        (private / "scratch").write_text("x")
        assert tmp_path not in private.parents and private.name == "out"
    assert not private.exists() and list(tmp_path.iterdir()) == []
