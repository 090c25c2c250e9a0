"""A worker: runs in a process forked from the zygote, loads one model's handler and answers the
batches the backend sends it, the way TorchServe's Python worker does.

Handler output is encoded as TorchServe encodes it: dict/list/number/None as JSON (indent 2), str as
UTF-8, bytes as they are, a tensor as ``torch.save`` bytes. Failures become TorchServe's errors:
an exception -> 503 "Prediction failed", ``PredictionException`` -> its code and message, a wrong
length -> 503 "number of batch response mismatched". The handler's prints and log records are
forwarded to the backend with the worker and request id; the traceback goes there, not to clients.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ts_notebook.backend import ipc, protocol
from ts_notebook.backend.messages import (
    ErrorInfo,
    Generation,
    Hello,
    Intermediate,
    Loaded,
    LoadFailure,
    Log,
    Predict,
    Response,
    Result,
    SetThreads,
    Stop,
    SwapCode,
    Swapped,
    WorkerSpec,
)
from ts_notebook.handler.answers import encode_output
from ts_notebook.handler.metrics_api import MetricRecord

STAGES = ("preprocess", "inference", "postprocess")


class _Forward(io.TextIOBase):
    """stdout/stderr of the handler, sent to the backend line by line."""

    def __init__(self, worker: Worker, stream: str) -> None:
        self._worker = worker
        self._stream = stream
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._worker.log("INFO" if self._stream == "stdout" else "WARNING", line, self._stream)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            self._worker.log("INFO", self._buffer, self._stream)
            self._buffer = ""


class _LogHandler(logging.Handler):
    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self._worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self._worker.log(record.levelname, text, record.name)


class Worker:
    """The worker's side of one connection to the backend."""

    def __init__(self, sock: socket.socket, worker_id: str) -> None:
        self.sock = sock
        self.worker_id = worker_id
        self.request_id: str | None = None
        self._lock = threading.Lock()

    def send(self, message: object) -> None:
        with self._lock:
            protocol.send(self.sock, message)

    def log(self, level: str, message: str, source: str) -> None:
        with contextlib.suppress(OSError):  # the backend is gone; the worker notices on its next read
            self.send(Log(level, message, source, self.request_id))


@dataclass
class Served:
    """What this worker runs: the handler's entry point, its Context, and their generation."""

    entry: Any
    context: Any
    generation: Generation
    stages: dict[str, float] = field(default_factory=dict)  # the running batch's stage times
    timed: bool = True
    envelope: str | None = None  # TorchServe's service_envelope: wraps handle for each batch


def _limit_threads(threads: int) -> None:
    """Give the model's real ops this worker's share of the cores: torch's intra-op and inter-op
    pools, and the thread pools that libraries start from the environment (OpenMP, MKL, and Rayon,
    which Hugging Face's fast tokenizers size to every core otherwise)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch

    # No torch op has run in the zygote, so the pools are not built yet and this takes effect.
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # fixed once inter-op work has started (a later re-share)
        torch.set_num_interop_threads(threads)


def run(sock_path: str, spec: WorkerSpec, secret: bytes) -> int:
    """Entry point in the forked child; returns the exit code."""
    sock = ipc.connect(sock_path, secret)
    worker = Worker(sock, spec.worker_id)
    worker.send(Hello(spec.worker_id, os.getpid()))
    sys.stdout = _Forward(worker, "stdout")
    sys.stderr = _Forward(worker, "stderr")
    logging.basicConfig(level=logging.INFO, handlers=[_LogHandler(worker)], force=True)
    _limit_threads(spec.threads)
    from ts_notebook.handler import compat

    compat.install()
    served = _load(worker, spec, spec.generation)
    if isinstance(served, LoadFailure):
        worker.send(Loaded(failure=served))
        return 1
    worker.send(Loaded(dict(served.context.system_properties), served.context.manifest))
    receiver = protocol.Receiver(sock)
    while True:
        message = receiver.recv()
        if message is None or isinstance(message, Stop):
            return 0
        if isinstance(message, Predict):
            worker.send(_predict(worker, served, message))
        elif isinstance(message, SwapCode):
            served = _swap(worker, served, message.generation)
        elif isinstance(message, SetThreads):  # the backend re-shared the cores among its workers
            _limit_threads(message.n)


def _enter(generation: Generation, previous: Generation | None = None) -> Path:
    """Make ``generation``'s model dir the working dir and the first import path, as TorchServe does."""
    model_dir = Path(generation.model_dir)
    os.chdir(model_dir)
    if previous is not None:
        with contextlib.suppress(ValueError):
            sys.path.remove(previous.model_dir)
    sys.path.insert(0, str(model_dir))
    return model_dir


