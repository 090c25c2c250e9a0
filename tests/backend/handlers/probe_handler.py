"""One handler for every backend test: what it does is chosen per request by the ``X-Mode`` header
(exact case, as TorchServe's header lookups are case-sensitive); with no header it answers "ok".

At load (``handle(None, context)``) it fails on purpose when the registered name starts with
"badinit", and takes 0.5 s when it starts with "slowinit".
"""

import ctypes
import json
import logging
import os
import sys
import time

import torch
from ts.utils.util import PredictionException

logger = logging.getLogger("probe")


def _header(context, idx, key):
    value = context.get_request_header(idx, key)
    return value if isinstance(value, str) else None


def _each(value):
    return lambda data, context: [value(i) if callable(value) else value for i in range(len(data))]


def _status(data, context):
    for i in range(len(data)):
        context.set_response_status(201, "CreatedByHandler", idx=i)
        context.set_response_header(i, "x-handler-header", "yes")
    return [{"idx": i} for i in range(len(data))]


def _csv(data, context):
    for i in range(len(data)):
        context.set_response_content_type(i, "text/csv")
    return ["a,b\n1,2\n" for _ in data]


def _ctype_header(data, context):
    for i in range(len(data)):
        context.set_response_header(i, "Content-Type", "application/x-probe")
    return ["x" for _ in data]


def _raise(data, context):
    raise ValueError("boom from handle()")


def _predexc(data, context):
    raise PredictionException("custom prediction failure", 418)


def _echo(data, context):
    out = []
    for idx, row in enumerate(data):
        out.append(
            json.dumps(
                {
                    "repr": repr(row),
                    "types": {k: type(v).__name__ for k, v in row.items()},
                    "headers": context.get_all_request_header(idx),
                    "X-Custom": context.get_request_header(idx, "X-Custom"),
                    "x-custom": context.get_request_header(idx, "x-custom"),
                    "request_id": context.get_request_id(idx),
                }
            )
        )
    return out


def _stream(data, context):
    from ts.handler_utils.utils import send_intermediate_predict_response

    send_intermediate_predict_response(["tok1 " for _ in data], context.request_ids, "Intermediate", 200, context)
    time.sleep(1.0)  # the first chunk must reach the client before this ends
    return ["final" for _ in data]


def _sleep(data, context):
    seconds = float(_header(context, 0, "X-Sleep") or "5")
    print(f"sleep-start {context.get_request_id(0)}", flush=True)
    time.sleep(seconds)
    return ["slept" for _ in data]


def _exit(data, context):
    os._exit(3)


def _segv(data, context):
    ctypes.string_at(0)


def _log(data, context):
    marker = _header(context, 0, "X-Marker") or "marker"
    print(f"print-line {marker}")
    logger.warning("log-line %s", marker)
    sys.stdout.flush()
    return ["logged" for _ in data]


def _whoami(data, context):
    props = context.system_properties
    me = {
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "rayon": os.environ.get("RAYON_NUM_THREADS"),
        "gpu_id": props.get("gpu_id"),
        "cwd": os.getcwd(),
        "model_name": context.model_name,
    }
    return [me for _ in data]


MODES = {
    "ok": _each("ok"),
    "dict": _each(lambda i: {"idx": i, "label": "cat", "score": 0.5}),
    "nested": _each([1, 2, {"a": [3.5, None, True]}]),
    "str": _each(lambda i: f"hello {i}"),
    "bytes": _each(b"\x00\x01\xffBIN"),
    "number": _each(42),
    "none": _each(None),
    "tensor": _each(lambda i: torch.tensor([1.0, 2.0])),
    "status": _status,
    "csv": _csv,
    "ctype-header": _ctype_header,
    "raise": _raise,
    "predexc": _predexc,
    "wronglen": lambda data, context: ["x"] * (len(data) + 1),
    "dict-not-list": lambda data, context: {"a": 1},
    "object": _each(lambda i: object()),
    "echo": _echo,
    "batch": lambda data, context: [{"batch_len": len(data), "pid": os.getpid()} for _ in data],
    "sleep": _sleep,
    "stream": _stream,
    "exit": _exit,
    "segv": _segv,
    "log": _log,
    "whoami": _whoami,
}


def handle(data, context):
    if data is None:  # initialize
        if context.model_name.startswith("badinit"):
            raise RuntimeError("boom from initialize()")
        if context.model_name.startswith("exitinit"):
            os._exit(7)  # the worker process dies while loading
        if context.model_name.startswith("slowinit"):
            time.sleep(0.5)
        return None
    return MODES[_header(context, 0, "X-Mode") or "ok"](data, context)
