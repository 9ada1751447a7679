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

    def loss(self, model: Any, batch: PairBatch) -> Any:
        """Mean over groups of ``-log softmax(scores)[positive]``."""
        import torch
        import torch.nn.functional as F  # noqa: N812

        scores = model(**batch.features).logits[:, 0].float()
        width = max(len(g) for g in batch.groups)
        index = torch.zeros((len(batch.groups), width), dtype=torch.long, device=scores.device)
        mask = torch.zeros((len(batch.groups), width), dtype=torch.bool, device=scores.device)
        for row, members in enumerate(batch.groups):
            index[row, : len(members)] = torch.tensor(members, device=scores.device)
            mask[row, : len(members)] = True
        grouped = scores[index].masked_fill(~mask, float("-inf"))
        target = torch.zeros(len(batch.groups), dtype=torch.long, device=scores.device)
        return F.cross_entropy(grouped, target)
