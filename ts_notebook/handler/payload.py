"""Requests shaped exactly as TorchServe 0.12 hands them to a handler.

``data`` is a list with one dict per request. Keys are parameter names: ``body`` for a plain
request, one key per field for ``multipart/form-data`` and form-urlencoded bodies. Values are
decoded by content type: ``application/json`` -> the parsed object (invalid JSON stays raw),
``text/*`` -> ``str``, anything else -> ``bytearray`` (not ``bytes``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from ts_notebook.handler.context import RequestProcessor
from ts_notebook.jsontypes import JsonObject


@dataclass
class Request:
    """One request as the handler receives it: its ``data`` row, its headers, its id."""

    row: JsonObject
    headers: JsonObject
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def _base_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_value(raw: bytes, content_type: str | None) -> Any:
    """Decode one parameter the way TorchServe's Python worker does."""
    base = _base_type(content_type)
    if base == "application/json":
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return bytearray(raw)  # TorchServe logs a warning and passes the raw bytes on
    if base.startswith("text/"):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return bytearray(raw)  # as TorchServe: undecodable text is passed on raw
    return bytearray(raw)


def make_request(
    body: bytes | str,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
) -> Request:
    """Shape one POST to ``/predictions/{model}`` into the handler's row and headers.

    ``headers`` keep their case: TorchServe's header lookups are case-sensitive. The frontend's own
    ``explain`` and ``url_path`` entries and one ``{"content-type": ...}`` entry per parameter are
    added as TorchServe adds them. ``request_id`` is the served request's (a new one when None).
    """
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    user = dict(headers or {})
    if content_type is not None:
        user.setdefault("Content-Type", content_type)
    ct = next((v for k, v in user.items() if k.lower() == "content-type"), None)
    base = _base_type(ct)
    params: dict[str, tuple[bytes, str]]
    if base == "multipart/form-data":
        params = _multipart_fields(raw, ct or "")
    elif base == "application/x-www-form-urlencoded":
        params = {k: (v.encode("utf-8"), "") for k, v in parse_qsl(raw.decode("utf-8"), keep_blank_values=True)}
    else:
        params = {"body": (raw, base)}
    row = {name: decode_value(value, part_type) for name, (value, part_type) in params.items()}
    header_view: JsonObject = {name: {"content-type": part_type} for name, (_, part_type) in params.items()}
    header_view.update(user)
    header_view.setdefault("Content-Length", str(len(raw)))
    header_view["explain"] = "False"
    header_view["url_path"] = ""
    return Request(row, header_view) if request_id is None else Request(row, header_view, request_id)


def _multipart_fields(raw: bytes, content_type: str) -> dict[str, tuple[bytes, str]]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, tuple[bytes, str]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        part_type = _base_type(part.get("Content-Type")) if part.get("Content-Type") else ""
        fields[name] = (payload if isinstance(payload, bytes) else b"", part_type)
    return fields


def batch_of(requests: list[Request]) -> tuple[list[JsonObject], list[RequestProcessor], dict[int, str]]:
    """The ``data`` list, request processors and ``request_ids`` for one handler call."""
    data = [r.row for r in requests]
    processors = [RequestProcessor(r.headers) for r in requests]
    ids = {i: r.request_id for i, r in enumerate(requests)}
    return data, processors, ids
