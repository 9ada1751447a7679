"""Reading user text files exactly: UTF-8 line by line, every failure one clear error.

A file that is a folder, is missing, cannot be read or is not UTF-8 stops with an
:class:`~inpars_core.errors.InputFormatError` naming the path (and, for bad bytes, the line and
column), never with a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from inpars_core.errors import InputFormatError


def check_file(path: Path, what: str, fix: str) -> Path:
    """``path`` when it is a readable file; otherwise an error saying what is there instead
    (nothing, a folder) and ``fix``. ``what`` names the file expected (``a TREC run``)."""
    path = Path(path)
    if path.is_dir():
        raise InputFormatError(path, f"expected {what} file, found a folder", fix=fix)
    if not path.exists():
        raise InputFormatError(path, f"not found (expected {what} file)", fix=fix)
    if not path.is_file():
        raise InputFormatError(path, f"expected {what} file, found a special file", fix=fix)
    return path


def not_utf8(path: Path, data: bytes, error: UnicodeDecodeError, first_line: int = 1):
    """The error for bytes of ``path`` that are not UTF-8: the line (counted from
    ``first_line``, the line ``data`` starts on) and the byte column of the first bad byte."""
    before = data[: error.start]
    line = first_line + before.count(b"\n")
    column = error.start - (before.rfind(b"\n") + 1) + 1
    return InputFormatError(
        path,
        f"expected UTF-8 text, found the byte 0x{data[error.start]:02x} at column {column} "
        f"({error.reason})",
        line=line,
        fix="convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8)",
    )


def read_lines(path: Path, what: str, fix: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, text)`` for every line of a UTF-8 file (a leading byte-order mark
    dropped), after :func:`check_file`; bytes that are not UTF-8 raise :func:`not_utf8`'s error."""
    path = check_file(path, what, fix)
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    raise not_utf8(path, raw, exc, number) from None
                yield number, text
    except OSError as exc:
        raise InputFormatError(
            path, f"cannot be read ({exc.strerror})", fix="check its permissions"
        ) from None
