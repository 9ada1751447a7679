"""The InPars Lab dashboard: a Streamlit app that reads what ``inpars run`` wrote.

``app.py`` is the entry point (``inpars dashboard`` or ``streamlit run dashboard/app.py``);
``loading.py`` reads the artifacts (cached), ``views.py`` builds the tables and values the pages
show from them, ``export.py`` writes Markdown/CSV/LaTeX/PNG, ``ui.py`` holds the shared widgets
and ``app_pages/`` the thin pages. Nothing is evaluated, compared or filtered again.
"""
