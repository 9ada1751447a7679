"""Training objectives, one module each, chosen by name.

========== ======= =========================================================================
name       labels  loss
========== ======= =========================================================================
hf-default 1       the model's own loss with 0/1 float labels: MSE regression (pitfall P2)
bce        1       binary cross-entropy with logits on the single logit
ce2        2       cross-entropy over a two-label head (re-initialised on a 1-logit
                   checkpoint: pitfall P3)
lce        1       softmax over one positive and its negatives per (query, positive)
margin-mse 1       MSE between student and teacher (another cross-encoder) score margins
========== ======= =========================================================================
"""

from __future__ import annotations

from inpars_core.errors import UnknownNameError
from inpars_core.training.objectives.base import Objective, PairBatch, PairScorer
from inpars_core.training.objectives.bce import BinaryCrossEntropy
from inpars_core.training.objectives.ce2 import TwoLabelCrossEntropy
from inpars_core.training.objectives.hf_default import HFDefault
from inpars_core.training.objectives.lce import LocalisedContrastive
from inpars_core.training.objectives.margin_mse import MarginMSE

#: Objective classes by name.
OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (
        HFDefault,
        BinaryCrossEntropy,
        TwoLabelCrossEntropy,
        LocalisedContrastive,
        MarginMSE,
    )
}


def get_objective(name: str) -> Objective:
    """A fresh instance of the objective registered as ``name``."""
    if name not in OBJECTIVES:
        raise UnknownNameError("objective", name, list(OBJECTIVES))
    return OBJECTIVES[name]()


__all__ = ["OBJECTIVES", "Objective", "PairBatch", "PairScorer", "get_objective"]
