"""OpenAI-compatible backend: OpenAI itself, vLLM, llama.cpp server, Ollama (via ``base_url``).

Chat Completions for chat models, (legacy) Completions for base models. The API key is read from
an environment variable only, never logged. Retries are the openai client's own (``max_retries``:
exponential backoff with jitter on 408/409/429/5xx, timeouts and dropped connections, honouring
``Retry-After``); 401/404 stop at once with the model and base URL named, and so does a refused
connection (nothing listens at the base URL: retrying would only delay the error).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Literal
from urllib.parse import urlparse

from inpars_core.errors import ConfigError
from inpars_core.generation.base import Completion, GenerationError, RenderedPrompt

logger = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class RefusedConnectionError(Exception):
    """Nothing listens at the address: raised by the transport of :func:`_http_client`.

    Not an ``httpx2.RequestError`` nor an ``openai.OpenAIError``, so the openai client passes it
    through without retrying."""


def _refused(exc: BaseException) -> bool:
    """Whether ``ConnectionRefusedError`` is in the cause chain of ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionRefusedError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _http_client(openai: Any, timeout_s: float, concurrency: int) -> Any:
    """The openai client's default HTTP client, except that a refused connection raises
    :class:`RefusedConnectionError` (final) instead of a connection error (retried)."""
    import httpx2

    class RefusedIsFinal(httpx2.HTTPTransport):
        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            try:
                return super().handle_request(request)
            except httpx2.ConnectError as exc:
                if _refused(exc):
                    raise RefusedConnectionError(str(request.url)) from exc
                raise

    limits = httpx2.Limits(
        max_connections=max(100, concurrency), max_keepalive_connections=max(20, concurrency)
    )
    return openai.DefaultHttpxClient(timeout=timeout_s, transport=RefusedIsFinal(limits=limits))


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
        temperature: float = 0.0,
        logprobs: bool = True,
    ) -> None:
        import openai

        if api not in ("chat", "completions"):
            raise ConfigError(f"api must be 'chat' or 'completions', got {api!r}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.model = model
        self.api = api
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.max_concurrency = max(1, concurrency)
        self.max_retries = max_retries
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
            api_key=key,
            base_url=self.base_url,
            max_retries=max_retries,
            timeout=timeout_s,
            http_client=_http_client(openai, timeout_s, self.max_concurrency),
        )

    def _describe(self) -> str:
        return f"model {self.model!r} at {self.base_url}"

    def complete(self, prompt: RenderedPrompt, *, seed: int, max_tokens: int) -> Completion:
        """One request; the openai client retries transient failures (429, 5xx, timeouts,
        dropped connections) up to ``max_retries`` times, honouring ``Retry-After``."""
        openai = self._openai
        started = time.perf_counter()
        try:
            return self._request(prompt, seed, max_tokens, started)
        except RefusedConnectionError as exc:
            raise GenerationError(
                f"connection refused at {self.base_url} (expected a server for model "
                f"{self.model!r} there, found nothing listening): start the server or fix "
                "--base-url"
            ) from exc
        except openai.AuthenticationError as exc:
            raise GenerationError(
                f"401 unauthorised for {self._describe()}: check the API key variable"
            ) from exc
        except openai.NotFoundError as exc:
            raise GenerationError(
                f"404 for {self._describe()}: the model or endpoint does not exist there; "
                f"check --model and --base-url (and --api {self.api})"
            ) from exc
        except (
            openai.RateLimitError,
            openai.InternalServerError,
            openai.APITimeoutError,
            openai.APIConnectionError,
        ) as exc:
            what = f"HTTP {exc.status_code}" if isinstance(exc, openai.APIStatusError) else ""
            raise GenerationError(
                f"{what or type(exc).__name__} from {self._describe()} after "
                f"{self.max_retries + 1} attempts; try again later or lower --concurrency"
            ) from exc
        except openai.APIStatusError as exc:
            raise GenerationError(
                f"HTTP {exc.status_code} from {self._describe()}: {exc.message}"
            ) from exc

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
