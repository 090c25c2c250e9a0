"""A dry run, stage by stage: context, manifest, payload, each stage's output and time, the failure."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import traitlets

from ts_notebook.handler.trace import Trace, failure_html, stage_rows_html
from ts_notebook.jsontypes import JsonObject
from ts_notebook.widgets.context import ContextView
from ts_notebook.widgets.manifest import ManifestView
from ts_notebook.widgets.payload import PayloadView

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class TraceView(widgets.VBox):
    """The widget a ``%%handler ... --test`` cell shows. ``ok`` and ``failed_stage`` are traits."""

    ok = traitlets.Bool(True)
    failed_stage = traitlets.Unicode("")
    stage_names: traitlets.List[str] = traitlets.List()

    def __init__(self, trace: Trace, **kwargs: Any) -> None:
        self.trace = trace
        self.context_view = ContextView(trace.model_name, trace.system_properties, trace.model_yaml_config)
        self.manifest_view = ManifestView(trace.manifest)
        self.payload_view = PayloadView(trace.data, trace.headers)
        self.stages = widgets.HTML(stage_rows_html(trace) + failure_html(trace))
        self.stages.add_class("tsn-stages")
        details = widgets.Accordion(children=[self.context_view, self.manifest_view])
        details.set_title(0, "context")
        details.set_title(1, "manifest")
        title = widgets.HTML(
            f"<b>handler {trace.handler}</b> ({trace.entry_kind or 'not loaded'}): "
            + ("ok" if trace.ok else f"failed in {trace.failure.stage if trace.failure else ''}")
        )
        super().__init__(children=[title, self.payload_view, self.stages, details], **kwargs)
        self.add_class("tsn-trace")
        self.ok = trace.ok
        self.failed_stage = trace.failure.stage if trace.failure else ""
        self.stage_names = [s.name for s in trace.stages]

    def __repr__(self) -> str:
        return self.trace.to_text()


def trace_widget_bundle(trace: Trace) -> JsonObject:
    """A ``Trace``'s display as a TraceView: the mime-bundle formatter the extension registers for Trace.

    Only the widget's view goes in: IPython adds the trace's own text and HTML (``__repr__``,
    ``_repr_html_``) beside it, which a frontend without widgets (nbval, GitHub, nbconvert) shows.
    """
    view = (TraceView(trace)._repr_mimebundle_() or {}).get(WIDGET_VIEW)
    return {WIDGET_VIEW: view} if view is not None else {}
