"""``bce``: binary cross-entropy with logits on the single logit, 0/1 labels (the fix for P2 the
InPars toolkit uses)."""

from __future__ import annotations

from typing import Any

from inpars_core.training.objectives.base import Objective, PairBatch


class BinaryCrossEntropy(Objective):
    """Pointwise BCE on the one logit."""

    name = "bce"
    num_labels = 1

    def prepare_model(self, model: Any) -> list[str]:
        """Mark the head as a single-logit binary classifier so a forward with labels never
        falls back to MSE."""
        model.config.problem_type = "multi_label_classification"
        return ["problem_type set to 'multi_label_classification' (BCE with logits)"]

    def loss(self, model: Any, batch: PairBatch) -> Any:
        """``binary_cross_entropy_with_logits(logit, label)`` averaged over pairs."""
        import torch.nn.functional as F  # noqa: N812

        logits = model(**batch.features).logits
        return F.binary_cross_entropy_with_logits(logits[:, 0].float(), batch.labels.float())
