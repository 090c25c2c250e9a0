"""The try-it form: model, content type, payload (text or an uploaded file), Send; the answer shows
below (and, through the server, in the request log)."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets

from ts_notebook.widgets._base import esc


class TryItView(widgets.VBox):
    def __init__(self, on_send: Callable[[str, bytes | str, str], None]) -> None:
        self._on_send = on_send
        self.model = widgets.Dropdown(options=[], description="model")
        self.content_type = widgets.Text(value="application/json", description="type")
        self.payload = widgets.Textarea(
            value='{"input": [1, 2, 3, 4]}', description="payload", layout={"width": "480px", "height": "70px"}
        )
        self.payload.add_class("tsn-try-it-payload")
        self.upload = widgets.FileUpload(description="file", multiple=False)
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.send_button.add_class("tsn-try-it-send")
        self.response = widgets.HTML("")
        self.response.add_class("tsn-try-it-response")
        self.send_button.on_click(lambda _b: self._clicked())
        super().__init__(
            children=[
                widgets.HTML("<b>try it</b>"),
                self.model,
                self.content_type,
                self.payload,
                self.upload,
                self.send_button,
                self.response,
            ]
        )
        self.add_class("tsn-try-it")

    def _clicked(self) -> None:
        body: bytes | str = self.payload.value
        if self.upload.value:
            body = bytes(self.upload.value[0]["content"])
        self._on_send(str(self.model.value or ""), body, self.content_type.value)

    def show(self, status: int, text: str) -> None:
        color = "#1a7f37" if status < 400 else "#cf222e"
        self.response.value = (
            f"<div>answer <b style='color:{color}'>{status}</b><pre class='tsn-try-it-answer'>{esc(text)}</pre></div>"
        )

    def set_models(self, names: list[str]) -> None:
        if list(self.model.options) != names:
            current = self.model.value
            self.model.options = names
            self.model.value = current if current in names else (names[0] if names else None)

    def __repr__(self) -> str:
        return f"try it: model={self.model.value!r} type={self.content_type.value!r}"


__all__ = ["TryItView"]
