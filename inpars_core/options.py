"""One definition per option: a stage config dataclass gives its CLI flags and its TOML keys.

A field declared with :func:`option` carries its help text, its check (a :class:`Check`: what a
valid value is, and how to read one from the command line) and its choices. :func:`validate`
(called from a config's ``__post_init__``) enforces them once, for every edge: the command line
(:func:`add_flags`, :func:`from_args`), the experiment TOML and Python callers. Annotations give
the rest: ``bool`` becomes ``--x/--no-x``, ``Literal[...]`` the choices, ``X | None`` accepts
``none`` to switch a setting off, ``tuple[T, ...]`` takes several values.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inpars_core.errors import ConfigError


@dataclass(frozen=True)
class Check:
    """What a valid value is (``ok``, described by ``expected``) and how text becomes one."""

    expected: str
    ok: Callable[[Any], bool]
    parse: Callable[[str], Any]

    def from_text(self, text: str) -> Any:
        """Parse command-line text, or raise ArgumentTypeError saying what was expected."""
        try:
            value = self.parse(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {self.expected}, got {text!r}") from None
        if not self.ok(value):
            raise argparse.ArgumentTypeError(f"expected {self.expected}, got {text!r}")
        return value


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_window(text: str) -> tuple[int, int]:
    first, last = (int(part) for part in text.split(":"))
    return first, last


POSITIVE_INT = Check("an integer >= 1", lambda v: v >= 1, int)
NON_NEGATIVE_INT = Check("an integer >= 0", lambda v: v >= 0, int)
POSITIVE_FLOAT = Check("a number > 0", lambda v: _finite(v) and v > 0, float)
NON_NEGATIVE_FLOAT = Check("a number >= 0", lambda v: _finite(v) and v >= 0, float)
PROBABILITY = Check("a number in [0, 1]", lambda v: _finite(v) and 0 <= v <= 1, float)
WARMUP_FRACTION = Check("a number in [0, 1)", lambda v: _finite(v) and 0 <= v < 1, float)
FINITE = Check("a finite number", _finite, float)
PORT = Check("a port number in [1, 65535]", lambda v: 1 <= v <= 65535, int)
RANK_WINDOW = Check(
    "A:B with 1 <= A <= B (1-based BM25 ranks)",
    lambda v: len(v) == 2 and 1 <= v[0] <= v[1],
    _parse_window,
)

#: Words that switch an optional setting off (on the command line and in a TOML file).
OFF_WORDS = ("none", "off")


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    check: Check | None = None,
    choices: tuple[str, ...] | None = None,
    flag: str | None = None,
    cli: bool = True,
) -> Any:
    """A config field with its help, check and choices (``flag`` renames the CLI flag;
    ``cli=False`` keeps a field out of the command line)."""
    metadata = {"help": help, "check": check, "choices": choices, "flag": flag, "cli": cli}
    return dataclasses.field(default=default, metadata=metadata)


def hints(cls: type) -> dict[str, Any]:
    """The resolved type annotations of a config dataclass."""
    return typing.get_type_hints(cls)


def _optional(annotation: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(annotation))
    return annotation, False


def choices_of(field: dataclasses.Field, annotation: Any) -> tuple[str, ...] | None:
    """The allowed values of a field: its ``choices`` metadata, or its ``Literal`` values
    (a ``choices`` callable is asked at call time: registries fill up on import)."""
    choices = field.metadata.get("choices")
    if callable(choices):
        return tuple(choices())
    if choices:
        return tuple(choices)
    inner, _ = _optional(annotation)
    if typing.get_origin(inner) is typing.Literal:
        return tuple(typing.get_args(inner))
    return None


def validate(config: Any) -> None:
    """Check every field of a config dataclass against its check and choices; the first bad
    one raises ConfigError naming the field (``ConfigError.key``), what was expected and found."""
    annotations = hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        annotation = annotations[field.name]
        inner, nullable = _optional(annotation)
        if value is None:
            if nullable:
                continue
            raise _bad(field.name, "a value", value)
        allowed = choices_of(field, annotation)
        values = value if isinstance(value, tuple) and typing.get_origin(inner) is tuple else None
        check: Check | None = field.metadata.get("check")
        if allowed is not None:
            for item in values if values is not None else (value,):
                if item not in allowed:
                    raise _bad(field.name, f"one of {', '.join(map(str, allowed))}", item)
        if check is not None:
            items = (
                values
                if values is not None
                and len(typing.get_args(inner)) == 2
                and typing.get_args(inner)[1] is Ellipsis
                else (value,)
            )
            for item in items:
                try:
                    good = bool(check.ok(item))
                except TypeError:
                    good = False
                if not good:
                    raise _bad(field.name, check.expected, item)


def _bad(name: str, expected: str, found: Any) -> ConfigError:
    error = ConfigError(f"{name}: expected {expected}, found {found!r}")
    error.key = name  # type: ignore[attr-defined]
    return error


def flag_name(field: dataclasses.Field) -> str:
    """The command-line flag of a field: ``--max-length`` for ``max_length``."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _text_parser(check: Check | None, scalar: Any, nullable: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if nullable and text.lower() in OFF_WORDS:
            return None
        if check is not None:
            return check.from_text(text)
        try:
            return scalar(text)
        except ValueError:
            name = getattr(scalar, "__name__", str(scalar))
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None

    return parse


