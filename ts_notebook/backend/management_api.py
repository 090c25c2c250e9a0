"""The management API (TorchServe's port 8081): list, describe, register, scale, set-default,
unregister; plus ``/ts_notebook/...`` endpoints for the notebook (event record, worker context)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ts_notebook.backend.api_error import ApiError
from ts_notebook.backend.handle import WorkerLoadError
from ts_notebook.backend.httpkit import NOT_ALLOWED, json_response
from ts_notebook.backend.notebook_api import NotebookApi
from ts_notebook.backend.registry import ModelVersion
from ts_notebook.jsontypes import JsonObject

if TYPE_CHECKING:
    from ts_notebook.backend.server import Backend


def _int(request: web.Request, key: str) -> int | None:
    """A whole-number parameter as TorchServe reads one: absent or not a number means its default."""
    raw = _params(request).get(key)
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return None


def _params(request: web.Request) -> dict[str, str]:
    """The query, or for a registration sent as JSON (Content-Type application/json) the body's fields."""
    body = request.get("json_params")
    return {**request.query, **body} if isinstance(body, dict) else dict(request.query)


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Versions in TorchServe's order: numerically part by part (1.0 < 2.0 < 10.0), text after numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in version.split("."))


def _bool(request: web.Request, key: str, default: bool) -> bool:
    raw = _params(request).get(key)
    return default if raw is None else raw.lower() == "true"


async def _json_params(request: web.Request) -> dict[str, str]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError(400, "BadRequestException", f"the registration body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequestException", "the registration body must be a JSON object")
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in body.items() if v is not None}


