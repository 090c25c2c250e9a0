"""The floor benchmark's report: the prose around the tables (machine, settings, cold start, PSS, stage
timings, the bare HTTP round trip, method). ``floor_report.py`` builds the tables, ``floor_targets.py``
the verdicts; ``write_report`` writes ``floor.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common
from floor_report import cpu_table, floor_table, matrix
from floor_targets import bert_context, verdict_table, verdicts, worse_table
from report import _source_line

METHOD = (
    "In-process floor: the same handler (our runtime, TorchServe's request shaping) and request, no server: W "
    "processes with one torch thread each (as the served workers get) loop `handle` at the same time, every copy "
    "started at one instant and stopped at one deadline, for the cell's length, REPEATS rounds; a round's floor "
    "is all copies' completed requests over its wall time, so on 2 cores two copies at once are the ceiling, "
    "contention included. Batch B: B copies of the request per call. Raw runs: `floor.json`. Reproduce: "
    "`make bench-floor`."
)


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


def _targets(result: dict[str, Any], parts: dict[str, str]) -> list[str]:
    return [
        "# Serving at the machine's floor: ours, TorchServe 0.12.0 (default, tuned), LitServe, in-process",
        "",
        _machine(result),
        "",
        _source_line(result.get("source") or {}),
        "",
        _settings(result),
        "",
        "## Targets (issue 23)",
        "",
        parts["verdicts"],
        "",
        "The lighter model's criteria on the BERT-sized model too (not targets of issue 23):",
        "",
        parts["bert_context"],
        "",
        "### No cell worse than before",
        "",
        "A cell's req/s is worse when this run's median is below the before run's lowest round; its p50 or p99 "
        "when this run's median is above the before run's highest round (the before run's own spread is the noise "
        "allowed). Runs on different machines compare the machines as much as the code: check the floors.",
        "",
        parts["worse"],
        "",
        "## The in-process floor",
        "",
        parts["floor"],
        "",
    ]


def render(result: dict[str, Any], parts: dict[str, str]) -> str:
    lines = [
        *_targets(result, parts),
        "## Tiny model, wrk",
        "",
        parts["tiny_wrk"] or "Not measured.",
        "",
        f"Bare HTTP round trip (aiohttp answering a fixed body, no model, same wrk): {_http_floor(result)}.",
        "",
        "## BERT-sized model, wrk",
        "",
        parts["bert_wrk"] or "Not measured.",
        "",
        "## Lighter BERT-sized model (half the layers), wrk",
        "",
        parts["bert_small_wrk"] or "Not measured.",
        "",
        "## The Python client (`loadgen.py`: one thread and keep-alive connection per client)",
        "",
        parts["tiny_py"],
        "",
        parts["bert_py"],
        "",
        parts["bert_small_py"],
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
        METHOD,
    ]
    return "\n".join(lines) + "\n"


def write_report(result: dict[str, Any], out_dir: Path) -> str:
    """Writes ``floor.md`` into ``out_dir``; returns its text."""
    text = render(result, {
        "tiny_wrk": matrix(result, "tiny", "wrk"), "bert_wrk": matrix(result, "bert", "wrk"),
        "bert_small_wrk": matrix(result, "bert_small", "wrk"), "tiny_py": matrix(result, "tiny", "python"),
        "bert_py": matrix(result, "bert", "python"), "bert_small_py": matrix(result, "bert_small", "python"),
        "verdicts": verdict_table(verdicts(result)), "bert_context": verdict_table(bert_context(result), count=False),
        "worse": worse_table(result), "floor": floor_table(result), "cpu": cpu_table(result),
    })  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "floor.md").write_text(text)
    return text
