"""Encodings: how a (query, document) pair reaches the cross-encoder, pair vs separate."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import loading, ui, views

PACKAGED = "minilm (packaged backbone, untrained head)"
SOURCES = ["from the data", "typed"]


def render(ctx: ui.Context, experiment: loading.Experiment) -> None:
    """Pick a model and a pair; show both encodings with their scores and truncation stats."""
    models = views.rerank_models(experiment)
    if not models:
        st.info(
            "This experiment has no trained reranker yet (no complete `base-train` or "
            "`finetune` stage): showing the packaged MiniLM backbone, whose scores mean nothing."
        )
        models = {PACKAGED: "minilm"}
    label = ui.synced_selectbox("Model", list(models), key="enc_model", param="model")
    model = models[str(label)]
    source = ui.synced_radio("Pair", SOURCES, key="enc_source", param="src", horizontal=True)
    if source == "typed":
        query = ui.synced_text("Query", key="enc_query", param="query", default="what is ...")
        document = st.text_area(
            "Document", key="enc_doc", value="Type or paste a document here.", height=120
        )
    else:
        pairs = views.sample_pairs(experiment)
        if not pairs:
            st.info("No judged test query or synthetic query found: type a pair instead.")
            return
        choice = ui.synced_selectbox(
            "Pair from the data", list(pairs), key="enc_pair", param="pair"
        )
        query, doc_id, document = pairs[str(choice)]
        st.caption(f"Document `{doc_id}`: {document[:300]}{'…' if len(document) > 300 else ''}")
    max_length = ui.synced_int(
        "max_length",
        key="enc_max_length",
        param="maxlen",
        default=views.default_max_length(experiment),
        min_value=8,
        max_value=512,
        step=8,
    )
    if not query.strip() or not document.strip():
        st.info("Type a query and a document.")
        return

    columns = st.columns(2)
    for column, mode in zip(columns, ("pair", "separate"), strict=True):
        explained = loading.explain_pair(model, query, document, mode, max_length)
        with column:
            st.subheader(f"`{mode}`" + (" (correct)" if mode == "pair" else " (the seed's bug)"))
            kept = sum(explained["attention_mask"])
            cols = st.columns(3)
            cols[0].metric("Score", f"{explained['score']:.4f}")
            cols[1].metric("Tokens kept", f"{kept}/{explained['untruncated_length']}")
            cols[2].metric("Type-1 tokens", sum(explained["token_type_ids"]))
            for problem in explained["problems"]:
                st.error(problem)
            if not explained["problems"]:
                st.success("One [CLS]; token types switch 0 → 1 after the first [SEP].")
            st.markdown(views.tokens_html(explained), unsafe_allow_html=True)
            with st.expander("Token table"):
                st.dataframe(views.tokens_frame(explained), width="stretch", height=240)
    st.caption("Blue: token_type_id 0 · orange: 1 · grey struck through: attention mask 0.")

    st.subheader(f"Truncation of the corpus at max_length {max_length}")
    dataset = loading.dataset_source(experiment)
    total = len(loading.dataset_for(experiment).corpus)
    limit = int(
        st.number_input(
            "Documents sampled (0 = all)",
            min_value=0,
            max_value=total,
            value=min(loading.CORPUS_SAMPLE, total),
            step=500,
            key="enc_sample",
            help="evenly spaced over the corpus; every document is slow on large corpora",
        )
    )
    stats = loading.truncation(model, dataset, max_length, limit)
    cols = st.columns(4)
    cols[0].metric("Documents", f"{int(stats['documents'])} of {total}")
    cols[1].metric("Truncated", f"{stats['truncated_fraction']:.1%}")
    cols[2].metric("Median tokens", f"{stats['median_tokens']:.0f}")
    cols[3].metric("Mean tokens lost", f"{stats['mean_tokens_lost']:.1f}")
    lengths = loading.document_lengths(model, dataset, limit)
    figure = px.histogram(x=lengths, nbins=60, labels={"x": "document tokens"})
    figure.add_vline(x=max_length - 23, line_dash="dash", annotation_text="budget (20-token query)")
    figure.update_layout(height=260, margin={"t": 20, "b": 0}, yaxis_title="documents")
    st.plotly_chart(figure, key="enc_lengths")


ui.run_page("Encodings", render)