class ManagementApi:
    """The management endpoints, bound to one self.backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.registry = self.backend.registry

    async def root(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return json_response(self.backend.openapi("management"))
        raise NOT_ALLOWED

    async def list_models(self, request: web.Request) -> web.Response:
        names = sorted(self.registry.models)
        limit = _int(request, "limit")
        limit = 100 if limit is None or not 0 <= limit <= 100 else limit  # TorchServe's bounds
        start = max(0, _int(request, "next_page_token") or 0)
        page = names[start : start + limit]
        body: JsonObject = {}
        if start + limit <= len(names):  # TorchServe offers a next page even when it will be empty
            body["nextPageToken"] = str(start + limit)
        body["models"] = [{"modelName": n, "modelUrl": self.registry.get(n).url} for n in page]
        return json_response(body)

    async def register(self, request: web.Request) -> web.Response:
        if not self.backend.config.enable_model_api:
            raise NOT_ALLOWED
        if request.content_type == "application/json" and request.can_read_body:
            request["json_params"] = await _json_params(request)
        url = _params(request).get("url")
        if not url:
            raise ApiError(400, "BadRequestException", "Parameter url is required.")
        overrides = {
            attr: v
            for key, attr in (
                ("batch_size", "batch_size"),
                ("max_batch_delay", "max_batch_delay"),
                ("response_timeout", "response_timeout"),
            )
            if (v := _int(request, key)) is not None
        }
        # Reading, hashing and extracting an archive takes time: never on the event loop.
        name = _params(request).get("model_name")
        mv = await asyncio.to_thread(self.backend.load_model, url, name, overrides)
        await self.backend.register(mv)
        initial = _int(request, "initial_workers")
        if initial is None:  # model-config.yaml's minWorkers, else config.properties' default_workers_per_model
            yaml_min = mv.yaml_config.get("minWorkers")
            initial = yaml_min if isinstance(yaml_min, int) else self.backend.config.configured_default_workers
        mv.settings.min_workers = mv.settings.max_workers = initial
        if not _bool(request, "synchronous", True):
            self.backend.background(self.backend.scale(mv, initial))
            return json_response({"status": "Processing worker updates..."}, 202)
        try:
            await self.backend.scale(mv, initial)
        except WorkerLoadError as exc:
            mv.settings.min_workers = mv.settings.max_workers = 0
            raise ApiError(
                507 if exc.out_of_memory else 500,  # TorchServe's "insufficient storage" for a MemoryError
                "InternalServerException",
                f"Failed to start workers for model {mv.name} version: {mv.version}. Cause: {exc}",
            ) from exc
        text = f'Model "{mv.name}" Version: {mv.version} registered with {initial} initial workers'
        if initial == 0:
            text += ". Use scale workers API to add workers for the model."
        return json_response({"status": text})

    async def describe(self, request: web.Request) -> web.Response:
        name, version = request.match_info["model"], request.match_info.get("version")
        if version == "all":
            self.registry.get(name)
            versions = sorted(self.registry.models[name].values(), key=lambda mv: version_key(mv.version))
        else:
            versions = [self.registry.get(name, version)]
        described = [mv.describe(self.backend.dispatcher(mv).snapshot()) for mv in versions]
        if _bool(request, "customized", False):
            for mv, entry in zip(versions, described, strict=True):
                entry["customizedMetadata"] = await self._customized(mv)
        return json_response(described)

    async def _customized(self, mv: ModelVersion) -> Any:
        """What the handler's describe_handle returns, asked of a worker as TorchServe asks it: a request
        with the ``describe: True`` header; the answer's JSON as a value (TorchServe embeds it), else text."""
        dispatcher = self.backend.dispatcher(mv)
        if not dispatcher.accepting():
            raise ApiError(503, "ServiceUnavailableException", f'Model "{mv.name}" has no worker to describe it.')
        job = dispatcher.submit(str(uuid.uuid4()), {"body": bytearray()}, {"describe": "True", "explain": "False"})
        answer = await job.future
        if answer.response is None:
            message = answer.error.message if answer.error else "no answer"
            raise ApiError(500, "InternalServerException", f"describe_handle failed: {message}")
        text = answer.response.body.decode("utf-8", "replace")
        try:
            return json.loads(text)
        except ValueError:
            return text

    async def scale(self, request: web.Request) -> web.Response:
        mv = self.registry.get(request.match_info["model"], request.match_info.get("version"))
        # TorchServe's defaults: min_worker 1, max_worker min_worker; a number that does not parse is absent.
        low = _int(request, "min_worker")
        target = 1 if low is None else low
        high = _int(request, "max_worker")
        top = target if high is None else high
        if top < target:
            raise ApiError(400, "BadRequestException", "max_worker cannot be less than min_worker.")
        if target < 0:  # TorchServe 0.12 answers 500 IndexOutOfBoundsException here: a defect, not copied
            raise ApiError(400, "BadRequestException", f"min_worker cannot be negative, got {target}.")
        mv.settings.min_workers, mv.settings.max_workers = target, top
        if not _bool(request, "synchronous", False):
            self.backend.background(self.backend.scale(mv, target))
            return json_response({"status": "Processing worker updates..."}, 202)
        try:
            await self.backend.scale(mv, target)
        except WorkerLoadError as exc:
            raise ApiError(
                500, "InternalServerException", f"Failed to start workers for model {mv.name}: {exc}"
            ) from exc
        version = request.match_info.get("version")
        suffix = f", version: {version}" if version else ""
        return json_response({"status": f"Workers scaled to {target} for model: {mv.name}{suffix}"})

    async def set_default(self, request: web.Request) -> web.Response:
        name, version = request.match_info["model"], request.match_info["version"]
        self.registry.get(name)
        if version not in self.registry.models[name]:
            raise ApiError(
                404, "ModelVersionNotFoundException", f"Model version {version} does not exist for model {name}"
            )
        self.registry.defaults[name] = version
        return json_response({"status": f'Default version successfully updated for model "{name}" to "{version}"'})

    async def unregister(self, request: web.Request) -> web.Response:
        if not self.backend.config.enable_model_api:
            raise NOT_ALLOWED
        mv = self.registry.remove(request.match_info["model"], request.match_info.get("version"))
        await self.backend.retire(mv)
        return json_response({"status": f'Model "{mv.name}" unregistered'})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", "/", self.root),
            web.get("/models", self.list_models),
            web.post("/models", self.register),
            web.get("/models/{model}", self.describe),
            web.get("/models/{model}/{version}", self.describe),
            web.put("/models/{model}", self.scale),
            web.put("/models/{model}/{version}", self.scale),
            web.put("/models/{model}/{version}/set-default", self.set_default),
            web.delete("/models/{model}", self.unregister),
            web.delete("/models/{model}/{version}", self.unregister),
            *NotebookApi(self.backend).routes(),
        ]


def routes(backend: Backend) -> list[web.RouteDef]:
    return ManagementApi(backend).routes()


__all__ = ["routes"]
