"""``bce``: binary cross-entropy with logits on the single logit, 0/1 labels (the fix for P2 the
InPars toolkit uses)."""

from __future__ import annotations

from typing import Any

from inpars_core.training.objectives.base import Objective


class BinaryCrossEntropy(Objective):
    """Pointwise BCE on the one logit."""

    name = "bce"
    num_labels = 1

    def prepare_model(self, model: Any) -> list[str]:
        """Mark the head as a single-logit binary classifier so a forward with labels never
        falls back to MSE."""
        model.config.problem_type = "multi_label_classification"
        return ["problem_type set to 'multi_label_classification' (BCE with logits)"]

    def make_loss(self, model: Any) -> Any:
        """The library's ``BinaryCrossEntropyLoss`` (BCE with logits on the one logit)."""
        from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

        return BinaryCrossEntropyLoss(model)
