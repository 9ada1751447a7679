"""Overview: the experiment's stages and the before/after table, with exports."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import data, ui


def render(ctx: ui.Context, experiment: data.Experiment) -> None:
    """Status, the before/after table (Δ, Holm marks, cost, times), charts and exports."""
    for problem in experiment.problems:
        st.warning(problem, icon="⚠️")
    summary = experiment.summary
    if summary is not None:
        cols = st.columns(4)
        cols[0].metric("Dataset", str(summary.get("dataset")))
        cols[1].metric("Test queries", int(summary.get("test_queries") or 0))
        cols[2].metric("Systems", len(summary.get("rows") or []))
        cols[3].metric("Wall time", f"{float(summary.get('wall_seconds') or 0):.0f} s")
    variants = data.variants_frame(experiment)
    if not variants.empty:
        st.subheader("Variants")
        st.dataframe(variants, hide_index=True, width="stretch")
    with st.expander(f"Stages ({len(experiment.stages)} folders)", expanded=summary is None):
        st.dataframe(data.stages_frame(experiment), hide_index=True, width="stretch")
    if summary is None:
        return

    depths = data.summary_depths(experiment)
    depth = ui.synced_radio(
        "Rerank depth", [*depths, "all"], key="overview_depth", param="depth", horizontal=True
    )
    display, raw = data.overview_frames(experiment, depth or "all")
    st.subheader("Before / after")
    st.caption(
        f"Δ vs `{data.BASELINE}` at the same depth; * = paired t-test and Wilcoxon both < 0.05 "
        "after Holm–Bonferroni across the systems at that depth."
    )
    st.dataframe(display, hide_index=True, width="stretch")

    name = f"{experiment.name}-depth-{depth}"
    cols = st.columns(4)
    cols[0].download_button(
        "Markdown", data.summary_markdown(experiment), f"{experiment.name}.md", "text/markdown",
        key="overview_dl_md",
    )  # fmt: skip
    cols[1].download_button(
        "CSV", data.table_csv(raw), f"{name}.csv", "text/csv", key="overview_dl_csv"
    )
    cols[2].download_button(
        "LaTeX", data.table_latex(display, experiment.name), f"{name}.tex", "text/x-tex",
        key="overview_dl_tex",
    )  # fmt: skip
    cols[3].download_button(
        "PNG (slides)",
        lambda: data.table_png(display, f"{experiment.name} — depth {depth}"),
        f"{name}.png",
        "image/png",
        key="overview_dl_png",
    )

    measures = list(summary.get("measures") or [])
    measure = ui.synced_selectbox("Measure", measures, key="overview_measure", param="measure")
    if measure and not raw.empty:
        chart = raw.assign(label=raw["system"] + " @" + raw["depth"])
        figure = px.bar(chart, x="label", y=measure, color="kind", text_auto=".3f")
        figure.update_layout(height=340, xaxis_title=None, margin={"t": 20, "b": 0})
        st.plotly_chart(figure, key="overview_bar")

    if measure and depth not in (None, "all"):
        st.subheader(f"Paired tests at depth {depth}: {measure}")

        def paired() -> None:
            from inpars_core.compare import to_csv, to_latex, to_markdown

            comparison = data.paired_comparison(experiment, depth, measure)
            if comparison is None:
                st.info(f"No `{data.BASELINE}` row at depth {depth} to compare against.")
                return
            st.dataframe(data.comparison_frame(comparison), hide_index=True, width="stretch")
            cols = st.columns(3)
            stem = f"{experiment.name}-{measure}-depth-{depth}"
            cols[0].download_button(
                "Markdown", to_markdown(comparison), f"{stem}.md", key="overview_cmp_md"
            )
            cols[1].download_button(
                "CSV", to_csv(comparison), f"{stem}.csv", key="overview_cmp_csv"
            )
            cols[2].download_button(
                "LaTeX", to_latex(comparison), f"{stem}.tex", key="overview_cmp_tex"
            )

        ui.guarded(paired)

    seconds = data.stage_seconds_frame(experiment)
    if not seconds.empty:
        st.subheader("Stage times")
        figure = px.bar(seconds, x="seconds", y="system", color="stage", orientation="h")
        height = max(320, 60 + 28 * seconds["system"].nunique())
        figure.update_layout(height=height, margin={"t": 10})
        st.plotly_chart(figure, key="overview_times")


ui.run_page("Overview", render)
