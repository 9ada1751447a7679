"""Shared page furniture: the current experiment, widgets mirrored into the URL's query
parameters (so a view can be shared as a link), and the guard that turns a missing artifact into
a message instead of a traceback."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import loading

CONTEXT_KEY = "_inpars_context"
#: URL path -> (script, title) of every page, in the order of the navigation (``app.py``).
PAGES: dict[str, tuple[str, str]] = {
    "overview": ("app_pages/overview.py", "Overview"),
    "diagnosis": ("app_pages/diagnosis.py", "Diagnosis"),
    "synthetic": ("app_pages/synthetic.py", "Synthetic queries"),
    "encodings": ("app_pages/encodings.py", "Encodings"),
    "per-query": ("app_pages/per_query.py", "Per-query comparison"),
    "training": ("app_pages/training.py", "Training"),
}


@dataclass(frozen=True)
class Context:
    """What the sidebar chose: the runs directory and the experiment (if any)."""

    runs_dir: str
    experiment: str | None

    def load(self) -> loading.Experiment:
        """The chosen experiment (cached until a file changes)."""
        if self.experiment is None:
            raise loading.MissingArtifactError(
                self.runs_dir,
                "An experiment folder",
                "Run `inpars run CONFIG --runs-dir DIR` to create one.",
            )
        return loading.get_experiment(self.runs_dir, self.experiment)


def set_context(context: Context) -> None:
    """Remember the sidebar's choice for the page about to run."""
    st.session_state[CONTEXT_KEY] = context


def context() -> Context:
    """The sidebar's choice (the runs directory default when the app script did not run)."""
    found = st.session_state.get(CONTEXT_KEY)
    if not isinstance(found, Context):
        return Context(loading.default_runs_dir(), None)
    if loading.runs_dir_is_fixed() and found.runs_dir != loading.default_runs_dir():
        return Context(loading.default_runs_dir(), None)  # never another folder when served
    return found


def _from_url(param: str) -> str | None:
    value = st.query_params.get(param)
    return None if value is None else str(value)


def _resolve(
    value: str | None, options: Sequence[str], aliases: Mapping[str, str] | None
) -> str | None:
    """``value`` if it is an option, else the option its alias names (else ``value``)."""
    if value is None or value in options or not aliases:
        return value
    return aliases.get(value, value)


def _mirror(param: str, value: Any) -> None:
    text = "" if value is None else str(value)
    if text:
        if st.query_params.get(param) != text:
            st.query_params[param] = text
    elif param in st.query_params:
        del st.query_params[param]


