"""``[sweep]``: a grid of settings expanded into named variants.

A ``[sweep]`` table maps dotted keys (``"section.key"``, quoted, or TOML's dotted keys
``finetune.objective = [...]``, which mean the same) to non-empty lists of single values::

    [sweep]
    "finetune.objective" = ["hf-default", "bce", "lce"]
    "negatives.count" = [5, 1]

The grid is the Cartesian product in the order the keys are written (the first key varies
slowest); each cell is one variant, a dict of dotted overrides applied on top of the base
config, exactly like a hand-written ``[variants.NAME]`` table. A cell is named from its values:
``sweep-objective-hf-default-count-5``, ``sweep-objective-hf-default-count-1``, ... — ``sweep-``,
then per key its last part (the whole dotted key when two keys of the grid share a last part,
e.g. ``finetune.lr`` and ``base_reranker.lr``) and its value: strings with every run of
characters outside ``A-Za-z0-9._-`` replaced by ``-``, booleans ``true``/``false``, integers
as written, floats by Python's shortest round-trip text (``2e-05``, ``0.5``), stable across
machines.

Refused, each naming ``sweep.<key>`` and the fix: a key that is not ``section.key``, a value
that is not a non-empty list, a list holding lists or tables (write list-valued settings such
as ``rerank.depths`` as hand-written variants), a value listed twice, two values of one key
giving the same name part, a name that is not a safe folder name, and a grid of more than
:data:`MAX_SWEEP_CELLS` cells. Collisions with hand-written variants and the validation of each
cell happen in :mod:`inpars_core.experiments.config`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inpars_core.errors import ConfigError

#: The most cells one ``[sweep]`` may expand to (each cell fine-tunes a model: a larger grid
#: is almost always a typo, and belongs in several configs).
MAX_SWEEP_CELLS = 64

#: Every sweep variant's name starts with this.
SWEEP_PREFIX = "sweep"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Sweep:
    """A config's ``[sweep]``: the grid as written (dotted key -> values, in written order) and
    the names of the variants it expanded to (in grid order), recorded in ``experiment.json``."""

    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    variants: tuple[str, ...] = ()


def toml_value(value: Any) -> str:
    """``value`` as it would be written in TOML (strings quoted, booleans lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def describe_overrides(overrides: Mapping[str, Any]) -> str:
    """``finetune.objective = "bce", negatives.count = 5``: one variant's overrides, one line."""
    return ", ".join(f"{key} = {toml_value(value)}" for key, value in overrides.items())


def sweep_keys(overrides: Iterable[str]) -> str:
    """``sweep.finetune.objective, sweep.negatives.count``: the keys of a cell, for errors."""
    return ", ".join(f"sweep.{key}" for key in overrides)


def name_part(value: Any) -> str:
    """The part of a cell's name that shows ``value`` (see the module's doc)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return str(value)
    return _UNSAFE.sub("-", str(value)).strip("-") or "empty"


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted key, value) pairs; TOML dotted keys arrive as nested tables."""
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{dotted}.")
        else:
            yield dotted, value


def _same(a: Any, b: Any) -> bool:
    """Equal as settings: ``1`` and ``1.0`` are, ``1`` and ``true`` are not."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def read_grid(raw: Any, sections: Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """Check a ``[sweep]`` table and return its grid (dotted key -> values, written order)."""
    example = '"finetune.objective" = ["bce", "lce"]'
    if not isinstance(raw, dict):
        raise ConfigError(
            f"[sweep]: expected a table of dotted keys to lists of values, found {raw!r}. "
            f"Fix: [sweep] then {example}"
        )
    known = list(sections)
    grid: dict[str, tuple[Any, ...]] = {}
    for dotted, values in _flatten(raw):
        section, _, key = dotted.partition(".")
        if section not in known or not key or "." in key:
            raise ConfigError(
                f'sweep.{dotted}: expected a key "section.key" with a section among '
                f"{', '.join(known)}, found {dotted!r}. Fix: {example}"
            )
        if dotted in grid:
            raise ConfigError(
                f"sweep.{dotted}: written twice (as a quoted and a dotted key). Fix: keep one"
            )
        if not isinstance(values, list):
            raise ConfigError(
                f"sweep.{dotted}: expected a non-empty list of values, found "
                f'{toml_value(values)}. Fix: "{dotted}" = [{toml_value(values)}, ...] with every '
                "value to try"
            )
        if not values:
            raise ConfigError(
                f"sweep.{dotted}: expected a non-empty list of values, found []. Fix: give at "
                "least one value, or remove the key"
            )
        for value in values:
            if isinstance(value, list | dict):
                raise ConfigError(
                    f"sweep.{dotted}: expected single values (strings, numbers, booleans), "
                    f"found {toml_value(value)}, a {'list' if isinstance(value, list) else 'table'}"
                    f". Fix: set {dotted} to such a value in hand-written [variants.NAME] "
                    "tables, one per value"
                )
        for i, value in enumerate(values):
            for other in values[:i]:
                if _same(value, other):
                    spelled = (
                        f" (as {toml_value(other)} and {toml_value(value)})"
                        if toml_value(other) != toml_value(value)
                        else ""
                    )
                    raise ConfigError(
                        f"sweep.{dotted}: value {toml_value(value)} listed twice{spelled}. "
                        "Fix: list each value once"
                    )
        parts = {}
        for value in values:
            part = name_part(value)
            if part in parts:
                raise ConfigError(
                    f"sweep.{dotted}: values {toml_value(parts[part])} and {toml_value(value)} "
                    f"would both be named {part!r} in the variant names. Fix: write one of them "
                    "as a hand-written [variants.NAME]"
                )
            parts[part] = value
        grid[dotted] = tuple(values)
    if not grid:
        raise ConfigError(
            f"[sweep]: expected at least one key, found none. Fix: add {example}, or remove [sweep]"
        )
    cells = math.prod(len(values) for values in grid.values())
    if cells > MAX_SWEEP_CELLS:
        sizes = " × ".join(f"sweep.{key} ({len(values)})" for key, values in grid.items())
        raise ConfigError(
            f"{sizes} = {cells} variants, more than the maximum of {MAX_SWEEP_CELLS}. "
            "Fix: sweep fewer values, or split the grid over several configs"
        )
    return grid


def _labels(grid: Mapping[str, Any]) -> dict[str, str]:
    """dotted key -> its label in names: the last part, or the whole key if shared."""
    last = [dotted.partition(".")[2] for dotted in grid]
    return {
        dotted: key if last.count(key) == 1 else dotted
        for dotted, key in zip(grid, last, strict=True)
    }


def expand(grid: Mapping[str, tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    """The grid's cells, in order: variant name -> dotted overrides (see the module's doc)."""
    from inpars_core.artifacts import SAFE_NAME_TEXT, is_safe_name

    if not grid:  # the product of no lists is one empty cell: no sweep is no variant
        return {}
    labels = _labels(grid)
    cells: dict[str, dict[str, Any]] = {}
    for values in itertools.product(*grid.values()):
        overrides = dict(zip(grid, values, strict=True))
        name = "-".join(
            [SWEEP_PREFIX, *(f"{labels[k]}-{name_part(v)}" for k, v in overrides.items())]
        )
        if not is_safe_name(name):
            longest = max(overrides, key=lambda k: len(name_part(overrides[k])))
            raise ConfigError(
                f"sweep.{longest}: the variant name {name!r} is not a folder name "
                f"({SAFE_NAME_TEXT}, at most 128 characters). Fix: shorten the values of "
                f"sweep.{longest}, or write that setting as hand-written [variants.NAME]"
            )
        if name in cells:
            raise ConfigError(
                f"{sweep_keys(overrides)}: the cells {describe_overrides(cells[name])} and "
                f"{describe_overrides(overrides)} would both be named {name!r}. Fix: write one "
                "of them as a hand-written [variants.NAME]"
            )
        cells[name] = overrides
    return cells
