"""Worker processes as the backend sees them: the zygote that forks them, the socket they call back
on, and the messages each one sends. What the workers serve, and when, is the dispatcher's.

A worker that dies (segfault, ``os._exit``, OOM kill) closes its socket: its in-flight batch fails
at once with TorchServe's "Worker died." and its dispatcher decides whether to replace it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ts_notebook.backend import ipc, protocol
from ts_notebook.backend.events import EventSink
from ts_notebook.backend.handle import WorkerDied, WorkerHandle, WorkerLoadError, WorkerOwner
from ts_notebook.backend.link import Link
from ts_notebook.backend.messages import (
    Exited,
    Generation,
    Hello,
    Intermediate,
    Loaded,
    LoadFailure,
    Log,
    Predict,
    Result,
    SetThreads,
    Spawn,
    Spawned,
    Stop,
    SwapCode,
    Swapped,
    WireRequest,
    WorkerSpec,
    WorkerStatus,
    ZygoteReady,
)
from ts_notebook.errors import BackendError
from ts_notebook.records import LogLine, WorkerChange

__all__ = ["WorkerDied", "WorkerHandle", "WorkerLoadError", "WorkerPool", "Zygote"]


class Zygote:
    """The pre-warmed process workers are forked from.

    ``launch()`` is synchronous and cheap, so ``__main__`` calls it before importing the HTTP stack:
    torch's import in the zygote (the longest step of a cold start) then overlaps the backend's own.
    """

    def __init__(self, run_dir: Path, secret: bytes | None = None) -> None:
        self.control_path = str(run_dir / "zygote.sock")
        self.secret = secret or ipc.new_secret()
        self.on_refused: Callable[[str], None] = lambda where: None
        self.process: subprocess.Popen[bytes] | None = None
        self.gpus = 0
        self._listener: socket.socket | None = None
        self._ready: asyncio.Future[ZygoteReady] | None = None
        self._spawned: dict[str, asyncio.Future[int]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self.on_exit: Callable[[int, int], None] = lambda pid, code: None

    def launch(self) -> None:
        if self._listener is not None:
            return
        self._listener = ipc.listen(self.control_path, 1)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ts_notebook.backend.zygote", self.control_path], stdin=subprocess.PIPE
        )
        assert self.process.stdin is not None
        self.process.stdin.write(self.secret.hex().encode() + b"\n")  # stdin: not in ps, not in /proc/*/environ
        self.process.stdin.close()

    async def start(self, timeout: float = 120.0) -> None:
        self.launch()
        assert self._listener is not None
        self._ready = asyncio.get_running_loop().create_future()
        server = await asyncio.start_unix_server(self._accept, sock=self._listener)
        try:
            ready = await asyncio.wait_for(self._ready, timeout)
        except asyncio.TimeoutError as exc:
            raise BackendError(f"the worker zygote did not start within {timeout:.0f} s (importing torch?)") from exc
        finally:
            server.close()
        self.gpus = ready.gpus

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None or not await ipc.admitted(reader, self.secret):
            self.on_refused("zygote.sock")
            writer.close()
            return
        self._writer = writer
        while (message := await protocol.read(reader)) is not None:
            if isinstance(message, ZygoteReady) and self._ready is not None and not self._ready.done():
                self._ready.set_result(message)
            elif isinstance(message, Spawned):
                future = self._spawned.pop(message.worker_id, None)
                if future is not None and not future.done():
                    future.set_result(message.pid)
            elif isinstance(message, Exited):
                self.on_exit(message.pid, message.code)

    async def spawn(self, sock_path: str, spec: WorkerSpec) -> int:
        if self._writer is None:
            raise BackendError("the worker zygote is not running")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._spawned[spec.worker_id] = future
        self._writer.write(protocol.encode(Spawn(sock_path, spec)))
        await self._writer.drain()
        return await asyncio.wait_for(future, 30)

    async def stop(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._writer.write(protocol.encode(Stop()))
                await self._writer.drain()
                self._writer.close()
        process = self.process
        if process is not None and process.poll() is None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, process.wait, 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class WorkerPool:
    """Every worker process: forks them, wires them up, carries their messages, reports their deaths.

    ``planned`` tells how many workers all models are meant to have, which is what the cores are
    shared among.
    """

    def __init__(
        self,
        run_dir: Path,
        zygote: Zygote,
        events: EventSink,
        gpus: list[int] | None,
        planned: Callable[[], int] = lambda: 1,
        time_stages: bool = True,
        metrics_config: str | None = None,
        envelope: str | None = None,
    ) -> None:
        self.sock_path = str(run_dir / "workers.sock")
        self.zygote = zygote
        self.events = events
        self.allowed_gpus = gpus
        self.planned = planned
        self.time_stages = time_stages
        self.metrics_config = metrics_config
        self.envelope = envelope
        self.workers: dict[str, WorkerHandle] = {}
        self._next_id = 9000
        self._gpu_turn = 0
        self._server: asyncio.AbstractServer | None = None
        self._by_pid: dict[int, WorkerHandle] = {}  # until the zygote reports the exit status
        self.closing = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._link, sock=ipc.listen(self.sock_path))
        self.zygote.on_exit = self._on_exit

    def _pick_gpu(self, owner: WorkerOwner) -> int | None:
        """TorchServe's rule: round-robin over the allowed devices; None without CUDA or for deviceType cpu."""
        settings = owner.settings
        if settings.device_type == "cpu" or self.zygote.gpus == 0:
            return None
        visible = list(range(self.zygote.gpus))
        allowed = settings.device_ids or (self.allowed_gpus if self.allowed_gpus is not None else visible)
        usable = [g for g in allowed if g in visible]
        if not usable:
            return None
        gpu = usable[self._gpu_turn % len(usable)]
        self._gpu_turn += 1
        return gpu

    def share(self) -> int:
        """Each worker's share of the cores."""
        live = sum(1 for w in self.workers.values() if w.status not in (WorkerStatus.DEAD, WorkerStatus.KILLED))
        return max(1, (os.cpu_count() or 1) // max(1, live, self.planned()))

    def rebalance(self) -> None:
        """Give every worker the same share of the cores, so N workers never oversubscribe them."""
        share = self.share()
        for worker in self.workers.values():
            if worker.status.live and worker.threads != share and worker.link is not None:
                worker.threads = share
                with contextlib.suppress(ConnectionError):
                    worker.link.send(SetThreads(share))

    async def start_worker(self, owner: WorkerOwner, generation: Generation) -> WorkerHandle:
        """Fork a worker running ``generation`` and wait until its handler's ``initialize`` returned.

        The worker is READY but serves nothing until its dispatcher starts its loop.

        Raises:
            WorkerLoadError: the handler failed to load (message, handler line and traceback inside).
        """
        worker_id = str(self._next_id)
        self._next_id += 1
        worker = WorkerHandle(worker_id, owner, generation, self._pick_gpu(owner), self.share())
        worker.loaded = asyncio.get_running_loop().create_future()
        self.workers[worker_id] = worker
        spec = WorkerSpec(
            worker_id,
            owner.name,
            generation,
            owner.settings.batch_size,
            worker.gpu_id,
            worker.threads,
            self.time_stages,
            self.metrics_config,
            self.envelope,
        )
        start = time.perf_counter()
        try:
            worker.pid = await self.zygote.spawn(self.sock_path, spec)
            self._by_pid[worker.pid] = worker
            loaded = await asyncio.wait_for(worker.loaded, owner.settings.startup_timeout)
        except (asyncio.TimeoutError, BackendError) as exc:
            self.forget(worker)
            worker.kill()
            raise WorkerLoadError(f"worker {worker_id} did not load {owner.name} in time: {exc}") from exc
        if loaded.failure is not None:
            self.forget(worker)
            where = f" at {loaded.failure.where}" if loaded.failure.where else ""
            raise WorkerLoadError(f"{loaded.failure.error}{where}", loaded.failure)
        worker.load_seconds = time.perf_counter() - start
        worker.system_properties = loaded.system_properties
        worker.manifest = loaded.manifest
        worker.status = WorkerStatus.READY
        self.worker_event(worker, "READY", gpu_id=worker.gpu_id, load_ms=round(worker.load_seconds * 1000, 1))
        return worker

    def worker_event(
        self,
        worker: WorkerHandle,
        status: str,
        *,
        gpu_id: int | None = None,
        load_ms: float | None = None,
        exit_code: int | None = None,
        response_timeout: int | None = None,
    ) -> None:
        """A worker's life event for the notebook's record (READY, DIED, TIMEOUT, ...)."""
        owner = worker.owner
        self.events.on_worker(
            WorkerChange(
                time.time(),
                owner.name,
                owner.version,
                status,
                worker.worker_id,
                worker.pid,
                worker.generation.gen_id,
                gpu_id,
                load_ms,
                exit_code,
                response_timeout,
            )
        )

    def forget(self, worker: WorkerHandle) -> None:
        worker.status = WorkerStatus.DEAD
        self.workers.pop(worker.worker_id, None)

    async def stop_worker(self, worker: WorkerHandle) -> None:
        """Stop a worker that serves nothing any more (its loop has ended)."""
        self.forget(worker)
        if worker.link is not None:
            with contextlib.suppress(ConnectionError):
                worker.link.send(Stop())  # the transport flushes this frame before it closes
            worker.link.close()

    async def predict(self, worker: WorkerHandle, batch_id: int, requests: list[WireRequest], timeout: float) -> Result:
        """Send one batch and wait for its result, at most ``timeout`` seconds (responseTimeout).

        A timer rather than ``asyncio.wait_for``, which would wrap every batch in a task of its own.

        Raises:
            WorkerDied: the worker's process ended first.
            asyncio.TimeoutError: no result within ``timeout``.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        if worker.link is None:
            raise WorkerDied("no connection")
        worker.pending[batch_id] = future
        timer = loop.call_later(timeout, _time_out, future)
        try:
            worker.link.send(Predict(batch_id, requests))
            return await future
        finally:
            timer.cancel()
            worker.pending.pop(batch_id, None)

    async def swap_code(self, worker: WorkerHandle, generation: Generation) -> Swapped:
        """Ask a worker to run ``generation`` keeping its loaded state; it answers after its current batch."""
        worker.swapped = asyncio.get_running_loop().create_future()
        if worker.link is None:
            raise WorkerDied("no connection")
        worker.link.send(SwapCode(generation))
        swapped = await worker.swapped
        if swapped.ok:
            worker.generation = generation
        return swapped

    def _link(self) -> Link:
        return Link(self.zygote.secret, self._received, self._closed, lambda: self.zygote.on_refused("workers.sock"))

    def _received(self, link: Link, message: object) -> None:
        worker = link.peer
        if isinstance(worker, WorkerHandle):
            self._dispatch(worker, message)
            return
        # The first message names the worker; a connection that names none of ours is closed.
        found = self.workers.get(message.worker_id) if isinstance(message, Hello) else None
        if found is None:
            link.close()
            return
        link.peer, found.link = found, link

    def _closed(self, link: Link) -> None:
        if isinstance(link.peer, WorkerHandle):
            self._died(link.peer)

    def _dispatch(self, worker: WorkerHandle, message: object) -> None:
        if isinstance(message, Result):
            future = worker.pending.pop(message.batch_id, None)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, Intermediate):
            job = worker.inflight.get(message.request_id)
            if job is not None and not job.future.done():
                job.add_chunk(message.body, message.content_type)
        elif isinstance(message, Log):
            owner = worker.owner
            self.events.on_log(LogLine(time.time(), message.level, message.message, message.source, owner.name,
                                       owner.version, worker.worker_id, worker.pid, message.request_id))  # fmt: skip
        elif isinstance(message, Loaded) and worker.loaded is not None and not worker.loaded.done():
            worker.loaded.set_result(message)
        elif isinstance(message, Swapped) and worker.swapped is not None and not worker.swapped.done():
            worker.swapped.set_result(message)

    def _on_exit(self, pid: int, code: int) -> None:
        worker = self._by_pid.get(pid)
        if worker is not None:
            worker.exit_code = code
            worker.exited.set()

    def _died(self, worker: WorkerHandle) -> None:
        if worker.status == WorkerStatus.DEAD:
            return
        expected = worker.status in (WorkerStatus.STOPPING, WorkerStatus.DRAINING)
        worker.status = WorkerStatus.DEAD
        worker.fail_pending("Worker died.")
        if worker.loaded is not None and not worker.loaded.done():
            worker.loaded.set_result(Loaded(failure=_EXITED))
        self.forget(worker)
        if not self.closing:
            worker.owner.worker_died(worker, expected)

    async def reap(self, dead: WorkerHandle) -> int | None:
        """The dead worker's exit status, as the zygote reports it (None if it does not within 1 s)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(dead.exited.wait(), 1.0)
        self._by_pid.pop(dead.pid, None)
        return dead.exit_code

    async def close(self) -> None:
        self.closing = True
        for worker in list(self.workers.values()):
            worker.kill()
        if self._server is not None:
            self._server.close()


def _time_out(future: asyncio.Future[Result]) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


_EXITED = LoadFailure("the worker process exited while loading the model")
