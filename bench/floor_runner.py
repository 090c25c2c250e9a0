"""The in-process floor: W copies of the benchmark's handler loop running at the same time, no server,
no socket.

``python floor_runner.py ARCHIVE BODY_FILE WORKERS BATCH SECONDS ROUNDS`` spawns WORKERS processes, each
with one torch thread (as every server's workers get here), each loading the handler itself (as every
server's workers do). Once all have loaded and warmed, each round starts every copy at one shared
instant and stops it at one shared deadline; each copy calls ``handle`` with BATCH copies of the request,
over and over. A round's floor is the requests all copies completed over the round's wall time (the
first copy's start to the last copy's end): what W busy cores really do together, including what they
take from each other (caches, memory bandwidth, the machine's other load), not one copy's rate times W.

Prints one ``FLOOR {json}`` line: req/s per round and their median, and per copy its calls, per-call
time and CPU share, so a copy that did not get its core shows.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

START_LEAD_S = 0.3  # every copy is told the start instant this far ahead, so all are waiting for it


def _round(runtime: Any, requests: list[Any], start_at: float, stop_at: float) -> dict[str, Any]:
    """One copy's loop for one round. ``time.monotonic`` is the system-wide CLOCK_MONOTONIC on Linux,
    so the instants the parent chose mean the same to every copy."""
    while (now := time.monotonic()) < start_at:
        time.sleep(min(0.001, start_at - now))
    calls: list[float] = []
    cpu0, began = time.process_time(), time.monotonic()
    while (t0 := time.monotonic()) < stop_at:
        answers = runtime.handle(requests)
        calls.append(time.monotonic() - t0)
        assert all(a.status == 200 for a in answers), answers[0].body
    ended = time.monotonic()
    return {"began": began, "ended": ended, "calls": calls, "cpu_s": time.process_time() - cpu0}


def _copy(archive: str, body: bytes, batch: int, orders: Any, results: Any) -> None:
    import torch

    torch.set_num_threads(1)
    from ts_notebook.deploy.runtime import HandlerRuntime

    runtime = HandlerRuntime(archive, batch_size=batch, work_dir=tempfile.mkdtemp(prefix="tsb-floor-"))
    requests = [runtime.request(body, "application/json") for _ in range(batch)]
    for _ in range(20):  # warm: the first calls allocate
        runtime.handle(requests)
    results.put("ready")
    while (order := orders.get()) is not None:
        results.put(_round(runtime, requests, *order))


def _summarise_round(copies: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    wall = max(c["ended"] for c in copies) - min(c["began"] for c in copies)
    total = sum(len(c["calls"]) for c in copies) * batch
    per_copy = []
    for c in copies:
        own = c["ended"] - c["began"]
        calls = sorted(c["calls"])
        per_copy.append({
            "calls": len(calls),
            "call_p50_ms": round(calls[len(calls) // 2] * 1000, 3) if calls else None,
            "call_mean_ms": round(statistics.fmean(calls) * 1000, 3) if calls else None,
            "call_p99_ms": round(calls[int(len(calls) * 0.99)] * 1000, 3) if calls else None,
            "cpu_share": round(c["cpu_s"] / own, 3) if own > 0 else None,  # 1.0: the copy had a core to itself
        })  # fmt: skip
    return {"requests": total, "wall_s": round(wall, 4), "rps": round(total / wall, 2) if wall > 0 else None,
            "copies": per_copy}  # fmt: skip


def measure(archive: str, body: bytes, workers: int, batch: int, seconds: float, rounds: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    orders = [ctx.Queue() for _ in range(workers)]
    procs = [ctx.Process(target=_copy, args=(archive, body, batch, q, results)) for q in orders]
    for p in procs:
        p.start()
    try:
        assert all(results.get(timeout=300) == "ready" for _ in procs)  # each has loaded and warmed
        runs = []
        for _ in range(rounds):
            start_at = time.monotonic() + START_LEAD_S
            for q in orders:
                q.put((start_at, start_at + seconds))
            runs.append(_summarise_round([results.get(timeout=seconds + 120) for _ in procs], batch))
    finally:
        for q in orders:
            q.put(None)
        for p in procs:
            p.join(30)
    return _result(workers, batch, seconds, runs)


def _result(workers: int, batch: int, seconds: float, runs: list[dict[str, Any]]) -> dict[str, Any]:
    rps = [r["rps"] for r in runs if r["rps"]]
    # Per-call time with all W copies busy: the median copy-round's p50 and the worst copy-round's p99.
    p50s = sorted(c["call_p50_ms"] for r in runs for c in r["copies"] if c["call_p50_ms"] is not None)
    median = statistics.median(rps) if rps else None
    return {
        "method": "concurrent",  # W copies at once; results before this change summed per-copy rates
        "workers": workers, "batch": batch, "seconds": seconds, "rounds": runs,
        "rps": median, "rps_min": min(rps, default=None), "rps_max": max(rps, default=None),
        "call_p50_ms": p50s[len(p50s) // 2] if p50s else None,
        "call_p99_ms": max((c["call_p99_ms"] or 0 for r in runs for c in r["copies"]), default=None),
        "per_request_ms": round(1000 * workers / median, 3) if median else None,
    }  # fmt: skip


def main() -> None:
    archive, body = sys.argv[1], Path(sys.argv[2]).read_bytes()
    workers, batch, seconds, rounds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
    print("FLOOR " + json.dumps(measure(archive, body, workers, batch, seconds, rounds)))


if __name__ == "__main__":
    main()
