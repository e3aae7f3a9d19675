"""Entry of the served app: ``panel serve app`` (``make run``) runs this once per browser session."""

from __future__ import annotations

import holoviews as hv
import panel as pn

from app.views.app import quiet_closed_pages, serve_session

quiet_closed_pages()

pn.extension("tabulator", sizing_mode="stretch_width", notifications=False)
hv.extension("bokeh", logo=False)

if __name__.startswith("bokeh"):
    serve_session().servable(title="senprep")
