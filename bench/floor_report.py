"""The floor benchmark's report: the matrix tables, every target's cell with PASS or FAIL, cold start,
PSS per process, and where a request's CPU goes. Writes ``results/floor.md``; returns its text."""

from __future__ import annotations

from typing import Any

import common

NAMES = {"ours": "ours", "ts": "TorchServe default", "ts_tuned": "TorchServe tuned", "litserve": "LitServe"}
Verdict = tuple[str, str, str, bool | None]  # (target, cell, measured, passed; None: not measured)


def _cell(result: dict[str, Any], kind: str, key: str) -> dict[str, Any] | None:
    model = key.split("/", 1)[0]
    return result["servers"].get(kind, {}).get(model, {}).get("cells", {}).get(key)


def _med(cell: dict[str, Any] | None, what: str) -> float | None:
    stats = (cell or {}).get(what)
    return None if not stats else float(stats["median"])


def _fmt(cell: dict[str, Any] | None) -> str:
    rps = _med(cell, "rps")
    if rps is None:
        return "–"
    assert cell is not None
    spread = f"[{cell['rps']['min']:.0f}–{cell['rps']['max']:.0f}]"
    return f"{rps:.0f} {spread} · {_med(cell, 'p50_ms'):.2f} / {_med(cell, 'p99_ms'):.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "–"


def _kinds(result: dict[str, Any]) -> list[str]:
    return [k for k in ("ours", "ts", "ts_tuned", "litserve") if k in result["servers"]]


