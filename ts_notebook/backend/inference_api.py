"""The inference API (TorchServe's port 8080): ``/ping``, ``/predictions``, ``/explanations``, the
KServe-style ``/v1`` and ``/v2`` routes, and ``OPTIONS /``."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ts_notebook.backend.api_error import ApiError
from ts_notebook.backend.httpkit import (
    NO_CACHE,
    NOT_ALLOWED,
    NOT_FOUND,
    BareResponse,
    BareStreamResponse,
    error_response,
    json_response,
    read_body,
)
from ts_notebook.backend.jobs import Job
from ts_notebook.backend.messages import Answer, Response
from ts_notebook.backend.registry import ModelVersion
from ts_notebook.backend.replay import keepable
from ts_notebook.backend.sequences import SequenceRefused
from ts_notebook.handler.payload import Request, decode_value, make_request
from ts_notebook.records import Failure, ServedRequest

if TYPE_CHECKING:
    from ts_notebook.backend.server import Backend


def no_worker(name: str) -> ApiError:
    return ApiError(
        503,
        "ServiceUnavailableException",
        f'Model "{name}" has no worker to serve inference request. Please use scale workers API to add workers. '
        "If this is a sequence inference, please check if it is closed, or expired; or exceeds maxSequenceJobQueueSize",
    )


def routes(backend: Backend) -> list[web.RouteDef]:
    async def ping(request: web.Request) -> web.Response:
        return _health(backend)

    async def describe_api(request: web.Request) -> web.Response:
        return json_response(backend.openapi("inference"))

    async def root(request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return json_response(backend.openapi("inference"))
        raise NOT_ALLOWED

    def endpoint(explain: bool) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            info = request.match_info
            return await predict(backend, request, info["model"], info.get("version"), explain, info.get("tail", ""))

        return handle

    async def v1(request: web.Request) -> web.StreamResponse:
        target = request.match_info["target"]
        name, _, verb = target.rpartition(":")
        if verb not in ("predict", "explain") or not name:
            raise NOT_FOUND
        return await predict(backend, request, name, None, verb == "explain", None)

    async def v2(request: web.Request) -> web.StreamResponse:
        return await predict(
            backend, request, request.match_info["model"], request.match_info.get("version"), False, None
        )

    methods = ("POST", "PUT", "GET", "DELETE")
    table = [
        web.get("/ping", ping),
        web.get("/api-description", describe_api),
        web.route("*", "/", root),
        web.post("/v1/models/{target}", v1),
        web.post("/v2/models/{model}/infer", v2),
        web.post("/v2/models/{model}/versions/{version}/infer", v2),
        *_legacy_routes(backend),
    ]
    for prefix, explain in (("/predictions", False), ("/explanations", True)):
        for method in methods:
            table += [
                web.route(method, f"{prefix}/{{model}}", endpoint(explain)),
                web.route(method, f"{prefix}/{{model}}/{{version}}", endpoint(explain)),
                web.route(method, f"{prefix}/{{model}}/{{version}}/{{tail:.+}}", endpoint(explain)),
            ]
    return table


def _legacy_routes(backend: Backend) -> list[web.RouteDef]:
    """TorchServe's older inference routes: ``POST /{model}/predict`` and ``/invocations?model_name=``."""

    async def legacy_predict(request: web.Request) -> web.StreamResponse:
        return await predict(backend, request, request.match_info["model"], None, False, None, legacy=True)

    async def invocations(request: web.Request) -> web.StreamResponse:
        name = request.query.get("model_name")
        if not name:
            raise ApiError(400, "BadRequestException", "Parameter model_name is required.")
        return await predict(backend, request, name, None, False, None, legacy=True)

    return [
        web.route("POST", "/invocations", invocations),
        web.route("GET", "/invocations", invocations),
        web.post("/{model}/predict", legacy_predict),
    ]


def _health(backend: Backend) -> web.Response:
    if backend.healthy():
        return json_response({"status": "Healthy"})
    return json_response({"status": "Unhealthy"}, 500)