def _load(worker: Worker, spec: WorkerSpec, generation: Generation) -> Served | LoadFailure:
    from ts_notebook.handler.context import Context
    from ts_notebook.handler.load import import_handler_module, resolve_entry_point
    from ts_notebook.handler.metrics_cache import MetricsCache

    model_dir = _enter(generation)
    metrics = MetricsCache(spec.metrics_config, spec.model_name)
    metrics.initialize_cache()
    metrics.set_request_ids(str(uuid.uuid4()))  # TorchServe tags what initialize reports with one id
    context = Context(
        spec.model_name,
        str(model_dir),
        generation.manifest,
        spec.batch_size,
        spec.gpu_id,
        metrics=metrics,
        model_yaml_config=generation.model_yaml_config or {},
    )
    context.intermediate_responses = _Intermediate(worker)  # type: ignore[attr-defined]
    try:
        entry = resolve_entry_point(generation.handler, import_handler_module(generation.handler, model_dir))
        entry.initialize(context)
    except BaseException as exc:
        return _load_failure(worker, spec.model_name, exc, model_dir)
    served = Served(entry, context, generation, timed=spec.time_stages, envelope=spec.envelope)
    time_stages(served)
    return served


def _load_failure(worker: Worker, model_name: str, exc: BaseException, model_dir: Path) -> LoadFailure:
    from ts_notebook.handler.load import locate

    cause = exc.__cause__ if exc.__cause__ is not None else exc
    where = locate(cause, (model_dir,))
    text = "".join(traceback.format_exception(cause))
    worker.log("ERROR", f"Failed to load model {model_name}: {exc}\n{text}", "worker")
    return LoadFailure(f"{type(cause).__name__}: {exc}", str(where) if where else None, text)


def time_stages(served: Served) -> None:
    """Time each stage the handler runs: preprocess / inference / postprocess of a BaseHandler-style
    class (its ``handle`` calls them through the instance, TorchServe's BaseHandler included), or
    the whole ``handle`` of a function handler. Costs two clock reads per stage."""
    entry, stages = served.entry, served.stages
    if not served.timed:
        return
    if entry.kind == "function":
        served.entry = dataclasses.replace(entry, handle=_timed("handle", entry.handle, stages))
        return
    for name in STAGES:
        method = getattr(entry.instance, name, None)
        if callable(method):
            setattr(entry.instance, name, _timed(name, method, stages))


def _timed(name: str, fn: Any, stages: dict[str, float]) -> Any:
    clock = time.perf_counter

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            stages[name] = stages.get(name, 0.0) + clock() - start

    timed.__wrapped__ = fn  # type: ignore[attr-defined]
    return timed


def _swap(worker: Worker, served: Served, generation: Generation) -> Served:
    """Run ``generation``'s handler here, keeping the loaded state when that is safe (``hotswap``)."""
    from ts_notebook.backend.hotswap import swap_in_place

    previous = served.generation
    model_dir = _enter(generation, previous)
    outcome = swap_in_place(served.entry, generation, previous, model_dir)
    if isinstance(outcome, str):  # not safe to keep the state: the backend starts new workers instead
        _enter(previous, generation)
        worker.send(Swapped(generation.gen_id, False, reason=outcome))
        return served
    if isinstance(outcome, BaseException):
        _enter(previous, generation)
        failure = _load_failure(worker, served.context.model_name, outcome, model_dir)
        worker.send(Swapped(generation.gen_id, False, reason="the new handler did not load", failure=failure))
        return served
    served.context.system_properties["model_dir"] = str(model_dir)
    served.context.manifest = generation.manifest
    new = Served(outcome, served.context, generation, timed=served.timed, envelope=served.envelope)
    time_stages(new)
    worker.send(Swapped(generation.gen_id, True))
    return new


