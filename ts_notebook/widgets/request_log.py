"""The request log: time, model, version, status, latency with a stage bar, worker and generation, the
``data`` row exactly as the handler received it (collapsed, expandable) and the response preview.
Newest first; failed rows are marked; the newest rows carry a replay button."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import traitlets

from ts_notebook.records import ServedRequest
from ts_notebook.widgets._base import esc
from ts_notebook.widgets.stages import legend, stage_bar

MAX_ROWS = 200
REPLAY_ROWS = 20  # rows with a replay button (a widget each); older ones are in the table only


def _row_html(e: ServedRequest) -> str:
    failed = e.failed
    color = "#cf222e" if failed else "#1a7f37"
    stamp = time.strftime("%H:%M:%S", time.localtime(e.time))
    mark = " tsn-failed" if failed else ""
    shown = e.shown()
    return (
        f"<tr class='tsn-request-row{mark}'><td>{stamp}</td><td>{esc(e.model)}</td><td>{esc(e.version)}</td>"
        f"<td style='color:{color}'>{'&#10007; ' if failed else ''}{e.status}</td><td>{e.latency_ms:.1f} ms</td>"
        f"<td>{stage_bar(e.stages_ms)}</td>"
        f"<td>{esc(e.worker or '-')} <small>{esc(e.gen_id or '')}</small></td>"
        f"<td><details><summary><code>{esc(shown.data[:90])}</code></summary><pre>{esc(shown.data)}</pre>"
        f"<pre>{esc(shown.headers)}</pre></details></td>"
        f"<td><code class='tsn-response'>{esc(' '.join(shown.response.split())[:120])}</code></td>"
        f"<td><small>{esc(e.request_id)}</small></td></tr>"
    )


class RequestLogView(widgets.VBox):
    rows: traitlets.List[ServedRequest] = traitlets.List()
    note = traitlets.Unicode("")  # shown instead of "none yet" (e.g. the server keeps no request record)

    def __init__(self, on_replay: Callable[[str], Any] | None = None) -> None:
        self._on_replay = on_replay
        self._body = widgets.HTML()
        self._buttons = widgets.VBox()
        self._buttons.add_class("tsn-replay-rows")
        super().__init__(children=[self._body, self._buttons])
        self.add_class("tsn-request-log")
        self.observe(lambda _c: self._render(), names=["rows", "note"])
        self._render()

    def add(self, events: list[ServedRequest]) -> None:
        if events:
            self.rows = (list(reversed(events)) + list(self.rows))[:MAX_ROWS]

    def _render(self) -> None:
        if not self.rows:
            self._body.value = f"<b>requests</b> <i>{html.escape(self.note or 'none yet')}</i>"
            self._buttons.children = []
            return
        head = (
            "<tr><th>time</th><th>model</th><th>version</th><th>status</th><th>latency</th><th>stages</th>"
            "<th>worker / gen</th><th>data (as the handler got it)</th><th>response</th><th>id</th></tr>"
        )
        table = "".join(_row_html(e) for e in self.rows)
        self._body.value = f"<b>requests</b> <small>{legend()}</small><table class='tsn-table'>{head}{table}</table>"
        old = self._buttons.children
        self._buttons.children = [self._replay_row(e) for e in self.rows[:REPLAY_ROWS] if e.request_id]
        for child in old:  # each row is a widget with a comm of its own: let it go
            child.close()

    def _replay_row(self, e: ServedRequest) -> widgets.HBox:
        button = widgets.Button(description="replay", layout={"width": "auto"})
        button.add_class("tsn-replay")
        on_replay = self._on_replay
        if on_replay is not None:
            button.on_click(lambda _b, rid=e.request_id: on_replay(rid))
        failed = e.failed
        label = widgets.HTML(
            f"<code>{esc(e.request_id)}</code> {esc(e.model)} "
            f"<span style='color:{'#cf222e' if failed else '#1a7f37'}'>{e.status}</span>"
        )
        row = widgets.HBox([button, label])
        row.add_class("tsn-replay-row")
        if failed:
            row.add_class("tsn-failed")
        return row

    def failed_ids(self) -> list[str]:
        return [e.request_id for e in self.rows if e.failed and e.request_id]

    def __repr__(self) -> str:
        return "\n".join(
            f"{e.request_id} {e.model} {e.status}{' FAILED' if e.failed else ''} "
            f"{e.latency_ms:.1f} ms {e.shown().data[:60]}"
            for e in self.rows
        ) or ("no requests yet")
