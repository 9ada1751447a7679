"""``lce``: localised contrastive estimation (Gao et al. 2021) — softmax cross-entropy over one
positive and its negatives per (query, positive) group, positive first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from inpars_core.records import Triple
from inpars_core.reranking.encoding import EncodingConfig, encode_pairs
from inpars_core.training.objectives.base import Objective, PairBatch


def group_triples(triples: Sequence[Triple]) -> dict[tuple[str, str], list[Triple]]:
    """Triples grouped by (query_id, pos_doc_id), in first-seen order."""
    groups: dict[tuple[str, str], list[Triple]] = {}
    for triple in triples:
        groups.setdefault((triple.query_id, triple.pos_doc_id), []).append(triple)
    return groups


class LocalisedContrastive(Objective):
    """Listwise softmax over ``[pos, neg_1, ..., neg_n]`` for each group."""

    name = "lce"
    num_labels = 1
    keep_groups = True
    layout = "triples"

    def train_columns(
        self, triples: Sequence[Triple], documents: Mapping[str, str]
    ) -> dict[str, list[Any]]:
        """One row per triple; the label is its (query, positive) group's number."""
        keys: dict[tuple[str, str], int] = {}
        for triple in triples:
            keys.setdefault((triple.query_id, triple.pos_doc_id), len(keys))
        return {
            "query": [t.query_text for t in triples],
            "positive": [documents[t.pos_doc_id] for t in triples],
            "negative": [documents[t.neg_doc_id] for t in triples],
            "label": [keys[(t.query_id, t.pos_doc_id)] for t in triples],
        }

    def pair_counts(self, triples: Sequence[Triple], rows: int) -> tuple[int, int]:
        """One positive pair per (query, positive) group of the batch, one negative pair per
        triple."""
        return len(group_triples(triples)), len(triples)

    def make_loss(self, model: Any) -> Any:
        """:class:`~inpars_core.training.losses.ListwiseSoftmaxLoss`. The library's listwise
        losses (``ListNetLoss``, ``CrossEntropyLoss``) want a fixed number of documents per
        row with graded labels; a group here has as many negatives as it has triples, so the
        group is rebuilt from the rows' group ids inside our own small loss."""
        from inpars_core.training.losses import ListwiseSoftmaxLoss

        return ListwiseSoftmaxLoss(model)

    def prepare_model(self, model: Any) -> list[str]:
        """Nothing to set: the loss is computed from the raw logit, no labels reach the model."""
        return ["problem_type unused: LCE is computed from the raw logit"]

    def make_batch(
        self,
        triples: Sequence[Triple],
        documents: Mapping[str, str],
        tokenizer: Any,
        encoding: EncodingConfig,
    ) -> PairBatch:
        """One pair for each group's positive, then one per negative of that group."""
        import torch

        queries: list[str] = []
        texts: list[str] = []
        labels: list[float] = []
        groups: list[tuple[int, ...]] = []
        for (_, pos_id), members in group_triples(triples).items():
            start = len(queries)
            query = members[0].query_text
            queries.append(query)
            texts.append(documents[pos_id])
            labels.append(1.0)
            for triple in members:
                queries.append(triple.query_text)
                texts.append(documents[triple.neg_doc_id])
                labels.append(0.0)
            groups.append(tuple(range(start, len(queries))))
        features = encode_pairs(tokenizer, queries, texts, encoding)
        return PairBatch(
            features,
            torch.tensor(labels, dtype=torch.float32),
            tuple(triples),
            groups=tuple(groups),
        )
