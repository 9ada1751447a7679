"""Loading a model for training with the head an objective needs, and saying when that head is
new (pitfall P3)."""

from __future__ import annotations

import logging
from typing import Any

from inpars_core.models import resolve_model_folder
from inpars_core.training.objectives.base import Objective

logger = logging.getLogger(__name__)

NEW_HEAD_NOTE = "newly initialised head"
#: How the note says that a trained head was thrown away (pitfall P3, not a backbone's new head).
HEAD_THROWN_AWAY = "threw the trained head away"


def checkpoint_head_labels(config: Any) -> int | None:
    """Output labels of the checkpoint's sequence-classification head, or None when the
    checkpoint has no such head (a bare encoder such as all-MiniLM-L6-v2)."""
    architectures = getattr(config, "architectures", None) or []
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        return int(config.num_labels)
    return None


def load_for_training(base_model: str, objective: Objective) -> tuple[Any, Any, list[str]]:
    """Load ``base_model`` (hub id, folder or ``minilm``) with ``objective.num_labels`` labels,
    prepared for the objective (:meth:`Objective.prepare_model`), and its tokenizer.

    A checkpoint whose head has another number of labels is loaded with
    ``ignore_mismatched_sizes=True``, which re-initialises the head. Whenever weights are newly
    initialised (missing or mismatched), ``notes`` holds a line starting with
    ``"newly initialised head"`` and a warning is logged. Seed torch before calling for a
    reproducible new head.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model_folder(base_model)
    config = AutoConfig.from_pretrained(path)
    head_labels = checkpoint_head_labels(config)
    wanted = objective.num_labels
    kwargs: dict[str, Any] = {"num_labels": wanted}
    reason = "the checkpoint has no sequence-classification head"
    if head_labels is not None and head_labels != wanted:
        kwargs["ignore_mismatched_sizes"] = True
        kwargs["id2label"] = {i: f"LABEL_{i}" for i in range(wanted)}
        kwargs["label2id"] = {f"LABEL_{i}": i for i in range(wanted)}
        reason = (
            f"the checkpoint's head has {head_labels} label(s), objective {objective.name!r} "
            f"needs {wanted}: ignore_mismatched_sizes=True {HEAD_THROWN_AWAY} (P3)"
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    model, info = AutoModelForSequenceClassification.from_pretrained(
        path, output_loading_info=True, **kwargs
    )
    new_weights = sorted(
        set(info.get("missing_keys", ())) | {m[0] for m in info.get("mismatched_keys", ())}
    )
    notes: list[str] = []
    if new_weights:
        if head_labels == wanted:
            reason = "weights missing from the checkpoint"
        note = f"{NEW_HEAD_NOTE} ({', '.join(new_weights)}): {reason}"
        notes.append(note)
        logger.warning("%s: %s", base_model, note)
    notes.extend(objective.prepare_model(model))
    return model, tokenizer, notes
