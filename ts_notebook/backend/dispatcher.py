"""One model version's serving state, with one owner: its queue, its workers and its generation.

HTTP handlers ``submit`` requests and read ``snapshot``s; management calls ``scale``, ``swap``
and ``retire``. Each worker runs a loop here that takes jobs off the queue, forms a batch
(``batchSize``, ``maxBatchDelay``), sends it and answers each job.

A swap is blue/green: new workers start beside the old ones and run ``initialize``; traffic moves
only when as many are READY as the old generation had; the old ones finish the batch they hold
(a forming batch included) and stop. Nothing queued is dropped: jobs wait in the queue until some
worker, old or new, takes them. When only the handler file changed, workers may swap the code in
place instead, keeping the loaded weights (``hotswap``); if that is not safe they say so and the
swap goes blue/green. If the new code fails to load, the old generation keeps serving.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

from ts_notebook.backend.events import EventSink
from ts_notebook.backend.handle import WorkerDied, WorkerHandle, WorkerLoadError
from ts_notebook.backend.jobs import Job, JobQueue
from ts_notebook.backend.messages import Answer, ErrorInfo, Generation, Result, WireRequest, WorkerStatus
from ts_notebook.backend.pool import WorkerPool
from ts_notebook.backend.registry import ModelVersion, Serving, Settings
from ts_notebook.backend.sequences import Sequences
from ts_notebook.jsontypes import JsonObject
from ts_notebook.records import Swap, WorkerChange, WorkerContext

_BATCH_IDS = itertools.count(1)
_DIED = ErrorInfo(500, "Worker died.")


@dataclass(frozen=True)
class SwapReport:
    """What a swap did: the generation now serving, how (``in-place``, ``blue-green``, ``unchanged``,
    ``no-workers``), how many workers run it, and how long the swap took."""

    gen_id: str
    previous: str
    mode: str
    workers: int
    seconds: float
    note: str = ""


class Dispatcher:
    """Serving state of one model version (see the module docstring)."""

    def __init__(self, mv: ModelVersion, generation: Generation, pool: WorkerPool, events: EventSink) -> None:
        self.mv = mv
        self.generation = generation
        self.pool = pool
        self.events = events
        self.queue = JobQueue(max(1, mv.settings.job_queue_size))
        self.workers: dict[str, WorkerHandle] = {}  # every worker of this version, old generations too
        self.target = 0
        self.retired = False
        self.below_min_since: float | None = time.monotonic()  # no worker yet at registration
        self.sequences = Sequences(mv.settings) if mv.settings.sequence_batching else None
        self._lock = asyncio.Lock()  # one scale or swap at a time
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def name(self) -> str:
        return self.mv.name

    @property
    def version(self) -> str:
        return self.mv.version

    @property
    def settings(self) -> Settings:
        return self.mv.settings

    # -- reading -------------------------------------------------------------------------------
    def current(self) -> list[WorkerHandle]:
        """Workers of the serving generation that serve (not draining)."""
        gen = self.generation.gen_id
        return [
            w for w in self.workers.values() if w.generation.gen_id == gen and w.status.live and not w.drain.is_set()
        ]

    def live_count(self) -> int:
        return sum(1 for w in self.workers.values() if w.status.live and not w.drain.is_set())

    def accepting(self) -> bool:
        """Whether a request can wait here for a worker (some serve, or some are meant to start)."""
        return self.target > 0 or self.live_count() > 0

    def snapshot(self) -> Serving:
        """A read-only view for describe: workers as TorchServe shows them, and the queue."""
        return Serving(
            [w.describe() for w in self.workers.values() if not w.drain.is_set()],
            self.queue.qsize() + (self.sequences.pending() if self.sequences else 0),
        )

    def healthy(self, now: float) -> bool:
        """TorchServe's /ping rule for this version: not below minWorkers longer than maxRetryTimeoutInSec."""
        if self.live_count() >= self.settings.min_workers:
            self.below_min_since = None
        elif self.below_min_since is None:
            self.below_min_since = now
        elif now - self.below_min_since > self.settings.max_retry_timeout:
            return False
        return True

    # -- requests ------------------------------------------------------------------------------
    def submit(self, request_id: str, row: JsonObject, headers: JsonObject) -> Job:
        """Queue one request; its ``future`` resolves to the Answer.

        Raises:
            asyncio.QueueFull: the job queue holds ``job_queue_size`` requests already.
            SequenceRefused: a stateful model has no room for this request's sequence.
        """
        job = Job(request_id, row, headers, asyncio.get_running_loop().create_future())
        if self.sequences is not None:
            self.sequences.route(job, [w.worker_id for w in self.current()])
        else:
            self.queue.put_nowait(job)
        return job

    def _late(self, job: Job, now: float) -> bool:
        """Past clientTimeoutInMills: TorchServe drops the answer and never replies; we reply 408."""
        limit = self.settings.client_timeout_ms
        if not limit or (now - job.enqueued) * 1000 <= limit:
            return False
        if not job.future.done():
            message = f"No answer within clientTimeoutInMills ({limit} ms): the request was dropped."
            job.future.set_result(Answer.failed(408, message, queue_seconds=max(0.0, now - job.enqueued)))
        return True

    # -- workers -------------------------------------------------------------------------------
    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _adopt(self, worker: WorkerHandle) -> None:
        """Let a READY worker serve: its loop starts taking jobs."""
        self.workers[worker.worker_id] = worker
        worker.loop_task = asyncio.create_task(self._serve(worker))

    async def _start(self, count: int, generation: Generation) -> list[WorkerHandle]:
        """Start ``count`` workers of ``generation`` in parallel; all or none (the started ones stop).

        Raises:
            WorkerLoadError: one failed to load (the first failure).
        """
        results = await asyncio.gather(
            *(self.pool.start_worker(self, generation) for _ in range(count)), return_exceptions=True
        )
        started = [r for r in results if isinstance(r, WorkerHandle)]
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            for worker in started:
                await self.pool.stop_worker(worker)
            raise errors[0]
        return started

    async def scale(self, target: int) -> None:
        """Bring the serving generation to ``target`` workers: start new ones, or drain extra ones.

        Raises:
            WorkerLoadError: a new worker failed to load (the others keep serving).
        """
        async with self._lock:
            self.target = target
            current = self.current()
            try:
                if len(current) < target:
                    for worker in await self._start(target - len(current), self.generation):
                        self._adopt(worker)
                for worker in current[target:]:
                    await self._retire_worker(worker)
            except WorkerLoadError:
                self.target = len(self.current())
                raise
            finally:
                self.pool.rebalance()

    async def _retire_worker(self, worker: WorkerHandle) -> None:
        """Let the worker finish the batch it holds (a forming one included), then stop it."""
        worker.start_draining()
        if worker.status == WorkerStatus.READY:
            worker.status = WorkerStatus.DRAINING
        if worker.loop_task is not None:
            await asyncio.wait({worker.loop_task})
        worker.status = WorkerStatus.STOPPING
        self.workers.pop(worker.worker_id, None)
        await self.pool.stop_worker(worker)

    async def swap(self, generation: Generation, *, in_place: bool) -> SwapReport:
        """Serve ``generation`` from now on (see the module docstring).

        Raises:
            WorkerLoadError: the new generation failed to load; the old one keeps serving.
        """
        async with self._lock:
            began = time.perf_counter()
            previous = self.generation.gen_id
            old = self.current()
            if generation.gen_id == previous:
                return SwapReport(previous, previous, "unchanged", len(old), 0.0, "the same code and files")
            if not old:
                self.generation = generation
                return SwapReport(generation.gen_id, previous, "no-workers", 0, time.perf_counter() - began)
            note = ""
            if in_place:
                old, note = await self._swap_in_place(old, generation)
            if old:
                await self._swap_blue_green(old, generation)
            self.generation = generation
            self.pool.rebalance()
            mode = "in-place" if not old else "blue-green"
            report = SwapReport(
                generation.gen_id, previous, mode, len(self.current()), time.perf_counter() - began, note
            )
            self.events.on_swap(
                Swap(time.time(), self.name, self.version, report.gen_id, previous, mode, report.workers,
                     report.seconds, note)
            )  # fmt: skip
            return report

    async def _swap_in_place(self, old: list[WorkerHandle], generation: Generation) -> tuple[list[WorkerHandle], str]:
        """Try the first worker; if it keeps its state, the rest follow. The workers left to replace."""
        first = await self.pool.swap_code(old[0], generation)
        if first.failure is not None:
            raise WorkerLoadError(
                f"{first.failure.error}" + (f" at {first.failure.where}" if first.failure.where else ""), first.failure
            )
        if not first.ok:
            return old, first.reason
        rest = await asyncio.gather(*(self.pool.swap_code(w, generation) for w in old[1:]), return_exceptions=True)
        left = [w for w, r in zip(old[1:], rest, strict=True) if isinstance(r, BaseException) or not r.ok]
        return left, ""

    async def _swap_blue_green(self, old: list[WorkerHandle], generation: Generation) -> None:
        new = await self._start(len(old), generation)  # raises before anything moved
        for worker in new:
            self._adopt(worker)
        for worker in old:  # drain before stopping; they take no new job from now on
            worker.start_draining()
        self._background(self._retire_all(old))

    async def _retire_all(self, workers: list[WorkerHandle]) -> None:
        await asyncio.gather(*(self._retire_worker(w) for w in workers))
        self.pool.rebalance()  # the cores go back to the workers that stay

    async def retire(self) -> None:
        """Unregistered: drain and stop every worker; queued requests get TorchServe's 404."""
        async with self._lock:
            self.retired = True
            self.target = 0
            await asyncio.gather(*(self._retire_worker(w) for w in list(self.workers.values())))
            while not self.queue.empty():
                job = self.queue.get_nowait()
                if not job.future.done():
                    job.future.set_result(Answer.failed(404, f"Model not found: {self.name}"))
        self.pool.rebalance()

    def worker_died(self, worker: WorkerHandle, expected: bool) -> None:
        """The pool saw the worker's process end: fail nothing more, replace it if it still counted."""
        self.workers.pop(worker.worker_id, None)
        self._orphan(worker, _DIED)
        if worker.loop_task is not None and not worker.loop_task.done():
            worker.loop_task.cancel()
        if not expected:
            self._background(self._replace(worker))

    async def _replace(self, dead: WorkerHandle) -> None:
        """Report the death (with the exit status the zygote reaps), then fork a replacement."""
        self.pool.worker_event(dead, "DIED", exit_code=await self.pool.reap(dead))
        for delay in (0.0, 1.0, 2.0, 4.0, 8.0):
            await asyncio.sleep(delay)
            if self.retired or self.pool.closing or len(self.current()) >= self.target:
                return
            try:
                async with self._lock:
                    if len(self.current()) < self.target:
                        for worker in await self._start(1, self.generation):
                            self._adopt(worker)
                self.pool.rebalance()
                return
            except WorkerLoadError as exc:
                self.events.on_worker(WorkerChange(time.time(), self.name, self.version, "FAILED", error=str(exc)))

    # -- a worker's loop -----------------------------------------------------------------------
    async def _take(self, worker: WorkerHandle, timeout: float | None) -> Job | None:
        """The next job, or None when the wait times out or the worker is told to drain."""
        if worker.drain.is_set():
            return None
        return await self.queue.take(timeout, worker.waiting)

    def _orphan(self, worker: WorkerHandle, error: ErrorInfo) -> None:
        """A stateful worker is gone: its sequences close and their waiting requests get ``error``."""
        for job in self.sequences.forget_worker(worker.worker_id) if self.sequences else []:
            if not job.future.done():
                job.future.set_result(Answer(error=error))

    async def _serve_sequences(self, worker: WorkerHandle, sequences: Sequences) -> None:
        """A stateful model's worker: each batch holds at most one request of each of its sequences."""
        loop = asyncio.get_running_loop()
        wakeup = sequences.wakeup(worker.worker_id)
        while worker.status.live and not worker.drain.is_set():
            stop = asyncio.ensure_future(worker.drain.wait())
            ready = asyncio.ensure_future(wakeup.wait())
            await asyncio.wait({stop, ready}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            ready.cancel()
            taken: set[str] = set()
            batch = sequences.take(worker.worker_id, self.settings.batch_size, taken)
            deadline = loop.time() + self.settings.max_batch_delay / 1000
            while batch and len(batch) < self.settings.batch_size and (left := deadline - loop.time()) > 0:
                await asyncio.sleep(min(left, 0.005))  # other sequences' requests may still join
                batch += sequences.take(worker.worker_id, self.settings.batch_size - len(batch), taken)
            now = time.perf_counter()
            batch = [job for job in batch if not job.future.done() and not self._late(job, now)]
            if batch:
                await self._run_batch(worker, batch)
        self._orphan(worker, _DIED)

    async def _serve(self, worker: WorkerHandle) -> None:
        if self.sequences is not None:
            await self._serve_sequences(worker, self.sequences)
            return
        loop = asyncio.get_running_loop()
        while worker.status.live and not worker.drain.is_set():
            first = await self._take(worker, None)
            if first is None:
                break
            batch = [first]
            worker.holding = 1
            deadline = loop.time() + self.settings.max_batch_delay / 1000
            while len(batch) < self.settings.batch_size and (remaining := deadline - loop.time()) > 0:
                job = await self._take(worker, remaining)
                if job is None:
                    break  # the delay ran out, or a drain: serve what the batch holds
                batch.append(job)
                worker.holding = len(batch)
            now = time.perf_counter()
            batch = [job for job in batch if not job.future.done() and not self._late(job, now)]
            if batch:
                await self._run_batch(worker, batch)
            worker.holding = 0

    async def _run_batch(self, worker: WorkerHandle, batch: list[Job]) -> None:
        worker.status = WorkerStatus.BUSY
        batch_id = next(_BATCH_IDS)
        sent = time.perf_counter()
        for job in batch:
            job.started = sent
        worker.inflight = {job.request_id: job for job in batch}
        requests = [WireRequest(j.request_id, j.row, j.headers) for j in batch]
        result: Result | None = None
        try:
            result = await self.pool.predict(worker, batch_id, requests, self.settings.response_timeout)
        except asyncio.TimeoutError:
            self.pool.worker_event(worker, "TIMEOUT", response_timeout=self.settings.response_timeout)
            worker.status = WorkerStatus.KILLED  # never READY again: its socket closes and it is replaced
            worker.kill()
        except (WorkerDied, ConnectionError):
            pass
        except asyncio.CancelledError:  # the worker died and its loop was stopped: the batch fails, not hangs
            self._answer(worker, batch, batch_id, None, 0.0)
            raise
        transport = time.perf_counter() - sent - (result.handle_seconds if result else 0.0)
        if result is not None:
            for record in result.metrics:
                self.events.on_metric(self.name, self.version, record)
        self._answer(worker, batch, batch_id, result, max(0.0, transport))
        worker.inflight = {}
        if worker.status == WorkerStatus.BUSY:
            worker.status = WorkerStatus.DRAINING if worker.drain.is_set() else WorkerStatus.READY

    def _answer(
        self, worker: WorkerHandle, batch: list[Job], batch_id: int, result: Result | None, transport: float
    ) -> None:
        gen = worker.generation
        # References, no copy: the Context's model_dir goes in when the record is read.
        context = WorkerContext(gen.model_dir, worker.system_properties or {}, gen.manifest, gen.model_yaml_config)
        stages = result.stages if result else {}
        error = _DIED if result is None else result.error or (_DIED if result.responses is None else None)
        now = time.perf_counter()
        for i, job in enumerate(batch):
            if job.future.done() or self._late(job, now):
                continue
            response = None if error is not None or result is None or result.responses is None else result.responses[i]
            job.future.set_result(
                Answer(
                    response=response,
                    error=error,
                    worker=worker.worker_id,
                    gen_id=gen.gen_id,
                    batch_id=batch_id,
                    batch_size=len(batch),
                    queue_seconds=max(0.0, job.started - job.enqueued),
                    transport_seconds=transport,
                    stages=stages,
                    context=context,
                )
            )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
