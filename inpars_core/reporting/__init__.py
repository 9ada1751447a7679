"""What InPars Lab shows people: the figures shared by the dashboard and the HTML report
(:mod:`~inpars_core.reporting.figures`, plotly only) and ``inpars report``, one self-contained
HTML file of an experiment (:mod:`~inpars_core.reporting.html`). Nothing here imports
streamlit; plotly is imported by the functions that draw."""
