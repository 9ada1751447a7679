"""In-process GGUF models through llama-cpp-python (offline default: Gemma 3 270M).

Log-probs are computed for the generated tokens only, from the logits of each sampling step:
llama-cpp-python's own ``logprobs`` needs ``logits_all=True``, which computes logits for every
prompt token too (12-24 s per query with a 262k-word vocabulary instead of ~0.5 s).

Two paths write greedy text:

- :meth:`LlamaCppBackend.complete`, one prompt at a time through ``Llama.generate`` (its prefix
  match reuses the KV cache of the tokens a prompt shares with the previous one);
- :meth:`LlamaCppBackend.complete_many`, several prompts on a second llama.cpp context of the
  same model with one KV stream per sequence: the tokens every prompt shares (the few-shot
  examples) are evaluated once into sequence 0 and copied to each document's sequence, and each
  generation step decodes the next token of up to 3 documents in one ``llama_decode`` (the
  262k-word output layer, most of a step's work, is read once for all of them).

The CPU kernels of llama.cpp multiply rows in groups of 4 (repacked Q4_K), and a row's result
depends on its place in such a group: logits then differ by up to ~0.9 from a one-row decode,
enough to change greedy text. ``complete_many`` therefore keeps every row where a fresh
whole-prompt decode puts it (shared prefix cut at a multiple of 4, prompt chunks cut at
multiples of ``n_ubatch``, steps of at most 3 rows, which take the one-row kernel): its text and
log-probs are bit-identical to a fresh one-prompt decode (:meth:`reset` then :meth:`complete`).
``Llama.generate``'s own prefix reuse does not align the prefix, so :meth:`complete` after other
prompts can differ from that in the last digits (measured: up to 0.07 in a log-prob).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from inpars_core.generation.base import (
    PACKAGED_GGUF_NAME,
    Completion,
    GenerationError,
    RenderedPrompt,
)

logger = logging.getLogger(__name__)

#: Documents decoded together by :meth:`LlamaCppBackend.complete_many` (the generation stage
#: hands this many at a time). Measured on 2 cores: see ``benchmarks/bench_generate.py``.
DEFAULT_PARALLEL = 3
#: Rows the CPU kernels of llama.cpp multiply together: a token's result depends on its place
#: in such a group (the repacked Q4_K kernels), and steps of fewer rows give the one-row result.
_ROW_GROUP = 4
#: KV cells of each sequence are allocated in multiples of this many tokens.
_CTX_STEP = 256


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _logprob(logits: Any, token: int) -> float:
    """log softmax(logits)[token] in float64 (the same arithmetic on both paths)."""
    import numpy as np

    peak = logits.max()
    return float(logits[token] - peak - np.log(np.exp(logits - peak).sum()))


class _Step:
    """What one generated token does to a completion: appended, or the completion ends."""

    def __init__(self, prompt: RenderedPrompt, max_tokens: int) -> None:
        self.stop = tuple(s.encode() for s in prompt.stop)
        self.max_tokens = max_tokens
        self.text = b""
        self.tokens: list[int] = []
        self.logprobs: list[float] = []
        self.done = False

    def feed(self, token: int, logprob: float, piece: bytes, eos: int) -> None:
        """Take ``token`` (the rule of :meth:`LlamaCppBackend.complete`): end of text, a stop
        string in the text so far plus the piece (the piece is dropped), or ``max_tokens``."""
        if token == eos or any(stop in self.text + piece for stop in self.stop):
            self.done = True
            return
        self.tokens.append(token)
        self.logprobs.append(logprob)
        self.text += piece
        if len(self.tokens) >= self.max_tokens:
            self.done = True


class LlamaCppBackend:
    """A GGUF model run in this process; the shared prompt prefix is reused between calls."""

    name = "llamacpp"
    max_concurrency = 1

    def __init__(
        self,
        model: str,
        *,
        n_ctx: int = 2048,
        threads: int | None = None,
        temperature: float = 0.0,
        parallel: int = DEFAULT_PARALLEL,
    ) -> None:
        import os

        from llama_cpp import Llama

        from inpars_core.generation.base import resolve_gguf

        self.model = model
        self.temperature = temperature
        #: Prompts :meth:`complete_many` decodes together (the stage's batch size).
        self.batch_size = max(1, parallel)
        self._threads = threads or os.cpu_count() or 1
        path = resolve_gguf(model)
        self._llm = Llama(
            model_path=path, n_ctx=n_ctx, n_threads=self._threads, verbose=False, seed=0
        )
        self._batched: Any = None  # the multi-sequence context, built on first use
        self._batched_ctx_seq = 0
        self._prefix: list[int] = []  # tokens held by sequence 0 of that context
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
        step = _Step(prompt, max_tokens)
        sampling = {"temp": self.temperature, "top_k": 1 if self.temperature == 0 else 40}
        for token in llm.generate(tokens, **sampling):
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(vocab,)
            ).astype(np.float64)
            step.feed(token, _logprob(logits, token), llm.detokenize([token]), llm.token_eos())
            if step.done:
                break
        return self._completion(step, len(tokens), time.perf_counter() - started)

    def reset(self) -> None:
        """Forget the cached prompt: the next :meth:`complete` evaluates its whole prompt."""
        self._llm.reset()
        self._llm._ctx.kv_cache_clear()

    @staticmethod
    def _completion(step: _Step, prompt_tokens: int, seconds: float) -> Completion:
        return Completion(
            text=step.text.decode("utf-8", errors="replace"),
            token_logprobs=tuple(step.logprobs),
            prompt_tokens=prompt_tokens,
            completion_tokens=len(step.tokens),
            latency_s=seconds,
        )

    def complete_many(
        self, prompts: Sequence[RenderedPrompt], *, seed: int, max_tokens: int
    ) -> list[Completion]:
        """Greedy completions of ``prompts`` decoded together (at most :attr:`batch_size` at
        once), bit-identical to :meth:`complete` of each prompt after :meth:`reset`. Each
        completion's ``latency_s`` is its share of the batch's wall time. With a temperature,
        one at a time through :meth:`complete`."""
        if self.temperature != 0:
            return [self.complete(p, seed=seed, max_tokens=max_tokens) for p in prompts]
        results: list[Completion] = []
        for start in range(0, len(prompts), self.batch_size):
            results.extend(self._greedy_batch(prompts[start : start + self.batch_size], max_tokens))
        return results

    # -- the multi-sequence path -------------------------------------------------------------

    def _context(self, n_ctx_seq: int) -> Any:
        """The multi-sequence context (one KV stream of ``n_ctx_seq`` cells per sequence:
        sequence 0 holds the shared prefix, 1..batch_size the documents), rebuilt larger when a
        prompt needs more cells."""
        import llama_cpp
        from llama_cpp import _internals

        if self._batched is not None and n_ctx_seq <= self._batched_ctx_seq:
            return self._batched
        if self._batched is not None:
            self._batched.close()
        n_ctx_seq = -(-n_ctx_seq // _CTX_STEP) * _CTX_STEP
        n_seq = self.batch_size + 1
        params = llama_cpp.llama_context_params.from_buffer_copy(self._llm.context_params)
        params.n_seq_max = n_seq
        params.n_ctx = n_ctx_seq * n_seq
        params.kv_unified = False  # attention reads each sequence's own cells only
        params.n_threads = params.n_threads_batch = self._threads
        self._batched = _internals.LlamaContext(
            model=self._llm._model, params=params, verbose=False
        )
        self._batched_ctx_seq = n_ctx_seq
        self._prefix = []
        logger.debug("llama.cpp context: %d sequences x %d cells", n_seq, n_ctx_seq)
        return self._batched

    def _decode(self, ctx: Any, entries: list[tuple[int, int, int, bool]]) -> list[Any]:
        """Decode ``(token, position, sequence, wants_logits)`` entries in ``n_batch`` chunks;
        the float64 logits of each entry that wants them, in order."""
        import llama_cpp
        import numpy as np

        n_batch = ctx.params.n_batch
        vocab = self._llm.n_vocab()
        out: list[Any] = []
        batch = llama_cpp.llama_batch_init(min(n_batch, len(entries)), 0, 1)
        try:
            for start in range(0, len(entries), n_batch):
                chunk = entries[start : start + n_batch]
                batch.n_tokens = len(chunk)
                rows = []
                for i, (token, pos, seq, logits) in enumerate(chunk):
                    batch.token[i] = token
                    batch.pos[i] = pos
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = seq
                    batch.logits[i] = logits
                    if logits:
                        rows.append(i)
                code = llama_cpp.llama_decode(ctx.ctx, batch)
                if code != 0:
                    raise GenerationError(
                        f"llama_decode returned {code} for {len(chunk)} tokens of "
                        f"{self.batch_size} sequences (expected 0); lower the batch size "
                        "(LlamaCppBackend(parallel=...)) or use complete() one prompt at a time"
                    )
                for i in rows:
                    pointer = llama_cpp.llama_get_logits_ith(ctx.ctx, i)
                    out.append(np.ctypeslib.as_array(pointer, shape=(vocab,)).astype(np.float64))
        finally:
            llama_cpp.llama_batch_free(batch)
        return out

    def _hold_prefix(self, ctx: Any, tokens: list[int]) -> None:
        """Make sequence 0 hold exactly ``tokens`` (keeping what it shares with them)."""
        import llama_cpp

        keep = _common_prefix(self._prefix, tokens)
        keep -= keep % _ROW_GROUP
        if keep < len(self._prefix):
            llama_cpp.llama_memory_seq_rm(ctx.memory, 0, keep, -1)
        if keep < len(tokens):
            self._decode_prompt(ctx, tokens, keep, 0)
        self._prefix = list(tokens)

    def _greedy_batch(self, prompts: Sequence[RenderedPrompt], max_tokens: int) -> list[Completion]:
        import llama_cpp
        import numpy as np

        llm = self._llm
        started = time.perf_counter()
        prompt_tokens = [llm.tokenize(p.text.encode("utf-8"), add_bos=True) for p in prompts]
        longest = max(len(t) for t in prompt_tokens)
        ctx = self._context(longest + max_tokens)
        if len(prompt_tokens) > 1:
            shared = min(_common_prefix(prompt_tokens[0], t) for t in prompt_tokens[1:])
        else:
            shared = _common_prefix(self._prefix, prompt_tokens[0])
        # >= 1 token of each prompt left to decode; a multiple of _ROW_GROUP so that every
        # later row falls in the same kernel row group as in a whole-prompt decode
        shared = min(shared, min(len(t) for t in prompt_tokens) - 1)
        shared -= shared % _ROW_GROUP
        self._hold_prefix(ctx, prompt_tokens[0][:shared])
        logits = []
        for number, tokens in enumerate(prompt_tokens, start=1):
            llama_cpp.llama_memory_seq_rm(ctx.memory, number, -1, -1)
            if shared:
                llama_cpp.llama_memory_seq_cp(ctx.memory, 0, number, -1, -1)
            logits += self._decode_prompt(ctx, tokens, shared, number)
        steps = [_Step(p, max_tokens) for p in prompts]
        position = [len(t) for t in prompt_tokens]
        active = list(range(len(prompts)))
        eos = llm.token_eos()
        while active:
            following = []
            for row, i in zip(logits, active, strict=True):
                token = int(np.argmax(row))
                steps[i].feed(token, _logprob(row, token), llm.detokenize([token]), eos)
                if not steps[i].done:
                    following.append((token, position[i], i + 1, True))
                    position[i] += 1
            active = [seq - 1 for _, _, seq, _ in following]
            logits = []
            for start in range(0, len(following), _ROW_GROUP - 1):
                logits += self._decode(ctx, following[start : start + _ROW_GROUP - 1])
        for number in range(1, len(prompts) + 1):
            llama_cpp.llama_memory_seq_rm(ctx.memory, number, -1, -1)
        share = (time.perf_counter() - started) / len(prompts)
        return [
            self._completion(step, len(tokens), share)
            for step, tokens in zip(steps, prompt_tokens, strict=True)
        ]

    def _decode_prompt(self, ctx: Any, tokens: list[int], start: int, seq: int) -> list[Any]:
        """Decode ``tokens[start:]`` into ``seq`` cut where a whole-prompt decode cuts its
        micro-batches (multiples of ``n_ubatch``); the logits of the last token."""
        ubatch = ctx.params.n_ubatch
        out: list[Any] = []
        last = len(tokens) - 1
        while start <= last:
            stop = min(len(tokens), (start // ubatch + 1) * ubatch)
            out = self._decode(ctx, [(tokens[p], p, seq, p == last) for p in range(start, stop)])
            start = stop
        return out


__all__ = ["DEFAULT_PARALLEL", "PACKAGED_GGUF_NAME", "LlamaCppBackend"]
