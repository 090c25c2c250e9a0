"""Before and after on the same cells, interleaved: a controlled comparison of two source trees.

Two separate benchmark runs minutes apart differ by the machine's drift as much as by the code (on
this VM the in-process floor itself moves 10-15 % between runs). Here the two trees take turns,
``ROUNDS`` times, each serving the tiny and the lighter BERT-sized archives with two workers, so both
see the same machine state; the medians over the rounds are compared. Used by ``request_path.py``.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import psutil
from inputs import make_archive
from model_code import BERT_BODY, TINY_BODY
from servers import OurServer, register, stage
from wrk import run_wrk

CELLS = (  # (label, archive, body, workers, clients)
    ("tiny 2w × 1c", "tiny", TINY_BODY, 2, 1),
    ("tiny 2w × 16c", "tiny", TINY_BODY, 2, 16),
    ("bert_small 2w × 4c", "bert_small", BERT_BODY, 2, 4),
)


def _measure(server: OurServer, name: str, body: bytes, clients: int, seconds: float) -> dict[str, float]:
    url = f"{server.inference_url}/predictions/{name}"
    run_wrk(url, body, clients, 2)  # warm
    assert server.pid is not None
    front = psutil.Process(server.pid)
    workers = front.children(recursive=True)
    before = (sum(front.cpu_times()[:2]), {w.pid: sum(w.cpu_times()[:2]) for w in workers})
    measured = run_wrk(url, body, clients, seconds)
    n = max(1, measured["n"])
    worker_cpu = sum(sum(w.cpu_times()[:2]) - before[1][w.pid] for w in workers)
    return {
        "rps": measured["rps"],
        "p50_ms": measured["p50_ms"],
        "p99_ms": measured["p99_ms"],
        "front_us": (sum(front.cpu_times()[:2]) - before[0]) / n * 1e6,
        "worker_us": worker_cpu / n * 1e6,
    }


def _one_round(source: Path, seconds: float) -> dict[str, dict[str, float]]:
    os.environ["BENCH_OURS_SOURCE"] = str(source)
    server = OurServer({}).start()
    out = {}
    try:
        for name in sorted({c[1] for c in CELLS}):
            status, text = register(server, stage(server, make_archive(name)), name, 2)
            if status != 200:
                raise RuntimeError(f"registering {name} on {source} failed: {status} {text[:300]!r}")
        for label, name, body, _workers, clients in CELLS:
            out[label] = _measure(server, name, body, clients, seconds)
            print(f"  {source}: {label} {out[label]['rps']:.0f} req/s", flush=True)
    finally:
        server.stop()
    return out


def compare(trees: dict[str, Path], rounds: int, seconds: float) -> dict[str, Any]:
    """Each tree's medians per cell, the trees taking turns (the first goes first in even rounds)."""
    runs: dict[str, list[dict[str, dict[str, float]]]] = {label: [] for label in trees}
    order = list(trees)
    for i in range(rounds):
        for label in order if i % 2 == 0 else order[::-1]:
            runs[label].append(_one_round(trees[label], seconds))
    return {
        label: {
            cell: {k: round(statistics.median(r[cell][k] for r in tree_runs), 3) for k in tree_runs[0][cell]}
            for cell in tree_runs[0]
        }
        for label, tree_runs in runs.items()
    }


_COLUMN = "req/s · p50 / p99 ms · front / worker µs"


def render(result: dict[str, Any]) -> list[str]:
    labels = list(result)
    lines = [
        "## Interleaved before / after (the trees take turns on the same cells; medians of the rounds)",
        "",
        "| cell | "
        + " | ".join(f"{t}: req/s · p50 / p99 ms · front / worker µs" for t in labels)
        + " | req/s after ÷ before |",
        "|---|" + "---|" * (len(labels) + 1),
    ]
    for cell in result[labels[0]]:
        parts = []
        for t in labels:
            c = result[t][cell]
            parts.append(
                f"{c['rps']:.0f} · {c['p50_ms']:.2f} / {c['p99_ms']:.2f} · {c['front_us']:.0f} / {c['worker_us']:.0f}"
            )
        ratio = result[labels[-1]][cell]["rps"] / result[labels[0]][cell]["rps"]
        lines.append(f"| {cell} | " + " | ".join(parts) + f" | {ratio:.2f}× |")
    return [*lines, ""]
