"""What the results record about the run's context: the machine, package versions, the source measured,
and the load average (a shared machine makes the figures noisy, so every result file carries it)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from common import REPO, env_float

# The package's folder: its uncommitted changes are what runs, so the results name them.
SOURCE_DIR = "ts_notebook"


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "unknown")
    except OSError:
        return platform.processor() or "unknown"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def ref_python(ref_venv: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in the reference venv's interpreter: what it has installed is not importable here."""
    return subprocess.run([str(ref_venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False)


def ref_version(ref_venv: Path, dist: str) -> str:
    """``dist``'s version in the reference venv; empty when it has none."""
    return ref_python(ref_venv, f"import importlib.metadata as m; print(m.version({dist!r}))").stdout.strip()


def wait_idle() -> dict[str, Any] | None:
    """With ``WAIT_IDLE`` set, wait (at most ``WAIT_MAX`` s) until the 1-min load average is below it."""
    raw = os.environ.get("WAIT_IDLE", "").strip()
    if not raw:
        return None
    below, limit = float(raw), env_float("WAIT_MAX", 900)
    start = time.monotonic()
    while (load := os.getloadavg()[0]) >= below and time.monotonic() - start < limit:
        print(f"waiting for the 1-min load average ({load:.2f}) to drop below {below}", flush=True)
        time.sleep(20)
    return {"below": below, "waited_s": round(time.monotonic() - start, 1), "reached": os.getloadavg()[0] < below}


def source_state() -> dict[str, Any]:
    """The commit measured, and which files of the package differ from it (the working tree is what runs).

    With ``BENCH_OURS_SOURCE`` our backend runs from that checkout, so its commit is the one measured."""
    tree = Path(os.environ.get("BENCH_OURS_SOURCE") or REPO)

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=tree, capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    # Not git()'s stripped text: porcelain lines start with a status column that may be a space.
    proc = subprocess.run(["git", "status", "--porcelain", "--", SOURCE_DIR], cwd=tree, capture_output=True, text=True)
    dirty = [line[3:] for line in proc.stdout.splitlines() if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "uncommitted_src": dirty, "tree": str(tree)}


def serving_machine(ref_venv: Path) -> dict[str, Any]:
    """The machine and the versions the serving figures depend on, TorchServe's and Java's included."""
    import psutil  # type: ignore[import-untyped]

    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": version("torch"),
        "transformers": version("transformers"),
        "aiohttp": version("aiohttp"),
        "ts_notebook": version("ts_notebook"),
        "torchserve": ref_version(ref_venv, "torchserve"),
        "java": (java.stderr.splitlines() or ["unknown"])[0],
    }


def archive_machine(ref_venv: Path) -> dict[str, Any]:
    """The machine and the versions the archive figures depend on (isal: our fast deflate)."""
    proc = ref_python(ref_venv, "import importlib.metadata as m; print(m.version('torch-model-archiver'))")
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": version("torch"),
        "isal": version("isal"),
        "ts_notebook": version("ts_notebook"),
        "torch_model_archiver": proc.stdout.strip() or f"unknown ({proc.stderr.strip()[-200:]})",
    }
