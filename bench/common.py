"""What the benchmarks share: finding the reference venv and writing raw results."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def reference_venv(tool: str, package: str) -> Path | None:
    """The venv named by ``TS_REF_VENV`` if it has ``bin/<tool>``; else None, saying why."""
    raw = os.environ.get("TS_REF_VENV", "").strip()
    if not raw:
        print(f"TS_REF_VENV is not set: point it at a venv with {package} (`make compat-venv`).")
        return None
    venv = Path(raw).resolve()
    if not (venv / "bin" / tool).is_file():
        print(f"TS_REF_VENV={venv} has no bin/{tool}.")
        return None
    return venv


def write_json(name: str, result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
