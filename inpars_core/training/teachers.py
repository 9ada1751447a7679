"""Teachers are not students: checks that a teacher (margin-mse distillation, the false-negative
guard of negative mining) is a different model from the one being trained.

A model distilled from its own scores learns nothing from the labels (the margin-mse loss is 0
at step 0), and negatives filtered by the model being trained are exactly the ones it already
ranks low. Models are compared by a content hash of their weight files, so a copy of a folder
or a second name for the same checkpoint is caught too.

Importing this module is cheap: nothing heavy is imported at module level.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from inpars_core.errors import ConfigError

__all__ = [
    "check_teacher_is_not_student",
    "check_triples_teacher",
    "teacher_fingerprint",
]

logger = logging.getLogger(__name__)


def teacher_fingerprint(model: str) -> str:
    """A content hash of the weights of ``model`` (hub id, folder or ``minilm``): see
    :func:`inpars_core.models.model_fingerprint`."""
    from inpars_core.models import model_fingerprint

    return str(model_fingerprint(model))


def check_teacher_is_not_student(teacher: str, student: str, what: str) -> None:
    """Raise :class:`ConfigError` when ``teacher`` is the model being trained, ``student``.

    Args:
        teacher: the teacher's name (hub id, folder or ``minilm``).
        student: the base model of the training run.
        what: what the teacher is for, e.g. ``"margin-mse teacher"`` (starts the message).
    """
    if teacher == student:
        same = True
        fingerprint = None
    else:
        fingerprint = teacher_fingerprint(teacher)
        same = fingerprint == teacher_fingerprint(student)
    if same:
        how = f"weights fingerprint {fingerprint}" if fingerprint else "the same name"
        raise ConfigError(
            f"{what}: expected a model other than the one being trained, found the teacher "
            f"{teacher!r} is the student {student!r} ({how}): its scores hold nothing the "
            "student does not already know, so the labels would never be used. Fix: name a "
            "different (stronger) cross-encoder as the teacher"
        )


def check_triples_teacher(fingerprints: Iterable[str | None], student: str, what: str) -> None:
    """Raise :class:`ConfigError` when a triple's teacher fingerprint (the false-negative guard
    teacher recorded by negative mining) is the fingerprint of ``student``."""
    recorded = sorted({f for f in fingerprints if f})
    if not recorded:
        return
    own = teacher_fingerprint(student)
    if own in recorded:
        raise ConfigError(
            f"{what}: expected triples mined with a teacher other than the model being trained, "
            f"found their teacher fingerprint {own} is the base model {student!r}: the "
            "false-negative guard kept only negatives the student already ranks low, and "
            "their stored teacher scores are the student's own. Fix: mine the triples again "
            "with a different teacher (or without the guard), or train another base model"
        )
