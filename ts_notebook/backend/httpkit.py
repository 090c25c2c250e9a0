"""What every endpoint shares: TorchServe's JSON bodies and error shape, its no-cache headers, and
the token check (``Authorization: Bearer <key>``; a bad token is a 400, as in TorchServe 0.12)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import hdrs, web

from ts_notebook.backend.api_error import ApiError

NO_CACHE = {
    "Pragma": "no-cache",
    "Cache-Control": "no-cache; no-store, must-revalidate, private",
    "Expires": "Thu, 01 Jan 1970 00:00:00 UTC",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def json_response(payload: Any, status: int = 200, request_id: str | None = None) -> web.Response:
    """Pretty JSON with a trailing newline, as TorchServe's management and status answers."""
    # "application/json" exactly, as TorchServe sends it: aiohttp's text= would add "; charset=utf-8".
    headers = {**NO_CACHE, "x-request-id": request_id or str(uuid.uuid4()), "Content-Type": "application/json"}
    body = json.dumps(payload, indent=2) + "\n"
    return web.Response(body=body.encode("utf-8"), status=status, headers=headers)


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The request's body, or TorchServe-style 408 when it does not all arrive within ``timeout`` s."""
    if request.content.is_eof():  # all of it came with the headers (most requests): no timer to arm
        return await request.read()
    try:
        async with asyncio.timeout(timeout):  # a timer on this task; wait_for would start a task per request
            return await request.read()
    except asyncio.TimeoutError:
        raise ApiError(
            408, "RequestTimeoutException", f"the request body did not arrive within {timeout:g} s"
        ) from None


def error_response(error: ApiError, request_id: str | None = None) -> web.Response:
    body = {"code": error.code, "type": error.kind, "message": error.message, **getattr(error, "extra", {})}
    response = json_response(body, error.code, request_id)
    response.force_close()  # TorchServe closes the connection after every error
    return response


NOT_FOUND = ApiError(404, "ResourceNotFoundException", "Requested resource is not found, please refer to API document.")
NOT_ALLOWED = ApiError(
    405, "MethodNotAllowedException", "Requested method is not allowed, please refer to API document."
)
BAD_TOKEN = ApiError(
    400, "InvalidKeyException", "Token Authorization failed. Token either incorrect, expired, or not provided correctly"
)


@dataclass(frozen=True)
class Keys:
    """The three keys TorchServe 0.12 issues; written to ``key_file.json`` (mode 0600)."""

    inference: str
    management: str
    api: str

    @classmethod
    def create(cls, folder: Path) -> Keys:
        keys = cls(secrets.token_urlsafe(6), secrets.token_urlsafe(6), secrets.token_urlsafe(6))
        path = folder / "key_file.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # O_CREAT's mode only applies to a new file: an old 0644 one is tightened too
        with os.fdopen(fd, "w") as fh:
            json.dump(
                {
                    "management": {"key": keys.management},
                    "inference": {"key": keys.inference},
                    "API": {"key": keys.api},
                },
                fh,
                indent=2,
            )
        return keys


def gate(key: str | None, open_paths: tuple[str, ...] = (), count: Callable[[int], None] | None = None) -> Middleware:
    """The one middleware of every port: the token check (``Authorization: Bearer <key>`` unless ``key``
    is None), TorchServe's error bodies for ApiError and aiohttp's own errors, and the count of every
    answer's status (TorchServe's Requests2XX/4XX/5XX cover both APIs, ping included).

    One middleware rather than three: each layer is a coroutine call on every request.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await _checked(request, handler, key, open_paths)
        except web.HTTPException as exc:
            if count is not None:
                count(exc.status)
            raise
        if count is not None:
            count(response.status)
        return response

    return middleware


async def _checked(
    request: web.Request, handler: Handler, key: str | None, open_paths: tuple[str, ...]
) -> web.StreamResponse:
    try:
        exempt = request.method == "OPTIONS" or request.path in open_paths
        if key is not None and not exempt and request.headers.get("Authorization") != f"Bearer {key}":
            raise BAD_TOKEN
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        return web.Response(status=413, headers=NO_CACHE)
    except web.HTTPNotFound:
        return error_response(NOT_FOUND)
    except web.HTTPMethodNotAllowed:
        return error_response(NOT_ALLOWED)
    except web.HTTPException:
        raise
    except Exception as exc:  # a bug of ours: TorchServe's JSON, not aiohttp's HTML page
        logging.getLogger("ts_notebook.backend").exception("unexpected error on %s", request.path)
        return error_response(ApiError(500, "InternalServerException", f"{type(exc).__name__}: {exc}"))


class _Bare:
    """Send no Content-Type unless one was set: TorchServe answers a handler's output without one
    (unless the handler set it), where aiohttp would add application/octet-stream."""

    async def _prepare_headers(self) -> None:
        had = hdrs.CONTENT_TYPE in self._headers  # type: ignore[attr-defined]
        await super()._prepare_headers()  # type: ignore[misc]
        if not had:
            self._headers.pop(hdrs.CONTENT_TYPE, None)  # type: ignore[attr-defined]


class BareResponse(_Bare, web.Response):
    pass


class BareStreamResponse(_Bare, web.StreamResponse):
    pass