class _Intermediate(list[Any]):
    """send_intermediate_predict_response lands here and goes straight to the client's stream."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self._worker = worker

    def append(self, item: Any) -> None:
        ret = item["ret"]
        for idx, request_id in item["req_id_map"].items():  # one chunk per request of the batch
            value = ret[idx] if isinstance(ret, list) and idx < len(ret) else ret
            body, ctype = encode_output(value)
            self._worker.send(Intermediate(request_id, body, ctype))


def _predict(worker: Worker, served: Served, message: Predict) -> Result:
    from ts_notebook.handler.context import RequestProcessor
    from ts_notebook.handler.envelopes import wrap
    from ts_notebook.handler.util import PredictionException

    context, requests = served.context, message.requests
    context.request_ids = {i: r.request_id for i, r in enumerate(requests)}
    context.request_processor = [RequestProcessor(r.headers) for r in requests]
    context.metrics.set_request_ids(context.request_ids)
    data = [r.row for r in requests]
    worker.request_id = requests[0].request_id if len(requests) == 1 else ",".join(r.request_id for r in requests)
    served.stages.clear()
    responses: list[Response] | None = None
    error: ErrorInfo | None = None
    start = time.perf_counter()
    try:
        handle = wrap(served.entry.handle, served.envelope) if served.envelope else served.entry.handle
        responses = _responses(handle(data, context), len(requests), context)
    except PredictionException as exc:
        error = ErrorInfo(exc.error_code, exc.message)
    except _Fail as exc:
        error = ErrorInfo(503, str(exc))
    except BaseException as exc:
        error = _prediction_failed(worker, exc, Path(served.generation.model_dir))
        if type(exc).__name__ in ("MemoryError", "OutOfMemoryError"):  # TorchServe: 507 "Out of resources"
            error = dataclasses.replace(error, code=507, message="Out of resources")
    finally:
        worker.request_id = None
        sys.stdout.flush()
        sys.stderr.flush()
    handle_seconds = time.perf_counter() - start
    if error is None and hasattr(context.metrics, "add_time"):  # TorchServe's service wrapper times handle
        context.metrics.add_time("PredictionTime", round(handle_seconds * 1000, 2))
    reported = getattr(context.metrics, "records", None)
    records: list[MetricRecord] = list(reported) if reported else []
    if reported:
        reported.clear()
    return Result(message.batch_id, responses, error, records, dict(served.stages), handle_seconds)


def _prediction_failed(worker: Worker, exc: BaseException, model_dir: Path) -> ErrorInfo:
    """TorchServe's 503 for the client; the traceback and handler line for the notebook's replay."""
    from ts_notebook.handler.load import locate

    text = "".join(traceback.format_exception(exc))
    worker.log("ERROR", "Invoking custom service failed.\n" + text, "worker")
    where = locate(exc, (model_dir,))
    return ErrorInfo(503, "Prediction failed", text, str(where) if where else None)


def _responses(ret: Any, n: int, context: Any) -> list[Response]:
    if not isinstance(ret, list):
        raise _Fail("Invalid model predict output")
    if len(ret) != n:
        raise _Fail("number of batch response mismatched")
    out = []
    for i, value in enumerate(ret):
        try:
            body, ctype = encode_output(value)
        except TypeError as exc:
            raise _Fail(str(exc)) from exc
        status, phrase = context.get_response_status(i)
        out.append(Response(status, phrase, dict(context.get_response_headers(i)), body, ctype))
    return out


class _Fail(Exception):
    """A contract violation TorchServe answers with 503 and this exact message."""
