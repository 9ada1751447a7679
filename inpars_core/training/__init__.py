"""Fine-tuning cross-encoder rerankers: objectives chosen by name, a loader that reports new
heads, and a trainer that evaluates at step 0 and keeps the best checkpoint.

Importing this package is cheap: torch and transformers load inside the functions that use them.
"""

from __future__ import annotations

from inpars_core.training.loading import NEW_HEAD_NOTE, load_for_training
from inpars_core.training.objectives import OBJECTIVES, Objective, PairBatch, get_objective
from inpars_core.training.teachers import (
    check_teacher_is_not_student,
    check_triples_teacher,
    teacher_fingerprint,
)
from inpars_core.training.trainer import (
    DevSet,
    TrainingConfig,
    TrainingMeta,
    TrainingResult,
    train_reranker,
    weights_sha256,
)

__all__ = [
    "NEW_HEAD_NOTE",
    "OBJECTIVES",
    "DevSet",
    "Objective",
    "PairBatch",
    "TrainingConfig",
    "TrainingMeta",
    "TrainingResult",
    "check_teacher_is_not_student",
    "check_triples_teacher",
    "get_objective",
    "load_for_training",
    "teacher_fingerprint",
    "train_reranker",
    "weights_sha256",
]
