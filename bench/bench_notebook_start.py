"""Cold start from a notebook: a fresh Python process runs ``%load_ext ts_notebook``,
``%ts_serve start --models tiny=tiny.mar`` and ``%ts_serve predict``; we time the magics from the
first one to the first answer (interpreter start and the IPython import are reported apart).

Run: ``.venv/bin/python bench/bench_notebook_start.py`` (env REPEATS, default 5). Writes
``bench/results/notebook_start.{md,json}``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS
from inputs import tiny_store

REPEATS = int(os.environ.get("REPEATS", "5"))

SESSION = r"""
import json, os, sys, time
t0 = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
t1 = time.perf_counter()
ip.run_line_magic("load_ext", "ts_notebook")
ip.run_line_magic("ts_serve", "start --model-store store --models tiny=tiny.mar --workers 1")
answer = ip.run_line_magic("ts_serve", "predict tiny '{\"input\": [1, 2, 3, 4]}'")
t2 = time.perf_counter()
ip.run_line_magic("ts_serve", "stop")
print(json.dumps({"ipython_import_s": t1 - t0, "magics_to_first_answer_s": t2 - t1, "answer": answer}))
"""


def make_store(folder: Path) -> None:
    """``folder/store/tiny.mar``: the serving benchmark's tiny MLP (eager state_dict, lean handler)."""
    tiny_store(folder / "store")


def main() -> int:
    runs = []
    with tempfile.TemporaryDirectory(prefix="tsn-bench-nb-") as tmp:
        folder = Path(tmp)
        make_store(folder)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(folder / "xdg"), "HF_HUB_OFFLINE": "1"}
        (folder / "xdg").mkdir()
        for _ in range(REPEATS):
            began = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", SESSION],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                check=True,
            )
            wall = time.perf_counter() - began
            run = json.loads(out.stdout.strip().splitlines()[-1])
            run["process_wall_s"] = wall
            runs.append(run)
    med = statistics.median(r["magics_to_first_answer_s"] for r in runs)
    lo, hi = (f(r["magics_to_first_answer_s"] for r in runs) for f in (min, max))
    load = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "notebook_start.json").write_text(json.dumps({"runs": runs, "median_s": med, "load": load}, indent=2))
    table = (
        "# Cold start from a notebook\n\n"
        f"{time.strftime('%Y-%m-%dT%H:%M:%S')} · {os.cpu_count()} CPUs · load average {load[0]:.2f}/{load[1]:.2f}/"
        f"{load[2]:.2f} · {REPEATS} runs, each a fresh Python process\n\n"
        "| figure | median [min–max] |\n|---|---|\n"
        f"| `%load_ext` → `%ts_serve start --models tiny=tiny.mar` → first `%ts_serve predict` answer | "
        f"{med:.2f} [{lo:.2f}–{hi:.2f}] s |\n"
        f"| (before that: `import IPython` in the fresh process) | "
        f"{statistics.median(r['ipython_import_s'] for r in runs):.2f} s |\n\n"
        "TorchServe's cold start to a first prediction on this machine kind is 2.15 s from `torchserve --start` "
        "(REPORT §8.1) and is measured side by side in `serving.md`.\n"
    )
    (RESULTS / "notebook_start.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
