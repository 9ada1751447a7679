"""Typed errors: each says what was expected, what was found, and how to fix it."""

from __future__ import annotations


class InparsError(Exception):
    """Base class of every error InPars Lab raises on purpose."""


class InputFormatError(InparsError):
    """A user-supplied file does not have the expected shape.

    The message names the file, the line (when there is one), the field, what was expected,
    what was found and the fix, so one error is enough to repair the input.
    """

    def __init__(
        self,
        path: object,
        problem: str,
        *,
        line: int | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem
        self.fix = fix
        where = self.path if line is None else f"{self.path} line {line}"
        if field is not None:
            where += f": field '{field}'"
        message = f"{where}: {problem}"
        if fix:
            message += f". Fix: {fix}"
        super().__init__(message)


class UnknownNameError(InparsError, KeyError):
    """A name (dataset, backend, measure, …) that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class DownloadError(InparsError):
    """A download failed or its content did not match the published checksum."""


class DependencyError(InparsError):
    """An optional dependency or external runtime (Java, a model package) is missing."""


class ConfigError(InparsError):
    """A stage configuration holds a bad value."""


def unreadable_input(exc: OSError | UnicodeDecodeError) -> str:
    """One line for an input the command could not read (last resort: the stages and loaders
    raise InputFormatError themselves; this keeps anything they miss to one line)."""
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"an input is not UTF-8 text ({exc.reason} at byte {exc.start}). Fix: give the "
            "text file the flag expects (run -v to see which file)"
        )
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    problem = exc.strerror or str(exc)
    return (
        f"{where}{problem}. Fix: check the path and that it is the kind of input the flag expects"
    )
