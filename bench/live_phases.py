"""The live benchmark's measurements.

- ``ts_dev_loop``: TorchServe's path from an edited handler file to the new answer served:
  torch-model-archiver (the reference's own CLI, the same flags), unregister, register (synchronous,
  one worker), then the first answer that carries the edit.
- ``our_dev_loop``: ours, as a notebook user does it: ``%%handler NAME --serve MODEL`` in a real
  IPython shell (compile, check, save, swap), then the first answer that carries the edit.
- ``reload_under_load``: 4 clients sending all the time while the handler is reloaded N times;
  every non-200 is kept, and latency during reloads is compared with steady state.
- ``timing_overhead``: tiny-model throughput with per-stage timings on and off, interleaved.
"""

from __future__ import annotations

import http.client
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from live_code import handler_code, has_mark
from loadgen import call, percentile, run_load
from model_code import BERT_BODY, TINY_BODY
from servers import OurServer, RefServer, register, stage, unregister

BODIES = {"tiny": TINY_BODY, "bert": BERT_BODY}


def _first_marked(url: str, body: bytes, mark: str, timeout: float = 300.0) -> tuple[float, int]:
    """Poll until an answer carries ``mark``: (perf_counter then, answers without it before)."""
    deadline = time.monotonic() + timeout
    stale = 0
    while time.monotonic() < deadline:
        try:
            status, answer = call("POST", url, body, timeout=timeout)
        except (OSError, http.client.HTTPException):
            status, answer = 0, b""
        if status == 200 and has_mark(answer, mark):
            return time.perf_counter(), stale
        stale += 1
        time.sleep(0.005)
    raise RuntimeError(f"no answer with mark {mark!r} within {timeout} s")


def _archiver_args(which: str, folder: Path, handler: Path, export: Path) -> list[str]:
    files = (
        ["--model-file", str(folder / "tiny_model.py"), "--serialized-file", str(folder / "tiny_state.pth")]
        if which == "tiny"
        else ["--extra-files", str(folder / "bert")]
    )
    return ["--model-name", which, "--version", "1.0", "--handler", str(handler), *files,
            "--export-path", str(export), "--force"]  # fmt: skip


def ts_dev_loop(ref_venv: Path, which: str, folder: Path, edits: int, overlay: Path | None) -> dict[str, Any]:
    server = RefServer(ref_venv, {}, overlay)
    handler = folder / f"live_{which}_handler.py"
    runs: list[dict[str, Any]] = []
    try:
        server.start()
        server.store.mkdir(parents=True, exist_ok=True)
        tool = str(ref_venv / "bin" / "torch-model-archiver")
        archiver = [tool, *_archiver_args(which, folder, handler, server.store)]
        handler.write_text(handler_code(which, "ts0"))
        subprocess.run(archiver, check=True, capture_output=True)
        assert register(server, f"{which}.mar", which, 1)[0] == 200
        url = f"{server.inference_url}/predictions/{which}"
        _first_marked(url, BODIES[which], "ts0")
        for i in range(1, edits + 1):
            mark = f"ts{i}"
            t0 = time.perf_counter()
            handler.write_text(handler_code(which, mark))
            subprocess.run(archiver, check=True, capture_output=True)
            t_built = time.perf_counter()
            assert unregister(server, which) == 200
            assert register(server, f"{which}.mar", which, 1)[0] == 200
            t_registered = time.perf_counter()
            t_answer, stale = _first_marked(url, BODIES[which], mark)
            runs.append(
                {
                    "edit_to_answer_s": round(t_answer - t0, 4),
                    "archiver_s": round(t_built - t0, 4),
                    "unregister_register_s": round(t_registered - t_built, 4),
                    "stale_answers": stale,
                }
            )
    finally:
        server.stop()
    return {"runs": runs}


def our_dev_loop(which: str, mar: Path, edits: int, deep_every: int = 0) -> dict[str, Any]:
    """Edits through a real IPython shell; every ``deep_every``-th edit also changes initialize."""
    import tempfile

    from IPython.core.interactiveshell import InteractiveShell

    home = Path.cwd()
    work = Path(tempfile.mkdtemp(prefix="tsb-live-"))
    ip = InteractiveShell.instance()
    runs: list[dict[str, Any]] = []
    try:
        import os

        os.chdir(work)
        ip.run_line_magic("load_ext", "ts_notebook")
        status = ip.run_line_magic("ts_serve", f"start --no-token --model-store {work}")
        ip.run_line_magic("ts_serve", f"register {mar} --workers 1")
        url = f"{status.inference_address}/predictions/{which}"
        cell = f"{which}_handler --serve {which}"
        ip.run_cell_magic("handler", cell, handler_code(which, "ours0"))
        _first_marked(url, BODIES[which], "ours0")
        for i in range(1, edits + 1):
            mark, deep = f"ours{i}", bool(deep_every and i % deep_every == 0)
            t0 = time.perf_counter()
            live = ip.run_cell_magic("handler", cell, handler_code(which, mark, mark if deep else "0"))
            t_swapped = time.perf_counter()
            t_answer, stale = _first_marked(url, BODIES[which], mark)
            runs.append({"edit_to_answer_s": round(t_answer - t0, 4), "cell_s": round(t_swapped - t0, 4),
                         "mode": live.report.mode, "deep": deep, "stale_answers": stale})  # fmt: skip
    finally:
        ip.run_line_magic("unload_ext", "ts_notebook")
        os.chdir(home)
    return {"runs": runs}


