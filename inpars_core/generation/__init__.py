"""Synthetic query generation: prompts, LLM backends (openai, llamacpp, hf), cost, resume."""

from __future__ import annotations

from inpars_core.generation.base import BACKENDS, Completion, LLMBackend, get_backend

__all__ = ["BACKENDS", "Completion", "LLMBackend", "get_backend"]
