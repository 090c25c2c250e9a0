"""The client side of the serving benchmark: one-off HTTP calls, the load generator and its percentiles.

Plain ``http.client`` to 127.0.0.1 only (no proxies, nothing that adds client-side cost of its own), so
both servers see the very same client.
"""

from __future__ import annotations

import http.client
import itertools
import statistics
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

_HEADERS = {"Content-Type": "application/json"}


def call(method: str, url: str, body: bytes | None = None, timeout: float = 120.0) -> tuple[int, bytes]:
    """One request on a fresh connection (no proxies, only 127.0.0.1); (status, body) for any status."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body, headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def percentile(ordered: list[float], p: float) -> float:
    """Linear interpolation between closest ranks, on sorted data."""
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class _Tally:
    """What every client thread of one run records, under one lock."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_load(url: str, body: bytes, clients: int, n: int, window: float) -> dict[str, Any]:
    """``clients`` threads, each with one keep-alive ``http.client`` connection, send POSTs until ``n``
    requests were issued in all or ``window`` seconds passed. Latency: ``perf_counter`` around one
    request and its full response."""
    parts = urllib.parse.urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port, parts.path
    issued = itertools.count()
    tally = _Tally()
    clock: dict[str, float] = {}
    # Every client connects first; the clock starts when the last one is ready, so all start together.
    start = threading.Barrier(clients, action=lambda: clock.setdefault("t0", time.perf_counter()))

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        conn.connect()
        start.wait()
        deadline = clock["t0"] + window
        while next(issued) < n and time.perf_counter() < deadline:
            _one_request(conn, path, body, tally)
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(window + 120)
    wall = time.perf_counter() - clock.get("t0", time.perf_counter())
    return _result(clients, wall, tally)


def _one_request(conn: http.client.HTTPConnection, path: str, body: bytes, tally: _Tally) -> None:
    """Send one POST and read the whole response; a connection closed here reconnects on its next request."""
    t0 = time.perf_counter()
    try:
        conn.request("POST", path, body, _HEADERS)
        resp = conn.getresponse()
        resp.read()
        dt = time.perf_counter() - t0
        with tally.lock:
            tally.latencies.append(dt)
            tally.statuses[resp.status] = tally.statuses.get(resp.status, 0) + 1
        if resp.will_close:
            conn.close()
    except (OSError, http.client.HTTPException) as exc:
        with tally.lock:
            tally.errors.append(repr(exc))
        conn.close()


def _result(clients: int, wall: float, tally: _Tally) -> dict[str, Any]:
    ok = tally.statuses.get(200, 0)
    latencies = sorted(tally.latencies)
    result: dict[str, Any] = {
        "clients": clients,
        "n": len(latencies),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "errors": len(tally.errors),
        "error_samples": tally.errors[:3],
        "wall_s": round(wall, 4),
        "rps": round(ok / wall, 2) if wall > 0 else None,
    }
    if latencies:
        result |= {f"p{p}_ms": round(percentile(latencies, p) * 1000, 3) for p in (50, 90, 99)} | {
            "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
            "max_ms": round(latencies[-1] * 1000, 3),
        }
    return result
