"""The stages of ``request_path.py`` (which function belongs where) and its Markdown report."""

from __future__ import annotations

from typing import Any

import ab_cells

STAGES = (
    "HTTP stack (aiohttp: parse, route, write)",
    "shaping the row and headers",
    "worker socket (pickle, frames)",
    "dispatch, queue and wake-ups",
    "the served request's record (ring, events)",
    "metrics",
    "the answer (response, error body)",
    "other",
)

# (path fragment, function names or None for every function of that file) -> stage
_OURS = "ts_notebook/"
_RULES: list[tuple[str, tuple[str, ...] | None, str]] = [
    (_OURS + "backend/inference_api.py", ("_record", "keepable"), STAGES[4]),
    (_OURS + "backend/inference_api.py", ("_shape", "_shape_legacy", "<dictcomp>"), STAGES[1]),
    (_OURS + "backend/inference_api.py", ("_success", "_answer", "write"), STAGES[6]),
    (_OURS + "backend/inference_api.py", None, STAGES[3]),
    (_OURS + "handler/payload.py", None, STAGES[1]),
    ("/json/", None, STAGES[1]),
    (_OURS + "records.py", None, STAGES[4]),
    (_OURS + "backend/replay.py", None, STAGES[4]),
    (_OURS + "backend/events.py", None, STAGES[4]),
    (_OURS + "backend/metrics.py", None, STAGES[5]),
    (_OURS + "backend/link.py", None, STAGES[2]),
    (_OURS + "backend/protocol.py", None, STAGES[2]),
    (_OURS + "backend/pool.py", None, STAGES[2]),
    (_OURS + "backend/dispatcher.py", None, STAGES[3]),
    (_OURS + "backend/jobs.py", None, STAGES[3]),
    (_OURS + "backend/handle.py", None, STAGES[3]),
    (_OURS + "backend/httpkit.py", ("json_response", "error_response", "_prepare_headers"), STAGES[6]),
    (_OURS + "backend/httpkit.py", None, STAGES[0]),
    ("/aiohttp/", None, STAGES[0]),
    ("/multidict/", None, STAGES[0]),
    ("/yarl/", None, STAGES[0]),
    ("/asyncio/", None, STAGES[3]),
    ("uvloop", None, STAGES[3]),
]


def stage_of(path: str, name: str) -> str:
    """The stage a profiled function's own time counts in (built-ins by what they are)."""
    if path == "~":  # a built-in: cProfile names it by its method
        if "pickle" in name:
            return STAGES[2]
        if "Future" in name or "Task" in name or "get_running_loop" in name:
            return STAGES[3]
        return STAGES[7]
    for fragment, names, stage in _RULES:
        if fragment in path and (names is None or name in names):
            return stage
    return STAGES[7]


def _cpu_row(label: str, cpu: dict[str, Any]) -> str:
    return f"| {label} | {cpu['front_us']:.0f} | {cpu['worker_us']:.0f} | {cpu['p50_ms']:.3f} | {cpu['rps']:.0f} |"


def render(results: dict[str, Any]) -> str:
    trees = results["trees"]
    lines = [
        "# The request path, stage by stage",
        "",
        f"{results['date']} · tiny model, 1 worker, wrk with 1 keep-alive client · `bench/request_path.py`",
        "",
        "## CPU per request (µs, from /proc, median of the rounds)",
        "",
        "| run | front end | worker(s) | p50 ms | req/s |",
        "|---|---|---|---|---|",
    ]
    lines += [_cpu_row(f"{label} (`{tree['source']}`)", tree["cpu"]) for label, tree in trees.items()]
    lines += [_cpu_row(f"after, {variant}", cpu) for variant, cpu in results["variants"].items()]
    labels = [label for label, tree in trees.items() if tree["stages"] is not None]
    lines += [
        "",
        "## Front end by stage (µs per request under cProfile, which roughly doubles each figure)",
        "",
        "| stage | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for stage in STAGES:
        lines.append(f"| {stage} | " + " | ".join(f"{trees[t]['stages']['us'][stage]:.1f}" for t in labels) + " |")
    total = " | ".join(f"{sum(trees[t]['stages']['us'].values()):.1f}" for t in labels)
    lines += [f"| **total** | {total} |", ""]
    if results.get("interleaved"):
        lines += ab_cells.render(results["interleaved"])
    counted = [(label, tree["instructions"]) for label, tree in trees.items() if tree.get("instructions")]
    if counted:
        lines += ["## Front-end instructions per request (valgrind callgrind: counted, not timed)", ""]
        lines += [f"- {label}: {count:,}" for label, count in counted]
        lines.append("")
    return "\n".join(lines)
