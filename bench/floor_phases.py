"""The floor benchmark's measurements: each server alone, every cell of the matrix, each cell a warm
server measured ``repeats`` times by wrk (and by the Python client where the plan says), with the CPU
each side spent per request; the in-process floor; the bare HTTP round trip; cold starts.

Each function returns plain dicts that go into ``floor.json`` as they are; ``floor_report.py`` reads them.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from common import summary
from floor_plan import Plan
from floor_servers import HttpFloor, LitServer, run_floor
from loadgen import call, run_load
from machine import load_average
from sampling import CpuAccount, footprint, process_tree
from servers import stage, unregister
from wrk import run_wrk

Cell = dict[str, Any]


def _role_cpu(server: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for proc in process_tree(server.frontend_pid):
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            role = server.role(proc)
            out[role] = out.get(role, 0.0) + t.user + t.system
    return out


def _one_run(server: Any, url: str, body: bytes, clients: int, seconds: float, client: str) -> dict[str, Any]:
    before = _role_cpu(server)
    with CpuAccount(server) as cpu:
        if client == "wrk":
            res = run_wrk(url, body, clients, seconds)
            res.pop("raw", None)
        else:
            py0 = time.process_time()
            res = run_load(url, body, clients, 10**9, seconds)
            res["client_cpu_s"] = round(time.process_time() - py0, 3)
    after = _role_cpu(server)
    n = max(1, res["n"])
    per_req = {role: round((after[role] - before.get(role, 0.0)) / n * 1e6, 1) for role in after}
    per_req["client"] = round(res["client_cpu_s"] / n * 1e6, 1)
    return res | {"cpu": cpu.as_dict(), "cpu_us_per_request": per_req, "load_average": load_average()}


def measure(server: Any, path: str, body: bytes, clients: int, seconds: float, repeats: int, client: str) -> Cell:
    url = f"{server.inference_url}{path}"
    runs = [_one_run(server, url, body, clients, seconds, client) for _ in range(repeats)]
    for i, r in enumerate(runs):
        print(
            f"    {server.kind:<10} {client:<6} {clients:>2}c #{i + 1}  {r['rps'] or 0:8.1f} req/s  "
            f"p50 {r.get('p50_ms', 0):7.2f} ms  p99 {r.get('p99_ms', 0):7.2f} ms  ok={r['ok']} err={r['errors']}  "
            f"cpu/req {json.dumps(r['cpu_us_per_request'])}",
            flush=True,
        )
    return {"runs": runs, **{k: summary([r.get(k) for r in runs]) for k in ("rps", "p50_ms", "p99_ms")}}


def _cells(server: Any, path: str, model: str, plan: Plan, out: dict[str, Cell], prefix: str) -> None:
    body = plan.body(model)
    seconds = plan.seconds(model)
    run_wrk(f"{server.inference_url}{path}", body, 4, plan.warm_s(server.kind))  # warm: TorchServe needs long
    for clients in plan.clients:
        out[f"{prefix}/{clients}c/wrk"] = measure(server, path, body, clients, seconds, plan.repeats, "wrk")
        if server.kind == "ours":  # the backend's own stage record of this cell's last requests
            timings = call("GET", f"{server.management_url}/ts_notebook/timings?model={model}")[1]
            out[f"{prefix}/{clients}c/wrk"]["timings"] = json.loads(timings).get(model, {}).get("stages", {})
        if clients in plan.py_clients(model):
            out[f"{prefix}/{clients}c/python"] = measure(server, path, body, clients, seconds, plan.repeats, "python")


def _register(server: Any, url: str, name: str, workers: int, batch: int) -> tuple[int, bytes]:
    query = {"url": url, "model_name": name, "initial_workers": str(workers), "synchronous": "true"}
    if batch > 1:
        query |= {"batch_size": str(batch), "max_batch_delay": "10"}
    return call("POST", f"{server.management_url}/models?{urllib.parse.urlencode(query)}", timeout=300)


def registered_session(server: Any, model: str, archive: Path, plan: Plan) -> dict[str, Any]:
    """One running server (ours or TorchServe): each (workers, batch) registered, warmed, measured."""
    out: dict[str, Any] = {"cells": {}, "footprint": {}, "errors": [], "answers": {}}
    url = stage(server, archive)
    for workers in plan.workers(model):
        for batch in plan.batches(model, server.kind):
            status, text = _register(server, url, model, workers, batch)
            if status != 200:
                out["errors"].append(f"{model} {workers}w b{batch}: HTTP {status} {text[:300]!r}\n{server.log_tail()}")
                continue
            path = f"/predictions/{model}"
            out["answers"][f"{workers}w/b{batch}"] = call("POST", f"{server.inference_url}{path}", plan.body(model))[
                1
            ].decode(errors="replace")
            prefix = f"{model}/{workers}w/b{batch}"
            _cells(server, path, model, plan, out["cells"], prefix)
            out["footprint"][prefix] = footprint(server)
            unregister(server, model)
    return out


def litserve_session(make: Callable[[int, int], LitServer], model: str, plan: Plan) -> dict[str, Any]:
    """LitServe has no registration API: a fresh server per (workers, batch)."""
    out: dict[str, Any] = {"cells": {}, "footprint": {}, "errors": [], "answers": {}}
    for workers in plan.workers(model):
        for batch in plan.batches(model, "litserve"):
            try:
                server = make(workers, batch).start()
            except RuntimeError as exc:
                out["errors"].append(f"{model} {workers}w b{batch}: {exc}")
                continue
            try:
                prefix = f"{model}/{workers}w/b{batch}"
                out["answers"][f"{workers}w/b{batch}"] = call(
                    "POST", f"{server.inference_url}/predict", plan.body(model)
                )[1].decode(errors="replace")
                _cells(server, "/predict", model, plan, out["cells"], prefix)
                out["footprint"][prefix] = footprint(server)
            finally:
                server.stop()
    return out


def floor_session(archives: dict[str, Path], plan: Plan) -> dict[str, Any]:
    """Per (model, workers, batch): W copies of the handler loop at once, ``repeats`` rounds of a cell's length."""
    out: dict[str, Any] = {}
    for model, archive in archives.items():
        for workers in plan.workers(model):
            for batch in plan.batches(model, "floor"):
                res = run_floor(archive, plan.body(model), workers, batch, plan.seconds(model), plan.repeats)
                for i, r in enumerate(res["rounds"]):
                    copies = " ".join(f"[{c['calls']} calls p50 {c['call_p50_ms']} ms cpu {c['cpu_share']}]"
                                      for c in r["copies"])  # fmt: skip
                    print(f"    floor      {model} {workers}w b{batch} #{i + 1}  {r['rps']:8.1f} req/s  {copies}",
                          flush=True)  # fmt: skip
                out[f"{model}/{workers}w/b{batch}"] = res
    return out


def http_floor_session(answer: bytes, plan: Plan) -> dict[str, Any]:
    out: dict[str, Cell] = {}
    server = HttpFloor(answer).start()
    try:
        _cells(server, "/predict", "tiny", plan, out, "tiny")
    finally:
        server.stop()
    return out


def import_torch_s(python: Path, repeats: int) -> dict[str, Any]:
    """The cold-start floor: ``python -c "import torch"`` in that venv, wall seconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([str(python), "-c", "import torch"], check=True, capture_output=True)
        times.append(round(time.perf_counter() - t0, 4))
    return {"runs": times, "s": summary(list(times))}
