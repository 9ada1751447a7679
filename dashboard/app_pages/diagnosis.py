"""Diagnosis: why fine-tuning hurt, per fine-tuned variant, as ``diagnosis.json`` records it
(``inpars diagnose`` or the last stage of ``inpars run``): the findings most severe first, each
with its evidence, the queries or pairs that show it, the page that shows it and its fix; and
a button that writes the fixes as a new variant of the experiment's config."""

from __future__ import annotations

from pathlib import Path

import plotly.express as px
import streamlit as st

from dashboard import loading, ui, views
from inpars_core.diagnosis.findings import VERDICTS, Finding, VariantDiagnosis
from inpars_core.diagnosis.fixes import (
    fixed_config_path,
    fixed_variant_name,
    toml_key,
    toml_value,
    union_of_fixes,
    write_fixed_config,
)
from inpars_core.errors import InparsError

ICONS = {"fail": "🔴", "warn": "🟠", "ok": "🟢", "n/a": "⚪"}
MAX_IDS = 24


def _evidence(finding: Finding, key: str) -> None:
    table, series, records = views.evidence_parts(finding.evidence)
    if not table.empty:
        st.dataframe(table, hide_index=True, width="stretch", key=f"{key}_table")
    for name, frame in series.items():
        x = frame.columns[0]
        figure = px.line(frame, x=x, y=name, markers=True, title=name)
        figure.update_layout(height=240, margin={"t": 40, "b": 0})
        st.plotly_chart(figure, key=f"{key}_{name}")
    for name, frame in records.items():
        st.caption(name)
        st.dataframe(frame, hide_index=True, width="stretch", key=f"{key}_{name}")


def _links(finding: Finding, item: VariantDiagnosis, experiment: loading.Experiment) -> None:
    if finding.ids:
        links = views.finding_id_links(
            finding.ids[:MAX_IDS],
            finding.page,
            experiment=experiment.name,
            system=item.system,
            baseline=item.baseline,
            test_query_ids=[str(q) for q in (experiment.summary or {}).get("test_query_ids", [])],
        )
        shown = [f"[`{i}`]({url})" if url else f"`{i}`" for i, url in links]
        more = len(finding.ids) - MAX_IDS
        st.markdown(
            "**Shown by:** " + " · ".join(shown) + (f" … and {more} more" if more > 0 else "")
        )
    target = ui.page_target(finding.page) if finding.page else None
    if target is not None:
        script, params = target
        title = next(t for s, t in ui.PAGES.values() if s == script)
        st.page_link(
            script,
            label=f"Open {title} ({finding.page})",
            icon="🔎",
            query_params={**params, "exp": experiment.name},
        )
    elif finding.page:
        st.caption(f"Page: `{finding.page}`")


def _finding(finding: Finding, item: VariantDiagnosis, experiment: loading.Experiment) -> None:
    label = f"{ICONS[finding.verdict]} {finding.code} · {finding.title} — {finding.verdict}"
    with st.expander(label, expanded=finding.verdict == "fail"):
        st.markdown(finding.summary)
        key = f"diag_{item.variant}_{finding.code}"
        if finding.evidence:
            _evidence(finding, key)
        _links(finding, item, experiment)
        if finding.fix:
            st.markdown("**Fix** (in the variant's `[variants.NAME]` table):")
            lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in finding.fix.items()]
            st.code("\n".join(lines), language="toml")
        if finding.expected:
            st.markdown(f"**Expected:** {finding.expected}")


def _fix_button(item: VariantDiagnosis, experiment: loading.Experiment, runs_dir: str) -> None:
    st.subheader("Write the fix as a new variant")
    fixes, sources, conflicts = union_of_fixes(item)
    own = ((experiment.manifest or {}).get("config", {}).get("variants") or {}).get(
        item.variant, {}
    )
    name = fixed_variant_name(item.variant)
    if not fixes:
        st.info("No fail or warn finding of this variant proposes a config change.")
        return
    st.caption(
        f"`[variants.{name}]` = variant `{item.variant}`'s own settings + the fixes of its fail "
        "and warn findings (the more severe finding wins when two set the same key), in a copy "
        "of the experiment's config next to it. Nothing else is changed."
    )
    st.dataframe(views.fix_frame({**own, **fixes}, sources), hide_index=True, width="stretch")
    for conflict in conflicts:
        st.warning(f"Conflicting fixes: {conflict}", icon="⚠️")
    fixed = loading.runs_dir_is_fixed()
    path = fixed_config_path(Path(experiment.path), experiment.name)
    pressed = st.button(
        "Write the fix as a new variant",
        key=f"diag_fix_{item.variant}",
        disabled=fixed,
        help="the dashboard is served to other machines: it writes nothing (run `inpars "
        "dashboard` locally to write the config)"
        if fixed
        else f"writes {path}",
    )
    if pressed:
        try:
            written = write_fixed_config(Path(experiment.path), item)
        except InparsError as exc:
            ui.show_problem(exc)
            return
        st.success(f"Wrote `{written.path}` with variant `{written.variant}`.", icon="✅")
        st.code(written.command(runs_dir), language="bash")
        st.caption(
            "The experiment keeps its name, so every finished stage is reused and only the "
            "new variant runs; with `--variant` the summary holds the baselines and that "
            "variant (run without `--variant` to compare every variant again, all cached)."
        )


def render(ctx: ui.Context, experiment: loading.Experiment) -> None:
    """Pick a fine-tuned variant; show its findings and the fix."""
    try:
        diagnosis = loading.diagnosis_for(experiment)
    except loading.MissingArtifactError as exc:  # not diagnosed yet: how to do it
        st.info(f"{exc.message} The dashboard only reads it.", icon="ℹ️")
        return
    if not diagnosis.variants:
        st.info("No fine-tuned variant in this experiment: nothing to diagnose.")
        return
    by_name = {item.variant: item for item in diagnosis.variants}

    def describe(name: str) -> str:
        counts = by_name[name].counts()
        return f"{name} — " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])

    chosen = ui.synced_selectbox(
        "Fine-tuned variant", list(by_name), key="diag_variant", param="variant",
        format_func=describe,
    )  # fmt: skip
    item = by_name[str(chosen)]
    st.caption(
        f"System `{item.system}`"
        + (f", compared with `{item.baseline}`" if item.baseline else "")
        + f". From `{Path(experiment.path) / loading.DIAGNOSIS_FILE}`."
    )
    counts = item.counts()
    for column, verdict in zip(st.columns(len(VERDICTS)), VERDICTS, strict=True):
        column.metric(f"{ICONS[verdict]} {verdict}", counts[verdict])
    for finding in item.findings:
        _finding(finding, item, experiment)
    _fix_button(item, experiment, ctx.runs_dir)


ui.run_page("Diagnosis", render)
