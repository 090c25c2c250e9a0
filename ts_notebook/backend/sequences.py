"""Sequence batching for stateful models, as TorchServe 0.12.0 does it (observed on a real server here):

- a request names its sequence in the ``ts_request_sequence_id`` header; without one, a new sequence
  ``ts-seq-<uuid>`` is opened and the handler sees ``ts_request_sequence_start: true``; an unknown id
  opens a sequence of that name;
- at most ``maxNumSequence`` sequences are open at once (1 unless configured), each with at most
  ``maxSequenceJobQueueSize`` waiting requests (1 unless configured); beyond either, 503;
- a sequence lives on one worker (the one with the fewest sequences when it opened), its requests in
  order; a batch takes at most one request from each of the worker's sequences;
- ``ts_request_sequence_end: true`` closes the sequence once that request is taken; so does being idle
  for ``sequenceMaxIdleMSec``, or open for ``sequenceTimeoutMSec`` (0: never).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ts_notebook.jsontypes import JsonObject

if TYPE_CHECKING:
    from ts_notebook.backend.jobs import Job
    from ts_notebook.backend.registry import Settings

SEQUENCE_ID = "ts_request_sequence_id"
SEQUENCE_START = "ts_request_sequence_start"
SEQUENCE_END = "ts_request_sequence_end"


class SequenceRefused(Exception):
    """No room: too many open sequences, or too many requests waiting in this one (TorchServe's 503)."""


@dataclass(eq=False)
class Sequence:
    seq_id: str
    worker_id: str
    opened: float
    last: float
    jobs: deque[Job] = field(default_factory=deque)
    ending: bool = False  # its last request has arrived: close it once that is taken


def _header(headers: JsonObject, name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, dict):  # our wire headers may carry per-field metadata
        return None
    return None if value is None else str(value)


class Sequences:
    """The open sequences of one model version and the worker each lives on."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.open: dict[str, Sequence] = {}
        self._wakeups: dict[str, asyncio.Event] = {}

    def wakeup(self, worker_id: str) -> asyncio.Event:
        return self._wakeups.setdefault(worker_id, asyncio.Event())

    def expire(self, now: float) -> None:
        """Close the sequences idle or open too long (never one with requests still waiting)."""
        idle, life = self.settings.sequence_max_idle_ms / 1000, self.settings.sequence_timeout_ms / 1000
        for seq_id, seq in list(self.open.items()):
            if seq.jobs:
                continue
            if (idle and now - seq.last > idle) or (life and now - seq.opened > life):
                del self.open[seq_id]

    def route(self, job: Job, workers: Iterable[str]) -> None:
        """Put ``job`` in its sequence (opening one if needed), adding the headers TorchServe adds.

        Raises:
            SequenceRefused: no room for another sequence or another request in this one.
        """
        now = time.monotonic()
        self.expire(now)
        seq_id = _header(job.headers, SEQUENCE_ID)
        if seq_id is None:
            seq_id = f"ts-seq-{uuid.uuid4()}"
            job.headers[SEQUENCE_ID] = seq_id
            job.headers[SEQUENCE_START] = "true"
        seq = self.open.get(seq_id)
        if seq is None:
            seq = self._open(seq_id, list(workers), now)
        if len(seq.jobs) >= self.settings.sequence_queue_size:
            raise SequenceRefused(seq_id)
        seq.jobs.append(job)
        seq.last = now
        if (_header(job.headers, SEQUENCE_END) or "").lower() == "true":
            seq.ending = True
        self.wakeup(seq.worker_id).set()

    def _open(self, seq_id: str, workers: list[str], now: float) -> Sequence:
        if len(self.open) >= self.settings.sequences_allowed or not workers:
            raise SequenceRefused(seq_id)
        load = {w: 0 for w in workers}
        for seq in self.open.values():
            if seq.worker_id in load:
                load[seq.worker_id] += 1
        worker = min(workers, key=lambda w: load[w])
        seq = self.open[seq_id] = Sequence(seq_id, worker, now, now)
        return seq

    def take(self, worker_id: str, limit: int, taken: set[str]) -> list[Job]:
        """At most one waiting request from each of the worker's sequences not in ``taken`` (which this
        adds to), oldest first, up to ``limit``."""
        ready = sorted(
            (s for s in self.open.values() if s.worker_id == worker_id and s.jobs and s.seq_id not in taken),
            key=lambda s: s.jobs[0].enqueued,
        )
        batch = []
        for seq in ready[:limit]:
            taken.add(seq.seq_id)
            batch.append(seq.jobs.popleft())
            seq.last = time.monotonic()
            if seq.ending and not seq.jobs:
                del self.open[seq.seq_id]
        if not any(s.worker_id == worker_id and s.jobs for s in self.open.values()):
            self.wakeup(worker_id).clear()
        return batch

    def forget_worker(self, worker_id: str) -> list[Job]:
        """The worker is gone: its sequences close (their state went with it); their waiting requests."""
        orphans: list[Job] = []
        for seq_id, seq in list(self.open.items()):
            if seq.worker_id == worker_id:
                orphans.extend(seq.jobs)
                del self.open[seq_id]
        self._wakeups.pop(worker_id, None)
        return orphans

    def pending(self) -> int:
        return sum(len(s.jobs) for s in self.open.values())
