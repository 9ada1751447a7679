"""Overview: the experiment's stages and the before/after table, with exports."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import export, loading, ui, views
from inpars_core.experiments.summary import CI_FIELD
from inpars_core.reporting import figures


def render(ctx: ui.Context, experiment: loading.Experiment) -> None:
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
    variants = views.variants_frame(experiment)
    if not variants.empty:
        st.subheader("Variants")
        st.dataframe(views.blank_missing(variants), hide_index=True, width="stretch")
    with st.expander(f"Stages ({len(experiment.stages)} folders)", expanded=summary is None):
        stages = views.stages_frame(experiment)
        st.dataframe(views.blank_missing(stages), hide_index=True, width="stretch")
    if summary is None:
        return

    depths = views.summary_depths(experiment)
    depth = ui.synced_radio(
        "Rerank depth", [*depths, "all"], key="overview_depth", param="depth", horizontal=True
    )
    display, raw = views.overview_frames(experiment, depth or "all")
    st.subheader("Before / after")
    for note in views.summary_notes(experiment):
        st.caption(note)
    st.dataframe(views.blank_missing(display), hide_index=True, width="stretch")

    name = f"{experiment.name}-depth-{depth}"
    cols = st.columns(4)
    try:
        markdown = export.summary_markdown(experiment)
    except loading.MissingArtifactError as exc:
        cols[0].caption(exc.message)
    else:
        cols[0].download_button(
            "Markdown", markdown, f"{experiment.name}.md", "text/markdown", key="overview_dl_md"
        )
    cols[1].download_button(
        "CSV", export.table_csv(raw), f"{name}.csv", "text/csv", key="overview_dl_csv"
    )
    cols[2].download_button(
        "LaTeX", export.table_latex(display, experiment.name), f"{name}.tex", "text/x-tex",
        key="overview_dl_tex",
    )  # fmt: skip
    cols[3].download_button(
        "PNG (slides)",
        lambda: export.table_png(display, f"{experiment.name} — depth {depth}"),
        f"{name}.png",
        "image/png",
        key="overview_dl_png",
    )

    block = summary.get("no_overlap")
    if block:
        st.subheader(f"Only the {block.get('test_queries')} test queries without overlap")
        overlap = views.overlap_of(experiment)
        st.caption(
            f"The same systems evaluated without the {len(overlap.get('overlapping') or [])} "
            "test queries that share a relevant document with a query the reranker was trained "
            "or selected on; Δ against the same baselines."
        )
        clean, clean_raw = views.overview_frames(experiment, depth or "all", without_overlap=True)
        st.dataframe(views.blank_missing(clean), hide_index=True, width="stretch")
        st.download_button(
            "CSV (without overlap)",
            export.table_csv(clean_raw),
            f"{name}-no-overlap.csv",
            "text/csv",
            key="overview_dl_clean_csv",
        )

    measures = list(summary.get("measures") or [])
    measure = ui.synced_selectbox("Measure", measures, key="overview_measure", param="measure")
    if measure and not raw.empty:  # Δ with its interval, the value beside (the report's too)
        rows = views.overview_rows(experiment, depth or "all")
        st.plotly_chart(figures.delta_figure(rows, measure), key="overview_delta")
        if not any(CI_FIELD in r for r in rows):
            st.caption(
                "This summary has no Δ intervals (written before they were computed): rerun "
                "`inpars run` to add them."
            )

    if measure and depth not in (None, "all"):
        st.subheader(f"Paired tests at depth {depth}: {measure}")

        def paired() -> None:
            clean = False
            if summary.get("no_overlap"):
                clean = st.toggle(
                    "Without the test queries that overlap the training queries",
                    key="overview_paired_clean",
                )
            frame = views.paired_frame(experiment, depth, measure, without_overlap=clean)
            if frame is None:
                st.info(f"No baseline row at depth {depth} to compare against.")
                return
            st.caption(
                "As the pipeline computed them (summary.json): Δ, win/tie/loss, the paired "
                "t-test and Wilcoxon p-values (uncorrected), and * = both < 0.05 after "
                "Holm–Bonferroni over the pipeline's family."
            )
            st.dataframe(views.blank_missing(frame), hide_index=True, width="stretch")
            cols = st.columns(3)
            stem = f"{experiment.name}-{measure}-depth-{depth}" + ("-no-overlap" if clean else "")
            cols[0].download_button(
                "Markdown", export.table_markdown(frame), f"{stem}.md", key="overview_cmp_md"
            )
            cols[1].download_button(
                "CSV", export.table_csv(frame), f"{stem}.csv", key="overview_cmp_csv"
            )
            cols[2].download_button(
                "LaTeX", export.table_latex(frame), f"{stem}.tex", key="overview_cmp_tex"
            )

        ui.guarded(paired)

    seconds = views.stage_seconds_frame(experiment)
    if not seconds.empty:
        st.subheader("Stage times")
        figure = px.bar(seconds, x="seconds", y="system", color="stage", orientation="h")
        height = max(320, 60 + 28 * seconds["system"].nunique())
        figure.update_layout(height=height, margin={"t": 10})
        st.plotly_chart(figure, key="overview_times")


ui.run_page("Overview", render)
