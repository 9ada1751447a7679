"""`import inpars_core` stays light: no torch, transformers, pyserini, nor a JVM."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "pyserini", "jnius", "sentence_transformers", "llama_cpp")


def test_importing_the_package_and_cli_loads_no_heavy_module() -> None:
    code = (
        "import sys, inpars_core, inpars_core.cli, inpars_core.datasets, inpars_core.evaluation, "
        "inpars_core.compare, inpars_core.runs, inpars_core.retrieval.bm25;"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout}"
