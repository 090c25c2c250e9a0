"""The floor benchmark's tables: the matrix per model and client, and where a request's CPU goes; and
the cell look-ups the targets (``floor_targets.py``) and the prose (``floor_report_text.py``) share."""

from __future__ import annotations

from typing import Any

NAMES = {"ours": "ours", "ts": "TorchServe default", "ts_tuned": "TorchServe tuned", "litserve": "LitServe"}


def cell(result: dict[str, Any], kind: str, key: str) -> dict[str, Any] | None:
    model = key.split("/", 1)[0]
    found = result["servers"].get(kind, {}).get(model, {}).get("cells", {}).get(key)
    return found if isinstance(found, dict) else None


def med(c: dict[str, Any] | None, what: str) -> float | None:
    stats = (c or {}).get(what)
    return None if not stats else float(stats["median"])


def _fmt(c: dict[str, Any] | None) -> str:
    rps = med(c, "rps")
    if rps is None:
        return "–"
    assert c is not None
    spread = f"[{c['rps']['min']:.0f}–{c['rps']['max']:.0f}]"
    return f"{rps:.0f} {spread} · {med(c, 'p50_ms'):.2f} / {med(c, 'p99_ms'):.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "–"


def _kinds(result: dict[str, Any]) -> list[str]:
    return [k for k in ("ours", "ts", "ts_tuned", "litserve") if k in result["servers"]]


def matrix(result: dict[str, Any], model: str, client: str) -> str:
    plan, kinds = result["plan"], _kinds(result)
    head = ["workers", "batch", "clients", "floor req/s", *[NAMES[k] for k in kinds], "ours÷floor", "ours÷TS tuned"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    workers = plan["tiny_workers"] if model == "tiny" else plan["bert_workers"]
    batches = {"tiny": [1], "bert_small": plan.get("bert_small_batches", [])}.get(model, plan["bert_batches"])
    py = plan.get("bert_small_python_clients", []) if model == "bert_small" else plan["python_clients"]
    clients = plan["clients"] if client == "wrk" else py
    if not clients or model not in plan.get("models", [model]):
        return ""
    for w in workers:
        for b in batches:
            floor = result.get("floor", {}).get(f"{model}/{w}w/b{b}", {}).get("rps")
            for c in clients:
                key = f"{model}/{w}w/b{b}/{c}c/{client}"
                cells = {k: cell(result, k, key) for k in kinds}
                ours = med(cells.get("ours"), "rps")
                row = [str(w), str(b), str(c), f"{floor:.0f}" if floor else "–", *[_fmt(cells[k]) for k in kinds]]
                row += [ratio(ours, floor), ratio(ours, med(cells.get("ts_tuned"), "rps"))]
                lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def cpu_table(result: dict[str, Any]) -> str:
    """CPU per request by side (µs, median over the runs): where a request's time goes."""
    keys = [
        "tiny/1w/b1/1c/wrk",
        "tiny/2w/b1/16c/wrk",
        "bert/2w/b1/4c/wrk",
        "bert/2w/b4/16c/wrk",
        "bert_small/2w/b1/4c/wrk",
    ]
    lines = ["| cell | server | front end | workers | zygote/other | client (wrk) | total |", "|---" * 7 + "|"]
    for key in keys:
        for kind in _kinds(result):
            c = cell(result, kind, key)
            if not c:
                continue
            runs = [r["cpu_us_per_request"] for r in c["runs"]]
            parts = [med_role(runs, "frontend"), med_role(runs, "worker")]
            parts += [med_role(runs, "zygote") + med_role(runs, "other"), med_role(runs, "client")]
            text = " | ".join(f"{p:.0f}" for p in parts)
            lines.append(f"| {key} | {NAMES[kind]} | {text} | {sum(parts):.0f} |")
    return "\n".join(lines)


def med_role(runs: list[dict[str, float]], role: str) -> float:
    return sorted(r.get(role, 0.0) for r in runs)[len(runs) // 2]


def floor_table(result: dict[str, Any]) -> str:
    """The in-process floor per (model, workers, batch): req/s of all copies at once over the rounds, and
    each copy's per-call time and CPU share (median over the rounds), so a copy that lacked a core shows."""
    lines = ["| model | workers | batch | floor req/s, median [min–max] | each copy: call p50 / mean ms · CPU share |",
             "|---|---|---|---|---|"]  # fmt: skip
    for key, f in result.get("floor", {}).items():
        model, w, b = key.split("/")
        if "rounds" not in f:  # a run from before the floor ran its copies at once
            lines.append(f"| {model} | {w[:-1]} | {b[1:]} | {f.get('rps') or 0:.0f} | – |")
            continue
        copies = []
        for i in range(int(w[:-1])):
            per = [r["copies"][i] for r in f["rounds"] if i < len(r["copies"])]
            copies.append(f"{_mid(per, 'call_p50_ms'):.2f} / {_mid(per, 'call_mean_ms'):.2f} · "
                          f"{_mid(per, 'cpu_share'):.2f}")  # fmt: skip
        spread = f"{f['rps'] or 0:.0f} [{f.get('rps_min') or 0:.0f}–{f.get('rps_max') or 0:.0f}]"
        lines.append(f"| {model} | {w[:-1]} | {b[1:]} | {spread} | {'; '.join(copies)} |")
    return "\n".join(lines)


def _mid(rows: list[dict[str, Any]], what: str) -> float:
    values = sorted(r[what] for r in rows if r.get(what) is not None)
    return values[len(values) // 2] if values else 0.0
