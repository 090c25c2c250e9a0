"""Live handlers: the dev loop (edit -> the new answer served) against TorchServe's path, reloads
under load, and what per-stage timing costs. Writes bench/results/live.json and live.md.

Settings (environment): EDITS (5), RELOADS (20), RELOAD_WORKERS (2), STEADY_S (5),
OVERHEAD_REPEATS (3), OVERHEAD_N (3000), SKIP_BERT (0). Needs TS_REF_VENV (``make compat-venv``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import datetime, timezone
from typing import Any

import common
from common import env_int
from inputs import SERVING_INPUTS, make_archive
from live_phases import our_dev_loop, reload_under_load, timing_overhead, ts_dev_loop, wrapper_cost
from live_report import render_markdown
from machine import load_average, source_state
from overlay import make_overlay


def _median(runs: list[dict[str, Any]], key: str = "edit_to_answer_s") -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 4) if values else None


def dev_loops(ref_venv: Any, which: str, edits: int, result: dict[str, Any]) -> None:
    mar = make_archive(which)
    overlay = make_overlay(ref_venv)[0] if which == "bert" else None
    entry = result["dev_loop"].setdefault(which, {})
    entry["ts"] = ts_dev_loop(ref_venv, which, SERVING_INPUTS / which, edits, overlay)
    entry["ours"] = our_dev_loop(which, mar, edits)  # postprocess edits: the usual notebook loop
    entry["ours_deep"] = our_dev_loop(which, mar, max(2, edits // 2), deep_every=1)  # initialize edited too
    for key in ("ts", "ours", "ours_deep"):
        entry[key]["median_s"] = _median(entry[key]["runs"])
    ts = entry["ts"]["median_s"]
    for key in ("ours", "ours_deep"):
        entry[key]["ratio"] = round(entry[key]["median_s"] / ts, 4) if ts else None
    common.write_json("live.json", result)
    print(f"{which}: TorchServe {ts} s, ours {entry['ours']['median_s']} s ({entry['ours']['ratio']}x), "
          f"ours with initialize edited {entry['ours_deep']['median_s']} s", flush=True)  # fmt: skip


def main() -> int:
    ref_venv = common.reference_venv("torchserve", "torchserve 0.12.0")
    if ref_venv is None:
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    edits, reloads = env_int("EDITS", 5), env_int("RELOADS", 20)
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source_state(),
        "config": {
            "edits": edits,
            "reloads": reloads,
            "reload_workers": env_int("RELOAD_WORKERS", 2),
            "steady_s": env_int("STEADY_S", 5),
            "overhead_repeats": env_int("OVERHEAD_REPEATS", 3),
            "overhead_n": env_int("OVERHEAD_N", 3000),
        },
        "load_average": {"start": load_average()},
        "dev_loop": {},
    }
    started = time.monotonic()
    for which in ("tiny",) if env_int("SKIP_BERT", 0) else ("tiny", "bert"):
        dev_loops(ref_venv, which, edits, result)
    cfg = result["config"]
    tiny = make_archive("tiny")
    result["reload_under_load"] = reload_under_load(tiny, reloads, cfg["reload_workers"], cfg["steady_s"])
    print(f"reload under load: {len(result['reload_under_load']['failed'])} failed of "
          f"{result['reload_under_load']['requests']}", flush=True)  # fmt: skip
    common.write_json("live.json", result)
    runs = timing_overhead(tiny, cfg["overhead_repeats"], cfg["overhead_n"])
    on, off = statistics.median(runs["on"]), statistics.median(runs["off"])
    result["timing_overhead"] = {"rps": runs, "median_on": on, "median_off": off, "cost": round(1 - on / off, 4),
                                 "wrapper": wrapper_cost()}  # fmt: skip
    result["load_average"]["end"] = load_average()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    common.write_json("live.json", result)
    (common.RESULTS / "live.md").write_text(render_markdown(result))
    print((common.RESULTS / "live.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
