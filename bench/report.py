"""The serving report: rows of figures (ours against TorchServe, median [min–max]), their verdicts against
the issue's targets, and the markdown of ``serving.md``. Pure functions of the ``serving.json`` result, so a
report can be rendered again from saved raw runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common import summary
from settings import BERT_CLIENTS, BERT_WORKERS

from ts_notebook.launcher import POLL_SECONDS

# The targets, ours ÷ TorchServe, measured in the same run.
TARGETS = {
    "cold_start": ("≤", 0.65),
    "register": ("≤", 0.10),
    "tiny_rps": ("≥", 1.25),
    "tiny_p99": ("≤", 1.00),  # "p99 no worse"
    "bert_rps": ("≥", 3.0),
    "frontend_rss": ("≤", 0.25),
}


@dataclass
class Row:
    figure: str
    unit: str
    ts: dict[str, float] | None
    ours: dict[str, float] | None
    target: str | None = None  # a key of TARGETS
    digits: int = 2
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.ts is None or self.ours is None or not self.ts["median"]:
            return None
        return self.ours["median"] / self.ts["median"]

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "–"
        ratio = self.ratio
        if ratio is None:
            return "not measured"
        op, bound = TARGETS[self.target]
        return "PASS" if (ratio <= bound if op == "≤" else ratio >= bound) else "FAIL"


def _cell(s: dict[str, float] | None, digits: int, unit: str) -> str:
    if s is None:
        return "–"
    text = f"{s['median']:.{digits}f}"
    if s.get("n", 1) > 1 and s["min"] != s["max"]:
        text += f" [{s['min']:.{digits}f}–{s['max']:.{digits}f}]"
    return f"{text} {unit}"


def build_rows(result: dict[str, Any]) -> list[Row]:
    ts, ours = result["servers"].get("ts", {}), result["servers"].get("ours", {})
    cold = result["cold_start"]
    rows = [
        Row(
            f"cold start → first prediction (tiny, {result['config']['cold_workers']} worker)", "s",
            summary([r.get("first_prediction_s") for r in cold.get("ts", [])]),
            summary([r.get("first_prediction_s") for r in cold.get("ours", [])]),
            "cold_start",
        ),
        Row(
            "register (sync, 1 worker) → first prediction", "s",
            summary([r.get("first_prediction_s") for r in ts.get("register", [])]),
            summary([r.get("first_prediction_s") for r in ours.get("register", [])]),
            "register", 3,
        ),
    ]  # fmt: skip
    for key in ts.get("tiny", {}) | ours.get("tiny", {}):
        w, c = (int(part[:-1]) for part in key.split("_"))
        label = f"tiny, {w} worker{'s' * (w > 1)} × {c} client{'s' * (c > 1)}"
        a, b = ts.get("tiny", {}).get(key, {}), ours.get("tiny", {}).get(key, {})
        rows += [
            Row(f"{label}: throughput", "req/s", a.get("rps"), b.get("rps"), "tiny_rps", 0),
            Row(f"{label}: p50", "ms", a.get("p50_ms"), b.get("p50_ms")),
            Row(f"{label}: p99", "ms", a.get("p99_ms"), b.get("p99_ms"), "tiny_p99"),
        ]
    if ts.get("bert") or ours.get("bert"):
        a, b = ts.get("bert") or {}, ours.get("bert") or {}
        label = f"BERT-sized, {BERT_WORKERS} workers × {BERT_CLIENTS} clients"
        rows += [
            Row(f"{label}: throughput", "req/s", a.get("rps"), b.get("rps"), "bert_rps", 1),
            Row(f"{label}: p50", "ms", a.get("p50_ms"), b.get("p50_ms"), None, 1),
            Row(f"{label}: p99", "ms", a.get("p99_ms"), b.get("p99_ms"), None, 1),
        ]
    rows += memory_rows(result)
    return rows


def _peak(session: dict[str, Any], key: str, phases: tuple[str, ...]) -> dict[str, float] | None:
    values = [session.get("rss_peak", {}).get(p, {}).get(key) for p in phases]
    clean = [v for v in values if v is not None]
    return {"median": max(clean), "min": max(clean), "max": max(clean), "n": 1} if clean else None


def memory_rows(result: dict[str, Any]) -> list[Row]:
    ts, ours = result["servers"].get("ts", {}), result["servers"].get("ours", {})
    cold = result["cold_start"]
    everything = ("register", "tiny", "bert")
    rows = [
        Row("front end peak RSS, whole load session", "MB", _peak(ts, "frontend_mb", everything),
            _peak(ours, "frontend_mb", everything), "frontend_rss", 0),
        Row("front end peak RSS, cold start (tiny loaded)", "MB",
            summary([r.get("rss_peak", {}).get("frontend_mb") for r in cold.get("ts", [])]),
            summary([r.get("rss_peak", {}).get("frontend_mb") for r in cold.get("ours", [])]), None, 0),
        Row("worker peak RSS (largest one), tiny", "MB", _peak(ts, "worker_max_mb", ("register", "tiny")),
            _peak(ours, "worker_max_mb", ("register", "tiny")), None, 0),
    ]  # fmt: skip
    if (ts.get("rss_peak") or {}).get("bert") or (ours.get("rss_peak") or {}).get("bert"):
        rows.append(Row("worker peak RSS (largest one), BERT-sized", "MB", _peak(ts, "worker_max_mb", ("bert",)),
                        _peak(ours, "worker_max_mb", ("bert",)), None, 0))  # fmt: skip
    rows.append(Row("our zygote peak RSS (no TorchServe counterpart)", "MB", None,
                    _peak(ours, "zygote_mb", everything), None, 0))  # fmt: skip
    return rows


def render_table(rows: list[Row]) -> str:
    lines = ["| figure | TorchServe | ours | ours÷TorchServe | target | PASS/FAIL |", "|---|---|---|---|---|---|"]
    for row in rows:
        target = "–" if row.target is None else f"{TARGETS[row.target][0]} {TARGETS[row.target][1]:.2f}×"
        ratio = "–" if row.ratio is None else f"{row.ratio:.3f}×"
        verdict = {"PASS": "**PASS**", "FAIL": "**FAIL**"}.get(row.verdict, row.verdict)
        lines.append(
            f"| {row.figure} | {_cell(row.ts, row.digits, row.unit)} | {_cell(row.ours, row.digits, row.unit)} "
            f"| {ratio} | {target} | {verdict} |"
        )
    return "\n".join(lines)


def verdict_line(rows: list[Row]) -> str:
    judged = [r for r in rows if r.target is not None]
    failed = [r.figure for r in judged if r.verdict == "FAIL"]
    missing = [r.figure for r in judged if r.verdict == "not measured"]
    text = f"TARGETS: {sum(r.verdict == 'PASS' for r in judged)}/{len(judged)} PASS"
    if failed:
        text += "; FAIL: " + "; ".join(failed)
    if missing:
        text += "; not measured: " + "; ".join(missing)
    return text


def render_details(result: dict[str, Any]) -> str:
    lines = ["| detail | TorchServe | ours |", "|---|---|---|"]
    cold, servers = result["cold_start"], result["servers"]

    def both(label: str, get: Callable[[str], str]) -> None:
        lines.append(f"| {label} | {get('ts')} | {get('ours')} |")

    both(
        "cold start: launch → serving (`/ping` 200 / `backend.json` written)",
        lambda k: _cell(summary([r.get("serving_s") for r in cold.get(k, [])]), 2, "s"),
    )
    both(
        "cold start: stop → every process gone",
        lambda k: _cell(summary([r.get("stop_s") for r in cold.get(k, [])]), 2, "s"),
    )
    both(
        "register: the synchronous call alone",
        lambda k: _cell(summary([r.get("register_call_s") for r in servers.get(k, {}).get("register", [])]), 3, "s"),
    )
    if any("bert_register_s" in servers.get(k, {}) for k in ("ts", "ours")):
        both(
            "BERT-sized: register with 2 workers (sync)",
            lambda k: f"{servers.get(k, {}).get('bert_register_s', '–')} s",
        )
    phases = list(dict.fromkeys(p for k in ("ts", "ours") for p in servers.get(k, {}).get("footprint", {})))
    phases.sort(key=lambda p: p == "bert")  # tiny first, as they ran
    for phase in phases:
        both(
            f"PSS after the {phase} load (front end / workers / zygote; total)", lambda k, p=phase: _pss(servers, k, p)
        )
    for phase in phases:
        both(
            f"torch threads given to each worker, {phase}",
            lambda k, p=phase: (
                "torch default, not limited"
                if k == "ts"
                else str(servers.get(k, {}).get("footprint", {}).get(p, {}).get("torch_threads", "–"))
            ),
        )
        both(
            f"OS threads per worker process after the {phase} load",
            lambda k, p=phase: str(servers.get(k, {}).get("footprint", {}).get(p, {}).get("worker_threads", "–")),
        )
    both(
        "worst foreign CPU during one load run (other work on the machine)",
        lambda k: f"{_worst_cpu(servers.get(k, {}), 'foreign_cpu_s'):.1f} s",
    )
    both(
        "worst steal time during one load run (the host running other guests)",
        lambda k: f"{_worst_cpu(servers.get(k, {}), 'steal_s'):.1f} s",
    )
    return "\n".join(lines)  # fmt: skip


def _source_line(source: dict[str, Any]) -> str:
    dirty = source.get("uncommitted_src") or []
    text = f"ts_notebook measured at commit `{source.get('commit')}`"
    if dirty:
        text += " plus uncommitted changes to " + ", ".join(f"`{d}`" for d in dirty)
    return text + "."


def _answers_line(result: dict[str, Any]) -> str:
    ts, ours = (result["servers"].get(k, {}).get("answers", {}) for k in ("ts", "ours"))
    parts = [
        f"{model}: {'identical' if ts.get(model) == ours.get(model) else 'DIFFERENT'}" for model in ts if model in ours
    ]
    return f"the two servers' answers to the same request were compared ({', '.join(parts) or 'not compared'})."


def _pss(servers: dict[str, Any], kind: str, phase: str) -> str:
    fp = servers.get(kind, {}).get("footprint", {}).get(phase)
    if not fp:
        return "–"
    pss = fp["pss_mb"]
    return (f"{pss.get('frontend', 0):.0f} / {pss.get('worker', 0):.0f} / {pss.get('zygote', 0):.0f}; "
            f"{fp['pss_total_mb']:.0f} MB")  # fmt: skip


def _worst_cpu(session: dict[str, Any], key: str) -> float:
    runs = [r for setting in session.get("tiny", {}).values() for r in setting["runs"]]
    runs += (session.get("bert") or {}).get("runs", [])
    return max((r["cpu"].get(key, 0.0) for r in runs), default=0.0)


def render_markdown(result: dict[str, Any], rows: list[Row]) -> str:
    cfg = result["config"]
    lines = [
        *_context_lines(result),
        render_table(rows),
        "",
        verdict_line(rows),
        "",
        "Both servers run with their defaults: TorchServe's workers use torch's default thread count (every "
        "core: not limited), ours split the cores between the workers by design. Both serve the same archives "
        "(built with `build_archive`) through the same handler code, token auth off, model API on; "
        f"{_answers_line(result)} Memory is RSS sampled every 100 ms over each server's process tree: the front "
        "end is the JVM, or our backend process, alone. Our workers are forked from the zygote and share its pages, "
        "so RSS counts torch once per process; the PSS rows below split shared pages between processes.",
        "",
        *_overlay_lines(result.get("ts_overlay") or []),
        render_details(result),
        "",
        *([f"Errors: {e}" for e in result.get("errors", [])] + ([""] if result.get("errors") else [])),
        _method_line(),
        "",
        f"Reproduce: `TS_REF_VENV=$PWD/.venv-ts COLD_REPEATS={cfg['cold_repeats']} REPEATS={cfg['repeats']} "
        f"N={cfg['n']} N_BERT={cfg['n_bert']} "
        f"WINDOW={cfg['window']:g} .venv/bin/python bench/bench_serving.py`. "
        "Raw runs: `serving.json`.",
    ]
    return "\n".join(lines) + "\n"


def _context_lines(result: dict[str, Any]) -> list[str]:
    """The title, the machine, the source measured, the load average and the settings, each a paragraph."""
    m, cfg, load = result["machine"], result["config"], result["load_average"]
    return [
        "# Serving: ts_notebook's backend vs TorchServe 0.12.0",
        "",
        f"{result['date']} · {m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gb']} GiB · {m['platform']} · "
        f"Python {m['python']} · torch {m['torch']} · transformers {m['transformers']} · aiohttp {m['aiohttp']} · "
        f"TorchServe {m['torchserve']} · {m['java']}",
        "",
        _source_line(result.get("source") or {}),
        "",
        f"Load average (1/5/15 min): {'/'.join(map(str, load['start']))} at start, "
        f"{'/'.join(map(str, load['end']))} at end, highest 1-min value seen "
        f"{max(v[0] for v in load.values())} (the machine may run other work; foreign CPU per run is in the JSON)."
        + (
            f" Waited {result['wait_idle']['waited_s']} s for the 1-min load average to drop below "
            f"{result['wait_idle']['below']}."
            if result.get("wait_idle")
            else ""
        ),
        "",
        f"Settings: COLD_REPEATS={cfg['cold_repeats']} (cold start, register), REPEATS={cfg['repeats']} (load), "
        f"N={cfg['n']} (tiny) / N_BERT={cfg['n_bert']} requests per load run, "
        f"or WINDOW={cfg['window']} s, whichever ends first; WARMUP={cfg['warmup']}; server sessions in the order "
        f"{' then '.join(cfg['order'])}; cold starts alternate. Cells: median [min–max] over the repeats.",
        "",
    ]


def _overlay_lines(overlay: list[str]) -> list[str]:
    if not overlay:
        return []
    return [
        "TorchServe's venv has no transformers: for the BERT-sized session only, its PYTHONPATH (which the "
        "JVM passes on to the workers) gets links to the project venv's " + ", ".join(overlay) + "; torch "
        "stays its own. The cold-start and tiny-model sessions run the reference venv as installed.",
        "",
    ]


def _method_line() -> str:
    # How "serving" is detected for ours is whatever ts_notebook.launcher.spawn does: say so, with its interval.
    return (
        "Method: cold start = a fresh server with the tiny model as a start-up model (`load_models` / `--models`), "
        "clock from launching the process (`torchserve --start`, `python -m ts_notebook.backend`) to the first "
        "HTTP 200 from `/predictions/tiny`, sent as soon as the server serves (`/ping` polled every 100 ms by "
        f"the compat suite's `TorchServe`; `backend.json` naming the backend's pid, polled every "
        f"{POLL_SECONDS * 1000:g} ms by `ts_notebook.launcher.spawn`) and retried every 10 ms; TorchServe queues "
        "it until its worker is ready. Register = "
        "`POST /models?url=tiny.mar&initial_workers=1&synchronous=true` on a running server with no models, clock "
        "from the call to the first 200 of the new model. Load = one keep-alive `http.client` connection per client "
        "thread, all on 127.0.0.1, the client on the same cores as the server; throughput counts HTTP 200s over "
        "the run's wall time; latency is one request and its whole response."
    )
