"""Request rows as JSON, exactly: ``bytes`` and ``bytearray`` survive the trip (tagged, base64), so a
replayed request gives the handler the very ``data`` rows the served one got."""

from __future__ import annotations

import base64
from typing import Any

_TAGS = {"__bytes__": bytes, "__bytearray__": bytearray}


def encode(value: Any) -> Any:
    """A JSON-ready copy of ``value``: bytes-like values become ``{"__bytes__": "<base64>"}``."""
    if isinstance(value, bytearray):
        return {"__bytearray__": base64.b64encode(value).decode("ascii")}
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)  # not a type TorchServe puts in a row; shown, not replayed


def decode(value: Any) -> Any:
    """The inverse of ``encode``."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, payload),) = value.items()
            if key in _TAGS and isinstance(payload, str):
                return _TAGS[key](base64.b64decode(payload))
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
