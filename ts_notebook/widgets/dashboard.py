"""The serving dashboard: models, requests, handler logs, a worker's real context, a try-it form
and live figures, kept current by one poller thread.

Every button has a method twin (``refresh``, ``scale``, ``unregister``, ``reload``,
``show_context``, ``send``, ``filter_logs``, ``stop``), so tests and scripts need no browser.
"""

from __future__ import annotations

import html
import weakref
from typing import Any

import ipywidgets as widgets
import traitlets

from ts_notebook.client import Client, Response, ServerError, describe_all
from ts_notebook.errors import BackendError
from ts_notebook.preview import json_preview
from ts_notebook.records import EventPage, LogLine, ServedRequest, WorkerChange, WorkerView
from ts_notebook.serving import notebook_views
from ts_notebook.widgets.context import ContextView
from ts_notebook.widgets.figures import FiguresView
from ts_notebook.widgets.manifest import ManifestView
from ts_notebook.widgets.models import ModelsView
from ts_notebook.widgets.poller import Poller
from ts_notebook.widgets.prediction_log import PredictionLogView
from ts_notebook.widgets.request_log import RequestLogView
from ts_notebook.widgets.try_it import TryItView

# Dashboards whose poller may be running, so that unloading the extension can stop them all.
_LIVE: weakref.WeakSet[ServingDashboard] = weakref.WeakSet()
EXTRAS_NOTE = (
    "real TorchServe keeps no record of served requests: the request log, replay, stage timings and reload need "
    "the embedded backend (models, scaling and the try-it form work)"
)


