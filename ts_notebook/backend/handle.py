"""A worker process as the backend holds it: id, pid, status, generation, connection, in-flight work."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ts_notebook.backend.jobs import release
from ts_notebook.backend.messages import Generation, Loaded, LoadFailure, Result, Swapped, WorkerStatus
from ts_notebook.errors import BackendError
from ts_notebook.jsontypes import JsonObject
from ts_notebook.records import WorkerView

if TYPE_CHECKING:
    from ts_notebook.backend.jobs import Job
    from ts_notebook.backend.link import Link
    from ts_notebook.backend.registry import Settings


OUT_OF_MEMORY = ("MemoryError", "OutOfMemoryError")


class WorkerDied(Exception):
    """The worker's process ended while a batch or a swap waited for it."""


class WorkerLoadError(BackendError):
    """A worker could not load its model; ``failure`` has the handler's own error, line and traceback."""

    def __init__(self, message: str, failure: LoadFailure | None = None) -> None:
        super().__init__(message)
        self.failure = failure

    @property
    def out_of_memory(self) -> bool:
        """A MemoryError, or torch's (CUDA) OutOfMemoryError, stopped the load."""
        return self.failure is not None and self.failure.error.split(":", 1)[0] in OUT_OF_MEMORY


class WorkerOwner(Protocol):
    """What a worker and the pool need from whoever serves with the worker (a model version's dispatcher).

    A protocol rather than the dispatcher itself so the pool and the handle sit below the dispatcher
    in the import graph: the dispatcher drives the pool, and the pool only reports back through this.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    def worker_died(self, worker: WorkerHandle, expected: bool) -> None:
        """The worker's process ended; ``expected`` if it was draining or stopping."""


@dataclass(eq=False)
class WorkerHandle:
    """A worker process: its id (TorchServe-style, from 9000), pid, state, generation and connection."""

    worker_id: str
    owner: WorkerOwner
    generation: Generation
    gpu_id: int | None
    threads: int
    pid: int = -1
    status: WorkerStatus = WorkerStatus.STARTING
    started_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    link: Link | None = None  # its connection, once the worker said hello
    loaded: asyncio.Future[Loaded] | None = None
    swapped: asyncio.Future[Swapped] | None = None
    pending: dict[int, asyncio.Future[Result]] = field(default_factory=dict)
    inflight: dict[str, Job] = field(default_factory=dict)  # the running batch's jobs, by request id
    holding: int = 0  # jobs taken for the batch being formed or run
    system_properties: JsonObject | None = None
    manifest: JsonObject | None = None
    loop_task: asyncio.Task[None] | None = None
    exit_code: int | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    drain: asyncio.Event = field(default_factory=asyncio.Event)  # set: take no new work, stop after the batch
    waiting: list[asyncio.Future[Job | None]] = field(default_factory=list)  # its loop's wait for a job

    def start_draining(self) -> None:
        """Take no new job (a loop waiting for one wakes up empty-handed); stop after the current batch."""
        self.drain.set()
        release(self.waiting)

    def describe(self) -> JsonObject:
        """The worker as TorchServe's describe API shows it."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.started_at))
        millis = int((self.started_at % 1) * 1000)
        return {
            "id": self.worker_id,
            "startTime": f"{stamp}.{millis:03d}Z",
            "status": "READY" if self.status.live else "UNLOADING",
            "memoryUsage": rss(self.pid),
            "pid": self.pid,
            "gpu": self.gpu_id is not None,
            "gpuUsage": "N/A",
        }

    def view(self) -> WorkerView:
        """The notebook's view: what the worker really received and which code it runs."""
        return WorkerView(
            self.worker_id,
            self.pid,
            self.status.value,
            self.generation.gen_id,
            self.gpu_id,
            self.threads,
            self.holding,
            self.system_properties or {},
            self.manifest or {},
        )

    def kill(self) -> None:
        if self.pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def fail_pending(self, message: str) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(WorkerDied(message))
        self.pending.clear()
        if self.swapped is not None and not self.swapped.done():
            self.swapped.set_exception(WorkerDied(message))


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
