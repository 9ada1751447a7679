"""Figures built from summary.json rows, the same in the dashboard's Overview and in the HTML
report: Δ vs the baseline per system with its 95 % paired-bootstrap interval, the absolute value
beside it on an axis that does not start at 0 (a 0.03 difference stays visible).

Functions take summary rows (plain dicts, as summary.json holds them) and return a plotly
``Figure``; a row of an older summary without ``delta_ci95`` is drawn without error bars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inpars_core.experiments.summary import CI_FIELD

#: One colour per row kind (plotly's default qualitative palette, fixed so that a kind keeps its
#: colour whichever kinds a table holds).
KIND_COLOURS = {
    "bm25": "#636EFA",
    "zero-shot": "#EF553B",
    "supervised": "#00CC96",
    "synthetic": "#AB63FA",
}
OTHER_COLOUR = "#FFA15A"
#: The title of the Δ panel (also how the report and the tests find it).
DELTA_TITLE = "Δ {measure} vs its baseline, 95 % CI"
#: Characters of a row label per line on the figure's axis (longer names wrap at a space).
LABEL_WIDTH = 42


def row_label(row: Mapping[str, Any]) -> str:
    """``system @depth`` (``full`` for a first-stage run): how the pages name a row."""
    depth = row.get("depth")
    return f"{row.get('system')} @{'full' if depth is None else depth}"


def wrapped(label: str, width: int = LABEL_WIDTH) -> str:
    """``label`` with ``<br>`` in place of the spaces that keep each line within ``width``
    characters (a long system name would take the figure's whole width)."""
    lines: list[str] = []
    for word in label.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class DeltaPoint:
    """One row of the Δ figure: its absolute value and, when it was compared with a baseline,
    Δ, the interval, the Holm mark, win/tie/loss and the baseline's name."""

    label: str
    kind: str
    value: float | None
    delta: float | None
    low: float | None
    high: float | None
    significant: bool
    baseline: bool
    compared_with: str
    wins_ties_losses: tuple[int, ...]

    @classmethod
    def of(cls, row: Mapping[str, Any], measure: str) -> DeltaPoint:
        """The point of one summary row on ``measure``."""
        interval = (row.get(CI_FIELD) or {}).get(measure) or (None, None)
        return cls(
            label=row_label(row),
            kind=str(row.get("kind") or ""),
            value=_number((row.get("measures") or {}).get(measure)),
            delta=_number((row.get("delta") or {}).get(measure)),
            low=_number(interval[0]),
            high=_number(interval[1]),
            significant=bool((row.get("significant") or {}).get(measure)),
            baseline=bool(row.get("baseline")),
            compared_with=str(row.get("compared_with") or ""),
            wins_ties_losses=tuple((row.get("wins_ties_losses") or {}).get(measure) or ()),
        )

    @property
    def delta_text(self) -> str:
        """``+0.0300*`` (``*``: significant after Holm), ``baseline``, or blank."""
        if self.delta is None:
            return "baseline" if self.baseline else ""
        return f"{self.delta:+.4f}" + ("*" if self.significant else "")

    @property
    def interval_text(self) -> str:
        """``[-0.0120, +0.0410]``, or blank when the summary has no interval."""
        if self.low is None or self.high is None:
            return ""
        return f"[{self.low:+.4f}, {self.high:+.4f}]"

    @property
    def value_text(self) -> str:
        """``0.7555 (+0.0370*)``: the value and Δ as the summary table writes them (``(baseline)``
        on a baseline row)."""
        shown = self.delta_text
        return _text(self.value) + (f" ({shown})" if shown else "")

    def hover(self, measure: str) -> str:
        """The hover text: the absolute value, Δ with its interval, the baseline and W/T/L."""
        lines = [f"<b>{self.label}</b>", f"{measure}: {_text(self.value)}"]
        if self.delta is not None:
            lines.append(f"Δ {self.delta_text} {self.interval_text}".rstrip())
            base = None if self.value is None else self.value - self.delta
            lines.append(f"vs {self.compared_with or 'baseline'}: {_text(base)}")
            if len(self.wins_ties_losses) == 3:
                lines.append("win/tie/loss: " + "/".join(map(str, self.wins_ties_losses)))
        elif self.baseline:
            lines.append("baseline of its depth")
        return "<br>".join(lines)


def _text(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def delta_points(rows: Sequence[Mapping[str, Any]], measure: str) -> list[DeltaPoint]:
    """The points of the Δ figure, in the rows' order."""
    return [DeltaPoint.of(row, measure) for row in rows]


def delta_figure(rows: Sequence[Mapping[str, Any]], measure: str, *, title: str = ""):
    """Left: Δ ``measure`` vs each row's baseline as horizontal bars with the 95 % interval as
    error bars; right, on the same rows: the absolute value, on an axis fitted to the values
    (not from 0), labelled ``value (Δ*)`` (``*``: significant after Holm). One colour per
    kind; the rows keep the table's order top to bottom, long names wrapped (:func:`wrapped`).
    Rows without Δ (BM25, baselines) are blank on the left."""
    from plotly.subplots import make_subplots

    points = delta_points(rows, measure)
    figure = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        column_widths=[0.55, 0.45],
        horizontal_spacing=0.02,
        subplot_titles=(DELTA_TITLE.format(measure=measure), measure),
    )
    kinds = list(dict.fromkeys(p.kind for p in points))
    for kind in kinds:
        chosen = [p for p in points if p.kind == kind]
        colour = KIND_COLOURS.get(kind, OTHER_COLOUR)
        compared = [p for p in chosen if p.delta is not None]
        if compared:
            figure.add_bar(
                x=[p.delta for p in compared],
                y=[wrapped(p.label) for p in compared],
                orientation="h",
                marker_color=colour,
                name=kind,
                legendgroup=kind,
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [None if p.high is None else p.high - p.delta for p in compared],
                    "arrayminus": [None if p.low is None else p.delta - p.low for p in compared],
                    "color": "#444",
                    "thickness": 1.5,
                },
                hovertext=[p.hover(measure) for p in compared],
                hoverinfo="text",
                row=1,
                col=1,
            )
        valued = [p for p in chosen if p.value is not None]
        figure.add_scatter(
            x=[p.value for p in valued],
            y=[wrapped(p.label) for p in valued],
            mode="markers+text",
            marker={"color": colour, "size": 10, "symbol": "diamond"},
            text=[p.value_text for p in valued],
            textposition="middle right",
            name=kind,
            legendgroup=kind,
            showlegend=not compared,
            hovertext=[p.hover(measure) for p in valued],
            hoverinfo="text",
            row=1,
            col=2,
        )
    figure.add_vline(x=0, line_color="#888", line_width=1, row=1, col=1)
    extent = max(
        (abs(v) for p in points for v in (p.delta, p.low, p.high) if v is not None), default=0.0
    )
    if extent == 0:  # every Δ and interval is 0 (e.g. R@100 below the rerank depth)
        figure.update_xaxes(range=[-0.01, 0.01], row=1, col=1)
    values = [p.value for p in points if p.value is not None]
    if values:  # room on the right for the value labels
        low, high = min(values), max(values)
        pad = max(high - low, 0.01)
        figure.update_xaxes(range=[low - 0.1 * pad, high + 0.9 * pad], row=1, col=2)
    labels = list(dict.fromkeys(wrapped(p.label) for p in points))
    lines = max((label.count("<br>") + 1 for label in labels), default=1)
    figure.update_yaxes(categoryorder="array", categoryarray=labels, autorange="reversed")
    figure.update_layout(
        title={"text": title} if title else None,
        height=max(300, 120 + len(labels) * (22 + 14 * max(lines - 1, 0))),
        margin={"t": 60 if title else 40, "b": 60, "l": 10, "r": 10},
        barmode="overlay",
        legend={"orientation": "h", "x": 0, "y": -0.07, "yanchor": "top", "title": {"text": ""}},
        yaxis={"tickfont": {"size": 11}},
    )
    return figure
