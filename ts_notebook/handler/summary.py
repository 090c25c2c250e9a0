"""One-line previews of whatever a stage returns: type, tensor shape and dtype, a value preview."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREVIEW = 120


def _clip(text: str, limit: int = PREVIEW) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return f"{type(value).__name__}[{', '.join(str(d) for d in shape)}] {str(value.dtype).removeprefix('torch.')}"
    return _clip(repr(value), 40)


def _fields(mapping: Mapping[Any, Any]) -> str:
    return _clip(", ".join(f"{k}: {_short(v)}" for k, v in mapping.items()), 2 * PREVIEW)


def summarize(value: Any) -> str:
    """``Tensor[2, 3] float32 cpu: [[0.1, ...]]``, ``list[2]: [...]``, ``bytearray[12]: b'...'``."""
    kind = type(value).__name__
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        dims = ", ".join(str(d) for d in shape)
        dtype = str(value.dtype).removeprefix("torch.")
        device = f" {value.device}" if hasattr(value, "device") else ""
        try:
            preview = repr(value.tolist())
        except Exception:  # a meta or sparse tensor has no list form
            preview = "…"
        return f"{kind}[{dims}] {dtype}{device}: {_clip(preview)}"
    if not isinstance(value, dict) and isinstance(value, Mapping):  # e.g. a tokenizer's BatchEncoding
        return f"{kind}{{{_fields(value)}}}"
    if isinstance(value, dict) and any(hasattr(v, "shape") for v in value.values()):
        return f"dict{{{_fields(value)}}}"
    if isinstance(value, (list, tuple, dict, set, str, bytes, bytearray)):
        return f"{kind}[{len(value)}]: {_clip(repr(value))}"
    return f"{kind}: {_clip(repr(value))}"