class Clients:
    """``n`` keep-alive clients sending the tiny request all the time; every answer kept with its time."""

    def __init__(self, url: str, n: int, seconds: float, total: int | None = None) -> None:
        self.url, self.n, self.deadline = url, n, time.monotonic() + seconds
        self.total = total  # stop after this many requests in all (None: only the time bounds them)
        self.samples: list[tuple[float, float, int]] = []  # (sent at, latency s, status)
        self.errors: list[bytes] = []  # bodies of the non-200 answers
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def _run(self) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            if self.total is not None and len(self.samples) >= self.total:
                break
            t0 = time.perf_counter()
            try:
                conn.request("POST", parts.path, TINY_BODY, {"Content-Type": "application/json"})
                reply = conn.getresponse()
                body = reply.read()
                status = reply.status
                if status != 200:
                    self.errors.append(body[:300])
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            self.samples.append((t0, time.perf_counter() - t0, status))
        conn.close()

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(70)


def latency_summary(samples: list[tuple[float, float, int]]) -> dict[str, float]:
    ordered = sorted(s[1] * 1000 for s in samples)
    return {"n": len(ordered), "p50_ms": round(percentile(ordered, 50), 3), "p99_ms": round(percentile(ordered, 99), 3)}


def reload_under_load(mar: Path, reloads: int, workers: int, steady_s: float) -> dict[str, Any]:
    """``reloads`` handler reloads (alternately in place and blue/green) under 4 clients."""
    from ts_notebook.client import Client

    server = OurServer({"default_workers_per_model": str(workers)})
    out: dict[str, Any] = {"reloads": []}
    try:
        server.start()
        store_name = stage(server, mar)
        client = Client(server.inference_url, server.management_url)
        client.register(store_name, initial_workers=workers)
        client.reload_handler("tiny", handler_code("tiny", "r0"), "tiny_handler.py")
        with Clients(f"{server.inference_url}/predictions/tiny", 4, steady_s * 2 + reloads * 10) as clients:
            time.sleep(steady_s)  # steady state first: the load generator needs a window to measure
            t_reloads = time.perf_counter()
            for i in range(1, reloads + 1):
                t0 = time.perf_counter()
                code = handler_code("tiny", f"r{i}", init=str(i // 2))  # initialize changes every other time
                report = client.reload_handler("tiny", code, "tiny_handler.py")
                out["reloads"].append({"mode": report.mode, "seconds": round(time.perf_counter() - t0, 4)})
            t_done = time.perf_counter()
            time.sleep(steady_s)
        samples = clients.samples
        out["failed"] = [{"status": s, "at_s": round(t - t_reloads, 3)} for t, _, s in samples if s != 200]
        out["requests"] = len(samples)
        out["steady"] = latency_summary([x for x in samples if x[0] < t_reloads])
        out["during_reloads"] = latency_summary([x for x in samples if t_reloads <= x[0] <= t_done])
        out["after"] = latency_summary([x for x in samples if x[0] > t_done])
        out["reloads_wall_s"] = round(t_done - t_reloads, 3)
    finally:
        server.stop()
    return out


def wrapper_cost(calls: int = 200_000) -> dict[str, float]:
    """What the stage-timing wrapper adds to one stage call, in-process (the worker's own wrapper)."""
    import timeit

    from ts_notebook.backend.worker import _timed

    stages: dict[str, float] = {}

    def stage(x: int) -> int:
        return x

    timed = _timed("preprocess", stage, stages)
    plain = min(timeit.repeat(lambda: stage(1), number=calls, repeat=5)) / calls
    wrapped = min(timeit.repeat(lambda: timed(1), number=calls, repeat=5)) / calls
    return {"plain_us": round(plain * 1e6, 4), "timed_us": round(wrapped * 1e6, 4),
            "added_us_per_stage": round((wrapped - plain) * 1e6, 4)}  # fmt: skip


def timing_overhead(mar: Path, repeats: int, n: int) -> dict[str, Any]:
    """Tiny-model req/s with stage timings on and off, the two backends measured in turn, 4 clients."""
    runs: dict[str, list[float]] = {"on": [], "off": []}
    for i in range(repeats):
        for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
            server = OurServer({"ts_notebook_stage_timings": "true" if mode == "on" else "false"})
            try:
                server.start()
                name = stage(server, mar)
                register(server, name, "tiny", 2)
                url = f"{server.inference_url}/predictions/tiny"
                run_load(url, TINY_BODY, 4, 400, 30)  # warm-up
                runs[mode].append(run_load(url, TINY_BODY, 4, n, 60)["rps"])
            finally:
                server.stop()
    return runs
