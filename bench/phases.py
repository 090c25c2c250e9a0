"""The serving benchmark's measurements, phase by phase, on one server at a time: a cold start, a session
with the tiny model (registrations, then its load matrix) and a session with the BERT-sized model.

Each returns a plain dict that goes into ``serving.json`` as it is; ``report.py`` reads it back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import summary
from loadgen import call, run_load
from machine import load_average
from model_code import BERT_BODY, TINY_BODY
from sampling import CpuAccount, MemorySampler, footprint
from servers import Server, first_prediction, register, stage, unregister
from settings import BERT_CLIENTS, BERT_WORKERS, Budget, Settings


def cold_start(kind: str, make: Callable[[dict[str, str], list[str]], Server], tiny: Path, workers: int) -> dict:
    """Launch → first HTTP 200 from /predictions/tiny, the tiny model loaded as a start-up model."""
    config = {"default_workers_per_model": str(workers)}
    startup = ["tiny=tiny.mar"]
    if kind == "ts":
        config["load_models"] = ",".join(startup)  # what `torchserve --models` sets
    server = make(config, startup)
    stage(server, tiny)
    run: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        server.start()  # returns once /ping answers (TorchServe) or backend.json names the backend (ours)
        run["serving_s"] = round(time.perf_counter() - t0, 4)
        sampler = MemorySampler(server)
        with sampler:
            t_pred, attempts = first_prediction(server, "tiny", TINY_BODY)
            run["first_prediction_s"] = round(t_pred - t0, 4) if t_pred else None
            run["attempts"] = attempts
            time.sleep(0.5)  # a few more memory samples with the model loaded
        run["rss_peak"] = sampler.peaks.get("start", {})
        run["load_average"] = load_average()
    finally:
        t1 = time.perf_counter()
        server.stop()
        run["stop_s"] = round(time.perf_counter() - t1, 3)
    return run


def load_setting(
    server: Server, name: str, body: bytes, clients: int, s: Settings, n: int, warmup: int, budget: Budget, label: str
) -> dict[str, Any]:
    """Warm-up (untimed), then REPEATS bounded load runs for one (model, workers, clients) setting."""
    url = f"{server.inference_url}/predictions/{name}"
    run_load(url, body, clients, max(warmup, clients), s.window)
    runs = []
    for i in range(s.repeats):
        budget.check(f"{label} run {i + 1}")
        with CpuAccount(server) as cpu:
            res = run_load(url, body, clients, n, s.window)
        res["cpu"] = cpu.as_dict()
        res["load_average"] = load_average()
        runs.append(res)
        print(
            f"  {server.kind:<4} {label:<14} #{i + 1}  {res['rps'] or 0:8.1f} req/s  "
            f"p50 {res.get('p50_ms', 0):7.2f} ms  p99 {res.get('p99_ms', 0):7.2f} ms  "
            f"n={res['n']} ok={res['ok']} err={res['errors']}  "
            f"foreign CPU {res['cpu']['foreign_cpu_s']:.1f} s  steal {res['cpu']['steal_s']:.1f} s",
            flush=True,
        )
    return {"runs": runs, **{k: summary([r.get(k) for r in runs]) for k in ("rps", "p50_ms", "p99_ms")}}


def tiny_session(server: Server, tiny: Path, s: Settings, budget: Budget) -> dict[str, Any]:
    """A running server with no models: timed registrations, then the tiny model's load matrix."""
    out: dict[str, Any] = {"register": [], "tiny": {}, "footprint": {}, "errors": []}
    url = stage(server, tiny)
    with MemorySampler(server) as sampler:
        sampler.phase = "register"
        for i in range(s.cold_repeats):
            budget.check("register")
            run = _timed_register(server, url, f"reg{i}")
            out["register"].append(run)
            print(f"  {server.kind:<4} register #{i + 1}: {json.dumps(run)}", flush=True)
            time.sleep(0.3)
        sampler.phase = "tiny"
        for workers in s.workers:
            _tiny_matrix(server, url, workers, s, budget, out)
    out["rss_peak"] = sampler.peaks
    return out


def _timed_register(server: Server, url: str, name: str) -> dict[str, Any]:
    """Register with 1 worker (sync) → first HTTP 200 of the new model; then unregister it."""
    t0 = time.perf_counter()
    status, text = register(server, url, name, 1)
    t_call = time.perf_counter() - t0
    t_pred, attempts = first_prediction(server, name, TINY_BODY, 60) if status == 200 else (None, 0)
    run = {
        "register_status": status,
        "register_call_s": round(t_call, 4),
        "first_prediction_s": round(t_pred - t0, 4) if t_pred else None,
        "attempts": attempts,
        "unregister_status": unregister(server, name),
    }
    if status != 200:
        run["register_body"] = text.decode(errors="replace")[:500]
    return run


def _tiny_matrix(server: Server, url: str, workers: int, s: Settings, budget: Budget, out: dict[str, Any]) -> None:
    """The tiny model on ``workers`` workers, every client count in turn; results go into ``out``."""
    status, text = register(server, url, "tiny", workers)
    if status != 200:
        out["errors"].append(f"tiny with {workers} workers: HTTP {status} {text[:300]!r}\n{server.log_tail()}")
        return
    _, answer = call("POST", f"{server.inference_url}/predictions/tiny", TINY_BODY)
    out.setdefault("answer", json.loads(answer))
    for clients in s.concurrency:
        out["tiny"][f"{workers}w_{clients}c"] = load_setting(
            server, "tiny", TINY_BODY, clients, s, s.n, s.warmup, budget, f"tiny {workers}w {clients}c"
        )
    out["footprint"][f"tiny_{workers}w"] = footprint(server)
    unregister(server, "tiny")


def bert_session(server: Server, bert: Path, s: Settings, budget: Budget) -> dict[str, Any]:
    """A running server with no models: the BERT-sized model on 2 workers, 4 clients."""
    out: dict[str, Any] = {"bert": None, "footprint": {}, "errors": []}
    url = stage(server, bert)
    with MemorySampler(server) as sampler:
        sampler.phase = "bert"
        t0 = time.perf_counter()
        status, text = register(server, url, "bert", BERT_WORKERS)
        out["bert_register_s"] = round(time.perf_counter() - t0, 3)
        if status != 200:
            out["errors"].append(f"bert: HTTP {status} {text[:500]!r}\n{server.log_tail()}")
        else:
            _, answer = call("POST", f"{server.inference_url}/predictions/bert", BERT_BODY)
            out["answer"] = json.loads(answer)
            warmup = max(8, s.warmup // 5)
            label = f"bert {BERT_WORKERS}w {BERT_CLIENTS}c"
            out["bert"] = load_setting(server, "bert", BERT_BODY, BERT_CLIENTS, s, s.n_bert, warmup, budget, label)
            out["footprint"]["bert"] = footprint(server)
            unregister(server, "bert")
    out["rss_peak"] = sampler.peaks
    return out
