"""How values are previewed to a user: JSON text for answers and contexts, and the content type a
typed-in request body is sent with. One place, so the dry run, the magics and the views agree."""

from __future__ import annotations

import json
from typing import Any


def json_preview(value: Any) -> str:
    """Indented JSON; what JSON cannot hold (tensors, bytes, objects) shows as its ``repr``."""
    return json.dumps(value, indent=2, default=repr, ensure_ascii=False)


def guess_text_type(body: str) -> str:
    """``application/json`` for a body that parses as JSON, else ``text/plain`` (as curl users expect)."""
    try:
        json.loads(body)
    except ValueError:
        return "text/plain"
    return "application/json"
