"""Workers as the backend sees them: the zygote that forks them, the socket they call back on, and
each worker's loop that takes batches off its model's queue.

A worker that dies (segfault, ``os._exit``, OOM kill) closes its socket: its in-flight requests
fail at once with TorchServe's "Worker died." and a replacement is forked. A batch that runs past
``responseTimeout`` gets its worker killed and replaced the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ts_notebook.backend import protocol
from ts_notebook.errors import BackendError

if TYPE_CHECKING:
    from ts_notebook.backend.registry import ModelVersion


@dataclass
class Job:
    """One inference request waiting for, or being served by, a worker."""

    request_id: str
    row: dict[str, Any]
    headers: dict[str, Any]
    future: asyncio.Future[dict[str, Any]]
    enqueued: float = field(default_factory=time.perf_counter)
    started: float = 0.0
    # send_intermediate_predict_response chunks, streamed to the client before the final answer
    chunks: asyncio.Queue[tuple[bytes, str]] = field(default_factory=asyncio.Queue)


class WorkerDied(Exception):
    pass


@dataclass
class WorkerHandle:
    """A worker process: its id (TorchServe-style, from 9000), pid, state and connection."""

    worker_id: str
    model: ModelVersion
    gpu_id: int | None
    threads: int
    pid: int = -1
    status: str = "STARTING"  # STARTING -> READY <-> BUSY -> STOPPING/DEAD
    started_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    writer: asyncio.StreamWriter | None = None
    loaded: asyncio.Future[dict[str, Any]] | None = None
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    inflight: dict[str, Job] = field(default_factory=dict)  # the running batch's jobs, by request id
    system_properties: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    loop_task: asyncio.Task[None] | None = None
    exit_code: int | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    def describe(self) -> dict[str, Any]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.started_at))
        millis = int((self.started_at % 1) * 1000)
        status = {"READY": "READY", "BUSY": "READY"}.get(self.status, "UNLOADING")
        return {
            "id": self.worker_id,
            "startTime": f"{stamp}.{millis:03d}Z",
            "status": status,
            "memoryUsage": _rss(self.pid),
            "pid": self.pid,
            "gpu": self.gpu_id is not None,
            "gpuUsage": "N/A",
        }

    def kill(self) -> None:
        if self.pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def fail_pending(self, message: str) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(WorkerDied(message))
        self.pending.clear()


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Zygote:
    """The pre-warmed process workers are forked from.

    ``launch()`` is synchronous and cheap, so ``__main__`` calls it before importing the HTTP stack:
    torch's import in the zygote (the longest step of a cold start) then overlaps the backend's own.
    """

    def __init__(self, run_dir: Path) -> None:
        self.control_path = str(run_dir / "zygote.sock")
        self.process: subprocess.Popen[bytes] | None = None
        self.gpus = 0
        self._listener: socket.socket | None = None
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._spawned: dict[str, asyncio.Future[int]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self.on_exit: Callable[[int, int], None] = lambda pid, code: None

    def launch(self) -> None:
        if self._listener is not None:
            return
        Path(self.control_path).unlink(missing_ok=True)  # left by a backend that was killed
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.control_path)
        listener.listen(1)
        self._listener = listener
        self.process = subprocess.Popen([sys.executable, "-m", "ts_notebook.backend.zygote", self.control_path])

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
        self.gpus = int(ready.get("gpus", 0))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        while (message := await protocol.read(reader)) is not None:
            op = message.get("op")
            if op == "ready" and self._ready is not None and not self._ready.done():
                self._ready.set_result(message)
            elif op == "spawned":
                future = self._spawned.pop(message["worker_id"], None)
                if future is not None and not future.done():
                    future.set_result(int(message["pid"]))
            elif op == "exited":
                self.on_exit(int(message["pid"]), int(message["code"]))

    async def spawn(self, sock_path: str, spec: dict[str, Any]) -> int:
        if self._writer is None:
            raise BackendError("the worker zygote is not running")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._spawned[spec["worker_id"]] = future
        self._writer.write(protocol.encode({"op": "spawn", "sock_path": sock_path, "spec": spec}))
        await self._writer.drain()
        return await asyncio.wait_for(future, 30)

    async def stop(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._writer.write(protocol.encode({"op": "stop"}))
                await self._writer.drain()
                self._writer.close()
        process = self.process
        if process is not None and process.poll() is None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, process.wait, 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class WorkerLoadError(BackendError):
    """A worker could not load its model; ``detail`` has the handler's own error and line."""

    def __init__(self, message: str, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.detail = detail


class WorkerPool:
    """Every worker of every model: forks them, wires them up, feeds them batches, replaces the dead."""

    def __init__(self, run_dir: Path, zygote: Zygote, on_event: Callable[..., None], gpus: list[int] | None) -> None:
        self.sock_path = str(run_dir / "workers.sock")
        self.zygote = zygote
        self.on_event = on_event
        self.allowed_gpus = gpus
        self.workers: dict[str, WorkerHandle] = {}
        self._next_id = 9000
        self._next_batch = 0
        self._gpu_turn = 0
        self._server: asyncio.AbstractServer | None = None
        self._replacing: set[asyncio.Task[Any]] = set()
        self._by_pid: dict[int, WorkerHandle] = {}  # until the zygote reports the exit status
        self.targets: dict[int, ModelVersion] = {}  # models meant to have workers, by id
        self.closing = False

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._accept, path=self.sock_path)
        self.zygote.on_exit = self._on_exit

    def _pick_gpu(self, model: ModelVersion) -> int | None:
        """TorchServe's rule: round-robin over the allowed devices; None without CUDA or for deviceType cpu."""
        if model.settings.device_type == "cpu" or self.zygote.gpus == 0:
            return None
        visible = list(range(self.zygote.gpus))
        allowed = model.settings.device_ids or (self.allowed_gpus if self.allowed_gpus is not None else visible)
        usable = [g for g in allowed if g in visible]
        if not usable:
            return None
        gpu = usable[self._gpu_turn % len(usable)]
        self._gpu_turn += 1
        return gpu

    def planned(self) -> int:
        """How many workers all models are meant to have (what the cores are shared among)."""
        live = sum(1 for w in self.workers.values() if w.status not in ("DEAD", "KILLED", "STOPPING"))
        models = {id(w.model): w.model for w in self.workers.values()} | self.targets
        targets = sum(m.target_workers for m in models.values() if not m.removed)
        return max(1, live, targets)

    def share(self) -> int:
        """Each worker's share of the cores."""
        return max(1, (os.cpu_count() or 1) // self.planned())

    def rebalance(self) -> None:
        """Give every worker the same share of the cores, so N workers never oversubscribe them."""
        share = self.share()
        for worker in self.workers.values():
            if worker.status in ("READY", "BUSY") and worker.threads != share and worker.writer is not None:
                worker.threads = share
                worker.writer.write(protocol.encode({"op": "threads", "n": share}))

    async def add_worker(self, model: ModelVersion) -> WorkerHandle:
        """Fork a worker for ``model`` and wait until its handler's ``initialize`` returned.

        Raises:
            WorkerLoadError: the handler failed to load (message and handler line inside).
        """
        worker_id = str(self._next_id)
        self._next_id += 1
        worker = WorkerHandle(worker_id, model, self._pick_gpu(model), self.share())
        worker.loaded = asyncio.get_running_loop().create_future()
        self.workers[worker_id] = worker
        model.workers[worker_id] = worker
        spec = {
            "worker_id": worker_id,
            "model_name": model.name,
            "model_dir": str(model.model_dir),
            "manifest": model.manifest,
            "handler": model.handler,
            "batch_size": model.settings.batch_size,
            "gpu_id": worker.gpu_id,
            "model_yaml_config": model.yaml_config,
            "threads": worker.threads,
        }
        start = time.perf_counter()
        try:
            worker.pid = await self.zygote.spawn(self.sock_path, spec)
            self._by_pid[worker.pid] = worker
            result = await asyncio.wait_for(worker.loaded, model.settings.startup_timeout)
        except (asyncio.TimeoutError, BackendError) as exc:
            self._forget(worker)
            worker.kill()
            raise WorkerLoadError(f"worker {worker_id} did not load {model.name} in time: {exc}", {}) from exc
        if not result.get("ok"):
            self._forget(worker)
            where = f" at {result['where']}" if result.get("where") else ""
            raise WorkerLoadError(f"{result.get('error')}{where}", result)
        worker.load_seconds = time.perf_counter() - start
        worker.system_properties = result.get("system_properties")
        worker.manifest = result.get("manifest")
        worker.status = "READY"
        worker.loop_task = asyncio.create_task(self._serve(worker))
        self._worker_event(worker, "READY", gpu_id=worker.gpu_id, load_ms=round(worker.load_seconds * 1000, 1))
        return worker

    def _worker_event(self, worker: WorkerHandle, status: str, **fields: Any) -> None:
        """A worker's life event for the notebook's record (READY, DIED, TIMEOUT, ...)."""
        self._event("worker", worker, status=status, **fields)

    def _event(self, kind: str, worker: WorkerHandle, **fields: Any) -> None:
        """An event tagged with the worker's model, version, id and pid."""
        model = worker.model
        self.on_event(kind, model=model.name, version=model.version, worker=worker.worker_id, pid=worker.pid, **fields)

    def _forget(self, worker: WorkerHandle) -> None:
        worker.status = "DEAD"
        self.workers.pop(worker.worker_id, None)
        worker.model.workers.pop(worker.worker_id, None)

    async def stop_worker(self, worker: WorkerHandle) -> None:
        """Let the worker finish its batch, then stop it."""
        worker.status = "STOPPING" if worker.status != "BUSY" else "DRAINING"
        if worker.loop_task is not None and worker.status == "STOPPING":
            worker.loop_task.cancel()
        while worker.status == "DRAINING":
            await asyncio.sleep(0.01)
        self._forget(worker)
        if worker.writer is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                worker.writer.write(protocol.encode({"op": "stop"}))
                await worker.writer.drain()
                worker.writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await protocol.read(reader)
        worker = self.workers.get(str(hello.get("worker_id"))) if hello else None
        if worker is None:
            writer.close()
            return
        worker.writer = writer
        while (message := await protocol.read(reader)) is not None:
            self._dispatch(worker, message)
        self._died(worker)

    def _dispatch(self, worker: WorkerHandle, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "loaded" and worker.loaded is not None and not worker.loaded.done():
            worker.loaded.set_result(message)
        elif op == "result":
            future = worker.pending.pop(int(message["batch_id"]), None)
            if future is not None and not future.done():
                future.set_result(message)
        elif op == "intermediate":
            job = worker.inflight.get(str(message.get("request_id")))
            if job is not None and not job.future.done():
                job.chunks.put_nowait((message["body"], str(message.get("content_type") or "")))
        elif op == "log":
            self._event(
                "log",
                worker,
                level=message.get("level"),
                message=message.get("message"),
                source=message.get("source"),
                request_id=message.get("request_id"),
            )

    def _on_exit(self, pid: int, code: int) -> None:
        worker = self._by_pid.get(pid)
        if worker is not None:
            worker.exit_code = code
            worker.exited.set()

    def _died(self, worker: WorkerHandle) -> None:
        if worker.status == "DEAD":
            return
        expected = worker.status in ("STOPPING", "DRAINING")
        worker.status = "DEAD"
        worker.fail_pending("Worker died.")
        if worker.loaded is not None and not worker.loaded.done():
            worker.loaded.set_result({"ok": False, "error": "the worker process exited while loading the model"})
        if worker.loop_task is not None:
            worker.loop_task.cancel()
        self._forget(worker)
        if expected or self.closing:
            return
        task = asyncio.create_task(self._replace(worker))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _replace(self, dead: WorkerHandle) -> None:
        """Report the death (with the exit status the zygote reaps), then fork a replacement."""
        model = dead.model
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(dead.exited.wait(), 1.0)
        self._by_pid.pop(dead.pid, None)
        self._worker_event(dead, "DIED", exit_code=dead.exit_code)
        for delay in (0.0, 1.0, 2.0, 4.0, 8.0):
            await asyncio.sleep(delay)
            if model.removed or self.closing or len(model.workers) >= model.target_workers:
                return
            try:
                await self.add_worker(model)
                self.rebalance()
                return
            except WorkerLoadError as exc:
                self.on_event("worker", model=model.name, version=model.version, status="FAILED", error=str(exc))

    async def _serve(self, worker: WorkerHandle) -> None:
        model = worker.model
        loop = asyncio.get_running_loop()
        while worker.status == "READY":
            batch = [await model.queue.get()]
            deadline = loop.time() + model.settings.max_batch_delay / 1000
            while len(batch) < model.settings.batch_size and (remaining := deadline - loop.time()) > 0:
                try:
                    batch.append(await asyncio.wait_for(model.queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            batch = [job for job in batch if not job.future.done()]
            if batch:
                await self._run_batch(worker, batch)
            if worker.status == "DRAINING":
                worker.status = "STOPPING"
                return

    async def _run_batch(self, worker: WorkerHandle, batch: list[Job]) -> None:
        model = worker.model
        worker.status = "BUSY"
        self._next_batch += 1
        batch_id = self._next_batch
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        worker.pending[batch_id] = future
        now = time.perf_counter()
        for job in batch:
            job.started = now
        worker.inflight = {job.request_id: job for job in batch}
        requests = [{"request_id": j.request_id, "row": j.row, "headers": j.headers} for j in batch]
        try:
            assert worker.writer is not None
            worker.writer.write(protocol.encode({"op": "predict", "batch_id": batch_id, "requests": requests}))
            await worker.writer.drain()
            reply = await asyncio.wait_for(future, model.settings.response_timeout)
        except asyncio.TimeoutError:
            self._worker_event(worker, "TIMEOUT", response_timeout=model.settings.response_timeout)
            worker.status = "KILLED"  # never READY again: its socket closes and _died() replaces it
            worker.kill()  # its socket closes and _died() forks the replacement
            reply = {"error": {"code": 500, "message": "Worker died."}}
        except (WorkerDied, ConnectionError, AssertionError):
            reply = {"error": {"code": 500, "message": "Worker died."}}
        for record in reply.get("metrics", []):
            self.on_event("metric", model=model.name, version=model.version, record=record)
        for i, job in enumerate(batch):
            if job.future.done():
                continue
            if "error" in reply:
                job.future.set_result({"error": reply["error"], "worker": worker.worker_id})
            else:
                job.future.set_result({**reply["responses"][i], "worker": worker.worker_id})
        if worker.status == "BUSY":
            worker.status = "READY"

    async def close(self) -> None:
        self.closing = True
        for worker in list(self.workers.values()):
            worker.kill()
        if self._server is not None:
            self._server.close()
