"""Resuming a killed training run: what the cross-encoder and the bi-encoder trainers share.

A training run builds its output folder in ``.<out_dir>.staging`` beside it (:func:`staging`),
a folder that survives kill -9 and is renamed onto ``out_dir`` only when complete. It holds:

    resume.txt         the run's fingerprint (config, base model, triples, dev set, launch):
                       a checkpoint is resumed only by a rerun with the same fingerprint
    _trainer/          the Hugging Face checkpoints (weights, optimizer, schedule, RNG), one
                       every ``eval_every`` steps (``save_total_limit=1``); under a data-parallel
                       launch every rank saves its ``rng_state_<rank>.pth`` there
    kept-<step>/       the best model so far, on disk (:class:`KeptModel`), so a resumed run
                       still knows the best of before the kill
    train_log.jsonl    one line per update
    eval_log.jsonl     one line per dev evaluation, each after its step's checkpoint is on disk

A rerun with the same fingerprint resumes from the newest complete checkpoint
(:func:`take_up`), its logs cut back to the checkpoint's step (a killed run may have logged steps
past it, or a torn line); anything else in the folder is cleared and training starts over. Under
a data-parallel launch (``torchrun``) rank 0 decides and broadcasts the resume point, and every
rank passes the same checkpoint to ``trainer.train``. The checkpoints, the marker and the kept
folders never reach the published folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars_core.errors import InputFormatError

logger = logging.getLogger(__name__)

TRAIN_LOG = "train_log.jsonl"
EVAL_LOG = "eval_log.jsonl"
#: What a checkpoint must have been written under to be resumed from (the same run).
RESUME_FILE = "resume.txt"
#: The Hugging Face trainer's output folder (its checkpoints) inside the staging folder.
CHECKPOINTS_DIR = "_trainer"
#: Files of a complete HF checkpoint (written before the next one replaces it).
CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")
_KEPT_PREFIX = "kept-"


def shared_result(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a broadcast every rank must join: the other ranks go
    on only once rank 0 has sent it); ``value`` itself in a single process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def join_launch(device: str) -> None:
    """Open the process group of a data-parallel launch (``WORLD_SIZE`` > 1) now, as the HF
    trainer's arguments would once built (accelerate's ``PartialState``: gloo on CPU, the
    device's default backend otherwise; the trainer then reuses the open group), so that the
    ranks can share the resume point (:func:`take_up`) before the trainer exists. Nothing in a
    single process, or when the group is already open."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1 or dist.is_initialized():
        return
    from accelerate import PartialState

    cpu = device == "cpu"
    PartialState(cpu=cpu, backend="gloo" if cpu else None)


