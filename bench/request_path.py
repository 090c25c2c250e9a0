"""Where one served request's front-end time goes, stage by stage, before and after a change.

For each source tree (``BENCH_BEFORE_SOURCE``, a checkout of the commit to compare with, and this
checkout), our backend serves the tiny archive with one worker to wrk's one keep-alive client:

- **CPU per request**, by process (front end, worker) from ``/proc`` over ``ROUNDS`` rounds of
  ``SECONDS`` s, median; for this checkout also with stage timings off
  (``ts_notebook_stage_timings=false``) and with the replay ring at one request per model, so what
  the notebook's observability costs is measured, not assumed;
- **stage by stage**: the same traffic with the front end's event loop under cProfile (CPU clock),
  each function's own time summed into the stage it belongs to (HTTP stack, shaping the row, the
  worker socket, dispatch and wake-ups, the record, metrics, the response). The profiler roughly
  doubles every figure: compare stages and trees with each other, not with the CPU figures;
- **instructions per request** of the front end, counted by valgrind's callgrind (sequential
  requests; the difference between a short and a long run). Counted, not timed, yet not exact: the
  loop's iterations per request follow timing, so repeated runs differ by a few per cent;
- **interleaved before / after** (``ab_cells.py``): with ``BENCH_BEFORE_SOURCE``, the two trees take
  turns ``AB_ROUNDS`` times on the tiny model at 1 and 16 clients and the lighter BERT-sized model at 4
  (2 workers), so drift of the machine between runs cannot pass for a change of the code.

``python bench/request_path.py`` writes ``bench/results/request_path.{md,json}`` (``RESULTS_DIR``
elsewhere). It needs nothing but the project venv and wrk, and takes about fifteen minutes (six
without ``BENCH_BEFORE_SOURCE``).
"""

from __future__ import annotations

import http.client
import json
import os
import pstats
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ab_cells
from inputs import make_archive
from request_path_report import STAGES, render, stage_of
from servers import OurServer, register, stage
from wrk import run_wrk

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps({"input": [1.0, 2.0, 3.0, 4.0]}).encode()
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = float(os.environ.get("SECONDS_PER_ROUND", "4"))
AB_ROUNDS = int(os.environ.get("AB_ROUNDS", "4"))  # alternations of the interleaved before / after cells
VARIANTS = {
    "default": {},
    "stage timings off": {"ts_notebook_stage_timings": "false"},
    "replay ring of 1": {"ts_notebook_replay_count": "1"},
}


def _cpu(pid: int) -> dict[int, float]:
    """CPU seconds of a process and each of its descendants, by pid."""
    out = {}
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        out[proc.pid] = times.user + times.system
    return out


def _serve(
    source: Path, props: dict[str, str], runner: list[str] | None = None, wrapper: list[str] | None = None
) -> tuple[OurServer, str]:
    os.environ["BENCH_OURS_SOURCE"] = str(source)
    server = OurServer(props, runner=runner, wrapper=wrapper).start()
    status, text = register(server, stage(server, make_archive("tiny")), "tiny", 1)
    if status != 200:
        server.stop()
        raise RuntimeError(f"registering tiny failed: {status} {text[:300]!r}")
    return server, f"{server.inference_url}/predictions/tiny"


def cpu_per_request(source: Path, props: dict[str, str]) -> dict[str, Any]:
    """Front-end and worker CPU µs per request, p50 latency and req/s, median over the rounds."""
    server, url = _serve(source, props)
    rounds = []
    try:
        run_wrk(url, BODY, 1, 2)  # warm
        assert server.pid is not None
        for _ in range(ROUNDS):
            before = _cpu(server.pid)
            measured = run_wrk(url, BODY, 1, SECONDS)
            after = _cpu(server.pid)
            n = max(1, measured["n"])
            front = (after[server.pid] - before[server.pid]) / n * 1e6
            others = sum(after[p] - before.get(p, after[p]) for p in after if p != server.pid) / n * 1e6
            rounds.append(
                {"front_us": front, "worker_us": others, "p50_ms": measured["p50_ms"], "rps": measured["rps"]}
            )
    finally:
        server.stop()
    return {key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0]} | {"rounds": rounds}


def stages(source: Path) -> dict[str, Any] | None:
    """Profiled µs per request in each stage of the front end (cProfile's own time, summed)."""
    with tempfile.TemporaryDirectory(prefix="tsb-path-") as tmp:
        out = Path(tmp) / "front.prof"
        runner = [str(Path(__file__).resolve().parent / "request_path_runner.py"), str(out)]
        server, url = _serve(source, {}, runner)
        try:
            assert server.pid is not None
            run_wrk(url, BODY, 1, 2)  # warm
            os.kill(server.pid, signal.SIGUSR1)
            measured = run_wrk(url, BODY, 1, SECONDS)
            os.kill(server.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            server.stop()
        stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    totals = dict.fromkeys(STAGES, 0.0)
    for (path, _line, name), (_cc, _calls, own, _cum, _callers) in stats.items():
        totals[stage_of(path, name)] += own
    if measured["n"] == 0:  # (7496b0c's backend serves nothing under this runner: its stages are not measured)
        return None
    n = measured["n"]
    return {"requests": n, "us": {k: round(v / n * 1e6, 1) for k, v in totals.items()}}


def instructions_per_request(source: Path, few: int = 50, many: int = 250) -> int | None:
    """The front end's instructions per request, counted by valgrind's callgrind: two runs of ``few`` and
    ``many`` sequential requests, the difference over ``many - few`` (start-up cancels out). Counted,
    not timed, so it does not move with whatever else the machine runs. None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    totals = []
    with tempfile.TemporaryDirectory(prefix="tsb-cg-") as tmp:
        for n in (few, many):
            out = Path(tmp) / f"callgrind.{n}"
            wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            server, url = _serve(source, {}, wrapper=wrapper)
            try:
                _sequential(url, n)
            finally:
                server.stop()  # callgrind writes its totals as the backend exits
            line = next(x for x in out.read_text().splitlines() if x.startswith(("totals:", "summary:")))
            totals.append(int(line.split()[1]))
    return (totals[1] - totals[0]) // (many - few)


def _sequential(url: str, n: int) -> None:
    """``n`` POSTs one after the other on one keep-alive connection."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        for _ in range(n):
            conn.request("POST", parts.path, BODY, {"Content-Type": "application/json"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{url} answered {answer.status}")
    finally:
        conn.close()


def main() -> None:
    before = os.environ.get("BENCH_BEFORE_SOURCE")
    trees = ([("before", Path(before))] if before else []) + [("after", ROOT)]
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "trees": {}, "variants": {}}
    for label, source in trees:
        print(f"{label}: {source}", flush=True)
        results["trees"][label] = {
            "source": str(source),
            "cpu": cpu_per_request(source, {}),
            "stages": stages(source),
            "instructions": instructions_per_request(source),
        }
        print(json.dumps(results["trees"][label]["cpu"] | {"rounds": None}), flush=True)
    if before:
        print("interleaved before / after", flush=True)
        trees_by_label = {"before": Path(before), "after": ROOT}
        results["interleaved"] = ab_cells.compare(trees_by_label, AB_ROUNDS, SECONDS)
    for variant, props in VARIANTS.items():
        if variant != "default":
            results["variants"][variant] = cpu_per_request(ROOT, props)
            print(variant, json.dumps(results["variants"][variant] | {"rounds": None}), flush=True)
    folder = Path(os.environ.get("RESULTS_DIR", ROOT / "bench" / "results"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "request_path.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / "request_path.md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
