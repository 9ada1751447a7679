"""Turn a variant's diagnosis into a runnable experiment: ``<experiment>.fixed.toml``.

The file is the experiment's own resolved config (``experiment.json``'s ``config``: every
section with every key, the variants as ``[variants.NAME]`` tables, sweep cells included as the
variants they expanded to) plus one new table ``[variants.<variant>-fixed]``: the variant's own
overrides, then the fixes of its ``fail`` and ``warn`` findings (each a ``"section.key"`` diff),
most severe first: when two findings set the same key to different values the more severe (then
the lower pitfall number) wins and the other is reported as a conflict.

The experiment keeps its name, so ``inpars run <experiment>.fixed.toml`` with the same runs
directory reuses every finished stage (generation, filtering, the base reranker) and runs only
what the fix changes. The file is validated with :func:`load_config` (and the new variant
resolved) before it replaces anything, and written atomically.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars_core.artifacts import atomic_path
from inpars_core.diagnosis.findings import VariantDiagnosis, sort_findings
from inpars_core.errors import ConfigError, InputFormatError

logger = logging.getLogger(__name__)

FIXED_SUFFIX = "-fixed"
#: Findings whose fix goes into the new variant.
FIXED_VERDICTS = ("fail", "warn")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
#: Tables of ``experiment.json``'s config that are not written back as they are.
_NOT_WRITTEN = ("variants", "sweep")


@dataclass(frozen=True)
class FixedConfig:
    """What :func:`write_fixed_config` wrote: the file, the new variant, its overrides (the
    variant's own, then the fixes), which finding each fixed key comes from, and the fixes left
    out because a more severe finding set the same key otherwise."""

    path: Path
    variant: str
    overrides: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)
    conflicts: tuple[str, ...] = ()

    def command(self, runs_dir: str | Path) -> str:
        """The command that runs the new variant next to the experiment's other variants."""
        return f"inpars run {self.path} --runs-dir {runs_dir} --variant {self.variant}"


def fixed_variant_name(variant: str) -> str:
    """``hf-default`` → ``hf-default-fixed``."""
    return f"{variant}{FIXED_SUFFIX}"


def fixed_config_path(experiment_dir: Path, experiment: str | None = None) -> Path:
    """``<runs_dir>/<experiment>/<experiment>.fixed.toml``."""
    experiment_dir = Path(experiment_dir)
    return experiment_dir / f"{experiment or experiment_dir.name}.fixed.toml"


def union_of_fixes(
    item: VariantDiagnosis,
) -> tuple[dict[str, Any], dict[str, str], tuple[str, ...]]:
    """The fixes of ``item``'s fail and warn findings, merged most severe first: (overrides,
    key → the code of the finding that set it, conflicts described in words)."""
    overrides: dict[str, Any] = {}
    sources: dict[str, str] = {}
    conflicts: list[str] = []
    for finding in sort_findings(item.findings):
        if finding.verdict not in FIXED_VERDICTS:
            continue
        for key, value in finding.fix.items():
            if key not in overrides:
                overrides[key] = value
                sources[key] = finding.code
            elif overrides[key] != value:
                conflicts.append(
                    f"{finding.code} sets {key} = {toml_value(value)}, kept "
                    f"{toml_value(overrides[key])} from {sources[key]}"
                )
    return overrides, sources, tuple(conflicts)


def toml_key(key: str) -> str:
    """A TOML key: bare when it can be, else quoted (dotted override keys are quoted)."""
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def toml_value(value: Any) -> str:
    """``value`` in TOML: strings quoted, booleans lower case, lists and tables inline.

    ``None`` has no TOML form: the callers leave such keys out (the default applies)."""
    if value is None:
        raise ValueError("TOML has no null: leave the key out")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = ", ".join(
            f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items() if v is not None
        )
        return "{" + items + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else str(value)
    return str(value)


def config_toml(config: Mapping[str, Any], variants: Mapping[str, Mapping[str, Any]]) -> str:
    """An experiment TOML from a resolved config (section → key → value, as ``experiment.json``
    records it) and the variants' dotted overrides. Keys whose value is ``None`` are left out
    (their default is ``None``), as are keys another section sets (``RENAMED_KEYS``)."""
    from inpars_core.experiments.config import RENAMED_KEYS

    lines: list[str] = []
    for section, values in config.items():
        if section in _NOT_WRITTEN or not isinstance(values, Mapping):
            continue
        lines.append(f"[{toml_key(section)}]")
        for key, value in values.items():
            if value is None or f"{section}.{key}" in RENAMED_KEYS:
                continue
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
        lines.append("")
    for name, overrides in variants.items():
        lines.append(f"[variants.{toml_key(name)}]")
        for dotted, value in overrides.items():
            if value is not None:
                lines.append(f"{toml_key(dotted)} = {toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _read_manifest_config(experiment_dir: Path) -> dict[str, Any]:
    path = Path(experiment_dir) / "experiment.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFormatError(
            path,
            "expected experiment.json (the manifest `inpars run` writes with the config), "
            "found none",
            fix="rerun the experiment with `inpars run CONFIG` to write it",
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFormatError(path, f"not JSON ({exc})", fix="rerun the experiment") from None
    config = manifest.get("config") if isinstance(manifest, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("experiment"), dict):
        raise InputFormatError(
            path,
            "expected a `config` object with the experiment's sections, found none",
            fix="rerun the experiment with a current `inpars run` (older runs lack it)",
        )
    return config


def _previous_fixed_variants(path: Path, known: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``*-fixed`` variants an earlier press wrote into ``path`` (kept beside the new one)."""
    if not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        logger.warning("%s is not valid TOML: rewritten from experiment.json", path)
        return {}
    variants = raw.get("variants", {})
    return {
        name: dict(overrides)
        for name, overrides in variants.items()
        if name.endswith(FIXED_SUFFIX) and name not in known and isinstance(overrides, dict)
    }


def write_fixed_config(experiment_dir: Path, item: VariantDiagnosis) -> FixedConfig:
    """Write ``<experiment>.fixed.toml`` into ``experiment_dir``: the experiment's config with
    ``[variants.<variant>-fixed]`` = the variant's own overrides plus the union of the fixes of
    its fail/warn findings. The file is checked with ``load_config`` (the new variant resolved)
    before it replaces an earlier one; ``*-fixed`` variants written before are kept."""
    from inpars_core.experiments.config import load_config

    experiment_dir = Path(experiment_dir)
    config = _read_manifest_config(experiment_dir)
    variants = {k: dict(v) for k, v in (config.get("variants") or {}).items()}
    if item.variant not in variants:
        raise ConfigError(
            f"variant {item.variant!r}: expected one of the experiment's variants "
            f"({', '.join(variants) or 'none'}) in {experiment_dir / 'experiment.json'}, found "
            "none. Fix: diagnose this experiment again (`inpars diagnose "
            f"{experiment_dir}`)"
        )
    fixes, sources, conflicts = union_of_fixes(item)
    name = fixed_variant_name(item.variant)
    overrides = {**variants[item.variant], **fixes}
    path = fixed_config_path(experiment_dir, str(config["experiment"].get("name") or ""))
    variants = {**variants, **_previous_fixed_variants(path, variants), name: overrides}
    text = (
        f"# {path.name}: the config of {experiment_dir.name} (from experiment.json) with\n"
        f"# [variants.{name}] = variant {item.variant!r} + the fixes of its diagnosis.\n"
        f"# Run it: inpars run {path.name} --variant {name}\n\n"
    ) + config_toml(config, variants)
    with atomic_path(path) as staged:
        staged.write_text(text, encoding="utf-8")
        try:
            load_config(staged).variant(name)
        except ConfigError as exc:
            shown = ", ".join(f"{k} = {toml_value(v)}" for k, v in fixes.items())
            raise ConfigError(
                f"the fixed variant {name} ({shown}) does not validate: {exc}. Fix: correct "
                "the findings' fixes; nothing was written"
            ) from None
    logger.info("wrote %s with variant %s", path, name)
    return FixedConfig(path, name, overrides, sources, conflicts)
