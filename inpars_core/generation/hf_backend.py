"""Any Hugging Face causal LM (``from_pretrained`` id or path), GPU with fp16/bf16 when present.

``--model gemma-3-270m`` loads the packaged GGUF through transformers' ``gguf_file=`` (needs the
``gguf`` and ``accelerate`` packages), which makes this backend testable offline.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from inpars_core.generation.base import PACKAGED_GGUF_NAME, Completion, RenderedPrompt, resolve_gguf

logger = logging.getLogger(__name__)


class HFBackend:
    """Greedy generation with transformers; log-probs of the generated tokens."""

    name = "hf"
    max_concurrency = 1

    def __init__(
        self, model: str, *, device: str = "auto", gguf_file: str | None = None, dtype: str = "auto"
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model
        if device == "auto":
            device = (
                "cuda"
                if torch.cuda.is_available()
                else ("mps" if torch.backends.mps.is_available() else "cpu")
            )
        self.device = device
        if dtype == "auto":
            torch_dtype = (
                torch.bfloat16
                if device == "cuda" and torch.cuda.is_bf16_supported()
                else torch.float16
                if device in ("cuda", "mps")
                else torch.float32
            )
        else:
            torch_dtype = getattr(torch, dtype)
        source = model
        if model == PACKAGED_GGUF_NAME or model.endswith(".gguf"):
            path = Path(resolve_gguf(model))
            source, gguf_file = str(path.parent), path.name
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        self._tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        self._model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **kwargs)
        self._model.to(device).eval()
        self._torch = torch
        logger.info("loaded %s on %s (%s)", model, device, torch_dtype)

    def complete(self, prompt: RenderedPrompt, *, seed: int, max_tokens: int) -> Completion:
        """Greedy continuation, cut at the first stop string."""
        torch = self._torch
        started = time.perf_counter()
        torch.manual_seed(seed)
        encoded = self._tokenizer(prompt.text, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            output = self._model.generate(
                **encoded,
                max_new_tokens=max_tokens,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
                stop_strings=list(prompt.stop) or None,
                tokenizer=self._tokenizer,
                pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id,
            )
            scores = self._model.compute_transition_scores(
                output.sequences, output.scores, normalize_logits=True
            )[0]
        new_tokens = output.sequences[0, encoded["input_ids"].shape[1] :].tolist()
        kept: list[int] = []
        logprobs: list[float] = []
        text = ""
        for token, logprob in zip(new_tokens, scores.tolist(), strict=False):
            if token == self._tokenizer.eos_token_id:
                break
            piece = self._tokenizer.decode([*kept, token], skip_special_tokens=True)
            if any(stop in piece for stop in prompt.stop):
                break
            kept.append(token)
            logprobs.append(float(logprob))
            text = piece
        return Completion(
            text=text,
            token_logprobs=tuple(logprobs),
            prompt_tokens=int(encoded["input_ids"].shape[1]),
            completion_tokens=len(kept),
            latency_s=time.perf_counter() - started,
        )
