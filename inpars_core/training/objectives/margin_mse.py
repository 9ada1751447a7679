"""``margin-mse``: distillation from the starting model's own scores (Hofstätter et al. 2020).

Teacher scores come from ``Triple.teacher_pos_score``/``teacher_neg_score`` when present, else
they are computed once, before the first update, by the starting model in eval mode without
gradients (a frozen copy of it at that moment). Loss: ``MSE(s_pos - s_neg, t_pos - t_neg)``.
Keeps the learnt score scale and ranking while the model adapts (a fix for P2 and P6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from inpars_core.records import Triple
from inpars_core.reranking.encoding import EncodingConfig
from inpars_core.training.objectives.base import Objective, PairBatch, PairScorer


def triple_key(triple: Triple) -> tuple[str, str, str, str]:
    """What identifies a triple's teacher scores."""
    return (triple.query_id, triple.query_text, triple.pos_doc_id, triple.neg_doc_id)


class MarginMSE(Objective):
    """MSE between student and teacher score margins."""

    name = "margin-mse"
    num_labels = 1

    def __init__(self) -> None:
        self.teacher: dict[tuple[str, str, str, str], tuple[float, float]] = {}

    def prepare_model(self, model: Any) -> list[str]:
        """Nothing to set: the loss is computed from the raw logit, no labels reach the model."""
        return ["problem_type unused: MarginMSE is computed from the raw logit"]

    def prepare(
        self, triples: Sequence[Triple], documents: Mapping[str, str], scorer: PairScorer
    ) -> list[str]:
        """Teacher scores: stored ones, else the starting model's."""
        stored = 0
        pairs: dict[tuple[str, str], int] = {}
        pending: list[Triple] = []
        for triple in triples:
            if triple.teacher_pos_score is not None and triple.teacher_neg_score is not None:
                self.teacher[triple_key(triple)] = (
                    float(triple.teacher_pos_score),
                    float(triple.teacher_neg_score),
                )
                stored += 1
                continue
            pending.append(triple)
            for doc_id in (triple.pos_doc_id, triple.neg_doc_id):
                pairs.setdefault((triple.query_text, doc_id), len(pairs))
        if pending:
            ordered = sorted(pairs, key=pairs.__getitem__)
            scores = scorer([(query, documents[doc_id]) for query, doc_id in ordered])
            for triple in pending:
                pos = scores[pairs[(triple.query_text, triple.pos_doc_id)]]
                neg = scores[pairs[(triple.query_text, triple.neg_doc_id)]]
                self.teacher[triple_key(triple)] = (pos, neg)
        return [
            f"margin-mse teacher: {stored} triples with stored teacher scores, "
            f"{len(pending)} scored by the starting model ({len(pairs)} pairs)"
        ]

    def make_batch(
        self,
        triples: Sequence[Triple],
        documents: Mapping[str, str],
        tokenizer: Any,
        encoding: EncodingConfig,
    ) -> PairBatch:
        """Pointwise ``pos, neg`` pairs plus one teacher margin per triple."""
        import torch

        batch = super().make_batch(triples, documents, tokenizer, encoding)
        missing = [t for t in triples if triple_key(t) not in self.teacher]
        if missing:
            raise RuntimeError(
                f"margin-mse: {len(missing)} triples have no teacher score; call prepare() first"
            )
        margins = [self.teacher[triple_key(t)][0] - self.teacher[triple_key(t)][1] for t in triples]
        return PairBatch(
            batch.features,
            batch.labels,
            batch.triples,
            teacher_margins=torch.tensor(margins, dtype=torch.float32),
        )

    def loss(self, model: Any, batch: PairBatch) -> Any:
        """``mse_loss(s_pos - s_neg, t_pos - t_neg)``."""
        import torch.nn.functional as F  # noqa: N812

        scores = model(**batch.features).logits[:, 0].float().view(-1, 2)
        return F.mse_loss(scores[:, 0] - scores[:, 1], batch.teacher_margins.float())
