"""Archive build benchmark: ts_notebook's ``build_archive`` against torch-model-archiver 0.12.0.

Both tools run as subprocesses on the same random float32 state_dict (~400 MB), for each archive
format, REPEATS times each. Within one iteration the two run back to back (their order alternates
between iterations) so both see the same machine state. Results go to ``bench/results/archive.json``
and ``bench/results/archive.md``; the markdown table is also printed. See ``bench/README.md``.

Environment:
    TS_REF_VENV  venv holding torch-model-archiver 0.12.0 (required; ``make bench`` sets it)
    BENCH_MB     state_dict size in MB (default 400; ``BENCH_MB=40`` for a quick run)
    REPEATS      runs per tool and format (default 3)

The exit status is 0 whether the target is met or not (this is a report); it is 2 when the
benchmark cannot run at all (no reference venv).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import common
from archive_report import render_markdown, render_table, target_line
from builds import FORMATS, MAX_SIZE_RATIO, MAX_TIME_RATIO, bench_format
from inputs import big_numel, make_inputs
from machine import archive_machine, load_average
from verify import verify_default


def reference_venv() -> Path | None:
    return common.reference_venv("torch-model-archiver", "torch-model-archiver 0.12.0")


def warm_up(ref_venv: Path) -> None:
    """Import both tools once, untimed, so the first timed run does not pay for cold .pyc files."""
    ref = [str(ref_venv / "bin" / "torch-model-archiver"), "--help"]
    ours = [sys.executable, "-c", "import ts_notebook.archive"]
    for cmd in (ref, ours):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def main() -> int:
    ref_venv = reference_venv()
    if ref_venv is None:
        return 2
    mb, repeats = common.env_int("BENCH_MB", 400), common.env_int("REPEATS", 3)
    inputs = make_inputs(mb)
    numel = big_numel(mb)
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": archive_machine(ref_venv),
        "config": {"bench_mb": mb, "repeats": repeats, "numel": numel, "weights_bytes": inputs.weights.stat().st_size},
        "load_average": {"start": load_average()},
        "target": {"format": "default", "max_time_ratio": MAX_TIME_RATIO, "max_size_ratio": MAX_SIZE_RATIO},
        "formats": {},
    }
    warm_up(ref_venv)
    result["verify"] = verify_default(inputs)
    print(f"verify default: {result['verify']}")
    try:
        for fmt in FORMATS:
            result["formats"][fmt] = bench_format(fmt, ref_venv, inputs, repeats)
            result["load_average"][f"after_{fmt}"] = load_average()
            common.write_json("archive.json", result)  # partial results survive an interrupted run
    finally:
        for out in common.WORK.glob("out-*"):
            shutil.rmtree(out, ignore_errors=True)
    result["load_average"]["end"] = load_average()
    common.write_json("archive.json", result)
    markdown = render_markdown(result)
    (common.RESULTS / "archive.md").write_text(markdown)
    print()
    print(render_table(result["formats"]))
    print()
    print(target_line(result["formats"]["default"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
