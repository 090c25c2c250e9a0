"""The models table: name, version, status, workers (id, pid, status, gpu, memory), batching and
timeout, with per-row actions (scale, unregister, reload, context)."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import traitlets

from ts_notebook.jsontypes import JsonObject
from ts_notebook.records import VersionWorkers
from ts_notebook.widgets._base import esc


def _worker_text(w: JsonObject, generation: str) -> str:
    mem = f"{w.get('memoryUsage', 0) / 2**20:.0f} MB" if w.get("memoryUsage") else "-"
    gpu = "gpu" if w.get("gpu") else "cpu"
    gen = f" gen {generation}" if generation else ""
    return f"{w['id']}:{w['status']} pid {w['pid']} {gpu} {mem}{gen}"


def model_status(m: JsonObject, load_failure: str | None = None) -> str:
    if load_failure and not m["workers"]:
        return "failed to load"
    ready = sum(1 for w in m["workers"] if w["status"] == "READY")
    if not m["workers"]:
        return "no workers"
    return "ready" if ready == len(m["workers"]) else f"{ready}/{len(m['workers'])} ready"


def _failure_row(failure: str | None) -> str:
    """Why the version's workers did not load, and the doctor's findings, under its row."""
    if not failure:
        return ""
    return f"<tr class='tsn-failure'><td colspan='7'><pre style='white-space:pre-wrap'>{esc(failure)}</pre></td></tr>"


class ModelsView(widgets.VBox):
    """One row per registered model version; ``models`` holds the management API's descriptions (TorchServe's
    JSON), ``versions`` what our backend says of their workers (generation, load failure; none from TorchServe)."""

    models: traitlets.List[JsonObject] = traitlets.List()
    versions: traitlets.List[VersionWorkers] = traitlets.List()

    def __init__(self, on_action: Callable[[str, str, int], None]) -> None:
        self._on_action = on_action
        self._table = widgets.HTML()
        self._rows = widgets.VBox()
        super().__init__(children=[self._table, self._rows])
        self.add_class("tsn-models")
        self.observe(lambda _c: self._render(), names=["models", "versions"])
        self._render()

    def _render(self) -> None:
        head = (
            "<tr><th>model</th><th>version</th><th>status</th><th>workers</th><th>batch</th>"
            "<th>delay ms</th><th>timeout s</th></tr>"
        )
        gens = self.generations()
        rows = ""
        for m in self.models:
            failure = self.load_failure(m)
            workers = "; ".join(_worker_text(w, gens.get(str(w["id"]), "")) for w in m["workers"]) or "-"
            rows += (
                f"<tr class='tsn-model-row'><td><b>{esc(m['modelName'])}</b></td><td>{esc(m['modelVersion'])}</td>"
                f"<td>{esc(model_status(m, failure))}</td><td>{esc(workers)}</td>"
                f"<td>{m['batchSize']}</td><td>{m['maxBatchDelay']}</td><td>{m['responseTimeout']}</td></tr>"
                + _failure_row(failure)
            )
        self._table.value = f"<table class='tsn-table'>{head}{rows}</table>" if self.models else "<i>no models</i>"
        self._rows.children = [self._actions_row(m) for m in self.models]

    def generations(self) -> dict[str, str]:
        """Worker id -> the generation it runs."""
        return {w.id: w.generation for v in self.versions for w in v.workers}

    def load_failure(self, m: JsonObject) -> str | None:
        """Why the workers of described version ``m`` did not load, if they did not."""
        key = (m["modelName"], m["modelVersion"])
        return next((v.load_failure for v in self.versions if (v.model, v.version) == key), None)

    def _actions_row(self, m: JsonObject) -> widgets.HBox:
        name = m["modelName"]
        count = widgets.BoundedIntText(value=len(m["workers"]), min=0, max=64, layout={"width": "70px"})
        buttons = []
        for action, label in (
            ("scale", "scale"),
            ("unregister", "unregister"),
            ("reload", "reload"),
            ("context", "context"),
        ):
            button = widgets.Button(description=label, layout={"width": "auto"})
            button.add_class(f"tsn-{action}")
            button.on_click(lambda _b, a=action: self._on_action(a, name, int(count.value)))
            buttons.append(button)
        row = widgets.HBox([widgets.Label(f"{name}:"), count, *buttons])
        row.add_class("tsn-model-actions")
        return row

    def __repr__(self) -> str:
        lines = [f"{m['modelName']} {m['modelVersion']} {model_status(m, self.load_failure(m))}" for m in self.models]
        return "\n".join(lines) or "no models"
