"""What the notebook shows of a running backend: a status snapshot and its log lines."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any

from ts_notebook.client import Client
from ts_notebook.launcher import BackendInfo


@dataclass(frozen=True)
class ServeStatus:
    """The value of ``%ts_serve status`` (and ``start``): addresses, pid, models and their workers."""

    inference_address: str
    management_address: str
    metrics_address: str
    pid: int
    models: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    @classmethod
    def of(cls, info: BackendInfo, note: str = "") -> ServeStatus:
        client = info.client()
        models = []
        for entry in client.list_models():
            for version in client.describe(entry["modelName"], "all"):
                models.append(
                    {
                        k: version[k]
                        for k in (
                            "modelName",
                            "modelVersion",
                            "batchSize",
                            "maxBatchDelay",
                            "responseTimeout",
                            "workers",
                        )
                    }
                )
        return cls(info.inference_address, info.management_address, info.metrics_address, info.pid, models, note)

    def to_text(self) -> str:
        lines = [self.note] if self.note else []
        lines += [
            f"backend pid {self.pid}: inference {self.inference_address}  management {self.management_address}"
            f"  metrics {self.metrics_address}"
        ]
        if not self.models:
            lines.append("no models registered (use %ts_serve register PATH)")
        for m in self.models:
            workers = ", ".join(f"{w['id']}:{w['status']}(pid {w['pid']})" for w in m["workers"]) or "no workers"
            lines.append(
                f"  {m['modelName']} {m['modelVersion']}  batch {m['batchSize']}/{m['maxBatchDelay']} ms"
                f"  timeout {m['responseTimeout']} s  workers: {workers}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(m['modelName'])}</td><td>{html.escape(m['modelVersion'])}</td>"
            f"<td>{len(m['workers'])}</td><td>{m['batchSize']}</td><td>{m['maxBatchDelay']}</td>"
            f"<td>{m['responseTimeout']}</td></tr>"
            for m in self.models
        )
        note = f"<p>{html.escape(self.note)}</p>" if self.note else ""
        return (
            f"<div class='tsn-status'>{note}<p>backend pid {self.pid}: inference "
            f"<code>{html.escape(self.inference_address)}</code>, management "
            f"<code>{html.escape(self.management_address)}</code></p><table><thead><tr><th>model</th>"
            f"<th>version</th><th>workers</th><th>batch</th><th>delay ms</th><th>timeout s</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
        )


@dataclass(frozen=True)
class LogView:
    """The value of ``%ts_serve logs``: handler output and worker events, oldest first."""

    lines: list[dict[str, Any]]

    @classmethod
    def of(cls, client: Client, model: str | None, tail: int) -> LogView:
        events = client.events(0, model=model, limit=10_000)["events"]
        return cls([e for e in events if e["kind"] in ("log", "worker")][-tail:])

    def to_text(self) -> str:
        out = []
        for e in self.lines:
            stamp = time.strftime("%H:%M:%S", time.localtime(e["time"]))
            if e["kind"] == "worker":
                detail = " ".join(
                    f"{k}={e[k]}" for k in ("status", "pid", "gpu_id", "exit_code", "error") if e.get(k) is not None
                )
                out.append(f"{stamp} {e.get('model')} worker {e.get('worker', '-')}: {detail}")
            else:
                rid = f" [{e['request_id']}]" if e.get("request_id") else ""
                for i, line in enumerate(str(e.get("message", "")).splitlines() or [""]):
                    prefix = (
                        f"{stamp} {e.get('model')} W-{e.get('worker', '-')} {e.get('level', '')}{rid}"
                        if i == 0
                        else " " * 4
                    )
                    out.append(f"{prefix} {line}")
        return "\n".join(out) or "no log lines yet"

    def __repr__(self) -> str:
        return self.to_text()
