"""What every training objective shares: the batch layout it trains on and the small interface it
has.

An objective decides how triples are laid out as training rows (:meth:`train_columns`,
:attr:`layout`; :meth:`make_batch` shows the same pairs encoded), how many output labels the
model needs, how the model is prepared (``problem_type``), and which loss module
(:meth:`make_loss`, an ``nn.Module`` receiving the model, like sentence-transformers' losses)
turns a batch into a loss. It owns no optimiser, schedule or loop: that is
``CrossEncoderTrainer``'s job (:mod:`inpars_core.training.trainer`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from inpars_core.records import Triple
from inpars_core.reranking.encoding import EncodingConfig, encode_pairs

#: Scores (query text, document text) pairs, one float each, in order (eval mode, no grad): the
#: teacher cross-encoder of a distillation objective.
PairScorer = Callable[[Sequence[tuple[str, str]]], list[float]]


@dataclass(frozen=True)
class PairBatch:
    """Encoded (query, document) pairs for a group of triples.

    ``features`` is the tokenizer output of :func:`encode_pairs`; ``labels`` holds one float per
    pair (1.0 positive, 0.0 negative); ``groups`` lists, for listwise objectives, the pair indices
    of each (query, positive) group, positive first; ``teacher_margins`` holds one teacher
    ``pos - neg`` score margin per triple when pairs are laid out ``pos, neg, pos, neg, ...``.
    """

    features: Any
    labels: Any
    triples: tuple[Triple, ...]
    groups: tuple[tuple[int, ...], ...] = ()
    teacher_margins: Any | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Number of pairs."""
        return int(self.labels.shape[0])

    def to(self, device: str) -> PairBatch:
        """The same batch with its tensors on ``device``."""
        margins = self.teacher_margins
        return replace(
            self,
            features=self.features.to(device),
            labels=self.labels.to(device),
            teacher_margins=margins.to(device) if margins is not None else None,
        )


def positive_key(triple: Triple) -> tuple[str, str]:
    """What identifies a triple's positive pair: ``(query_id, pos_doc_id)``. The triples of one
    query and positive (one per negative) share it."""
    return (triple.query_id, triple.pos_doc_id)


def pointwise_pairs(
    triples: Sequence[Triple], documents: Mapping[str, str]
) -> tuple[list[str], list[str], list[float]]:
    """Queries, documents and labels of the pointwise training rows of ``triples``: each
    (query, positive) once, where its first triple stands, then every triple's negative. A
    positive with ``n`` negatives gives 1 positive row and ``n`` negative rows (pos:neg 1:n;
    balanced triples, one negative per positive, 1:1). Row order is :func:`pointwise_rows`'."""
    queries: list[str] = []
    texts: list[str] = []
    labels: list[float] = []
    seen: set[tuple[str, str]] = set()
    for triple in triples:
        if positive_key(triple) not in seen:
            seen.add(positive_key(triple))
            queries.append(triple.query_text)
            texts.append(documents[triple.pos_doc_id])
            labels.append(1.0)
        queries.append(triple.query_text)
        texts.append(documents[triple.neg_doc_id])
        labels.append(0.0)
    return queries, texts, labels


def pointwise_rows(triples: Sequence[Triple]) -> list[tuple[int, int]]:
    """For each triple, its two rows of :func:`pointwise_pairs`: its (query, positive) row,
    shared by every triple of that query and positive, and its own negative's row."""
    rows: list[tuple[int, int]] = []
    positive_row: dict[tuple[str, str], int] = {}
    count = 0
    for triple in triples:
        if positive_key(triple) not in positive_row:
            positive_row[positive_key(triple)] = count
            count += 1
        rows.append((positive_row[positive_key(triple)], count))
        count += 1
    return rows


def triple_pairs(
    triples: Sequence[Triple], documents: Mapping[str, str]
) -> tuple[list[str], list[str], list[float]]:
    """Queries, documents and labels laid out ``pos, neg`` for every triple (the pairs a
    triple-layout objective such as margin-mse scores: each triple its positive and negative)."""
    queries: list[str] = []
    texts: list[str] = []
    labels: list[float] = []
    for triple in triples:
        queries += [triple.query_text, triple.query_text]
        texts += [documents[triple.pos_doc_id], documents[triple.neg_doc_id]]
        labels += [1.0, 0.0]
    return queries, texts, labels


