"""ts_notebook: write, debug, package and serve TorchServe handlers from a notebook.

``%load_ext ts_notebook`` registers the magics and the display formatters and does nothing else:
nothing starts and nothing heavy is imported until a magic runs or a trace is shown.
"""

from __future__ import annotations

from typing import Any

from ts_notebook.jsontypes import JsonObject

__version__ = "0.1.0"

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]

# Named, not imported: IPython binds the formatter when a Trace is first shown, so %load_ext imports
# neither the handler package nor ipywidgets.
_TRACE = "ts_notebook.handler.trace.Trace"


def _trace_widget(trace: Any) -> JsonObject:
    """A Trace shown as its widget; nothing extra (its text and HTML still show) without ipywidgets."""
    try:
        from ts_notebook.widgets.trace import trace_widget_bundle
    except ImportError:  # ipywidgets is an optional extra: the trace's own HTML is the fallback
        return {}
    return trace_widget_bundle(trace)


def load_ipython_extension(ipython: Any) -> None:
    """Register the ts_notebook magics and display formatters on ``ipython`` (``%load_ext ts_notebook``).

    The core returns values, text and HTML only; the notebook's widgets for them are attached here,
    at the extension's boundary.
    """
    from ts_notebook.magics import TsNotebookMagics

    ipython.register_magics(TsNotebookMagics)
    module, name = _TRACE.rsplit(".", 1)
    ipython.display_formatter.mimebundle_formatter.for_type_by_name(module, name, _trace_widget)


def unload_ipython_extension(ipython: Any) -> None:
    """Stop what the magics started: dashboard pollers, and backends started by this kernel that were
    not detached (``%unload_ext ts_notebook``; ``%reload_ext`` does this before loading again), and
    take the display formatters back."""
    ipython.display_formatter.mimebundle_formatter.pop(_TRACE, None)
    magics = ipython.magics_manager.registry.get("TsNotebookMagics")
    if magics is not None:
        magics.shutdown()
