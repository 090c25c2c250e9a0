"""``ts.handler_utils.micro_batching.MicroBatching``: split a batch into micro-batches that flow through
preprocess -> inference -> postprocess on threads of their own, so one micro-batch's preprocessing
overlaps another's inference; the answers come back in request order.

A handler builds it in ``__init__`` or ``initialize`` (``MicroBatching(self, micro_batch_size=4,
parallelism={"preprocess": 2})``) and returns ``self.handle = mb`` style, or calls ``mb(data, context)``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

STAGES = ("preprocess", "inference", "postprocess")
HANDLER_METHODS = list(STAGES)
PROFILER_AVAILABLE = True
_POLL = 0.5  # how often an idle stage thread checks whether it should stop


@dataclass
class WorkerThread:
    event: threading.Event
    thread: threading.Thread


def _stage_loop(
    inbox: queue.Queue[Any], outbox: queue.Queue[Any], call: Callable[[Any], Any], local: Any, stop: threading.Event
) -> None:
    while not stop.is_set():
        try:
            idx, chunk, error = inbox.get(timeout=_POLL)
        except queue.Empty:
            continue
        if error is None:  # a failed micro-batch passes the later stages untouched
            local.micro_batch_idx = idx
            try:
                chunk = call(chunk)
            except BaseException as exc:  # handed to the caller, which raises it: the thread lives on
                chunk, error = None, exc
        outbox.put((idx, chunk, error))


class MicroBatching:
    """A three-stage pipeline over the handler's own methods."""

    def __init__(self, parent_handler: Any, micro_batch_size: int = 1, parallelism: dict[str, int] | None = None):
        self.handler = parent_handler
        self.micro_batch_size = micro_batch_size
        self._parallelism = dict(parallelism or {})
        self.thread_groups: dict[str, list[WorkerThread]] = {stage: [] for stage in STAGES}
        self.thread_local_data = threading.local()
        self._lock = threading.Lock()  # one batch in the pipeline at a time: errors and order stay its own
        # stage i reads queues[i] and writes queues[i + 1]
        self._queues: list[queue.Queue[Any]] = [queue.Queue() for _ in range(len(STAGES) + 1)]
        self._update_threads()

    def __del__(self) -> None:
        self.shutdown()

    @property
    def parallelism(self) -> dict[str, int]:
        return dict(self._parallelism)

    @parallelism.setter
    def parallelism(self, parallelism: dict[str, int]) -> None:
        unknown = set(parallelism) - set(STAGES)
        if unknown:
            raise ValueError(f"parallelism names {sorted(unknown)}; the stages are {', '.join(STAGES)}")
        self._parallelism.update(parallelism)
        self._update_threads()

    def shutdown(self) -> None:
        """Stop every stage thread (each notices within half a second)."""
        for group in getattr(self, "thread_groups", {}).values():
            for worker in group:
                worker.event.set()
            for worker in group:
                worker.thread.join()
            group.clear()

    def _update_threads(self) -> None:
        for i, stage in enumerate(STAGES):
            want, group = self._parallelism.get(stage, 1), self.thread_groups[stage]
            if want < 0:
                raise ValueError(f"parallelism for {stage} must be 0 or more, not {want}")
            while len(group) < want:
                stop = threading.Event()
                call = getattr(self.handler, stage)
                args = (self._queues[i], self._queues[i + 1], call, self.thread_local_data, stop)
                thread = threading.Thread(target=_stage_loop, args=args, daemon=True, name=f"micro-batch {stage}")
                thread.start()
                group.append(WorkerThread(stop, thread))
            while len(group) > want:
                group[-1].event.set()
                group.pop().thread.join()

    def handle(self, data: list[Any]) -> list[Any]:
        """Run ``data`` through the pipeline in micro-batches; the outputs in the order of ``data``."""
        with self._lock:
            chunks = [data[i : i + self.micro_batch_size] for i in range(0, len(data), self.micro_batch_size)]
            for idx, chunk in enumerate(chunks):
                self._queues[0].put_nowait((idx, chunk, None))
            done = sorted((self._queues[-1].get() for _ in chunks), key=lambda item: item[0])
        for _, _, error in done:
            if error is not None:
                raise error
        return [item for _, out, _ in done for item in out]

    def get_micro_batch_idx(self) -> int | None:
        """Which micro-batch this stage thread is working on (None outside the pipeline)."""
        return getattr(self.thread_local_data, "micro_batch_idx", None)

    def __call__(self, data: list[Any], context: Any) -> Any:
        """The handler's ``handle``: describe/explain/profile as BaseHandler, else the pipeline."""
        start = time.time()
        handler = self.handler
        handler.context = context
        if os.environ.get("ENABLE_TORCH_PROFILER"):
            output, _ = handler._infer_with_profiler(data=data)
        elif handler._is_describe():
            output = [handler.describe_handle()]
        elif handler._is_explain():
            output = handler.explain_handle(handler.preprocess(data), data)
        else:
            output = self.handle(data)
        context.metrics.add_time("HandlerTime", round((time.time() - start) * 1000, 2), None, "ms")
        return output
