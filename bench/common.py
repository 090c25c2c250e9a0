"""What the benchmarks share: their folders, settings from the environment, medians, the reference
venv and writing raw results."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "work"  # git-ignored: cached inputs and build outputs
RESULTS = BENCH / "results"


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def env_ints(name: str, default: str) -> list[int]:
    return [int(v) for v in (os.environ.get(name, "").strip() or default).split(",") if v.strip()]


def summary(values: list[float | None]) -> dict[str, float] | None:
    """Median, min, max and count of the values measured; None when nothing was."""
    clean = [v for v in values if v is not None]
    if not clean:
        return None
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean), "n": len(clean)}


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
