"""Names shared by the summary writer and its readers (the dashboard): no imports, no logic."""

from __future__ import annotations

#: Training facts of a fine-tuned row, copied from its finetune stage's counts: the steps and
#: dev values, and the (query, document) pairs trained on (positives, negatives, their ratio
#: such as "1:5", and the pairs of each epoch).
TRAINING_FIELDS = (
    "best_step",
    "kept_step",
    "final_step",
    "step0_dev_ndcg10",
    "best_dev_ndcg10",
    "best_at_step0",
    "positives",
    "negatives",
    "pos_neg_ratio",
    "pairs_per_epoch",
)

#: The stages that train a row's cross-encoder on synthetic queries, in precedence order: a
#: fine-tuning of the base reranker (``finetune``), or, for a label-free variant
#: (``base_reranker.source = "synthetic"``), the backbone trained on the consistency-checked
#: queries (``consistency-train``) or on all kept queries (``synthetic-base-train``). A row
#: whose lineage holds several names the first (a consistency-checked row also lists the
#: model that checked its queries).
SYNTHETIC_TRAINING_STAGES = ("finetune", "consistency-train", "synthetic-base-train")

#: The train stage's options a ``[base_reranker]`` or ``[finetune]`` section sets, under the
#: same names (a label-free variant's model takes them from ``[base_reranker]``).
TRAINING_OPTIONS = (
    "objective",
    "lr",
    "epochs",
    "max_steps",
    "batch_size",
    "max_length",
    "bf16",
    "seed",
)

#: What the row kinds and the interpolation mark mean (summary.md and the Overview page).
KINDS_TEXT = (
    "Kinds: bm25; zero-shot = never trained on this collection; supervised = trained on its "
    "train qrels; synthetic = fine-tuned on generated queries. `⊕ w·BM25` = (1 − w)·model + "
    "w·BM25 (min-max per query); the pure model's row stands beside it."
)
