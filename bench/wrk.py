"""The low-cost client: Debian's ``wrk`` with a Lua script that POSTs the request body and prints
wrk's own summary as one JSON line (microsecond latencies, every error kind), so the figures come
from wrk itself rather than from parsing its human-readable table.

``wrk`` is installed from the distribution's packages when it is missing (as ``.ci/run`` installs
Chromium), never built or downloaded from elsewhere.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

_SCRIPT = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p90_us\\": %d, " ..
    "\\"p99_us\\": %d, \\"mean_us\\": %.1f, \\"max_us\\": %d, \\"status_errors\\": %d, \\"connect\\": %d, " ..
    "\\"read\\": %d, \\"write\\": %d, \\"timeout\\": %d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def ensure_wrk() -> str:
    """The wrk executable; apt-get installs Debian's package when it is missing (as root; ``make bench-floor``
    installs it first too)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-qq", "wrk"]
        subprocess.run(install, check=False, env=env, capture_output=True)
        if not shutil.which("wrk"):  # a fresh machine has no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
            subprocess.run(install, check=False, env=env, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed: apt-get install wrk (Debian's package)")
    return found


def run_wrk(url: str, body: bytes, clients: int, seconds: float, timeout_s: float = 30.0) -> dict[str, Any]:
    """``clients`` keep-alive connections for ``seconds``; throughput counts 2xx/3xx answers only.

    Also returns the CPU seconds wrk itself used (from ``wait4`` via RUSAGE_CHILDREN), so the client's
    share of the machine is known.
    """
    exe = ensure_wrk()
    threads = max(1, min(clients, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="tsb-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_SCRIPT.format(body=body.decode("utf-8")))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            [
                exe,
                f"-t{threads}",
                f"-c{clients}",
                f"-d{max(1, math.ceil(seconds))}s",  # wrk takes whole seconds only
                f"--timeout={timeout_s:g}s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + timeout_s + 30,
            check=False,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout[-500:]}")
    raw = json.loads(line[len("WRKJSON ") :])
    ok = raw["requests"] - raw["status_errors"]
    wall = raw["duration_us"] / 1e6
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "client": "wrk",
        "clients": clients,
        "n": raw["requests"],
        "ok": ok,
        "errors": raw["status_errors"] + raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        "wall_s": round(wall, 3),
        "rps": round(ok / wall, 2) if wall > 0 else None,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": round(raw["mean_us"] / 1000, 3),
        "max_ms": raw["max_us"] / 1000,
        "client_cpu_s": round(cpu, 3),
        "raw": raw,
    }
