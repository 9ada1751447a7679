"""The InPars Lab dashboard: a Streamlit app that reads what ``inpars run`` wrote.

``app.py`` is the entry point (``inpars dashboard`` or ``streamlit run dashboard/app.py``),
``data.py`` loads and derives everything (cached), ``ui.py`` holds the shared widgets and
``app_pages/`` the thin pages.
"""
