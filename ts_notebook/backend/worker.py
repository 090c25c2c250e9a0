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
import io
import json
import logging
import os
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from ts_notebook.backend import protocol


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


def encode_output(value: Any) -> tuple[bytes, str]:
    """One element of the handler's list as response bytes and the content type it implies."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), "application/octet-stream"
    if isinstance(value, str):
        return value.encode("utf-8"), "text/plain; charset=utf-8"
    if type(value).__name__ == "Tensor" and type(value).__module__.startswith("torch"):
        import torch

        buffer = io.BytesIO()
        torch.save(value, buffer)
        return buffer.getvalue(), "application/octet-stream"
    try:
        return json.dumps(value, indent=2).encode("utf-8"), "application/json"
    except (TypeError, ValueError) as exc:
        raise TypeError("Unsupported model output data type.") from exc


class Worker:
    """The worker's side of one connection to the backend."""

    def __init__(self, sock: socket.socket, worker_id: str) -> None:
        self.sock = sock
        self.worker_id = worker_id
        self.request_id: str | None = None
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            protocol.send(self.sock, message)

    def log(self, level: str, message: str, source: str) -> None:
        message_ = {"op": "log", "level": level, "message": message, "source": source, "request_id": self.request_id}
        with contextlib.suppress(OSError):  # the backend is gone; the worker notices on its next read
            self.send(message_)


def _limit_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    # No torch op has run in the zygote, so the pool is not built yet and this takes effect.
    torch.set_num_threads(threads)


def run(sock_path: str, spec: dict[str, Any]) -> int:
    """Entry point in the forked child; returns the exit code."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(sock_path)
    worker = Worker(sock, spec["worker_id"])
    worker.send({"op": "hello", "worker_id": spec["worker_id"], "pid": os.getpid()})
    sys.stdout = _Forward(worker, "stdout")
    sys.stderr = _Forward(worker, "stderr")
    logging.basicConfig(level=logging.INFO, handlers=[_LogHandler(worker)], force=True)
    _limit_threads(int(spec.get("threads", 1)))
    loaded = _load(worker, spec)
    if loaded is None:
        return 1
    entry, context = loaded
    while True:
        message = protocol.recv(sock)
        if message is None or message.get("op") == "stop":
            return 0
        if message.get("op") == "predict":
            worker.send(_predict(worker, entry, context, message))
        elif message.get("op") == "threads":  # the backend re-shared the cores among its workers
            _limit_threads(int(message["n"]))


def _load(worker: Worker, spec: dict[str, Any]) -> tuple[Any, Any] | None:
    from ts_notebook.handler import compat
    from ts_notebook.handler.context import Context
    from ts_notebook.handler.load import import_handler_module, locate, resolve_entry_point

    model_dir = Path(spec["model_dir"])
    os.chdir(model_dir)
    sys.path.insert(0, str(model_dir))
    compat.install()
    context = Context(
        spec["model_name"],
        str(model_dir),
        spec["manifest"],
        spec["batch_size"],
        spec["gpu_id"],
        model_yaml_config=spec.get("model_yaml_config") or {},
    )
    context.intermediate_responses = _Intermediate(worker)  # type: ignore[attr-defined]
    try:
        entry = resolve_entry_point(spec["handler"], import_handler_module(spec["handler"], model_dir))
        entry.initialize(context)
    except BaseException as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        where = locate(cause, (model_dir,))
        text = "".join(traceback.format_exception(cause))
        worker.log("ERROR", f"Failed to load model {spec['model_name']}: {exc}\n{text}", "worker")
        worker.send(
            {
                "op": "loaded",
                "ok": False,
                "error": f"{type(cause).__name__}: {exc}",
                "where": str(where) if where else None,
            }
        )
        return None
    worker.send(
        {"op": "loaded", "ok": True, "system_properties": dict(context.system_properties), "manifest": context.manifest}
    )
    return entry, context


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
            self._worker.send({"op": "intermediate", "request_id": request_id, "body": body, "content_type": ctype})


def _predict(worker: Worker, entry: Any, context: Any, message: dict[str, Any]) -> dict[str, Any]:
    from ts_notebook.handler.context import RequestProcessor
    from ts_notebook.handler.util import PredictionException

    requests = message["requests"]
    context.request_ids = {i: r["request_id"] for i, r in enumerate(requests)}
    context.request_processor = [RequestProcessor(r["headers"]) for r in requests]
    context.metrics.set_request_ids(context.request_ids)
    data = [r["row"] for r in requests]
    worker.request_id = requests[0]["request_id"] if len(requests) == 1 else ",".join(r["request_id"] for r in requests)
    reply: dict[str, Any] = {"op": "result", "batch_id": message["batch_id"]}
    try:
        ret = entry.handle(data, context)
        reply["responses"] = _responses(ret, len(requests), context)
    except PredictionException as exc:
        reply["error"] = {"code": exc.error_code, "message": exc.message}
    except _Fail as exc:
        reply["error"] = {"code": 503, "message": str(exc)}
    except BaseException as exc:
        worker.log("ERROR", "Invoking custom service failed.\n" + "".join(traceback.format_exception(exc)), "worker")
        reply["error"] = {"code": 503, "message": "Prediction failed"}
    finally:
        worker.request_id = None
        sys.stdout.flush()
        sys.stderr.flush()
    metrics = getattr(context.metrics, "records", [])
    reply["metrics"] = [vars(m).copy() for m in metrics]
    metrics.clear()
    return reply


def _responses(ret: Any, n: int, context: Any) -> list[dict[str, Any]] | Any:
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
        headers = dict(context.get_response_headers(i))
        out.append({"status": status, "phrase": phrase, "headers": headers, "body": body, "content_type": ctype})
    return out


class _Fail(Exception):
    """A contract violation TorchServe answers with 503 and this exact message."""
