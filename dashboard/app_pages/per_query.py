"""Per-query comparison of two runs: where fine-tuning helped and where it hurt."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import loading, ui, views

COLOURS = {"win": "#2e7d32", "tie": "#9e9e9e", "loss": "#c62828"}


def render(ctx: ui.Context, experiment: loading.Experiment) -> None:
    """Two runs: ΔnDCG@10 per query, scatter, W/T/L; one query's rankings side by side."""
    runs = views.comparable_runs(experiment)
    if len(runs) < 2:
        raise loading.MissingArtifactError(
            f"{experiment.path}/{loading.SUMMARY_FILE}",
            "A second evaluated row to compare with",
            f"summary.json has {len(runs)} row(s).",
        )
    labels = list(runs)
    default_a, default_b = views.default_pair(experiment)
    aliases = views.row_aliases(runs)  # a link may name a row by its system alone
    left, right = st.columns(2)
    with left:
        run_a = ui.synced_selectbox(
            "Run A (before)", labels, key="pq_a", param="a",
            default=default_a if default_a in runs else labels[0], aliases=aliases,
        )  # fmt: skip
    with right:
        run_b = ui.synced_selectbox(
            "Run B (after)", labels, key="pq_b", param="b",
            default=default_b if default_b in runs else labels[-1], aliases=aliases,
        )  # fmt: skip
    if run_a == run_b:
        st.info("Pick two different runs.")
        return
    measure = views.PER_QUERY_MEASURE
    row_a, row_b = runs[str(run_a)], runs[str(run_b)]
    frame = views.per_query_delta(experiment, row_a, row_b, measure)
    recorded = views.recorded_comparison(experiment, row_a, row_b, measure)
    wtl = (recorded or {}).get("wtl") or views.win_tie_loss(frame)
    means = [(r.get("measures") or {}).get(measure) for r in (row_a, row_b)]
    delta = recorded["delta"] if recorded else frame["delta"].mean()
    cols = st.columns(5)
    cols[0].metric(f"{measure} A", views.show(means[0], ".4f"))
    cols[1].metric(f"{measure} B", views.show(means[1], ".4f"), f"{delta:+.4f}")
    cols[2].metric("Wins", wtl["win"])
    cols[3].metric("Ties", wtl["tie"])
    cols[4].metric("Losses", wtl["loss"])
    if recorded:
        st.caption(
            f"B against its baseline A, as the pipeline tested it: paired t-test p "
            f"{views.show(recorded['t p'], '.4f')}, Wilcoxon p "
            f"{views.show(recorded['wilcoxon p'], '.4f')} (uncorrected); "
            + ("significant after Holm–Bonferroni." if recorded["significant"]
               else "not significant after Holm–Bonferroni.")
        )  # fmt: skip
    else:
        st.caption(
            f"Per-query values from {loading.PER_QUERY_FILE}; the pipeline tests each row "
            "against the baseline at its depth only (Overview), so no p-value for this pair."
        )

    chart_left, chart_right = st.columns([3, 2])
    bars = frame.reset_index().reset_index(names="position")
    figure = px.bar(
        bars, x="position", y="delta", color="outcome", color_discrete_map=COLOURS,
        hover_data={"query_id": True, "query": True, "position": False},
        labels={"delta": f"Δ {measure} (B − A)", "position": "queries, sorted by Δ"},
    )  # fmt: skip
    figure.update_layout(height=320, margin={"t": 20, "b": 0}, bargap=0)
    chart_left.plotly_chart(figure, key="pq_bars")
    scatter = px.scatter(
        frame.reset_index(), x="before", y="after", color="outcome", color_discrete_map=COLOURS,
        hover_data=["query_id", "query"],
        labels={"before": f"{measure} A", "after": f"{measure} B"},
    )  # fmt: skip
    scatter.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#777"},
                   showlegend=False, hoverinfo="skip")
    )  # fmt: skip
    scatter.update_layout(height=320, margin={"t": 20, "b": 0})
    chart_right.plotly_chart(scatter, key="pq_scatter")

    st.subheader("One query")
    deltas = frame["delta"].to_dict()
    texts = frame["query"].to_dict()
    query_id = ui.synced_selectbox(
        "Query (sorted by Δ)",
        list(frame.index),
        key="pq_query",
        param="query",
        format_func=lambda q: f"{q} — Δ {deltas.get(q, 0):+.3f} — {texts.get(q, '')[:80]}",
    )
    if query_id is None:
        return
    top = st.slider("Documents shown", 5, 100, 20, step=5, key="pq_top")
    st.markdown(f"> {texts.get(query_id, '')}")
    view_a, view_b, movement = views.side_by_side(
        experiment,
        views.run_path(experiment, row_a),
        views.run_path(experiment, row_b),
        str(query_id),
        top,
    )
    left, right = st.columns(2)
    for column, name, view in ((left, run_a, view_a), (right, run_b, view_b)):
        with column:
            st.markdown(f"**{name}**")
            st.dataframe(
                view.style.apply(
                    lambda r: ["background-color: #d4edda" if r["rel"] > 0 else ""] * len(r),
                    axis=1,
                ),
                hide_index=True,
                width="stretch",
                height=min(38 + 35 * len(view), 420),
            )
    st.markdown("**Relevant documents: rank movement (A → B)**")
    st.dataframe(movement, hide_index=True, width="stretch")

    st.markdown("**Closest synthetic training queries (word overlap)**")

    def closest() -> None:
        if not views.generations(experiment):
            st.info("No synthetic queries in this experiment.")
            return
        generation = views.generation_of_run(experiment, str(run_b))
        st.caption(
            f"Among the kept queries of {generation.label}"
            if generation
            else "Among the kept queries of every query set"
        )
        st.dataframe(
            views.closest_synthetic(experiment, texts.get(query_id, ""), generation),
            hide_index=True,
            width="stretch",
        )

    ui.guarded(closest)


ui.run_page("Per-query comparison", render)
