"""LaTeX escaping shared by the comparison tables and the dashboard's exports."""

from __future__ import annotations

__all__ = ["latex_escape"]

_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "→": r"$\rightarrow$",
    "Δ": r"$\Delta$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters (and render → and Δ in math mode), each character
    once: the braces of an inserted ``\\textbackslash{}`` are never escaped again."""
    return "".join(_LATEX_ESCAPES.get(char, char) for char in text)
