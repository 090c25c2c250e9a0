"""Views through their state (traits and method twins); no browser needed."""

from __future__ import annotations

from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell

from ts_notebook.handler import dry_run, make_request
from ts_notebook.widgets import ContextView, ManifestView, PayloadView, TraceView
from ts_notebook.widgets.trace import WIDGET_VIEW


def test_context_view_rerenders_when_its_traits_change() -> None:
    view = ContextView("tiny", {"model_dir": "/m", "gpu_id": None, "batch_size": 1})
    assert "tsn-context" in view._dom_classes
    assert "batch_size" in view._body.value
    view.system_properties = {"model_dir": "/m", "gpu_id": 0, "batch_size": 4}
    assert "&#x27;batch_size&#x27;" not in view._body.value and "<code>4</code>" in view._body.value
    assert repr(view) == "context for tiny: model_dir='/m', gpu_id=0, batch_size=4; model_yaml_config={}"


def test_manifest_and_payload_views() -> None:
    m = ManifestView({"model": {"modelName": "tiny", "handler": "h.py"}})
    assert "tsn-manifest" in m._dom_classes
    assert repr(m) == "manifest: modelName='tiny', handler='h.py'"
    assert repr(ManifestView(None)) == "manifest: none"
    p = PayloadView([{"body": bytearray(b"x")}], [{"Content-Type": "application/octet-stream"}])
    assert "tsn-payload" in p._dom_classes
    assert repr(p) == "data[0] = {'body': bytearray(b'x')}"
    assert "application/octet-stream" in p._body.value


def test_trace_view_state(tmp_path: Path) -> None:
    (tmp_path / "h.py").write_text("def handle(data, context):\n    return None if data is None else [1, 2]\n")
    trace = dry_run("h", tmp_path, [make_request("x", "text/plain")], model_name="m", manifest=None)
    view = TraceView(trace)
    assert "tsn-trace" in view._dom_classes
    assert (view.ok, view.failed_stage, view.stage_names) == (False, "handle", ["initialize", "handle"])
    assert view.payload_view.data == [{"body": "x"}]
    assert "BatchContractError" in view.stages.value
    assert repr(view) == trace.to_text()


def test_the_extension_shows_a_trace_as_its_widget_and_takes_it_back(tmp_path: Path) -> None:
    """The core Trace is text and HTML only; %load_ext adds the widget through a display formatter."""
    (tmp_path / "h.py").write_text("def handle(data, context):\n    return data\n")
    trace = dry_run("h", tmp_path, [make_request("x", "text/plain")], model_name="m", manifest=None)
    assert not hasattr(trace, "_repr_mimebundle_")
    ip = InteractiveShell.instance()
    was_loaded = "ts_notebook" in ip.extension_manager.loaded
    if not was_loaded:
        ip.run_line_magic("load_ext", "ts_notebook")
    shown, _ = ip.display_formatter.format(trace)
    assert WIDGET_VIEW in shown and shown["text/plain"] == trace.to_text() and "tsn-trace" in shown["text/html"]
    ip.run_line_magic("unload_ext", "ts_notebook")
    try:
        shown, _ = ip.display_formatter.format(trace)
        assert WIDGET_VIEW not in shown and shown["text/plain"] == trace.to_text()
    finally:
        if was_loaded:
            ip.run_line_magic("load_ext", "ts_notebook")
