"""The event record the notebook reads: recent requests (the ``data`` rows exactly as the handler
got them, previews, status, latency, worker) and the handlers' log lines, per model, in one
sequence so a poller can ask for everything after the last number it saw."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

PREVIEW = 2000


def preview(value: Any, limit: int = PREVIEW) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class EventLog:
    """A bounded, numbered ring of events; ``since(n)`` returns those after ``n``."""

    def __init__(self, capacity: int = 5000) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = 0

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._seq += 1
        event = {"seq": self._seq, "time": time.time(), "kind": kind, **fields}
        self._events.append(event)
        return event

    def since(
        self, seq: int = 0, *, model: str | None = None, kind: str | None = None, limit: int = 500
    ) -> dict[str, Any]:
        out = [
            e
            for e in self._events
            if e["seq"] > seq and (model is None or e.get("model") == model) and (kind is None or e["kind"] == kind)
        ]
        return {"next": out[-1]["seq"] if out else max(seq, 0), "latest": self._seq, "events": out[-limit:]}
