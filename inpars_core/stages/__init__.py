"""The pipeline's arrows, one module each, all with the same contract (see :mod:`.contract`).

``STAGES`` maps a command name to its module; the command line builds one sub-command per entry
(flags from the module's ``Config`` and ``Inputs`` dataclasses) and the experiment runner calls
the same ``run`` functions. Add a stage: write a module with ``NAME``, ``HELP``, ``OUTPUT`` (the
artifact type it writes), ``Config``, ``Inputs``, ``run`` and ``describe``, and list it here.
Optional: ``preview(config, inputs)`` (gives ``--dry-run``), ``RESUMABLE_FILES`` (files of a
previous artifact at ``--out`` that a rerun resumes from, see :func:`.contract.publish`; the
preview of such a stage also gets ``out=``), ``as_json(artifact)`` (gives ``--json``: print one
JSON object instead of ``describe``) and ``OUT_REQUIRED = False`` (``--out`` may be left out: the
artifact is printed, then dropped).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Command name -> module under inpars_core.stages, in pipeline order.
STAGE_MODULES: dict[str, str] = {
    "index": "index",
    "generate": "generate",
    "filter": "filter",
    "retrieve": "retrieve",
    "triples": "triples",
    "train": "train",
    "dense-index": "dense_index",
    "rerank": "rerank",
    "fuse": "fuse",
    "evaluate": "evaluate",
}


def stage_module(name: str) -> ModuleType:
    """The module of the stage ``name`` (imported on demand: heavy imports stay inside ``run``)."""
    return importlib.import_module(f"inpars_core.stages.{STAGE_MODULES[name]}")
