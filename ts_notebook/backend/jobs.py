"""A request waiting for a worker (``Job``) and the queue of them (``JobQueue``).

Both sit on every request's path, so they do the least per request the event loop allows: a job
handed to a worker loop that is already waiting goes straight into that loop's future (no task, no
``asyncio.wait``), and the HTTP side waits on one future per wake-up, whether the wake-up is the
final answer or a streamed chunk (``send_intermediate_predict_response``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ts_notebook.backend.messages import Answer
from ts_notebook.jsontypes import JsonObject


@dataclass(eq=False)
class Job:
    """One inference request waiting for, or being served by, a worker."""

    request_id: str
    row: JsonObject  # the handler's data row and headers, as TorchServe shapes them
    headers: JsonObject
    future: asyncio.Future[Answer]
    enqueued: float = field(default_factory=time.perf_counter)
    started: float = 0.0
    # send_intermediate_predict_response chunks, streamed to the client before the final answer
    chunks: deque[tuple[bytes, str]] = field(default_factory=deque)
    _waker: asyncio.Future[None] | None = None

    def __post_init__(self) -> None:
        self.future.add_done_callback(lambda _: self._wake())

    def add_chunk(self, body: bytes, content_type: str) -> None:
        if not self.future.done():
            self.chunks.append((body, content_type))
            self._wake()

    def _wake(self) -> None:
        waker, self._waker = self._waker, None
        if waker is not None and not waker.done():
            waker.set_result(None)

    async def changed(self) -> None:
        """Return once a chunk is waiting or the answer is in (at once if either is already so)."""
        if self.chunks or self.future.done():
            return
        self._waker = self.future.get_loop().create_future()
        await self._waker


class JobQueue:
    """A bounded FIFO of jobs that hands a job straight to a worker loop already waiting for one.

    ``maxsize`` bounds the jobs that wait (TorchServe's job_queue_size), not those handed over.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._jobs: deque[Job] = deque()
        self._waiters: deque[asyncio.Future[Job | None]] = deque()

    def qsize(self) -> int:
        return len(self._jobs)

    def empty(self) -> bool:
        return not self._jobs

    def put_nowait(self, job: Job) -> None:
        """Hand ``job`` to the longest-waiting loop, else queue it.

        Raises:
            asyncio.QueueFull: ``maxsize`` jobs wait already.
        """
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(job)
                return
        if len(self._jobs) >= self.maxsize:
            raise asyncio.QueueFull
        self._jobs.append(job)

    def get_nowait(self) -> Job:
        """The oldest waiting job.

        Raises:
            asyncio.QueueEmpty: none waits.
        """
        if not self._jobs:
            raise asyncio.QueueEmpty
        return self._jobs.popleft()

    def give_back(self, job: Job) -> None:
        """A job taken by a loop that could not serve it goes back first in line (or to a waiting loop)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(job)
                return
        self._jobs.appendleft(job)

    async def take(self, timeout: float | None, waiting: list[asyncio.Future[Job | None]]) -> Job | None:
        """The next job, or None after ``timeout`` seconds or when the caller's future (published in
        ``waiting`` so a drain can resolve it with None) is resolved with None."""
        if self._jobs:
            return self._jobs.popleft()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Job | None] = loop.create_future()
        self._waiters.append(waiter)
        waiting.append(waiter)
        timer = loop.call_later(timeout, _resolve, waiter, None) if timeout is not None else None
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled after a job was handed over but before this loop ran: the job is not lost.
            if waiter.done() and not waiter.cancelled() and (job := waiter.result()) is not None:
                self.give_back(job)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            waiting.remove(waiter)
            handed = waiter.done() and not waiter.cancelled() and waiter.result() is not None
            # Not handed over, so maybe still queued. Test first: a failed deque.remove formats the
            # future's repr into its error, which costs more than the whole hand-off.
            if not handed and waiter in self._waiters:
                self._waiters.remove(waiter)
            if not waiter.done():
                waiter.cancel()


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def release(waiting: list[asyncio.Future[Job | None]]) -> None:
    """Wake the loop waiting on these futures with no job (its worker drains)."""
    for waiter in list(waiting):
        _resolve(waiter, None)