def add_flags(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of ``cls`` (fields with ``cli=False`` or named in ``skip`` left out).
    Defaults are left to the dataclass: an absent flag is not passed to it."""
    annotations = hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip or not field.metadata.get("cli", True):
            continue
        annotation = annotations[field.name]
        inner, nullable = _optional(annotation)
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = field.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS}
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            kwargs["required"] = True
        elif default is not None:
            help_text += f" (default {_shown(default)})" if help_text else f"default {default}"
        if nullable and default is not None:
            help_text += "; 'none' switches it off"
        kwargs["help"] = help_text or None
        if inner is bool:
            parser.add_argument(flag_name(field), action=argparse.BooleanOptionalAction, **kwargs)
            continue
        check: Check | None = field.metadata.get("check")
        origin = typing.get_origin(inner)
        if origin is tuple and typing.get_args(inner)[-1] is Ellipsis:
            scalar = typing.get_args(inner)[0]
            kwargs["nargs"] = "+"
            kwargs["type"] = lambda text, _s=scalar, _c=check: (
                _c.from_text(text) if _c else _s(text)
            )
            kwargs["action"] = _TupleAction
        elif origin is tuple:
            kwargs["type"] = _text_parser(check, str, nullable)
        else:
            scalar = inner if inner in (int, float, str) else str
            kwargs["type"] = _text_parser(check, scalar, nullable)
        allowed = choices_of(field, annotation)
        if allowed is not None:
            kwargs["choices"] = list(allowed) + ([None] if nullable else [])
            kwargs["metavar"] = "{" + ",".join(map(str, allowed)) + "}"
        parser.add_argument(flag_name(field), **kwargs)


def _shown(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}:{value[1]}"
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


class _TupleAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, tuple(values))


def from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``cls`` from the flags :func:`add_flags` declared (absent flags keep the
    dataclass defaults); a check that fails names the flag."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    values.update(overrides)
    try:
        return cls(**values)
    except ConfigError as exc:
        key = getattr(exc, "key", None)
        if key in names:
            raise ConfigError(f"{flag_name(names[key])}{str(exc)[len(key) :]}") from None
        raise


def toml_table(config: Any) -> dict[str, Any]:
    """A config as the TOML table that rebuilds it (tuples as lists, None left out)."""
    table = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            continue
        table[field.name] = list(value) if isinstance(value, tuple) else value
    return table


def section(
    name: str,
    doc: str,
    *parts: tuple[type, tuple[str | tuple[str, str], ...]],
    defaults: dict[str, Any] | None = None,
    extra: tuple[tuple[str, Any, Any], ...] = (),
) -> type:
    """A frozen config dataclass (an experiment TOML section) made of fields of stage configs:
    ``parts`` are (stage Config, field names) pairs, a name or a (stage name, section name)
    pair; each field keeps its type, help, check and choices (so it is validated like the flag),
    ``defaults`` gives the section's own default values (by section name), ``extra`` adds
    (name, type, option(...)) fields the stages do not have."""
    defaults = defaults or {}
    specs: list[tuple[str, Any, Any]] = []
    for cls, names in parts:
        annotations = hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls)}
        for entry in names:
            source_name, field_name = (entry, entry) if isinstance(entry, str) else entry
            source = known[source_name]
            default = defaults.get(field_name, source.default)
            metadata = {**source.metadata, "stage_field": source_name}
            specs.append(
                (
                    field_name,
                    annotations[source_name],
                    dataclasses.field(default=default, metadata=metadata),
                )
            )
    specs.extend(extra)

    def post_init(self: Any) -> None:
        validate(self)

    made = dataclasses.make_dataclass(
        name, specs, frozen=True, namespace={"__post_init__": post_init, "__doc__": doc}
    )
    made.__module__ = "inpars_core.experiments.config"
    return made
