"""A Python client for the inference and management APIs (ours or TorchServe's), using the
management and inference tokens automatically. Speaks HTTP through ``requests``; never prints."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from ts_notebook.errors import BackendError
from ts_notebook.jsontypes import JsonObject
from ts_notebook.records import EventPage, ModelTimings, ServedRequest, Swap, VersionWorkers
from ts_notebook.records_json import (
    decode_as,
    page_from_json,
    requests_from_json,
    timings_from_json,
    workers_from_json,
)

# A URL query: None values are left out, booleans spelled as TorchServe reads them ("true"/"false").
Query = Mapping[str, str | int | float | bool | None]


class ServerError(BackendError):
    """The server answered with an error status; ``status`` and TorchServe's ``type`` are kept."""

    def __init__(self, message: str, status: int, kind: str = "", detail: JsonObject | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.detail = detail or {}  # the whole error body, as the server sent it (TorchServe's error JSON)
        body = self.detail
        self.server_message = str(body.get("message", message))  # the server's own words, no method or path
        # A failed reload (ReloadFailedException) adds the new code's handler line and traceback.
        self.traceback: str | None = str(body["traceback"]) if body.get("traceback") is not None else None
        self.where: str | None = str(body["where"]) if body.get("where") is not None else None


@dataclass(frozen=True)
class Response:
    """An HTTP answer; ``value`` decodes it the way a user expects (JSON, else text, else bytes)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def value(self) -> Any:
        """JSON as objects, text as str, binary as bytes (by Content-Type; TorchServe sends none, then by content)."""
        ctype = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/octet-stream":
            return self.body
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            pass
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return self.body
        if ctype.startswith("text/") or all(c.isprintable() or c in "\r\n\t" for c in text):
            return text
        return self.body


class Client:
    """Talks to one server. Errors (status >= 400) raise ``BackendError`` with the server's message."""

    def __init__(
        self,
        inference_address: str,
        management_address: str,
        metrics_address: str | None = None,
        inference_key: str | None = None,
        management_key: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.inference_address = inference_address.rstrip("/")
        self.management_address = management_address.rstrip("/")
        self.metrics_address = metrics_address.rstrip("/") if metrics_address else None
        self.inference_key = inference_key
        self.management_key = management_key
        self.timeout = timeout
        self._http: requests.Session | None = None

    def _session(self) -> requests.Session:
        # One session per client: keep-alive across calls. trust_env off, so HTTP(S)_PROXY and
        # .netrc never redirect or decorate calls to a loopback backend.
        if self._http is None:
            self._http = requests.Session()
            self._http.trust_env = False
        return self._http

    def close(self) -> None:
        """Close the kept-alive connections (the client stays usable; it reconnects on the next call)."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def _call(
        self,
        method: str,
        base: str,
        path: str,
        *,
        key: str | None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: Query | None = None,
        check: bool = True,
    ) -> Response:
        q = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in (query or {}).items() if v is not None}
        target = path + ("?" + urllib.parse.urlencode(q) if q else "")
        hdrs = dict(headers or {})
        if key:
            hdrs["Authorization"] = f"Bearer {key}"
        try:
            resp = self._session().request(method, base + target, data=body, headers=hdrs, timeout=self.timeout)
        except requests.RequestException as exc:
            raise BackendError(
                f"{method} {base}{target}: cannot reach the server ({exc}). Is it running? Check %ts_serve status."
            ) from exc
        answer = Response(resp.status_code, resp.content, {k.lower(): v for k, v in resp.headers.items()})
        if check and answer.status >= 400:
            raise _server_error(method, target, answer)
        return answer

    # inference
    def ping(self) -> bool:
        answer = self._call("GET", self.inference_address, "/ping", key=self.inference_key, check=False)
        return answer.status == 200 and isinstance(answer.value, dict) and answer.value.get("status") == "Healthy"

    def predict(
        self,
        model: str,
        data: bytes | str | Any = b"",
        *,
        version: str | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        explain: bool = False,
        check: bool = True,
    ) -> Response:
        """POST to ``/predictions/{model}[/{version}]``; dicts and lists are sent as JSON."""
        if isinstance(data, (bytes, bytearray)):
            body = bytes(data)
        elif isinstance(data, str):
            body = data.encode("utf-8")
            content_type = content_type or "text/plain"
        else:
            body = json.dumps(data).encode("utf-8")
            content_type = content_type or "application/json"
        hdrs = dict(headers or {})
        if content_type:
            hdrs["Content-Type"] = content_type
        path = f"/{'explanations' if explain else 'predictions'}/{urllib.parse.quote(model)}"
        if version:
            path += f"/{urllib.parse.quote(version)}"
        return self._call(
            "POST", self.inference_address, path, key=self.inference_key, body=body, headers=hdrs, check=check
        )

    # management
    def _mgmt(self, method: str, path: str, **kw: Any) -> Any:
        return self._call(method, self.management_address, path, key=self.management_key, **kw).value

    def list_models(self) -> list[JsonObject]:
        models: list[JsonObject] = self._mgmt("GET", "/models", query={"limit": 1000})["models"]
        return models

    def describe(self, model: str, version: str | None = None) -> list[JsonObject]:
        suffix = f"/{urllib.parse.quote(version)}" if version else ""
        described: list[JsonObject] = self._mgmt("GET", f"/models/{urllib.parse.quote(model)}{suffix}")
        return described

    def register(
        self,
        url: str,
        *,
        model_name: str | None = None,
        initial_workers: int | None = None,
        batch_size: int | None = None,
        max_batch_delay: int | None = None,
        response_timeout: int | None = None,
        synchronous: bool = True,
    ) -> str:
        answer = self._mgmt(
            "POST",
            "/models",
            query={
                "url": url,
                "model_name": model_name,
                "initial_workers": initial_workers,
                "batch_size": batch_size,
                "max_batch_delay": max_batch_delay,
                "response_timeout": response_timeout,
                "synchronous": synchronous,
            },
        )
        return str(answer["status"])

    def unregister(self, model: str, version: str | None = None) -> str:
        suffix = f"/{urllib.parse.quote(version)}" if version else ""
        return str(self._mgmt("DELETE", f"/models/{urllib.parse.quote(model)}{suffix}")["status"])

    def scale(
        self,
        model: str,
        min_worker: int,
        max_worker: int | None = None,
        *,
        version: str | None = None,
        synchronous: bool = True,
    ) -> str:
        suffix = f"/{urllib.parse.quote(version)}" if version else ""
        answer = self._mgmt(
            "PUT",
            f"/models/{urllib.parse.quote(model)}{suffix}",
            query={"min_worker": min_worker, "max_worker": max_worker, "synchronous": synchronous},
        )
        return str(answer["status"])

    def set_default(self, model: str, version: str) -> str:
        path = f"/models/{urllib.parse.quote(model)}/{urllib.parse.quote(version)}/set-default"
        return str(self._mgmt("PUT", path)["status"])

    def events(
        self, since: int = 0, *, model: str | None = None, kind: str | None = None, limit: int = 500
    ) -> EventPage:
        """The backend's events after ``since``, as typed records (ts_notebook's backend only)."""
        query: Query = {"since": since, "model": model, "kind": kind, "limit": limit}
        return page_from_json(self._mgmt("GET", "/ts_notebook/events", query=query))

    def workers(self) -> list[VersionWorkers]:
        """What each worker really received: system_properties and manifest (ts_notebook's backend only)."""
        return workers_from_json(self._mgmt("GET", "/ts_notebook/workers"))

    # hot reload, replay and timings (ts_notebook's backend only)
    def reload(self, model: str, url: str | None = None, *, version: str | None = None) -> Swap:
        """Serve a rebuilt archive (``url``, default the model's own) with zero failed requests.

        Raises:
            ServerError: the new code did not load (``detail`` has its handler line and traceback); the
                old code keeps serving.
        """
        path = f"/ts_notebook/models/{urllib.parse.quote(model)}/reload"
        return decode_as(self._mgmt("POST", path, query={"url": url, "version": version}), Swap)

    def reload_handler(self, model: str, source: str, filename: str, *, version: str | None = None) -> Swap:
        """Serve the model's current files with ``source`` as its handler file ``filename``."""
        path = f"/ts_notebook/models/{urllib.parse.quote(model)}/handler"
        query: Query = {"filename": filename, "version": version}
        return decode_as(self._mgmt("POST", path, body=source.encode("utf-8"), query=query), Swap)

    def requests(self, model: str | None = None, *, failed: bool = False, limit: int = 50) -> list[ServedRequest]:
        """Recent served requests (newest last, summaries: previews, no row), or only the failed ones."""
        query: Query = {"model": model, "failed": failed, "limit": limit}
        return requests_from_json(self._mgmt("GET", "/ts_notebook/requests", query=query))

    def request(self, request_id: str) -> ServedRequest:
        """One served request in full: its exact ``row`` and ``headers``, batch, worker Context, answer or error."""
        return decode_as(self._mgmt("GET", f"/ts_notebook/requests/{urllib.parse.quote(request_id)}"), ServedRequest)

    def timings(self, model: str | None = None) -> list[ModelTimings]:
        """Per model, p50/p99 ms of each stage (queue, transport, preprocess, inference, postprocess, ...)."""
        return timings_from_json(self._mgmt("GET", "/ts_notebook/timings", query={"model": model}))

    def metrics(self) -> str:
        if self.metrics_address is None:
            raise BackendError("no metrics address known for this server")
        return self._call("GET", self.metrics_address, "/metrics", key=None).body.decode("utf-8")


def describe_all(client: Client) -> tuple[list[JsonObject], list[JsonObject]]:
    """Every registered model (``GET /models``) and every version's description, in one place."""
    listed = client.list_models()
    return listed, [v for m in listed for v in client.describe(m["modelName"], "all")]


def _server_error(method: str, target: str, answer: Response) -> ServerError:
    """TorchServe's error JSON (``code``, ``type``, ``message``) as a ServerError with the status kept."""
    value = answer.value
    if isinstance(value, dict) and "message" in value:
        kind = str(value.get("type", ""))
        message = f"{method} {target} -> {answer.status} {kind}: {value['message']}"
        return ServerError(message, answer.status, kind, value)
    if answer.status == 413:
        return ServerError(f"{method} {target} -> 413: the request body is over the server's max_request_size", 413)
    return ServerError(f"{method} {target} -> {answer.status}: {answer.body[:500]!r}", answer.status)
