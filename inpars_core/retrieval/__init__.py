"""First-stage retrieval: one ``Retriever`` interface, backends registered by name."""

from __future__ import annotations

from inpars_core.retrieval.base import RETRIEVERS, Retriever, register_retriever

__all__ = ["RETRIEVERS", "Retriever", "register_retriever"]