class Objective:
    """Base class of the training objectives (one module each, registered by name)."""

    #: Registry name.
    name: str = ""
    #: Output labels the model's head must have.
    num_labels: int = 1
    #: Whether batches must keep all triples of one (query, positive) together (listwise).
    keep_groups: bool = False
    #: Whether :meth:`loss` hands the labels to the model (so ``problem_type`` picks the loss).
    labels_to_model: bool = False
    #: Whether the objective learns from a teacher's scores (stored in the triples, or from the
    #: teacher :meth:`prepare` receives) rather than from the 0/1 labels.
    needs_teacher: bool = False
    #: Training rows: ``pairs`` (query, document, label: :func:`pointwise_pairs`, each
    #: (query, positive) once and each negative once, so a positive with ``n`` negatives trains
    #: at pos:neg 1:n) or ``triples`` (query, positive, negative, label; row ``i`` is triple
    #: ``i``).
    layout: str = "pairs"

    def prepare_model(self, model: Any) -> list[str]:
        """Configure ``model`` for this objective (e.g. ``config.problem_type``); returns notes
        for meta.json."""
        return []

    def prepare(
        self,
        triples: Sequence[Triple],
        documents: Mapping[str, str],
        teacher: PairScorer | None = None,
    ) -> list[str]:
        """Run once before the first update (e.g. teacher scores). ``teacher`` scores pairs
        with the configured teacher model (never the student), or is None when there is none.
        Returns notes for meta.json."""
        return []

    def make_batch(
        self,
        triples: Sequence[Triple],
        documents: Mapping[str, str],
        tokenizer: Any,
        encoding: EncodingConfig,
    ) -> PairBatch:
        """Encode the pointwise rows of ``triples`` (:func:`pointwise_pairs`: each (query,
        positive) once, then each negative) with 1.0/0.0 labels."""
        import torch

        queries, texts, labels = pointwise_pairs(triples, documents)
        features = encode_pairs(tokenizer, queries, texts, encoding)
        return PairBatch(features, torch.tensor(labels, dtype=torch.float32), tuple(triples))

    def pair_label(self, positive: bool) -> Any:
        """The label of a positive/negative pair in the ``pairs`` layout (float 1.0/0.0)."""
        return 1.0 if positive else 0.0

    def train_columns(
        self, triples: Sequence[Triple], documents: Mapping[str, str]
    ) -> dict[str, list[Any]]:
        """The training dataset's columns (see :attr:`layout`), for ``CrossEncoderTrainer``."""
        queries, texts, labels = pointwise_pairs(triples, documents)
        return {
            "query": queries,
            "document": texts,
            "label": [self.pair_label(label == 1.0) for label in labels],
        }

    def triple_rows(self, triples: Sequence[Triple]) -> list[tuple[int, ...]]:
        """The dataset rows (of :meth:`train_columns`) of each triple, in batch order: in the
        ``pairs`` layout its (query, positive) row, shared by the triples of that pair, then its
        negative's row (:func:`pointwise_rows`); in the ``triples`` layout its own row."""
        if self.layout == "pairs":
            return list(pointwise_rows(triples))
        return [(index,) for index in range(len(triples))]

    def pair_counts(self, triples: Sequence[Triple], rows: int) -> tuple[int, int]:
        """(positive, negative) (query, document) pairs the model scores for a batch of
        ``triples`` that trains ``rows`` dataset rows: in the ``pairs`` layout one negative row
        per triple and the rest positives; in the ``triples`` layout each triple's positive and
        negative."""
        if self.layout == "pairs":
            return rows - len(triples), len(triples)
        return len(triples), len(triples)

    def make_loss(self, model: Any) -> Any:
        """The loss module (``nn.Module`` receiving the sentence-transformers ``CrossEncoder``
        ``model``) that ``CrossEncoderTrainer`` calls with the batch's columns and labels."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Name and settings, for meta.json."""
        return {"name": self.name, "num_labels": self.num_labels}
