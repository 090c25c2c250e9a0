"""Small ipywidgets views. Each carries a CSS class ``tsn-<view>`` so it can be found in the page,
keeps its state in traits, and has a plain-text repr for terminals and nbval."""

from ts_notebook.widgets.context import ContextView
from ts_notebook.widgets.dashboard import ServingDashboard
from ts_notebook.widgets.manifest import ManifestView
from ts_notebook.widgets.payload import PayloadView
from ts_notebook.widgets.trace import TraceView

__all__ = ["ContextView", "ManifestView", "PayloadView", "ServingDashboard", "TraceView"]
