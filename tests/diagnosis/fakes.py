"""Hand-made experiment folders for the diagnosis checks: only the files a check reads
(``experiment.json``, ``summary.json``, ``per_query.tsv``, stage folders with ``meta.json`` and
JSON-lines logs), written the way the pipeline writes them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

#: The value that deletes a key in :func:`merged` (``None`` is a value some metas record).
DROP = object()


def merged(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """``base`` with ``override`` merged in, nested dicts key by key; :data:`DROP` deletes."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if value is DROP:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class FakeExperiment:
    """An experiment folder under construction: add stages and rows, then :meth:`write`."""

    def __init__(self, root: Path, name: str = "fake", config: dict[str, Any] | None = None):
        self.dir = Path(root) / name
        self.name = name
        self.config: dict[str, Any] = config or {}
        self.rows: list[dict[str, Any]] = []
        self.per_query: list[tuple[int, str, str, float]] = []
        self.dataset: dict[str, Any] = {"name": "tiny", "path": None}
        self.test_query_ids: list[str] = []

    def stage(
        self,
        stage: str,
        key: str,
        meta: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
    ) -> str:
        """Write ``stages/<stage>/<key>/`` with ``meta.json`` (none when ``meta`` is None) and
        ``files`` (see :meth:`stage_files`); the folder relative to the experiment."""
        relative = f"stages/{stage}/{key}"
        (self.dir / relative).mkdir(parents=True, exist_ok=True)
        if meta is not None:
            self.stage_files(relative, {"meta.json": meta})
        self.stage_files(relative, files or {})
        return relative

    def stage_files(self, relative: str, files: dict[str, Any]) -> None:
        """Write ``files`` into a stage folder: a list as JSON lines, a dict as JSON, a str
        as text."""
        folder = self.dir / relative
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, list):
                text = "".join(json.dumps(record) + "\n" for record in content)
            elif isinstance(content, dict):
                text = json.dumps(content, indent=1)
            else:
                text = str(content)
            path.write_text(text, encoding="utf-8")

    def add_row(self, system: str, **fields: Any) -> dict[str, Any]:
        """A summary row (``row`` index, ``measures`` and ``stages`` default empty)."""
        row = {"system": system, "row": len(self.rows), "measures": {}, "stages": {}, **fields}
        self.rows.append(row)
        return row

    def add_per_query(self, row: dict[str, Any], values: dict[str, float], measure="nDCG@10"):
        """Per-query values of ``row`` (block ``all``)."""
        for query_id, value in values.items():
            self.per_query.append((int(row["row"]), measure, query_id, value))

    def write(self) -> Path:
        """Write ``experiment.json``, ``summary.json`` and ``per_query.tsv``; the folder."""
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = {
            "experiment": self.name,
            "config": self.config,
            "dataset": self.dataset,
            "test_query_ids": self.test_query_ids,
            "systems": self.rows,
        }
        summary = {
            "experiment": self.name,
            "dataset": self.dataset["name"],
            "dataset_path": self.dataset["path"],
            "test_query_ids": self.test_query_ids,
            "test_queries": len(self.test_query_ids),
            "rows": self.rows,
        }
        (self.dir / "experiment.json").write_text(json.dumps(manifest, indent=1), "utf-8")
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=1), "utf-8")
        lines = ["block\trow\tmeasure\tquery_id\tvalue"]
        lines += [f"all\t{r}\t{m}\t{q}\t{v}" for r, m, q, v in self.per_query]
        (self.dir / "per_query.tsv").write_text("\n".join(lines) + "\n", "utf-8")
        return self.dir


