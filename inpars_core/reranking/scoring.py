"""Load a sequence-classification reranker and score (query, document) pairs in batches.

Length-sorted batches (less padding), device auto (cuda, mps, cpu), fp16/bf16 on GPU, bf16
autocast and dynamic int8 on CPU, and ONNX Runtime (``onnx-fp32``, ``onnx-int8``: fused
attention, int8 per-channel weights; :mod:`inpars_core.reranking.onnx_backend`) on CPU. Scores are
the single logit (or, for two-label heads, the log-odds of label 1), returned in input order.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from inpars_core.errors import ConfigError
from inpars_core.models import model_fingerprint, resolve_model_folder
from inpars_core.reranking.encoding import EncodingConfig, encode_pairs
from inpars_core.reranking.onnx_backend import ONNX_PRECISIONS

logger = logging.getLogger(__name__)

#: Inference precision: torch fp32, bf16 / fp16 autocast, torch dynamic int8, or ONNX Runtime.
Precision = Literal["fp32", "bf16", "fp16", "int8", "onnx-fp32", "onnx-int8"]
#: The names of :data:`Precision` (the one list every option's choices come from).
PRECISIONS: tuple[str, ...] = get_args(Precision)


@dataclass(frozen=True)
class ScoringConfig:
    """Inference settings."""

    batch_size: int = 32
    device: str = "auto"
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision: expected one of {', '.join(PRECISIONS)}, found {self.precision!r}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: expected an integer >= 1, found {self.batch_size}")


def pick_device(device: str = "auto") -> str:
    """cuda, then mps, then cpu, unless one is named."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass
class LoadedReranker:
    """A model, its tokenizer and its fingerprint (:func:`~inpars_core.models.model_fingerprint`
    of its files, plus a hash of any weights initialised at load time, such as a new head)."""

    model: Any
    tokenizer: Any
    name: str
    fingerprint: str
    device: str
    precision: str
    #: The ONNX Runtime scorer (:class:`~inpars_core.reranking.onnx_backend.OnnxScorer`) for the
    #: ``onnx-*`` precisions; None for torch.
    onnx: Any = None

    @property
    def onnx_file(self) -> Path | None:
        """The cached ONNX graph scoring runs on (None for torch precisions)."""
        return self.onnx.path if self.onnx is not None else None

    @property
    def type_vocab_size(self) -> int:
        """Segment vocabulary of the model (2 for BERT/MiniLM, 1 for RoBERTa)."""
        return int(getattr(self.model.config, "type_vocab_size", 1) or 1)


def _initialised_weights_hash(network: Any, missing: Sequence[str]) -> str:
    """sha256 (16 hex) over the weights ``from_pretrained`` initialised afresh (a new head)."""
    state = network.state_dict()
    digest = hashlib.sha256()
    for name in sorted(missing):
        if name in state:
            tensor = state[name].detach().float().cpu().contiguous()
            digest.update(name.encode() + b"\0" + tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def load_reranker(
    model: str,
    config: ScoringConfig = ScoringConfig(),
    num_labels: int | None = None,
    onnx_root: Path | None = None,
) -> LoadedReranker:
    """Load a reranker by hub id, path, or ``minilm`` (the packaged backbone: a new 1-logit
    head is initialised, which is only useful for training).

    The ``onnx-*`` precisions run on the CPU: the graph is exported once per model fingerprint
    and precision into ``onnx_root`` (default: the cache dir, ``$INPARS_CACHE_DIR``) and reused.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model_folder(model)
    kwargs: dict[str, Any] = {}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    elif model == "minilm":
        kwargs["num_labels"] = 1
    tokenizer = AutoTokenizer.from_pretrained(path)
    network, info = AutoModelForSequenceClassification.from_pretrained(
        path, output_loading_info=True, **kwargs
    )
    fingerprint = model_fingerprint(model)
    if info.get("missing_keys"):
        # A freshly initialised head scores differently per seed: fingerprint it too.
        fingerprint += "+init:" + _initialised_weights_hash(network, info["missing_keys"])
    precision = config.precision
    onnx = precision in ONNX_PRECISIONS
    device = "cpu" if onnx and config.device == "auto" else pick_device(config.device)
    if onnx and device != "cpu":
        raise ConfigError(
            f"precision {precision!r} runs on the CPU (ONNX Runtime's CPU provider), got device "
            f"{device!r}; fix: device cpu (or auto), or precision fp32/bf16/fp16 on a GPU"
        )
    if precision == "int8":
        if device != "cpu":
            raise ConfigError("int8 (dynamic quantisation) runs on the CPU only")
        network = torch.ao.quantization.quantize_dynamic(
            network, {torch.nn.Linear}, dtype=torch.qint8
        )
    elif precision == "fp16" and device == "cpu":
        raise ConfigError("fp16 is for GPUs; use bf16 or int8 on the CPU")
    network.to(device).eval()
    scorer = None
    if onnx:
        from inpars_core.reranking.onnx_backend import load_onnx_scorer

        scorer = load_onnx_scorer(network, tokenizer, fingerprint, precision, onnx_root)
    return LoadedReranker(network, tokenizer, model, fingerprint, device, precision, scorer)


def logits_to_scores(logits: Any) -> Any:
    """One score per pair: the logit, or log-odds of label 1 for two-label heads."""
    if logits.shape[-1] == 1:
        return logits[:, 0]
    return logits[:, 1] - logits[:, 0]


def _batches(
    pairs: Sequence[tuple[str, str]], order: Sequence[int], batch_size: int
) -> Iterator[tuple[list[int], list[str], list[str]]]:
    """``(positions, queries, documents)`` of consecutive ``batch_size`` slices of ``order``."""
    for start in range(0, len(order), batch_size):
        index = list(order[start : start + batch_size])
        yield index, [pairs[i][0] for i in index], [pairs[i][1] for i in index]


def score_pairs(
    reranker: LoadedReranker,
    pairs: Sequence[tuple[str, str]],
    encoding: EncodingConfig | None = None,
    config: ScoringConfig | None = None,
) -> list[float]:
    """Scores of (query, document text) pairs, in input order, batched by length."""
    import torch

    encoding = encoding or EncodingConfig()
    config = config or ScoringConfig()
    if not pairs:
        return []
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    scores = [0.0] * len(pairs)
    device = reranker.device
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(reranker.precision)
    if reranker.onnx is not None:
        for index, queries, documents in _batches(pairs, order, config.batch_size):
            features = encode_pairs(
                reranker.tokenizer, queries, documents, encoding, return_tensors="np"
            )
            values = logits_to_scores(reranker.onnx.logits(features)).tolist()
            for i, value in zip(index, values, strict=True):
                scores[i] = float(value)
        return scores
    with torch.inference_mode():
        for index, queries, documents in _batches(pairs, order, config.batch_size):
            batch = encode_pairs(reranker.tokenizer, queries, documents, encoding).to(device)
            if autocast_dtype is not None:
                with torch.autocast(device_type=device.split(":")[0], dtype=autocast_dtype):
                    logits = reranker.model(**batch).logits
            else:
                logits = reranker.model(**batch).logits
            for i, value in zip(index, logits_to_scores(logits.float()).tolist(), strict=True):
                scores[i] = float(value)
    return scores
