"""The floor benchmark's targets (issue 23), each cell PASS or FAIL, and the "no cell worse than before"
check against an earlier run (by default the committed ``results/floor-before-issue23.json``, a summary of
``results/floor.json`` as it stood when the targets were set; ``FLOOR_BEFORE`` names another run's JSON).

Noise rule for "worse": a cell's throughput is worse when this run's median is below the before run's
lowest round, and a latency (p50, p99) when this run's median is above the before run's highest round.
Within those bounds a difference is within what the before run itself varied by.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import common
from floor_report import cell, med, med_role, ratio

Verdict = tuple[str, str, str, bool | None]  # (target, cell, measured, passed; None: not measured)
DEFAULT_BEFORE = common.RESULTS / "floor-before-issue23.json"
SMALL_CELL = "2w/b1/4c/wrk"  # the issue's lighter-model target: 2 workers x 4 keep-alive clients, batch 1
FRONTEND_CPU_US = {  # target -> the cells it is checked in (issue 23 quoted the first of each)
    ("tiny", 250.0): ["tiny/1w/b1/1c/wrk", "tiny/2w/b1/16c/wrk"],
    ("BERT-sized", 400.0): ["bert/2w/b1/4c/wrk", "bert_small/2w/b1/4c/wrk"],
}


def summarise_before(raw: dict[str, Any], label: str) -> dict[str, Any]:
    """What the check needs from a floor run: our cells' req/s, p50 and p99 summaries, and its floor."""
    if "cells" in raw:  # already a summary
        return raw
    cells = {key: {k: c[k] for k in ("rps", "p50_ms", "p99_ms") if c.get(k)}
             for m in raw["servers"].get("ours", {}).values() for key, c in m.get("cells", {}).items()}  # fmt: skip
    return {
        "label": label, "date": raw.get("date"), "source": raw.get("source"),
        "cpu_model": raw.get("machine", {}).get("cpu_model"), "cells": cells,
        "floor": {k: v.get("rps") for k, v in raw.get("floor", {}).items()},
    }  # fmt: skip


def load_before() -> dict[str, Any] | None:
    path = Path(os.environ.get("FLOOR_BEFORE", "").strip() or DEFAULT_BEFORE)
    if not path.is_file():
        return None
    return summarise_before(json.loads(path.read_text()), str(path.relative_to(common.REPO)) if
                            path.is_relative_to(common.REPO) else str(path))  # fmt: skip


def _floor(result: dict[str, Any], key: str) -> float | None:
    rps = result.get("floor", {}).get(key, {}).get("rps")
    return float(rps) if rps else None


def _ratio_check(name: str, model: str, result: dict[str, Any]) -> list[Verdict]:
    key = f"{model}/{SMALL_CELL}"
    ours, ref = cell(result, "ours", key), cell(result, "ts_tuned", key)
    o, r, floor = med(ours, "rps"), med(ref, "rps"), _floor(result, f"{model}/2w/b1")
    op, rp = med(ours, "p99_ms"), med(ref, "p99_ms")
    where = f"{model} 2w × 4c"
    return [
        (f"{name}: ≥ 0.9 × the in-process floor", where, f"{_n(o)} vs floor {_n(floor)} req/s ({ratio(o, floor)})",
         None if o is None or not floor else o >= 0.9 * floor),
        (f"{name}: ≥ 1.3 × TorchServe tuned", where, f"{_n(o)} vs {_n(r)} req/s ({ratio(o, r)})",
         None if o is None or not r else o >= 1.3 * r),
        (f"{name}: p99 ≤ TorchServe tuned's", where, f"{_n(op, '.1f')} vs {_n(rp, '.1f')} ms",
         None if op is None or rp is None else op <= rp),
    ]  # fmt: skip


def _n(x: float | None, spec: str = ".0f") -> str:
    return "–" if x is None else format(x, spec)


def _frontend_cpu(result: dict[str, Any]) -> list[Verdict]:
    out: list[Verdict] = []
    for (what, limit), keys in FRONTEND_CPU_US.items():
        for key in keys:
            c = cell(result, "ours", key)
            us = med_role([r["cpu_us_per_request"] for r in c["runs"]], "frontend") if c else None
            measured = f"{us:.0f} µs" if us is not None else "–"
            out.append((f"front-end CPU per request ≤ {limit:.0f} µs ({what})", key.removesuffix("/wrk"),
                        measured, None if us is None else us <= limit))  # fmt: skip
    return out


