"""The request log: time, model, version, status, latency, worker, the ``data`` row exactly as the
handler received it (collapsed, expandable) and the response preview. Newest first."""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as widgets
import traitlets

from ts_notebook.widgets._base import esc

MAX_ROWS = 200


class RequestLogView(widgets.VBox):
    rows: traitlets.List[dict[str, Any]] = traitlets.List()

    def __init__(self) -> None:
        self._body = widgets.HTML()
        super().__init__(children=[self._body])
        self.add_class("tsn-request-log")
        self.observe(lambda _c: self._render(), names="rows")
        self._render()

    def add(self, events: list[dict[str, Any]]) -> None:
        if events:
            self.rows = (list(reversed(events)) + list(self.rows))[:MAX_ROWS]

    def _render(self) -> None:
        if not self.rows:
            self._body.value = "<b>requests</b> <i>none yet</i>"
            return
        lines = []
        for e in self.rows:
            color = "#1a7f37" if e["status"] < 400 else "#cf222e"
            stamp = time.strftime("%H:%M:%S", time.localtime(e["time"]))
            lines.append(
                f"<tr class='tsn-request-row'><td>{stamp}</td><td>{esc(e['model'])}</td><td>{esc(e['version'])}</td>"
                f"<td style='color:{color}'>{e['status']}</td><td>{e['latency_ms']:.1f} ms</td>"
                f"<td>{esc(e.get('worker') or '-')}</td>"
                f"<td><details><summary><code>{esc(e['data'][:90])}</code></summary><pre>{esc(e['data'])}</pre>"
                f"<pre>{esc(e.get('headers', ''))}</pre></details></td>"
                f"<td><code class='tsn-response'>{esc(' '.join(e['response'].split())[:120])}</code></td></tr>"
            )
        head = (
            "<tr><th>time</th><th>model</th><th>version</th><th>status</th><th>latency</th><th>worker</th>"
            "<th>data (as the handler got it)</th><th>response</th></tr>"
        )
        self._body.value = f"<b>requests</b><table class='tsn-table'>{head}{''.join(lines)}</table>"

    def __repr__(self) -> str:
        return "\n".join(
            f"{e['model']} {e['status']} {e['latency_ms']:.1f} ms {e['data'][:60]}" for e in self.rows
        ) or ("no requests yet")