class ServingDashboard(widgets.VBox):
    """A live view of one backend. ``status`` is "live", "stopped" (server gone) or "closed"."""

    status = traitlets.Unicode("live")
    last_error = traitlets.Unicode("")

    def __init__(self, client: Client, *, interval: float = 1.0, autostart: bool = True) -> None:
        self.client = client
        self.extras = True  # the event record, replay and reload: the embedded backend's, not TorchServe's
        self._seq = 0
        self._urls: dict[str, str] = {}
        self.header = widgets.HTML()
        self.figures = FiguresView()
        self.models = ModelsView(self._on_action)
        self.requests = RequestLogView(self.replay)
        self.replayed = widgets.HTML()
        self.replayed.add_class("tsn-replayed")
        self.last_replay: Any = None
        self.logs = PredictionLogView()
        self.context = widgets.VBox()
        self.context.add_class("tsn-context-view")
        self.try_it = TryItView(
            lambda model, body, ctype: self.poller.submit(lambda: self._do_send(model, body, ctype))
        )
        top = widgets.HBox([self.try_it, widgets.VBox([self.figures, self.context])])
        super().__init__(children=[self.header, self.models, top, self.requests, self.replayed, self.logs])
        self.add_class("tsn-dashboard")
        self.poller = Poller(self._refresh, interval, on_error=lambda exc: setattr(self, "last_error", repr(exc)))
        self._refresh()
        _LIVE.add(self)
        if autostart:
            self.poller.start()

    # -- the poller's round -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Fetch new events and the models' state and show them now (on the poller's thread)."""
        self.poller.call(self._refresh)

    def _refresh(self) -> None:
        try:
            batch = self._events()
            listed, described = describe_all(self.client)
            views = notebook_views(self.client)
            self._urls = {m["modelName"]: m["modelUrl"] for m in listed}
        except BackendError as exc:
            self._server_gone(str(exc))
            return
        self._seq = batch.next
        requests = batch.of(ServedRequest)
        logs = [_log_line(e) for e in batch.events if isinstance(e, LogLine | WorkerChange)]
        with self.hold_sync():
            self.requests.add(requests)
            self.logs.add(logs)
            self.figures.add(requests)
            if described != self.models.models or views != self.models.versions:
                with self.models.hold_trait_notifications():
                    self.models.models, self.models.versions = described, views
            self.try_it.set_models(sorted({m["modelName"] for m in described}))
            self.header.value = (
                f"<b>serving</b> <code>{html.escape(self.client.inference_address)}</code> "
                f"· {len(described)} model version(s) · status {self.status}"
            )

    def _events(self) -> EventPage:
        """New events; none from real TorchServe, which has no event stream (the models view still works)."""
        if self.extras:
            try:
                return self.client.events(self._seq, limit=2000)
            except ServerError as exc:
                if exc.status != 404:
                    raise
                self.extras = False
                self.requests.note = EXTRAS_NOTE
        return EventPage(self._seq, self._seq)

    def _server_gone(self, why: str) -> None:
        self.status = "stopped"
        self.last_error = why
        self.header.value = f"<b style='color:#cf222e'>server stopped</b>: {html.escape(why)}"
        self.poller.stop()

    # -- method twins of the buttons ------------------------------------------------------------------
    def _on_action(self, action: str, model: str, count: int) -> None:
        twin = {
            "scale": lambda: self._do_scale(model, count),
            "unregister": lambda: self._do_unregister(model),
            "reload": lambda: self._do_reload(model),
            "context": lambda: self._do_show_context(model),
        }[action]
        self.poller.submit(twin)  # a button never waits: the kernel's thread stays free

    # Each public twin runs its work on the poller's thread and returns the answer to the caller.
    def scale(self, model: str, workers: int) -> str:
        """Set the model's workers (the Scale button)."""
        return self.poller.call(lambda: self._do_scale(model, workers))

    def unregister(self, model: str) -> str:
        """Unregister the model (the Unregister button)."""
        return self.poller.call(lambda: self._do_unregister(model))

    def reload(self, model: str) -> str:
        """Re-register the model from its archive (the Reload button)."""
        return self.poller.call(lambda: self._do_reload(model))

    def show_context(self, model: str) -> list[WorkerView]:
        """Show the system_properties and manifest the model's first worker really received."""
        return self.poller.call(lambda: self._do_show_context(model))

    def send(self, model: str, body: bytes | str, content_type: str) -> Response:
        """The try-it form's Send: one request; the answer shows below the form and in the request log."""
        return self.poller.call(lambda: self._do_send(model, body, content_type))

    def _do_scale(self, model: str, workers: int) -> str:
        answer = self.client.scale(model, workers, synchronous=True)
        self._refresh()
        return answer

    def _do_unregister(self, model: str) -> str:
        answer = self.client.unregister(model)
        self._refresh()
        return answer

    def _do_reload(self, model: str) -> str:
        """Serve the model's rebuilt archive with zero failed requests (a blue/green or in-place swap)."""
        if model not in self._urls:
            raise BackendError(f"model {model!r} is not registered")
        answer = self.client.reload(model).status
        self._refresh()
        return answer

    def replay(self, request_id: str) -> Any:
        """Re-run a served request in this kernel (the replay button); the trace shows below the log.

        The dry run runs in the caller's thread, the kernel's for a button, since it changes the
        working dir and imports as a cell would; only showing it goes through the poller.
        """
        from ts_notebook.replay import replay

        result = replay(self.client, request_id)
        self.poller.call(lambda: self._show_replay(result))
        return result

    def _show_replay(self, result: Any) -> None:
        self.last_replay = result
        self.replayed.value = result._repr_html_()

    def _do_show_context(self, model: str) -> list[WorkerView]:
        entries = [v for v in self.client.workers() if v.model == model and v.workers]
        if not entries:
            self.context.children = [widgets.HTML(f"<i>{html.escape(model)} has no running worker</i>")]
            return []
        worker = entries[0].workers[0]
        self.context.children = [
            widgets.HTML(f"<b>{html.escape(model)}</b>, worker {worker.id} (pid {worker.pid})"),
            ContextView(model, dict(worker.system_properties)),
            ManifestView(dict(worker.manifest)),
        ]
        return list(entries[0].workers)

    def _do_send(self, model: str, body: bytes | str, content_type: str) -> Response:
        answer = self.client.predict(model, body, content_type=content_type or None, check=False)
        value = answer.value
        text = value if isinstance(value, str) else repr(value) if isinstance(value, bytes) else json_preview(value)
        self.try_it.show(answer.status, text)
        self._refresh()
        return answer

    def filter_logs(self, model: str = "", level: str = "") -> None:
        """Show only the prediction-log lines of ``model`` and ``level`` (empty: all)."""
        self.poller.call(lambda: self.logs.filter(model, level))

    def stop(self) -> None:
        """Stop updating (the widget stays as it is)."""
        poller = getattr(self, "poller", None)  # close() runs from __del__ even if __init__ failed
        if poller is not None:
            poller.stop()
        _LIVE.discard(self)
        if self.status == "live":
            self.status = "closed"

    def close(self) -> None:
        self.stop()
        super().close()

    def __repr__(self) -> str:
        return f"ServingDashboard({self.client.inference_address}, {self.status})\n{self.models!r}\n{self.figures!r}"


def stop_all() -> int:
    """Stop every dashboard still updating in this process (``%unload_ext``); how many were stopped."""
    live = list(_LIVE)
    for dash in live:
        dash.stop()
    return len(live)


def _log_line(e: LogLine | WorkerChange) -> LogLine:
    """A worker's change as the log shows it: an INFO line under its model and worker."""
    if isinstance(e, LogLine):
        return e
    message = f"worker {e.worker or '-'}: {e.detail()}"
    return LogLine(e.time, "INFO", message, "backend", e.model, e.version, e.worker, e.pid)
