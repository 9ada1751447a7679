"""Why did fine-tuning hurt? Checks of the twelve fine-tuning pitfalls (P1–P12), each a function
of the artifacts an experiment wrote, giving per fine-tuned variant a ranked list of findings
with their evidence, the ids that show them and the config change that fixes them.

``diagnose(experiment_dir)`` → :class:`Diagnosis`; ``write_diagnosis`` writes
``diagnosis.json`` and ``diagnosis.md``; ``inpars diagnose`` prints it.
"""

from inpars_core.diagnosis.context import MissingEvidenceError, VariantContext
from inpars_core.diagnosis.engine import (
    diagnose,
    fine_tuned_variants,
    to_markdown,
    write_diagnosis,
)
from inpars_core.diagnosis.findings import Diagnosis, Finding, VariantDiagnosis

__all__ = [
    "Diagnosis",
    "Finding",
    "MissingEvidenceError",
    "VariantContext",
    "VariantDiagnosis",
    "diagnose",
    "fine_tuned_variants",
    "to_markdown",
    "write_diagnosis",
]
