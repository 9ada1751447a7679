"""``margin-mse``: distillation from a teacher cross-encoder's score margins (Hofstätter et al.
2020).

Teacher scores come from ``Triple.teacher_pos_score``/``teacher_neg_score`` when present (written
by negative mining with a teacher), else from the teacher model the training config names
(``TrainingConfig.teacher_model``), which scores each needed pair once before the first update,
in fp32 eval mode. The teacher is never the model being trained: its margins would equal the
student's at step 0, so the loss would be exactly 0 and the labels never used (the trainer
refuses that, and refuses to start without a teacher). Loss: ``MSE(s_pos - s_neg, t_pos - t_neg)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from inpars_core.errors import ConfigError
from inpars_core.records import Triple
from inpars_core.reranking.encoding import EncodingConfig, encode_pairs
from inpars_core.training.objectives.base import Objective, PairBatch, PairScorer, triple_pairs


def triple_key(triple: Triple) -> tuple[str, str, str, str]:
    """What identifies a triple's teacher scores."""
    return (triple.query_id, triple.query_text, triple.pos_doc_id, triple.neg_doc_id)


def has_teacher_scores(triple: Triple) -> bool:
    """Whether the triple carries both stored teacher scores."""
    return triple.teacher_pos_score is not None and triple.teacher_neg_score is not None


def missing_teacher_message(lacking: int, total: int) -> str:
    """Why margin-mse cannot start without a teacher, and the fix."""
    return (
        f"objective 'margin-mse': expected teacher scores for every triple, found {lacking} of "
        f"{total} triples without teacher_pos_score/teacher_neg_score and no teacher model. "
        "Fix: set the training config's teacher_model (inpars train --teacher MODEL) to a "
        "cross-encoder other than the base model, or mine the triples with a teacher"
    )


class MarginMSE(Objective):
    """MSE between student and teacher score margins."""

    name = "margin-mse"
    num_labels = 1
    needs_teacher = True
    layout = "triples"

    def __init__(self) -> None:
        self.teacher: dict[tuple[str, str, str, str], tuple[float, float]] = {}

    def prepare_model(self, model: Any) -> list[str]:
        """Nothing to set: the loss is computed from the raw logit, no labels reach the model."""
        return ["problem_type unused: MarginMSE is computed from the raw logit"]

    def prepare(
        self,
        triples: Sequence[Triple],
        documents: Mapping[str, str],
        teacher: PairScorer | None = None,
    ) -> list[str]:
        """Teacher scores: the triples' stored ones, else ``teacher``'s (each distinct
        (query, document) pair scored once, in one call).

        Raises:
            ConfigError: when some triples have no stored teacher scores and no teacher is given.
        """
        stored = 0
        pairs: dict[tuple[str, str], int] = {}
        pending: list[Triple] = []
        for triple in triples:
            if has_teacher_scores(triple):
                self.teacher[triple_key(triple)] = (
                    float(triple.teacher_pos_score),  # type: ignore[arg-type]
                    float(triple.teacher_neg_score),  # type: ignore[arg-type]
                )
                stored += 1
                continue
            pending.append(triple)
            for doc_id in (triple.pos_doc_id, triple.neg_doc_id):
                pairs.setdefault((triple.query_text, doc_id), len(pairs))
        if pending:
            if teacher is None:
                raise ConfigError(missing_teacher_message(len(pending), len(triples)))
            ordered = sorted(pairs, key=pairs.__getitem__)
            scores = list(teacher([(query, documents[doc_id]) for query, doc_id in ordered]))
            if len(scores) != len(ordered):
                raise ValueError(f"the teacher gave {len(scores)} scores for {len(ordered)} pairs")
            for triple in pending:
                pos = float(scores[pairs[(triple.query_text, triple.pos_doc_id)]])
                neg = float(scores[pairs[(triple.query_text, triple.neg_doc_id)]])
                self.teacher[triple_key(triple)] = (pos, neg)
        return [
            f"margin-mse teacher: {stored} triples with stored teacher scores, "
            f"{len(pending)} scored by the teacher model ({len(pairs)} pairs)"
        ]

    def make_batch(
        self,
        triples: Sequence[Triple],
        documents: Mapping[str, str],
        tokenizer: Any,
        encoding: EncodingConfig,
    ) -> PairBatch:
        """``pos, neg`` pairs of every triple (:func:`triple_pairs`) plus one teacher margin per
        triple."""
        import torch

        missing = [t for t in triples if triple_key(t) not in self.teacher]
        if missing:
            raise RuntimeError(
                f"margin-mse: {len(missing)} triples have no teacher score; call prepare() first"
            )
        margins = [self.teacher[triple_key(t)][0] - self.teacher[triple_key(t)][1] for t in triples]
        queries, texts, labels = triple_pairs(triples, documents)
        return PairBatch(
            encode_pairs(tokenizer, queries, texts, encoding),
            torch.tensor(labels, dtype=torch.float32),
            tuple(triples),
            teacher_margins=torch.tensor(margins, dtype=torch.float32),
        )

    def train_columns(
        self, triples: Sequence[Triple], documents: Mapping[str, str]
    ) -> dict[str, list[Any]]:
        """One row per triple; the label is the teacher margin ``t_pos - t_neg`` (call
        :meth:`prepare` first)."""
        missing = [t for t in triples if triple_key(t) not in self.teacher]
        if missing:
            raise RuntimeError(
                f"margin-mse: {len(missing)} triples have no teacher score; call prepare() first"
            )
        margins = [self.teacher[triple_key(t)][0] - self.teacher[triple_key(t)][1] for t in triples]
        return {
            "query": [t.query_text for t in triples],
            "positive": [documents[t.pos_doc_id] for t in triples],
            "negative": [documents[t.neg_doc_id] for t in triples],
            "label": margins,
        }

    def make_loss(self, model: Any) -> Any:
        """The library's ``MarginMSELoss``: ``MSE(s_pos - s_neg, t_pos - t_neg)``.

        It scores the positives and the negatives in two forward passes (the loop before the
        port scored ``pos, neg, pos, neg, ...`` in one), so in train mode dropout draws other
        masks and the loss curve is not bit-identical to the old one; the loss is the same
        function of the scores."""
        from sentence_transformers.cross_encoder.losses import MarginMSELoss

        return MarginMSELoss(model)
