"""Training: loss, learning rate, dev nDCG@10 from step 0, probe logits and drift, overlaid."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import loading, ui, views
from inpars_core.experiments.schema import SYNTHETIC_TRAINING_STAGES

PALETTE = px.colors.qualitative.D3  # runs must stay apart when overlaid


def _line(frame, y: str, title: str, key: str, log_y: bool = False) -> None:
    if frame.empty or y not in frame or frame[y].isna().all():
        st.caption(f"{title}: not logged")
        return
    figure = px.line(frame.dropna(subset=[y]), x="step", y=y, color="run", markers=True,
                     log_y=log_y, title=title, color_discrete_sequence=PALETTE)  # fmt: skip
    figure.update_layout(height=280, margin={"t": 40, "b": 0}, legend_title=None)
    st.plotly_chart(figure, key=key)


def render(ctx: ui.Context, experiment: loading.Experiment) -> None:
    """Pick training runs (variants and the base reranker) and overlay their logs."""
    stages = views.training_stages(experiment)
    if not stages:
        raise loading.MissingArtifactError(
            f"{experiment.path}/stages/finetune/<key>/train_log.jsonl",
            "A training log",
            "The finetune stage has not run yet.",
        )
    finetunes = [label for label, s in stages.items() if s.stage in SYNTHETIC_TRAINING_STAGES]
    chosen = ui.synced_multiselect(
        "Runs",
        list(stages),
        key="train_runs",
        param="runs",
        default=finetunes or list(stages),
        aliases=views.stage_aliases(stages),
    )
    if not chosen:
        st.info("Pick at least one run.")
        return
    train, evals, table, notes = views.training_for(chosen, stages)
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(
        "positives / negatives: the (query, document) pairs each run trained on (a pointwise "
        "objective trains each query's positive once per epoch and each negative once); "
        "pos:neg is their ratio, e.g. 1:5 for 5 negatives per positive."
    )
    for label, note, level in views.classify_notes(notes):
        getattr(st, level)(f"**{label}**: {note}")

    left, right = st.columns(2)
    with left:
        log_loss = st.toggle("Log-scale loss", key="train_log_loss")
        _line(train, "loss", "Training loss", "train_loss", log_y=log_loss)
        _line(train, "lr", "Learning rate", "train_lr")
        _line(train, "param_drift", "Parameter drift ‖θ−θ₀‖/‖θ₀‖", "train_drift")
    with right:
        if evals.empty or evals["nDCG@10"].isna().all():
            st.caption("Dev nDCG@10: no evaluation logged (no dev set for this run)")
        else:
            ev = evals.dropna(subset=["nDCG@10"])
            figure = px.line(ev, x="step", y="nDCG@10", color="run", markers=True,
                             title="Dev nDCG@10 (step 0 = before training; ★ = best)",
                             color_discrete_sequence=PALETTE)  # fmt: skip
            best = views.marked_points(evals, table, "best step")
            figure.add_scatter(
                x=best["step"], y=best["nDCG@10"], mode="markers", name="best",
                marker={"symbol": "star", "size": 16, "color": "gold",
                        "line": {"color": "black", "width": 1}},
            )  # fmt: skip
            kept = views.marked_points(evals, table, "kept step")
            kept = kept[~kept.index.isin(best.index)]
            if not kept.empty:  # keep = "final": model/ holds another step than the best
                figure.add_scatter(
                    x=kept["step"], y=kept["nDCG@10"], mode="markers", name="kept (final)",
                    marker={"symbol": "diamond", "size": 12, "color": "black"},
                )  # fmt: skip
            figure.update_layout(height=280, margin={"t": 40, "b": 0}, legend_title=None)
            st.plotly_chart(figure, key="train_dev")
        _line(evals, "probe_mean", "Probe logit mean", "train_probe_mean")
        _line(evals, "probe_std", "Probe logit std (collapse = silent MSE)", "train_probe_std")
    with st.expander("Raw logs"):
        st.dataframe(train, hide_index=True, width="stretch")
        st.dataframe(evals, hide_index=True, width="stretch")


ui.run_page("Training", render)
