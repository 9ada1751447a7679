"""InPars Lab core: generation, filtering, negatives, training, reranking and evaluation.

Importing this package is cheap: torch, transformers, pyserini and the JVM are only loaded by the
modules that need them, inside the functions that use them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
