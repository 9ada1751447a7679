"""The checks, one module per group of pitfalls; importing this package registers them all in
:data:`inpars_core.diagnosis.registry.CHECKS`."""

from __future__ import annotations

import importlib

#: Check modules (each registers its codes with ``@check``).
CHECK_MODULES = (
    "encoding",  # P1 pair encoding, P10 train/eval mismatch
    "loss",  # P2 silent MSE, P3 re-initialised head, P4 zero loss
    "schedule",  # P5 lr and length, P11 overfitting / no dev set
    "drift",  # P6 score drift
    "negatives",  # P7 false negatives
    "queries",  # P8 noisy queries
    "depth",  # P9 depth
    "noise",  # P12 noise
    "form",  # P13 query form vs the test queries
)

for _name in CHECK_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # a module not written yet is skipped, never half-run
        if exc.name != f"{__name__}.{_name}":
            raise
