"""``hf-default``: what ``AutoModelForSequenceClassification`` does by itself with
``num_labels == 1`` and float labels — MSE regression of the logit onto 0/1 (pitfall P2).

Kept on purpose, to reproduce the seed's silent MSE loss; nothing is reimplemented: the labels
go to the model and its own ``outputs.loss`` is returned.
"""

from __future__ import annotations

from typing import Any

from inpars_core.training.objectives.base import Objective


class HFDefault(Objective):
    """The model's own loss with float 0/1 labels (MSE when ``problem_type`` is unset)."""

    name = "hf-default"
    labels_to_model = True
    num_labels = 1

    def prepare_model(self, model: Any) -> list[str]:
        """Leave ``problem_type`` as the checkpoint has it (transformers infers 'regression')."""
        current = getattr(model.config, "problem_type", None)
        if current is None:
            return [
                "problem_type left unset: with num_labels=1 and float labels transformers "
                "chooses 'regression' (MSE onto 0/1 labels, pitfall P2)"
            ]
        return [f"problem_type left as the checkpoint has it: {current!r}"]

    def make_loss(self, model: Any) -> Any:
        """:class:`~inpars_core.training.losses.ModelOwnLoss`: the model's own
        ``outputs.loss`` (no library loss does this: they all compute their loss from the
        logits)."""
        from inpars_core.training.losses import ModelOwnLoss

        return ModelOwnLoss(model)
