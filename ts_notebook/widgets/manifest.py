"""An archive's ``MAR-INF/MANIFEST.json`` as the handler sees it (``context.manifest``)."""

from __future__ import annotations

from typing import Any

import traitlets

from ts_notebook.jsontypes import JsonObject
from ts_notebook.widgets._base import View, esc, pretty


class ManifestView(View):
    css_class = "tsn-manifest"
    watched = ("manifest",)
    manifest = traitlets.Dict(allow_none=True)

    def __init__(self, manifest: JsonObject | None = None, **kwargs: Any) -> None:
        super().__init__(manifest=manifest, **kwargs)

    def to_html(self) -> str:
        if not self.manifest:
            return "<b>manifest</b>: none"
        return f"<b>manifest</b><pre>{esc(pretty(self.manifest))}</pre>"

    def to_text(self) -> str:
        if not self.manifest:
            return "manifest: none"
        model = self.manifest.get("model", {})
        keys = ", ".join(f"{k}={v!r}" for k, v in model.items())
        return f"manifest: {keys}"
