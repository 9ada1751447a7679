"""In-process GGUF models through llama-cpp-python (offline default: Gemma 3 270M).

Log-probs are computed for the generated tokens only, from the logits of each sampling step:
llama-cpp-python's own ``logprobs`` needs ``logits_all=True``, which computes logits for every
prompt token too (12-24 s per query with a 262k-word vocabulary instead of ~0.5 s).
"""

from __future__ import annotations

import logging
import time

from inpars_core.generation.base import PACKAGED_GGUF_NAME, Completion, RenderedPrompt

logger = logging.getLogger(__name__)


class LlamaCppBackend:
    """A GGUF model run in this process; the shared prompt prefix is reused between calls."""

    name = "llamacpp"
    max_concurrency = 1

    def __init__(
        self, model: str, *, n_ctx: int = 2048, threads: int | None = None, temperature: float = 0.0
    ) -> None:
        import os

        from llama_cpp import Llama

        from inpars_core.generation.base import resolve_gguf

        self.model = model
        self.temperature = temperature
        path = resolve_gguf(model)
        self._llm = Llama(
            model_path=path, n_ctx=n_ctx, n_threads=threads or os.cpu_count(), verbose=False, seed=0
        )
        logger.info("loaded %s (%s)", model, path)

    def complete(self, prompt: RenderedPrompt, *, seed: int, max_tokens: int) -> Completion:
        """Greedy (or seeded sampling) continuation until a stop string or ``max_tokens``."""
        import llama_cpp
        import numpy as np

        llm = self._llm
        started = time.perf_counter()
        tokens = llm.tokenize(prompt.text.encode("utf-8"), add_bos=True)
        llm.set_seed(seed)
        vocab = llm.n_vocab()
        generated: list[int] = []
        logprobs: list[float] = []
        text = b""
        sampling = {"temp": self.temperature, "top_k": 1 if self.temperature == 0 else 40}
        for token in llm.generate(tokens, **sampling):
            if token == llm.token_eos():
                break
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(vocab,)
            ).astype(np.float64)
            peak = logits.max()
            logprob = float(logits[token] - peak - np.log(np.exp(logits - peak).sum()))
            piece = llm.detokenize([token])
            if any(stop.encode() in text + piece for stop in prompt.stop):
                break
            generated.append(token)
            logprobs.append(logprob)
            text += piece
            if len(generated) >= max_tokens:
                break
        return Completion(
            text=text.decode("utf-8", errors="replace"),
            token_logprobs=tuple(logprobs),
            prompt_tokens=len(tokens),
            completion_tokens=len(generated),
            latency_s=time.perf_counter() - started,
        )


__all__ = ["PACKAGED_GGUF_NAME", "LlamaCppBackend"]
