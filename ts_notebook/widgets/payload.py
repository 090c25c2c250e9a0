"""The ``data`` list exactly as the handler receives it, with each request's headers."""

from __future__ import annotations

from typing import Any

import traitlets

from ts_notebook.jsontypes import JsonObject
from ts_notebook.widgets._base import View, esc, pretty


class PayloadView(View):
    css_class = "tsn-payload"
    watched = ("data", "headers")
    data: traitlets.List[Any] = traitlets.List()
    headers: traitlets.List[JsonObject] = traitlets.List()

    def __init__(self, data: list[Any] | None = None, headers: list[JsonObject] | None = None, **kwargs: Any) -> None:
        super().__init__(data=list(data or []), headers=list(headers or []), **kwargs)

    def to_html(self) -> str:
        items = []
        for i, row in enumerate(self.data):
            hdr = self.headers[i] if i < len(self.headers) else {}
            items.append(
                f"<li><code>data[{i}] = {esc(repr(row))}</code>"
                f"<details><summary>headers</summary><pre>{esc(pretty(hdr))}</pre></details></li>"
            )
        return f"<b>data</b> ({len(self.data)} requests, as handle(data, context) receives it)<ul>{''.join(items)}</ul>"

    def to_text(self) -> str:
        return "\n".join(f"data[{i}] = {row!r}" for i, row in enumerate(self.data)) or "data = []"
