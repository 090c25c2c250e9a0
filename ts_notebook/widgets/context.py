"""The context a handler received: ``system_properties``, model name and ``model_yaml_config``."""

from __future__ import annotations

from typing import Any

import traitlets

from ts_notebook.jsontypes import JsonObject
from ts_notebook.widgets._base import View, esc, pretty


class ContextView(View):
    css_class = "tsn-context"
    watched = ("model_name", "system_properties", "model_yaml_config")
    model_name = traitlets.Unicode("")
    system_properties = traitlets.Dict()
    model_yaml_config = traitlets.Dict()

    def __init__(
        self,
        model_name: str = "",
        system_properties: JsonObject | None = None,
        model_yaml_config: JsonObject | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model_name=model_name,
            system_properties=dict(system_properties or {}),
            model_yaml_config=dict(model_yaml_config or {}),
            **kwargs,
        )

    def to_html(self) -> str:
        rows = "".join(
            f"<tr><td><code>{esc(k)}</code></td><td><code>{esc(repr(v))}</code></td></tr>"
            for k, v in self.system_properties.items()
        )
        return (
            f"<b>context</b> for model <b>{esc(self.model_name)}</b><table>{rows}</table>"
            f"<details><summary>model_yaml_config</summary><pre>{esc(pretty(self.model_yaml_config))}</pre></details>"
        )

    def to_text(self) -> str:
        props = ", ".join(f"{k}={v!r}" for k, v in self.system_properties.items())
        return f"context for {self.model_name}: {props}; model_yaml_config={self.model_yaml_config!r}"
