"""The archive report: the table of build times and sizes (ours against torch-model-archiver), the target's
verdict, CPU and RSS per build, and the markdown of ``archive.md``; pure functions of ``archive.json``."""

from __future__ import annotations

from typing import Any

from builds import MAX_SIZE_RATIO, MAX_TIME_RATIO
from inputs import N_TENSORS, SEED


def _mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:,.1f} MB"


def _span(s: dict[str, float]) -> str:
    return f"{s['median']:.2f} [{s['min']:.2f}–{s['max']:.2f}]"


def _ratio(x: float | None, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}×"


def target_line(default: dict[str, Any]) -> str:
    verdict = "PASS" if default.get("target_pass") else "FAIL"
    return (
        f"TARGET default: {verdict} — time {_ratio(default['time_ratio'], 3)} (≤ {MAX_TIME_RATIO}×), "
        f"size {_ratio(default['size_ratio'], 4)} (≤ {MAX_SIZE_RATIO}×) of torch-model-archiver"
    )


def render_table(formats: dict[str, Any]) -> str:
    rows = [
        "| format | reference s, median [min–max] | ours s, median [min–max] | time ours/ref "
        "| reference size | our size | size ours/ref | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fmt, r in formats.items():
        target = "–" if fmt != "default" else ("**PASS**" if r["target_pass"] else "**FAIL**")
        rows.append(
            f"| `{fmt}` | {_span(r['ref']['wall_s'])} | {_span(r['ours']['wall_s'])} | {_ratio(r['time_ratio'], 3)} "
            f"| {_mb(r['ref']['size_bytes'])} | {_mb(r['ours']['size_bytes'])} | {_ratio(r['size_ratio'], 4)} "
            f"| {target} |"
        )
    return "\n".join(rows)


def render_resources(formats: dict[str, Any]) -> str:
    rows = [
        "| format | reference CPU s | ours CPU s | reference peak RSS | ours peak RSS |",
        "|---|---|---|---|---|",
    ]
    for fmt, r in formats.items():
        ref, ours = r["ref"], r["ours"]
        rows.append(
            f"| `{fmt}` | {ref['cpu_s']['median']:.2f} | {ours['cpu_s']['median']:.2f} "
            f"| {ref['peak_rss_mb']['median']:.0f} MB | {ours['peak_rss_mb']['median']:.0f} MB |"
        )
    return "\n".join(rows)


def render_size_notes(formats: dict[str, Any]) -> str:
    notes = []
    for fmt, r in formats.items():
        for tool, name in (("ref", "reference"), ("ours", "ours")):
            span = r[tool]["size_bytes_range"]
            if span and span[0] != span[1]:
                notes.append(f"{name} `{fmt}` {span[0]:,}–{span[1]:,} B")
    return "Output size varied between runs: " + "; ".join(notes) + "." if notes else ""


def render_markdown(result: dict[str, Any]) -> str:
    cfg, m, formats = result["config"], result["machine"], result["formats"]
    load = result["load_average"]
    lines = [
        "# Archive build: ts_notebook vs torch-model-archiver",
        "",
        f"{result['date']} · {m['cpu_count']} CPUs ({m['cpu_model']}) · Python {m['python']} · torch {m['torch']} · "
        f"isal {m['isal']} · torch-model-archiver {m['torch_model_archiver']}",
        "",
        f"Input: {N_TENSORS} × {cfg['numel']:,} float32 `torch.randn` (seed {SEED}), `torch.save` file "
        f"{cfg['weights_bytes']:,} B, page cache warm. {cfg['repeats']} runs per tool and format, the two tools "
        "interleaved, each run a fresh subprocess. Load average (1/5/15 min): "
        f"{'/'.join(map(str, load['start']))} at start, {'/'.join(map(str, load['end']))} at end, "
        f"highest 1-min value seen {max(v[0] for v in load.values())} (the machine may run other work).",
        "",
        render_table(formats),
        "",
        target_line(formats["default"]) if "default" in formats else "TARGET default: not measured",
        "",
        *([note, ""] if (note := render_size_notes(formats)) else []),
        "Resources per build (median): CPU time (user + system, all threads) and peak RSS "
        "(`VmHWM`, sampled every 50 ms).",
        "",
        render_resources(formats),
        "",
        f"Our `default` archive checked once outside the timing: testzip "
        f"{'ok' if result['verify']['testzip_ok'] else 'FAILED'}, weights byte-identical to the input: "
        f"{'yes' if result['verify']['weights_identical'] else 'NO'}; members: "
        + ", ".join(f"`{k}` {v}" for k, v in result["verify"]["members"].items())
        + ".",
        "",
        f"Reproduce: `make bench` (or `TS_REF_VENV=... BENCH_MB={cfg['bench_mb']} REPEATS={cfg['repeats']} "
        ".venv/bin/python bench/bench_archive.py`). Raw runs: `archive.json`.",
    ]
    return "\n".join(lines) + "\n"