#: A finetune stage's meta.json as the train stage writes it (bce, pair encoding, max_length
#: 128, fp32), with what the checks read.
FINETUNE_META: dict[str, Any] = {
    "stage": "train",
    "step": "finetune",
    "base_model": "stages/base-train/base0/model",
    "config": {
        "objective": "bce",
        "pair_encoding": "pair",
        "max_length": 128,
        "bf16": False,
        "lr": 2e-5,
        "dev_depth": 10,
    },
    "keys": {"base": "base0", "dev": "dev0", "triples": "tri0"},
    "inputs": {"dev_query_ids": ["d1", "d2"]},
    "counts": {
        "first_loss": 0.69,
        "kept_step": 100,
        "step0_dev_ndcg10": 0.70,
        "best_dev_ndcg10": 0.72,
        "dev_bm25_weight": 0.0,
        "notes": [],
    },
    "objective": {"name": "bce", "num_labels": 1, "loss": "BinaryCrossEntropyLoss"},
    "results": {"problem_type": None, "num_labels": 1, "final_param_drift": 0.01},
    "encoding": {
        "pair_encoding": "pair",
        "max_length": 128,
        "type_vocab_size": 2,
        "pairs_checked": 64,
        "type1_share": 0.8,
        "cls_per_pair": 1.0,
        "all_zero_types": False,
        "problems": [],
    },
}
#: A cross-encoder rerank stage's meta.json (pair encoding, max_length 128, fp32, eval mode).
RERANK_META: dict[str, Any] = {
    "stage": "rerank",
    "config": {"pair_encoding": "pair", "max_length": 128, "precision": "fp32", "depth": 20},
    "encoding": {
        "pair_encoding": "pair",
        "max_length": 128,
        "type_vocab_size": 2,
        "pairs_checked": 64,
        "type1_share": 0.8,
        "cls_per_pair": 1.0,
        "all_zero_types": False,
        "problems": [],
    },
    "training_mode": False,
}
#: The base-train model's config.json: a trained 1-logit head.
HEAD_CONFIG = {
    "architectures": ["BertForSequenceClassification"],
    "id2label": {"0": "LABEL_0"},
    "type_vocab_size": 2,
}
#: dev evaluations of a sound run: the probe logit scale kept.
EVAL_LOG = [
    {"step": 0, "nDCG@10": 0.70, "probe_mean": -0.2, "probe_std": 0.44},
    {"step": 100, "nDCG@10": 0.72, "probe_mean": -0.5, "probe_std": 0.90},
]
#: losses of a sound run.
TRAIN_LOG = [{"step": s, "loss": 0.7 - 0.002 * s, "param_drift": 1e-4 * s} for s in range(1, 101)]


def fine_tuned_experiment(
    root: Path,
    *,
    variant: str = "v",
    finetune: dict[str, Any] | None = None,
    rerank: dict[str, Any] | None = None,
    eval_log: list[dict[str, Any]] | None = None,
    train_log: list[dict[str, Any]] | None = None,
    tuned_ndcg: float = 0.65,
    base_ndcg: float = 0.60,
    base_train: dict[str, Any] | None = HEAD_CONFIG,
    config: dict[str, Any] | None = None,
) -> FakeExperiment:
    """An experiment with a base cross-encoder row (trained here: ``base-train`` with
    ``base_train`` as its model's config.json, or none when None) and one fine-tuned variant
    row, both reranking BM25's top 20; the finetune and rerank metas are
    :data:`FINETUNE_META` / :data:`RERANK_META` merged with ``finetune`` / ``rerank``. Not
    written yet: add to it, then call :meth:`FakeExperiment.write`."""
    fake = FakeExperiment(root, config=config or {"finetune": {"objective": "bce"}})
    bm25 = fake.stage("bm25-test", "bm0", {"stage": "retrieve"})
    stages = {"bm25-test": bm25}
    if base_train is not None:
        stages["base-train"] = fake.stage("base-train", "base0", {"stage": "train"})
        fake.stage_files(stages["base-train"], {"model/config.json": base_train})
    base_rerank = fake.stage("rerank", "rr-base", merged(RERANK_META, rerank))
    fake.add_row(
        "base", kind="supervised", family="cross-encoder", baseline=False, depth=20,
        encoding="pair", test_queries=3, bm25_weight=0.0, measures={"nDCG@10": base_ndcg},
        stages={**stages, "rerank": base_rerank},
    )  # fmt: skip
    logs = {
        "eval_log.jsonl": EVAL_LOG if eval_log is None else eval_log,
        "train_log.jsonl": TRAIN_LOG if train_log is None else train_log,
    }
    tune = fake.stage("finetune", f"ft-{variant}", merged(FINETUNE_META, finetune), logs)
    fake.stage_files(tune, {"model/config.json": {**HEAD_CONFIG}})
    tuned_rerank = fake.stage("rerank", f"rr-{variant}", merged(RERANK_META, rerank))
    fake.add_row(
        f"{variant}: fine-tuned", kind="synthetic", family="cross-encoder", variant=variant,
        variants=[variant], depth=20, encoding="pair", test_queries=3, bm25_weight=0.0,
        measures={"nDCG@10": tuned_ndcg}, compared_with="base",
        stages={**stages, "finetune": tune, "rerank": tuned_rerank},
    )  # fmt: skip
    return fake
