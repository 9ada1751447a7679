"""Encodings: how a (query, document) pair reaches the cross-encoder under each pair encoding
(``pair``, ``zero-types``, ``separate``, side by side), and what each rerank stage recorded."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import loading, ui, views
from inpars_core.reranking.encoding import PAIR_ENCODINGS

PACKAGED = "minilm (packaged backbone, untrained head)"
SOURCES = ["from the data", "typed"]


def render(ctx: ui.Context, experiment: loading.Experiment) -> None:
    """Pick a model and a pair; show the three encodings with their scores and truncation
    stats, and the encoding each rerank stage recorded."""
    models = views.rerank_models(experiment)
    if not models:
        st.info(
            "This experiment has no trained reranker yet (no complete `base-train` or "
            "`finetune` stage): showing the packaged MiniLM backbone, whose scores mean nothing."
        )
        models = {PACKAGED: "minilm"}
    label = ui.synced_selectbox(
        "Model", list(models), key="enc_model", param="model",
        aliases=views.stage_aliases(views.training_stages(experiment)),
    )  # fmt: skip
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
            "Pair from the data", list(pairs), key="enc_pair", param="pair",
            aliases=views.pair_aliases(pairs),
        )  # fmt: skip
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

    explained = {
        mode: loading.explain_pair(model, query, document, mode, max_length)
        for mode in PAIR_ENCODINGS
    }
    for column, (mode, shown) in zip(
        st.columns(len(PAIR_ENCODINGS)), explained.items(), strict=True
    ):
        with column:
            st.subheader(f"`{mode}`")
            st.caption(f"({views.ENCODING_TITLES[mode]})")
            cols = st.columns(2)
            cols[0].metric("Score", f"{shown['score']:.4f}")
            cols[1].metric("[CLS]", shown["cls_count"])
            cols = st.columns(2)
            cols[0].metric("Tokens kept", f"{shown['length']}/{shown['untruncated_length']}")
            cols[1].metric("Type-1 tokens", shown["type1_tokens"])
            for problem in shown["problems"]:
                st.error(problem)
            if not shown["problems"]:
                st.success("One [CLS]; token types switch 0 → 1 after the first [SEP].")
            st.markdown(views.tokens_html(shown), unsafe_allow_html=True)
            with st.expander("Token table"):
                st.dataframe(views.tokens_frame(shown), width="stretch", height=240)
    st.caption("Blue: token_type_id 0 · orange: 1 · grey struck through: attention mask 0.")
    st.dataframe(views.encodings_frame(explained), width="stretch", hide_index=True)

    st.subheader("What each rerank stage saw")
    recorded = views.rerank_encodings(experiment)
    if recorded.empty:
        st.info("No cross-encoder row in summary.json yet.")
    else:
        st.caption(
            "From each row's rerank stage meta.json (`encoding`): the share of token_type_id 1 "
            "and the [CLS] count per pair over the first reranked pairs."
        )
        st.dataframe(recorded, width="stretch", hide_index=True)

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
