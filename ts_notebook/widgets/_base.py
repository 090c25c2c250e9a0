"""What every view shares: an HTML body re-rendered from its traits, and a text twin."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ts_notebook.preview import json_preview

pretty = json_preview  # the views' name for it


def esc(value: Any) -> str:
    return html.escape(str(value))


class View(widgets.VBox):
    """A VBox holding one HTML child, rebuilt whenever a trait named in ``watched`` changes."""

    css_class = "tsn-view"
    watched: tuple[str, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        self._body = widgets.HTML()
        super().__init__(children=[self._body], **kwargs)
        self.add_class(self.css_class)
        for name in self.watched:
            self.observe(lambda _change: self.refresh(), names=name)
        self.refresh()

    def refresh(self) -> None:
        """Re-render from the current traits (the method twin of a refresh button)."""
        self._body.value = self.to_html()

    def to_html(self) -> str:
        raise NotImplementedError

    def to_text(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.to_text()
