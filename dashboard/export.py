"""Exports of the tables the pages show: Markdown, CSV, LaTeX (booktabs) and PNG (slides)."""

from __future__ import annotations

import csv
import io

import pandas as pd

from dashboard.loading import Experiment, summary_markdown_text
from dashboard.views import MODEL_KEPT
from inpars_core.latex import latex_escape


def summary_markdown(experiment: Experiment) -> str:
    """The before/after table as Markdown: the pipeline's own ``summary.md``."""
    return summary_markdown_text(experiment)


def table_markdown(frame: pd.DataFrame) -> str:
    """A frame as a GitHub Markdown table (empty cells for missing values)."""
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.itertuples(index=False):
        cells = ["" if pd.isna(v) else str(v).replace("|", "\\|") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_csv(frame: pd.DataFrame) -> str:
    """A frame as CSV (raw numbers)."""
    out = io.StringIO()
    frame.to_csv(out, index=False, quoting=csv.QUOTE_MINIMAL)
    return out.getvalue()


def table_latex(frame: pd.DataFrame, caption: str = "") -> str:
    """A display frame as a booktabs LaTeX ``tabular`` (text columns left, others right)."""
    columns = list(frame.columns)
    text = ("system", "kind", "baseline", "stage seconds", MODEL_KEPT)
    align = "".join("l" if c in text else "r" for c in columns)
    lines = []
    if caption:
        lines.append(f"% {caption}")
    lines += [
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(latex_escape(str(c)) for c in columns) + r" \\",
        r"\midrule",
    ]
    for _, row in frame.iterrows():
        lines.append(" & ".join(latex_escape(str(row[c])) for c in columns) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def table_png(frame: pd.DataFrame, title: str = "") -> bytes:
    """A display frame drawn as a table (matplotlib), PNG bytes for slides."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    columns = [str(c) for c in frame.columns]
    cells = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [
        max([len(c), *(len(r[i]) for r in cells)]) if cells else len(c)
        for i, c in enumerate(columns)
    ]
    total = max(sum(widths), 1)
    figure = Figure(figsize=(min(max(total * 0.085, 6), 30), 0.45 * (len(cells) + 2) + 0.4))
    axes = figure.add_subplot()
    axes.axis("off")
    if title:
        axes.set_title(title, fontsize=11, loc="left")
    table = axes.table(
        cellText=cells or [[""] * len(columns)],
        colLabels=columns,
        colWidths=[w / total for w in widths],
        loc="center",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.4)
    for (row, _col), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e8eef7")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=200, bbox_inches="tight")
    return buffer.getvalue()
