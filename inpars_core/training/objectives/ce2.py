"""``ce2``: a two-label head trained with cross-entropy through the model (long labels).

On a one-logit checkpoint this needs ``ignore_mismatched_sizes=True``, which throws the trained
head away (pitfall P3): the step-0 evaluation then differs from the zero-shot one. Kept to
reproduce P3 on purpose; scores at inference are the log-odds of label 1.
"""

from __future__ import annotations

from typing import Any

from inpars_core.training.objectives.base import Objective


class TwoLabelCrossEntropy(Objective):
    """Softmax cross-entropy over two labels (0 negative, 1 positive)."""

    name = "ce2"
    labels_to_model = True
    num_labels = 2

    def prepare_model(self, model: Any) -> list[str]:
        """Two-label single-label classification."""
        model.config.problem_type = "single_label_classification"
        return ["problem_type set to 'single_label_classification' (2 labels, cross-entropy)"]

    def pair_label(self, positive: bool) -> Any:
        """Class indices (1 positive, 0 negative): cross-entropy needs long labels."""
        return 1 if positive else 0

    def make_loss(self, model: Any) -> Any:
        """The library's ``CrossEntropyLoss`` over the two logits, the loss the model itself
        computes for ``single_label_classification`` with long labels."""
        from sentence_transformers.cross_encoder.losses import CrossEntropyLoss

        return CrossEntropyLoss(model)
