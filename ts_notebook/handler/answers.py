"""A handler's answers as TorchServe's Python worker sends them to the client.

Shared by our workers and by the runtimes that run a handler elsewhere (Ray Serve, KServe's model
server), so a handler answers the same bytes wherever it is served.
"""

from __future__ import annotations

import io
import json
from typing import Any


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
