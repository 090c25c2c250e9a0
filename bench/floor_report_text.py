"""The prose around the floor benchmark's tables: machine, settings, cold start, PSS, stage timings,
the bare HTTP round trip, method. ``floor_report.py`` builds the tables and verdicts."""

from __future__ import annotations

from typing import Any

import common
from report import _source_line


def _machine(result: dict[str, Any]) -> str:
    m = result["machine"]
    return (
        f"{result['date']} · {m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gb']} GiB · Python {m['python']} · "
        f"torch {m['torch']} · transformers {m['transformers']} · aiohttp {m['aiohttp']} · uvloop {m.get('uvloop')} · "
        f"TorchServe {m['torchserve']} · LitServe {m.get('litserve')} · {m['java']}"
    )


def _cold(result: dict[str, Any]) -> str:
    cold = result.get("cold_start")
    if not cold:
        return "Cold start: not measured."
    rows = ["| | median [min–max] s |", "|---|---|"]
    for label, key in (("ours: launch → first prediction", "ours"), ("TorchServe: launch → first prediction", "ts")):
        s = common.summary([r.get("first_prediction_s") for r in cold.get(key, [])])
        rows.append(f"| {label} | {_s(s)} |")
    rows.append(f'| `python -c "import torch"`, project venv | {_s(cold["import_torch_ours"]["s"])} |')
    rows.append(f'| `python -c "import torch"`, TorchServe\'s venv | {_s(cold["import_torch_ts"]["s"])} |')
    return "\n".join(rows)


def _s(s: dict[str, float] | None) -> str:
    return f"{s['median']:.2f} [{s['min']:.2f}–{s['max']:.2f}]" if s else "–"


def _pss(result: dict[str, Any]) -> str:
    rows = ["| server | cell | front end | per worker | zygote | other | total |", "|---|---|---|---|---|---|---|"]
    for kind, models in result["servers"].items():
        for sess in models.values():
            for key, fp in sess.get("footprint", {}).items():
                pss, n = fp["pss_mb"], max(1, len(fp.get("worker_threads", [])))
                per_worker = pss.get("worker", 0.0) / n if "worker" in pss else None
                cells = [pss.get("frontend"), per_worker, pss.get("zygote"), pss.get("other")]
                text = " | ".join("–" if c is None else f"{c:.0f}" for c in cells)
                rows.append(f"| {kind} | {key} | {text} | {fp['pss_total_mb']:.0f} |")
    return "\n".join(rows)


def _timings(result: dict[str, Any]) -> str:
    """Our backend's own record of where a request's time went (p50, ms), per cell's last requests."""
    names = ("queue", "transport", "preprocess", "inference", "postprocess", "latency")
    rows = ["| cell | " + " | ".join(names) + " |", "|---" * 7 + "|"]
    for sess in result["servers"].get("ours", {}).values():
        for key, cell in sess.get("cells", {}).items():
            if "timings" not in cell:
                continue
            cells = [cell["timings"].get(s, {}).get("p50") for s in names]
            rows.append(f"| {key} | " + " | ".join("–" if c is None else f"{c:.3f}" for c in cells) + " |")
    return "\n".join(rows)


def _http_floor(result: dict[str, Any]) -> str:
    cells = result.get("http_floor") or {}
    parts = []
    for key, cell in cells.items():
        if cell.get("rps"):
            parts.append(f"{key}: {cell['rps']['median']:.0f} req/s, p50 {cell['p50_ms']['median']:.3f} ms")
    return "; ".join(parts) or "not measured"


def _settings(result: dict[str, Any]) -> str:
    plan = result["plan"]
    return (
        f"Load average at start {result['load_average']['start']}, at end {result['load_average'].get('end')}. "
        f"Run took {result.get('elapsed_s')} s. Each server alone on the machine; every cell warm "
        f"(ours {plan['warm_ours_s']:g} s, TorchServe {plan['warm_ts_s']:g} s of load first), then "
        f"REPEATS={plan['repeats']} rounds of {plan['tiny_seconds']:g} s (tiny) / {plan['bert_seconds']:g} s (BERT). "
        "Cells: req/s median [min–max] · p50 / p99 ms (medians). Settings left at each server's defaults except "
        "what the row names: TorchServe tuned = OMP_NUM_THREADS=MKL_NUM_THREADS=1 for its workers; LitServe gets one "
        "torch thread per worker too; batch 4 = batch size 4 with a 10 ms window on every server."
    )


def render(result: dict[str, Any], parts: dict[str, str]) -> str:
    lines = [
        "# Serving at the machine's floor: ours, TorchServe 0.12.0 (default, tuned), LitServe, in-process",
        "",
        _machine(result),
        "",
        _source_line(result.get("source") or {}),
        "",
        _settings(result),
        "",
        "## Targets",
        "",
        parts["verdicts"],
        "",
        "## Tiny model, wrk",
        "",
        parts["tiny_wrk"],
        "",
        f"Bare HTTP round trip (aiohttp answering a fixed body, no model, same wrk): {_http_floor(result)}.",
        "",
        "## BERT-sized model, wrk",
        "",
        parts["bert_wrk"],
        "",
        "## The Python client (`loadgen.py`: one thread and keep-alive connection per client)",
        "",
        parts["tiny_py"],
        "",
        parts["bert_py"],
        "",
        "## Where a request's CPU goes (µs per request, by process role, median over rounds)",
        "",
        parts["cpu"],
        "",
        "Our backend's own stage record (p50 ms over the last requests of each cell, `/ts_notebook/timings`):",
        "",
        _timings(result),
        "",
        "## Cold start (tiny model, 1 worker)",
        "",
        _cold(result),
        "",
        "## PSS after each cell's load (MB)",
        "",
        _pss(result),
        "",
        *([f"Note: {n}" for n in result.get("notes", [])]),
        *([f"Error: {e}" for e in result.get("errors", [])]),
        "",
        "In-process floor: the same handler (our runtime, TorchServe's request shaping) called in a loop by W "
        "processes with one torch thread each, batch B copies of the request per call; its req/s is what W cores "
        "do with no server at all. Raw runs: `floor.json`. Reproduce: `make bench-floor`.",
    ]
    return "\n".join(lines) + "\n"
