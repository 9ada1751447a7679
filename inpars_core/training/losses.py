"""Our two loss modules for ``CrossEncoderTrainer`` (the others are the library's own:
``BinaryCrossEntropyLoss``, ``CrossEntropyLoss``, ``MarginMSELoss``).

Like the library's, each is an ``nn.Module`` that receives the ``CrossEncoder`` and is called
with the batch's text columns and labels; pairs are encoded by ``model.preprocess`` (our
:func:`~inpars_core.reranking.encoding.encode_pairs`, see
:func:`inpars_core.training.hf.wrap_cross_encoder`). Imports torch at module level: import it
only inside the functions that train.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from sentence_transformers.util import batch_to_device
from torch import nn


class ModelOwnLoss(nn.Module):
    """``hf-default``: the labels go to the model and its own ``outputs.loss`` is returned.

    With ``num_labels == 1``, float 0/1 labels and ``problem_type`` unset, transformers picks
    MSE regression of the logit onto 0/1 (pitfall P2): kept reproducible on purpose. A checkpoint
    that stores ``problem_type = "multi_label_classification"`` (trained with BCE) gets BCE with
    logits, the labels shaped [B, 1] as transformers requires.
    Columns: (query, document); labels: float 0/1.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: list[list[str]], labels: Any, **kwargs: Any) -> Any:
        """``model(**features, labels=labels).loss`` of the underlying transformers model.

        Under DDP (``self.model`` is the wrapper: data-parallel training) the forward must run
        through the wrapper, which returns only the logits, so the loss is transformers'
        ``ForSequenceClassificationLoss`` of those logits: the function sequence-classification
        models compute their own loss with (``problem_type`` picked and stored the same way)."""
        features = self.model.preprocess(list(zip(inputs[0], inputs[1], strict=True)))
        features = batch_to_device(features, self.model.device)
        labels = labels.to(self.model.device)
        wrapped = getattr(self.model, "module", None)
        config = (wrapped.model if wrapped is not None else self.model.model).config
        if config.problem_type == "multi_label_classification" and labels.dim() == 1:
            # a checkpoint trained with BCE (bce objective, the InPars toolkit) stores this
            # problem_type; transformers then wants float labels shaped like the logits [B, 1]
            labels = labels.float().view(-1, 1)
        if wrapped is None:
            return self.model.model(**features, labels=labels).loss
        from transformers.loss.loss_utils import ForSequenceClassificationLoss

        logits = self.model(features)["scores"]
        return ForSequenceClassificationLoss(labels, logits, wrapped.model.config)


class ListwiseSoftmaxLoss(nn.Module):
    """``lce``: softmax cross-entropy over one positive and its negatives per group.

    Columns: (query, positive, negative), one row per triple; labels: the row's group id (its
    (query, positive)). Pairs are laid out as the groups first appear in the batch: the group's
    positive, then each of its negatives; the loss is the mean over groups of
    ``-log softmax(scores)[positive]`` (localised contrastive estimation, Gao et al. 2021).
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: list[list[str]], labels: Any, **kwargs: Any) -> Any:
        """The listwise loss of the batch."""
        queries, positives, negatives = inputs
        order: dict[int, list[int]] = {}
        for row, group in enumerate(labels.tolist()):
            order.setdefault(int(group), []).append(row)
        pairs: list[tuple[str, str]] = []
        groups: list[list[int]] = []
        for rows in order.values():
            start = len(pairs)
            pairs.append((queries[rows[0]], positives[rows[0]]))
            pairs.extend((queries[row], negatives[row]) for row in rows)
            groups.append(list(range(start, len(pairs))))
        features = batch_to_device(self.model.preprocess(pairs), self.model.device)
        scores = self.model(features)["scores"][:, 0].float()
        width = max(len(g) for g in groups)
        index = torch.zeros((len(groups), width), dtype=torch.long, device=scores.device)
        mask = torch.zeros((len(groups), width), dtype=torch.bool, device=scores.device)
        for row, members in enumerate(groups):
            index[row, : len(members)] = torch.tensor(members, device=scores.device)
            mask[row, : len(members)] = True
        grouped = scores[index].masked_fill(~mask, float("-inf"))
        target = torch.zeros(len(groups), dtype=torch.long, device=scores.device)
        return F.cross_entropy(grouped, target)
