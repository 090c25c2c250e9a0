"""The event record the notebook reads: served requests, the handlers' log lines, worker changes and
swaps, as typed records (``ts_notebook.records``), per model, in one sequence so a poller can ask for
everything after the last number it saw.

A served request here is the very object the replay ring keeps: nothing is copied or previewed when
it is added; its previews are made when a page is serialized for a poller.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from ts_notebook.handler.metrics_api import MetricRecord
from ts_notebook.records import KINDS, Event, LogLine, ServedRequest, Swap, WorkerChange


class EventSink(Protocol):
    """Where the pool and the dispatchers report what happened (the backend), one typed call per kind."""

    def on_worker(self, change: WorkerChange) -> None: ...

    def on_swap(self, swap: Swap) -> None: ...

    def on_log(self, line: LogLine) -> None: ...

    def on_metric(self, model: str, version: str, record: MetricRecord) -> None:
        """A handler's ``context.metrics`` value, as the worker reported it."""


def _kept_bytes(event: Event) -> int:
    """The bytes a served request holds (its row's values and its answer); 0 for other events."""
    if not isinstance(event, ServedRequest):
        return 0
    size = len(event.body or b"")
    for value in (event.row or {}).values():
        if isinstance(value, bytes | bytearray | str):
            size += len(value)
    return size


class EventLog:
    """A bounded, numbered ring of events; ``since(n)`` returns those after ``n``.

    Bounded by count and by the bytes its served requests hold: they share their rows with the replay
    ring, and 5000 large bodies must not pin gigabytes (the oldest events go first).
    """

    def __init__(self, capacity: int = 5000, max_bytes: int = 64 << 20) -> None:
        self.capacity = max(1, capacity)
        self.max_bytes = max_bytes
        self._events: deque[tuple[int, Event, int]] = deque()  # (seq, record, its kept bytes)
        self._bytes = 0
        self._seq = 0

    @property
    def latest(self) -> int:
        return self._seq

    def add(self, event: Event) -> int:
        """Keep ``event``; its sequence number."""
        self._seq += 1
        size = _kept_bytes(event)
        self._events.append((self._seq, event, size))
        self._bytes += size
        while len(self._events) > self.capacity or (self._bytes > self.max_bytes and len(self._events) > 1):
            self._bytes -= self._events.popleft()[2]
        return self._seq

    def since(
        self, seq: int = 0, *, model: str | None = None, kind: str | None = None, limit: int = 500
    ) -> tuple[list[tuple[int, Event]], int]:
        """The events after ``seq`` (at most the last ``limit``) and the number to ask after next time.

        Raises:
            ValueError: ``kind`` is not a kind of event.
        """
        cls = KINDS.get(kind) if kind is not None else None
        if kind is not None and cls is None:
            raise ValueError(f"kind {kind!r}: events are of kind {', '.join(KINDS)}")
        out = [
            (n, e)
            for n, e, _ in self._events
            if n > seq and (cls is None or isinstance(e, cls)) and (model is None or getattr(e, "model", None) == model)
        ]
        return out[-limit:], out[-1][0] if out else max(seq, 0)
