"""The management port's ``/ts_notebook/...`` endpoints, for the notebook and its dashboard: the event
record, what each worker really received, served requests for replay, per-stage timings, and hot
reloads (from a rebuilt archive, or with a handler cell's new code)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from ts_notebook.archive.extract import extract_cached
from ts_notebook.backend.api_error import ApiError
from ts_notebook.backend.dispatcher import SwapReport
from ts_notebook.backend.generations import discard, only_handler_changed, read_generation, with_handler
from ts_notebook.backend.handle import WorkerLoadError
from ts_notebook.backend.httpkit import NOT_ALLOWED, json_response, read_body
from ts_notebook.backend.messages import Generation
from ts_notebook.backend.registry import ModelVersion
from ts_notebook.errors import TsNotebookError
from ts_notebook.jsontypes import JsonObject
from ts_notebook.records import Swap, VersionWorkers
from ts_notebook.records_json import page_to_json, timings_to_json, to_json, workers_to_json

if TYPE_CHECKING:
    from ts_notebook.backend.server import Backend

_HANDLER_FILE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.py")
MAX_HANDLER_BYTES = 1 << 20


def int_param(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError(400, "BadRequestException", f"Parameter {key} must be a whole number, got {raw!r}.") from exc


class NotebookApi:
    """The ``/ts_notebook/`` endpoints of one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def events(self, request: web.Request) -> web.Response:
        kind = request.query.get("kind")
        try:
            numbered, next_seq = self.backend.events.since(
                int_param(request, "since") or 0,
                model=request.query.get("model"),
                kind=kind,
                limit=int_param(request, "limit") or 500,
            )
        except ValueError as exc:
            raise ApiError(400, "BadRequestException", str(exc)) from None
        return json_response(page_to_json(numbered, next_seq, self.backend.events.latest))

    async def workers(self, request: web.Request) -> web.Response:
        versions = []
        for mv in self.backend.registry.all_versions():
            dispatcher = self.backend.dispatcher(mv)
            views = tuple(w.view() for w in dispatcher.workers.values())
            failure = self.backend.load_failures.get((mv.name, mv.version))
            versions.append(VersionWorkers(mv.name, mv.version, dispatcher.generation.gen_id, views, failure))
        return json_response(workers_to_json(versions))

    async def requests(self, request: web.Request) -> web.Response:
        failed = request.query.get("failed", "false").lower() == "true"
        limit = int_param(request, "limit") or 50
        kept = self.backend.requests.summaries(request.query.get("model"), failed, limit)
        return json_response([to_json(record) for record in kept])

    async def request(self, request: web.Request) -> web.Response:
        request_id = request.match_info["request_id"]
        record = self.backend.requests.get(request_id)
        if record is None:
            raise ApiError(
                404,
                "RequestNotFoundException",
                f"No served request {request_id} is kept (the ring keeps the last "
                f"{self.backend.requests.count} per model; ts_notebook_replay_count sets it)",
            )
        return json_response(to_json(record, full=True))

    async def timings(self, request: web.Request) -> web.Response:
        return json_response(timings_to_json(self.backend.requests.timings(request.query.get("model"))))

    def _version(self, request: web.Request) -> ModelVersion:
        if not self.backend.config.enable_model_api:
            raise NOT_ALLOWED
        return self.backend.registry.get(request.match_info["model"], request.query.get("version") or None)

    async def reload(self, request: web.Request) -> web.Response:
        """Serve a rebuilt archive (``url``, default the model's own) with zero failed requests."""
        mv = self._version(request)
        source = self.backend.registry.resolve_source(request.query.get("url") or mv.url)
        try:
            model_dir = await asyncio.to_thread(extract_cached, source, self.backend.registry.cache)
        except TsNotebookError as exc:
            raise ApiError(400, "ModelException", str(exc)) from exc
        generation = await asyncio.to_thread(read_generation, model_dir, model_dir.name[:10])
        return await self._swap(mv, generation)

    async def handler(self, request: web.Request) -> web.Response:
        """Serve the model's current files with this handler code (the body) as ``filename``."""
        mv = self._version(request)
        filename = request.query.get("filename", "")
        if not _HANDLER_FILE.fullmatch(filename):
            raise ApiError(
                400, "BadRequestException", f"filename {filename!r}: give a Python file name, e.g. handler.py"
            )
        body = await read_body(request, self.backend.config.ts_notebook_body_timeout)
        if len(body) > MAX_HANDLER_BYTES:
            raise ApiError(413, "BadRequestException", f"handler code over {MAX_HANDLER_BYTES} bytes")
        try:
            source = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, "BadRequestException", f"handler code is not UTF-8: {exc}") from exc
        base = self.backend.dispatcher(mv).generation
        folder = self.backend.run_dir / "generations" / hashlib.sha256(mv.name.encode()).hexdigest()[:16]
        generation = await asyncio.to_thread(with_handler, base, source, filename, folder)
        return await self._swap(mv, generation, made_in=folder)

    async def _swap(self, mv: ModelVersion, generation: Generation, made_in: Path | None = None) -> web.Response:
        dispatcher = self.backend.dispatcher(mv)
        in_place = await asyncio.to_thread(only_handler_changed, dispatcher.generation, generation)
        try:
            report = await dispatcher.swap(generation, in_place=in_place)
        except WorkerLoadError as exc:
            if made_in is not None and not any(
                w.generation.gen_id == generation.gen_id for w in dispatcher.workers.values()
            ):
                await asyncio.to_thread(discard, generation, made_in)  # the failed code leaves no folder
            failure = exc.failure
            raise _ReloadFailed(
                f"The new handler for model {mv.name} version {mv.version} did not load: {exc}. "
                f"Generation {dispatcher.generation.gen_id} keeps serving.",
                failure.traceback if failure else "",
                failure.where if failure else None,
            ) from exc
        return json_response(_report_body(mv, report))

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ts_notebook/events", self.events),
            web.get("/ts_notebook/workers", self.workers),
            web.get("/ts_notebook/requests", self.requests),
            web.get("/ts_notebook/requests/{request_id}", self.request),
            web.get("/ts_notebook/timings", self.timings),
            web.post("/ts_notebook/models/{model}/reload", self.reload),
            web.post("/ts_notebook/models/{model}/handler", self.handler),
        ]


class _ReloadFailed(ApiError):
    """A reload whose new code did not load: TorchServe's error shape plus the handler line and traceback."""

    def __init__(self, message: str, traceback: str, where: str | None) -> None:
        super().__init__(500, "ReloadFailedException", message)
        self.extra = {"where": where, "traceback": traceback}


def _report_body(mv: ModelVersion, report: SwapReport) -> JsonObject:
    """The reload's answer: the swap, as the event stream carries it (its sentence in ``status``)."""
    swap = Swap(time.time(), mv.name, mv.version, report.gen_id, report.previous, report.mode, report.workers,
                round(report.seconds, 4), report.note)  # fmt: skip
    return to_json(swap)
