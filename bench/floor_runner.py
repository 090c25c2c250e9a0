"""The in-process floor: the benchmark's handler called in a loop, no server, no socket.

``python floor_runner.py ARCHIVE BODY_FILE WORKERS BATCH SECONDS`` forks WORKERS processes (after
loading the handler once, as our zygote does not: each loads its own, as every server's workers do),
each with one torch thread, each calling ``handle`` with BATCH copies of the request for SECONDS.
Prints one ``FLOOR {json}`` line: requests per second over all processes, and the per-call latency.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _worker(archive: str, body: bytes, batch: int, seconds: float, go: Any, results: Any) -> None:
    import torch

    torch.set_num_threads(1)
    from ts_notebook.deploy.runtime import HandlerRuntime

    runtime = HandlerRuntime(archive, batch_size=batch, work_dir=tempfile.mkdtemp(prefix="tsb-floor-"))
    requests = [runtime.request(body, "application/json") for _ in range(batch)]
    for _ in range(20):  # warm: the first calls allocate
        runtime.handle(requests)
    results.put("ready")
    go.get()  # every process starts timing together
    latencies = []
    start = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        answers = runtime.handle(requests)
        latencies.append(time.perf_counter() - now)
        assert all(a.status == 200 for a in answers), answers[0].body
    results.put((len(latencies) * batch, time.perf_counter() - start, latencies))


def main() -> None:
    archive, body = sys.argv[1], Path(sys.argv[2]).read_bytes()
    workers, batch, seconds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    ctx = mp.get_context("spawn")
    go, results = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(archive, body, batch, seconds, go, results)) for _ in range(workers)]
    for p in procs:
        p.start()
    ready = [results.get(timeout=300) for _ in procs]  # each says it has loaded and warmed
    assert all(r == "ready" for r in ready)
    for _ in procs:
        go.put(None)
    runs = [results.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(30)
    latencies = sorted(x for r in runs for x in r[2])
    rps = sum(r[0] / r[1] for r in runs)
    print("FLOOR " + json.dumps({
        "workers": workers, "batch": batch, "seconds": seconds, "requests": sum(r[0] for r in runs),
        "rps": round(rps, 2),
        "call_p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "call_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "per_request_ms": round(1000 * workers / rps, 3) if rps else None,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
