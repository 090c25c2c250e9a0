"""The prediction log: the handlers' log records and stdout/stderr lines, with model, worker,
request id and level, filtered by model and level."""

from __future__ import annotations

import time

import ipywidgets as widgets
import traitlets

from ts_notebook.records import LogLine
from ts_notebook.widgets._base import esc

MAX_LINES = 500
LEVELS = ("", "DEBUG", "INFO", "WARNING", "ERROR")


class PredictionLogView(widgets.VBox):
    lines: traitlets.List[LogLine] = traitlets.List()
    model_filter = traitlets.Unicode("")
    level_filter = traitlets.Unicode("")

    def __init__(self) -> None:
        self._model = widgets.Dropdown(options=[("all models", "")], value="", layout={"width": "180px"})
        self._level = widgets.Dropdown(
            options=[(lv or "all levels", lv) for lv in LEVELS], value="", layout={"width": "140px"}
        )
        self._body = widgets.HTML()
        super().__init__(children=[widgets.HBox([widgets.HTML("<b>log</b>"), self._model, self._level]), self._body])
        self.add_class("tsn-prediction-log")
        self._model.observe(lambda c: setattr(self, "model_filter", c["new"] or ""), names="value")
        self._level.observe(lambda c: setattr(self, "level_filter", c["new"] or ""), names="value")
        self.observe(lambda _c: self._render(), names=["lines", "model_filter", "level_filter"])
        self._render()

    def add(self, events: list[LogLine]) -> None:
        if not events:
            return
        self.lines = (list(self.lines) + events)[-MAX_LINES:]
        models = sorted({e.model for e in self.lines if e.model})
        options = [("all models", ""), *((m, m) for m in models)]
        if list(self._model.options) != options:
            self._model.options = options

    def filter(self, model: str = "", level: str = "") -> None:
        """The method twin of the two dropdowns."""
        self.model_filter, self.level_filter = model, level

    def visible(self) -> list[LogLine]:
        rank = {lv: i for i, lv in enumerate(LEVELS)}
        floor = rank.get(self.level_filter, 0)
        return [
            e
            for e in self.lines
            if (not self.model_filter or e.model == self.model_filter) and rank.get(e.level, 2) >= floor
        ]

    def _text(self, e: LogLine) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(e.time))
        rid = f" [{e.request_id}]" if e.request_id else ""
        return f"{stamp} {e.model} W-{e.worker or '-'} {e.level}{rid} {e.message}"

    def _render(self) -> None:
        shown = self.visible()[-200:]
        body = "\n".join(esc(self._text(e)) for e in shown) or "no log lines yet"
        self._body.value = f"<pre class='tsn-log-lines' style='max-height:240px;overflow:auto'>{body}</pre>"

    def __repr__(self) -> str:
        return "\n".join(self._text(e) for e in self.visible()) or "no log lines yet"
