"""Live figures per model over the last minute: requests/s, p50 and p99 latency, errors."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import ipywidgets as widgets
import traitlets

from ts_notebook.records import ServedRequest
from ts_notebook.stats import percentile
from ts_notebook.widgets._base import esc
from ts_notebook.widgets.stages import latency_plot

WINDOW_S = 60.0


class FiguresView(widgets.VBox):
    figures: traitlets.Dict[str, Any] = traitlets.Dict()
    plots: traitlets.Dict[str, str] = traitlets.Dict()  # model -> SVG of its latency over the window

    def __init__(self) -> None:
        self._recent: deque[ServedRequest] = deque()
        self._body = widgets.HTML()
        super().__init__(children=[self._body])
        self.add_class("tsn-figures")
        self.observe(lambda _c: self._render(), names="figures")
        self._render()

    def add(self, requests: list[ServedRequest], now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._recent.extend(requests)
        self._recent = deque(e for e in self._recent if e.time >= now - WINDOW_S)
        by_model: dict[str, list[ServedRequest]] = {}
        for e in self._recent:
            by_model.setdefault(e.model, []).append(e)
        figures = {}
        self.plots = {m: latency_plot(events, now - WINDOW_S, now) for m, events in by_model.items()}
        for model, events in by_model.items():
            span = max(1.0, min(WINDOW_S, now - min(e.time for e in events)))
            latencies = [e.latency_ms for e in events]
            figures[model] = {
                "rps": round(len(events) / span, 2),
                "p50_ms": round(percentile(latencies, 50), 2),
                "p99_ms": round(percentile(latencies, 99), 2),
                "errors": sum(1 for e in events if e.failed),
                "requests": len(events),
            }
        self.figures = figures

    def _render(self) -> None:
        if not self.figures:
            self._body.value = "<i>no traffic in the last minute</i>"
            return
        cells = "".join(
            f"<tr><td><b>{esc(m)}</b></td><td>{f['rps']}</td><td>{f['p50_ms']}</td><td>{f['p99_ms']}</td>"
            f"<td>{f['errors']}</td><td>{self.plots.get(m, '')}</td></tr>"
            for m, f in sorted(self.figures.items())
        )
        self._body.value = (
            "<table class='tsn-table'><tr><th>model</th><th>req/s</th><th>p50 ms</th><th>p99 ms</th>"
            f"<th>errors</th><th>latency over the last minute</th></tr>{cells}</table>"
        )

    def __repr__(self) -> str:
        return (
            "\n".join(
                f"{m}: {f['rps']} req/s p50 {f['p50_ms']} ms p99 {f['p99_ms']} ms errors {f['errors']}"
                for m, f in sorted(self.figures.items())
            )
            or "no traffic in the last minute"
        )
