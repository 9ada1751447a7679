"""Query generation (issue 15): seconds per query of InPars Lab's llama.cpp backend
(``complete_many``: shared few-shot prefix evaluated once, several documents per decode step)
against plain llama-cpp-python, one ``Llama.create_completion`` per document (what a user would
write; it reuses the prompt prefix of the previous call by itself), same GGUF, same threads.

Both run in this process, interleaved chunk by chunk (the reference first in even chunks, ours
first in odd ones) after a warm-up chunk that is not timed. Quality: our greedy text and token
log-probs against our own plain path (one fresh prompt at a time: ``reset`` then ``complete``),
and our text against ``create_completion``'s.

Run: ``.venv/bin/python benchmarks/bench_generate.py [--quick]`` (JSON lines).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

#: Documents measured (the issue's size) and in the quick smoke run.
DOCUMENTS, QUICK_DOCUMENTS = 40, 6
MAX_TOKENS = 32
TARGET_RATIO = 2.0
LOGPROB_TOLERANCE = 1e-3


def run(quick: bool = False) -> list[dict]:
    """One row: ours vs ``create_completion`` in seconds per query (see the module doc)."""
    from llama_cpp import Llama

    from inpars_core.datasets import resolve_dataset
    from inpars_core.generation.base import resolve_gguf
    from inpars_core.generation.llamacpp_backend import LlamaCppBackend
    from inpars_core.generation.prompts import inpars_prompt

    count = QUICK_DOCUMENTS if quick else DOCUMENTS
    threads = os.cpu_count() or 1
    dataset = resolve_dataset("scifact")
    ids = random.Random(0).sample(sorted(dataset.corpus), count + 3)
    prompt = inpars_prompt()
    prompts = [prompt.render(dataset.corpus[d], chat=False) for d in ids]
    warmup, prompts = prompts[:3], prompts[3:]
    ours = LlamaCppBackend("gemma-3-270m", threads=threads)
    reference = Llama(
        model_path=resolve_gguf("gemma-3-270m"),
        n_ctx=2048,
        n_threads=threads,
        verbose=False,
        seed=0,
    )

    def reference_text(rendered) -> str:
        out = reference.create_completion(
            rendered.text, max_tokens=MAX_TOKENS, temperature=0, stop=list(rendered.stop)
        )
        return out["choices"][0]["text"]

    for rendered in warmup:
        reference_text(rendered)
    ours.complete_many(warmup, seed=0, max_tokens=MAX_TOKENS)
    chunk = ours.batch_size * 2
    seconds = {"ours": 0.0, "reference": 0.0}
    our_out, ref_out = [], []
    for number, start in enumerate(range(0, len(prompts), chunk)):
        part = prompts[start : start + chunk]
        for side in ("reference", "ours") if number % 2 == 0 else ("ours", "reference"):
            started = time.perf_counter()
            if side == "ours":
                our_out += ours.complete_many(part, seed=0, max_tokens=MAX_TOKENS)
            else:
                ref_out += [reference_text(r) for r in part]
            seconds[side] += time.perf_counter() - started
    plain = []
    for rendered in prompts:
        ours.reset()
        plain.append(ours.complete(rendered, seed=0, max_tokens=MAX_TOKENS))
    identical = sum(a.text == b.text for a, b in zip(our_out, plain, strict=True))
    deltas = [
        abs(x - y)
        for a, b in zip(our_out, plain, strict=True)
        if a.text == b.text
        for x, y in zip(a.token_logprobs, b.token_logprobs, strict=True)
    ]
    worst = max(deltas, default=0.0)
    same_as_reference = sum(a.text == b for a, b in zip(our_out, ref_out, strict=True))
    ours_s, reference_s = seconds["ours"] / count, seconds["reference"] / count
    ratio = reference_s / ours_s
    quality_ok = identical == count and worst <= LOGPROB_TOLERANCE
    return [
        {
            "path": "generate",
            "ours": f"llamacpp complete_many (batch {ours.batch_size}) {ours_s:.3f} s/query",
            "reference": f"Llama.create_completion per document {reference_s:.3f} s/query",
            "ratio": round(ratio, 3),
            "target": f">= {TARGET_RATIO}x fewer s/query, identical greedy text, "
            f"log-probs within {LOGPROB_TOLERANCE}",
            "met": bool(ratio >= TARGET_RATIO and quality_ok),
            "quality": (
                f"{count} SciFact documents: text identical to our one-at-a-time greedy path "
                f"{identical}/{count}, max |Δ log-prob| {worst:.2e} (<= {LOGPROB_TOLERANCE}); "
                f"text identical to create_completion {same_as_reference}/{count}"
            ),
            "details": {
                "documents": count,
                "threads": threads,
                "batch_size": ours.batch_size,
                "max_tokens": MAX_TOKENS,
                "ours_s": round(seconds["ours"], 3),
                "reference_s": round(seconds["reference"], 3),
                "completion_tokens": sum(c.completion_tokens for c in our_out),
                "prompt_tokens": sum(c.prompt_tokens for c in our_out),
                "identical_to_plain": identical,
                "identical_to_create_completion": same_as_reference,
                "max_abs_logprob_delta": worst,
            },
        }
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv[1:]):
        print(json.dumps(row, ensure_ascii=False))
