"""Synthetic queries: browse, search and filter generated queries next to their document."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import loading, ui, views

VERDICTS = ["kept", "dropped", "not filtered"]


def _highlight(row):  # one CSS string per cell
    colour = "background-color: #fff3cd" if row["flags"] else ""
    if row["verdict"] == "dropped":
        colour = "background-color: #f8d7da"
    return [colour] * len(row)


def consistency_section(generation: views.Generation) -> None:
    """The model-based consistency check (InPars-light) of these queries, when one ran: which
    queries the model trained on them kept, and where it ranked each source document."""
    table = views.consistency_frame(generation)
    if table is None:
        return
    config = generation.consistency.config if generation.consistency else {}
    k, depth = config.get("consistency_k"), config.get("consistency_depth")
    st.markdown(
        f"**Consistency check** (a cross-encoder trained on these queries reranks each query's "
        f"BM25 top {depth}; a query is kept when its source document is in the model's top {k})"
    )
    kept = int((table["verdict"] == "kept").sum())
    cols = st.columns(3)
    cols[0].metric("Checked", len(table))
    cols[1].metric("Consistent (kept)", kept)
    cols[2].metric("Inconsistent (dropped)", len(table) - kept)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=240,
        column_config={"source rank (model)": st.column_config.NumberColumn(format="%.0f")},
        key="synthetic_consistency",
    )


def render(ctx: ui.Context, experiment: loading.Experiment) -> None:
    """Pick a generation, filter its queries, inspect one with its document and negatives."""
    gens = views.generations(experiment)
    if not gens:
        raise loading.MissingArtifactError(
            f"{experiment.path}/stages/generate/<key>/queries.jsonl",
            "Generated queries",
            "The generate stage has not run (or not written a query) yet.",
        )
    label = ui.synced_selectbox(
        "Query set", list(gens), key="synthetic_gen", param="gen",
        aliases=views.generation_aliases(gens),
    )  # fmt: skip
    generation = gens[str(label)]
    frame, bad = views.synthetic_for(experiment, generation)
    if not generation.generate.complete:
        st.warning(
            f"Generation is unfinished (`{generation.generate.path}`): showing the "
            f"{len(frame)} queries written so far.",
            icon="⚠️",
        )
    if bad:
        st.warning(f"{bad} unreadable line(s) in queries.jsonl were skipped.", icon="⚠️")
    if generation.filter is None:
        st.info(
            "No filter stage is recorded for these queries (summary.json names the stages each "
            "row used; it is written when the experiment finishes): no verdicts shown."
        )

    counts = frame["verdict"].value_counts()
    cols = st.columns(5)
    cols[0].metric("Generated", len(frame))
    cols[1].metric("Kept", int(counts.get("kept", 0)))
    cols[2].metric("Dropped", int(counts.get("dropped", 0)))
    cols[3].metric("Flagged", int((frame["flags"] != "").sum()))
    cost = frame["cost_usd"].fillna(0).sum()
    cols[4].metric("Cost", f"US${cost:.4f}")

    left, mid, right = st.columns([2, 2, 1])
    with left:
        search = ui.synced_text("Search (text or id)", key="synthetic_search", param="search")
    with mid:
        verdicts = ui.synced_multiselect(
            "Verdict", VERDICTS, key="synthetic_verdict", param="verdict"
        )
    with right:
        flagged = st.toggle("Flagged only", key="synthetic_flagged")
    shown = views.filter_queries(frame, search, verdicts, flagged)
    st.caption(
        f"{len(shown)} of {len(frame)} queries; yellow = flagged (duplicate, copy of the "
        "document or of a few-shot example), red = dropped by a filter."
    )
    columns = ["query_id", "text", "mean_logprob", "words", "verdict", "dropped by", "reasons",
               "flags", "source rank", "doc_id"]  # fmt: skip
    table = shown[columns]
    if len(table) <= 2000:
        table = table.style.apply(_highlight, axis=1)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=320,
        column_config={"mean_logprob": st.column_config.NumberColumn(format="%.3f")},
    )

    hist_left, hist_right = st.columns(2)
    if frame["mean_logprob"].notna().any():
        figure = px.histogram(frame, x="mean_logprob", color="verdict", nbins=30, barmode="stack")
        figure.update_layout(height=260, margin={"t": 20, "b": 0})
        hist_left.plotly_chart(figure, key="synthetic_hist_logprob")
    else:
        hist_left.info("No log-probs recorded (the backend did not return them).")
    figure = px.histogram(frame, x="words", color="verdict", nbins=30, barmode="stack")
    figure.update_layout(height=260, margin={"t": 20, "b": 0})
    hist_right.plotly_chart(figure, key="synthetic_hist_words")

    ui.guarded(lambda: consistency_section(generation))

    st.subheader("One query")
    options = list(shown["query_id"]) or list(frame["query_id"])
    texts = dict(zip(frame["query_id"], frame["text"], strict=True))
    query_id = ui.synced_selectbox(
        "Query",
        options,
        key="synthetic_query",
        param="q",
        format_func=lambda q: f"{q} — {texts.get(q, '')[:80]}",
    )
    if query_id is None:
        return
    row = frame[frame["query_id"] == query_id].iloc[0]
    dataset = loading.dataset_for(experiment)
    title, text = loading.document_text(dataset, row["doc_id"])
    left, right = st.columns(2)
    with left:
        st.markdown(f"**Query** `{query_id}`")
        st.markdown(f"> {row['text']}")
        st.markdown(
            f"mean log-prob **{views.show(row['mean_logprob'], '.3f')}** · {row['words']} words"
            f" · verdict **{row['verdict']}** · source document's BM25 rank "
            f"**{views.show(row['source rank'], '.0f')}**"
        )
        if row["reasons"]:
            st.error(f"Dropped by {row['dropped by']}: {row['reasons']}")
        if row["flags"]:
            st.warning(f"Flags: {row['flags']}")
        if row["raw_output"] and row["raw_output"].strip() != row["text"]:
            st.caption(f"Raw output: {row['raw_output']!r}")
    with right:
        st.markdown(f"**Source document** `{row['doc_id']}` — {title}")
        st.markdown(text[:1500] + ("…" if len(text) > 1500 else ""))

    st.markdown("**Filter verdicts** (verdicts.jsonl)")

    def verdict_table() -> None:
        if generation.filter is None:
            st.info("No filter stage is recorded for these queries.")
            return
        table = views.verdicts_of(generation, str(query_id))
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_config={"value": st.column_config.NumberColumn(format="%.4f")},
        )

    ui.guarded(verdict_table)

    st.markdown("**The exact prompt** (prompt.json, filled with this document)")

    def prompt() -> None:
        shown = views.prompt_of(experiment, generation, str(row["doc_id"]), str(row["prompt_hash"]))
        st.caption(
            f"Prompt `{shown['prompt_id']}` · hash `{shown['prompt_hash']}` · document cut to "
            f"{shown['max_document_words']} words · "
            + ("chat model (system message, then the prompt as the user turn)"
               if shown["chat"] else "base model (completion)")
        )  # fmt: skip
        if shown["hash_matches"] is False:
            st.warning(
                f"This query records prompt hash `{row['prompt_hash']}`, not the stage's "
                f"`{shown['prompt_hash']}`: it was generated from another template.",
                icon="⚠️",
            )
        if shown["system_message"]:
            st.code(shown["system_message"], language=None, wrap_lines=True)
        st.code(shown["text"], language=None, wrap_lines=True)

    ui.guarded(prompt)

    st.markdown("**Negatives mined for this query**")

    def negatives() -> None:
        neg = views.negatives_for(experiment, generation, str(query_id))
        if neg.empty:
            st.info("No negatives for this query (dropped by the filters, or none mined).")
        else:
            st.dataframe(neg, hide_index=True, width="stretch")

    ui.guarded(negatives)


ui.run_page("Synthetic queries", render)