def wait_for_ranks() -> None:
    """A barrier every rank must join (nothing in a single process): after training, rank 0
    removes the shared checkpoints only once every rank has finished writing into them."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def staging_dir(out_dir: Path) -> Path:
    """Where rank 0 builds ``out_dir`` (kept across a kill, for resuming)."""
    return Path(out_dir).with_name(f".{Path(out_dir).name}.staging")


@contextlib.contextmanager
def staging(out_dir: Path, main: bool = True) -> Iterator[Path]:
    """Where a process writes: rank 0 (``main``) stages ``out_dir`` in :func:`staging_dir` and,
    when the block ends without an exception, removes the checkpoints and the resume marker and
    renames the folder onto ``out_dir``; after an exception (or a kill) the folder stays, for a
    rerun to resume from. Every other rank writes into a private temporary folder that is
    removed, so the ranks never race on ``out_dir``."""
    out_dir = Path(out_dir)
    if not main:
        with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.rank.") as tmp:
            yield Path(tmp) / out_dir.name
        return
    staged = staging_dir(out_dir)
    yield staged
    shutil.rmtree(staged / CHECKPOINTS_DIR, ignore_errors=True)
    (staged / RESUME_FILE).unlink(missing_ok=True)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staged, out_dir)


def checkpoint_step(checkpoint: Path) -> int:
    """The update count of an HF checkpoint folder (``checkpoint-<step>``); -1 for another name."""
    number = Path(checkpoint).name.removeprefix("checkpoint-")
    return int(number) if number.isdigit() else -1


def resume_point(staged: Path, fingerprint: str) -> Path | None:
    """The newest complete HF checkpoint in ``staged/_trainer`` of a killed run with the same
    ``fingerprint``; without one, anything in ``staged`` is cleared (training starts over) and
    the marker of this run is written."""
    marker = staged / RESUME_FILE
    if staged.is_dir():
        same = marker.is_file() and marker.read_text(encoding="utf-8").strip() == fingerprint
        found = sorted((staged / CHECKPOINTS_DIR).glob("checkpoint-*"), key=checkpoint_step)
        for checkpoint in reversed(found) if same else []:
            if all((checkpoint / name).is_file() for name in CHECKPOINT_FILES):
                return checkpoint  # the newest complete one (a kill may cut the newest short)
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    marker.write_text(fingerprint + "\n", encoding="utf-8")
    return None


def logged_until(path: Path, step: int) -> list[dict[str, Any]]:
    """The JSONL records of ``path`` up to ``step``, rewriting the file to hold only their lines
    (a killed run may have logged steps past its last checkpoint, or a torn line)."""
    records: list[dict[str, Any]] = []
    lines: list[str] = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            if record.get("step", 0) > step:
                break
            records.append(record)
            lines.append(line + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return records


@dataclass(frozen=True)
class Resume:
    """Where a training run starts: the HF output folder every rank saves checkpoints into
    (rank 0's ``staging/_trainer``), the checkpoint to resume from (None: from the start) and
    the log records of the killed run up to that checkpoint (rank 0 only)."""

    checkpoints: Path
    checkpoint: Path | None = None
    train_records: list[dict[str, Any]] = field(default_factory=list)
    eval_records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def step(self) -> int:
        """The update the run goes on from (0 when it starts over)."""
        return checkpoint_step(self.checkpoint) if self.checkpoint is not None else 0

    @property
    def note(self) -> str | None:
        """The meta.json note of a resumed run (None when it started over)."""
        if self.checkpoint is None:
            return None
        return f"resumed from the checkpoint of step {self.step} left by an interrupted run"

    @property
    def resume_from(self) -> str | None:
        """``trainer.train``'s ``resume_from_checkpoint``."""
        return str(self.checkpoint) if self.checkpoint is not None else None


def take_up(staged: Path, fingerprint: str, main: bool = True, total: int | None = None) -> Resume:
    """Decide where training starts (rank 0, ``main``: :func:`resume_point` and the logs cut
    back to its step) and share it with every rank;
    the other ranks create their private folder ``staged``. Every rank must call it: the
    broadcast also guarantees that rank 0's staging folder exists before any rank saves a
    checkpoint into it. ``total`` (planned updates) only goes into the log line."""
    if main:
        checkpoint = resume_point(staged, fingerprint)
        step = checkpoint_step(checkpoint) if checkpoint is not None else 0
        resume = Resume(
            staged / CHECKPOINTS_DIR,
            checkpoint,
            logged_until(staged / TRAIN_LOG, step),
            logged_until(staged / EVAL_LOG, step),
        )
        if checkpoint is not None:
            of = f" of {total}" if total else ""
            logger.info("resuming training from %s (step %d%s)", checkpoint, step, of)
        shared = (str(resume.checkpoints), resume.resume_from)
    else:
        staged.mkdir(parents=True)
        shared = None
    checkpoints, checkpoint_path = shared_result(shared)
    if main:
        return resume
    return Resume(Path(checkpoints), Path(checkpoint_path) if checkpoint_path else None)


class KeptModel:
    """The best model so far, on disk in the staging folder: ``keep(step)`` saves it with
    ``save(folder)`` into ``kept-<step>/`` (written under a temporary name, then renamed).

    The folder of the previous best stays until the next keep: a model is kept before its
    evaluation's log line is written, so after a kill the best step of the logged evaluations
    (:meth:`restore`) always has its folder. :meth:`publish` moves the best one into place.
    """

    def __init__(self, staged: Path, save: Callable[[Path], None]) -> None:
        self.staged = Path(staged)
        self.save = save
        self.step: int | None = None

    def folder(self, step: int) -> Path:
        """Where the model of ``step`` is kept."""
        return self.staged / f"{_KEPT_PREFIX}{step}"

    def _prune(self, *keep: int | None) -> None:
        names = {self.folder(step).name for step in keep if step is not None}
        for path in self.staged.glob(f"{_KEPT_PREFIX}*"):
            if path.name not in names:
                shutil.rmtree(path)
        for path in self.staged.glob(f".{_KEPT_PREFIX}*.tmp"):
            shutil.rmtree(path)

    def keep(self, step: int) -> Path:
        """Save the current model as the best so far (the one of ``step``); returns its folder."""
        target = self.folder(step)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.save(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        self._prune(step, self.step)
        self.step = step
        return target

    def restore(self, best_step: int | None) -> None:
        """Take up the kept model of a killed run whose logged best step is ``best_step`` (None:
        nothing kept yet); the folders of later, unlogged steps are removed."""
        if best_step is not None and not self.folder(best_step).is_dir():
            raise InputFormatError(
                self.staged,
                f"expected the kept model of step {best_step} (the best logged evaluation of the "
                f"interrupted run) in {self.folder(best_step).name}/, found none",
                fix="remove this folder to train from the start",
            )
        self._prune(best_step)
        self.step = best_step

    def publish(self, target: Path, use: bool = True) -> None:
        """Move the kept model onto ``target`` (``use``), or drop it; no ``kept-*`` folder is
        left in the staging folder either way."""
        if use and self.step is not None:
            if target.exists():
                shutil.rmtree(target)
            os.replace(self.folder(self.step), target)
        self._prune()
        self.step = None
