"""Serving benchmark: ts_notebook's embedded backend against real TorchServe 0.12.0, in one run.

Both servers serve the very same archives, built once with ``ts_notebook.archive.build_archive``:
a tiny 4→8→3 MLP (eager state_dict) and a BERT-sized classifier (``BertForSequenceClassification``
from a small ``BertConfig``, random weights, a tokenizer built in code: nothing is downloaded), each
with one lean TorchServe-style handler. The servers run one after the other, never together, each
isolated (own ports, root folder, TMPDIR), and are stopped by pid. Measured:

- cold start: process launch → first HTTP 200 from ``/predictions`` (tiny model as a start-up model);
- register: ``POST /models?...&synchronous=true`` → first HTTP 200 from the new model;
- the tiny model's throughput, p50 and p99 with 1, 4 and 16 keep-alive clients, on 1 and 2 workers;
- the BERT-sized model with 2 workers and 4 clients;
- peak RSS of the front end (the JVM, or our backend process) and of the workers, sampled every 100 ms.

Results go to ``bench/results/serving.json`` and ``bench/results/serving.md``; the table is also
printed. See ``bench/README.md``.

Environment:
    TS_REF_VENV   venv holding torchserve 0.12.0 and pyyaml (required; ``make compat-venv``)
    REPEATS       repeats of every load run (default 3)
    COLD_REPEATS  repeats of the cold start and of the registration (default 5: one-shot timings are noisier)
    N             requests per tiny-model load run (default 2000)
    N_BERT        requests per BERT load run (default 400)
    WINDOW        seconds: a load run also stops after this long (default 10)
    WARMUP        untimed requests before each load setting (default 50; BERT: a fifth of it, at least 8)
    CONCURRENCY   tiny-model client counts (default "1,4,16")
    WORKERS       tiny-model worker counts (default "1,2")
    COLD_WORKERS  workers of the start-up model in the cold-start test (default 1)
    SKIP_BERT     1: leave the BERT-sized model out
    ORDER         which server's session runs first: "ts,ours" (default) or "ours,ts"
    WAIT_IDLE     e.g. 0.6: first wait until the 1-min load average is below it (at most WAIT_MAX s, default 900)
    MAX_SECONDS   the run gives up (servers stopped, partial results kept) after this long (default 1800)

The exit status is 0 whether the targets are met or not (this is a report); 2 when the benchmark
cannot run at all (no reference venv).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import common
from inputs import bert_info, make_archive
from machine import load_average, serving_machine, source_state, wait_idle
from model_code import BERT_CONFIG
from overlay import make_overlay
from phases import bert_session, cold_start, tiny_session
from report import TARGETS, build_rows, render_markdown, render_table, verdict_line
from servers import OurServer, RefServer, Server
from settings import Budget, OutOfTime, Settings


def reference_venv() -> Path | None:
    venv = common.reference_venv("torchserve", "torchserve 0.12.0")
    if venv is not None and shutil.which("java") is None:
        print("TorchServe needs Java (17) on PATH.")
        return None
    return venv


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so every `finally` stops its server."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


Maker = Callable[[dict[str, str], list[str]], Server]


def run_all(ref_venv: Path, s: Settings, result: dict[str, Any]) -> None:
    budget = Budget(s.max_seconds)
    tiny = make_archive("tiny")
    bert = None if s.skip_bert else make_archive("bert")
    overlay, linked = make_overlay(ref_venv) if bert is not None else (None, [])
    result["ts_overlay"] = linked
    if bert is not None:
        result["config"]["bert"] = {**BERT_CONFIG, **bert_info(), "mar_bytes": bert.stat().st_size}
    result["config"]["tiny_mar_bytes"] = tiny.stat().st_size

    def make(kind: str, with_overlay: bool) -> Maker:
        if kind == "ts":
            return lambda config, models: RefServer(ref_venv, config, overlay if with_overlay else None)
        return lambda config, models: OurServer(config, models)

    run_cold_starts(make, tiny, s, budget, result)
    # Then, model by model, one session per server (a fresh server with no models), one after the other.
    # The reference venv runs as installed, except that the BERT session puts transformers on its path.
    phases: list[tuple[str, Callable[[Server], dict[str, Any]]]] = [
        ("tiny", lambda server: tiny_session(server, tiny, s, budget))
    ]
    if bert is not None:
        phases.append(("bert", lambda server: bert_session(server, bert, s, budget)))
    for phase, body in phases:
        for kind in s.order:
            budget.check(f"{kind} {phase} session")
            server = make(kind, phase == "bert")({}, [])
            try:
                server.start()
                out = body(server)
            finally:
                server.stop()
            merge_session(result["servers"], kind, phase, out)
            result["load_average"][f"after_{kind}_{phase}"] = load_average()
            common.write_json("serving.json", result)


def run_cold_starts(
    make: Callable[[str, bool], Maker], tiny: Path, s: Settings, budget: Budget, result: dict[str, Any]
) -> None:
    """Cold starts, alternating the servers (and who goes first) so that both see the same machine state."""
    result["cold_start"] = {"ts": [], "ours": []}
    for i in range(s.cold_repeats):
        for kind in s.order if i % 2 == 0 else s.order[::-1]:
            budget.check("cold start")
            run = cold_start(kind, make(kind, False), tiny, s.cold_workers)
            result["cold_start"][kind].append(run)
            print(f"  {kind:<4} cold start #{i + 1}: {json.dumps({k: v for k, v in run.items() if k != 'rss_peak'})}",
                  flush=True)  # fmt: skip
    result["load_average"]["after_cold_start"] = load_average()
    common.write_json("serving.json", result)


def merge_session(servers: dict[str, Any], kind: str, phase: str, out: dict[str, Any]) -> None:
    """One session's results into the server's entry: peaks, footprints and errors add up across sessions."""
    merged = servers.setdefault(kind, {"rss_peak": {}, "footprint": {}, "errors": [], "answers": {}})
    merged["rss_peak"] |= out.pop("rss_peak")
    merged["footprint"] |= out.pop("footprint")
    merged["errors"] += out.pop("errors")
    merged["answers"][phase] = out.pop("answer", None)
    merged |= out


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    ref_venv = reference_venv()
    if ref_venv is None:
        return 2
    s = Settings.from_env()
    waited = wait_idle()
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": serving_machine(ref_venv),
        "source": source_state(),
        "config": dict(vars(s)),
        "targets": {k: f"{op} {v}" for k, (op, v) in TARGETS.items()},
        "wait_idle": waited,
        "load_average": {"start": load_average()},
        "cold_start": {},
        "servers": {},
        "errors": [],
    }
    started = time.monotonic()
    with sigterm_as_interrupt():
        try:
            run_all(ref_venv, s, result)
        except (OutOfTime, RuntimeError, AssertionError) as exc:
            result["errors"].append(f"{type(exc).__name__}: {exc}")
            print(f"error: {exc}", flush=True)
        except KeyboardInterrupt as exc:  # every server was stopped on the way out; keep the raw runs only
            result["errors"].append(f"interrupted: {exc}")
            common.write_json("serving.json", result)
            print("interrupted: partial results in serving.json, serving.md left as it was", flush=True)
            return 130
    result["load_average"]["end"] = load_average()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    for kind, sess in result["servers"].items():
        result["errors"] += [f"{kind}: {e}" for e in sess.get("errors", [])]
    common.write_json("serving.json", result)
    rows = build_rows(result)
    (common.RESULTS / "serving.md").write_text(render_markdown(result, rows))
    print()
    print(render_table(rows))
    print()
    print(verdict_line(rows))
    print(f"elapsed {result['elapsed_s']} s; load average {result['load_average']['start']} -> "
          f"{result['load_average']['end']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
