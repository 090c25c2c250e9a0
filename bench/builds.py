"""The archive benchmark's timed builds: both archivers' command lines, one timed build in a fresh
subprocess (wall clock, CPU time from wait4, peak RSS), a format's interleaved repeats and their summary.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import WORK
from inputs import Inputs, warm_page_cache
from sampling import PeakRss

FORMATS = ("default", "zip-store", "tgz", "no-archive")
TARGETS = {"default": "big.mar", "zip-store": "big.mar", "tgz": "big.tar.gz", "no-archive": "big"}
# The target for the `default` format, both against the reference in the same run.
MAX_TIME_RATIO = 0.2
MAX_SIZE_RATIO = 1.03


@dataclass(frozen=True)
class Run:
    """One timed build: wall clock, CPU time (wait4) and peak RSS (sampled high-water mark)."""

    tool: str
    order: int  # 0: ran first in its iteration, 1: second
    wall_s: float
    cpu_s: float
    peak_rss_mb: float | None
    rc: int
    size_bytes: int | None
    stderr_tail: str


def ref_command(ref_venv: Path, fmt: str, inputs: Inputs, out: Path) -> list[str]:
    return [
        str(ref_venv / "bin" / "torch-model-archiver"),
        *("--model-name", "big", "--version", "1.0"),
        *("--model-file", str(inputs.model_file), "--serialized-file", str(inputs.weights)),
        *("--handler", str(inputs.handler), "--export-path", str(out), "--archive-format", fmt, "-f"),
    ]


def our_command(fmt: str, inputs: Inputs, out: Path) -> list[str]:
    """Our drop-in CLI with the very same flags, so both sides pay interpreter start-up and imports."""
    return [
        str(Path(sys.executable).with_name("ts-notebook-archive")),
        *("--model-name", "big", "--version", "1.0"),
        *("--model-file", str(inputs.model_file), "--serialized-file", str(inputs.weights)),
        *("--handler", str(inputs.handler), "--export-path", str(out), "--archive-format", fmt, "-f"),
    ]


def timed(cmd: list[str]) -> tuple[float, float, float | None, int, str]:
    """Run ``cmd``; return wall s, CPU s, peak RSS MB, exit code and the tail of stderr."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        # Popen returns once the child has exec'd, so the sampler never sees this process's image.
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        sampler = PeakRss(proc.pid)
        # wait4 rather than Popen.wait: the clock stops the moment the child exits, and the kernel
        # reports its CPU time (user + system, all threads).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        peak_mb = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-600:].decode(errors="replace")
    return wall, usage.ru_utime + usage.ru_stime, peak_mb, proc.returncode, tail


def output_size(path: Path) -> int | None:
    if path.is_dir():
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    return path.stat().st_size if path.exists() else None


def run_once(tool: str, order: int, cmd: list[str], out: Path, fmt: str) -> Run:
    """One build into a fresh, empty folder, which is then removed."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wall, cpu, peak, rc, tail = timed(cmd)
    run = Run(tool, order, round(wall, 4), round(cpu, 3), peak, rc, output_size(out / TARGETS[fmt]), tail)
    shutil.rmtree(out, ignore_errors=True)
    # Deleting drops most of the output's dirty pages; sync writes back the rest so that the next
    # run does not compete with this one's writeback.
    os.sync()
    return run


def bench_format(fmt: str, ref_venv: Path, inputs: Inputs, repeats: int) -> dict[str, Any]:
    warm_page_cache(inputs.weights)
    commands = {
        "ref": ref_command(ref_venv, fmt, inputs, WORK / "out-ref"),
        "ours": our_command(fmt, inputs, WORK / "out-ours"),
    }
    runs: dict[str, list[Run]] = {"ref": [], "ours": []}
    for i in range(repeats):
        # Alternate who goes first, so neither side systematically gets the quieter slot.
        order = ("ref", "ours") if i % 2 == 0 else ("ours", "ref")
        for position, tool in enumerate(order):
            run = run_once(tool, position, commands[tool], WORK / f"out-{tool}", fmt)
            runs[tool].append(run)
            status = "ok" if run.rc == 0 else f"rc={run.rc}: {run.stderr_tail.strip()[-200:]}"
            print(f"  {fmt:<10} {tool:<4} #{i + 1}  {run.wall_s:7.2f} s  {run.size_bytes or 0:>13,} B  {status}")
    return summarize_format(fmt, runs, commands)


def summarize_format(fmt: str, runs: dict[str, list[Run]], commands: dict[str, list[str]]) -> dict[str, Any]:
    sides = {tool: _side_summary(tool_runs, commands[tool]) for tool, tool_runs in runs.items()}
    ref, ours = sides["ref"], sides["ours"]
    ok = ref["ok"] and ours["ok"]
    result: dict[str, Any] = {
        **sides,
        "time_ratio": ours["wall_s"]["median"] / ref["wall_s"]["median"] if ok else None,
        "size_ratio": ours["size_bytes"] / ref["size_bytes"] if ok else None,
    }
    if fmt == "default":
        result["target_pass"] = bool(
            ok and result["time_ratio"] <= MAX_TIME_RATIO and result["size_ratio"] <= MAX_SIZE_RATIO
        )
    return result


def _side_summary(runs: list[Run], cmd: list[str]) -> dict[str, Any]:
    good = [r for r in runs if r.rc == 0]
    sizes = sorted(r.size_bytes for r in good if r.size_bytes is not None)
    return {
        "ok": len(good) == len(runs) and bool(sizes),
        "wall_s": stats([r.wall_s for r in good]),
        "cpu_s": stats([r.cpu_s for r in good]),
        "peak_rss_mb": stats([r.peak_rss_mb for r in good if r.peak_rss_mb is not None]),
        "size_bytes": statistics.median_low(sizes) if sizes else None,  # a size some run really had
        # Sizes can differ between runs when a format stores mtimes that deflate differently (tar).
        "size_bytes_range": [sizes[0], sizes[-1]] if sizes else None,
        "command": cmd,
        "runs": [asdict(r) for r in runs],
    }


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
