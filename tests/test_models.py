"""Model fingerprints hash content: local folders, the packaged model, hub ids."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from inpars_core import models
from inpars_core.errors import InputFormatError
from inpars_core.models import model_fingerprint


def _fake_model(folder: Path, weights: bytes = b"weights-1") -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text('{"hidden_size": 4}')
    (folder / "vocab.txt").write_text("[PAD]\n[CLS]\n")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (folder / "README.md").write_text("not hashed")
    return folder


def test_local_folders_are_fingerprinted_by_content(tmp_path: Path) -> None:
    first = _fake_model(tmp_path / "a")
    fingerprint = model_fingerprint(str(first))
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0
    assert model_fingerprint(str(first)) == fingerprint  # repeated: same (cached) value

    # Another path, the same files: the same fingerprint.
    copy = tmp_path / "elsewhere" / "b"
    shutil.copytree(first, copy)
    assert model_fingerprint(str(copy)) == fingerprint

    # A file that does not feed the model changes nothing.
    (copy / "README.md").write_text("edited")
    assert model_fingerprint(str(copy)) == fingerprint

    # Changed weights, a changed module config, changed tokenizer: another fingerprint each.
    seen = {fingerprint}
    for name, content in (
        ("model.safetensors", b"weights-2"),
        ("1_Pooling/config.json", '{"pooling_mode_cls_token": true}'),
        ("vocab.txt", "[PAD]\n[CLS]\n[SEP]\n"),
    ):
        target = copy / name
        stat = target.stat()
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        changed = model_fingerprint(str(copy))
        assert changed not in seen, name
        seen.add(changed)
    assert model_fingerprint(str(first)) == fingerprint


def test_folder_without_weights_and_missing_path_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFormatError, match="holds no weight files"):
        model_fingerprint(str(tmp_path / "empty"))
    with pytest.raises(InputFormatError, match="is not a model folder"):
        model_fingerprint(str(tmp_path / "missing" / "model"))


def test_packaged_minilm_is_its_folder() -> None:
    folder = models.resolve_model_path("minilm")
    assert model_fingerprint("minilm") == models.folder_fingerprint(Path(folder))


def test_hub_id_uses_the_local_snapshot_then_the_commit(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    constants = pytest.importorskip("huggingface_hub.constants")
    cache = tmp_path / "hub"
    repo = cache / "models--org--tiny"
    snapshot = _fake_model(repo / "snapshots" / ("a" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(models, "_hub_commit", lambda repo_id: pytest.fail("went online"))
    assert model_fingerprint("org/tiny") == models.folder_fingerprint(snapshot)

    # Not cached: the hub's commit sha (users' machines), else an explicit marker + warning.
    monkeypatch.setattr(models, "_hub_commit", lambda repo_id: "0123abcd")
    assert model_fingerprint("org/not-cached") == "hub:org/not-cached@0123abcd"
    monkeypatch.setattr(models, "_hub_commit", lambda repo_id: None)
    with caplog.at_level(logging.WARNING, logger="inpars_core.models"):
        assert model_fingerprint("org/not-cached") == "hub:org/not-cached@unresolved"
    assert "no local copy and the hub cannot be reached" in caplog.text


def test_a_training_output_folder_resolves_to_its_model(tmp_path: Path) -> None:
    """``inpars train --out OUT`` writes OUT/model/: OUT itself is accepted wherever a model is."""
    out = tmp_path / "trained"
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text("{}")
    (out / "model" / "model.safetensors").write_bytes(b"weights")
    assert models.resolve_model_path(str(out)) == str(out)  # no meta.json: not a training output
    (out / "meta.json").write_text('{"stage": "train"}')
    assert models.resolve_model_path(str(out)) == str(out / "model")
    assert model_fingerprint(str(out)) == model_fingerprint(str(out / "model"))
    (out / "config.json").write_text("{}")  # a model folder of its own: left alone
    assert models.resolve_model_path(str(out)) == str(out)
