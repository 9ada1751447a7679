"""The registry of checks: one function per pitfall code, ``VariantContext -> Finding``.

A check module registers its functions with :func:`check`; :mod:`inpars_core.diagnosis.checks`
imports every check module, so ``CHECKS`` is complete once that package is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from inpars_core.diagnosis.context import VariantContext
from inpars_core.diagnosis.findings import Finding

CheckFunction = Callable[[VariantContext], Finding]


@dataclass(frozen=True)
class Check:
    """A registered check: its pitfall code, title and function."""

    code: str
    title: str
    run: CheckFunction


#: Pitfall code → check, filled by :func:`check` as the check modules are imported.
CHECKS: dict[str, Check] = {}


def check(code: str, title: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register ``function`` as the check of pitfall ``code`` (e.g. ``"P2"``, "silent MSE")."""

    def register(function: CheckFunction) -> CheckFunction:
        if code in CHECKS:
            raise ValueError(f"check {code} registered twice")
        CHECKS[code] = Check(code, title, function)
        return function

    return register