def synced_selectbox(
    label: str,
    options: Sequence[str],
    *,
    key: str,
    param: str,
    default: str | None = None,
    aliases: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> str | None:
    """A selectbox whose choice starts from ``?param=`` and is written back to it.

    ``aliases`` maps other names a link may give in ``?param=`` (a stage key, a system name
    without its depth) to the option they mean."""
    options = list(options)
    if not options:
        _mirror(param, None)
        return None
    current = st.session_state.get(key)
    if current not in options:
        wanted = _resolve(_from_url(param), options, aliases)
        if wanted in options:
            st.session_state[key] = wanted
        else:
            st.session_state[key] = default if default in options else options[0]
    value = st.selectbox(label, options, key=key, **kwargs)
    _mirror(param, value)
    return value


def synced_radio(
    label: str, options: Sequence[str], *, key: str, param: str, default: str | None = None,
    **kwargs: Any,
) -> str | None:  # fmt: skip
    """A radio group whose choice starts from ``?param=`` and is written back to it."""
    options = list(options)
    if not options:
        return None
    if st.session_state.get(key) not in options:
        wanted = _from_url(param)
        st.session_state[key] = (
            wanted if wanted in options else default if default in options else options[0]
        )
    value = st.radio(label, options, key=key, **kwargs)
    _mirror(param, value)
    return value


def synced_multiselect(
    label: str,
    options: Sequence[str],
    *,
    key: str,
    param: str,
    default: Sequence[str] = (),
    aliases: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> list[str]:
    """A multiselect whose choice starts from ``?param=a&param=b`` and is written back
    (``aliases`` as for :func:`synced_selectbox`)."""
    options = list(options)
    if key not in st.session_state or any(v not in options for v in st.session_state[key]):
        wanted = []
        for value in st.query_params.get_all(param):
            value = _resolve(value, options, aliases)
            if value in options and value not in wanted:
                wanted.append(value)
        st.session_state[key] = wanted or [v for v in default if v in options]
    value = st.multiselect(label, options, key=key, **kwargs)
    if value:
        if st.query_params.get_all(param) != list(value):
            st.query_params[param] = list(value)
    elif param in st.query_params:
        del st.query_params[param]
    return list(value)


def synced_text(label: str, *, key: str, param: str, default: str = "", **kwargs: Any) -> str:
    """A text input whose value starts from ``?param=`` and is written back to it."""
    if key not in st.session_state:
        st.session_state[key] = _from_url(param) or default
    value = st.text_input(label, key=key, **kwargs)
    _mirror(param, value)
    return value


def synced_int(
    label: str,
    *,
    key: str,
    param: str,
    default: int,
    min_value: int,
    max_value: int,
    step: int = 1,
    **kwargs: Any,
) -> int:
    """A number input whose value starts from ``?param=`` and is written back to it."""
    if key not in st.session_state:
        wanted = _from_url(param)
        value = int(wanted) if wanted and wanted.lstrip("-").isdigit() else default
        st.session_state[key] = min(max(value, min_value), max_value)
    value = st.number_input(
        label, min_value=min_value, max_value=max_value, step=step, key=key, **kwargs
    )
    _mirror(param, int(value))
    return int(value)


def show_problem(exc: BaseException) -> None:
    """A missing or unreadable artifact (or an input error of the library) as a message."""
    from inpars_core.errors import InparsError

    if isinstance(exc, loading.MissingArtifactError):
        st.warning(exc.message, icon="⚠️")
    elif isinstance(exc, loading.BadArtifactError):
        st.error(exc.message, icon="🚫")
    elif isinstance(exc, InparsError):
        st.error(str(exc), icon="🚫")
    else:  # pragma: no cover - unexpected errors keep their traceback
        raise exc


def run_page(title: str, render: Callable[[Context, loading.Experiment], None]) -> None:
    """Title, the experiment's problems, then ``render``; a missing file becomes a message."""
    from inpars_core.errors import InparsError

    st.title(title)
    ctx = context()
    try:
        experiment = ctx.load()
    except (loading.MissingArtifactError, loading.BadArtifactError, InparsError) as exc:
        show_problem(exc)
        return
    st.caption(f"Experiment `{experiment.name}` in `{Path(ctx.runs_dir)}`")
    try:
        render(ctx, experiment)
    except (loading.MissingArtifactError, loading.BadArtifactError, InparsError) as exc:
        show_problem(exc)


def guarded(render: Callable[[], None]) -> bool:
    """Run one section; a missing artifact shows a message and the rest of the page goes on.
    Returns whether the section rendered without a problem."""
    from inpars_core.errors import InparsError

    try:
        render()
    except (loading.MissingArtifactError, loading.BadArtifactError, InparsError) as exc:
        show_problem(exc)
        return False
    return True


def page_target(page: str) -> tuple[str, dict[str, str | list[str]]] | None:
    """A page reference such as ``training?runs=finetune/ab12`` (``Finding.page``) as the
    page's script and its query parameters (a repeated parameter as a list); ``None`` when the
    path names no page of the app."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(page.strip())
    path = parts.path.strip("/")
    if path not in PAGES:
        return None
    params: dict[str, str | list[str]] = {}
    for name, values in parse_qs(parts.query, keep_blank_values=False).items():
        params[name] = values[0] if len(values) == 1 else values
    return PAGES[path][0], params


def page_url(page: str, params: Mapping[str, str | Sequence[str]]) -> str:
    """A relative link to a page of the app with query parameters (for Markdown links)."""
    from urllib.parse import urlencode

    return f"{page}?{urlencode(params, doseq=True)}" if params else page
