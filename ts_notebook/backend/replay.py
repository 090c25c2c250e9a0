"""The record of served requests the notebook replays and times: a bounded ring per model.

Each record keeps the request's exact ``data`` row and headers (bodies past a size cap are kept cut,
and say so), the batch it was part of, the Context its worker had (model_dir, system_properties,
manifest), the answer or the error with the worker's traceback, and where its time went.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from ts_notebook import rows
from ts_notebook.stats import percentile

STAGE_ORDER = ("queue", "transport", "preprocess", "inference", "postprocess", "handle", "latency")


def _cut(row: dict[str, Any], limit: int) -> tuple[dict[str, Any], bool]:
    cut = False
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, bytes | bytearray | str) and len(value) > limit:
            value, cut = value[:limit], True
        out[key] = value
    return out, cut


class RequestRing:
    """The last ``count`` requests of each model, and apart from them its last ``count`` failed ones
    (under load the failure worth replaying would otherwise be pushed out within seconds); findable
    by request id and by batch."""

    def __init__(self, count: int = 200, body_bytes: int = 1 << 20) -> None:
        self.count = max(1, count)
        self.body_bytes = max(0, body_bytes)
        self._rings: dict[str, deque[dict[str, Any]]] = {}
        self._failed: dict[str, deque[dict[str, Any]]] = {}
        self._by_id: dict[str, dict[str, Any]] = {}
        self._holders: dict[str, int] = {}  # request id -> how many of the two rings keep it

    def _keep(self, ring: deque[dict[str, Any]], record: dict[str, Any]) -> None:
        if len(ring) >= self.count:
            self._release(ring.popleft()["id"])
        ring.append(record)
        self._by_id[record["id"]] = record
        self._holders[record["id"]] = self._holders.get(record["id"], 0) + 1

    def _release(self, request_id: str) -> None:
        left = self._holders.get(request_id, 1) - 1
        if left <= 0:
            self._holders.pop(request_id, None)
            self._by_id.pop(request_id, None)
        else:
            self._holders[request_id] = left

    def add(self, model: str, record: dict[str, Any], row: dict[str, Any], headers: dict[str, Any]) -> None:
        """Keep one served request (``record`` holds everything but its row and headers)."""
        kept, cut = _cut(row, self.body_bytes)
        record = {**record, "model": model, "time": time.time(), "row": kept, "headers": headers, "truncated": cut}
        self._keep(self._rings.setdefault(model, deque()), record)
        if record["status"] >= 400:
            self._keep(self._failed.setdefault(model, deque()), record)

    def forget(self, model: str) -> None:
        for ring in (self._rings, self._failed):
            for record in ring.pop(model, ()):
                self._release(record["id"])

    def summaries(self, model: str | None = None, failed: bool = False, limit: int = 50) -> list[dict[str, Any]]:
        """Newest last: id, model, status, latency, batch, worker, generation and the error's message."""
        rings = self._failed if failed else self._rings
        records = [r for m, ring in rings.items() if model in (None, m) for r in ring]
        records.sort(key=lambda r: r["time"])
        keys = ("id", "model", "version", "time", "status", "latency_ms", "batch_id", "batch_size", "worker", "gen_id")
        return [
            {**{k: r.get(k) for k in keys}, "error": (r.get("error") or {}).get("message")} for r in records[-limit:]
        ]

    def get(self, request_id: str) -> dict[str, Any] | None:
        """The whole record, JSON-ready, with the rest of its batch's request ids."""
        record = self._by_id.get(request_id)
        if record is None:
            return None
        batch = [r["id"] for r in self._rings.get(record["model"], ()) if r.get("batch_id") == record.get("batch_id")]
        return {**record, "row": rows.encode(record["row"]), "headers": rows.encode(record["headers"]), "batch": batch}

    def timings(self, model: str | None = None) -> dict[str, Any]:
        """Per model: p50 and p99 in ms of each stage over the kept requests, and how many there are."""
        out: dict[str, Any] = {}
        for name, ring in self._rings.items():
            if model not in (None, name):
                continue
            stages: dict[str, list[float]] = {}
            for r in ring:
                for stage, ms in r.get("stages_ms", {}).items():
                    stages.setdefault(stage, []).append(ms)
            table = {}
            for stage in sorted(stages, key=lambda s: STAGE_ORDER.index(s) if s in STAGE_ORDER else 99):
                values = stages[stage]
                table[stage] = {"p50": percentile(values, 50), "p99": percentile(values, 99), "n": len(values)}
            out[name] = {"requests": len(ring), "stages": table}
        return out
