"""The retrieval stage interface and its registry of backends."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from inpars_core.errors import UnknownNameError
from inpars_core.records import Query, Run


class Retriever(Protocol):
    """Retrieves a ranking of corpus documents for each query."""

    def retrieve(self, queries: Mapping[str, Query], k: int) -> Run:
        """Return the top ``k`` documents per query, best first."""
        ...


#: Backend name -> factory taking the backend's keyword arguments.
RETRIEVERS: dict[str, Callable[..., Retriever]] = {}


def register_retriever(name: str) -> Callable[[Callable[..., Retriever]], Callable[..., Retriever]]:
    """Class decorator registering a retriever backend under ``name``."""

    def decorate(factory: Callable[..., Retriever]) -> Callable[..., Retriever]:
        RETRIEVERS[name] = factory
        return factory

    return decorate


def get_retriever(name: str, **kwargs: object) -> Retriever:
    """Build the retriever registered as ``name``; unknown names list the known ones."""
    if name not in RETRIEVERS:
        raise UnknownNameError("retriever", name, list(RETRIEVERS))
    return RETRIEVERS[name](**kwargs)