def _tiny(result: dict[str, Any]) -> list[Verdict]:
    out: list[Verdict] = []
    for w in (1, 2):
        p50 = med(cell(result, "ours", f"tiny/{w}w/b1/1c/wrk"), "p50_ms")
        out.append(("tiny, 1 client: p50 ≤ 0.5 ms", f"{w}w", f"{p50:.3f} ms" if p50 else "–",
                    None if p50 is None else p50 <= 0.5))  # fmt: skip
    key = "tiny/2w/b1/16c/wrk"
    o, r = med(cell(result, "ours", key), "rps"), med(cell(result, "ts_tuned", key), "rps")
    measured = f"{_n(o)} vs {_n(r)} req/s ({ratio(o, r)})"
    out.append(("tiny, 2 workers × 16 clients ≥ 2.5 × TorchServe tuned", "2w 16c", measured,
                None if not o or not r else o >= 2.5 * r))  # fmt: skip
    return out


def worse_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
    """(cell, before, now, what got worse: "" none, None not measured) for every cell of ours in the before run."""
    before = result.get("before") or {}
    rows: list[tuple[str, str, str, str | None]] = []
    for key, b in before.get("cells", {}).items():
        now = cell(result, "ours", key)
        if not now or not now.get("rps"):
            rows.append((key, _fmt_before(b), "–", None))
            continue
        worse = [] if now["rps"]["median"] >= b["rps"]["min"] else ["req/s"]
        worse += [k.removesuffix("_ms") for k in ("p50_ms", "p99_ms") if b.get(k) and now[k]["median"] > b[k]["max"]]
        text = f"{now['rps']['median']:.0f} · {now['p50_ms']['median']:.2f} / {now['p99_ms']['median']:.2f}"
        rows.append((key, _fmt_before(b), text, ", ".join(worse)))
    return rows


def _fmt_before(b: dict[str, Any]) -> str:
    rps, p50, p99 = b["rps"], b.get("p50_ms") or {}, b.get("p99_ms") or {}
    return (f"{rps['median']:.0f} [min {rps['min']:.0f}] · {p50.get('median', 0):.2f} [max {p50.get('max', 0):.2f}]"
            f" / {p99.get('median', 0):.2f} [max {p99.get('max', 0):.2f}]")  # fmt: skip


def _no_worse(result: dict[str, Any]) -> Verdict:
    rows = worse_rows(result)
    if not rows:
        return ("no cell of the before run worse", "–", "no before run to compare against", None)
    measured = [r for r in rows if r[3] is not None]
    worse = [f"{r[0]} ({r[3]})" for r in measured if r[3]]
    text = f"{len(measured)}/{len(rows)} cells measured; worse: " + ("; ".join(worse) if worse else "none")
    # A cell not measured cannot pass: the verdict is FAIL on any worse cell, else PASS only when all were measured.
    ok = False if worse else (True if len(measured) == len(rows) else None)
    return ("no cell of the before run worse (rule above the table)", "ours, every cell", text, ok)


def verdicts(result: dict[str, Any]) -> list[Verdict]:
    """Issue 23's targets, in its order."""
    return [*_ratio_check("lighter BERT-sized", "bert_small", result), *_frontend_cpu(result), *_tiny(result),
            _no_worse(result)]  # fmt: skip


def bert_context(result: dict[str, Any]) -> list[Verdict]:
    """The lighter model's criteria on the BERT-sized model too: how far a 2-3x slower handler hides the server."""
    return _ratio_check("BERT-sized, same criteria", "bert", result)


def verdict_table(rows: list[Verdict], count: bool = True) -> str:
    lines = ["| target | cell | measured | verdict |", "|---|---|---|---|"]
    for target, where, measured, ok in rows:
        word = "**PASS**" if ok else "not measured" if ok is None else "**FAIL**"
        lines.append(f"| {target} | {where} | {measured} | {word} |")
    passed = sum(1 for r in rows if r[3])
    return "\n".join(lines) + (f"\n\nTARGETS: {passed}/{len(rows)} PASS" if count else "")


def worse_table(result: dict[str, Any]) -> str:
    before = result.get("before")
    if not before:
        return "No before run (`FLOOR_BEFORE`, default `results/floor-before-issue23.json`): not compared."
    lines = [
        f"Before: `{before.get('label')}` ({before.get('date')}, ts_notebook at "
        f"`{(before.get('source') or {}).get('commit')}`, {before.get('cpu_model')}); now: "
        f"{result['machine'].get('cpu_model')}. In-process floor before → now: {_floors(result, before)}.",
        "",
        "| cell (ours) | before: req/s [min] · p50 [max] / p99 [max] ms | now: req/s · p50 / p99 ms | worse |",
        "|---|---|---|---|",
    ]
    for key, b, now, worse in worse_rows(result):
        lines.append(f"| {key} | {b} | {now} | {'not measured' if worse is None else worse or 'no'} |")
    return "\n".join(lines)


def _floors(result: dict[str, Any], before: dict[str, Any]) -> str:
    parts = [f"{k} {v:.0f} → {_n(_floor(result, k))} req/s" for k, v in before.get("floor", {}).items() if v]
    return "; ".join(parts) or "–"
