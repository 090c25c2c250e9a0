"""What every view shares: an HTML body re-rendered from its traits, and a text twin."""

from __future__ import annotations

import html
import json
from typing import Any

import ipywidgets as widgets


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=repr, ensure_ascii=False)


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