def _shape(request: web.Request, request_id: str, body: bytes, explain: bool, url_path: str | None) -> Request:
    """The request as TorchServe's frontend hands it to a worker: its data row and its headers."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.raw_headers}
    shaped = make_request(body, None, headers, request_id)
    shaped.headers["explain"] = "True" if explain else "False"
    if url_path is None:
        shaped.headers.pop("url_path", None)
    else:
        shaped.headers["url_path"] = url_path
    if request.method == "GET":
        shaped.headers.setdefault("content-length", "0")
    return shaped


def _shape_legacy(request: web.Request, request_id: str, body: bytes) -> Request:
    """TorchServe's legacy routes (``/{model}/predict``, ``/invocations``): the query's parameters come
    first in the row, as bytes fields, and the frontend adds no ``explain`` or ``url_path`` header."""
    shaped = _shape(request, request_id, body, False, None)
    shaped.headers.pop("explain", None)
    fields = {k: decode_value(v.encode("utf-8"), "") for k, v in request.query.items()}
    headers = {**{k: {"content-type": ""} for k in fields}, **shaped.headers}
    return Request({**fields, **shaped.row}, headers, shaped.request_id)


async def predict(
    backend: Backend,
    request: web.Request,
    name: str,
    version: str | None,
    explain: bool,
    url_path: str | None,
    legacy: bool = False,
) -> web.StreamResponse:
    start = time.perf_counter()
    request_id = str(uuid.uuid4())
    body = await read_body(request, backend.config.ts_notebook_body_timeout)
    mv = backend.registry.get(name, version)
    dispatcher = backend.dispatcher(mv)
    if not dispatcher.accepting():
        raise no_worker(name)  # a model whose workers are still starting queues, as in TorchServe
    shaped = (
        _shape_legacy(request, request_id, body) if legacy else _shape(request, request_id, body, explain, url_path)
    )
    try:
        job = dispatcher.submit(request_id, shaped.row, shaped.headers)
    except (asyncio.QueueFull, SequenceRefused):
        raise no_worker(name) from None
    try:
        answer, stream = await _answer(request, job, request_id)
    except asyncio.CancelledError:
        job.future.cancel()
        raise
    latency = time.perf_counter() - start
    if stream is not None:  # the handler streamed: the final answer is the last chunk
        final = answer.response.body if answer.response else str(answer.error.message if answer.error else "").encode()
        await stream.write(final)
        await stream.write_eof()
        response: web.StreamResponse = stream
        status, sent = stream.status, final
    elif answer.error is not None:
        kind = "RequestTimeoutException" if answer.error.code == 408 else "InternalServerException"
        error = ApiError(answer.error.code, kind, answer.error.message)
        response = error_response(error, request_id)
        status, sent = error.code, error.message.encode()
    else:
        assert answer.response is not None
        response = _success(answer.response, request_id)
        status, sent = answer.response.status, answer.response.body
    backend.metrics.request_done(name, version or "default", latency, answer.queue_seconds, answer.transport_seconds)
    record = _record(backend, mv, request, request_id, shaped, answer, status, sent, latency)
    backend.requests.add(record)
    backend.events.add(record)
    return response


def _record(
    backend: Backend,
    mv: ModelVersion,
    request: web.Request,
    request_id: str,
    shaped: Request,
    answer: Answer,
    status: int,
    sent: bytes,
    latency: float,
) -> ServedRequest:
    """The one record of this request, which the replay ring, the event stream and the timings share:
    references to what the request path already has (row, headers, answer bytes, the batch's stages
    and Context), no copy and no preview (those are made when read)."""
    row, cut = keepable(shaped.row, backend.requests.body_bytes)
    error = answer.error
    return ServedRequest(
        request_id,
        mv.name,
        mv.version,
        time.time(),
        request.method,
        request.path,
        status,
        latency,
        answer.queue_seconds,
        answer.transport_seconds,
        answer.stages,
        answer.worker,
        answer.gen_id,
        answer.batch_id,
        answer.batch_size,
        Failure(error.code, error.message, error.traceback, error.where) if error is not None else None,
        answer.context,
        row,
        shaped.headers,
        sent,
        cut,
    )


async def _answer(request: web.Request, job: Job, request_id: str) -> tuple[Answer, web.StreamResponse | None]:
    """Wait for the final answer; intermediate chunks (``send_intermediate_predict_response``)
    are streamed to the client as they come, with chunked encoding, as TorchServe does."""
    stream: web.StreamResponse | None = None

    async def write(chunk: tuple[bytes, str]) -> None:
        nonlocal stream
        body, _ = chunk  # TorchServe streams without a Content-Type
        if stream is None:
            headers = {**NO_CACHE, "x-request-id": request_id}
            stream = BareStreamResponse(status=200, headers=headers)
            stream.enable_chunked_encoding()
            await stream.prepare(request)
        await stream.write(body)

    while True:
        await job.changed()
        while job.chunks:
            await write(job.chunks.popleft())
        if job.future.done():
            break
    return job.future.result(), stream


def _success(result: Response, request_id: str) -> web.Response:
    handler_headers = dict(result.headers)
    # The handler's own Content-Type wins, however it spelled the header name.
    set_by_handler = [k for k in handler_headers if k.lower() == "content-type"]
    content_type = handler_headers.pop(set_by_handler[-1]) if set_by_handler else None
    for key in set_by_handler[:-1]:
        handler_headers.pop(key)
    headers = {**NO_CACHE, "x-request-id": request_id, **handler_headers}
    if content_type:  # only what the handler set, as TorchServe (which sends none otherwise)
        headers["Content-Type"] = content_type
    return BareResponse(body=result.body, status=int(result.status), reason=result.phrase or None, headers=headers)
