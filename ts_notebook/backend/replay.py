"""The record of served requests the notebook replays and times: a bounded ring per model.

It keeps the ``ServedRequest`` records the inference API built (the same objects the event stream
holds): each with the request's exact ``data`` row and headers (values past a size cap are cut, and
the record says so: ``keepable`` cuts them before the record is built), the batch it was part of, the
Context its worker had, the answer's bytes or the error with the worker's traceback, and where its
time went. Nothing is decoded or copied here; views and JSON are made when read.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping

from ts_notebook.records import STAGE_ORDER, ModelTimings, ServedRequest, StageTiming
from ts_notebook.stats import percentile


def keepable(row: Mapping[str, object], limit: int) -> tuple[Mapping[str, object], bool]:
    """``row`` as the ring keeps it: itself when no value is over ``limit`` (the usual case, no copy),
    else a copy with those values cut, and whether it was cut."""
    if not any(isinstance(v, bytes | bytearray | str) and len(v) > limit for v in row.values()):
        return row, False
    return {k: v[:limit] if isinstance(v, bytes | bytearray | str) else v for k, v in row.items()}, True


class RequestRing:
    """The last ``count`` requests of each model, and apart from them its last ``count`` failed ones
    (under load the failure worth replaying would otherwise be pushed out within seconds); findable
    by request id and by batch."""

    def __init__(self, count: int = 200, body_bytes: int = 1 << 20) -> None:
        self.count = max(1, count)
        self.body_bytes = max(0, body_bytes)
        self._rings: dict[str, deque[ServedRequest]] = {}
        self._failed: dict[str, deque[ServedRequest]] = {}
        self._by_id: dict[str, ServedRequest] = {}
        self._holders: dict[str, int] = {}  # request id -> how many of the two rings keep it

    def _keep(self, ring: deque[ServedRequest], record: ServedRequest) -> None:
        if len(ring) >= self.count:
            self._release(ring.popleft().request_id)
        ring.append(record)
        rid = record.request_id
        self._by_id[rid] = record
        self._holders[rid] = self._holders.get(rid, 0) + 1

    def _release(self, request_id: str) -> None:
        left = self._holders.get(request_id, 1) - 1
        if left <= 0:
            self._holders.pop(request_id, None)
            self._by_id.pop(request_id, None)
        else:
            self._holders[request_id] = left

    def add(self, record: ServedRequest) -> None:
        """Keep one served request (its row already cut by ``keepable``)."""
        self._keep(self._rings.setdefault(record.model, deque()), record)
        if record.status >= 400:
            self._keep(self._failed.setdefault(record.model, deque()), record)

    def forget(self, model: str) -> None:
        for ring in (self._rings, self._failed):
            for record in ring.pop(model, ()):
                self._release(record.request_id)

    def summaries(self, model: str | None = None, failed: bool = False, limit: int = 50) -> list[ServedRequest]:
        """The kept requests, newest last, or only the failed ones."""
        rings = self._failed if failed else self._rings
        records = [r for m, ring in rings.items() if model in (None, m) for r in ring]
        records.sort(key=lambda r: r.time)
        return records[-limit:]

    def get(self, request_id: str) -> ServedRequest | None:
        """The whole record, with the ids of the rest of its batch that are still kept."""
        record = self._by_id.get(request_id)
        if record is None:
            return None
        batch = tuple(r.request_id for r in self._rings.get(record.model, ()) if r.batch_id == record.batch_id)
        return dataclasses.replace(record, batch=batch)

    def timings(self, model: str | None = None) -> list[ModelTimings]:
        """Per model: p50 and p99 in ms of each stage over the kept requests, and how many there are."""
        out = []
        for name, ring in self._rings.items():
            if model not in (None, name):
                continue
            stages: dict[str, list[float]] = {}
            for r in ring:
                for stage, ms in r.stages_ms.items():
                    stages.setdefault(stage, []).append(ms)
            order = sorted(stages, key=lambda s: STAGE_ORDER.index(s) if s in STAGE_ORDER else 99)
            table = tuple(
                StageTiming(s, percentile(stages[s], 50), percentile(stages[s], 99), len(stages[s])) for s in order
            )
            out.append(ModelTimings(name, len(ring), table))
        return out
