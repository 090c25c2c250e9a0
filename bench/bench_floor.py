"""Serving at the machine's floor: ours against TorchServe 0.12.0 (defaults and tuned), LitServe 0.2.19
(without and with batching) and the in-process floor, one run, same archives, same requests.

Each server runs alone on the machine (one after the other), every cell warm, measured REPEATS times
by wrk (a C client that costs little CPU) and, for PY_CLIENTS client counts, by the Python client.
Also: the bare HTTP round trip, cold start against ``python -c "import torch"``, PSS per process,
and the CPU each side spends per request. Figures and verdicts: ``results/floor.md``; raw runs:
``results/floor.json`` (``FLOOR_OUT`` names another folder; ``BENCH_QUICK=1``, a smoke run, writes to
``bench/work/floor-quick``). See ``bench/README.md`` for the settings.

Exit status 0 whether targets pass or fail (this is a report); 2 when it cannot run at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import common
from bench_serving import sigterm_as_interrupt
from floor_phases import floor_session, http_floor_session, import_torch_s, litserve_session, registered_session
from floor_plan import Plan
from floor_report_text import write_report
from floor_servers import LitServer, litserve_runtime, litserve_venv, ts_server
from floor_targets import load_before
from inputs import bert_info, make_archive
from machine import load_average, serving_machine, source_state, version
from model_code import BERT_CONFIGS
from overlay import make_overlay
from phases import cold_start
from servers import OurServer, RefServer
from wrk import ensure_wrk


def _session(kind: str, model: str, archive: Path, plan: Plan, ctx: dict[str, Any]) -> dict[str, Any]:
    if kind == "litserve":
        venv, runtime = ctx["litserve_venv"], ctx["litserve_runtime"]
        return litserve_session(lambda w, b: LitServer(venv, runtime, archive, w, b), model, plan)
    overlay = ctx["overlay"] if model.startswith("bert") else None
    server: Any = OurServer({}) if kind == "ours" else ts_server(ctx["ref"], {}, overlay, kind == "ts_tuned")
    try:
        server.start()
        return registered_session(server, model, archive, plan)
    finally:
        server.stop()


def _cold_starts(plan: Plan, ctx: dict[str, Any], tiny: Path) -> dict[str, Any]:
    """Launch -> first prediction (tiny, 1 worker), alternating the servers; and the import-torch floor."""
    out: dict[str, Any] = {"ours": [], "ts": []}
    makers = {
        "ours": lambda config, models: OurServer(config, models),
        "ts": lambda config, models: RefServer(ctx["ref"], config, None),
    }
    for i in range(plan.cold_repeats):
        for kind in ("ours", "ts") if i % 2 == 0 else ("ts", "ours"):
            run = cold_start(kind, makers[kind], tiny, 1)
            out[kind].append(run)
            print(f"    cold start {kind:<4} #{i + 1}: {run.get('first_prediction_s')} s", flush=True)
    out["import_torch_ours"] = import_torch_s(Path(sys.executable), plan.cold_repeats)
    out["import_torch_ts"] = import_torch_s(ctx["ref"] / "bin" / "python", plan.cold_repeats)
    return out


def run_all(plan: Plan, ctx: dict[str, Any], result: dict[str, Any]) -> None:
    archives = {m: make_archive(m) for m in plan.models}
    result["models"] = {m: BERT_CONFIGS[m] | bert_info(m) for m in archives if m in BERT_CONFIGS}
    if any(m.startswith("bert") for m in archives):
        ctx["overlay"], result["ts_overlay"] = make_overlay(ctx["ref"])
    print("== in-process floor", flush=True)
    result["floor"] = floor_session(archives, plan)
    if "tiny" in archives:
        print("== bare HTTP round trip", flush=True)
        result["http_floor"] = http_floor_session(b"[\n  0.1,\n  0.2,\n  0.3\n]", plan)
    for model, archive in archives.items():
        for kind in plan.servers:
            if time.monotonic() > ctx["deadline"]:
                result["errors"].append(f"MAX_SECONDS reached before {kind} {model}")
                continue
            print(f"== {kind} {model}", flush=True)
            session = _session(kind, model, archive, plan, ctx)
            result["servers"].setdefault(kind, {})[model] = session
            result["errors"] += [f"{kind}: {e}" for e in session["errors"]]
            _save(ctx, result)
    if "tiny" in archives and "ours" in plan.servers:
        print("== cold start", flush=True)
        result["cold_start"] = _cold_starts(plan, ctx, archives["tiny"])


def _out_dir(plan: Plan) -> Path:
    """Where floor.json and floor.md go: a smoke run never overwrites the committed results."""
    default = common.WORK / "floor-quick" if plan.quick else common.RESULTS
    return Path(os.environ.get("FLOOR_OUT", "").strip() or default)


def _save(ctx: dict[str, Any], result: dict[str, Any]) -> None:
    ctx["out"].mkdir(parents=True, exist_ok=True)
    (ctx["out"] / "floor.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


def _with_litserve(plan: Plan, ctx: dict[str, Any], notes: list[str]) -> Plan:
    if "litserve" not in plan.servers:
        return plan
    venv = litserve_venv()
    if venv is None:
        notes.append("LitServe left out: no .venv-litserve (make litserve-venv) or TS_LITSERVE_VENV")
        return Plan(**{**asdict(plan), "servers": [s for s in plan.servers if s != "litserve"]})
    ctx["litserve_venv"], ctx["litserve_runtime"] = venv, litserve_runtime()
    return plan


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    plan = Plan.from_env()
    ref = common.reference_venv("torchserve", "torchserve 0.12.0")
    if ref is None or shutil.which("java") is None:
        print("needs TS_REF_VENV (make compat-venv) and Java 17 on PATH")
        return 2
    try:
        ensure_wrk()
    except RuntimeError as exc:
        print(exc)
        return 2
    ctx: dict[str, Any] = {"ref": ref, "overlay": None, "deadline": time.monotonic() + plan.max_seconds,
                           "out": _out_dir(plan)}  # fmt: skip
    notes = ["BENCH_QUICK=1: a smoke run (one short round), its figures mean nothing"] if plan.quick else []
    plan = _with_litserve(plan, ctx, notes)
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": serving_machine(ref) | {"uvloop": version("uvloop"), "litserve": _litserve_version(ctx)},
        "source": source_state(),
        "plan": asdict(plan),
        "notes": notes,
        "load_average": {"start": load_average()},
        "before": load_before(),
        "servers": {},
        "errors": [],
    }
    started = time.monotonic()
    with sigterm_as_interrupt():
        try:
            run_all(plan, ctx, result)
        except (RuntimeError, AssertionError) as exc:
            result["errors"].append(f"{type(exc).__name__}: {exc}")
            print(f"error: {exc}", flush=True)
        except KeyboardInterrupt as exc:
            result["errors"].append(f"interrupted: {exc}")
            _save(ctx, result)
            return 130
    result["load_average"]["end"] = load_average()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    _save(ctx, result)
    print(write_report(result, ctx["out"]))
    print(f"results: {ctx['out']}/floor.md, floor.json", flush=True)
    return 0


def _litserve_version(ctx: dict[str, Any]) -> str | None:
    venv = ctx.get("litserve_venv")
    if venv is None:
        return None
    meta = next(iter((venv / "lib").glob("python*/site-packages/litserve-*.dist-info/METADATA")), None)
    if meta is None:
        return None
    line = next((x for x in meta.read_text().splitlines() if x.startswith("Version:")), "")
    return line.split(":", 1)[1].strip() or None


if __name__ == "__main__":
    sys.exit(main())
