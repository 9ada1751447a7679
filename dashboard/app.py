"""InPars Lab dashboard: ``inpars dashboard --runs-dir DIR`` or
``streamlit run dashboard/app.py -- --runs-dir DIR``.

Page config, the sidebar (runs directory, experiment picker mirrored into ``?exp=``) and the
navigation; the pages live in ``app_pages/``. The app only reads what the pipeline wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import loading, ui  # noqa: E402

st.set_page_config(page_title="InPars Lab", page_icon="🔎", layout="wide")

with st.sidebar:
    st.markdown("### InPars Lab")
    fixed = loading.runs_dir_is_fixed()  # served beyond this machine: the CLI's folder only
    if fixed or "runs_dir" not in st.session_state:
        st.session_state["runs_dir"] = loading.default_runs_dir()
    runs_dir = st.text_input(
        "Runs directory",
        key="runs_dir",
        disabled=fixed,
        help="fixed by `inpars dashboard --runs-dir` (the dashboard is served to other machines)"
        if fixed
        else "folder given to `inpars run`",
    )
    if fixed:
        runs_dir = loading.default_runs_dir()
    experiment = None
    try:
        names = loading.list_experiments(runs_dir)
    except loading.MissingArtifactError as exc:
        st.warning(exc.message, icon="⚠️")
        names = []
    if runs_dir and names:
        experiment = ui.synced_selectbox("Experiment", names, key="experiment", param="exp")
        try:
            loaded = loading.get_experiment(runs_dir, experiment) if experiment else None
        except (loading.MissingArtifactError, loading.BadArtifactError) as exc:
            loaded = None
            st.warning(exc.message, icon="⚠️")
        if loaded is not None:
            if loaded.summary is None:
                st.warning(
                    "No readable summary.json: the experiment is interrupted, still running "
                    "or damaged (details on the Overview page)."
                )
            elif loaded.unfinished:
                st.info(f"{len(loaded.unfinished)} unfinished stage(s).")
            else:
                st.success(f"{len(loaded.summary.get('rows', []))} systems compared.")
    elif runs_dir:
        st.info(f"No experiment in `{runs_dir}` yet: run `inpars run CONFIG --runs-dir DIR`.")

ui.set_context(ui.Context(runs_dir, experiment))

PAGES = [
    st.Page(script, title=title, url_path=url_path, default=url_path == "overview")
    for url_path, (script, title) in ui.PAGES.items()
]
st.navigation(PAGES).run()
