"""OpenAI-compatible backend: OpenAI itself, vLLM, llama.cpp server, Ollama (via ``base_url``).

Chat Completions for chat models, (legacy) Completions for base models. The API key is read from
an environment variable only, never logged. Retries with exponential backoff and jitter on 429,
5xx, timeouts and dropped connections; 401/404 stop at once with the model and base URL named.
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Literal
from urllib.parse import urlparse

from inpars_core.errors import ConfigError
from inpars_core.generation.base import Completion, GenerationError, RenderedPrompt

logger = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class OpenAIBackend:
    """Completions from any server speaking the OpenAI protocol."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api: Literal["chat", "completions"] = "chat",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        max_retries: int = 6,
        timeout_s: float = 60.0,
        backoff_s: float = 1.0,
        temperature: float = 0.0,
        logprobs: bool = True,
    ) -> None:
        import openai

        if api not in ("chat", "completions"):
            raise ConfigError(f"api must be 'chat' or 'completions', got {api!r}")
        self.model = model
        self.api = api
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.max_concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.temperature = temperature
        self.logprobs = logprobs
        key = os.environ.get(api_key_env)
        if not key:
            if urlparse(self.base_url).hostname in LOCAL_HOSTS:
                key = "not-needed-for-a-local-server"
            else:
                raise ConfigError(
                    f"no API key: set the environment variable {api_key_env} for {self.base_url} "
                    "(keys are read from the environment only, never from files or flags)"
                )
        self._openai = openai
        self._client = openai.OpenAI(
            api_key=key, base_url=self.base_url, max_retries=0, timeout=timeout_s
        )

    def _describe(self) -> str:
        return f"model {self.model!r} at {self.base_url}"

    def complete(self, prompt: RenderedPrompt, *, seed: int, max_tokens: int) -> Completion:
        """One request, retried on transient failures only."""
        openai = self._openai
        transient = (
            openai.RateLimitError,
            openai.InternalServerError,
            openai.APITimeoutError,
            openai.APIConnectionError,
        )
        for attempt in range(self.max_retries + 1):
            started = time.perf_counter()
            try:
                return self._request(prompt, seed, max_tokens, started)
            except openai.AuthenticationError as exc:
                raise GenerationError(
                    f"401 unauthorised for {self._describe()}: check the API key variable"
                ) from exc
            except openai.NotFoundError as exc:
                raise GenerationError(
                    f"404 for {self._describe()}: the model or endpoint does not exist there; "
                    f"check --model and --base-url (and --api {self.api})"
                ) from exc
            except openai.APIStatusError as exc:
                if isinstance(exc, transient) or exc.status_code >= 500:
                    self._wait(attempt, f"HTTP {exc.status_code}")
                    continue
                raise GenerationError(
                    f"HTTP {exc.status_code} from {self._describe()}: {exc.message}"
                ) from exc
            except transient as exc:
                self._wait(attempt, type(exc).__name__)
                continue
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, what: str) -> None:
        if attempt >= self.max_retries:
            raise GenerationError(
                f"{what} from {self._describe()} after {self.max_retries + 1} attempts; "
                "try again later or lower --concurrency"
            )
        delay = self.backoff_s * (2**attempt) * (0.5 + random.random())  # full jitter
        logger.warning("%s from %s; retrying in %.2f s", what, self._describe(), delay)
        time.sleep(delay)

    def _request(
        self, prompt: RenderedPrompt, seed: int, max_tokens: int, started: float
    ) -> Completion:
        common = {
            "model": self.model,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "seed": seed,
            "stop": list(prompt.stop) or None,
        }
        if self.api == "chat":
            response = self._client.chat.completions.create(
                messages=list(prompt.messages) or [{"role": "user", "content": prompt.text}],
                logprobs=self.logprobs,
                **common,
            )
            choice = response.choices[0]
            text = choice.message.content or ""
            content = getattr(choice.logprobs, "content", None)
            logprobs = tuple(float(t.logprob) for t in content) if content else None
        else:
            response = self._client.completions.create(
                prompt=prompt.text, logprobs=1 if self.logprobs else None, **common
            )
            choice = response.choices[0]
            text = choice.text or ""
            token_logprobs = getattr(choice.logprobs, "token_logprobs", None)
            logprobs = (
                tuple(float(v) for v in token_logprobs if v is not None) if token_logprobs else None
            )
        usage = response.usage
        return Completion(
            text=text,
            token_logprobs=logprobs,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_s=time.perf_counter() - started,
            extra={"finish_reason": choice.finish_reason},
        )