def matrix(result: dict[str, Any], model: str, client: str) -> str:
    plan, kinds = result["plan"], _kinds(result)
    head = ["workers", "batch", "clients", "floor req/s", *[NAMES[k] for k in kinds], "ours÷floor", "ours÷TS tuned"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    workers = plan["tiny_workers"] if model == "tiny" else plan["bert_workers"]
    batches = [1] if model == "tiny" else plan["bert_batches"]
    clients = plan["clients"] if client == "wrk" else plan["python_clients"]
    for w in workers:
        for b in batches:
            floor = result.get("floor", {}).get(f"{model}/{w}w/b{b}", {}).get("rps")
            for c in clients:
                key = f"{model}/{w}w/b{b}/{c}c/{client}"
                cells = {k: _cell(result, k, key) for k in kinds}
                ours = _med(cells.get("ours"), "rps")
                row = [str(w), str(b), str(c), f"{floor:.0f}" if floor else "–", *[_fmt(cells[k]) for k in kinds]]
                row += [_ratio(ours, floor), _ratio(ours, _med(cells.get("ts_tuned"), "rps"))]
                lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _spread(cell: dict[str, Any] | None) -> float | None:
    rps = (cell or {}).get("rps")
    return (rps["max"] - rps["min"]) / rps["median"] if rps and rps["median"] and rps["n"] > 1 else None


def _bert_verdicts(result: dict[str, Any]) -> list[Verdict]:
    plan, out = result["plan"], []
    for w in plan["bert_workers"]:
        floor = result.get("floor", {}).get(f"bert/{w}w/b1", {}).get("rps")
        for c in (4, 16):
            ours = _med(_cell(result, "ours", f"bert/{w}w/b1/{c}c/wrk"), "rps")
            ok = None if ours is None or not floor else ours >= 0.9 * floor
            out.append(("BERT defaults ≥ 0.9 × floor", f"{w}w {c}c", f"{_ratio(ours, floor)}", ok))
        if 4 in plan["bert_batches"]:
            best = {k: max((_med(_cell(result, k, f"bert/{w}w/b4/{c}c/wrk"), "rps") or 0 for c in plan["clients"]),
                           default=0) for k in ("ours", "litserve")}  # fmt: skip
            ok = None if not best["litserve"] or not best["ours"] else best["ours"] >= best["litserve"]
            measured = f"ours {best['ours']:.0f} vs LitServe {best['litserve']:.0f} req/s"
            out.append(("BERT batched (4, 10 ms) ≥ LitServe's best batched", f"{w}w", measured, ok))
        for b in plan["bert_batches"]:
            for c in plan["clients"]:
                key = f"bert/{w}w/b{b}/{c}c/wrk"
                ours, ref = _cell(result, "ours", key), _cell(result, "ts_tuned", key)
                o, r = _med(ours, "rps"), _med(ref, "rps")
                op, rp = _med(ours, "p99_ms"), _med(ref, "p99_ms")
                ok = None if None in (o, r, op, rp) else (o >= 1.5 * r and op <= rp)  # type: ignore[operator]
                measured = f"{_ratio(o, r)}, p99 {op or 0:.1f} vs {rp or 0:.1f} ms"
                out.append(("BERT ≥ 1.5 × TorchServe tuned, p99 no worse", f"{w}w b{b} {c}c", measured, ok))
    return out


def _tiny_verdicts(result: dict[str, Any]) -> list[Verdict]:
    plan, out = result["plan"], []
    for w in plan["tiny_workers"]:
        p50 = _med(_cell(result, "ours", f"tiny/{w}w/b1/1c/wrk"), "p50_ms")
        measured = f"{p50:.3f} ms" if p50 else "–"
        out.append(("tiny, 1 client: p50 ≤ 0.4 ms", f"{w}w", measured, None if p50 is None else p50 <= 0.4))
    key = "tiny/2w/b1/16c/wrk"
    o, r = _med(_cell(result, "ours", key), "rps"), _med(_cell(result, "ts_tuned", key), "rps")
    ok = None if not o or not r else o >= 3 * r
    out.append(("tiny, 16 clients ≥ 3 × TorchServe tuned", "2w 16c", _ratio(o, r), ok))
    return out


def _median_spread(result: dict[str, Any], kind: str) -> float | None:
    spreads = [s for m in result["servers"].get(kind, {}).values() for c in m.get("cells", {}).values()
               if (s := _spread(c)) is not None]  # fmt: skip
    return sorted(spreads)[len(spreads) // 2] if spreads else None


def _pss_of(result: dict[str, Any], kind: str, key: str) -> tuple[float | None, float | None]:
    """(front end PSS, PSS per worker) in MB from a cell's footprint."""
    model = key.split("/", 1)[0]
    fp = result["servers"].get(kind, {}).get(model, {}).get("footprint", {}).get(key)
    if not fp:
        return None, None
    workers = max(1, len(fp.get("worker_threads", [])))
    return fp["pss_mb"].get("frontend"), (fp["pss_mb"].get("worker", 0.0) / workers) or None


def _other_verdicts(result: dict[str, Any]) -> list[Verdict]:
    ours_s, ref_s = _median_spread(result, "ours"), _median_spread(result, "ts_tuned")
    out: list[Verdict] = [(
        "throughput spread over rounds ≤ TorchServe tuned's (median over cells, (max−min)/median)", "all cells",
        f"{ours_s or 0:.1%} vs {ref_s or 0:.1%}", None if ours_s is None or ref_s is None else ours_s <= ref_s,
    )]  # fmt: skip
    cold = result.get("cold_start", {})
    ours = common.summary([r.get("first_prediction_s") for r in cold.get("ours", [])])
    floor = (cold.get("import_torch_ours") or {}).get("s")
    ok = None if not ours or not floor else ours["median"] <= floor["median"] + 0.2
    measured = f"{ours['median']:.2f} s vs import torch {floor['median']:.2f} s" if ours and floor else "–"
    out.append(("cold start → first prediction ≤ import torch + 0.2 s", "tiny, 1 worker", measured, ok))
    for key in ("bert/2w/b1", "tiny/2w/b1"):
        (of, ow), (tf, tw) = _pss_of(result, "ours", key), _pss_of(result, "ts_tuned", key)
        ok = None if not of or not tf else of <= 0.25 * tf
        out.append(("front end PSS ≤ 0.25 × TorchServe's JVM", key, f"{of or 0:.0f} vs {tf or 0:.0f} MB", ok))
        ok = None if not ow or not tw else ow <= 0.5 * tw
        out.append(("PSS per worker ≤ 0.5 × TorchServe's worker", key, f"{ow or 0:.0f} vs {tw or 0:.0f} MB", ok))
    return out


def verdicts(result: dict[str, Any]) -> list[Verdict]:
    return _bert_verdicts(result) + _tiny_verdicts(result) + _other_verdicts(result)


def _verdict_table(rows: list[Verdict]) -> str:
    lines = ["| target | cell | measured | verdict |", "|---|---|---|---|"]
    for target, cell, measured, ok in rows:
        word = "**PASS**" if ok else "not measured" if ok is None else "**FAIL**"
        lines.append(f"| {target} | {cell} | {measured} | {word} |")
    passed = sum(1 for r in rows if r[3])
    return "\n".join(lines) + f"\n\nTARGETS: {passed}/{len(rows)} PASS"


def cpu_table(result: dict[str, Any]) -> str:
    """CPU per request by side (µs, median over the runs): where a request's time goes."""
    keys = ["tiny/1w/b1/1c/wrk", "tiny/2w/b1/16c/wrk", "bert/2w/b1/4c/wrk", "bert/2w/b4/16c/wrk"]
    lines = ["| cell | server | front end | workers | zygote/other | client (wrk) | total |", "|---" * 7 + "|"]
    for key in keys:
        for kind in _kinds(result):
            cell = _cell(result, kind, key)
            if not cell:
                continue
            runs = [r["cpu_us_per_request"] for r in cell["runs"]]
            parts = [_med_role(runs, "frontend"), _med_role(runs, "worker")]
            parts += [_med_role(runs, "zygote") + _med_role(runs, "other"), _med_role(runs, "client")]
            text = " | ".join(f"{p:.0f}" for p in parts)
            lines.append(f"| {key} | {NAMES[kind]} | {text} | {sum(parts):.0f} |")
    return "\n".join(lines)


def _med_role(runs: list[dict[str, float]], role: str) -> float:
    return sorted(r.get(role, 0.0) for r in runs)[len(runs) // 2]


def write_report(result: dict[str, Any]) -> str:
    from floor_report_text import render

    text = render(result, {
        "tiny_wrk": matrix(result, "tiny", "wrk"), "bert_wrk": matrix(result, "bert", "wrk"),
        "tiny_py": matrix(result, "tiny", "python"), "bert_py": matrix(result, "bert", "python"),
        "verdicts": _verdict_table(verdicts(result)), "cpu": cpu_table(result),
    })  # fmt: skip
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "floor.md").write_text(text)
    return text
